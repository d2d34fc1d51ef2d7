/* eom-bench.c - the end-of-message work of ticket-milter, timed per mail.
 *
 * Runs what the daemon runs at end of message for every mail (parse with
 * GMime, classify, thread, one SQLite transaction that commits) on a fresh
 * database in a temporary directory, and prints the median, p90, p99 and
 * maximum time per mail and the mails per second of one thread.
 *
 *   bench/eom-bench [--mails N] [--synchronous full|normal] [--replies PERCENT]
 *                   [--prefill N] [--bulk-prefill N] [--rules N] [FILE.eml ...]
 *
 * With no files it uses a built-in 4 KB customer mail, from --customers N
 * senders in turn (default 1000; 1 is the worst case of one customer with
 * thousands of tickets, whose history every mail counts); files are used in
 * turn, each copy given a Message-ID of its own so that none is a retry. A share of the mails
 * (--replies, default 30%) are replies carrying the tag of an earlier ticket,
 * so threading lookups are measured too. --prefill N stores N tickets first
 * (for the cost of a large database). --rules N writes N synthetic keyword
 * rules into the configuration (see synthetic_rules), compiled once at load
 * as the daemon does; the pipeline applies them to every mail that opens a
 * ticket (replies to a ticket are not matched against rules). --bulk-prefill N
 * writes N tickets straight into the database with SQL in one transaction
 * (each with a customer message of about 1 KB, its Message-ID, a created
 * event, an acknowledgement in the outbox and a tag; customers spread over
 * N/4 addresses), which is how a database of a million tickets is made in
 * a minute rather than hours; the schema it writes to is the store's own,
 * created first by opening the store. The libmilter protocol round trips are
 * not in these figures: bench/milter-load and bench/run-postfix.sh measure
 * the whole path.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "config.h"
#include "message.h"
#include "pipeline.h"
#include "store.h"
#include "tm-test.h"

static int
compare_gint64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return (x > y) - (x < y);
}

static char *
builtin_mail (void)
{
  GString *mail = g_string_new (
    "Received: from client.example.net (client.example.net [198.51.100.7])\r\n"
    "\tby mx.example.test (Postfix) with ESMTP id 4XyZ1; Mon, 23 Nov 2026 09:00:00 +0300\r\n"
    "From: =?UTF-8?B?2LPYp9ix2Kk=?= <CUSTOMER@example.net>\r\n"
    "To: support@example.test\r\n"
    "Subject: =?UTF-8?B?2YHYp9iq2YjYsdipINmE2YUg2KrYtdmE?=\r\n"
    "Date: Mon, 23 Nov 2026 09:00:00 +0300\r\n"
    "Message-ID: <MSGID@example.net>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\n");
  while (mail->len < 4096)
    g_string_append (mail, "مرحبا، لم تصل فاتورتي لشهر أكتوبر. Hello, my invoice did not arrive.\r\n");
  return g_string_free (mail, FALSE);
}

/* Words and phrases a desk might list, in English, Arabic and Persian. A few
 * occur in the built-in mail, so some rules match, as in real traffic. */
static const char *const english_words[] = {
  "invoice", "refund", "payment", "receipt", "chargeback", "overcharged", "billing",
  "delivery", "shipping", "parcel", "tracking number", "not arrived", "damaged",
  "broken", "password", "log in", "locked out", "account", "cancel", "subscription",
  "upgrade", "downgrade", "warranty", "return", "exchange", "discount", "coupon",
  "urgent", "asap", "complaint", "lawyer", "gdpr", "delete my data", "unsubscribe",
  "outage", "error 500", "crash", "bug", "feature request", "api key", "integration",
  "thanks", "order status", "wrong item", "missing item", "late", "invoice copy",
};
static const char *const arabic_words[] = {
  "فاتورة", "الفاتورة", "فواتير", "استرداد", "استرجاع", "الدفع", "دفع", "إيصال",
  "التوصيل", "الشحن", "شحنة", "لم يصل", "لم تصل", "رقم التتبع", "تالف", "مكسور",
  "كلمة المرور", "تسجيل الدخول", "الحساب", "إلغاء", "الاشتراك", "ترقية", "الضمان",
  "إرجاع", "استبدال", "خصم", "عاجل", "شكوى", "حذف بياناتي", "عطل", "خطأ",
  "طلبي", "منتج خاطئ",
};
static const char *const persian_words[] = {
  "فاکتور", "صورتحساب", "بازپرداخت", "پرداخت", "رسید", "ارسال", "مرسوله", "بسته",
  "کد رهگیری", "نرسیده", "خراب", "شکسته", "رمز عبور", "ورود", "حساب کاربری", "لغو",
  "اشتراک", "گارانتی", "مرجوعی", "تخفیف", "فوری", "شکایت", "حذف اطلاعات", "خطا",
  "سلام", "سفارش من", "کالای اشتباه", "می‌خواهم",
};
static const char *const priorities[] = { "low", "high", "urgent" };

static const char *
pick (const char *const *words, gsize n_words, guint rule, guint entry)
{
  return words[(rule * 7 + entry * 13) % n_words];
}

/* N [rule NAME] groups: about 10% /regex/ rules, one in 20 on from, one in 20
 * on a header, one in 40 on attachment names, the rest word and phrase lists
 * on subject and body (4 to 8 entries, English, Arabic and Persian mixed,
 * "match = any" when both); each tags, one in four sets a priority. No
 * team, autoreply or stop actions, so every rule is looked at for every mail. */
static char *
synthetic_rules (int count)
{
  GString *text = g_string_new (NULL);
  for (guint r = 0; r < (guint) count; r++)
    {
      g_string_append_printf (text, "[rule synthetic-%u]\n", r);
      if (r % 10 == 9)
        {
          if (r % 20 == 9)
            g_string_append_printf (text, "subject = /\\b(order|ref|case)[- ]?#?%u\\d{3,}\\b/\n",
                                    r % 9 + 1);
          else
            g_string_append_printf (text, "body = /\\b(ال|بال|لل)?%s[ةه]?\\b/;/شماره\\s*%u\\d+/\n",
                                    pick (arabic_words, G_N_ELEMENTS (arabic_words), r, 0),
                                    r % 9 + 1);
        }
      else if (r % 20 == 1)
        g_string_append_printf (text, "from = vendor%u.example;billing-%u;newsletter%u\n", r, r, r);
      else if (r % 20 == 11)
        g_string_append_printf (text, "header.X-Mailer = bulkmail %u;campaign-%u\n", r, r);
      else if (r % 40 == 3)
        g_string_append_printf (text, "attachment = /\\.(exe|scr|js)$/;invoice-%u.pdf\n", r);
      else
        {
          guint entries = 4 + r % 5;
          const char *keys[] = { "subject", "body" };
          gboolean both = r % 3 == 0;
          guint first = both ? 0 : r % 2, last = both ? 1 : r % 2;
          for (guint k = first; k <= last; k++)
            {
              g_string_append_printf (text, "%s = ", keys[k]);
              for (guint e = 0; e < entries; e++)
                {
                  const char *word;
                  switch ((r + e + k) % 3)
                    {
                    case 0: word = pick (english_words, G_N_ELEMENTS (english_words), r, e); break;
                    case 1: word = pick (arabic_words, G_N_ELEMENTS (arabic_words), r, e); break;
                    default: word = pick (persian_words, G_N_ELEMENTS (persian_words), r, e); break;
                    }
                  g_string_append_printf (text, "%s%s", e > 0 ? ";" : "", word);
                }
              g_string_append_c (text, '\n');
            }
          if (both)
            g_string_append (text, "match = any\n");
        }
      g_string_append_printf (text, "tags = topic-%u\n", r % 37);
      if (r % 4 == 0)
        g_string_append_printf (text, "priority = %s\n", priorities[r % G_N_ELEMENTS (priorities)]);
    }
  return g_string_free (text, FALSE);
}

/* The --bulk-prefill rows, in one transaction on a connection of its own. */
static gboolean
bulk_prefill (const char *db_path, int tickets, GError **error)
{
  static const char *const steps[] = {
    "PRAGMA synchronous = OFF",
    "BEGIN",
    "CREATE TEMP TABLE n (i INTEGER PRIMARY KEY)",
    "WITH RECURSIVE c (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1)"
    " INSERT INTO n SELECT i FROM c",
    "INSERT INTO tickets (id, queue, customer_address, customer_name, subject, status,"
    " priority, team, language, created_at, updated_at)"
    " SELECT i, 'support', 'customer' || (i % max (?1 / 4, 1)) || '@prefill.example',"
    " 'Customer ' || i, 'Prefilled ticket ' || i,"
    " CASE i % 5 WHEN 0 THEN 'new' WHEN 1 THEN 'open' WHEN 2 THEN 'pending'"
    " WHEN 3 THEN 'resolved' ELSE 'closed' END, 'normal', NULL, 'ar',"
    " 1700000000 + i, 1700000000 + i FROM n",
    "INSERT INTO ticket_tags (ticket_id, tag) SELECT i, 'topic-' || (i % 37) FROM n",
    "INSERT INTO messages (id, ticket_id, queue, message_key, message_id, direction, sender,"
    " from_address, from_name, subject, mta_queue_id, received_at, body_text, size, truncated)"
    " SELECT i, i, 'support', 'prefill.' || i || '@prefill.example',"
    " 'prefill.' || i || '@prefill.example', 'customer',"
    " 'customer' || (i % max (?1 / 4, 1)) || '@prefill.example',"
    " 'customer' || (i % max (?1 / 4, 1)) || '@prefill.example', 'Customer ' || i,"
    " 'Prefilled ticket ' || i, 'PREFILL' || i, 1700000000 + i,"
    " printf ('%.*c', 1000, 'x') || i, 1100, 0 FROM n",
    "INSERT INTO message_ids (queue, message_id, ticket_id, origin)"
    " SELECT 'support', 'prefill.' || i || '@prefill.example', i, 'inbound' FROM n",
    "INSERT INTO events (ticket_id, message_row, kind, at, detail)"
    " SELECT i, i, 'created', 1700000000 + i, NULL FROM n",
    "INSERT INTO outbox (ticket_id, queue, kind, sender, recipient, message_id, data, status,"
    " attempts, created_at, queued_us, next_attempt_at, done_at, origin_queue_id, last_result)"
    " SELECT i, 'support', 'ack', '', 'customer' || (i % max (?1 / 4, 1)) || '@prefill.example',"
    " 'ack.' || i || '@prefill.example', zeroblob (1500), 'sent', 1, 1700000000 + i,"
    " 0, 1700000000 + i, 1700000000 + i, 'PREFILL' || i, '250 ok' FROM n",
    "DROP TABLE n",
    "COMMIT",
  };
  sqlite3 *db = NULL;
  if (sqlite3_open (db_path, &db) != SQLITE_OK)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: %s", db_path, sqlite3_errmsg (db));
      sqlite3_close (db);
      return FALSE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      sqlite3_stmt *stmt = NULL;
      int rc = sqlite3_prepare_v2 (db, steps[i], -1, &stmt, NULL);
      if (rc == SQLITE_OK && sqlite3_bind_parameter_count (stmt) > 0)
        sqlite3_bind_int (stmt, 1, tickets);
      if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
      if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        {
          g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "bulk prefill: %s: %s",
                       steps[i], sqlite3_errmsg (db));
          sqlite3_finalize (stmt);
          sqlite3_close (db);
          return FALSE;
        }
      sqlite3_finalize (stmt);
    }
  sqlite3_close (db);
  /* The rows went in with synchronous = OFF: put them on disk now, as a
   * desk's database is, or the first checkpoint of the timed mails would
   * pay for flushing the whole file (a stall of over a second at 1M). */
  int fd = open (db_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync (fd) != 0)
    {
      int saved = errno;
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "bulk prefill: syncing %s: %s",
                   db_path, g_strerror (saved));
      if (fd >= 0)
        close (fd);
      return FALSE;
    }
  close (fd);
  return TRUE;
}

int
main (int argc, char **argv)
{
  int mails = 5000, replies = 30, prefill = 0, bulk = 0, rules = 0, customers = 1000;
  g_autofree char *synchronous = g_strdup ("full");
  g_auto (GStrv) files = NULL;
  GOptionEntry entries[] = {
    { "mails", 0, 0, G_OPTION_ARG_INT, &mails, "Mails to run (default 5000)", "N" },
    { "synchronous", 0, 0, G_OPTION_ARG_STRING, &synchronous, "SQLite synchronous: full or normal", "MODE" },
    { "replies", 0, 0, G_OPTION_ARG_INT, &replies, "Percent of mails that reply to a ticket (default 30)", "PERCENT" },
    { "prefill", 0, 0, G_OPTION_ARG_INT, &prefill, "Tickets stored before timing (default 0)", "N" },
    { "bulk-prefill", 0, 0, G_OPTION_ARG_INT, &bulk, "Tickets written with SQL before timing (default 0)", "N" },
    { "customers", 0, 0, G_OPTION_ARG_INT, &customers, "Distinct senders the mails come from in turn (default 1000)", "N" },
    { "rules", 0, 0, G_OPTION_ARG_INT, &rules, "Synthetic keyword rules in the configuration (default 0)", "N" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &files, NULL, "FILE.eml..." },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- time ticket-milter's end-of-message work");
  g_option_context_add_main_entries (context, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (context, &argc, &argv, &error) || mails <= 0 || prefill < 0 || bulk < 0 || rules < 0 || customers <= 0
      || replies < 0 || replies > 100)
    {
      fprintf (stderr, "eom-bench: %s\n", error != NULL ? error->message : "bad numbers");
      return 64;
    }

  GPtrArray *templates = g_ptr_array_new_with_free_func (g_free);
  if (files == NULL)
    g_ptr_array_add (templates, builtin_mail ());
  for (char **file = files; file != NULL && *file != NULL; file++)
    {
      char *text = NULL;
      if (!g_file_get_contents (*file, &text, NULL, &error))
        {
          fprintf (stderr, "eom-bench: %s\n", error->message);
          return 66;
        }
      /* Each mail must be new, not a retry of the first: the file's own
       * Message-ID is kept under another name and a unique one put first. */
      GString *unique = g_string_new ("Message-ID: <MSGID@bench.invalid>\r\n");
      g_string_append (unique, text);
      g_string_replace (unique, "\nMessage-ID:", "\nX-Original-Message-ID:", 0);
      g_string_replace (unique, "\nMessage-Id:", "\nX-Original-Message-ID:", 0);
      g_string_replace (unique, "\nMessage-id:", "\nX-Original-Message-ID:", 0);
      g_ptr_array_add (templates, g_string_free (unique, FALSE));
      g_free (text);
    }

  g_autofree char *directory = g_dir_make_tmp ("tm-bench-XXXXXX", &error);
  g_autofree char *db = g_build_filename (directory, "tickets.db", NULL);
  g_autofree char *conf = g_build_filename (directory, "bench.conf", NULL);
  g_autofree char *rule_text = synthetic_rules (rules);
  g_autofree char *conf_body = g_strdup_printf ("[store]\npath = %s\nsynchronous = %s\n"
                                                "[queue support]\naddress = support@example.test\n%s",
                                                db, synchronous, rule_text);
  g_autofree char *conf_text = tm_test_config_text (conf_body);
  g_file_set_contents (conf, conf_text, -1, NULL);
  gint64 load_start = g_get_monotonic_time ();
  TmConfig *config = tm_config_load (conf, TRUE, &error);
  gint64 load_us = g_get_monotonic_time () - load_start;
  if (config == NULL)
    {
      fprintf (stderr, "eom-bench: %s\n", error->message);
      return 78;
    }
  TmStoreOptions options = { .busy_timeout_ms = 5000, .synchronous_full = config->synchronous_full,
                             .create = TRUE };
  TmStore *store = tm_store_open (db, &options, &error);
  g_assert_no_error (error);
  tm_message_library_init ();
  if (bulk > 0)
    {
      gint64 bulk_start = g_get_monotonic_time ();
      if (!bulk_prefill (db, bulk, &error))
        {
          fprintf (stderr, "eom-bench: %s\n", error->message);
          return 1;
        }
      fprintf (stderr, "eom-bench: %d tickets written in %.1f s\n", bulk,
               (g_get_monotonic_time () - bulk_start) / 1e6);
    }

  const char *recipients[] = { "support@example.test", NULL };
  TmEnvelope envelope = { .sender = NULL, .recipients = recipients,
                          .mta_queue_id = "BENCH" };
  TmParseOptions parse_options = { .fallback_charsets = (const char *const *) config->fallback_charsets,
                                   .hash_only_without_message_id = TRUE };
  gint64 *elapsed = g_new (gint64, mails);
  gint64 last_ticket = 0;
  GRand *rand = g_rand_new_with_seed (42);
  guint64 rule_tickets = 0, rule_matches = 0;  /* new tickets the rules ran on, and their matches */

  for (int round = 0; round < prefill + mails; round++)
    {
      const char *template = g_ptr_array_index (templates, (guint) round % templates->len);
      g_autofree char *unique = g_strdup_printf ("bench.%d", round);
      g_autofree char *with_id = NULL;
      GString *mail = g_string_new (template);
      g_string_replace (mail, "MSGID", unique, 0);
      g_autofree char *customer = g_strdup_printf ("customer%d", round % customers);
      g_string_replace (mail, "CUSTOMER", customer, 0);
      g_autofree char *sender = g_strdup_printf ("%s@example.net", customer);
      envelope.sender = sender;
      if (last_ticket > 0 && g_rand_int_range (rand, 0, 100) < replies)
        {
          g_autofree char *tag = g_strdup_printf ("Subject: Re: [Ticket#%" G_GINT64_FORMAT "] ",
                                                  last_ticket);
          g_string_replace (mail, "Subject: ", tag, 1);
        }
      gint64 start = g_get_monotonic_time ();
      TmMessage *message = tm_message_parse (mail->str, mail->len, &parse_options);
      TmDecision *decision = tm_pipeline_run (config, store, message, &envelope,
                                              1795000000 + round, TRUE, &error);
      gint64 end = g_get_monotonic_time ();
      if (decision == NULL)
        {
          fprintf (stderr, "eom-bench: mail %d: %s\n", round, error->message);
          return 1;
        }
      last_ticket = decision->ticket_id;
      if (round >= prefill && decision->rules.matches != NULL)
        {
          rule_tickets++;
          rule_matches += decision->rules.matches->len;
        }
      if (round >= prefill)
        elapsed[round - prefill] = end - start;
      tm_decision_free (&decision);
      tm_message_free (&message);
      g_string_free (mail, TRUE);
    }

  qsort (elapsed, (size_t) mails, sizeof *elapsed, compare_gint64);
  gint64 total = 0;
  for (int i = 0; i < mails; i++)
    total += elapsed[i];
  printf ("mails=%d prefill=%d bulk_prefill=%d customers=%d synchronous=%s replies=%d%% rules=%u\n",
          mails, prefill, bulk, customers, synchronous, replies, tm_rule_set_count (config->rules));
  printf ("eom_ms median=%.3f p90=%.3f p99=%.3f max=%.3f mean=%.3f\n",
          elapsed[mails / 2] / 1000.0, elapsed[mails * 90 / 100] / 1000.0,
          elapsed[mails * 99 / 100] / 1000.0, elapsed[mails - 1] / 1000.0,
          (double) total / mails / 1000.0);
  printf ("config_load_ms=%.3f rules_applied=%" G_GUINT64_FORMAT " matches_per_applied=%.2f\n",
          load_us / 1000.0, rule_tickets,
          rule_tickets > 0 ? (double) rule_matches / (double) rule_tickets : 0.0);
  printf ("mails_per_second_one_thread=%.0f\n", mails / (total / 1e6));

  g_free (elapsed);
  g_rand_free (rand);
  tm_store_close (&store);
  tm_config_free (&config);
  g_ptr_array_unref (templates);
  tm_test_remove_directory (directory);
  return 0;
}
