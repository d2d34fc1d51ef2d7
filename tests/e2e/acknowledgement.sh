#!/bin/sh
# tests/e2e/acknowledgement.sh - acknowledgements through a real Postfix.
#
# A private Postfix (tests/postfix-lib.sh) hands mail to ticket-milter, whose
# outbox worker sends each acknowledgement back into the same Postfix over
# SMTP with libcurl; Postfix delivers it to the customer's maildir, which we
# read back and decode with Python's email package. Checks:
#   - an Arabic mail in windows-1256, a Persian one in UTF-8 and an English
#     one: each customer gets exactly one acknowledgement, in their language,
#     with the ticket tag, Auto-Submitted, In-Reply-To and a null Return-Path;
#   - a mail outside business hours (the daemon's clock fixed with -T) gets
#     the after-hours template saying when the team is back;
#   - faults: the SMTP server down, then a restart with the acknowledgement
#     still in the outbox; a server that accepts and never answers; a 4xx
#     (Postfix's soft_bounce), then a 5xx that is recorded on the ticket and
#     never retried.
# Needs root, postfix, swaks, jq and python3; skips otherwise.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"

why=$(pf_usable) || tap_skip_all "$why"
SWAKS=${SWAKS:-$(command -v swaks || true)}
[ -n "$SWAKS" ] || tap_skip_all "swaks is not installed"
JQ=${JQ:-$(command -v jq || true)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
command -v python3 > /dev/null 2>&1 || tap_skip_all "python3 is not installed"
MILTER=$(tm_bin ticket-milter)
TICKETCTL=$(tm_bin ticketctl)
command -v "$MILTER" > /dev/null 2>&1 || tap_skip_all "ticket-milter is not built"

# Customers with a mailbox in this instance.
PF_MAILBOXES="$PF_MAILBOXES sara reza john nadia omid"
work=$(tm_workdir)
sock=$work/milter.sock
conf=$work/ticket-milter.conf
mlog=$work/milter.log
milter_pid=

stop_milter () {
  [ -n "$milter_pid" ] || return 0
  kill -TERM "$milter_pid" 2> /dev/null
  wait "$milter_pid" 2> /dev/null
  milter_pid=
}
stop_everything () { stop_milter; pf_stop "$work"; }
tm_on_exit stop_everything
show_logs () {
  [ "$tap_failed" -eq 0 ] && return 0
  echo "# ---- ticket-milter stderr ($mlog)"
  sed 's/^/# /' "$mlog" 2> /dev/null
  echo "# ---- Postfix maillog"
  pf_log "$work" "# "
}
tm_on_exit show_logs

# write_config SMTP_URL: the daemon's configuration; retries come fast here.
write_config () {
  cat > "$conf" <<EOC
[milter]
socket = unix:$sock
user =
socket_mode = 0666
[store]
path = $work/tickets.db
[templates]
dir = $top_srcdir/templates
[smtp]
url = $1
connect_timeout = 2s
timeout = 3s
retry_min = 1s
retry_max = 2s
[queue support]
address = support@example.test
display_name = Example Support
first_response = 4h
# Several tests write from one address; the limit has its own unit tests.
ack_rate_limit = 0
[queue billing]
address = billing@example.test
tag_prefix = Bill
language = ar
hours = riyadh
ack_rate_limit = 0
[hours riyadh]
timezone = Asia/Riyadh
days = sun-thu
open = 09:00-17:00
EOC
}

# start_milter [ARGS...]: start with -f and wait until the socket listens.
start_milter () { pf_start_milter "$conf" "$sock" "$mlog" "$@"; }

send () { # NAME FILE FROM RCPT
  "$SWAKS" --server 127.0.0.1 --port "$(pf_port "$work")" --helo client.example.net \
    --from "$3" --to "$4" --data "@$2" > "$work/$1.swaks" 2>&1
}
ctl () { "$TICKETCTL" -c "$conf" "$@"; }
mailbox_count () { pf_mailbox_files "$work" "$1" | wc -l | tr -d ' '; }
newest_mail () { pf_mailbox_files "$work" "$1" | tail -n 1; }

# wait_for FILE-COUNT-COMMAND EXPECTED [SECONDS]: poll until a command prints EXPECTED.
wait_for () {
  local i=0 limit=$((${3:-15} * 10))
  while [ "$(eval "$1")" != "$2" ]; do
    i=$((i + 1)); [ $i -gt $limit ] && return 1
    sleep 0.1
  done
}

# decode FILE FIELD: a field of a delivered mail, decoded (subject, body,
# return-path, auto-submitted, in-reply-to, content-language, from).
decode () {
  python3 - "$1" "$2" <<'EOP'
import email, email.policy, sys
with open(sys.argv[1], 'rb') as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)
field = sys.argv[2]
if field == 'body':
    print(msg.get_body(preferencelist=('plain',)).get_content())
elif field == 'parts':
    print(sum(1 for _ in msg.walk()))
else:
    print(str(msg.get(field, '')).strip())
EOP
}

# mail NAME CHARSET FROM SUBJECT BODY [EXTRA HEADER]: writes $work/NAME.eml,
# the subject as an RFC 2047 word and the body as 8-bit, both in CHARSET.
mail () {
  python3 - "$work/$1.eml" "$2" "$3" "$4" "$5" "${6:-}" <<'EOP'
import sys, email.header, email.utils
path, charset, sender, subject, body, extra = sys.argv[1:7]
name, address = email.utils.parseaddr(sender)
head = ["From: %s" % email.utils.formataddr((name, address), charset='utf-8'), "To: placeholder", "Subject: %s" % email.header.Header(subject, charset).encode(),
        "Date: %s" % email.utils.formatdate(localtime=False),
        "Message-ID: %s" % email.utils.make_msgid(domain="example.test"),
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=%s" % charset,
        "Content-Transfer-Encoding: 8bit"]
if extra:
    head.append(extra)
with open(path, 'wb') as f:
    f.write(("\r\n".join(head) + "\r\n\r\n").encode('ascii') + body.encode(charset) + b"\r\n")
EOP
}

tap_plan 40

if ! out=$(pf_setup "$work" 0 2>&1 && pf_set_milter "$work" "unix:$sock" 2>&1 && pf_start "$work" 2>&1); then
  tap_ok "a private Postfix starts" sh -c 'printf "%s\n" "$1"; exit 1' - "$out"
  echo "Bail out! no private Postfix"
  exit 1
fi
port=$(pf_port "$work")
write_config "smtp://127.0.0.1:$port"
start_milter > "$work/start.out" 2>&1
tap_ok "Postfix on $port and ticket-milter start" sh -c 'cat "$1"; exit "$2"' - "$work/start.out" $?

# ---- Arabic (windows-1256), Persian (UTF-8), English ---------------------------
mail arabic windows-1256 'سارة <sara@example.test>' 'لم تصل فاتورتي لشهر أكتوبر' \
  'مرحبا، لم تصل فاتورتي لشهر أكتوبر. أرجو إرسالها مرة أخرى.'
mail persian utf-8 'رضا <reza@example.test>' 'مشکل در پرداخت' \
  'سلام، پرداخت من انجام نشد و پولم برگشت نخورده است. لطفاً بررسی کنید.'
mail english us-ascii 'John <john@example.test>' 'Cannot log in' 'My password reset link never arrives.'
tap_ok "the Arabic mail is accepted" send arabic "$work/arabic.eml" sara@example.test support@example.test
tap_ok "the Persian mail is accepted" send persian "$work/persian.eml" reza@example.test support@example.test
tap_ok "the English mail is accepted" send english "$work/english.eml" john@example.test support@example.test
tap_ok "three acknowledgements are delivered" wait_for \
  'echo $(mailbox_count sara) $(mailbox_count reza) $(mailbox_count john)' "1 1 1"

ack=$(newest_mail sara)
tap_is "Arabic: in Arabic" "$(decode "$ack" content-language)" "ar"
case $(decode "$ack" body) in *'رقم تذكرتك هو 1'*) r=ok ;; *) r="$(decode "$ack" body)" ;; esac
tap_is "Arabic: the body decodes to the Arabic template with ticket 1" "$r" ok
tap_is "Arabic: the subject carries the tag and the customer's subject" \
  "$(decode "$ack" subject)" "[Ticket#1] لم تصل فاتورتي لشهر أكتوبر"
tap_is "Arabic: Auto-Submitted: auto-replied" "$(decode "$ack" auto-submitted)" "auto-replied"
tap_is "Arabic: sent with a null envelope sender" "$(decode "$ack" return-path)" "<>"
tap_is "Arabic: In-Reply-To is the customer's Message-ID" "$(decode "$ack" in-reply-to)" \
  "$(decode "$work/arabic.eml" message-id)"
tap_is "Arabic: From is the queue with its display name" "$(decode "$ack" from)" \
  "Example Support <support@example.test>"
tap_is "Arabic: one text part, nothing else" "$(decode "$ack" parts)" 1

ack=$(newest_mail reza)
tap_is "Persian: in Persian" "$(decode "$ack" content-language)" "fa"
case $(decode "$ack" body) in *'شمارهٔ تیکت شما 2'*) r=ok ;; *) r="$(decode "$ack" body)" ;; esac
tap_is "Persian: the body is the Persian template with ticket 2" "$r" ok
ack=$(newest_mail john)
tap_is "English: in English" "$(decode "$ack" content-language)" "en"
case $(decode "$ack" body) in *'ticket number is 3'*'within 4 hours'*) r=ok ;; *) r="$(decode "$ack" body)" ;; esac
tap_is "English: the body names ticket 3 and the 4-hour target" "$r" ok

out=$(ctl show --json 1)
tap_is "ticketctl show: ticket 1 is in Arabic and its acknowledgement was sent" \
  "$(printf '%s' "$out" | $JQ -r '[.language, ([.events[].kind] | index("ack-sent") != null)] | @tsv')" \
  "$(printf 'ar\ttrue')"
tap_is "the outbox: three sent, none pending" \
  "$(ctl outbox --json | $JQ -r '[.[] | .status] | sort | join(",")')" "sent,sent,sent"
grep -q 'outbox: ack [0-9]* for ticket 1 to sara@example.test sent after' "$mlog"
tap_is "the log line of the delivery names the mail's queue id" $? 0

# A reply to the acknowledgement threads into the ticket and gets no second one.
ack=$(newest_mail sara)
mail reply windows-1256 'سارة <sara@example.test>' 'شكرا' 'شكرا، ما زلت أنتظر.' \
  "In-Reply-To: $(decode "$ack" message-id)"
tap_ok "a reply to the acknowledgement is accepted" send reply "$work/reply.eml" sara@example.test support@example.test
pf_wait_queue_empty "$work" > /dev/null; sleep 1
tap_is "the reply joins ticket 1 and gets no acknowledgement" \
  "$(ctl list --json | $JQ -r 'length') $(mailbox_count sara)" "3 1"

# ---- after hours, with the daemon's clock fixed --------------------------------
stop_milter
# Thursday 20:00 in Riyadh: the team is back on Sunday at 09:00.
start_milter -T 2026-11-26T20:00:00+03:00 > "$work/start2.out" 2>&1
tap_ok "the daemon restarts with a fixed clock" sh -c 'cat "$1"; exit "$2"' - "$work/start2.out" $?
mail late windows-1256 'نادية <nadia@example.test>' 'استفسار عن الفاتورة' 'متى تصدر الفاتورة؟'
tap_ok "a mail to billing after hours is accepted" send late "$work/late.eml" nadia@example.test billing@example.test
tap_ok "its acknowledgement is delivered" wait_for 'mailbox_count nadia' 1
body=$(decode "$(newest_mail nadia)" body)
case $body in *'خارج ساعات العمل'*'2026-11-29 09:00'*) r=ok ;; *) r="$body" ;; esac
tap_is "it is the Arabic after-hours template, back on Sunday 09:00" "$r" ok
tap_is "the billing tag is in its subject" "$(decode "$(newest_mail nadia)" subject | cut -c1-8)" "[Bill#4]"

# ---- the SMTP server down, then a restart with the mail still in the outbox -----
stop_milter
closed=$(pf_free_port)
write_config "smtp://127.0.0.1:$closed"
start_milter > /dev/null 2>&1
mail down us-ascii 'Omid <omid@example.test>' 'Order 77' 'Where is my order?'
tap_ok "with the SMTP server down, the mail is still accepted" send down "$work/down.eml" omid@example.test support@example.test
tap_ok "the acknowledgement waits in the outbox, the refusal noted" wait_for \
  "ctl outbox --status pending --json | $JQ -r '.[0].last_result // \"\"' | grep -c 'Connection refused'" 1
stop_milter
write_config "smtp://127.0.0.1:$port"
start_milter > /dev/null 2>&1
tap_ok "after a restart with the server back, it is delivered" wait_for 'mailbox_count omid' 1
tap_is "exactly once" "$(ctl outbox --json | $JQ -r '[.[] | select(.to == "omid@example.test")] | length')" 1

# ---- a server that accepts and never answers ------------------------------------
stop_milter
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8); print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' > "$work/silent.port" &
silent_pid=$!
wait_for 'cat "$work/silent.port" | wc -l | tr -d " "' 1 5
write_config "smtp://127.0.0.1:$(cat "$work/silent.port")"
start_milter > /dev/null 2>&1
mail silent us-ascii 'Omid <omid@example.test>' 'Order 78' 'Still waiting.'
tap_ok "with a silent SMTP server, the mail is still accepted" send silent "$work/silent.eml" omid@example.test support@example.test
tap_ok "the worker gives up on the silent server after its timeout and keeps the mail" wait_for \
  "ctl outbox --status pending --json | $JQ -r '.[0].last_result // \"\"' | grep -c 'timed out'" 1
stop_milter
kill "$silent_pid" 2> /dev/null; wait "$silent_pid" 2> /dev/null

# ---- 4xx (soft_bounce), then 5xx: recorded on the ticket, not retried -----------
pf_conf "$work" "soft_bounce = yes" && pf_reload "$work" > /dev/null
write_config "smtp://127.0.0.1:$port"
start_milter > /dev/null 2>&1
tap_ok "the silent server's mail is delivered once the server answers" wait_for 'mailbox_count omid' 2
mail unknown us-ascii 'Ghost <ghost@example.test>' 'Who am I' 'Nobody reads this mailbox.'
tap_ok "a mail from an address Postfix will not deliver to is accepted" \
  send unknown "$work/unknown.eml" ghost@example.test support@example.test
tap_ok "its acknowledgement meets a 4xx and stays pending" wait_for \
  "ctl outbox --status pending --json | $JQ -r '.[0].last_result // \"\"' | grep -c '^450 '" 1
pf_conf "$work" "soft_bounce = no" && pf_reload "$work" > /dev/null
tap_ok "then a 5xx: marked failed" wait_for \
  "ctl outbox --status failed --json | $JQ -r '.[0].last_result // \"\"' | grep -c '^550 '" 1
ticket=$(ctl outbox --status failed --json | $JQ -r '.[0].ticket')
tap_ok "the failure is an event on the ticket" sh -c \
  "'$TICKETCTL' -c '$conf' show --json $ticket | '$JQ' -e '[.events[] | select(.kind == \"ack-failed\")] | length == 1'"
attempts=$(ctl outbox --status failed --json | $JQ -r '.[0].attempts')
sleep 3
tap_is "a permanent failure is never retried" "$(ctl outbox --status failed --json | $JQ -r '.[0].attempts')" "$attempts"

stop_milter
# Eight mails: seven new tickets and the reply that joined ticket 1.
tap_is "every mail Postfix accepted is on a ticket" "$(ctl list --json | $JQ length)" 7
