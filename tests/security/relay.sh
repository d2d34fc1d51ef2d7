#!/bin/sh
# tests/security/relay.sh - the desk is no relay: it writes only to the
# customer's own address, once per rate-limit period, and routes only to
# configured team mailboxes.
#
# With `ticketctl simulate --commit` (the pipeline the daemon runs) and the
# outbox it fills:
#   - To, Cc and Bcc headers and extra envelope recipients full of outside
#     addresses: one acknowledgement, to the sender, and nothing added to
#     the envelope but the team mailbox;
#   - 20 mails with a forged victim's From (in several spellings): one
#     acknowledgement to the victim, 19 refused by the rate limit;
#   - forged X-Ticket-Team, -ID, -Queue, -Customer headers change nothing;
#   - a From with several mailboxes, or a group: one acknowledgement, to the
#     first mailbox; an empty group: to the envelope sender;
#   - Reply-To counts only for a configured contact form (form_senders);
#   - an authenticated agent's mail, a mail to two queues, a stranger's
#     reply with another customer's ticket tag: nothing sent to anyone the
#     mail chose;
#   - over all of them: every added envelope recipient is a team mailbox and
#     no address got two acknowledgements.
# Then the same through a real Postfix and the daemon (when root, postfix and
# swaks are there): the Bcc'd, Cc'd and forged-From victims find exactly what
# the outbox says in their maildirs.
# Needs jq; the Postfix half needs root, postfix and swaks.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"

JQ=${JQ:-$(command -v jq || true)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
TICKETCTL=$(tm_bin ticketctl)
MILTER=$(tm_bin ticket-milter)
command -v "$TICKETCTL" > /dev/null 2>&1 || tap_skip_all "ticketctl is not built"

work=$(tm_workdir)
conf=$work/ticket-milter.conf
cat > "$conf" <<EOC
[store]
path = $work/tickets.db
[templates]
dir = $top_srcdir/templates
[queue support]
address = support@example.test
team = frontline
ack_rate_limit = 1h
form_senders = form@example.test
[queue billing]
address = billing@example.test
tag_prefix = Bill
team = accounts
[team frontline]
mailbox = frontline@example.test
agents = alice@example.test
[team accounts]
mailbox = accounts@example.test
EOC
ctl () { "$TICKETCTL" -c "$conf" "$@"; }

# mk FILE HEADER-LINE...: a mail with those headers, a Date, a unique
# Message-ID unless one is given, and a short body.
serial=0
mk () {
  local file=$1
  shift
  serial=$((serial + 1))
  {
    for line in "$@"; do printf '%s\n' "$line"; done
    case "$*" in *Message-ID:*) ;; *) printf 'Message-ID: <relay-%d@example.net>\n' "$serial" ;; esac
    printf 'Date: Mon, 23 Nov 2026 09:00:00 +0300\n\nPlease help.\n'
  } > "$file"
}
# sim NAME [SIMULATE OPTIONS...] FILE: simulate --commit; the JSON in
# $work/NAME.json and appended to $work/all.json. The clock moves a minute
# per mail, all within the hour of the rate limit.
minute=0
sim () {
  local name=$1
  shift
  minute=$((minute + 1))
  ctl simulate --commit --now "$(printf '2026-11-23T09:%02d:00+03:00' "$minute")" "$@" \
    > "$work/$name.json" 2> "$work/$name.err"
  cat "$work/$name.json" >> "$work/all.json"
}
field () { $JQ -r "$2" "$work/$1.json"; }
outbox_rows () { ctl outbox --json 2> /dev/null | $JQ -r 'length'; }
outbox_to () { ctl outbox --json 2> /dev/null | $JQ -r --arg to "$1" '[.[] | select(.to == $to)] | length'; }

postfix_checks=9
tap_plan $((16 + postfix_checks))

# --- To, Cc, Bcc and the envelope full of outside addresses ---------------------------
mk "$work/flood.eml" "From: Eve <eve@example.net>" \
  "To: support@example.test, a1@outside.example, a2@outside.example" \
  "Cc: c1@outside.example, \"Team\" <c2@outside.example>" "Bcc: b1@outside.example" \
  "Subject: hello"
sim flood --from eve@example.net --rcpt support@example.test --rcpt x1@outside.example \
  --rcpt x2@outside.example "$work/flood.eml"
tap_is "To/Cc/Bcc full of outside addresses: one acknowledgement, to the sender" \
  "$(field flood '(.autoreply.send|tostring) + " " + .autoreply.to')" "true eve@example.net"
tap_is "... the envelope gains the team mailbox only, and loses only the queue address" \
  "$(field flood '(.recipients.add|join(",")) + " / " + (.recipients.remove|join(","))')" \
  "frontline@example.test / support@example.test"
tap_is "... the outbox holds one mail, to the sender" "$(outbox_rows) $(outbox_to eve@example.net)" "1 1"

# --- 20 mails with a forged victim's From -----------------------------------------------
i=0
for from in "victim@victim.example" "VICTIM@Victim.Example" "Victim <victim@victim.example>" \
    "<victim@victim.example>" "victim@victim.example (The Victim)" "\"V.\" <Victim@VICTIM.example>"; do
  for round in 1 2 3 4; do
    i=$((i + 1))
    [ $i -gt 20 ] && break
    mk "$work/forged$i.eml" "From: $from" "To: support@example.test" "Subject: spam run $i"
    sim "forged$i" --from "bounce$i@attacker.example" --rcpt support@example.test "$work/forged$i.eml"
  done
done
tap_is "20 forged mails make 20 tickets" \
  "$(cat "$work"/forged*.json | $JQ -s '[.[] | select(.ticket.new)] | length')" "20"
tap_is "... and one acknowledgement to the victim; the rate limit refuses 19" \
  "$(outbox_to victim@victim.example) $(cat "$work"/forged*.json | $JQ -rs '[.[] | select(.autoreply.reason == "rate-limit")] | length')" \
  "1 19"
# Each +detail spelling is another address to the rate limit (a measurement,
# not a check: whether those count as one customer is a policy question).
for i in 1 2 3; do
  mk "$work/plus$i.eml" "From: victim+$i@victim.example" "To: support@example.test" "Subject: plus $i"
  sim "plus$i" --from attacker@attacker.example --rcpt support@example.test "$work/plus$i.eml"
done
echo "# victim+N@victim.example: $(cat "$work"/plus*.json | $JQ -s '[.[] | select(.autoreply.send)] | length') of 3 acknowledged (the rate limit keys on the whole address)"

# --- forged X-Ticket-* headers ---------------------------------------------------------
mk "$work/forged-headers.eml" "From: eve2@example.net" "To: support@example.test" \
  "Subject: route me" "X-Ticket-Team: accounts" "X-Ticket-ID: 1" "X-Ticket-Queue: billing" \
  "X-Ticket-Customer: victim@victim.example" "X-Ticket-Tags: vip" "X-Ticket-Priority: urgent"
sim forged-headers --from eve2@example.net --rcpt support@example.test "$work/forged-headers.eml"
tap_is "forged X-Ticket-* headers add no recipient and change no route" \
  "$(field forged-headers '(.recipients.add|join(",")) + " " + .headers["X-Ticket-Team"] + " " + .headers["X-Ticket-Queue"] + " " + (.ticket.new|tostring) + " " + .autoreply.to')" \
  "frontline@example.test frontline support true eve2@example.net"

# --- several mailboxes, groups ----------------------------------------------------------
mk "$work/two-from.eml" "From: first@example.net, victim2@victim.example" \
  "To: support@example.test" "Subject: two authors"
sim two-from --from first@example.net --rcpt support@example.test "$work/two-from.eml"
mk "$work/group.eml" "From: friends: g1@example.net, victim3@victim.example;" \
  "To: support@example.test" "Subject: a group"
sim group --from g1@example.net --rcpt support@example.test "$work/group.eml"
mk "$work/empty-group.eml" "From: undisclosed-recipients:;" "To: support@example.test" \
  "Subject: nobody"
sim empty-group --from env@example.net --rcpt support@example.test "$work/empty-group.eml"
tap_is "From with two mailboxes, a group, an empty group: the first mailbox or the envelope sender" \
  "$(field two-from .autoreply.to) $(field group .autoreply.to) $(field empty-group .autoreply.to)" \
  "first@example.net g1@example.net env@example.net"
tap_is "... and nothing to the others" \
  "$(outbox_to victim2@victim.example) $(outbox_to victim3@victim.example)" "0 0"

# --- Reply-To ---------------------------------------------------------------------------
mk "$work/reply-to.eml" "From: eve3@example.net" "Reply-To: victim4@victim.example" \
  "To: support@example.test" "Subject: answer elsewhere"
sim reply-to --from eve3@example.net --rcpt support@example.test "$work/reply-to.eml"
tap_is "Reply-To from an ordinary sender is not used" \
  "$(field reply-to .autoreply.to) $(outbox_to victim4@victim.example)" "eve3@example.net 0"
mk "$work/form.eml" "From: Website <form@example.test>" \
  "Reply-To: client@example.net, victim5@victim.example" "To: support@example.test" \
  "Subject: contact form"
sim form --from form@example.test --rcpt support@example.test "$work/form.eml"
tap_is "a configured contact form: its Reply-To's first address is the customer" \
  "$(field form '.autoreply.to + " " + (.ticket.id|tostring)') $(outbox_to victim5@victim.example)" \
  "client@example.net $(field form .ticket.id) 0"
ctl show --json "$(field form .ticket.id)" > "$work/form-ticket.json" 2> /dev/null
tap_is "... and the ticket's customer" "$($JQ -r .customer_address "$work/form-ticket.json")" \
  "client@example.net"
mk "$work/fake-form.eml" "From: form@example.test" "Reply-To: victim6@victim.example" \
  "To: support@example.test" "Subject: pretending to be the form"
sim fake-form --from attacker@attacker.example --rcpt support@example.test "$work/fake-form.eml"
echo "# a forged From: form@example.test sends the acknowledgement to its Reply-To ($(field fake-form .autoreply.to)): no more than forging From: itself would"

# --- agents, two queues, other customers' tickets ---------------------------------------
rows=$(outbox_rows)
mk "$work/agent.eml" "From: alice@example.test" "To: outsider@outside.example" \
  "Cc: support@example.test" "Subject: from an agent"
sim agent --from alice@example.test --auth alice@example.test --rcpt outsider@outside.example \
  --rcpt support@example.test "$work/agent.eml"
tap_is "an authenticated agent's mail: nothing queued, nothing added" \
  "$(field agent '.class + " " + (.autoreply.send|tostring) + " " + (.recipients.add|length|tostring)') $(($(outbox_rows) - rows))" \
  "agent false 0 0"
rows=$(outbox_rows)
mk "$work/two-queues.eml" "From: both@example.net" "To: support@example.test, billing@example.test" \
  "Subject: for both queues"
sim two-queues --from both@example.net --rcpt support@example.test --rcpt billing@example.test \
  "$work/two-queues.eml"
tap_is "a mail to two queues: one ticket, one acknowledgement" \
  "$(field two-queues '.autoreply.to') $(($(outbox_rows) - rows))" "both@example.net 1"
rows=$(outbox_rows)
eve_ticket=$(field flood .ticket.id)
mk "$work/stranger.eml" "From: mallory@outside.example" "To: support@example.test" \
  "Subject: Re: [Ticket#$eve_ticket] hello" "Cc: eve@example.net"
sim stranger --from mallory@outside.example --rcpt support@example.test "$work/stranger.eml"
tap_is "a stranger writing on another customer's ticket: sent to nobody, routed to the team" \
  "$(field stranger '(.ticket.id|tostring) + " " + (.autoreply.send|tostring) + " " + (.recipients.add|join(","))') $(($(outbox_rows) - rows))" \
  "$eve_ticket false frontline@example.test 0"

# --- over everything --------------------------------------------------------------------
tap_is "every recipient any mail added is a team mailbox" \
  "$($JQ -rs '[.[] | .recipients.add[]] | map(select(. != "frontline@example.test" and . != "accounts@example.test")) | length' "$work/all.json")" \
  "0"
tap_is "no address got two acknowledgements" \
  "$(ctl outbox --json 2> /dev/null | $JQ -r 'group_by(.to) | map(select(length > 1) | .[0].to) | join(",")')" ""

# --- through Postfix ---------------------------------------------------------------------
why=$(pf_usable) || why=${why:-"no Postfix"}
SWAKS=${SWAKS:-$(command -v swaks || true)}
[ -n "$SWAKS" ] || why="swaks is not installed"
command -v "$MILTER" > /dev/null 2>&1 || why="ticket-milter is not built"
if [ "$(id -u)" != 0 ] || [ -z "$SWAKS" ] || ! pf_usable > /dev/null; then
  for n in $(seq 1 $postfix_checks); do tap_skip "Postfix check $n" "$why"; done
  tap_done
  exit
fi

PF_MAILBOXES="$PF_MAILBOXES eve victim outsider attacker"
pf=$(tm_workdir)
sock=$pf/milter.sock
pconf=$pf/ticket-milter.conf
mlog=$pf/milter.log
milter_pid=
stop_everything () {
  if [ -n "$milter_pid" ]; then
    kill -TERM "$milter_pid" 2> /dev/null
    wait "$milter_pid" 2> /dev/null
    milter_pid=
  fi
  pf_stop "$pf"
}
tm_on_exit stop_everything
show_logs () {
  [ "$tap_failed" -eq 0 ] && return 0
  echo "# ---- ticket-milter stderr"
  sed 's/^/# /' "$mlog" 2> /dev/null
  echo "# ---- Postfix maillog"
  pf_log "$pf" "# "
}
tm_on_exit show_logs

pf_status=0
{ pf_setup "$pf" 0 && pf_set_milter "$pf" "unix:$sock" && pf_start "$pf"; } > "$pf/setup.log" 2>&1 \
  || pf_status=$?
tap_ok "Postfix starts" sh -c 'cat "$2"; [ "$1" = 0 ]' - "$pf_status" "$pf/setup.log"
cat > "$pconf" <<EOC
[milter]
socket = unix:$sock
user =
socket_mode = 0666
[store]
path = $pf/tickets.db
[templates]
dir = $top_srcdir/templates
[smtp]
url = smtp://127.0.0.1:$(pf_port "$pf")
retry_min = 1s
[queue support]
address = support@example.test
team = frontline
ack_rate_limit = 1h
[team frontline]
mailbox = frontline@example.test
EOC
pf_start_milter "$pconf" "$sock" "$mlog" > "$pf/milter-start.out" 2>&1
tap_ok "ticket-milter listens" pf_unix_listens "$sock"

send () { # FILE FROM RCPTS
  "$SWAKS" --server 127.0.0.1 --port "$(pf_port "$pf")" --helo client.example.net \
    --from "$2" --to "$3" --data "@$1" > "$1.swaks" 2>&1
}
printf 'From: Eve <eve@example.test>\nTo: support@example.test, victim@example.test\nCc: customer@example.test\nBcc: alice@example.test\nSubject: hello desk\nMessage-ID: <pf-flood@example.test>\nDate: Mon, 23 Nov 2026 09:00:00 +0300\n\nhi\n' \
  > "$pf/flood.eml"
sent=0
send "$pf/flood.eml" eve@example.test support@example.test,outsider@example.test && sent=$((sent + 1))
for i in $(seq 1 20); do
  printf 'From: victim@example.test\nTo: support@example.test\nSubject: forged %d\nMessage-ID: <pf-forged-%d@example.test>\nDate: Mon, 23 Nov 2026 09:00:00 +0300\n\nspam\n' \
    "$i" "$i" > "$pf/forged$i.eml"
  send "$pf/forged$i.eml" attacker@example.test support@example.test && sent=$((sent + 1))
done
tap_is "21 mails accepted over SMTP" "$sent" "21"
# The two acknowledgements leave the outbox, then Postfix delivers them.
i=0
until [ "$("$TICKETCTL" -c "$pconf" outbox --json 2> /dev/null | $JQ -r 'map(select(.status == "sent")) | length')" = 2 ]; do
  i=$((i + 1)); [ $i -gt 200 ] && break
  sleep 0.1
done
pf_wait_queue_empty "$pf" > /dev/null 2>&1
tap_is "the outbox: two acknowledgements, to eve and to the victim" \
  "$("$TICKETCTL" -c "$pconf" outbox --json 2> /dev/null | $JQ -r 'map(.to + ":" + .status) | sort | join(" ")')" \
  "eve@example.test:sent victim@example.test:sent"
count () { pf_mailbox_files "$pf" "$1" | wc -l | tr -d ' '; }
# is_ack FILE: an acknowledgement from the desk (Auto-Submitted, null sender).
acks_in () {
  local file n=0
  for file in $(pf_mailbox_files "$pf" "$1"); do
    grep -qi '^Auto-Submitted: auto-replied' "$file" && grep -qi '^Return-Path: <>' "$file" \
      && n=$((n + 1))
  done
  echo "$n"
}
tap_is "eve's maildir: one mail, the acknowledgement" "$(count eve) $(acks_in eve)" "1 1"
tap_is "the forged victim's maildir: one acknowledgement for 20 forged mails" \
  "$(count victim) $(acks_in victim)" "1 1"
tap_is "the Cc'd and Bcc'd addresses received nothing" "$(count customer) $(count alice)" "0 0"
tap_is "outsider (an envelope recipient of the sender's choosing) got the mail itself, no acknowledgement" \
  "$(count outsider) $(acks_in outsider)" "1 0"
tap_is "the team got all 21, routed by the desk" "$(count frontline)" "21"
tap_done
