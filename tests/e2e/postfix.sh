#!/bin/sh
# tests/e2e/postfix.sh - ticket-milter behind a real Postfix, mail sent over SMTP.
#
# A private Postfix (tests/postfix-lib.sh) on 127.0.0.1 hands every mail to
# ticket-milter (started with -f on a unix socket in the work directory) and
# delivers to maildirs we read back. Checks: a new Arabic ticket, a reply that
# joins it, forged X-Ticket-* headers, a mixed-case queue address, mail for no
# queue, Postfix's 4xx when the daemon is down (and nothing lost), and a clean
# SIGTERM. Needs root, postfix, swaks, jq and perl (swaks's own dependency,
# used here to read MIME headers); skips otherwise. The daemon's log and the
# Postfix maillog are printed as TAP comments when a check fails.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/postfix-lib.sh"

why=$(pf_usable) || tap_skip_all "$why"
SWAKS=${SWAKS:-$(command -v swaks || true)}
[ -n "$SWAKS" ] || tap_skip_all "swaks is not installed"
JQ=${JQ:-$(command -v jq || true)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
command -v perl > /dev/null 2>&1 || tap_skip_all "perl is not installed"
MILTER=$(tm_bin ticket-milter)
TICKETCTL=$(tm_bin ticketctl)
command -v "$MILTER" > /dev/null 2>&1 || tap_skip_all "ticket-milter is not built"
command -v "$TICKETCTL" > /dev/null 2>&1 || tap_skip_all "ticketctl is not built"

work=$(tm_workdir)
sock=$work/milter.sock
conf=$work/ticket-milter.conf
mlog=$work/milter.log
milter_pid=
cat > "$conf" <<EOC
[milter]
socket = unix:$sock
user =
socket_mode = 0666
on_error = tempfail
[store]
path = $work/tickets.db
[templates]
dir = $top_srcdir/templates
[queue support]
address = support@example.test
tag_prefix = Ticket
[team billing]
mailbox = billing@example.test
agents = alice@example.test
# Whole-line comments only: GKeyFile has no inline ones.
[rule billing]
subject = فاتورة;invoice
tags = billing;فوترة
priority = high
team = billing
EOC

stop_everything () {
  if [ -n "$milter_pid" ]; then
    kill -KILL "$milter_pid" 2> /dev/null
    wait "$milter_pid" 2> /dev/null
    milter_pid=
  fi
  pf_stop "$work"
}
tm_on_exit stop_everything

show_logs () {
  [ "$tap_failed" -eq 0 ] && return 0
  echo "# ---- ticket-milter stderr ($mlog)"
  sed 's/^/# /' "$mlog" 2> /dev/null
  echo "# ---- Postfix maillog"
  pf_log "$work" "# "
}
tm_on_exit show_logs

start_milter () { pf_start_milter "$conf" "$sock" "$mlog"; }

# send NAME FILE RCPT: one mail over SMTP; swaks's transcript in $work/NAME.swaks.
send () {
  "$SWAKS" --server 127.0.0.1 --port "$(pf_port "$work")" --helo client.example.net \
    --from sara@example.net --to "$3" --data "@$2" > "$work/$1.swaks" 2>&1
}
queue_id () { sed -n 's/^<- *250 .*queued as \([0-9A-Za-z]*\).*/\1/p' "$work/$1.swaks"; }

# header_values FILE NAME: every NAME header of FILE, unfolded, raw, one a line.
header_values () {
  perl -e '
    my ($file, $name) = @ARGV;
    open my $fh, "<", $file or die "$file: $!\n";
    local $/; my ($head) = split /\r?\n\r?\n/, <$fh>, 2;
    $head =~ s/\r?\n([ \t])/$1/g;
    for (split /\r?\n/, $head) { print "$1\n" if /^\Q$name\E:[ \t]*(.*?)\s*$/i }' "$1" "$2"
}
# decoded_subject FILE: the Subject with its RFC 2047 words decoded, in UTF-8.
decoded_subject () {
  header_values "$1" Subject | perl -MEncode -ne '
    chomp; binmode STDOUT, ":encoding(UTF-8)"; print decode("MIME-Header", $_), "\n"'
}
# x_ticket_headers FILE: every X-Ticket-* header line, unfolded.
x_ticket_headers () {
  perl -e '
    open my $fh, "<", $ARGV[0] or die; local $/; my ($head) = split /\r?\n\r?\n/, <$fh>, 2;
    $head =~ s/\r?\n([ \t])/$1/g; print map { "$_\n" } grep { /^X-Ticket-/i } split /\r?\n/, $head' "$1"
}
mailbox_count () { pf_mailbox_files "$work" "$1" | wc -l | tr -d ' '; }
newest_mail () { pf_mailbox_files "$work" "$1" | tail -n 1; }
ctl () { "$TICKETCTL" -c "$conf" "$@"; }

# ---- the mails ------------------------------------------------------------------
subject_ar='فاتورتي لشهر أكتوبر لم تصل'
subject_ar_b64=$(printf '%s' "$subject_ar" | base64 | tr -d '\n')
name_b64=$(printf '%s' 'سارة' | base64 | tr -d '\n')
msgid1="<e2e-1.$$@example.net>"
cat > "$work/arabic.eml" <<EOF
From: =?UTF-8?B?$name_b64?= <sara@example.net>
To: support@example.test
Subject: =?UTF-8?B?$subject_ar_b64?=
Date: Mon, 23 Nov 2026 09:00:00 +0300
Message-ID: $msgid1
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

مرحبا،
لم تصل فاتورتي لشهر أكتوبر. أرجو إرسالها مرة أخرى.
سارة
EOF
cat > "$work/reply.eml" <<EOF
From: =?UTF-8?B?$name_b64?= <sara@example.net>
To: support@example.test
Subject: Re: [Ticket#1] =?UTF-8?B?$subject_ar_b64?=
Date: Mon, 23 Nov 2026 10:00:00 +0300
Message-ID: <e2e-2.$$@example.net>
In-Reply-To: $msgid1
References: $msgid1
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

شكرا، ما زلت أنتظر.
EOF
cat > "$work/forged.eml" <<EOF
From: Sara <sara@example.net>
To: support@example.test
Subject: Printer on fire
X-Ticket-ID: 999
X-Ticket-Queue: billing
X-Ticket-Forged: yes
X-Ticket-Team: billing
X-Ticket-Priority: urgent
X-Ticket-Tags: vip
Date: Mon, 23 Nov 2026 11:00:00 +0300
Message-ID: <e2e-3.$$@example.net>

The printer in room 4 is on fire again.
EOF
cat > "$work/mixedcase.eml" <<EOF
From: Sara <sara@example.net>
To: Support@Example.TEST
Subject: Password reset
Date: Mon, 23 Nov 2026 12:00:00 +0300
Message-ID: <e2e-4.$$@example.net>

I cannot log in.
EOF
cat > "$work/other.eml" <<EOF
From: Sara <sara@example.net>
To: customer@example.test
Subject: Lunch on Thursday? [not a ticket]
Date: Mon, 23 Nov 2026 13:00:00 +0300
Message-ID: <e2e-5.$$@example.net>

See you at noon.
EOF
cat > "$work/down.eml" <<EOF
From: Sara <sara@example.net>
To: support@example.test
Subject: Sent while the filter is down
Date: Mon, 23 Nov 2026 14:00:00 +0300
Message-ID: <e2e-6.$$@example.net>

This one must come back as a 4xx, then get through on the retry.
EOF

tap_plan 43

# ---- Postfix and the daemon up ----------------------------------------------------
if ! out=$(pf_setup "$work" 0 2>&1 && pf_set_milter "$work" "unix:$sock" 2>&1 && pf_start "$work" 2>&1); then
  tap_ok "a private Postfix starts" sh -c 'printf "%s\n" "$1"; exit 1' - "$out"
  echo "Bail out! no private Postfix, nothing else can run"
  exit 1
fi
tap_ok "a private Postfix starts on 127.0.0.1:$(pf_port "$work")" true
# Acknowledgements go back into this Postfix (to sara@example.net, which it
# bounces to nowhere: a null sender's mail is never bounced).
printf '[smtp]\nurl = smtp://127.0.0.1:%s\n' "$(pf_port "$work")" >> "$conf"
start_milter > "$work/start.out" 2>&1
tap_status "ticket-milter starts and listens on $sock" $? "$work/start.out"
tap_ok "its socket is writable by Postfix (mode 0666)" sh -c "[ \"\$(stat -c %a '$sock')\" = 666 ]"

# ---- (1) a new Arabic ticket -------------------------------------------------------
tap_ok "(1) the Arabic mail is accepted" send arabic "$work/arabic.eml" support@example.test
tap_ok "(1) the queue drains" pf_wait_queue_empty "$work"
tap_is "(1) one mail in support's maildir" "$(mailbox_count support)" 1
m=$(newest_mail support)
tap_is "(1) X-Ticket-ID: 1" "$(header_values "$m" X-Ticket-ID)" 1
tap_is "(1) X-Ticket-Queue: support" "$(header_values "$m" X-Ticket-Queue)" support
tap_is "(1) the Subject decodes to the tag and the original" "$(decoded_subject "$m")" "[Ticket#1] $subject_ar"
ctl show 1 --json > "$work/show1.json" 2> "$work/show1.err"
tap_is "(1) ticketctl show 1: the customer" "$($JQ -r '.customer_address' "$work/show1.json")" sara@example.net
tap_is "(1) ticketctl show 1: the subject" "$($JQ -r '.subject' "$work/show1.json")" "$subject_ar"
qid=$(queue_id arabic)
# log_has QUEUEID FIELD=VALUE...: one log line for that queue id has every field.
log_has () {
  local qid=$1; shift
  grep -E "(^|[: ])$qid: " "$mlog" | awk -v want="$*" '
    { n = split(want, w, " "); ok = 1
      for (i = 1; i <= n; i++) if (index(" " $0 " ", " " w[i] " ") == 0) ok = 0
      if (ok) found = 1 }
    END { exit !found }'
}
tap_ok "(1) the daemon logged the mail under its queue id ($qid)" \
  log_has "$qid" class=customer queue=support ticket=1 new=yes

# ---- (2) the reply joins ticket 1 ---------------------------------------------------
tap_ok "(2) the reply is accepted" send reply "$work/reply.eml" support@example.test
tap_ok "(2) the queue drains" pf_wait_queue_empty "$work"
m=$(newest_mail support)
tap_is "(2) X-Ticket-ID: 1 again" "$(header_values "$m" X-Ticket-ID)" 1
subject=$(decoded_subject "$m")
tap_is "(2) the tag is in the Subject exactly once" \
  "$(printf '%s' "$subject" | grep -o '\[Ticket#1\]' | wc -l | tr -d ' ')" 1
tap_ok "(2) the Subject keeps the Arabic words" sh -c 'case "$1" in *"$2"*) exit 0;; esac; echo "subject: $1"; exit 1' - "$subject" "$subject_ar"
tap_is "(2) ticket 1 has two mails from the customer" \
  "$(ctl show 1 --json 2> /dev/null | $JQ -r '[.messages[] | select(.direction == "customer")] | length')" 2

# ---- (3) forged X-Ticket-* headers --------------------------------------------------
tap_ok "(3) the mail with a forged X-Ticket-ID is accepted" send forged "$work/forged.eml" support@example.test
tap_ok "(3) the queue drains" pf_wait_queue_empty "$work"
m=$(newest_mail support)
tap_is "(3) exactly one X-Ticket-ID, the real one" "$(header_values "$m" X-Ticket-ID | tr '\n' ' ')" "2 "
tap_is "(3) exactly one X-Ticket-Queue, the real one" "$(header_values "$m" X-Ticket-Queue | tr '\n' ' ')" "support "
tap_is "(3) other forged X-Ticket-* headers are gone" \
  "$(header_values "$m" X-Ticket-Forged)|$(header_values "$m" X-Ticket-Team)|$(header_values "$m" X-Ticket-Tags)" "||"
tap_is "(3) the priority is ours, not the forged one" "$(header_values "$m" X-Ticket-Priority)" normal

# ---- (4) a mixed-case queue address ----------------------------------------------------
tap_ok "(4) mail to Support@Example.TEST is accepted" send mixedcase "$work/mixedcase.eml" Support@Example.TEST
tap_ok "(4) the queue drains" pf_wait_queue_empty "$work"
tap_is "(4) it makes ticket 3" "$(header_values "$(newest_mail support)" X-Ticket-ID)" 3

# ---- (5) mail for no queue passes untouched ------------------------------------------------
tap_ok "(5) mail to customer@example.test is accepted" send other "$work/other.eml" customer@example.test
tap_ok "(5) the queue drains" pf_wait_queue_empty "$work"
m=$(newest_mail customer)
tap_is "(5) it arrives with no X-Ticket-* header and its Subject unchanged" \
  "$(mailbox_count customer) [$(x_ticket_headers "$m")] $(header_values "$m" Subject)" \
  "1 [] Lunch on Thursday? [not a ticket]"

# ---- (6) the daemon is down: 4xx, nothing lost ----------------------------------------------
kill -KILL "$milter_pid"; wait "$milter_pid" 2> /dev/null; milter_pid=
send down "$work/down.eml" support@example.test
tap_ok "(6) with the daemon killed, Postfix answers 4xx" grep -E '^<\*\* +4[0-9][0-9] ' "$work/down.swaks"
tap_is "(6) nothing was delivered and nothing is queued" \
  "$(mailbox_count support) $(pf__queue_count "$work" maildrop incoming active deferred hold)" "4 0"
start_milter > "$work/start.out" 2>&1
tap_status "(6) the daemon starts again over its stale socket" $? "$work/start.out"
send_and_drain () { send "$@" && pf_wait_queue_empty "$work"; }
tap_ok "(6) the client's retry is accepted" send_and_drain down "$work/down.eml" support@example.test
tap_is "(6) and makes ticket 4" "$(header_values "$(newest_mail support)" X-Ticket-ID)" 4

# ---- (8) a billing mail is routed to the billing team ---------------------------------------
subject_bill='فاتوره شهر نوفمبر خاطئة'
cat > "$work/billing.eml" <<EOF
From: Sara <sara@example.net>
To: support@example.test
Reply-To: Sara Private <sara.private@example.net>
Subject: =?UTF-8?B?$(printf '%s' "$subject_bill" | base64 | tr -d '\n')?=
Date: Mon, 23 Nov 2026 15:00:00 +0300
Message-ID: <e2e-8.$$@example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8

المبلغ في الفاتورة أعلى من المتفق عليه.
EOF
before_support=$(mailbox_count support)
tap_ok "(8) the billing mail (فاتوره, spelt with heh) is accepted" send_and_drain billing "$work/billing.eml" support@example.test
tap_is "(8) it lands in the billing team's mailbox, not the queue's" \
  "$(mailbox_count billing) $(mailbox_count support)" "1 $before_support"
m=$(newest_mail billing)
tap_is "(8) X-Ticket-Team, X-Ticket-Priority and X-Ticket-Tags" \
  "$(header_values "$m" X-Ticket-Team) $(header_values "$m" X-Ticket-Priority) $(header_values "$m" X-Ticket-Tags | perl -MEncode -ne 'chomp; binmode STDOUT, ":encoding(UTF-8)"; print decode("MIME-Header", $_)')" \
  "billing high billing, فوترة"
tap_is "(8) Reply-To is the queue address, so an agent's Reply comes back through the desk" \
  "$(header_values "$m" Reply-To)" "support@example.test"
tap_is "(8) X-Ticket-Customer tells the agent about the customer's other tickets" \
  "$(header_values "$m" X-Ticket-Customer)" "sara@example.net; open=4; total=4; last=4"
tap_is "(8) the ticket records team, priority and tags" \
  "$(ctl show 5 --json | $JQ -r '[.team, .priority, (.tags | join(","))] | join(" ")')" "billing high billing,فوترة"

# ---- (7) SIGTERM stops the daemon cleanly --------------------------------------------------
if [ -n "$milter_pid" ]; then
  kill -TERM "$milter_pid"
  wait "$milter_pid"; status=$?
  milter_pid=
else
  status="not running"
fi
tap_is "(7) SIGTERM: the daemon exits with status 0" "$status" 0
tap_ok "(7) and removes its socket" test ! -e "$sock"

tap_done
