-- accept-on-store-error.lua: with on_error = accept, a mail that cannot be
-- stored (database locked past busy_timeout) is accepted as it is: no
-- headers, no ticket, and the MTA delivers it.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
tm.run(os.getenv("TM_LOCK"))
local reply = tm.send(conn, tm.customer_mail("ACC0001", "Locked out", "accept-1@example.org",
                                             { { "X-Ticket-ID", "3" } }))
tm.run(os.getenv("TM_UNLOCK"))
tm.check(reply == SMFIR_ACCEPT, "locked store: unexpected reply " .. tostring(reply))
tm.check(not mt.eom_check(conn, MT_HDRADD), "a header was added")
tm.check(not mt.eom_check(conn, MT_HDRCHANGE), "a header was changed or deleted")
tm.check(not mt.eom_check(conn, MT_SMTPREPLY, "451"), "a tempfail reply was set")

-- The same connection goes on working once the lock is gone.
reply = tm.send(conn, tm.customer_mail("ACC0002", "Next one", "accept-2@example.org"))
tm.check(reply == SMFIR_CONTINUE, "after the lock: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "the next mail is not ticket 1")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM messages WHERE direction <> 'autoreply'") == "1", "the accepted mail was stored after all")
