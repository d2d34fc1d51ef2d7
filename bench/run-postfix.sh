#!/bin/bash
# bench/run-postfix.sh - throughput of a real Postfix with and without ticket-milter.
#
#   bench/run-postfix.sh [-n MAILS] [-s SESSIONS] [-r ROUNDS] [-l BYTES]
#                        [-y full|normal] [-e] [-k]
#
# One private Postfix (tests/postfix-lib.sh) on 127.0.0.1 receives MAILS mails
# (default 2000, about BYTES=4096 bytes each, to support@example.test) from
# smtp-source with SESSIONS parallel sessions (default 20), and throws them away
# with the discard: transport so that delivery costs almost nothing. Three
# set-ups are run in turn, ROUNDS times (default 3), with the same mails:
#   bare           no milter
#   null-milter    bench/null-milter: receives envelope, headers and body with
#                  no replies and accepts - the price of the milter protocol
#   ticket-milter  the real daemon, a new ticket per mail (store synchronous =
#                  -y, default full, as shipped)
# and with -e a fourth:
#   null + edits   null-milter -e: also makes the header edits ticket-milter
#                  makes (four headers added, the Subject rewritten), so that
#                  what Postfix pays to apply them shows apart from what
#                  ticket-milter itself costs
# Alternating the set-ups spreads any drift of the machine over all three.
#
# A run's time goes from the start of smtp-source to the moment the queue is
# empty; its mails are those the maillog shows delivered (status=sent). With
# milter_default_action = tempfail a broken milter turns mail into 4xx, so a
# run that delivered fewer mails than it sent is marked, never counted as fast.
# Also printed: the CPU time each milter process used per mail (from /proc) and
# ticket-milter's own end-of-message time (eom_ms= in its log), median and p99.
#
# Needs root, postfix (with smtp-source), gcc and libmilter-dev (to build
# null-milter if the build tree has none). -k keeps the work directory.
# Exit status 77 (skipped) when it cannot run here.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"
trap - EXIT   # lib.sh's trap; ours (below) also stops the milters first

mails=2000 sessions=20 rounds=3 body_bytes=4096 synchronous=full with_edits=
while getopts "n:s:r:l:y:ek" opt; do
  case $opt in
    n) mails=$OPTARG ;;
    s) sessions=$OPTARG ;;
    r) rounds=$OPTARG ;;
    l) body_bytes=$OPTARG ;;
    y) synchronous=$OPTARG ;;
    e) with_edits=1 ;;
    k) export TM_KEEP_TMP=1 ;;
    *) sed -n '3,5p' "$0" >&2; exit 2 ;;
  esac
done

skip () { echo "run-postfix: skipped: $*" >&2; exit 77; }
why=$(pf_usable) || skip "$why"
SMTP_SOURCE=$(PATH=$PATH:/usr/sbin:/sbin command -v smtp-source) || skip "no smtp-source"

work=$(tm_workdir)
# tm_workdir ran in a subshell, so its own registration for removal was lost.
tm_cleanup_dirs="$tm_cleanup_dirs $work"
null_pid= edits_pid= ticket_pid=
finish () {
  local pid
  for pid in $null_pid $edits_pid $ticket_pid; do
    kill -TERM "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
  done
  pf_stop "$work"
  tm_run_cleanup
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---- the programs --------------------------------------------------------------------
NULL_MILTER=$top_builddir/bench/null-milter
if [ ! -x "$NULL_MILTER" ]; then
  NULL_MILTER=$work/null-milter
  gcc -std=c11 -O2 -D_GNU_SOURCE "$top_srcdir/bench/null-milter.c" -o "$NULL_MILTER" \
      -lmilter -lpthread || skip "cannot build bench/null-milter.c"
fi
TICKET_MILTER=$(tm_bin ticket-milter)
if ! command -v "$TICKET_MILTER" > /dev/null 2>&1; then
  echo "run-postfix: ticket-milter is not built: its column stays empty" >&2
  TICKET_MILTER=
fi

# ---- Postfix --------------------------------------------------------------------------
pf_setup "$work" 0 || exit 1
pf_conf "$work" "transport_maps = inline:{ example.test=discard: }" || exit 1
pf_start "$work" || exit 1
port=$(pf_port "$work")

# One customer mail of about BODY_BYTES bytes, Arabic and English, with no
# Message-ID: cleanup adds a unique one, so ticket-milter sees each mail as new.
msg=$work/mail.txt
{
  printf 'From: =?UTF-8?B?%s?= <customer@example.net>\n' "$(printf 'سارة' | base64)"
  printf 'To: support@example.test\n'
  printf 'Subject: =?UTF-8?B?%s?=\n' "$(printf 'فاتورتي لم تصل' | base64 | tr -d '\n')"
  printf 'Date: Mon, 23 Nov 2026 09:00:00 +0300\n'
  printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n'
  printf 'Content-Transfer-Encoding: 8bit\n\n'
} > "$msg"
line='مرحبا، لم تصل فاتورتي لشهر أكتوبر. Hello, my invoice did not arrive.'
while [ "$(stat -c %s "$msg")" -lt "$body_bytes" ]; do
  printf '%s\n' "$line" >> "$msg"
done

# ---- the milters --------------------------------------------------------------------
wait_listening () {
  local i=0
  until pf_unix_listens "$1"; do
    kill -0 "$2" 2> /dev/null || return 1
    i=$((i + 1)); [ $i -gt 100 ] && return 1
    sleep 0.1
  done
}
"$NULL_MILTER" -p "unix:$work/null.sock" 2> "$work/null-milter.log" &
null_pid=$!
wait_listening "$work/null.sock" $null_pid || { echo "null-milter did not start" >&2; exit 1; }
if [ -n "$with_edits" ]; then
  "$NULL_MILTER" -e -p "unix:$work/edits.sock" 2> "$work/null-edits.log" &
  edits_pid=$!
  wait_listening "$work/edits.sock" $edits_pid || { echo "null-milter -e did not start" >&2; exit 1; }
fi

if [ -n "$TICKET_MILTER" ]; then
  cat > "$work/ticket-milter.conf" <<EOF
[milter]
socket = unix:$work/tm.sock
user =
socket_mode = 0666
on_error = tempfail
[store]
path = $work/tickets.db
synchronous = $synchronous
[templates]
dir = $top_srcdir/templates
# Acknowledgements go back into this Postfix, which discards them. All mails
# come from one sender, so the per-sender limit lets one through per hour.
[smtp]
url = smtp://127.0.0.1:$port
[queue support]
address = support@example.test
tag_prefix = Ticket
EOF
  "$TICKET_MILTER" -c "$work/ticket-milter.conf" -f 2> "$work/ticket-milter.log" > /dev/null &
  ticket_pid=$!
  if ! wait_listening "$work/tm.sock" $ticket_pid; then
    echo "run-postfix: ticket-milter did not start; its log:" >&2
    cat "$work/ticket-milter.log" >&2
    kill "$ticket_pid" 2> /dev/null; ticket_pid= TICKET_MILTER=
  fi
fi

# CPU seconds (user + system) a process has used so far.
cpu_seconds () {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# CPU seconds the whole machine has been busy so far (every process and the
# kernel: /proc/stat's first line without idle and iowait). Behind Postfix
# the machine is CPU-bound, so this per mail follows throughput more steadily
# than a run's wall-clock time does on a noisy virtual machine.
machine_busy_seconds () {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat
}

# Mails ticket-milter has logged so far (one "class=" line each).
ticket_lines () {
  if [ -n "$TICKET_MILTER" ]; then grep -c 'class=' "$work/ticket-milter.log"; else echo 0; fi
}

# run SETUP COUNT: send COUNT mails through SETUP; prints "delivered seconds
# rate milter_cpu_ms_per_mail rejected ticket_milter_mails machine_cpu_ms_per_mail".
run () {
  local setup=$1 count=$2 socket= pid= offset t0 t1 cpu0 cpu1 busy0 busy1 delivered rejected seen
  case $setup in
    null) socket=unix:$work/null.sock pid=$null_pid ;;
    edits) socket=unix:$work/edits.sock pid=$edits_pid ;;
    ticket) socket=unix:$work/tm.sock pid=$ticket_pid ;;
  esac
  pf_set_milter "$work" "$socket" >&2 || return 1
  offset=$(stat -c %s "$work/maillog")
  seen=$(ticket_lines)
  cpu0=$(cpu_seconds "$pid")
  busy0=$(machine_busy_seconds)
  t0=$(date +%s.%N)
  "$SMTP_SOURCE" -4 -s "$sessions" -m "$count" -F "$msg" \
    -f customer@example.net -t support@example.test -M client.example.net \
    "127.0.0.1:$port" 2>> "$work/smtp-source.err"
  pf_wait_queue_empty "$work" 300 >&2
  t1=$(date +%s.%N)
  busy1=$(machine_busy_seconds)
  cpu1=$(cpu_seconds "$pid")
  # postlogd may write the last lines a moment after the queue file is gone.
  sleep 0.3
  delivered=$(tail -c +$((offset + 1)) "$work/maillog" | grep -c 'status=sent')
  rejected=$(tail -c +$((offset + 1)) "$work/maillog" | grep -cE 'milter-reject|: reject:')
  seen=$(( $(ticket_lines) - seen ))
  awk -v d="$delivered" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" -v r="$rejected" -v m="$seen" \
      -v b0="$busy0" -v b1="$busy1" \
    'BEGIN { s = t1 - t0; printf "%d %.2f %.1f %.3f %d %d %.3f\n", d, s, d / s, d ? (c1 - c0) * 1000 / d : 0, r, m,
             d ? (b1 - b0) * 1000 / d : 0 }'
}

echo "run-postfix: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo);" \
  "$mails mails of $(stat -c %s "$msg") bytes, $sessions sessions, $rounds rounds" >&2
run bare 200 > /dev/null   # warm-up: caches, Postfix processes, not counted

setups="bare null"
[ -n "$with_edits" ] && setups="$setups edits"
[ -n "$TICKET_MILTER" ] && setups="$setups ticket"
results=$work/results
: > "$results"
for round in $(seq 1 "$rounds"); do
  for setup in $setups; do
    line=$(run "$setup" "$mails") || exit 1
    echo "$round $setup $line" >> "$results"
    echo "run-postfix: round $round $setup: $line (delivered seconds mails/s milter_cpu_ms/mail rejected ticket-milter_mails machine_cpu_ms/mail)" >&2
  done
done

# Every mail of a ticket-milter run, and none of the others, went through it.
awk '{ want = ($2 == "ticket") ? $3 : 0 } $8 != want {
  printf "run-postfix: warning: round %s %s: %d mails delivered, %d seen by ticket-milter\n", $1, $2, $3, $8 }' \
  "$results" >&2

# ---- the table ----------------------------------------------------------------------
cell () {  # cell ROUND SETUP: "rate" or "rate (delivered/sent)" when mail was lost
  awk -v r="$1" -v s="$2" -v n="$mails" '$1 == r && $2 == s {
    if ($3 == n) printf "%.0f", $5; else printf "%.0f (%d/%d delivered)", $5, $3, n; f = 1 }
    END { if (!f) printf "n/a" }' "$results"
}
median_of () {  # median_of SETUP FIELD over the rounds
  awk -v s="$1" -v f="$2" '$2 == s { print $f }' "$results" | sort -g | awk '
    { v[NR] = $1 } END { if (!NR) print "n/a"; else printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio () { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo
echo "| round | bare Postfix (mails/s) | null-milter (mails/s) | ticket-milter (mails/s) | ticket / null | ticket / bare |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  b=$(cell "$round" bare) n=$(cell "$round" null) t=$(cell "$round" ticket)
  echo "| $round | $b | $n | $t | $(ratio "${t%% *}" "${n%% *}") | $(ratio "${t%% *}" "${b%% *}") |"
done
mb=$(median_of bare 5) mn=$(median_of null 5) mt=$(median_of ticket 5)
printf '| median | %.0f | %.0f | %s | %s | %s |\n' "$mb" "$mn" \
  "$( [ "$mt" = n/a ] && echo n/a || printf '%.0f' "$mt")" "$(ratio "$mt" "$mn")" "$(ratio "$mt" "$mb")"
echo
echo "null-milter / bare (median): $(ratio "$mn" "$mb")"
printf "milter CPU per mail (median): null-milter %s ms, ticket-milter %s ms\n" "$(median_of null 6)" "$(median_of ticket 6)"
printf "machine CPU per mail (median, every process and the kernel): bare %s ms, null-milter %s ms, ticket-milter %s ms%s\n" \
  "$(median_of bare 9)" "$(median_of null 9)" "$(median_of ticket 9)" \
  "$([ -n "$with_edits" ] && printf ', null-milter -e %s ms' "$(median_of edits 9)")"
if [ -n "$with_edits" ]; then
  echo
  echo "| round | null-milter -e (mails/s) | -e / null | ticket / -e |"
  echo "|---|---|---|---|"
  for round in $(seq 1 "$rounds"); do
    n=$(cell "$round" null) e=$(cell "$round" edits) t=$(cell "$round" ticket)
    echo "| $round | $e | $(ratio "${e%% *}" "${n%% *}") | $(ratio "${t%% *}" "${e%% *}") |"
  done
  me=$(median_of edits 5)
  printf '| median | %.0f | %s | %s |\n' "$me" "$(ratio "$me" "$mn")" "$(ratio "$mt" "$me")"
  printf "null-milter -e CPU per mail (median): %s ms\n" "$(median_of edits 6)"
fi
if [ -n "$TICKET_MILTER" ]; then
  grep -o 'eom_ms=[0-9.]*' "$work/ticket-milter.log" | cut -d= -f2 | sort -n > "$work/eom_ms"
  awk '{ v[NR] = $1 } END {
    if (!NR) { print "ticket-milter eom_ms: no eom_ms= lines in its log"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    p = int(NR * 0.99 + 0.999999); if (p > NR) p = NR
    printf "ticket-milter eom_ms over %d mails: median %.2f, p99 %.2f, max %.2f\n", NR, m, v[p], v[NR] }' "$work/eom_ms"
  echo "ticket-milter log lines for mails: $(grep -c 'class=' "$work/ticket-milter.log")," \
    "tickets in the store: $("$(tm_bin ticketctl)" -c "$work/ticket-milter.conf" list --json 2> /dev/null | "${JQ:-jq}" length 2> /dev/null || echo '?')"
fi
if [ -s "$work/smtp-source.err" ]; then
  echo "smtp-source complained (first lines):"; head -n 5 "$work/smtp-source.err"
fi
