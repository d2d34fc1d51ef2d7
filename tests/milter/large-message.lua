-- large-message.lua: with max_header_size and max_message_size at 1K, a mail
-- with 3K of headers and a 6K body of 8-bit junk still makes a ticket; the
-- stored message is marked truncated with the full size the MTA sent, the
-- headers beyond the first 1K are not seen (here the Message-ID), and a
-- forged X-Ticket-ID beyond them is deleted all the same.
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")

local conn = tm.connect()
local headers = {
  { "From", "Customer <customer@example.org>" },
  { "To", "support@example.test" },
  { "Subject", "A very large mail" },
}
for i = 1, 40 do
  table.insert(headers, { "X-Filler-" .. i, string.rep("f", 60) })
end
table.insert(headers, { "Message-ID", "<large-1@example.org>" })
table.insert(headers, { "X-Ticket-ID", "4242" })

local junk = {}
for i = 1, 6000 do
  junk[#junk + 1] = string.char(32 + (i * 7) % 224)
  if i % 70 == 0 then junk[#junk + 1] = "\r\n" end
end
local body = table.concat(junk) .. "\r\n"

-- Every byte of the mail as the MTA sends it: "Name: value\r\n" per header
-- (miltertest, like an MTA, puts the space after the colon), the blank
-- line, the body.
local size = 2 + #body
for _, header in ipairs(headers) do
  size = size + #header[1] + 2 + #header[2] + 2
end

local reply = tm.send(conn, { id = "BIG0001", headers = headers, body = body })
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "no ticket for the large mail")
tm.check(mt.eom_check(conn, MT_HDRDELETE, "X-Ticket-ID", 1),
         "the forged X-Ticket-ID beyond max_header_size was not deleted")
tm.check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", tm.value("[Ticket#1] A very large mail")),
         "the subject was not tagged")
mt.disconnect(conn)

local stored = tm.sql("SELECT truncated || ' ' || size || ' ' || mta_queue_id || ' '"
                      .. " || coalesce(message_id, '-') FROM messages WHERE direction = 'customer'")
local expected = "1 " .. size .. " BIG0001 -"
tm.check(stored == expected, "stored as '" .. stored .. "', expected '" .. expected .. "'")
