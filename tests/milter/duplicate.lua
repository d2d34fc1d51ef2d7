-- duplicate.lua: the same Message-ID twice (an MTA's retry after a tempfail or
-- a crash) stays on the same ticket, is stored once, and still gets its headers.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local reply = tm.send(conn, tm.customer_mail("DUP0001", "Refund", "dup-1@example.org"))
tm.check(reply == SMFIR_CONTINUE, "first delivery: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "first delivery is not ticket 1")
mt.disconnect(conn)

conn = tm.connect()
reply = tm.send(conn, tm.customer_mail("DUP0002", "Refund", "dup-1@example.org"))
tm.check(reply == SMFIR_CONTINUE, "retry: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "the retry is not on ticket 1")
tm.check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", tm.value("[Ticket#1] Refund")),
         "the retry's subject was not tagged")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM tickets") == "1", "the retry made a second ticket")
tm.check(tm.sql("SELECT count(*) FROM messages WHERE direction <> 'autoreply'") == "1", "the retry was stored twice")
