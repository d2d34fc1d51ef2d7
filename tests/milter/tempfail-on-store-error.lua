-- tempfail-on-store-error.lua: while another process holds the database
-- locked past busy_timeout (100 ms here), the milter answers 451 4.3.0 so that
-- the MTA keeps the mail; once the lock is gone the next mail is stored,
-- without a restart. run.sh provides the commands that take and release the
-- lock (a second sqlite3 process in BEGIN EXCLUSIVE).
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
tm.run(os.getenv("TM_LOCK"))
local reply = tm.send(conn, tm.customer_mail("TMP0001", "Locked out", "locked-1@example.org"))
tm.run(os.getenv("TM_UNLOCK"))
tm.check(reply == SMFIR_REPLYCODE or reply == SMFIR_TEMPFAIL,
         "locked store: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.3.0",
                      "ticket-milter: cannot store the ticket, try again later"),
         "the reply is not 451 4.3.0 ticket-milter: cannot store the ticket, try again later")
tm.check(not mt.eom_check(conn, MT_HDRADD), "a header was added to a mail without a ticket")
mt.disconnect(conn)

-- The MTA retries the very same mail: it now makes ticket 1.
conn = tm.connect()
reply = tm.send(conn, tm.customer_mail("TMP0001", "Locked out", "locked-1@example.org"))
tm.check(reply == SMFIR_CONTINUE, "after the lock: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "the retried mail is not ticket 1")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM tickets") == "1", "the database does not hold one ticket")
