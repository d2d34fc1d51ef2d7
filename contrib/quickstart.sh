#!/bin/sh
# contrib/quickstart.sh - from a checkout to a ticket, on a fresh Debian 12, as root.
#
# Installs the build dependencies and Postfix, builds and installs
# ticket-milter, starts it with its built-in default configuration (no
# configuration file: one queue at support@localhost, the database in
# /var/lib/ticket-milter), wires the local Postfix to it, sends one mail to
# support@localhost and shows the ticket it became. ticket-milter stays
# running; stop it with: pkill -x ticket-milter
#
# On a machine whose Postfix already carries mail, read this first: it sets
# smtpd_milters and turns off the chroot of the smtpd service.
set -eu
cd "$(dirname "$0")/.."

echo "== installing packages"
contrib/deps.sh > /tmp/ticket-milter-deps.log 2>&1 || { tail -20 /tmp/ticket-milter-deps.log; exit 1; }
apt-get install -y -q --no-install-recommends adduser procps > /dev/null

echo "== building and installing ticket-milter"
autoreconf -fi > /dev/null 2>&1
./configure -q --prefix=/usr --sysconfdir=/etc --localstatedir=/var --runstatedir=/run
make -s -j2 > /dev/null
make -s install > /dev/null

echo "== the ticket-milter user (postfix joins its group to reach the socket)"
getent passwd ticket-milter > /dev/null \
  || adduser --quiet --system --group --home /var/lib/ticket-milter --no-create-home ticket-milter
usermod -aG ticket-milter postfix

echo "== wiring Postfix to the milter"
# A main.cf that the test suite wrote only to list its private instances is
# replaced too (keeping that list); a real one is left as it is.
alternates=
if [ -f /etc/postfix/main.cf ] && grep -q "ticket-milter's tests" /etc/postfix/main.cf; then
  alternates=$(postconf -h alternate_config_directories 2>/dev/null || true)
  rm -f /etc/postfix/main.cf
fi
[ -f /etc/postfix/main.cf ] || cat > /etc/postfix/main.cf <<'MAINCF'
# written by ticket-milter's contrib/quickstart.sh
compatibility_level = 3.6
myhostname = localhost
mydestination = localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
MAINCF
[ -z "$alternates" ] || postconf -e "alternate_config_directories = $alternates"
grep -q '^support:' /etc/aliases 2>/dev/null || echo "support: root" >> /etc/aliases
newaliases
postconf -e "smtpd_milters = unix:/run/ticket-milter/ticket-milter.sock" \
            "milter_default_action = tempfail" "milter_protocol = 6"
# With chroot, smtpd would look for the socket inside /var/spool/postfix.
postconf -F "smtp/inet/chroot = n"

echo "== starting ticket-milter with the built-in configuration"
pkill -x ticket-milter 2>/dev/null && sleep 1 || true
# No /etc/ticket-milter/ticket-milter.conf: every key takes its default.
/usr/sbin/ticket-milter
for i in $(seq 50); do [ -S /run/ticket-milter/ticket-milter.sock ] && break; sleep 0.1; done
ls -l /run/ticket-milter/ticket-milter.sock

echo "== (re)starting Postfix"
postfix status > /dev/null 2>&1 && postfix reload || postfix start
sleep 1

echo "== a customer writes to support@localhost"
swaks --silent 1 --server 127.0.0.1 --from customer@example.net --to support@localhost \
  --header "Subject: =?UTF-8?B?2YHYp9iq2YjYsdipINmE2YUg2KrYtdmE?=" \
  --body "مرحبا، لم تصل فاتورتي لشهر أكتوبر. Hello, my October invoice did not arrive."
for i in $(seq 50); do [ -z "$(postqueue -j 2>/dev/null)" ] && break; sleep 0.2; done

echo "== the ticket"
id=$(ticketctl list --json --limit 1 | sed -n 's/^ *"id" *: *\([0-9]*\).*/\1/p' | head -1)
ticketctl show "$id"
echo "== the delivered mail's headers (in /var/mail/root)"
grep -E '^(X-Ticket-ID|X-Ticket-Queue|Subject):' /var/mail/root | tail -3
echo "== ticket-milter's log lines are on the mail facility; it keeps running."
