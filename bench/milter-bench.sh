#!/bin/bash
# bench/milter-bench.sh - ticket-milter against the null milter, over the milter
# protocol alone (no MTA): throughput, end-of-message latency and memory.
#
#   bench/milter-bench.sh [-n MAILS] [-c SESSIONS] [-m PER_CONNECTION] [-r ROUNDS]
#                         [-R MAILS_PER_SECOND] [-y full|normal] [-a stalled|refused|off] [-k]
#   bench/milter-bench.sh --memory [-c SESSIONS] [--hold N] [--steps LIST]
#                         [-y full|normal] [-a stalled|refused|off] [-k]
#
# Starts ticket-milter from the build tree (its own configuration and database in
# a temporary directory, [store] synchronous = -y, default full as shipped) and
# bench/null-milter (built with gcc like bench/run-postfix.sh does when the build
# tree has none), each on a unix socket, and drives both with bench/milter-load,
# which speaks the MTA side of the milter protocol as Postfix 3.7 does.
#
# Throughput (the default): ROUNDS rounds (3) of MAILS mails (2000) each over
# SESSIONS sessions (20), PER_CONNECTION mails per connection (10), alternating
# null-milter and ticket-milter so that drift of the machine hits both; a
# 200-mail warm-up of each is not counted. Prints a markdown table of mails per
# second and end-of-message latency (p50, p99: from BODYEOB written to the final
# reply) per round and the median, the ratio ticket / null, the milters' CPU per
# mail, ticket-milter's own eom_ms (from its log), and checks that the store
# holds exactly one new ticket per mail answered accept or continue. -R caps
# the load at MAILS_PER_SECOND (milter-load --rate): latency at a load a desk
# sees rather than at saturation.
#
# --memory: ticket-milter's (and null-milter's) VmRSS and VmHWM when started,
# with N sessions (--hold, 100) open and stopped in the middle of a mail body,
# after they closed, after the cumulative mail counts in --steps (default
# 10000,50000,100000) and with N sessions open again at the end: a table that
# shows whether memory grows with the mails handled.
#
# Every generated mail has its own Message-ID and sender, so each makes a new
# ticket and queues an acknowledgement (an outbox row in the ticket's
# transaction). Where the acknowledgements go, -a:
#   stalled  (default) an SMTP server that accepts connections and never
#            greets: each outbox worker waits connect_timeout (2 s) and defers
#            its mail for an hour, so the acknowledgements stay queued and the
#            workers hardly touch the store: the milter's own path is measured.
#   refused  127.0.0.1:9, where nothing listens: every acknowledgement is tried
#            at once, refused and deferred, so the workers write to the store
#            (twice per mail) as fast as the milter queues: the worst case of
#            outbox work competing with the milter for the database.
#   off      ack = no on the queue: no outbox rows at all.
# No mail leaves the machine in any case.
#
# Needs gcc with the GLib headers (for bench/milter-load.c when not built),
# libmilter-dev (null-milter), jq, sqlite3, python3 (-a stalled) and
# ticket-milter built. Exit status
# 77 (skipped) when something is missing, with the reason; 1 when a run failed.
# -k keeps the work directory (daemon logs, configuration, database, results).
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/lib.sh"
trap - EXIT   # lib.sh's trap; ours (below) also stops the daemons first

mails=2000 sessions=20 per_connection=10 rounds=3 synchronous=full memory=0 rate=
hold=100 steps=10000,50000,100000 acks=stalled
usage () { sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
number () { case $2 in ''|*[!0-9]*) echo "milter-bench: $1 $2: not a number" >&2; usage ;; esac; }
while [ $# -gt 0 ]; do
  case $1 in
    -n) number "$1" "${2:-}"; mails=$2; shift ;;
    -c) number "$1" "${2:-}"; sessions=$2; shift ;;
    -m) number "$1" "${2:-}"; per_connection=$2; shift ;;
    -r) number "$1" "${2:-}"; rounds=$2; shift ;;
    -R) number "$1" "${2:-}"; rate=$2; shift ;;
    -y) case ${2:-} in full|normal) synchronous=$2 ;; *) usage ;; esac; shift ;;
    -k) export TM_KEEP_TMP=1 ;;
    --memory) memory=1 ;;
    --hold) number "$1" "${2:-}"; hold=$2; shift ;;
    --steps) case ${2:-} in ''|*[!0-9,]*) usage ;; esac; steps=$2; shift ;;
    -a) case ${2:-} in stalled|refused|off) acks=$2 ;; *) usage ;; esac; shift ;;
    *) usage ;;
  esac
  shift
done
if [ "$rounds" -lt 1 ] || [ "$mails" -lt 1 ] || [ "$sessions" -lt 1 ]; then usage; fi

skip () { echo "milter-bench: skipped: $*" >&2; exit 77; }
JQ=$(command -v jq) || skip "no jq"
SQLITE3=$(command -v sqlite3) || skip "no sqlite3"
TICKET_MILTER=$top_builddir/ticket-milter
[ -x "$TICKET_MILTER" ] || skip "ticket-milter is not built in $top_builddir"
if [ "$acks" = stalled ]; then PYTHON=$(command -v python3) || skip "no python3 (for -a stalled)"; fi

work=$(tm_workdir)
# tm_workdir ran in a subshell, so its own registration for removal was lost.
tm_cleanup_dirs="$tm_cleanup_dirs $work"
null_pid='' ticket_pid='' smtp_pid=''
finish () {
  local pid
  for pid in $null_pid $ticket_pid $smtp_pid; do
    kill -TERM "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
  done
  if [ "${TM_KEEP_TMP:-0}" = 1 ]; then echo "milter-bench: kept $work" >&2; fi
  tm_run_cleanup
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---- the programs --------------------------------------------------------------------
MILTER_LOAD=$top_builddir/bench/milter-load
if [ ! -x "$MILTER_LOAD" ]; then
  MILTER_LOAD=$work/milter-load
  # shellcheck disable=SC2046
  gcc -O2 -Wall -Wextra -std=c11 "$top_srcdir/bench/milter-load.c" -o "$MILTER_LOAD" \
      $(pkg-config --cflags --libs glib-2.0) -lpthread || skip "cannot build bench/milter-load.c"
fi
NULL_MILTER=$top_builddir/bench/null-milter
if [ ! -x "$NULL_MILTER" ]; then
  NULL_MILTER=$work/null-milter
  gcc -std=c11 -O2 -D_GNU_SOURCE "$top_srcdir/bench/null-milter.c" -o "$NULL_MILTER" \
      -lmilter -lpthread || skip "cannot build bench/null-milter.c"
fi

# ---- the milters ----------------------------------------------------------------------
wait_socket () {  # wait_socket PATH PID: until PATH is a socket, or PID died
  local i=0
  until [ -S "$1" ]; do
    kill -0 "$2" 2> /dev/null || return 1
    i=$((i + 1)); [ $i -gt 100 ] && return 1
    sleep 0.1
  done
}

"$NULL_MILTER" -p "unix:$work/null.sock" 2> "$work/null-milter.log" &
null_pid=$!
wait_socket "$work/null.sock" $null_pid || { echo "milter-bench: null-milter did not start" >&2; exit 1; }

ack=yes smtp_port=9
if [ "$acks" = stalled ]; then
  # Listens, never accepts: connections complete in the kernel's backlog and
  # no greeting ever comes.
  "$PYTHON" -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096)
print(s.getsockname()[1], flush=True)
time.sleep(1e9)' > "$work/smtp.port" &
  smtp_pid=$!
  i=0
  until [ -s "$work/smtp.port" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "milter-bench: the stalled SMTP listener did not start" >&2; exit 1; }
    sleep 0.1
  done
  smtp_port=$(cat "$work/smtp.port")
elif [ "$acks" = off ]; then
  ack=no
fi

cat > "$work/ticket-milter.conf" <<EOF
[milter]
socket = unix:$work/tm.sock
user =
socket_mode = 0600
on_error = tempfail
[store]
path = $work/tickets.db
synchronous = $synchronous
[templates]
dir = $top_srcdir/templates
# Acknowledgements (-a $acks): deferred past the end of the benchmark.
[smtp]
url = smtp://127.0.0.1:$smtp_port
connect_timeout = 2s
retry_min = 1h
retry_max = 1h
[queue support]
address = support@example.test
tag_prefix = Ticket
ack = $ack
EOF
"$TICKET_MILTER" -f -c "$work/ticket-milter.conf" 2> "$work/ticket-milter.log" > /dev/null &
ticket_pid=$!
if ! wait_socket "$work/tm.sock" $ticket_pid; then
  echo "milter-bench: ticket-milter did not start; its log:" >&2
  cat "$work/ticket-milter.log" >&2
  exit 1
fi

tickets () { "$SQLITE3" "$work/tickets.db" 'SELECT count(*) FROM tickets;'; }

# load SETUP OUTPUT ARGS...: milter-load against SETUP (null or ticket) with its
# process watched; the JSON goes to OUTPUT. Fails (with the reason on stderr)
# when milter-load does.
load () {
  local setup=$1 output=$2 socket pid
  shift 2
  case $setup in
    null) socket=unix:$work/null.sock pid=$null_pid ;;
    ticket) socket=unix:$work/tm.sock pid=$ticket_pid ;;
  esac
  if ! "$MILTER_LOAD" -s "$socket" --pid "$pid" --json "$@" > "$output" 2>> "$work/milter-load.err"; then
    echo "milter-bench: milter-load against $setup failed:" >&2
    tail -n 5 "$work/milter-load.err" >&2
    return 1
  fi
}

field () { "$JQ" -r "$1" "$2"; }
mb () { awk -v k="$1" 'BEGIN { if (k == "" || k == "null") print "?"; else printf "%.1f MB", k / 1024 }'; }

echo "milter-bench: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo);" \
  "store synchronous = $synchronous, acknowledgements $acks" >&2

# ---- memory ---------------------------------------------------------------------------
if [ "$memory" = 1 ]; then
  rows=$work/memory
  : > "$rows"
  status () {  # status PID FIELD: kB of VmRSS or VmHWM
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
  }
  # row LABEL MAILS [FIELD]: one line of the table from FIELD of the JSON of
  # both milters (null.json and ticket.json), or from /proc without FIELD.
  row () {
    local t_rss t_peak t_hwm n_rss rate=-
    if [ $# -ge 3 ]; then
      t_rss=$(field "$3" "$work/ticket.json") t_peak=$(field .milter.rss_kb.peak "$work/ticket.json")
      t_hwm=$(field .milter.hwm_kb.after "$work/ticket.json") n_rss=$(field "$3" "$work/null.json")
      [ "$(field .mails "$work/ticket.json")" = 0 ] ||
        rate=$(printf '%.0f' "$(field .mails_per_second "$work/ticket.json")")
    else
      t_rss=$(status $ticket_pid VmRSS) t_peak=$t_rss t_hwm=$(status $ticket_pid VmHWM)
      n_rss=$(status $null_pid VmRSS)
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(mb "$t_rss")" "$(mb "$t_peak")" \
      "$(mb "$t_hwm")" "$rate" "$(mb "$n_rss")" >> "$rows"
  }
  hold_row () {  # hold_row LABEL MAILS: both milters with $hold sessions open mid-body
    for setup in null ticket; do
      load $setup "$work/$setup.json" -n 0 --hold "$hold" --hold-at body --hold-seconds 1 || exit 1
    done
    row "$hold sessions open, mid-body ($1)" "$2" .milter.rss_kb.held
    row "those $hold sessions closed" "$2" .milter.rss_kb.after
  }

  sleep 1
  row "started, idle" 0
  hold_row "fresh" 0
  done_mails=0
  for step in ${steps//,/ }; do
    [ "$step" -gt "$done_mails" ] || continue
    count=$((step - done_mails))
    echo "milter-bench: $count mails to reach $step" >&2
    for setup in null ticket; do
      load $setup "$work/$setup.json" -n "$count" -c "$sessions" -m "$per_connection" || exit 1
    done
    done_mails=$step
    row "after $step mails" "$step" .milter.rss_kb.after
  done
  hold_row "after $done_mails mails" "$done_mails"

  echo
  echo "| point | mails so far | ticket-milter VmRSS | its peak during the step | its VmHWM | its mails/s in the step | null-milter VmRSS |"
  echo "|---|---|---|---|---|---|---|"
  cat "$rows"
  stored=$(tickets)
  echo
  echo "tickets in the store: $stored (mails sent to ticket-milter: $done_mails, plus $((2 * hold)) held and abandoned)"
  [ "$stored" -eq "$done_mails" ] || echo "milter-bench: warning: $stored tickets for $done_mails mails" >&2
  exit 0
fi

# ---- throughput -----------------------------------------------------------------------
results=$work/results
: > "$results"
load null "$work/warm.json" -n 200 -c "$sessions" -m "$per_connection" || exit 1
load ticket "$work/warm.json" -n 200 -c "$sessions" -m "$per_connection" || exit 1
log_start=$(wc -l < "$work/ticket-milter.log")
mismatch=0
for round in $(seq 1 "$rounds"); do
  for setup in null ticket; do
    before=$(tickets)
    load $setup "$work/run.json" -n "$mails" -c "$sessions" -m "$per_connection" \
      ${rate:+--rate "$rate"} || exit 1
    answered=$(field '.replies.accept + .replies.continue' "$work/run.json")
    stored=$(( $(tickets) - before ))
    want=$answered; [ $setup = null ] && want=0
    if [ "$stored" -ne "$want" ]; then
      echo "milter-bench: round $round $setup: $stored new tickets, $want expected" >&2
      mismatch=1
    fi
    line=$(field '[.mails_per_second, .eom_ms.p50, .eom_ms.p90, .eom_ms.p99, .eom_ms.max,
                   .milter.cpu_ms_per_mail, .completed, .errors, .replies.tempfail + .replies.reject,
                   .client_cpu_ms_per_mail] | map(tostring) | join(" ")' "$work/run.json")
    echo "$round $setup $line $stored $answered" >> "$results"
    echo "milter-bench: round $round $setup: $line $stored (mails/s p50 p90 p99 max cpu_ms answered errors refused client_cpu_ms tickets)" >&2
  done
done

# The table: fields are 1 round, 2 setup, 3 mails/s, 4 p50, 5 p90, 6 p99, 7 max,
# 8 milter CPU ms per mail, 9 answered, 10 errors, 11 refused, 12 client CPU, 13 new
# tickets, 14 answered accept or continue.
get () { awk -v r="$1" -v s="$2" -v f="$3" '$1 == r && $2 == s { print $f }' "$results"; }
median_of () {
  awk -v s="$1" -v f="$2" '$2 == s { print $f }' "$results" | sort -g | awk '
    { v[NR] = $1 } END { if (!NR) print "n/a"; else printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio () { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "$mails mails per run, $sessions sessions, $per_connection mails per connection," \
  "store synchronous = $synchronous, acknowledgements $acks"
echo
echo "| round | null-milter mails/s | null p50 | null p99 | ticket-milter mails/s | ticket p50 | ticket p99 | ticket / null |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  printf '| %s | %.0f | %.2f ms | %.2f ms | %.0f | %.2f ms | %.2f ms | %s |\n' "$round" \
    "$(get "$round" null 3)" "$(get "$round" null 4)" "$(get "$round" null 6)" \
    "$(get "$round" ticket 3)" "$(get "$round" ticket 4)" "$(get "$round" ticket 6)" \
    "$(ratio "$(get "$round" ticket 3)" "$(get "$round" null 3)")"
done
mn=$(median_of null 3) mt=$(median_of ticket 3)
printf '| median | %.0f | %.2f ms | %.2f ms | %.0f | %.2f ms | %.2f ms | %s |\n' \
  "$mn" "$(median_of null 4)" "$(median_of null 6)" "$mt" "$(median_of ticket 4)" \
  "$(median_of ticket 6)" "$(ratio "$mt" "$mn")"
echo
printf 'milter CPU per mail (median): null-milter %.3f ms, ticket-milter %.3f ms; milter-load %.3f ms\n' \
  "$(median_of null 8)" "$(median_of ticket 8)" "$(median_of ticket 12)"
printf 'end-of-message latency max (median of rounds): null-milter %.2f ms, ticket-milter %.2f ms\n' \
  "$(median_of null 7)" "$(median_of ticket 7)"
tail -n +$((log_start + 1)) "$work/ticket-milter.log" | grep -o 'eom_ms=[0-9.]*' | cut -d= -f2 | sort -g |
  awk '{ v[NR] = $1 } END {
    if (!NR) { print "ticket-milter eom_ms: no eom_ms= lines in its log"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    p = int(NR * 0.99 + 0.999999); if (p > NR) p = NR
    printf "ticket-milter eom_ms (its own time at end of message) over %d mails: median %.2f, p99 %.2f, max %.2f\n", NR, m, v[p], v[NR] }'
refused=$(awk '{ s += $11 } END { print s + 0 }' "$results")
errors=$(awk '{ s += $10 } END { print s + 0 }' "$results")
echo "answered tempfail or reject: $refused; errors: $errors;" \
  "new tickets in ticket-milter's runs: $(awk '$2 == "ticket" { s += $13 } END { print s + 0 }' "$results")" \
  "for $(awk '$2 == "ticket" { s += $14 } END { print s + 0 }' "$results") mails answered accept or continue"
[ "$mismatch" = 0 ] && [ "$errors" = 0 ] || exit 1
