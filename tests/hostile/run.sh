#!/bin/sh
# tests/hostile/run.sh - hostile mails through the daemon and through
# `ticketctl simulate`: bounded time and memory, a ticket, no crash.
#
# make-mails.py writes the mails into the work directory at test time: 10,000
# headers, multiparts nested 1,000 deep, 1,000 recipients (with and without
# the support address among them), a 64 KB header line, NULs in headers, a
# 1 MB Subject, malformed encoded words. Each one is
#  a) sent to a running `ticket-milter -f` over the milter protocol by
#     milter-client.py, which does to the mail what Postfix does before its
#     milters see it: among other things it cuts each header field to
#     60,000 bytes, so the daemon sees the 64 KB line and the 1 MB Subject
#     cut, as it would behind Postfix (see milter-client.py; miltertest
#     cannot send a header longer than 1 KB, its buffer overflows). The
#     daemon must answer CONTINUE with an X-Ticket-ID (or, for
#     the mail that is not for support, with no X-Ticket-ID), stay up and
#     make a ticket of the next, ordinary mail, and its peak memory (VmHWM)
#     must not grow by 512 MB or more;
#  b) run through `ticketctl simulate --commit` (the same pipeline) under
#     measure.py: exit status 0 within 60 s, in the JSON a ticket of class
#     customer (or class not-support and no ticket), a peak RSS under 512 MB.
# The 60 s and the 512 MB only catch a hang or a runaway; the figures
# themselves are printed as TAP comments at the end, in a table: the
# daemon's eom_ms from its log line, how far the mail raised the daemon's
# peak memory (VmHWM, reset before each mail), the daemon's RSS after the
# mail, simulate's time and peak RSS.
#
# Skips when python3 is missing. TM_KEEP_TMP=1 keeps the work directory (the
# mails, daemon.log, each client's and each simulate's output).
# TM_MILTER_WRAPPER runs the daemon under a tool, as in tests/milter/run.sh.
. "$top_srcdir/tests/lib.sh"

command -v python3 > /dev/null || tap_skip_all "python3 is not installed"
# The interpreter itself: a python3 found in PATH may be a wrapper script
# (pyenv's shims) that costs a second on each of the test's many calls.
PYTHON=$(python3 -c 'import sys; print(sys.executable)') && [ -x "$PYTHON" ] \
  || tap_skip_all "python3 does not run"
[ -r /proc/self/status ] || tap_skip_all "no /proc/PID/status to read the daemon's memory from"
MILTER=$(tm_bin ticket-milter)
TICKETCTL=$(tm_bin ticketctl)
here=$top_srcdir/tests/hostile
TIME_LIMIT=60
MEMORY_CAP_KB=$((512 * 1024))

dir=$(tm_workdir)
mails=$dir/mails
mkdir "$mails" "$dir/daemon" "$dir/simulate"
if ! "$PYTHON" "$here/make-mails.py" "$mails" > "$mails/list"; then
  echo "Bail out! make-mails.py failed"
  exit 1
fi
mail_count=$(wc -l < "$mails/list")
# Per mail: three checks of the daemon, three of simulate. Then the daemon
# starts, takes a first ordinary mail, and stops cleanly.
tap_plan $((mail_count * 6 + 3))

write_config () { # DIR
  cat > "$1/ticket-milter.conf" <<EOC
[milter]
socket = unix:$1/milter.sock
user =
socket_mode = 0600
on_error = tempfail

[store]
path = $1/tickets.db

[templates]
dir = $top_srcdir/templates
# Nothing listens on the discard port: acknowledgements stay in the outbox.
[smtp]
url = smtp://127.0.0.1:9
connect_timeout = 2s

[queue support]
address = support@example.test
tag_prefix = Ticket
EOC
}
write_config "$dir/daemon"
write_config "$dir/simulate"

daemon_pid=""
stop_daemon () {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
    daemon_pid=""
  fi
}
tm_on_exit stop_daemon

# --- the daemon ---------------------------------------------------------------
socket=$dir/daemon/milter.sock
${TM_MILTER_WRAPPER:-} "$MILTER" -f -c "$dir/daemon/ticket-milter.conf" > "$dir/daemon.log" 2>&1 &
daemon_pid=$!
tries=0
while [ ! -S "$socket" ] && kill -0 "$daemon_pid" 2>/dev/null && [ $tries -lt 200 ]; do
  sleep 0.05
  tries=$((tries + 1))
done
if [ ! -S "$socket" ]; then
  tap_is "the daemon starts" "it did not: $(cat "$dir/daemon.log")" "it does"
  echo "Bail out! no daemon to test"
  exit 1
fi
tap_is "the daemon starts" ok ok

memory_kb () { # FIELD: VmHWM or VmRSS of the daemon, in kB
  awk -v field="$1:" '$1 == field { print $2 }' "/proc/$daemon_pid/status" 2>/dev/null
}
# Lowers the daemon's VmHWM to its present RSS (Linux 4.0 and later), so that
# each mail's own peak shows, not the highest of all so far. Where this
# cannot be done the figure is how far the mail raised the highest peak.
reset_peak_memory () {
  echo 5 2>/dev/null > "/proc/$daemon_pid/clear_refs" || true
}

# Sends FILE with the envelope recipients in RCPT-FILE as queue id QID;
# the client's output goes to OUT. Succeeds when the daemon answered
# CONTINUE and, as EXPECTED says, added an X-Ticket-ID ("ticket") or added
# none ("pass"); otherwise prints why.
send_mail () { # FILE RCPT-FILE QID OUT [EXPECTED]
  "$PYTHON" "$here/milter-client.py" "unix:$socket" "$1" "$2" "$3" < /dev/null > "$4" 2>&1
  local status=$? ticket=no
  grep -q "^header X-Ticket-ID " "$4" && ticket=yes
  if [ $status -eq 0 ] && grep -qx "reply c" "$4"; then
    case ${5:-ticket}:$ticket in
      ticket:yes|pass:no) return 0 ;;
    esac
  fi
  echo "milter-client.py exited with status $status:"
  cat "$4"
  kill -0 "$daemon_pid" 2>/dev/null || echo "the daemon is gone"
  echo "--- the end of the daemon's log:"
  tail -5 "$dir/daemon.log"
  return 1
}

# An ordinary mail with its own Message-ID, as CRLF text.
ordinary_mail () { # FILE ID
  printf 'From: Customer <customer@example.org>\r\nTo: support@example.test\r\nSubject: ordinary mail %s\r\nMessage-ID: <%s@example.org>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0300\r\n\r\nHello,\r\nmy printer is on fire.\r\n' \
    "$2" "$2" > "$1"
  printf 'support@example.test\n' > "${1%.eml}.rcpt"
}

# First an ordinary mail, so that the memory figures start after the store,
# GMime and the outbox are up.
ordinary_mail "$mails/first.eml" first
tap_ok "an ordinary first mail makes a ticket" \
  send_mail "$mails/first.eml" "$mails/first.rcpt" HOST0000 "$dir/first.out"

# --- simulate -------------------------------------------------------------------
# Runs `ticketctl simulate --commit` on FILE with the recipients of
# RCPT-FILE under measure.py; its JSON goes to OUT.json. Prints measure.py's
# "STATUS WALL-MS MAX-RSS-KB".
simulate () { # FILE RCPT-FILE OUT
  local file=$1 rcpt_file=$2 out=$3 rcpt
  set --
  while read -r rcpt; do set -- "$@" --rcpt "$rcpt"; done < "$rcpt_file"
  "$PYTHON" "$here/measure.py" "$TIME_LIMIT" "$out.json" "$out.err" \
    "$TICKETCTL" -c "$dir/simulate/ticket-milter.conf" simulate --commit \
    --from customer@example.org --client-addr 192.0.2.10 "$@" "$file" < /dev/null
}

# "CLASS ticket" or "CLASS no-ticket" from simulate's JSON.
json_outcome () { # FILE
  "$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
t = d.get("ticket")
print(d.get("class"), "ticket" if t and t.get("id") else "no-ticket")' "$1" 2>&1
}

# --- each hostile mail ------------------------------------------------------------
table=""
n=0
while read -r name size expected; do
  case $expected in
    ticket) answer="CONTINUE and adds an X-Ticket-ID"; outcome="customer ticket" ;;
    *) answer="CONTINUE and adds no X-Ticket-ID"; outcome="not-support no-ticket" ;;
  esac
  n=$((n + 1))
  qid=$(printf 'HOST%04d' "$n")
  out=$dir/$name

  reset_peak_memory
  hwm_before=$(memory_kb VmHWM)
  tap_ok "$name: the daemon answers $answer" \
    send_mail "$mails/$name.eml" "$mails/$name.rcpt" "$qid" "$out.milter" "$expected"
  hwm_after=$(memory_kb VmHWM)
  rss_after=$(memory_kb VmRSS)
  eom_ms=$(sed -n "s/.* $qid: .* eom_ms=\([0-9.]*\).*/\1/p" "$dir/daemon.log" | tail -1)

  ordinary_mail "$mails/after-$name.eml" "after-$name"
  tap_ok "$name: the daemon is still up and makes a ticket of the next mail" \
    send_mail "$mails/after-$name.eml" "$mails/after-$name.rcpt" "$qid-after" "$out.after"

  growth=$(( ${hwm_after:-0} - ${hwm_before:-0} ))
  if [ -n "$hwm_before" ] && [ -n "$hwm_after" ] && [ "$growth" -lt "$MEMORY_CAP_KB" ]; then
    tap_is "$name: the daemon's peak memory grows by less than 512 MB" ok ok
  else
    tap_is "$name: the daemon's peak memory grows by less than 512 MB" \
      "VmHWM ${hwm_before:-?} kB before, ${hwm_after:-?} kB after" "a growth under $MEMORY_CAP_KB kB"
  fi

  set -- $(simulate "$mails/$name.eml" "$mails/$name.rcpt" "$out.simulate")
  sim_status=${1:-none} sim_ms=${2:-?} sim_rss=${3:-?}
  if [ "$sim_status" != 0 ]; then
    echo "# simulate's stderr:"
    head -20 "$out.simulate.err" | sed 's/^/#   /'
  fi
  tap_is "$name: ticketctl simulate --commit exits with status 0 within $TIME_LIMIT s" "$sim_status" 0
  tap_is "$name: simulate's class and ticket: $outcome" \
    "$(json_outcome "$out.simulate.json")" "$outcome"
  if [ "$sim_rss" != "?" ] && [ "$sim_rss" -lt "$MEMORY_CAP_KB" ]; then
    tap_is "$name: simulate's peak memory is under 512 MB" ok ok
  else
    tap_is "$name: simulate's peak memory is under 512 MB" "$sim_rss kB" "under $MEMORY_CAP_KB kB"
  fi

  milter_ms=$(sed -n 's/^wall_ms //p' "$out.milter")
  table="$table$(printf '%-18s %9s %9s %9s %9s %9s %9s %9s' "$name" "$size" \
    "${eom_ms:-?}" "${milter_ms:-?}" "$growth" "${rss_after:-?}" "$sim_ms" "$sim_rss")
"
done < "$mails/list"

# --- a clean stop -----------------------------------------------------------------
kill -TERM "$daemon_pid"
wait "$daemon_pid"
status=$?
daemon_pid=""
if [ "$status" -ne 0 ]; then
  echo "# the daemon's log:"
  tail -40 "$dir/daemon.log" | sed 's/^/#   /'
fi
tap_is "the daemon exits with status 0 on SIGTERM" "$status" 0

echo "# Figures (one run; the machine is shared, so they are indications only)."
echo "# eom ms: the daemon's own time at end of message (its log's eom_ms);"
echo "# milter ms: the client's time from connecting to the final reply;"
echo "# HWM +kB: how far the mail raised the daemon's peak RSS (VmHWM); RSS kB: after it;"
echo "# sim ms, sim kB: ticketctl simulate --commit's time and peak RSS."
printf '# %-18s %9s %9s %9s %9s %9s %9s %9s\n' mail bytes "eom ms" "milter ms" \
  "HWM +kB" "RSS kB" "sim ms" "sim kB"
printf '%s' "$table" | sed 's/^/# /'

tap_done
