#!/bin/sh
# contrib/deps.sh - install what building and testing ticket-milter needs, from
# Debian's packages (Debian 12). Run as root. Postfix is installed without
# asking questions and without a system configuration: the tests run private
# instances on 127.0.0.1 and leave the system's mail alone.
# libmilter-dev is for bench/null-milter only (the benchmarks' do-nothing
# milter): ticket-milter speaks the milter protocol itself.
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get install -y -q --no-install-recommends \
  build-essential autoconf automake libtool pkg-config \
  libmilter-dev libgmime-3.0-dev libglib2.0-dev libsqlite3-dev \
  libcurl4-openssl-dev libjson-glib-dev \
  postfix swaks miltertest sqlite3 jq python3 valgrind ca-certificates \
  clang libclang-rt-14-dev e2fsprogs
