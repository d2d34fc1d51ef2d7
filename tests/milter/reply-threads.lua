-- reply-threads.lua: the customer's reply with "Re: [Ticket#1] x" joins ticket 1,
-- and its subject, which already carries the tag, is left alone.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local reply = tm.send(conn, tm.customer_mail("THR0001", "x", "thread-1@example.org"))
tm.check(reply == SMFIR_CONTINUE, "first mail: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "first mail is not ticket 1")

reply = tm.send(conn, tm.customer_mail("THR0002", "Re: [Ticket#1] x", "thread-2@example.org",
                                       { { "In-Reply-To", "<thread-1@example.org>" } }))
tm.check(reply == SMFIR_CONTINUE, "reply: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "the reply did not join ticket 1")
tm.check(not mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("2")), "the reply opened ticket 2")
tm.check(not mt.eom_check(conn, MT_HDRCHANGE, "Subject"), "the tagged subject was changed")
tm.check(not mt.eom_check(conn, MT_HDRADD, "Subject"), "a second subject was added")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM tickets") == "1", "a second ticket was stored")
tm.check(tm.sql("SELECT count(*) FROM messages WHERE direction <> 'autoreply'") == "2", "the two mails are not both stored")
