-- abort-and-reuse.lua: a transaction aborted after its headers (RSET, or a
-- client gone) leaves nothing behind; the next mail on the same connection
-- is handled on its own, with none of the aborted mail's state.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local aborted = tm.customer_mail("ABT0001", "Never finished", "abort-1@example.org",
                                 { { "X-Ticket-ID", "7" } })
aborted.stop_after_headers = true
tm.send(conn, aborted)

-- A bare MAIL FROM followed by a new MAIL FROM (RSET without abort) is
-- also dropped cleanly.
tm.check(mt.macro(conn, SMFIC_MAIL, "i", "ABT0002") == nil, "mt.macro() failed")
tm.check(mt.mailfrom(conn, "<someone@example.org>") == nil, "mt.mailfrom() failed")
tm.check(mt.abort(conn) == nil, "mt.abort() failed")

local reply = tm.send(conn, tm.customer_mail("ABT0003", "Second try", "abort-3@example.org"))
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "the full mail is not ticket 1")
tm.check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", tm.value("[Ticket#1] Second try")),
         "the full mail's subject was not tagged")
tm.check(not mt.eom_check(conn, MT_HDRDELETE), "a header of the aborted mail was deleted")

-- A second full mail on the same connection, then the connection closes
-- in the middle of a third one.
reply = tm.send(conn, tm.customer_mail("ABT0004", "Another question", "abort-4@example.org"))
tm.check(reply == SMFIR_CONTINUE, "second mail: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("2")), "the second mail is not ticket 2")
tm.check(mt.macro(conn, SMFIC_MAIL, "i", "ABT0005") == nil, "mt.macro() failed")
tm.check(mt.mailfrom(conn, "<someone@example.org>") == nil, "mt.mailfrom() failed")
tm.check(mt.rcptto(conn, "<support@example.test>") == nil, "mt.rcptto() failed")
tm.check(mt.header(conn, "Subject", "cut off") == nil, "mt.header() failed")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM tickets") == "2", "the database does not hold two tickets")
