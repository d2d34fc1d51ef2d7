-- not-support.lua: a mail to an address that is no queue passes untouched:
-- no header added, changed or deleted, no recipient changed, nothing stored.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local mail = tm.customer_mail("NOS0001", "Lunch?", "lunch-1@example.org",
                              { { "X-Ticket-ID", "5" } })
mail.rcpt = { "sales@example.test" }
local reply = tm.send(conn, mail)
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(not mt.eom_check(conn, MT_HDRADD), "a header was added")
tm.check(not mt.eom_check(conn, MT_HDRCHANGE), "a header was changed or deleted")
tm.check(not mt.eom_check(conn, MT_HDRINSERT), "a header was inserted")
tm.check(not mt.eom_check(conn, MT_RCPTADD, "<support@example.test>"), "a recipient was added")
tm.check(not mt.eom_check(conn, MT_RCPTDELETE, "<sales@example.test>"), "the recipient was removed")
mt.disconnect(conn)

tm.check(tm.sql("SELECT count(*) FROM tickets") == "0", "a ticket was stored")
