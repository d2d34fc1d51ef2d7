-- new-ticket.lua: a first customer mail to the support address makes ticket 1;
-- the milter adds X-Ticket-ID and X-Ticket-Queue and tags the subject.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local reply = tm.send(conn, tm.customer_mail("NEW0001", "Printer on fire", "new-1@example.org"))
tm.check(reply == SMFIR_CONTINUE, "end of message: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "X-Ticket-ID: 1 not added")
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-Queue", tm.value("support")),
         "X-Ticket-Queue: support not added")
tm.check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", tm.value("[Ticket#1] Printer on fire")),
         "Subject not changed to carry [Ticket#1]")
tm.check(not mt.eom_check(conn, MT_HDRDELETE), "a header was deleted though none was forged")
tm.check(not mt.eom_check(conn, MT_SMTPREPLY, "451"), "a tempfail reply was set")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM tickets") == "1", "the database does not hold one ticket")
tm.check(tm.sql("SELECT count(*) FROM messages WHERE direction <> 'autoreply'") == "1", "the database does not hold one message")
