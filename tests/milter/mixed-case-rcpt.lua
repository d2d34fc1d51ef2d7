-- mixed-case-rcpt.lua: "<Support@EXAMPLE.Test>" is the support queue's address
-- whatever its case: the mail makes a ticket in that queue.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local mail = tm.customer_mail("MIX0001", "Case matters not", "mixed-1@example.org")
mail.rcpt = { "Support@EXAMPLE.Test" }
local reply = tm.send(conn, mail)
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "no ticket for the mixed-case address")
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-Queue", tm.value("support")), "not the support queue")
tm.check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", tm.value("[Ticket#1] Case matters not")),
         "the subject was not tagged")
-- Were the recipient ever removed, it must be in the spelling the MTA knows.
tm.check(not mt.eom_check(conn, MT_RCPTDELETE, "<support@example.test>"),
         "a recipient was removed in a spelling the MTA does not know")
mt.disconnect(conn)

tm.check(tm.sql("SELECT queue FROM tickets") == "support", "the ticket is not in the support queue")
