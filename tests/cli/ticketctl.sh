#!/bin/sh
# tests/cli/ticketctl.sh - ticketctl simulate, list, show and rules test, driven as an admin would,
# with good and broken input. Needs jq to read the JSON.
. "$top_srcdir/tests/lib.sh"

JQ=${JQ:-$(command -v jq)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
TICKETCTL=$(tm_bin ticketctl)
work=$(tm_workdir)
conf=$work/ticket-milter.conf
cat > "$conf" <<EOC
[store]
path = $work/state/tickets.db
[templates]
dir = $top_srcdir/templates
[queue support]
address = support@example.test
EOC
ctl () { "$TICKETCTL" -c "$conf" "$@"; }
msg=$TM_TEST_DATA

tap_plan 43

# --- simulate, dry run ---------------------------------------------------------
out=$(ctl simulate --rcpt support@example.test --now 2026-11-23T09:00:00+03:00 "$msg/arabic-windows-1256.eml" 2>/dev/null)
printf '%s' "$out" > "$work/out.json"
tap_ok "simulate prints every key of the contract" $JQ -e '
  has("class") and has("reason") and has("queue") and has("ticket") and has("threaded_by")
  and has("autoreply") and has("recipients") and has("headers") and has("subject")
  and (.autoreply | has("send") and has("template") and has("language") and has("reason"))
  and (.recipients | has("add") and has("remove"))
  and (.ticket | has("id") and has("new") and has("status") and has("priority") and has("team")
       and has("tags") and has("language"))' "$work/out.json"
tap_is "dry run: a customer mail" "$(printf '%s' "$out" | $JQ -r '.class + " " + .queue + " " + (.ticket.id|tostring) + " " + (.ticket.new|tostring)')" "customer support 1 true"
tap_is "dry run: the X-Ticket-ID header" "$(printf '%s' "$out" | $JQ -r '.headers["X-Ticket-ID"]')" "1"
tap_ok "dry run: the subject gets the tag" $JQ -e '.subject | startswith("[Ticket#1] ")' "$work/out.json"
tap_ok "dry run creates no database" test ! -e "$work/state/tickets.db"

# --- commit, then list and show -------------------------------------------------
out=$(ctl simulate --commit --rcpt support@example.test "$msg/arabic-windows-1256.eml" 2>/dev/null)
tap_is "commit makes ticket 1" "$(printf '%s' "$out" | $JQ -r '.ticket.id')" "1"
tap_ok "commit created the database" test -s "$work/state/tickets.db"
out=$(ctl simulate --commit --rcpt support@example.test "$msg/arabic-windows-1256.eml" 2>/dev/null)
tap_is "the same mail again is a duplicate on ticket 1" \
  "$(printf '%s' "$out" | $JQ -r '(.ticket.id|tostring) + " " + (.ticket.duplicate|tostring) + " " + (.ticket.new|tostring)')" "1 true false"
out=$(ctl simulate --commit --rcpt Support@Example.TEST "$msg/persian-utf8.eml" 2>/dev/null)
tap_is "a mixed-case recipient makes ticket 2" "$(printf '%s' "$out" | $JQ -r '.ticket.id')" "2"
out=$(ctl list --json)
tap_is "list --json shows two tickets, newest first" "$(printf '%s' "$out" | $JQ -r 'map(.id|tostring) | join(",")')" "2,1"
tap_is "list --status filters" "$(ctl list --json --status closed | $JQ -r 'length')" "0"
tap_is "list --queue filters" "$(ctl list --json --queue support --limit 1 | $JQ -r 'length')" "1"
tap_ok "list prints a table" sh -c "'$TICKETCTL' -c '$conf' list | grep -q '^1 '"
out=$(ctl show 1 --json)
printf '%s' "$out" > "$work/show.json"
tap_is "show --json: the customer's mail and the acknowledgement on ticket 1" \
  "$(printf '%s' "$out" | $JQ -r '[.messages[].direction] | join(",")')" "customer,autoreply"
tap_is "show --json: the Arabic subject is decoded" "$($JQ -r .subject "$work/show.json")" "لم تصل فاتورتي لشهر أكتوبر"
tap_ok "show prints the ticket as text" sh -c "'$TICKETCTL' -c '$conf' show 2 | grep -q '^Queue:    support'"
out=$(ctl simulate --rcpt sales@example.test "$msg/english-plain.eml" 2>/dev/null)
tap_is "mail for no queue: not-support, no ticket" "$(printf '%s' "$out" | $JQ -r '.class + " " + (.ticket|tostring)')" "not-support null"
out=$(ctl simulate --rcpt support@example.test - < "$msg/no-message-id.eml" 2>/dev/null)
tap_is "standard input works" "$(printf '%s' "$out" | $JQ -r '.class')" "customer"
out=$(head -c 3000 /dev/urandom | ctl simulate --rcpt support@example.test - 2>/dev/null)
tap_is "binary junk still gives a decision" "$(printf '%s' "$out" | $JQ -r '.queue')" "support"

# --- broken command lines and configuration ------------------------------------------
status_of () { "$@" >/dev/null 2>&1; echo $?; }
tap_is "a missing message file: exit 66" "$(status_of ctl simulate "$work/nope.eml")" 66
tap_is "an unknown option: exit 64" "$(status_of ctl simulate --bogus "$msg/english-plain.eml")" 64
tap_is "a bad --now: exit 64" "$(status_of ctl simulate --now yesterday "$msg/english-plain.eml")" 64
tap_is "an unknown command: exit 64" "$(status_of ctl frobnicate)" 64
tap_is "show of a missing ticket: exit 1" "$(status_of ctl show 99)" 1
tap_is "show of a non-number: exit 64" "$(status_of ctl show abc)" 64
printf '[milter]\non_error = maybe\n' > "$work/bad.conf"
err=$("$TICKETCTL" -c "$work/bad.conf" list 2>&1); st=$?
tap_is "an invalid configuration: exit 78 naming group and key" "$st $(printf '%s' "$err" | grep -c '\[milter\] on_error')" "78 1"
printf '[store]\npath = %s/none/tickets.db\n[templates]\ndir = %s/templates\n' "$work" "$top_srcdir" > "$work/nodb.conf"
err=$("$TICKETCTL" -c "$work/nodb.conf" list 2>&1); st=$?
tap_is "list without a database says so" "$st $(printf '%s' "$err" | grep -c 'tickets.db')" "1 1"
# --- rules test -------------------------------------------------------------------
rconf=$work/rules.conf
cat > "$rconf" <<EOC
[store]
path = $work/rules-state/tickets.db
[templates]
dir = $top_srcdir/templates
[queue support]
address = support@example.test
[team billing]
mailbox = billing@example.test
# Billing words in three languages; a whole-line comment is fine here.
[rule billing]
subject = invoice;فاتورة;فاکتور
body = invoice;فاتورة
match = any
tags = billing;money
team = billing
priority = high
[rule order-number]
subject = /\border\s*#?\d{5,}\b/
tags = order
[rule newsletter]
from = newsletter;noreply
autoreply = no
tags = bulk
[rule persian]
language = fa
tags = persian
template_language = fa
EOC
rctl () { "$TICKETCTL" -c "$rconf" rules test "$@"; }
mail () { # mail FROM SUBJECT BODY: a small UTF-8 mail on standard output
  printf 'From: %s\nTo: support@example.test\nSubject: %s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n%s\n' "$1" "$2" "$3"
}
mail 'Ali <ali@example.net>' 'لم تصل فاتوره شهر أكتوبر' 'مرحبا، أرجو إرسال النسخة مرة أخرى.' > "$work/ar-billing.eml"
rctl --json "$work/ar-billing.eml" > "$work/rules.json" 2>/dev/null; st=$?
tap_is "rules test: exit 0" "$st" 0
tap_is "rules test: فاتوره (with heh) matches the rule's فاتورة on the subject" \
  "$($JQ -r '.matches | map(.rule + " " + .field + " " + .text) | join(",")' "$work/rules.json")" "billing subject فاتوره"
tap_ok "rules test --json prints every key" $JQ -e '
  has("language") and has("matches") and has("tags") and has("priority") and has("team")
  and has("template_language") and has("autoreply_suppressed_by")
  and (.matches[0] | has("rule") and has("field") and has("text"))' "$work/rules.json"
tap_is "rules test: detected language, tags, priority, team, template language" \
  "$($JQ -r '[.language, (.tags|join(";")), .priority, .team, .template_language, (.autoreply_suppressed_by|tostring)] | join(" ")' "$work/rules.json")" \
  "ar billing;money high billing ar null"
rctl "$work/ar-billing.eml" > "$work/rules.txt" 2>/dev/null
tap_ok "rules test prints the match as text" grep -q '^  \[rule billing\] subject: "فاتوره"$' "$work/rules.txt"
tap_ok "rules test text names the team" grep -q '^Team: *billing$' "$work/rules.txt"
mail 'Bob <bob@example.org>' 'Cannot log in' 'The page says invalid session.' > "$work/nomatch.eml"
tap_is "rules test: a mail that matches nothing" \
  "$(rctl --json "$work/nomatch.eml" 2>/dev/null | $JQ -r '[(.matches|length|tostring), (.tags|length|tostring), (.priority|tostring), (.team|tostring), .language] | join(" ")')" \
  "0 0 null null en"
mail 'Bob <bob@example.org>' 'Where is order #1234567?' 'It was due on Monday.' > "$work/order.eml"
tap_is "rules test: a /regex/ rule matches" \
  "$(rctl --json - < "$work/order.eml" 2>/dev/null | $JQ -r '.matches | map(.rule + " " + .field) | join(",") ')" "order-number subject"
mail 'Bob <bob@example.org>' 'Where is order #123?' 'Too short a number for the pattern.' > "$work/order-short.eml"
tap_is "rules test: the regex's word ends and {5,} hold" \
  "$(rctl --json "$work/order-short.eml" 2>/dev/null | $JQ -r '.matches | length')" 0
mail 'Shop News <newsletter@shop.example>' 'Our autumn offers' 'Big savings this week.' > "$work/news.eml"
tap_is "rules test: autoreply = no is reported with its rule" \
  "$(rctl --json "$work/news.eml" 2>/dev/null | $JQ -r '.autoreply_suppressed_by + " " + (.tags|join(";"))')" "newsletter bulk"
tap_is "rules test: a language condition on a Persian mail, template language from the rule" \
  "$(rctl --json "$msg/persian-utf8.eml" 2>/dev/null | $JQ -r '.language + " " + (.tags|join(";")) + " " + .template_language')" "fa persian fa"
tap_is "rules test --language overrides detection" \
  "$(rctl --json --language fa "$work/nomatch.eml" 2>/dev/null | $JQ -r '.language + " " + (.matches|map(.rule)|join(","))')" "fa persian"
tap_is "rules test: an unknown subcommand: exit 64" "$(status_of "$TICKETCTL" -c "$rconf" rules frobnicate "$work/nomatch.eml")" 64
tap_is "rules test: a missing mail file: exit 66" "$(status_of rctl "$work/nope.eml")" 66
printf '[templates]\ndir = %s/templates\n[queue support]\n[rule broken]\nsubject = /(unclosed/\ntags = x\n' "$top_srcdir" > "$work/badrule.conf"
err=$("$TICKETCTL" -c "$work/badrule.conf" rules test "$work/nomatch.eml" 2>&1); st=$?
tap_is "a rule with an invalid regex: exit 78 naming the rule" "$st $(printf '%s' "$err" | grep -c '\[rule broken\] subject')" "78 1"
printf '[templates]\ndir = %s/templates\n[queue support]\n[rule routing]\nsubject = refund\nteam = nosuch\n' "$top_srcdir" > "$work/badteam.conf"
err=$("$TICKETCTL" -c "$work/badteam.conf" rules test "$work/nomatch.eml" 2>&1); st=$?
tap_is "a rule naming an unknown team: exit 78 naming the rule and the team" \
  "$st $(printf '%s' "$err" | grep -c '\[rule routing\] team:.*nosuch')" "78 1"
tap_done
