#!/bin/sh
# tests/security/sql.sh - SQL only through bound parameters.
#
# Two halves. The static one runs tests/security/sql-audit.py over src/*.c:
# every SQL text handed to SQLite must be provably constant (the one allowed
# exception, PRAGMA user_version = %d with a number from the constant
# migrations table, is named in the script by its exact text), and the audit
# is shown to fail on small C files that build SQL from data in the ways it
# has to catch. The behavioural one sends mails full of SQL metacharacters
# through `ticketctl simulate --commit` and reads them back with `ticketctl
# show --json` and the sqlite3 shell: stored verbatim, every table intact,
# and '%' and '_' in an address match only themselves in the customer
# history (X-Ticket-Customer) and the acknowledgement rate limit.
# Needs jq; the static half needs python3, the table checks sqlite3.
. "$top_srcdir/tests/lib.sh"

JQ=${JQ:-$(command -v jq || true)}
[ -n "$JQ" ] || tap_skip_all "jq is not installed"
TICKETCTL=$(tm_bin ticketctl)
command -v "$TICKETCTL" > /dev/null 2>&1 || tap_skip_all "ticketctl is not built"
PYTHON=$(command -v python3 || true)
SQLITE=$(command -v sqlite3 || true)
audit=$top_srcdir/tests/security/sql-audit.py

work=$(tm_workdir)
conf=$work/ticket-milter.conf
db=$work/tickets.db
cat > "$conf" <<EOC
[store]
path = $db
[templates]
dir = $top_srcdir/templates
[queue support]
address = support@example.test
ack_rate_limit = 1h
EOC
ctl () { "$TICKETCTL" -c "$conf" "$@"; }

tap_plan 28

# --- static audit ----------------------------------------------------------------
if [ -n "$PYTHON" ]; then
  tap_ok "every SQL text in src/*.c is constant (sql-audit.py)" "$PYTHON" "$audit" "$top_srcdir"/src/*.c

  # bad_case NAME C-SOURCE: the audit must fail on this file, naming its line.
  bad_case () {
    printf '%s\n' "$2" > "$work/bad.c"
    tap_ok "the audit catches $1" sh -c '
      out=$("$1" "$2" "$3" 2>&1); status=$?
      printf "%s\n" "$out"
      [ "$status" -eq 1 ] && printf "%s\n" "$out" | grep -q "^not ok" \
        && printf "%s\n" "$out" | grep -q "bad\.c:[0-9]"' - \
      "$PYTHON" "$audit" "$work/bad.c"
  }
  bad_case "SQL printed from data into sqlite3_exec" '
static int f (sqlite3 *db, const char *who)
{
  return sqlite3_exec (db, g_strdup_printf ("DELETE FROM t WHERE a = '\''%s'\''", who), 0, 0, 0);
}'
  bad_case "a local variable concatenated from data" '
static int f (sqlite3 *db, const char *who, sqlite3_stmt **s)
{
  char *sql = g_strconcat ("SELECT id FROM tickets WHERE customer = '\''", who, "'\''", NULL);
  return sqlite3_prepare_v2 (db, sql, -1, s, NULL);
}'
  bad_case "data passed through a wrapper of a wrapper" '
static int run_sql (sqlite3 *db, const char *sql) { return sqlite3_exec (db, sql, 0, 0, 0); }
static int run_twice (sqlite3 *db, const char *text) { run_sql (db, text); return run_sql (db, "COMMIT"); }
static int f (sqlite3 *db, const TmMessage *message) { return run_twice (db, message->subject); }'
  bad_case "sqlite3_mprintf" '
static char *f (const char *who) { return sqlite3_mprintf ("SELECT %Q", who); }'
  bad_case "an array of SQL whose pointers may be changed" '
static const char *sql_texts[] = { "SELECT 1", "SELECT 2" };
static int f (sqlite3 *db, int i, sqlite3_stmt **s) { return sqlite3_prepare_v2 (db, sql_texts[i], -1, s, NULL); }'
  bad_case "LIKE against a parameter" '
static const char *const sql_texts[] = { "SELECT id FROM tickets WHERE customer_address LIKE ?1" };
static int f (sqlite3 *db, sqlite3_stmt **s) { return sqlite3_prepare_v2 (db, sql_texts[0], -1, s, NULL); }'
  bad_case "SQL formatted into a buffer" '
static int f (sqlite3 *db, const char *who)
{
  char sql[200];
  g_snprintf (sql, sizeof sql, "SELECT * FROM t WHERE a = %s", who);
  return sqlite3_exec (db, sql, 0, 0, 0);
}'
else
  for name in "every SQL text in src/*.c is constant" "SQL printed from data" "local concatenation" \
      "wrapper of a wrapper" "sqlite3_mprintf" "mutable array" "LIKE" "formatted buffer"; do
    tap_skip "$name" "python3 is not installed"
  done
fi

# --- behaviour: hostile text stored verbatim ------------------------------------
# mail FILE FROM SUBJECT MESSAGE-ID [EXTRA-HEADER]: writes a mail (LF line ends).
mail () {
  {
    printf 'From: %s\nTo: support@example.test\nSubject: %s\nMessage-ID: <%s>\n' "$2" "$3" "$4"
    [ -n "${5:-}" ] && printf '%s\n' "$5"
    printf 'Date: Mon, 23 Nov 2026 09:00:00 +0300\n\n'
    printf '%s\n' "body '); DELETE FROM outbox;-- \"q\" \\ %_ /* x */ ;"
  } > "$1"
}
simulate () { ctl simulate --commit --rcpt support@example.test --from "$1" --now "$2" "$3" 2> /dev/null; }

subject="x'); DROP TABLE tickets;-- \"q\" \\ %_ /* c */ ; SELECT * FROM outbox"
name="O'Brien\"; DROP TABLE messages;--"
mail "$work/m1.eml" "\"O'Brien\\\"; DROP TABLE messages;--\" <ob'rien@example.net>" "$subject" "'or'1'='1@example.net"
out=$(simulate "ob'rien@example.net" 2026-11-23T09:00:00+03:00 "$work/m1.eml")
tap_is "a mail full of SQL makes ticket 1" "$(printf '%s' "$out" | $JQ -r '.ticket.id')" "1"
ctl show --json 1 > "$work/show1.json" 2> /dev/null
tap_is "its subject is stored verbatim" "$($JQ -r .subject "$work/show1.json")" "$subject"
tap_is "its customer's name is stored verbatim" "$($JQ -r .customer_name "$work/show1.json")" "$name"
tap_is "its customer's address is stored verbatim" "$($JQ -r .customer_address "$work/show1.json")" "ob'rien@example.net"
tap_is "its Message-ID and body are stored verbatim" \
  "$($JQ -r '.messages[0].message_id + "|" + .messages[0].body' "$work/show1.json")" \
  "'or'1'='1@example.net|body '); DELETE FROM outbox;-- \"q\" \\ %_ /* x */ ;"

# A NUL next to SQL: the parser makes it U+FFFD (message.h), nothing is cut.
printf 'From: nul@example.net\nTo: support@example.test\nSubject: a\000b%s\nMessage-ID: <nul@example.net>\n\nc\000d\n' \
  "'; DROP TABLE events;--" > "$work/nul.eml"
simulate nul@example.net 2026-11-23T09:01:00+03:00 "$work/nul.eml" > /dev/null
tap_is "a NUL beside SQL is one replaced character, nothing cut" \
  "$(ctl show --json 2 2> /dev/null | $JQ -r '.subject + "|" + .messages[0].body')" \
  "a�b'; DROP TABLE events;--|c�d"

# --- behaviour: wildcards match only themselves ----------------------------------
mail "$work/v1.eml" "Victim <victim@example.net>" "first" "v1@example.net"
out=$(simulate victim@example.net 2026-11-23T10:00:00+03:00 "$work/v1.eml")
tap_is "the victim's first mail is acknowledged" \
  "$(printf '%s' "$out" | $JQ -r '(.ticket.id|tostring) + " " + .autoreply.reason')" "3 new-ticket"
i=0
for sender in '%@%' '%' '_ictim@example.net' '%ictim@example.net' 'victim@%' '%@example.net' '*@*'; do
  i=$((i + 1))
  mail "$work/w$i.eml" "<$sender>" "wildcard $i" "w$i@example.net"
  out=$(simulate "$sender" "2026-11-23T10:0$i:00+03:00" "$work/w$i.eml")
  tap_is "'$sender' is a customer of its own: no history, no rate limit from the victim" \
    "$(printf '%s' "$out" | $JQ -r '(.headers["X-Ticket-Customer"] | sub("^.*; open="; "open=")) + " " + (.autoreply.reason)')" \
    "open=0; total=0; last=0 $(case $sender in *@*) echo new-ticket ;; *) echo no-address ;; esac)"
done
mail "$work/v2.eml" "Victim <victim@example.net>" "second" "v2@example.net"
out=$(simulate victim@example.net 2026-11-23T10:30:00+03:00 "$work/v2.eml")
tap_is "the victim's second ticket sees the first, and the rate limit holds" \
  "$(printf '%s' "$out" | $JQ -r '(.headers["X-Ticket-Customer"]) + " " + .autoreply.reason')" \
  "victim@example.net; open=1; total=1; last=3 rate-limit"

# In-Reply-To and References that would match anything with LIKE or a
# broken quote do not thread into another customer's ticket.
mail "$work/t.eml" "Mallory <mallory@example.net>" "no tag" "t@example.net" \
  "In-Reply-To: <%>
References: <%@%> <' OR '1'='1> <_1@example.net> <*>"
out=$(simulate mallory@example.net 2026-11-23T11:00:00+03:00 "$work/t.eml")
tap_is "wildcard message-ids thread nowhere" \
  "$(printf '%s' "$out" | $JQ -r '.threaded_by + " " + (.ticket.new|tostring)')" "none true"

# --- tables intact ----------------------------------------------------------------
tap_is "ticketctl lists every ticket" "$(ctl list --json 2> /dev/null | $JQ -r 'length')" "12"
if [ -n "$SQLITE" ]; then
  tap_is "every table is there, none added" \
    "$("$SQLITE" "$db" "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)")" \
    "attachments,events,message_ids,messages,outbox,ticket_tags,tickets"
  tap_is "the database passes its integrity check" "$("$SQLITE" "$db" "PRAGMA integrity_check")" "ok"
  tap_is "rows: tickets, messages, outbox" \
    "$("$SQLITE" "$db" "SELECT (SELECT count(*) FROM tickets) || ' ' || (SELECT count(*) FROM messages WHERE direction = 'customer') || ' ' || (SELECT count(*) FROM outbox)")" \
    "12 12 10"
else
  tap_skip "every table is there" "sqlite3 is not installed"
  tap_skip "integrity check" "sqlite3 is not installed"
  tap_skip "row counts" "sqlite3 is not installed"
fi
tap_done
