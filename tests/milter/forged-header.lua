-- forged-header.lua: X-Ticket-* headers that arrive are forgeable. Two
-- "X-Ticket-ID: 999" (spelt differently) and an "X-TICKET-Queue" are all
-- deleted, highest index first, and the real headers are added.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local reply = tm.send(conn, tm.customer_mail("FRG0001", "Please escalate", "forged-1@example.org",
                                             { { "X-Ticket-ID", "999" },
                                               { "x-ticket-id", "999" },
                                               { "X-TICKET-Queue", "vip" } }))
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRDELETE, "X-Ticket-ID", 2), "the second X-Ticket-ID was not deleted")
tm.check(mt.eom_check(conn, MT_HDRDELETE, "X-Ticket-ID", 1), "the first X-Ticket-ID was not deleted")
tm.check(mt.eom_check(conn, MT_HDRDELETE, "X-TICKET-Queue", 1), "the forged X-Ticket-Queue was not deleted")
tm.check(not mt.eom_check(conn, MT_HDRDELETE, "X-Ticket-ID", 3), "a third X-Ticket-ID was deleted")
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "the real X-Ticket-ID was not added")
tm.check(not mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("999")), "the forged id was kept")
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-Queue", tm.value("support")),
         "the real X-Ticket-Queue was not added")
mt.disconnect(conn)
