#!/bin/bash
# bench/ack-latency.sh - from end of message to the acknowledgement accepted.
#
#   bench/ack-latency.sh [-n MAILS] [-s SESSIONS] [-w WAIT] [-k]
#
# One private Postfix (tests/postfix-lib.sh) on 127.0.0.1 hands MAILS mails
# (default 500) sent by smtp-source over SESSIONS parallel sessions (default
# 5; with -w each session waits WAIT between mails, e.g. 50ms) to
# ticket-milter; every mail opens a ticket and is acknowledged (the
# per-sender limit is off), and the outbox workers hand each acknowledgement
# back to the same Postfix over SMTP, which delivers it to a maildir.
# ticket-milter logs, for each delivered acknowledgement, "sent after X ms":
# the time from the moment the pipeline queued it (at end of message, inside
# the ticket's transaction) to the MTA's 250 after DATA. Printed: count,
# median, p90, p99 and maximum of those, and how many acknowledgements
# arrived in the maildir.
# Needs root and postfix (with smtp-source). -k keeps the work directory.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"
trap - EXIT

mails=500 sessions=5 wait=
while getopts "n:s:w:k" opt; do
  case $opt in
    n) mails=$OPTARG ;;
    s) sessions=$OPTARG ;;
    w) wait=$OPTARG ;;
    k) export TM_KEEP_TMP=1 ;;
    *) sed -n '3,4p' "$0" >&2; exit 2 ;;
  esac
done
skip () { echo "ack-latency: skipped: $*" >&2; exit 77; }
why=$(pf_usable) || skip "$why"
SMTP_SOURCE=$(PATH=$PATH:/usr/sbin:/sbin command -v smtp-source) || skip "no smtp-source"
TICKET_MILTER=$(tm_bin ticket-milter)
command -v "$TICKET_MILTER" > /dev/null 2>&1 || skip "ticket-milter is not built"

work=$(tm_workdir)
tm_cleanup_dirs="$tm_cleanup_dirs $work"
pid=
finish () {
  [ -n "$pid" ] && kill -TERM "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
  pf_stop "$work"
  tm_run_cleanup
}
trap finish EXIT
trap 'exit 130' INT TERM

pf_setup "$work" 0 || exit 1
pf_set_milter "$work" "unix:$work/tm.sock" > /dev/null || exit 1
pf_start "$work" || exit 1
port=$(pf_port "$work")
cat > "$work/ticket-milter.conf" <<EOC
[milter]
socket = unix:$work/tm.sock
user =
socket_mode = 0666
[store]
path = $work/tickets.db
[templates]
dir = $top_srcdir/templates
[smtp]
url = smtp://127.0.0.1:$port
[queue support]
address = support@example.test
ack_rate_limit = 0
EOC
"$TICKET_MILTER" -c "$work/ticket-milter.conf" -f 2> "$work/ticket-milter.log" > /dev/null &
pid=$!
i=0
until pf_unix_listens "$work/tm.sock"; do
  i=$((i + 1)); [ $i -gt 100 ] && { echo "ticket-milter did not start"; cat "$work/ticket-milter.log"; exit 1; }
  sleep 0.1
done

msg=$work/mail.txt
{
  printf 'From: =?UTF-8?B?%s?= <customer@example.test>\n' "$(printf 'سارة' | base64)"
  printf 'To: support@example.test\n'
  printf 'Subject: =?UTF-8?B?%s?=\n' "$(printf 'فاتورتي لم تصل' | base64 | tr -d '\n')"
  printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n'
  printf 'Content-Transfer-Encoding: 8bit\n\n'
  for _ in $(seq 40); do printf 'مرحبا، لم تصل فاتورتي لشهر أكتوبر. Hello, my invoice did not arrive.\n'; done
} > "$msg"

"$SMTP_SOURCE" -4 -s "$sessions" -m "$mails" ${wait:+-w "$wait"} -F "$msg" -f customer@example.test \
  -t support@example.test -M client.example.net "127.0.0.1:$port" 2> "$work/smtp-source.err"
# Every acknowledgement delivered (or 120 s).
i=0
while [ "$(pf_mailbox_files "$work" customer | wc -l)" -lt "$mails" ] && [ $i -lt 1200 ]; do
  sleep 0.1; i=$((i + 1))
done
sleep 0.5
delivered=$(pf_mailbox_files "$work" customer | wc -l)
sed -n 's/.*outbox: ack .* sent after \([0-9.]*\) ms.*/\1/p' "$work/ticket-milter.log" | sort -n > "$work/latency"
awk -v mails="$mails" -v delivered="$delivered" -v sessions="$sessions" '
  { v[NR] = $1 }
  END {
    if (NR == 0) { print "no acknowledgement was sent"; exit 1 }
    printf "mails %d, sessions %d, acknowledgements accepted %d, delivered %d\n", mails, sessions, NR, delivered
    printf "eom -> ack accepted: median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
      v[int(NR * 0.5) + (NR % 2 ? 1 : 0)], v[int(NR * 0.9 + 0.5)], v[int(NR * 0.99 + 0.5)], v[NR]
  }' "$work/latency"
