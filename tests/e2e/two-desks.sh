#!/bin/sh
# tests/e2e/two-desks.sh - two help desks that write to each other settle.
#
# Desk A: a private Postfix for example.test with ticket-milter and queue
# support@example.test. Desk B: a second Postfix for b.example.test with its
# own ticket-milter and queue helpdesk@b.example.test. Each Postfix routes the
# other's domain to the other over SMTP on loopback, so every acknowledgement
# one desk sends reaches the other desk's queue, where it could be answered
# again. A mail from each desk's address to the other's queue starts it; the
# test counts every mail delivered anywhere and every outbox row, waits, and
# counts again: a bounded, small number of messages, then silence.
# Needs root, postfix, swaks and jq; skips otherwise.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"

why=$(pf_usable) || tap_skip_all "$why"
SWAKS=${SWAKS:-$(command -v swaks || true)}
[ -n "$SWAKS" ] || tap_skip_all "swaks is not installed"
JQ=${JQ:-$(command -v jq || true)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
MILTER=$(tm_bin ticket-milter)
TICKETCTL=$(tm_bin ticketctl)
command -v "$MILTER" > /dev/null 2>&1 || tap_skip_all "ticket-milter is not built"

a=$(tm_workdir)
b=$(tm_workdir)
pid_a= pid_b=
stop_all () {
  for p in $pid_a $pid_b; do kill -TERM "$p" 2> /dev/null; done
  for p in $pid_a $pid_b; do wait "$p" 2> /dev/null; done
  pid_a= pid_b=
  pf_stop "$a"; pf_stop "$b"
}
tm_on_exit stop_all
show_logs () {
  [ "$tap_failed" -eq 0 ] && return 0
  for d in "$a" "$b"; do
    echo "# ---- $d: ticket-milter"; sed 's/^/# /' "$d/milter.log" 2> /dev/null
    echo "# ---- $d: Postfix"; pf_log "$d" "# "
  done
}
tm_on_exit show_logs

# desk_config DIR QUEUE-ADDRESS: the desk's daemon configuration.
desk_config () {
  cat > "$1/ticket-milter.conf" <<EOC
[milter]
socket = unix:$1/milter.sock
user =
socket_mode = 0666
[store]
path = $1/tickets.db
[templates]
dir = $top_srcdir/templates
[smtp]
url = smtp://127.0.0.1:$(pf_port "$1")
retry_min = 1s
[queue support]
address = $2
# Answer every mail that may be answered: the limit must not be what
# stops the ping-pong.
ack_rate_limit = 0
ack_followups = yes
EOC
}

start_desk () { # DIR
  local milter_pid=
  pf_start_milter "$1/ticket-milter.conf" "$1/milter.sock" "$1/milter.log" \
    || { echo "desk $1 did not start"; return 1; }
  echo "$milter_pid" > "$1/milter.pid"
}

# Everything delivered or queued anywhere, and every outbox row of both desks.
traffic () {
  local n=0 d box
  for d in "$a" "$b"; do
    for box in "$d"/mail/*/new; do
      [ -d "$box" ] && n=$((n + $(ls "$box" | wc -l)))
    done
  done
  echo "$n $("$TICKETCTL" -c "$a/ticket-milter.conf" outbox --json | $JQ length)" \
    "$("$TICKETCTL" -c "$b/ticket-milter.conf" outbox --json | $JQ length)"
}

tap_plan 9

setup () {
  pf_setup "$a" 0 && pf_setup "$b" 0 || return 1
  # B is b.example.test, with one mailbox: the desk's queue.
  pf_conf "$b" "myhostname = mx.b.example.test" "mydomain = b.example.test" \
    "virtual_mailbox_domains = b.example.test" \
    "virtual_mailbox_maps = inline:{ helpdesk@b.example.test=helpdesk/ }" \
    "transport_maps = inline:{ example.test=smtp:[127.0.0.1]:$(pf_port "$a") }" || return 1
  pf_conf "$a" "transport_maps = inline:{ b.example.test=smtp:[127.0.0.1]:$(pf_port "$b") }" || return 1
  pf_set_milter "$a" "unix:$a/milter.sock" && pf_set_milter "$b" "unix:$b/milter.sock" || return 1
  pf_start "$a" && pf_start "$b" || return 1
  desk_config "$a" support@example.test
  desk_config "$b" helpdesk@b.example.test
  start_desk "$a" && start_desk "$b" || return 1
  pid_a=$(cat "$a/milter.pid") pid_b=$(cat "$b/milter.pid")
}
setup > "$a/setup.out" 2>&1
tap_ok "two desks, each with its own Postfix and ticket-milter" sh -c 'cat "$1"; exit "$2"' - "$a/setup.out" $?

cat > "$a/start.eml" <<EOF
From: Desk B <helpdesk@b.example.test>
To: support@example.test
Subject: Please confirm the shipment
Message-ID: <start-b.$$@b.example.test>

Desk B asks desk A a question.
EOF
cat > "$b/start.eml" <<EOF
From: Desk A <support@example.test>
To: helpdesk@b.example.test
Subject: Invoice question
Message-ID: <start-a.$$@example.test>

Desk A asks desk B a question.
EOF
tap_ok "desk B's address writes to desk A's queue" "$SWAKS" --server 127.0.0.1 \
  --port "$(pf_port "$a")" --from helpdesk@b.example.test --to support@example.test \
  --data "@$a/start.eml" --silent 2
tap_ok "desk A's address writes to desk B's queue" "$SWAKS" --server 127.0.0.1 \
  --port "$(pf_port "$b")" --from support@example.test --to helpdesk@b.example.test \
  --data "@$b/start.eml" --silent 2

# Settled when the count has not moved for 5 s (polled for at most 60 s).
settle () {
  local last="" same=0 i=0 now
  while [ $i -lt 120 ]; do
    now=$(traffic)
    if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
    [ $same -ge 10 ] && { echo "$now"; return 0; }
    i=$((i + 1)); sleep 0.5
  done
  echo "still moving: $now"; return 1
}
first=$(settle)
tap_ok "the traffic stops" sh -c "case '$first' in still*) exit 1 ;; esac"
# Four mails delivered: each question, each desk's acknowledgement of it.
# Each acknowledgement reached the other desk's queue and was not answered.
tap_is "four mails delivered, one acknowledgement in each outbox" "$first" "4 1 1"
sleep 5
tap_is "and silence afterwards" "$(traffic)" "$first"
tap_ok "desk A saw B's acknowledgement as automated and did not answer it" \
  grep -q 'class=automated reason=null-sender.* ack=no:null-sender' "$a/milter.log"
tap_ok "desk B saw A's acknowledgement as automated and did not answer it" \
  grep -q 'class=automated reason=null-sender.* ack=no:null-sender' "$b/milter.log"
tap_is "nothing was lost: each desk holds the question and the other's acknowledgement" \
  "$("$TICKETCTL" -c "$a/ticket-milter.conf" list --json | $JQ length) $("$TICKETCTL" -c "$b/ticket-milter.conf" list --json | $JQ length)" "2 2"
