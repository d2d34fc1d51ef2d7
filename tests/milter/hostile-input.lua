-- hostile-input.lua: junk the MTA passes on must not crash or confuse the
-- daemon: raw 8-bit and empty header values, a folded subject, a bare
-- "X-Ticket-" header, no Message-ID, two Subject headers, a body that is not
-- MIME at all. The mail still becomes a ticket, and the daemon goes on
-- serving the same connection.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local headers = {
  { "From", "\xd9\x85\xd8\xad\xd9\x85\xd8\xaf <\xff\xfe@example.org>" },
  { "To", "" },
  { "Subject", "first line\r\n\tsecond \xe9\xe8 line" },
  { "Subject", "a second subject" },
  { "X-Ticket-", "" },
  { "Content-Type", "multipart/mixed; boundary=" },
  { "X-Empty", "   " },
  { "X-Long", string.rep("word ", 150) },
}
local reply = tm.send(conn, { id = "HOS0001", headers = headers,
                              body = "--\r\n\x00\x01\x02 not mime\r\n--\r\n" .. string.rep("\xff", 300) })
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "no ticket for the junk mail")
tm.check(mt.eom_check(conn, MT_HDRDELETE, "X-Ticket-", 1), "the bare X-Ticket- header was not deleted")
tm.check(mt.eom_check(conn, MT_HDRCHANGE, "Subject"), "the first subject was not changed")

-- No headers of its own (miltertest sends a bare From: then) and a body of
-- one empty line. (An empty body chunk is no case: no MTA sends one, and
-- libmilter drops the connection on it.)
reply = tm.send(conn, { id = "HOS0002", headers = {}, body = "\r\n" })
tm.check(reply == SMFIR_CONTINUE, "headerless mail: unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID"), "no ticket for the headerless mail")
tm.check(mt.eom_check(conn, MT_HDRADD, "Subject"), "the headerless mail got no subject")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM messages WHERE direction <> 'autoreply'") == "2", "the two mails are not both stored")
