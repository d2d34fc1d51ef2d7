/* store.c - the ticket database: one SQLite connection, WAL, prepared statements.
 *
 * Synopsis (the full contract is in store.h):
 *   tm_store_open ()     opens or creates the file, sets the pragmas, migrates
 *                        the schema forward, prepares every statement.
 *                        NULL + TM_STORE_ERROR_OPEN / _SCHEMA / _BUSY.
 *   tm_store_begin ()    takes the store's mutex, joins the open batch (or
 *                        starts one with BEGIN IMMEDIATE), SAVEPOINT mail.
 *   tm_store_commit ()   RELEASE into the batch; returns once the batch has
 *                        committed (group commit, below). Releases the mutex.
 *   tm_store_rollback () ROLLBACK TO the mail's savepoint; the batch goes on.
 *   lookups, inserts     inside a transaction, from the thread that began it.
 *   readers              get_ticket, list_tickets, ticket_messages: inside a
 *                        transaction, or outside one in a single-threaded
 *                        program, where they read one consistent snapshot.
 *   tm_store_close ()    finalizes the statements, closes the connection.
 *
 * Connection settings: journal_mode = WAL (readers never block the writer),
 * foreign_keys = ON, temp_store = MEMORY (each mail's savepoint journal
 * stays in memory instead of spilling to a temporary file under the lock),
 * and busy_timeout_ms for waiting on another process's write lock.
 * Durability: SQLite runs at synchronous = NORMAL (no fsync inside COMMIT).
 * With synchronous_full, a commit returns only after this module has
 * fdatasync'd the WAL file, which it does after the COMMIT, with the
 * store's mutex released: the next batch's SQL runs while the disk
 * flushes the last one. That is the promise of SQLite's FULL (every
 * committed transaction is on disk) at a fraction of the time the lock is
 * held. Checkpoints sync the WAL and the database themselves.
 * The connection is opened SQLITE_OPEN_NOMUTEX: SQLite does no locking of its
 * own, so the store's GMutex is what keeps two threads off the connection.
 *
 * Schema: PRAGMA user_version is the schema version. `migrations` below is
 * an array of steps; step N takes the database from version N to N + 1, each
 * in its own BEGIN IMMEDIATE transaction that re-reads user_version first, so
 * that a milter and a ticketctl starting together migrate once, not twice. A
 * database newer than this program is refused rather than guessed at.
 * Rows are never deleted by this module; foreign keys have no ON DELETE
 * action, so deleting a ticket that still has messages or events fails
 * rather than leaving orphans (a purge command will have to delete children
 * first, and will want an index on events.message_row).
 *
 * Statements: every statement is prepared once at open with
 * SQLITE_PREPARE_PERSISTENT and reset and cleared after each use, on success
 * and on failure alike: a failed step inside a transaction must leave the
 * connection able to roll back and to take the next mail, without a restart.
 * No SQL is built from data; every value is a bound parameter. Strings are
 * bound SQLITE_STATIC: the caller's strings outlive the step, because each
 * statement is reset before the function returns.
 *
 * Errors: SQLITE_BUSY and SQLITE_LOCKED become TM_STORE_ERROR_BUSY (the
 * milter answers tempfail); anything else TM_STORE_ERROR_FAILED, with the
 * operation and SQLite's message ("insert message: database or disk is
 * full"). A NOT NULL or CHECK violation (a status that is not one of the
 * five) is reported the same way rather than asserted: it costs a tempfail,
 * never the daemon.
 *
 * Ownership: TmTicket and TmStoredMessage returned by the readers are owned
 * by the caller and freed with tm_ticket_free / tm_stored_message_free (the
 * GPtrArrays do it for you). Structs passed in are only read, except the id
 * fields that the insert functions set.
 */
#include "store.h"

#include "message.h"

#include <sqlite3.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

G_DEFINE_QUARK (tm-store-error-quark, tm_store_error)

/* ---- schema ----------------------------------------------------------- */

typedef struct {
  int version;               /* user_version once this step has run */
  const char *sql;
} Migration;

static const Migration migrations[] = {
  { 1,
    "CREATE TABLE tickets ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"   /* never reuse a ticket number */
    "  queue TEXT NOT NULL,"
    "  customer_address TEXT NOT NULL,"
    "  customer_name TEXT,"
    "  subject TEXT NOT NULL,"
    "  status TEXT NOT NULL"
    "    CHECK (status IN ('new', 'open', 'pending', 'resolved', 'closed')),"
    "  priority TEXT NOT NULL"
    "    CHECK (priority IN ('low', 'normal', 'high', 'urgent')),"
    "  team TEXT,"
    "  assignee TEXT,"
    "  language TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    /* The rowid keeps the tags in the order they were given. */
    "CREATE TABLE ticket_tags ("
    "  ticket_id INTEGER NOT NULL REFERENCES tickets (id),"
    "  tag TEXT NOT NULL,"
    "  PRIMARY KEY (ticket_id, tag)"
    ");"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  ticket_id INTEGER NOT NULL REFERENCES tickets (id),"
    "  queue TEXT NOT NULL,"
    "  message_key TEXT NOT NULL,"
    "  message_id TEXT,"
    "  direction TEXT NOT NULL"
    "    CHECK (direction IN ('customer', 'agent', 'note', 'autoreply', 'automated')),"
    "  sender TEXT NOT NULL,"
    "  from_address TEXT,"
    "  from_name TEXT,"
    "  subject TEXT NOT NULL,"
    "  mta_queue_id TEXT,"
    "  received_at INTEGER NOT NULL,"
    "  body_text TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  truncated INTEGER NOT NULL CHECK (truncated IN (0, 1)),"
    "  warnings TEXT,"
    "  UNIQUE (queue, message_key)"             /* the idempotency key */
    ");"
    "CREATE TABLE attachments ("
    "  id INTEGER PRIMARY KEY,"
    "  message_row INTEGER NOT NULL REFERENCES messages (id),"
    "  filename TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  size INTEGER NOT NULL"
    ");"
    /* A Message-ID threads within its queue only; the key makes the
     * threading lookup one primary-key probe. */
    "CREATE TABLE message_ids ("
    "  queue TEXT NOT NULL,"
    "  message_id TEXT NOT NULL,"
    "  ticket_id INTEGER NOT NULL REFERENCES tickets (id),"
    "  origin TEXT NOT NULL,"                   /* inbound, generated, ... */
    "  PRIMARY KEY (queue, message_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  ticket_id INTEGER NOT NULL REFERENCES tickets (id),"
    "  message_row INTEGER REFERENCES messages (id),"
    "  kind TEXT NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  detail TEXT"
    ");"
    /* ticketctl list: every filter combination, newest first (the rowid,
     * the tie-break, is part of every index). */
    "CREATE INDEX tickets_by_updated ON tickets (updated_at);"
    "CREATE INDEX tickets_by_status ON tickets (status, updated_at);"
    "CREATE INDEX tickets_by_queue ON tickets (queue, status, updated_at);"
    /* ack rate limits and "other tickets of this customer". */
    "CREATE INDEX tickets_by_customer ON tickets (customer_address);"
    "CREATE INDEX messages_by_ticket ON messages (ticket_id, received_at);"
    "CREATE INDEX attachments_by_message ON attachments (message_row);"
    "CREATE INDEX events_by_ticket ON events (ticket_id, at);" },
  { 2,
    /* Mail the desk sends, written in the same transaction as the ticket
     * that caused it, delivered later by the outbox worker. `data` is the
     * whole message, ready for SMTP DATA. */
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ticket_id INTEGER NOT NULL REFERENCES tickets (id),"
    "  queue TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"                     /* template: ack, after-hours */
    "  sender TEXT NOT NULL,"                   /* envelope sender, '' for <> */
    "  recipient TEXT NOT NULL,"                /* lower-cased envelope recipient */
    "  message_id TEXT NOT NULL,"
    "  data BLOB NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"            /* the pipeline's clock */
    "  queued_us INTEGER NOT NULL,"             /* wall clock, microseconds */
    "  next_attempt_at INTEGER NOT NULL,"       /* wall clock, seconds */
    "  done_at INTEGER,"
    "  origin_queue_id TEXT,"                   /* the MTA queue id of the cause */
    "  last_result TEXT"
    ");"
    "CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';"
    /* The per-sender rate limit: the latest reply to one address from one queue. */
    "CREATE INDEX outbox_by_recipient ON outbox (queue, recipient, created_at);" },
  { 3,
    /* The customer's history on every mail (X-Ticket-Customer) read from
     * indexes alone: counting open tickets no longer visits each row. */
    "CREATE INDEX tickets_by_customer_status ON tickets (customer_address, status);"
    /* Set (wall clock) while a worker hands the mail to the MTA, cleared
     * with the outcome: a row still marked at start-up was interrupted by a
     * crash, and may have reached the MTA already. */
    "ALTER TABLE outbox ADD COLUMN handing_over_since INTEGER;" },
};

int
tm_store_schema_version (void)
{
  return migrations[G_N_ELEMENTS (migrations) - 1].version;
}

/* ---- statements ------------------------------------------------------- */

typedef enum {
  STMT_BEGIN_WRITE,
  STMT_BEGIN_READ,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_SAVEPOINT,
  STMT_RELEASE_SAVEPOINT,
  STMT_ROLLBACK_TO_SAVEPOINT,
  STMT_FIND_MESSAGE,
  STMT_FIND_BY_MESSAGE_ID,
  STMT_TICKET_QUEUE,
  STMT_GET_TICKET,
  STMT_TICKET_TAGS,
  STMT_INSERT_TICKET,
  STMT_INSERT_TAG,
  STMT_TOUCH_TICKET,
  STMT_INSERT_MESSAGE,
  STMT_INSERT_ATTACHMENT,
  STMT_INSERT_MESSAGE_ID,
  STMT_INSERT_EVENT,
  STMT_LIST_ALL,
  STMT_LIST_BY_STATUS,
  STMT_LIST_BY_QUEUE,
  STMT_LIST_BY_QUEUE_STATUS,
  STMT_TICKET_MESSAGES,
  STMT_MESSAGE_ATTACHMENTS,
  STMT_TICKET_EVENTS,
  STMT_CUSTOMER_HISTORY,
  STMT_OUTBOX_INSERT,
  STMT_OUTBOX_LAST_TO,
  STMT_OUTBOX_NEXT_DUE,
  STMT_OUTBOX_EARLIEST,
  STMT_OUTBOX_SENT,
  STMT_OUTBOX_RETRY,
  STMT_OUTBOX_FAILED,
  STMT_OUTBOX_LIST,
  STMT_OUTBOX_LIST_BY_STATUS,
  STMT_OUTBOX_HANDING_OVER,
  STMT_OUTBOX_INTERRUPTED,
  STMT_OUTBOX_CLEAR_HANDING_OVER,
  N_STATEMENTS
} StatementId;

#define OUTBOX_COLUMNS \
  "id, ticket_id, queue, kind, sender, recipient, message_id, data, status, " \
  "attempts, created_at, queued_us, next_attempt_at, done_at, origin_queue_id, last_result"

#define TICKET_COLUMNS \
  "id, queue, customer_address, customer_name, subject, status, priority, " \
  "team, assignee, language, created_at, updated_at"

/* One statement per filter combination rather than "?1 IS NULL OR ...", so
 * that each can use its index. LIMIT -1 is SQLite's "no limit". */
#define LIST_TAIL " ORDER BY updated_at DESC, id DESC LIMIT ?3"

static const char *const statement_sql[N_STATEMENTS] = {
  [STMT_BEGIN_WRITE] = "BEGIN IMMEDIATE",
  [STMT_BEGIN_READ] = "BEGIN DEFERRED",
  [STMT_COMMIT] = "COMMIT",
  [STMT_ROLLBACK] = "ROLLBACK",
  [STMT_SAVEPOINT] = "SAVEPOINT mail",
  [STMT_RELEASE_SAVEPOINT] = "RELEASE mail",
  [STMT_ROLLBACK_TO_SAVEPOINT] = "ROLLBACK TO mail",
  [STMT_FIND_MESSAGE] =
    "SELECT ticket_id FROM messages WHERE queue = ?1 AND message_key = ?2",
  [STMT_FIND_BY_MESSAGE_ID] =
    "SELECT ticket_id FROM message_ids WHERE queue = ?1 AND message_id = ?2",
  [STMT_TICKET_QUEUE] = "SELECT queue FROM tickets WHERE id = ?1",
  [STMT_GET_TICKET] = "SELECT " TICKET_COLUMNS " FROM tickets WHERE id = ?1",
  [STMT_TICKET_TAGS] = "SELECT tag FROM ticket_tags WHERE ticket_id = ?1 ORDER BY rowid",
  [STMT_INSERT_TICKET] =
    "INSERT INTO tickets (queue, customer_address, customer_name, subject, status,"
    " priority, team, assignee, language, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
  /* A tag given twice is one tag. */
  [STMT_INSERT_TAG] =
    "INSERT INTO ticket_tags (ticket_id, tag) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
  [STMT_TOUCH_TICKET] =
    "UPDATE tickets SET updated_at = ?2, status = coalesce (?3, status) WHERE id = ?1",
  [STMT_INSERT_MESSAGE] =
    "INSERT INTO messages (ticket_id, queue, message_key, message_id, direction,"
    " sender, from_address, from_name, subject, mta_queue_id, received_at,"
    " body_text, size, truncated, warnings)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
  /* A part without a type is what MIME says it is: application/octet-stream. */
  [STMT_INSERT_ATTACHMENT] =
    "INSERT INTO attachments (message_row, filename, content_type, size)"
    " VALUES (?1, coalesce (?2, ''), coalesce (?3, 'application/octet-stream'), ?4)",
  /* The first ticket a Message-ID was seen on keeps it. ON CONFLICT rather
   * than INSERT OR IGNORE: only the duplicate key is ignored, a NOT NULL
   * violation is still an error. */
  [STMT_INSERT_MESSAGE_ID] =
    "INSERT INTO message_ids (queue, message_id, ticket_id, origin)"
    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
  [STMT_INSERT_EVENT] =
    "INSERT INTO events (ticket_id, message_row, kind, at, detail)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
  [STMT_LIST_ALL] =
    "SELECT " TICKET_COLUMNS " FROM tickets WHERE ?1 IS NULL AND ?2 IS NULL" LIST_TAIL,
  [STMT_LIST_BY_STATUS] =
    "SELECT " TICKET_COLUMNS " FROM tickets WHERE status = ?1 AND ?2 IS NULL" LIST_TAIL,
  [STMT_LIST_BY_QUEUE] =
    "SELECT " TICKET_COLUMNS " FROM tickets WHERE ?1 IS NULL AND queue = ?2" LIST_TAIL,
  [STMT_LIST_BY_QUEUE_STATUS] =
    "SELECT " TICKET_COLUMNS " FROM tickets WHERE status = ?1 AND queue = ?2" LIST_TAIL,
  [STMT_TICKET_MESSAGES] =
    "SELECT id, ticket_id, queue, message_key, message_id, direction, sender,"
    " from_address, from_name, subject, mta_queue_id, received_at, body_text,"
    " size, truncated, warnings"
    " FROM messages WHERE ticket_id = ?1 ORDER BY received_at, id",
  [STMT_MESSAGE_ATTACHMENTS] =
    "SELECT filename, content_type, size FROM attachments"
    " WHERE message_row = ?1 ORDER BY id",
  [STMT_TICKET_EVENTS] =
    "SELECT kind, at, detail FROM events WHERE ticket_id = ?1 ORDER BY at, id",
  /* The other tickets of one customer: how many, how many still open, the
   * latest - among the newest ?3 + 1 of them, so that an address with
   * thousands of tickets (a robot, a shared form) costs no more than one
   * with a hundred. */
  /* Each count stops one past the limit (the "+" of the header) and reads
   * only an index: (customer_address) holds the id, and
   * (customer_address, status) the status. */
  [STMT_CUSTOMER_HISTORY] =
    "SELECT (SELECT count (*) FROM (SELECT 1 FROM tickets INDEXED BY tickets_by_customer"
    "          WHERE customer_address = ?1 AND id <> ?2 LIMIT ?3 + 1)),"
    " (SELECT count (*) FROM (SELECT 1 FROM tickets INDEXED BY tickets_by_customer_status"
    "          WHERE customer_address = ?1 AND status IN ('new', 'open', 'pending')"
    "          AND id <> ?2 LIMIT ?3 + 1)),"
    " coalesce ((SELECT id FROM tickets INDEXED BY tickets_by_customer"
    "          WHERE customer_address = ?1 AND id <> ?2 ORDER BY id DESC LIMIT 1), 0)",
  [STMT_OUTBOX_INSERT] =
    "INSERT INTO outbox (ticket_id, queue, kind, sender, recipient, message_id, data,"
    " status, attempts, created_at, queued_us, next_attempt_at, origin_queue_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?9, ?10, ?11)",
  [STMT_OUTBOX_LAST_TO] =
    "SELECT max (created_at) FROM outbox WHERE queue = ?1 AND recipient = ?2",
  [STMT_OUTBOX_NEXT_DUE] =
    "SELECT " OUTBOX_COLUMNS " FROM outbox"
    " WHERE status = 'pending' AND next_attempt_at <= ?1"
    " ORDER BY next_attempt_at, id LIMIT ?2",
  [STMT_OUTBOX_EARLIEST] =
    "SELECT min (next_attempt_at) FROM outbox WHERE status = 'pending'",
  [STMT_OUTBOX_SENT] =
    "UPDATE outbox SET status = 'sent', attempts = attempts + 1, done_at = ?2,"
    " last_result = ?3, handing_over_since = NULL WHERE id = ?1 AND status = 'pending'",
  [STMT_OUTBOX_RETRY] =
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2,"
    " last_result = ?3, handing_over_since = NULL WHERE id = ?1 AND status = 'pending'",
  [STMT_OUTBOX_FAILED] =
    "UPDATE outbox SET status = 'failed', attempts = attempts + 1, done_at = ?2,"
    " last_result = ?3, handing_over_since = NULL WHERE id = ?1 AND status = 'pending'",
  [STMT_OUTBOX_HANDING_OVER] =
    "UPDATE outbox SET handing_over_since = ?2 WHERE id = ?1 AND status = 'pending'",
  [STMT_OUTBOX_INTERRUPTED] =
    "SELECT " OUTBOX_COLUMNS " FROM outbox"
    " WHERE status = 'pending' AND handing_over_since IS NOT NULL ORDER BY id",
  [STMT_OUTBOX_CLEAR_HANDING_OVER] =
    "UPDATE outbox SET handing_over_since = NULL, last_result = ?3"
    " WHERE id = ?1 AND status = 'pending'",
  [STMT_OUTBOX_LIST] =
    "SELECT " OUTBOX_COLUMNS " FROM outbox WHERE ?1 IS NULL ORDER BY id DESC LIMIT ?2",
  [STMT_OUTBOX_LIST_BY_STATUS] =
    "SELECT " OUTBOX_COLUMNS " FROM outbox WHERE status = ?1 ORDER BY id DESC LIMIT ?2",
};

/* A mail whose work is in the open batch, waiting for the batch's COMMIT.
 * Lives on its thread's stack for the length of tm_store_commit(). */
typedef struct {
  guint64 batch;             /* the batch_number of the batch it joined */
  gboolean done;             /* the batch ended, one way or the other */
  gboolean committed;        /* ... and its COMMIT succeeded */
  GError *error;             /* why not, when !committed (owned) */
} BatchMember;

struct TmStore {
  sqlite3 *db;
  char *path;                              /* for messages */
  /* Held by the one thread whose mail is being worked on: from begin to
   * the end of its turn in commit/rollback, and by whoever commits a batch. */
  GMutex lock;
  GCond batch_ended;                       /* broadcast when a batch ends */
  gint writers_waiting;                    /* atomic: threads queued in begin */
  gboolean batch_open;                     /* our BEGIN IMMEDIATE is open */
  guint64 batch_number;                    /* counts BEGINs: which batch is open */
  GPtrArray *batch_members;                /* of BatchMember*, not owned */
  guint group_commit_max;                  /* mails per batch, at least 1 */
  gint64 batch_deadline;                   /* monotonic us: the open batch commits by then */
  guint last_batch_size;                   /* mails in the batch before */
  gboolean sync_after_commit;              /* synchronous_full on a file database */
  int wal_fd;                              /* the -wal file, for fdatasync; -1 until needed */
  gssize commits;                          /* atomic: batches committed */
  gssize mails_committed;                  /* atomic: mails in those batches */
  gssize wal_syncs;                        /* atomic: successful sync_wal calls */
  sqlite3_stmt *statements[N_STATEMENTS];
};

/* ---- helpers ---------------------------------------------------------- */

static gboolean
is_busy (int rc)
{
  int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

/* "PATH: reason" for the first of the database's files this process may
 * not write (an immutable file, a read-only mount), or NULL: what SQLite's
 * "disk I/O error" leaves out when it kept no errno. */
static char *
unwritable_file (TmStore *store)
{
  static const char *const suffixes[] = { "", "-wal", "-shm" };
  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (store->path, suffixes[i], NULL);
      if (faccessat (AT_FDCWD, path, W_OK, AT_EACCESS) != 0 && errno != ENOENT)
        return g_strdup_printf ("%s: %s", path, g_strerror (errno));
    }
  return NULL;
}

/* Sets *error from the connection's last failure; call before the failed
 * statement is reset, while sqlite3_errmsg still describes it. */
static void
set_sqlite_error (TmStore *store, int rc, const char *operation, GError **error)
{
  /* "disk I/O error" alone does not tell an admin what to fix; the system's
   * own word (read-only file system, permission, no space) does. */
  int primary = rc & 0xff;
  int system_errno = sqlite3_system_errno (store->db);
  gboolean about_files = primary == SQLITE_IOERR || primary == SQLITE_FULL
                         || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY;
  g_autofree char *unwritable = about_files && system_errno == 0 ? unwritable_file (store) : NULL;
  if (about_files && system_errno != 0)
    g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED, "%s: %s (%s)", operation,
                 sqlite3_errmsg (store->db), g_strerror (system_errno));
  else if (unwritable != NULL)
    g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED, "%s: %s (%s)", operation,
                 sqlite3_errmsg (store->db), unwritable);
  else
    g_set_error (error, TM_STORE_ERROR,
                 is_busy (rc) ? TM_STORE_ERROR_BUSY : TM_STORE_ERROR_FAILED,
                 "%s: %s", operation, sqlite3_errmsg (store->db));
}

static sqlite3_stmt *
statement (TmStore *store, StatementId id)
{
  return store->statements[id];
}

/* Makes a statement ready for its next use, whatever happened to it. */
static void
release (sqlite3_stmt *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}

static void
bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
  /* A NULL pointer binds SQL NULL. */
  sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
}

static void
bind_int64 (sqlite3_stmt *stmt, int index, gint64 value)
{
  sqlite3_bind_int64 (stmt, index, (sqlite3_int64) value);
}

/* Runs a statement that returns no rows, then releases it. */
static gboolean
run (TmStore *store, sqlite3_stmt *stmt, const char *operation, GError **error)
{
  int rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    {
      set_sqlite_error (store, rc, operation, error);
      release (stmt);
      return FALSE;
    }
  release (stmt);
  return TRUE;
}

/* Runs a statement that returns at most one row of one integer; *value is 0
 * when there is no row. Releases it. */
static gboolean
query_int64 (TmStore *store, sqlite3_stmt *stmt, const char *operation, gint64 *value,
             GError **error)
{
  *value = 0;
  int rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      *value = sqlite3_column_int64 (stmt, 0);
      rc = SQLITE_DONE;
    }
  if (rc != SQLITE_DONE)
    {
      set_sqlite_error (store, rc, operation, error);
      release (stmt);
      return FALSE;
    }
  release (stmt);
  return TRUE;
}

static char *
column_string (sqlite3_stmt *stmt, int column)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, column));
}

/* Ends whatever transaction is open. SQLite ends one by itself after some
 * failures (disk full, I/O error), and ROLLBACK then says "no transaction is
 * active": that is success here. */
static void
rollback_if_open (TmStore *store)
{
  if (sqlite3_get_autocommit (store->db))
    return;
  sqlite3_stmt *stmt = statement (store, STMT_ROLLBACK);
  sqlite3_step (stmt);
  release (stmt);
}

/* The readers run inside the caller's transaction when there is one; else
 * (ticketctl) inside a read transaction of their own, so that a ticket, its
 * tags and its messages come from one snapshot. */
static gboolean
read_begin (TmStore *store, gboolean *own_transaction, GError **error)
{
  *own_transaction = FALSE;
  if (!sqlite3_get_autocommit (store->db))
    return TRUE;
  if (!run (store, statement (store, STMT_BEGIN_READ), "begin reading", error))
    return FALSE;
  *own_transaction = TRUE;
  return TRUE;
}

static void
read_end (TmStore *store, gboolean own_transaction)
{
  if (!own_transaction)
    return;
  /* A read transaction has nothing to keep: ROLLBACK cannot lose data and,
   * unlike COMMIT, cannot fail for a reason worth reporting. */
  rollback_if_open (store);
}

static void
attachment_free (gpointer data)
{
  TmAttachment *attachment = data;
  g_free (attachment->filename);
  g_free (attachment->content_type);
  g_free (attachment);
}

void
tm_ticket_free (TmTicket *ticket)
{
  if (ticket == NULL)
    return;
  g_free (ticket->queue);
  g_free (ticket->customer_address);
  g_free (ticket->customer_name);
  g_free (ticket->subject);
  g_free (ticket->status);
  g_free (ticket->priority);
  g_free (ticket->team);
  g_free (ticket->assignee);
  g_free (ticket->language);
  g_strfreev (ticket->tags);
  g_free (ticket);
}

void
tm_stored_message_free (TmStoredMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->queue);
  g_free (message->message_key);
  g_free (message->message_id);
  g_free (message->direction);
  g_free (message->sender);
  g_free (message->from_address);
  g_free (message->from_name);
  g_free (message->subject);
  g_free (message->mta_queue_id);
  g_free (message->body_text);
  g_free (message->warnings);
  if (message->attachments != NULL)
    g_ptr_array_unref (message->attachments);
  g_free (message);
}

/* ---- open and close --------------------------------------------------- */

/* Runs constant SQL (pragmas, migrations) that is not worth preparing. */
static int
exec_constant (sqlite3 *db, const char *sql)
{
  return sqlite3_exec (db, sql, NULL, NULL, NULL);
}

static int
read_user_version (sqlite3 *db, int *version)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          *version = sqlite3_column_int (stmt, 0);
          rc = SQLITE_OK;
        }
    }
  sqlite3_finalize (stmt);
  return rc;
}

static gboolean
refuse_newer (const TmStore *store, int version, GError **error)
{
  if (version <= tm_store_schema_version ())
    return FALSE;
  g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_SCHEMA,
               "%s: database schema version %d is newer than this ticket-milter (%d)",
               store->path, version, tm_store_schema_version ());
  return TRUE;
}

static gboolean
set_wal (TmStore *store, GError **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (store->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
  g_autofree char *mode = NULL;
  if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      mode = column_string (stmt, 0);
      rc = SQLITE_OK;
    }
  if (rc != SQLITE_OK)
    {
      g_set_error (error, TM_STORE_ERROR, is_busy (rc) ? TM_STORE_ERROR_BUSY : TM_STORE_ERROR_OPEN,
                   "%s: cannot switch to WAL mode: %s", store->path, sqlite3_errmsg (store->db));
      sqlite3_finalize (stmt);
      return FALSE;
    }
  sqlite3_finalize (stmt);
  /* An in-memory database answers "memory": there is no file to share. */
  const char *file = sqlite3_db_filename (store->db, "main");
  if ((file == NULL || *file == '\0') || g_ascii_strcasecmp (mode, "wal") == 0)
    return TRUE;
  g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_OPEN,
               "%s: cannot switch to WAL mode (journal mode stays %s)", store->path,
               mode != NULL ? mode : "unknown");
  return FALSE;
}

/* Runs one step of the migration, or nothing when another process already
 * has; sets *done when the schema is current. */
static gboolean
migrate_once (TmStore *store, gboolean *done, GError **error)
{
  *done = FALSE;
  int rc = exec_constant (store->db, "BEGIN IMMEDIATE");
  int version = 0;
  if (rc == SQLITE_OK)
    rc = read_user_version (store->db, &version);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, TM_STORE_ERROR, is_busy (rc) ? TM_STORE_ERROR_BUSY : TM_STORE_ERROR_SCHEMA,
                   "%s: cannot read the schema version: %s", store->path,
                   sqlite3_errmsg (store->db));
      rollback_if_open (store);
      return FALSE;
    }
  if (refuse_newer (store, version, error))
    {
      rollback_if_open (store);
      return FALSE;
    }
  if (version == tm_store_schema_version ())
    {
      exec_constant (store->db, "COMMIT");
      rollback_if_open (store);
      *done = TRUE;
      return TRUE;
    }

  const Migration *step = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (migrations) && step == NULL; i++)
    if (migrations[i].version > version)
      step = &migrations[i];
  g_assert (step != NULL);
  /* PRAGMA takes no parameters; the number is our own constant, not data. */
  g_autofree char *set_version = g_strdup_printf ("PRAGMA user_version = %d", step->version);
  rc = exec_constant (store->db, step->sql);
  if (rc == SQLITE_OK)
    rc = exec_constant (store->db, set_version);
  if (rc == SQLITE_OK)
    rc = exec_constant (store->db, "COMMIT");
  if (rc != SQLITE_OK)
    {
      g_set_error (error, TM_STORE_ERROR, is_busy (rc) ? TM_STORE_ERROR_BUSY : TM_STORE_ERROR_SCHEMA,
                   "%s: migrating the schema from version %d to %d: %s", store->path,
                   version, step->version, sqlite3_errmsg (store->db));
      rollback_if_open (store);
      return FALSE;
    }
  return TRUE;
}

static gboolean
migrate (TmStore *store, GError **error)
{
  gboolean done = FALSE;
  while (!done)
    if (!migrate_once (store, &done, error))
      return FALSE;
  return TRUE;
}

static gboolean
prepare_statements (TmStore *store, GError **error)
{
  for (int id = 0; id < N_STATEMENTS; id++)
    {
      int rc = sqlite3_prepare_v3 (store->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                   &store->statements[id], NULL);
      if (rc != SQLITE_OK)
        {
          g_set_error (error, TM_STORE_ERROR, is_busy (rc) ? TM_STORE_ERROR_BUSY : TM_STORE_ERROR_SCHEMA,
                       "%s: preparing \"%s\": %s", store->path, statement_sql[id],
                       sqlite3_errmsg (store->db));
          return FALSE;
        }
    }
  return TRUE;
}

TmStore *
tm_store_open (const char *path, const TmStoreOptions *options, GError **error)
{
  g_return_val_if_fail (path != NULL && options != NULL, NULL);
  TmStore *store = g_new0 (TmStore, 1);
  store->path = g_strdup (path);
  g_mutex_init (&store->lock);
  g_cond_init (&store->batch_ended);
  store->batch_members = g_ptr_array_new ();
  store->group_commit_max = MAX (options->group_commit_max, 1);
  store->wal_fd = -1;

  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (options->create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2 (path, &store->db, flags, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_OPEN,
                   "cannot open the ticket database %s: %s", path,
                   store->db != NULL ? sqlite3_errmsg (store->db) : sqlite3_errstr (rc));
      tm_store_close (&store);
      return NULL;
    }
  sqlite3_busy_timeout (store->db, (int) MIN (options->busy_timeout_ms, (guint) G_MAXINT));
  /* SQLite quietly falls back to read-only when the file is not writable;
   * a store that is to write (create) would then fail every mail, for ever:
   * the connection stays read-only after the admin fixes the file. */
  if (options->create && sqlite3_db_readonly (store->db, "main") == 1)
    {
      int saved = faccessat (AT_FDCWD, path, W_OK, AT_EACCESS) == 0 ? 0 : errno;
      g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_OPEN,
                   "the ticket database %s is read-only to this process (uid %u): %s", path,
                   (unsigned) geteuid (), saved != 0 ? g_strerror (saved) : "opened read-only");
      tm_store_close (&store);
      return NULL;
    }

  /* Read the version before anything writes: a newer database is left as
   * it is. This is also where a file that is no database shows. */
  int version = 0;
  rc = read_user_version (store->db, &version);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, TM_STORE_ERROR, is_busy (rc) ? TM_STORE_ERROR_BUSY : TM_STORE_ERROR_OPEN,
                   "cannot open the ticket database %s: %s", path, sqlite3_errmsg (store->db));
      tm_store_close (&store);
      return NULL;
    }
  if (refuse_newer (store, version, error) || !set_wal (store, error))
    {
      tm_store_close (&store);
      return NULL;
    }
  /* FULL is kept by sync_wal, outside the lock (see the top of this file). */
  const char *file = sqlite3_db_filename (store->db, "main");
  store->sync_after_commit = options->synchronous_full && file != NULL && *file != '\0';
  rc = exec_constant (store->db, "PRAGMA synchronous = NORMAL");
  if (rc == SQLITE_OK)
    rc = exec_constant (store->db, "PRAGMA temp_store = MEMORY");
  if (rc == SQLITE_OK)
    rc = exec_constant (store->db, "PRAGMA foreign_keys = ON");
  /* 16 MiB of page cache instead of 2: the indexes a mail touches stay in
   * memory as the database grows, instead of being read back page by page. */
  if (rc == SQLITE_OK)
    rc = exec_constant (store->db, "PRAGMA cache_size = -16384");
  if (rc != SQLITE_OK)
    {
      g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_OPEN, "%s: setting pragmas: %s",
                   path, sqlite3_errmsg (store->db));
      tm_store_close (&store);
      return NULL;
    }
  if (!migrate (store, error) || !prepare_statements (store, error))
    {
      tm_store_close (&store);
      return NULL;
    }
  return store;
}

void
tm_store_close (TmStore **store)
{
  if (store == NULL || *store == NULL)
    return;
  TmStore *closing = *store;
  *store = NULL;
  for (int id = 0; id < N_STATEMENTS; id++)
    sqlite3_finalize (closing->statements[id]);
  /* Every statement is finalized, so this cannot fail with SQLITE_BUSY; an
   * open transaction (a caller's bug) is rolled back by SQLite. */
  sqlite3_close (closing->db);
  if (closing->wal_fd >= 0)
    close (closing->wal_fd);
  g_mutex_clear (&closing->lock);
  g_cond_clear (&closing->batch_ended);
  g_ptr_array_unref (closing->batch_members);
  g_free (closing->path);
  g_free (closing);
}

/* ---- transactions: group commit --------------------------------------
 *
 * An fsync costs more than all the SQL of a mail, so mails that arrive
 * together share one. The first writer opens BEGIN IMMEDIATE (the batch);
 * each mail's work runs inside SAVEPOINT mail, which the mail RELEASEs into
 * the batch when it commits or ROLLBACKs TO when it fails: one mail's
 * failure never undoes another's work. After its turn a mail looks whether
 * another writer is already queued for the lock. If one is (and the batch is
 * not full), it leaves the batch open and sleeps until that batch ends; the
 * last writer of a run finds nobody queued and COMMITs for everyone. A mail
 * alone commits at once, so a single-threaded caller sees plain transactions.
 * tm_store_commit() returns only once its batch's COMMIT is on disk, so what
 * the milter tells the MTA is as durable as before. If SQLite ends the batch
 * by itself (disk full, I/O error) or its COMMIT fails, every mail in it is
 * told so and answers tempfail; the MTA retries each, and none is half
 * stored. */

/* Ends the open batch with COMMIT (or ROLLBACK when SQLite already ended it)
 * and tells every member how it went. Called with the lock held. */
/* How long a shared batch may wait for more sessions' mails after it
 * began: the most a mail's answer is held up for the sake of a shared
 * fsync. */
#define GROUP_COMMIT_LINGER_US 1000

/* Puts what the batch's COMMIT wrote to the WAL on disk. Called without the
 * lock: wal_fd is set before the first call and never changes after, and
 * fdatasync covers every write made to the file before it, whichever
 * thread's. */
static gboolean
sync_wal (TmStore *store, GError **error)
{
  if (fdatasync (store->wal_fd) == 0)
    return TRUE;
  int saved = errno;
  g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED, "commit: syncing %s-wal: %s",
               store->path, g_strerror (saved));
  return FALSE;
}

/* The WAL file, opened for fdatasync once the first COMMIT has made sure it
 * exists. SQLite keeps it (never unlinks it) while our connection is open. */
static gboolean
open_wal (TmStore *store, GError **error)
{
  if (store->wal_fd >= 0)
    return TRUE;
  g_autofree char *wal_path = g_strconcat (store->path, "-wal", NULL);
  store->wal_fd = open (wal_path, O_RDONLY | O_CLOEXEC);
  if (store->wal_fd >= 0)
    return TRUE;
  int saved = errno;
  g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED, "commit: opening %s: %s",
               wal_path, g_strerror (saved));
  return FALSE;
}

/* Ends the open batch with COMMIT (or ROLLBACK when SQLite already ended it)
 * and tells every member how it went. Called with the lock held; with
 * sync_after_commit it releases the lock while the WAL is synced, so the
 * next batch can start meanwhile (the members, taken out of the store
 * first, learn the outcome only once their mails are on disk). */
static void
end_batch (TmStore *store)
{
  GError *commit_error = NULL;
  if (sqlite3_get_autocommit (store->db))
    g_set_error (&commit_error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED,
                 "commit: the transaction was rolled back by SQLite after an earlier error");
  /* A busy COMMIT has already waited busy_timeout_ms in SQLite's handler. */
  else if (!run (store, statement (store, STMT_COMMIT), "commit", &commit_error))
    rollback_if_open (store);
  GPtrArray *members = store->batch_members;
  store->batch_members = g_ptr_array_new ();
  store->last_batch_size = members->len;
  store->batch_open = FALSE;
  if (commit_error == NULL && store->sync_after_commit && open_wal (store, &commit_error))
    {
      g_mutex_unlock (&store->lock);
      /* The rows are in the database even when the sync fails; each
       * member answers tempfail, and the MTA's retry finds its mail
       * stored (a duplicate, answered the same) once the disk is back. */
      if (sync_wal (store, &commit_error))
        g_atomic_pointer_add (&store->wal_syncs, 1);
      g_mutex_lock (&store->lock);
    }
  if (commit_error == NULL)
    {
      g_atomic_pointer_add (&store->commits, 1);
      g_atomic_pointer_add (&store->mails_committed, (gssize) members->len);
    }
  for (guint i = 0; i < members->len; i++)
    {
      BatchMember *member = g_ptr_array_index (members, i);
      member->done = TRUE;
      member->committed = commit_error == NULL;
      if (commit_error != NULL)
        member->error = g_error_copy (commit_error);
    }
  g_clear_error (&commit_error);
  g_ptr_array_unref (members);
  g_cond_broadcast (&store->batch_ended);
}

/* The end of a mail's turn: commit the batch now unless another writer is
 * queued to add to it. An empty batch is simply ended. Lock held. */
static void
end_turn (TmStore *store)
{
  if (!store->batch_open)
    return;
  /* SQLite ended the batch by itself: its members must hear it now, before
   * the next writer's SAVEPOINT would start a transaction of its own. */
  if (sqlite3_get_autocommit (store->db))
    {
      end_batch (store);
      return;
    }
  gboolean room = store->batch_members->len < store->group_commit_max;
  gboolean more_coming = g_atomic_int_get (&store->writers_waiting) > 0 && room;
  if (more_coming)
    return;
  /* Nobody queued right now; but when the batch before was shared, other
   * sessions are most likely parsing their mail and about to come: the
   * batch stays open until its deadline, when a waiting member commits it
   * (see tm_store_commit). Alone, a mail commits at once. */
  if (room && store->batch_members->len > 0 && store->last_batch_size > 1
      && g_get_monotonic_time () < store->batch_deadline)
    return;
  if (store->batch_members->len == 0)
    {
      rollback_if_open (store);
      store->batch_open = FALSE;
      return;
    }
  end_batch (store);
}

gboolean
tm_store_begin (TmStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_atomic_int_inc (&store->writers_waiting);
  g_mutex_lock (&store->lock);
  g_atomic_int_dec_and_test (&store->writers_waiting);
  if (store->batch_open && sqlite3_get_autocommit (store->db))
    end_batch (store);
  if (!store->batch_open)
    {
      /* Only a ROLLBACK that itself failed leaves a transaction behind;
       * ending it here is what lets the next mail through without a
       * restart. */
      rollback_if_open (store);
      if (!run (store, statement (store, STMT_BEGIN_WRITE), "begin transaction", error))
        {
          g_mutex_unlock (&store->lock);
          return FALSE;
        }
      store->batch_open = TRUE;
      store->batch_number++;
      store->batch_deadline = g_get_monotonic_time () + GROUP_COMMIT_LINGER_US;
    }
  if (!run (store, statement (store, STMT_SAVEPOINT), "begin transaction", error))
    {
      end_turn (store);
      g_mutex_unlock (&store->lock);
      return FALSE;
    }
  return TRUE;
}

/* Undoes this mail's work and leaves the batch's. Lock held. */
static void
rollback_turn (TmStore *store)
{
  if (sqlite3_get_autocommit (store->db))
    return;  /* SQLite ended the batch; end_batch tells its members */
  sqlite3_stmt *stmt = statement (store, STMT_ROLLBACK_TO_SAVEPOINT);
  int rc = sqlite3_step (stmt);
  release (stmt);
  stmt = statement (store, STMT_RELEASE_SAVEPOINT);
  if (rc == SQLITE_DONE)
    rc = sqlite3_step (stmt);
  release (stmt);
  if (rc != SQLITE_DONE)
    rollback_if_open (store);  /* cannot undo one mail alone: undo the batch */
}

gboolean
tm_store_commit (TmStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (sqlite3_get_autocommit (store->db)
      || !run (store, statement (store, STMT_RELEASE_SAVEPOINT), "commit", error))
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED,
                     "commit: the transaction was rolled back by SQLite after an earlier error");
      rollback_turn (store);
      end_turn (store);
      g_mutex_unlock (&store->lock);
      return FALSE;
    }
  BatchMember member = { store->batch_number, FALSE, FALSE, NULL };
  g_ptr_array_add (store->batch_members, &member);
  end_turn (store);
  while (!member.done)
    {
      /* Once its COMMIT has run, the batch is no longer the open one while
       * its WAL is synced: the thread syncing it reports to its members. */
      gboolean ours_open = store->batch_open && store->batch_number == member.batch;
      gboolean past_deadline = g_get_monotonic_time () >= store->batch_deadline;
      if (ours_open && past_deadline && g_atomic_int_get (&store->writers_waiting) == 0)
        end_batch (store);      /* nobody else is coming: commit for everyone */
      else if (!ours_open || past_deadline)
        /* Being synced; or a queued writer joins the batch and, past the
         * deadline, ends it. */
        g_cond_wait (&store->batch_ended, &store->lock);
      else
        g_cond_wait_until (&store->batch_ended, &store->lock, store->batch_deadline);
    }
  g_mutex_unlock (&store->lock);
  if (!member.committed)
    {
      g_propagate_error (error, member.error);
      return FALSE;
    }
  return TRUE;
}

void
tm_store_group_stats (TmStore *store, TmStoreGroupStats *stats)
{
  g_return_if_fail (store != NULL && stats != NULL);
  /* Atomics, not the lock: a thread inside its own transaction may ask. */
  stats->commits = (gint64) g_atomic_pointer_get (&store->commits);
  stats->mails = (gint64) g_atomic_pointer_get (&store->mails_committed);
  stats->wal_syncs = (gint64) g_atomic_pointer_get (&store->wal_syncs);
  stats->writers_waiting = (guint) g_atomic_int_get (&store->writers_waiting);
}

void
tm_store_rollback (TmStore *store)
{
  g_return_if_fail (store != NULL);
  rollback_turn (store);
  end_turn (store);
  g_mutex_unlock (&store->lock);
}

/* ---- lookups ---------------------------------------------------------- */

gboolean
tm_store_find_message (TmStore *store, const char *queue, const char *message_key,
                       gint64 *ticket_id, GError **error)
{
  g_return_val_if_fail (store != NULL && queue != NULL && message_key != NULL
                        && ticket_id != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_FIND_MESSAGE);
  bind_text (stmt, 1, queue);
  bind_text (stmt, 2, message_key);
  return query_int64 (store, stmt, "find message", ticket_id, error);
}

gboolean
tm_store_find_ticket_by_message_id (TmStore *store, const char *queue, const char *message_id,
                                    gint64 *ticket_id, GError **error)
{
  g_return_val_if_fail (store != NULL && queue != NULL && message_id != NULL
                        && ticket_id != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_FIND_BY_MESSAGE_ID);
  bind_text (stmt, 1, queue);
  bind_text (stmt, 2, message_id);
  return query_int64 (store, stmt, "find ticket by message-id", ticket_id, error);
}

/* ---- reading tickets -------------------------------------------------- */

static char **
load_tags (TmStore *store, gint64 ticket_id, GError **error)
{
  sqlite3_stmt *stmt = statement (store, STMT_TICKET_TAGS);
  bind_int64 (stmt, 1, ticket_id);
  g_autoptr (GStrvBuilder) tags = g_strv_builder_new ();
  int rc;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_strv_builder_add (tags, (const char *) sqlite3_column_text (stmt, 0));
  if (rc != SQLITE_DONE)
    {
      set_sqlite_error (store, rc, "read ticket tags", error);
      release (stmt);
      return NULL;
    }
  release (stmt);
  return g_strv_builder_end (tags);
}

/* Builds a ticket from a row of TICKET_COLUMNS, tags included. */
static TmTicket *
ticket_from_row (TmStore *store, sqlite3_stmt *stmt, GError **error)
{
  g_autoptr (TmTicket) ticket = g_new0 (TmTicket, 1);
  ticket->id = sqlite3_column_int64 (stmt, 0);
  ticket->queue = column_string (stmt, 1);
  ticket->customer_address = column_string (stmt, 2);
  ticket->customer_name = column_string (stmt, 3);
  ticket->subject = column_string (stmt, 4);
  ticket->status = column_string (stmt, 5);
  ticket->priority = column_string (stmt, 6);
  ticket->team = column_string (stmt, 7);
  ticket->assignee = column_string (stmt, 8);
  ticket->language = column_string (stmt, 9);
  ticket->created_at = sqlite3_column_int64 (stmt, 10);
  ticket->updated_at = sqlite3_column_int64 (stmt, 11);
  ticket->tags = load_tags (store, ticket->id, error);
  if (ticket->tags == NULL)
    return NULL;
  return g_steal_pointer (&ticket);
}

gboolean
tm_store_get_ticket (TmStore *store, gint64 id, TmTicket **ticket, GError **error)
{
  g_return_val_if_fail (store != NULL && ticket != NULL, FALSE);
  *ticket = NULL;
  gboolean own_transaction;
  if (!read_begin (store, &own_transaction, error))
    return FALSE;
  sqlite3_stmt *stmt = statement (store, STMT_GET_TICKET);
  bind_int64 (stmt, 1, id);
  gboolean ok = TRUE;
  int rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      *ticket = ticket_from_row (store, stmt, error);
      ok = *ticket != NULL;
    }
  else if (rc != SQLITE_DONE)
    {
      set_sqlite_error (store, rc, "read ticket", error);
      ok = FALSE;
    }
  release (stmt);
  read_end (store, own_transaction);
  return ok;
}

GPtrArray *
tm_store_list_tickets (TmStore *store, const char *status, const char *queue, guint limit,
                       GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  StatementId id = status != NULL ? (queue != NULL ? STMT_LIST_BY_QUEUE_STATUS : STMT_LIST_BY_STATUS)
                                  : (queue != NULL ? STMT_LIST_BY_QUEUE : STMT_LIST_ALL);
  gboolean own_transaction;
  if (!read_begin (store, &own_transaction, error))
    return NULL;
  sqlite3_stmt *stmt = statement (store, id);
  bind_text (stmt, 1, status);
  bind_text (stmt, 2, queue);
  bind_int64 (stmt, 3, limit == 0 ? -1 : (gint64) limit);

  g_autoptr (GPtrArray) tickets = g_ptr_array_new_with_free_func ((GDestroyNotify) tm_ticket_free);
  int rc;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      TmTicket *ticket = ticket_from_row (store, stmt, error);
      if (ticket == NULL)
        break;
      g_ptr_array_add (tickets, ticket);
    }
  gboolean ok = rc == SQLITE_DONE;
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    set_sqlite_error (store, rc, "list tickets", error);
  release (stmt);
  read_end (store, own_transaction);
  return ok ? g_steal_pointer (&tickets) : NULL;
}

/* ---- writing ---------------------------------------------------------- */

gboolean
tm_store_create_ticket (TmStore *store, TmTicket *ticket, GError **error)
{
  g_return_val_if_fail (store != NULL && ticket != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_INSERT_TICKET);
  bind_text (stmt, 1, ticket->queue);
  bind_text (stmt, 2, ticket->customer_address);
  bind_text (stmt, 3, ticket->customer_name);
  bind_text (stmt, 4, ticket->subject);
  bind_text (stmt, 5, ticket->status);
  bind_text (stmt, 6, ticket->priority);
  bind_text (stmt, 7, ticket->team);
  bind_text (stmt, 8, ticket->assignee);
  bind_text (stmt, 9, ticket->language);
  bind_int64 (stmt, 10, ticket->created_at);
  bind_int64 (stmt, 11, ticket->updated_at);
  if (!run (store, stmt, "create ticket", error))
    return FALSE;
  ticket->id = sqlite3_last_insert_rowid (store->db);

  for (char **tag = ticket->tags; tag != NULL && *tag != NULL; tag++)
    {
      stmt = statement (store, STMT_INSERT_TAG);
      bind_int64 (stmt, 1, ticket->id);
      bind_text (stmt, 2, *tag);
      if (!run (store, stmt, "add ticket tag", error))
        return FALSE;
    }
  return TRUE;
}

gboolean
tm_store_touch_ticket (TmStore *store, gint64 ticket_id, gint64 now, const char *new_status,
                       GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_TOUCH_TICKET);
  bind_int64 (stmt, 1, ticket_id);
  bind_int64 (stmt, 2, now);
  bind_text (stmt, 3, new_status);
  if (!run (store, stmt, "update ticket", error))
    return FALSE;
  if (sqlite3_changes (store->db) == 0)
    {
      g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED,
                   "update ticket: there is no ticket %" G_GINT64_FORMAT, ticket_id);
      return FALSE;
    }
  return TRUE;
}

static gboolean
insert_message_id (TmStore *store, const char *queue, const char *message_id,
                   gint64 ticket_id, const char *origin, GError **error)
{
  sqlite3_stmt *stmt = statement (store, STMT_INSERT_MESSAGE_ID);
  bind_text (stmt, 1, queue);
  bind_text (stmt, 2, message_id);
  bind_int64 (stmt, 3, ticket_id);
  bind_text (stmt, 4, origin);
  return run (store, stmt, "remember message-id", error);
}

gboolean
tm_store_add_message (TmStore *store, TmStoredMessage *message, GError **error)
{
  g_return_val_if_fail (store != NULL && message != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_INSERT_MESSAGE);
  bind_int64 (stmt, 1, message->ticket_id);
  bind_text (stmt, 2, message->queue);
  bind_text (stmt, 3, message->message_key);
  bind_text (stmt, 4, message->message_id);
  bind_text (stmt, 5, message->direction);
  bind_text (stmt, 6, message->sender);
  bind_text (stmt, 7, message->from_address);
  bind_text (stmt, 8, message->from_name);
  bind_text (stmt, 9, message->subject);
  bind_text (stmt, 10, message->mta_queue_id);
  bind_int64 (stmt, 11, message->received_at);
  bind_text (stmt, 12, message->body_text);
  bind_int64 (stmt, 13, (gint64) MIN (message->size, (gsize) G_MAXINT64));
  bind_int64 (stmt, 14, message->truncated ? 1 : 0);
  bind_text (stmt, 15, message->warnings);
  if (!run (store, stmt, "insert message", error))
    return FALSE;
  gint64 row = sqlite3_last_insert_rowid (store->db);

  for (guint i = 0; message->attachments != NULL && i < message->attachments->len; i++)
    {
      const TmAttachment *attachment = g_ptr_array_index (message->attachments, i);
      stmt = statement (store, STMT_INSERT_ATTACHMENT);
      bind_int64 (stmt, 1, row);
      bind_text (stmt, 2, attachment->filename);
      bind_text (stmt, 3, attachment->content_type);
      bind_int64 (stmt, 4, (gint64) MIN (attachment->size, (gsize) G_MAXINT64));
      if (!run (store, stmt, "insert attachment", error))
        return FALSE;
    }

  /* A reply to our own acknowledgement threads by its Message-ID too. */
  const char *origin = g_strcmp0 (message->direction, "autoreply") == 0 ? "generated" : "inbound";
  if (message->message_id != NULL
      && !insert_message_id (store, message->queue, message->message_id, message->ticket_id,
                             origin, error))
    return FALSE;
  message->id = row;
  return TRUE;
}

gboolean
tm_store_remember_message_id (TmStore *store, gint64 ticket_id, const char *message_id,
                              const char *origin, GError **error)
{
  g_return_val_if_fail (store != NULL && message_id != NULL && origin != NULL, FALSE);
  /* The Message-ID threads within the ticket's own queue. */
  sqlite3_stmt *stmt = statement (store, STMT_TICKET_QUEUE);
  bind_int64 (stmt, 1, ticket_id);
  int rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      if (rc == SQLITE_DONE)
        g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED,
                     "remember message-id: there is no ticket %" G_GINT64_FORMAT, ticket_id);
      else
        set_sqlite_error (store, rc, "remember message-id", error);
      release (stmt);
      return FALSE;
    }
  g_autofree char *queue = column_string (stmt, 0);
  release (stmt);
  return insert_message_id (store, queue, message_id, ticket_id, origin, error);
}

gboolean
tm_store_add_event (TmStore *store, gint64 ticket_id, gint64 message_row, const char *kind,
                    gint64 at, const char *detail, GError **error)
{
  g_return_val_if_fail (store != NULL && kind != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_INSERT_EVENT);
  bind_int64 (stmt, 1, ticket_id);
  if (message_row != 0)
    bind_int64 (stmt, 2, message_row);
  else
    sqlite3_bind_null (stmt, 2);
  bind_text (stmt, 3, kind);
  bind_int64 (stmt, 4, at);
  bind_text (stmt, 5, detail);
  return run (store, stmt, "add event", error);
}

/* ---- reading messages ------------------------------------------------- */

static GPtrArray *
load_attachments (TmStore *store, gint64 message_row, GError **error)
{
  sqlite3_stmt *stmt = statement (store, STMT_MESSAGE_ATTACHMENTS);
  bind_int64 (stmt, 1, message_row);
  g_autoptr (GPtrArray) attachments = g_ptr_array_new_with_free_func (attachment_free);
  int rc;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      TmAttachment *attachment = g_new0 (TmAttachment, 1);
      attachment->filename = column_string (stmt, 0);
      attachment->content_type = column_string (stmt, 1);
      attachment->size = (gsize) MAX (sqlite3_column_int64 (stmt, 2), 0);
      g_ptr_array_add (attachments, attachment);
    }
  if (rc != SQLITE_DONE)
    {
      set_sqlite_error (store, rc, "read attachments", error);
      release (stmt);
      return NULL;
    }
  release (stmt);
  return g_steal_pointer (&attachments);
}

GPtrArray *
tm_store_ticket_messages (TmStore *store, gint64 ticket_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  gboolean own_transaction;
  if (!read_begin (store, &own_transaction, error))
    return NULL;
  sqlite3_stmt *stmt = statement (store, STMT_TICKET_MESSAGES);
  bind_int64 (stmt, 1, ticket_id);
  g_autoptr (GPtrArray) messages
    = g_ptr_array_new_with_free_func ((GDestroyNotify) tm_stored_message_free);
  int rc;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      TmStoredMessage *message = g_new0 (TmStoredMessage, 1);
      g_ptr_array_add (messages, message);
      message->id = sqlite3_column_int64 (stmt, 0);
      message->ticket_id = sqlite3_column_int64 (stmt, 1);
      message->queue = column_string (stmt, 2);
      message->message_key = column_string (stmt, 3);
      message->message_id = column_string (stmt, 4);
      message->direction = column_string (stmt, 5);
      message->sender = column_string (stmt, 6);
      message->from_address = column_string (stmt, 7);
      message->from_name = column_string (stmt, 8);
      message->subject = column_string (stmt, 9);
      message->mta_queue_id = column_string (stmt, 10);
      message->received_at = sqlite3_column_int64 (stmt, 11);
      message->body_text = column_string (stmt, 12);
      message->size = (gsize) MAX (sqlite3_column_int64 (stmt, 13), 0);
      message->truncated = sqlite3_column_int (stmt, 14) != 0;
      message->warnings = column_string (stmt, 15);
      message->attachments = load_attachments (store, message->id, error);
      if (message->attachments == NULL)
        break;
    }
  gboolean ok = rc == SQLITE_DONE;
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    set_sqlite_error (store, rc, "read messages", error);
  release (stmt);
  read_end (store, own_transaction);
  return ok ? g_steal_pointer (&messages) : NULL;
}

/* ---- outbox ----------------------------------------------------------- */

void
tm_outbox_mail_free (TmOutboxMail *mail)
{
  if (mail == NULL)
    return;
  g_free (mail->queue);
  g_free (mail->kind);
  g_free (mail->sender);
  g_free (mail->recipient);
  g_free (mail->message_id);
  g_free (mail->data);
  g_free (mail->status);
  g_free (mail->origin_queue_id);
  g_free (mail->last_result);
  g_free (mail);
}

gboolean
tm_store_outbox_add (TmStore *store, TmOutboxMail *mail, GError **error)
{
  g_return_val_if_fail (store != NULL && mail != NULL && mail->data != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_OUTBOX_INSERT);
  bind_int64 (stmt, 1, mail->ticket_id);
  bind_text (stmt, 2, mail->queue);
  bind_text (stmt, 3, mail->kind);
  bind_text (stmt, 4, mail->sender != NULL ? mail->sender : "");
  bind_text (stmt, 5, mail->recipient);
  bind_text (stmt, 6, mail->message_id);
  sqlite3_bind_blob64 (stmt, 7, mail->data, (sqlite3_uint64) mail->length, SQLITE_STATIC);
  bind_int64 (stmt, 8, mail->created_at);
  bind_int64 (stmt, 9, mail->queued_us);
  bind_int64 (stmt, 10, mail->next_attempt_at);
  bind_text (stmt, 11, mail->origin_queue_id);
  if (!run (store, stmt, "add to outbox", error))
    return FALSE;
  mail->id = sqlite3_last_insert_rowid (store->db);
  return TRUE;
}

gboolean
tm_store_outbox_last_to (TmStore *store, const char *queue, const char *recipient,
                         gint64 *created_at, GError **error)
{
  g_return_val_if_fail (store != NULL && queue != NULL && recipient != NULL
                        && created_at != NULL, FALSE);
  sqlite3_stmt *stmt = statement (store, STMT_OUTBOX_LAST_TO);
  bind_text (stmt, 1, queue);
  bind_text (stmt, 2, recipient);
  return query_int64 (store, stmt, "find the last reply to a sender", created_at, error);
}

static TmOutboxMail *
outbox_mail_from_row (sqlite3_stmt *stmt)
{
  TmOutboxMail *mail = g_new0 (TmOutboxMail, 1);
  mail->id = sqlite3_column_int64 (stmt, 0);
  mail->ticket_id = sqlite3_column_int64 (stmt, 1);
  mail->queue = column_string (stmt, 2);
  mail->kind = column_string (stmt, 3);
  mail->sender = column_string (stmt, 4);
  mail->recipient = column_string (stmt, 5);
  mail->message_id = column_string (stmt, 6);
  const void *blob = sqlite3_column_blob (stmt, 7);
  mail->length = (gsize) sqlite3_column_bytes (stmt, 7);
  /* NUL-terminated as well, for callers that treat it as text. */
  mail->data = g_malloc (mail->length + 1);
  if (mail->length > 0)
    memcpy (mail->data, blob, mail->length);
  mail->data[mail->length] = '\0';
  mail->status = column_string (stmt, 8);
  mail->attempts = sqlite3_column_int (stmt, 9);
  mail->created_at = sqlite3_column_int64 (stmt, 10);
  mail->queued_us = sqlite3_column_int64 (stmt, 11);
  mail->next_attempt_at = sqlite3_column_int64 (stmt, 12);
  mail->done_at = sqlite3_column_int64 (stmt, 13);
  mail->origin_queue_id = column_string (stmt, 14);
  mail->last_result = column_string (stmt, 15);
  return mail;
}

/* Steps STMT (bound by the caller) to its end: its rows as TmOutboxMail*,
 * or NULL with *error naming OPERATION. Releases STMT. */
static GPtrArray *
outbox_rows (TmStore *store, sqlite3_stmt *stmt, const char *operation, GError **error)
{
  g_autoptr (GPtrArray) mails
    = g_ptr_array_new_with_free_func ((GDestroyNotify) tm_outbox_mail_free);
  int rc;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (mails, outbox_mail_from_row (stmt));
  gboolean ok = rc == SQLITE_DONE;
  if (!ok)
    set_sqlite_error (store, rc, operation, error);
  release (stmt);
  return ok ? g_steal_pointer (&mails) : NULL;
}

GPtrArray *
tm_store_outbox_due (TmStore *store, gint64 now, guint limit, gint64 *earliest, GError **error)
{
  g_return_val_if_fail (store != NULL && earliest != NULL && limit > 0, NULL);
  *earliest = 0;
  gboolean own_transaction;
  if (!read_begin (store, &own_transaction, error))
    return NULL;
  sqlite3_stmt *stmt = statement (store, STMT_OUTBOX_NEXT_DUE);
  bind_int64 (stmt, 1, now);
  bind_int64 (stmt, 2, limit);
  g_autoptr (GPtrArray) mails = outbox_rows (store, stmt, "read the outbox", error);
  gboolean ok = mails != NULL;
  if (ok && mails->len == 0)
    ok = query_int64 (store, statement (store, STMT_OUTBOX_EARLIEST), "read the outbox",
                      earliest, error);
  read_end (store, own_transaction);
  return ok ? g_steal_pointer (&mails) : NULL;
}

/* ?1 the mail, ?2 a time, ?3 a result: each statement uses what it needs
 * (binding a number a statement does not use is a harmless no-op). */
static gboolean
outbox_update (TmStore *store, StatementId id, gint64 mail_id, gint64 when,
               const char *result, GError **error)
{
  sqlite3_stmt *stmt = statement (store, id);
  bind_int64 (stmt, 1, mail_id);
  bind_int64 (stmt, 2, when);
  bind_text (stmt, 3, result);
  if (!run (store, stmt, "update the outbox", error))
    return FALSE;
  if (sqlite3_changes (store->db) == 0)
    {
      g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED,
                   "update the outbox: mail %" G_GINT64_FORMAT " is not pending", mail_id);
      return FALSE;
    }
  return TRUE;
}

gboolean
tm_store_outbox_mark_sent (TmStore *store, gint64 mail_id, gint64 at, const char *result,
                           GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return outbox_update (store, STMT_OUTBOX_SENT, mail_id, at, result, error);
}

gboolean
tm_store_outbox_mark_retry (TmStore *store, gint64 mail_id, gint64 next_attempt_at,
                            const char *result, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return outbox_update (store, STMT_OUTBOX_RETRY, mail_id, next_attempt_at, result, error);
}

gboolean
tm_store_outbox_mark_failed (TmStore *store, gint64 mail_id, gint64 at, const char *result,
                             GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return outbox_update (store, STMT_OUTBOX_FAILED, mail_id, at, result, error);
}

gboolean
tm_store_outbox_mark_handing_over (TmStore *store, gint64 mail_id, gint64 since, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return outbox_update (store, STMT_OUTBOX_HANDING_OVER, mail_id, since, NULL, error);
}

gboolean
tm_store_outbox_clear_interrupted (TmStore *store, gint64 mail_id, const char *result,
                                   GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return outbox_update (store, STMT_OUTBOX_CLEAR_HANDING_OVER, mail_id, 0, result, error);
}

GPtrArray *
tm_store_outbox_interrupted (TmStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  return outbox_rows (store, statement (store, STMT_OUTBOX_INTERRUPTED),
                      "read the interrupted outbox mail", error);
}

GPtrArray *
tm_store_outbox_list (TmStore *store, const char *status, guint limit, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  gboolean own_transaction;
  if (!read_begin (store, &own_transaction, error))
    return NULL;
  sqlite3_stmt *stmt = statement (store, status != NULL ? STMT_OUTBOX_LIST_BY_STATUS
                                                        : STMT_OUTBOX_LIST);
  bind_text (stmt, 1, status);
  bind_int64 (stmt, 2, limit == 0 ? -1 : (gint64) limit);
  GPtrArray *mails = outbox_rows (store, stmt, "list the outbox", error);
  read_end (store, own_transaction);
  return mails;
}

/* ---- events ----------------------------------------------------------- */

static void
event_free (gpointer data)
{
  TmEvent *event = data;
  g_free (event->kind);
  g_free (event->detail);
  g_free (event);
}

GPtrArray *
tm_store_ticket_events (TmStore *store, gint64 ticket_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  gboolean own_transaction;
  if (!read_begin (store, &own_transaction, error))
    return NULL;
  sqlite3_stmt *stmt = statement (store, STMT_TICKET_EVENTS);
  bind_int64 (stmt, 1, ticket_id);
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func (event_free);
  int rc;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      TmEvent *event = g_new0 (TmEvent, 1);
      event->kind = column_string (stmt, 0);
      event->at = sqlite3_column_int64 (stmt, 1);
      event->detail = column_string (stmt, 2);
      g_ptr_array_add (events, event);
    }
  gboolean ok = rc == SQLITE_DONE;
  if (!ok)
    set_sqlite_error (store, rc, "read events", error);
  release (stmt);
  read_end (store, own_transaction);
  return ok ? g_steal_pointer (&events) : NULL;
}

gboolean
tm_store_customer_history (TmStore *store, const char *customer_address, gint64 except_ticket,
                           TmCustomerHistory *history, GError **error)
{
  g_return_val_if_fail (store != NULL && customer_address != NULL && history != NULL, FALSE);
  memset (history, 0, sizeof *history);
  sqlite3_stmt *stmt = statement (store, STMT_CUSTOMER_HISTORY);
  bind_text (stmt, 1, customer_address);
  bind_int64 (stmt, 2, except_ticket);
  bind_int64 (stmt, 3, TM_CUSTOMER_HISTORY_LIMIT);
  int rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      history->total = sqlite3_column_int64 (stmt, 0);
      history->open = sqlite3_column_int64 (stmt, 1);
      history->last_ticket = sqlite3_column_int64 (stmt, 2);
      history->capped = history->total > TM_CUSTOMER_HISTORY_LIMIT;
      if (history->capped)
        {
          history->total = TM_CUSTOMER_HISTORY_LIMIT;
          history->open = MIN (history->open, TM_CUSTOMER_HISTORY_LIMIT);
        }
      rc = SQLITE_DONE;
    }
  gboolean ok = rc == SQLITE_DONE;
  if (!ok)
    set_sqlite_error (store, rc, "read the customer's tickets", error);
  release (stmt);
  return ok;
}
