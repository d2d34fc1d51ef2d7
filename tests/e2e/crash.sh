#!/bin/sh
# tests/e2e/crash.sh - SIGKILL the daemon again and again while Postfix feeds it mail.
#
# Two private Postfix instances (tests/postfix-lib.sh):
#   front  no filter; it takes the feeder's mail and relays all of
#          example.test to back over SMTP. It is the MTA that keeps a mail
#          and retries it after a 4xx, as a real sender would (short
#          queue_run_delay and backoff so that retries come within seconds).
#   back   smtpd_milters = ticket-milter, milter_default_action = tempfail:
#          while the daemon is dead, or when it dies in the middle of a
#          session, the mail gets a 4xx and stays in front's queue. It
#          delivers to maildirs: support@ (the queue) and customer+N@ (the
#          acknowledgements, which the daemon's outbox workers send back into
#          back over SMTP; recipient_delimiter = + puts them all in one
#          maildir).
# The daemon runs with [store] synchronous = full. A feeder (python3
# smtplib, several parallel sessions) sends N mails, each with its own
# Message-ID and sender, so each must make a new ticket; meanwhile a killer
# sends SIGKILL to the daemon every 0.3-1.5 s (random) and restarts it at
# once, K times. Then the daemon is started for good, the queues are flushed
# until nothing is left, and we check:
#   - every mail front accepted was delivered to support@ exactly once, with
#     one X-Ticket-ID; the Message-IDs in the database are exactly those;
#     each is on one ticket, the delivered X-Ticket-ID is that ticket, and
#     there are as many tickets as mails (no orphan ticket from a mail whose
#     retry was not recognised);
#   - one acknowledgement in the outbox per ticket, all sent, and exactly
#     one delivered per ticket: none lost, none twice (a duplicate prints
#     the daemon's and Postfix's log lines about it), and any duplicate is
#     at least explained by an ack-interrupted event on its ticket;
#   - PRAGMA integrity_check says ok and PRAGMA foreign_key_check nothing.
# Figures (mails, kills, tempfails, retries recognised, duration) are TAP
# comments. CRASH_MAILS, CRASH_SESSIONS and CRASH_KILLS change the load;
# Acknowledgements delivered twice are reported as TODO by default: delivery
# over SMTP is at least once (a kill between the MTA's 250 and our commit
# of it cannot be told from one before the 250), so what is asserted is that
# every duplicate is explained by an ack-interrupted event on its ticket.
# CRASH_DUPLICATE_ACKS=fail makes any duplicate a failure.
# Needs root, postfix, python3, sqlite3 and jq; skips otherwise.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"
# Byte order for sort and comm, as SQLite's BINARY collation.
LC_ALL=C; export LC_ALL

why=$(pf_usable) || tap_skip_all "$why"
command -v python3 > /dev/null 2>&1 || tap_skip_all "python3 is not installed"
SQLITE3=${SQLITE3:-$(command -v sqlite3 || true)}
[ -n "$SQLITE3" ] || tap_skip_all "sqlite3 is not installed"
JQ=${JQ:-$(command -v jq || true)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
MILTER=$(tm_bin ticket-milter)
TICKETCTL=$(tm_bin ticketctl)
command -v "$MILTER" > /dev/null 2>&1 || tap_skip_all "ticket-milter is not built"
command -v "$TICKETCTL" > /dev/null 2>&1 || tap_skip_all "ticketctl is not built"

mails=${CRASH_MAILS:-400}
sessions=${CRASH_SESSIONS:-8}
kills=${CRASH_KILLS:-25}
templates=${TM_TEMPLATE_DIR:-$top_srcdir/templates}

front=$(tm_workdir)
back=$(tm_workdir)
work=$(tm_workdir)
sock=$work/milter.sock
conf=$work/ticket-milter.conf
db=$work/tickets.db
mlog=$work/milter.log
run=crash$$
milter_pid=
feeder_pid=

stop_everything () {
  if [ -n "$feeder_pid" ]; then
    kill "$feeder_pid" 2> /dev/null; wait "$feeder_pid" 2> /dev/null; feeder_pid=
  fi
  if [ -n "$milter_pid" ]; then
    kill -TERM "$milter_pid" 2> /dev/null; wait "$milter_pid" 2> /dev/null; milter_pid=
  fi
  pf_stop "$front"; pf_stop "$back"
}
tm_on_exit stop_everything
show_logs () {
  [ "$tap_failed" -eq 0 ] && return 0
  echo "# ---- ticket-milter stderr, last 60 lines ($mlog)"
  tail -n 60 "$mlog" 2> /dev/null | sed 's/^/# /'
  echo "# ---- back Postfix (the filtered one), last 40 lines"
  pf_log "$back" "# " | tail -n 40
  echo "# ---- front Postfix, last 20 lines"
  pf_log "$front" "# " | tail -n 20
}
tm_on_exit show_logs

cat > "$conf" <<EOC
[milter]
socket = unix:$sock
user =
socket_mode = 0666
on_error = tempfail
[store]
path = $db
synchronous = full
[templates]
dir = $templates
[smtp]
url = smtp://127.0.0.1:PORT
connect_timeout = 2s
timeout = 5s
retry_min = 1s
retry_max = 2s
[queue support]
address = support@example.test
# Every customer here is new; the limit has its own tests.
ack_rate_limit = 0
EOC

start_milter () { pf_start_milter "$conf" "$sock" "$mlog"; }
ctl () { "$TICKETCTL" -c "$conf" "$@"; }
sql () { "$SQLITE3" -batch -noheader "$db" "$@"; }
# A random pause between 0.3 and 1.5 s, as "S.mmm".
random_pause () {
  od -An -N2 -tu2 /dev/urandom | awk '{ printf "%.3f\n", (300 + $1 % 1201) / 1000 }'
}

# ---- the feeder ----------------------------------------------------------------------
# feeder.py HOST PORT MAILS SESSIONS RUN OUT: MAILS mails in SESSIONS parallel
# SMTP sessions, a random pause of up to 0.6 s between two mails of a session
# so that the feed overlaps the killing. Writes "accepted MSGID" or
# "refused MSGID CODE TEXT" to OUT, one line a mail, and its duration in
# seconds to OUT.seconds.
cat > "$work/feeder.py" <<'EOP'
import random, smtplib, sys, threading, time
host, port, total, sessions, run, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
lock = threading.Lock()
results = open(out, 'w')

def record(line):
    with lock:
        results.write(line + '\n')
        results.flush()

def mail(n):
    sender = 'customer+%d@example.test' % n
    msgid = '<%s.%d@client.example.net>' % (run, n)
    text = ('From: Customer %d <%s>\r\nTo: support@example.test\r\n'
            'Subject: Order %d of run %s has not arrived\r\n'
            'Date: Mon, 23 Nov 2026 09:00:00 +0300\r\nMessage-ID: %s\r\n'
            'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n'
            'Hello,\r\n\r\nmy order %d has not arrived yet. Where is it?\r\n\r\n'
            'Customer %d\r\n') % (n, sender, n, run, msgid, n, n)
    return sender, msgid, text

def session(first):
    conn = None
    for n in range(first, total, sessions):
        sender, msgid, text = mail(n)
        try:
            if conn is None:
                conn = smtplib.SMTP(host, port, 'client.example.net', timeout=30)
            conn.sendmail(sender, ['support@example.test'], text)
            record('accepted ' + msgid)
        except smtplib.SMTPResponseException as e:
            record('refused %s %d %s' % (msgid, e.smtp_code, e.smtp_error.decode(errors='replace')))
            try:
                conn.rset()
            except Exception:
                conn = None
        except smtplib.SMTPRecipientsRefused as e:
            code, why = list(e.recipients.values())[0]
            record('refused %s %d %s' % (msgid, code, why.decode(errors='replace')))
            try:
                conn.rset()
            except Exception:
                conn = None
        except (OSError, smtplib.SMTPException) as e:
            record('refused %s 0 %s' % (msgid, e))
            conn = None
        time.sleep(random.uniform(0, 0.6))
    if conn is not None:
        try:
            conn.quit()
        except Exception:
            pass

started = time.time()
threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(out + '.seconds', 'w') as f:
    f.write('%.0f\n' % (time.time() - started))
EOP

# headers.py MAILDIR: for each delivered mail, "FILE<TAB>Message-ID<TAB>X-Ticket-IDs"
# (several X-Ticket-ID values joined with commas).
cat > "$work/headers.py" <<'EOP'
import email, email.policy, os, sys
box = sys.argv[1]
for name in sorted(os.listdir(box)) if os.path.isdir(box) else []:
    with open(os.path.join(box, name), 'rb') as f:
        msg = email.message_from_binary_file(f, policy=email.policy.compat32)
    ids = ','.join(v.strip() for v in (msg.get_all('X-Ticket-ID') or []))
    print('%s\t%s\t%s' % (name, (msg.get('Message-ID') or '').strip(), ids))
EOP

tap_plan 23

# ---- two Postfix instances and the daemon -------------------------------------------------
setup () {
  pf_setup "$front" 0 && pf_setup "$back" 0 || return 1
  # front: a different name (or its smtp client sees back greet with its own
  # name and calls it a mail loop), no local mailboxes, example.test relayed.
  pf_conf "$front" "myhostname = front.example.test" "virtual_mailbox_domains =" \
    "relay_domains = example.test" \
    "transport_maps = inline:{ example.test=smtp:[127.0.0.1]:$(pf_port "$back") }" \
    "queue_run_delay = 1s" "minimal_backoff_time = 1s" "maximal_backoff_time = 2s" || return 1
  pf_conf "$back" "recipient_delimiter = +" || return 1
  pf_set_milter "$back" "unix:$sock" || return 1
  pf_start "$front" && pf_start "$back" || return 1
  sed -i "s|^url = smtp://127.0.0.1:PORT|url = smtp://127.0.0.1:$(pf_port "$back")|" "$conf"
  start_milter
}
setup > "$work/setup.out" 2>&1
tap_status "front Postfix on $(pf_port "$front"), back Postfix on $(pf_port "$back"), ticket-milter" \
  $? "$work/setup.out"
if [ -z "$milter_pid" ]; then
  echo "Bail out! nothing runs"
  exit 1
fi

# ---- feed and kill ----------------------------------------------------------------
started=$(date +%s)
python3 "$work/feeder.py" 127.0.0.1 "$(pf_port "$front")" "$mails" "$sessions" "$run" \
  "$work/fed" > "$work/feeder.out" 2>&1 &
feeder_pid=$!

killed=0
restart_failures=0
: > "$work/restart.out"
while [ $killed -lt "$kills" ]; do
  sleep "$(random_pause)"
  kill -KILL "$milter_pid" 2> /dev/null
  wait "$milter_pid" 2> /dev/null
  killed=$((killed + 1))
  # A marker in the daemon's log: what it wrote before was cut short here.
  echo "=== crash.sh: SIGKILL $killed at $(date +%T.%N | cut -c1-12)" >> "$mlog"
  if ! start_milter >> "$work/restart.out" 2>&1; then
    restart_failures=$((restart_failures + 1))
    sleep 0.5
    start_milter >> "$work/restart.out" 2>&1 || break
  fi
done
kill_end=$(date +%s)
wait "$feeder_pid"; feeder_status=$?; feeder_pid=

tap_is "the killer sent SIGKILL $kills times and the daemon always came back" \
  "$killed $restart_failures $([ -n "$milter_pid" ] && kill -0 "$milter_pid" 2> /dev/null && echo up)" \
  "$kills 0 up"
[ -s "$work/restart.out" ] && sed 's/^/# restart: /' "$work/restart.out"
tap_status "the feeder ran to its end" "$feeder_status" "$work/feeder.out"
grep '^accepted ' "$work/fed" | cut -d' ' -f2 | sort > "$work/accepted"
# The database keeps Message-IDs without their angle brackets.
sed 's/^<\(.*\)>$/\1/' "$work/accepted" | sort > "$work/accepted-bare"
accepted=$(wc -l < "$work/accepted" | tr -d ' ')
refused=$(grep -c '^refused ' "$work/fed")
echo "# mails sent $mails in $sessions sessions, accepted by front $accepted, refused $refused"
grep '^refused ' "$work/fed" | head -n 5 | sed 's/^/# /'
# front has no filter: it takes everything; only accepted mails count below.
tap_is "front accepted every mail (it has no filter)" "$accepted" "$mails"

# ---- drain -----------------------------------------------------------------
# Until both queues are empty and the outbox has nothing pending, pushing
# front's deferred mail out every few seconds (at most 60 s).
pending_outbox () { ctl outbox --status pending --json 2> /dev/null | $JQ length; }
drained () {
  [ "$(pf__queue_count "$front" maildrop incoming active deferred hold)" = 0 ] &&
    [ "$(pf__queue_count "$back" maildrop incoming active deferred hold)" = 0 ] &&
    [ "$(pending_outbox)" = 0 ]
}
drain () {
  local i=0
  until drained; do
    i=$((i + 1))
    if [ $i -gt 240 ]; then
      echo "still queued after 60 s:"
      echo "front:"; "$PF_POSTQUEUE" -c "$front/etc" -p 2>&1 | tail -n 20
      echo "back:"; "$PF_POSTQUEUE" -c "$back/etc" -p 2>&1 | tail -n 20
      echo "outbox pending: $(pending_outbox)"
      return 1
    fi
    [ $((i % 8)) = 1 ] && "$PF_POSTQUEUE" -c "$front/etc" -f > /dev/null 2>&1
    sleep 0.25
  done
}
drain > "$work/drain.out" 2>&1
tap_status "after the last restart, both queues and the outbox drain" $? "$work/drain.out"
done_at=$(date +%s)

# ---- the mails -----------------------------------------------------------------
python3 "$work/headers.py" "$back/mail/support/new" > "$work/support.tsv"
python3 "$work/headers.py" "$back/mail/customer/new" > "$work/customer.tsv"
cut -f2 "$work/support.tsv" | sort > "$work/delivered"
tap_is "support@ got exactly the accepted mails ($accepted)" \
  "$(comm -3 "$work/accepted" "$work/delivered" | wc -l | tr -d ' ') $(wc -l < "$work/support.tsv" | tr -d ' ')" \
  "0 $accepted"
tap_is "no mail was delivered twice" "$(uniq -d "$work/delivered" | head -n 5)" ""
tap_is "every delivered mail carries exactly one X-Ticket-ID" \
  "$(awk -F '\t' '$3 !~ /^[0-9]+$/' "$work/support.tsv" | head -n 5)" ""

# ---- the database -------------------------------------------------------------------
# The messages table also holds the acknowledgements the desk sent (direction autoreply).
sql "SELECT message_id, ticket_id FROM messages WHERE direction = 'customer'" | tr '|' '\t' | sort > "$work/db-messages.tsv"
tap_is "the messages table holds exactly the accepted Message-IDs, once each" \
  "$(cut -f1 "$work/db-messages.tsv" | comm -3 "$work/accepted-bare" - | head -n 5)" ""
tap_is "each accepted mail is on a ticket of its own, no ticket without its mail" \
  "$(sql "SELECT count(*) FROM tickets") $(sql "SELECT count(DISTINCT ticket_id) FROM messages WHERE direction = 'customer'")" \
  "$accepted $accepted"
tap_is "no Message-ID is on two tickets" \
  "$(sql "SELECT message_id FROM messages GROUP BY message_id HAVING count(*) > 1 LIMIT 5")" ""
# The X-Ticket-ID each mail was delivered with is the ticket it is on.
awk -F '\t' '{ sub(/^</, "", $2); sub(/>$/, "", $2); print $2 "\t" $3 }' "$work/support.tsv" \
  | sort > "$work/delivered-ticket.tsv"
tap_is "the delivered mail's X-Ticket-ID is the ticket that holds it" \
  "$(comm -3 "$work/delivered-ticket.tsv" "$work/db-messages.tsv" | head -n 6)" ""

# ---- the acknowledgements -----------------------------------------------------
sql "SELECT id, ticket_id, message_id, status, attempts FROM outbox WHERE kind IN ('ack', 'after-hours') ORDER BY ticket_id" \
  | tr '|' '\t' > "$work/outbox.tsv"
tap_is "one acknowledgement in the outbox per ticket" \
  "$(wc -l < "$work/outbox.tsv" | tr -d ' ') $(cut -f2 "$work/outbox.tsv" | sort -u | wc -l | tr -d ' ') $(sql "SELECT count(*) FROM outbox")" \
  "$accepted $accepted $accepted"
tap_is "every acknowledgement is marked sent" \
  "$(awk -F '\t' '$4 != "sent"' "$work/outbox.tsv" | head -n 5)" ""
# The acknowledgement Postfix delivered: by its Message-ID and by its X-Ticket-ID.
cut -f2 "$work/customer.tsv" | sort > "$work/acks-by-msgid"
cut -f3 "$work/customer.tsv" | sort > "$work/acks-by-ticket"
cut -f3 "$work/outbox.tsv" | sed 's/^\([^<].*[^>]\)$/<\1>/' | sort > "$work/outbox-msgids"
cut -f2 "$work/outbox.tsv" | sort > "$work/tickets"
lost=$(sort -u "$work/acks-by-msgid" | comm -23 "$work/outbox-msgids" -)
twice=$(uniq -d "$work/acks-by-msgid")
lost_n=$(printf '%s' "$lost" | grep -c .)
twice_n=$(printf '%s' "$twice" | grep -c .)
echo "# acknowledgements: $(wc -l < "$work/customer.tsv" | tr -d ' ') delivered for $accepted tickets, $lost_n lost, $twice_n delivered twice or more"
tap_is "no acknowledgement is lost (each outbox Message-ID was delivered)" "$(printf '%s' "$lost" | head -n 5)" ""
# tap_is_once NAME GOT WANT: tap_is for "none twice"; with
# CRASH_DUPLICATE_ACKS=todo a failure is reported as TODO (an expected
# failure of at-least-once delivery) instead of failing the test.
tap_is_once () {
  if [ "${CRASH_DUPLICATE_ACKS:-todo}" = todo ] && [ "$2" != "$3" ]; then
    tap_count=$((tap_count + 1))
    echo "not ok $tap_count - $1 # TODO delivery is at least once"
    printf '# got:  %s\n# want: %s\n' "$2" "$3"
  else
    tap_is "$@"
  fi
}
tap_is_once "no acknowledgement is delivered twice (by Message-ID)" "$(printf '%s' "$twice" | head -n 5)" ""
tap_is "no ticket without its acknowledgement (by X-Ticket-ID)" \
  "$(sort -u "$work/acks-by-ticket" | comm -3 - "$work/tickets" | head -n 5)" ""
tap_is_once "no ticket with two acknowledgements (by X-Ticket-ID)" \
  "$(uniq -d "$work/acks-by-ticket" | head -n 5)" ""
tap_is "nothing but acknowledgements reached the customers (no bounce)" \
  "$(sort -u "$work/acks-by-msgid" | comm -13 "$work/outbox-msgids" - | head -n 5)" ""

# For each acknowledgement delivered twice: what the daemon and Postfix logged.
# The daemon's lines are those of the outbox row and of back's queue ids for
# the copies (the daemon filters the acknowledgement too), with the SIGKILL
# markers just before and after them.
explain_duplicate () {
  local msgid=$1 row qids q
  row=$(awk -F '\t' -v m="$msgid" '("<" $3 ">" == m || $3 == m) { print $1 " " $2 " " $5 }' "$work/outbox.tsv")
  set -- $row
  qids=$(grep -F "message-id=$msgid" "$back/maillog" | sed -n 's/.*: \([0-9A-F][0-9A-F]*\): message-id=.*/\1/p')
  echo "# ---- ack $msgid delivered twice: outbox row $1, ticket $2, attempts $3"
  echo "# the daemon's log:"
  awk -v row="outbox: ack $1 for ticket " -v qids="$(echo $qids)" '
    BEGIN { n = split(qids, q, " ") }
    /^=== crash.sh: SIGKILL/ { last = $0; if (want) { print "#   " $0; printed = $0; want = 0 } next }
    { hit = index($0, row) > 0
      for (i = 1; i <= n; i++) if (index($0, " " q[i] ": ") > 0) hit = 1 }
    hit { if (last != "" && last != printed) { print "#   " last; printed = last }
          print "#   " $0; want = 1 }' "$mlog"
  echo "# back Postfix, the copies $(echo $qids):"
  for q in $qids; do grep -F " $q: " "$back/maillog" | sed 's/^/#   /'; done
}
for m in $twice; do explain_duplicate "$m"; done
# Delivery is at least once: a mail the daemon was handing to the MTA when it
# died is sent again at the next start, and the ticket gets an
# ack-interrupted event. A duplicate without one is unexplained.
sql "SELECT DISTINCT ticket_id FROM events WHERE kind = 'ack-interrupted'" | sort > "$work/interrupted"
uniq -d "$work/acks-by-ticket" | sort > "$work/twice-tickets"
echo "# deliveries interrupted by a SIGKILL and sent again: $(wc -l < "$work/interrupted" | tr -d ' '), of which delivered twice: $(comm -12 "$work/interrupted" "$work/twice-tickets" | wc -l | tr -d ' ')"
tap_is "every acknowledgement delivered twice has an ack-interrupted event on its ticket" \
  "$(comm -23 "$work/twice-tickets" "$work/interrupted" | head -n 5)" ""

# ---- SQLite after $kills crashes -------------------------------------------------------
tap_is "PRAGMA integrity_check: ok" "$(sql "PRAGMA integrity_check")" ok
tap_is "PRAGMA foreign_key_check: nothing" "$(sql "PRAGMA foreign_key_check" | head -n 5)" ""

# ---- figures ------------------------------------------------------------------
retried=$(grep -c 'duplicate=yes' "$mlog")
deferred=$(grep -c 'status=deferred' "$front/maillog")
deferred_eom=$(grep 'status=deferred' "$front/maillog" | grep -c 'end of DATA')
rejected=$(grep -c 'milter-reject\|4\.7\.1 Service unavailable\|451 4\.7\.1' "$back/maillog")
ack_deferred=$(grep -c 'outbox: ack [0-9]* for ticket [0-9]* to .* deferred' "$mlog")
retries=$(awk -F '\t' '$5 > 1 { n++ } END { print n + 0 }' "$work/outbox.tsv")
echo "# kills $killed in $((kill_end - started)) s; the feed took $(cat "$work/fed.seconds" 2> /dev/null) s; all drained after $((done_at - started)) s"
echo "# tempfails: front deferred a delivery $deferred times ($deferred_eom at the end of DATA); back logged $rejected milter tempfails"
echo "# retried mails recognised as duplicates (same ticket, no second ack): $retried"
echo "# acknowledgements deferred $ack_deferred times; $retries needed more than one attempt"

# ---- the daemon stops cleanly at the end ----------------------------------------------
kill -TERM "$milter_pid"
wait "$milter_pid"; status=$?
milter_pid=
tap_is "SIGTERM at the end: the daemon exits with status 0" "$status" 0

tap_done
