-- tests/faults/send.lua - sends customer mail to the daemon over the milter
-- protocol and checks each answer; run.sh drives it through miltertest.
--
-- Environment (run.sh sets it):
--   TM_SOCKET        the daemon's socket
--   TM_MILTER_LUA    tests/milter/_lib.lua (tm.connect, tm.customer_mail, ...)
--   TM_QID           the MTA queue id; with TM_COUNT a prefix (QID1, QID2...)
--   TM_MESSAGE_ID    the Message-ID, without <>; with TM_COUNT each mail has
--                    N-MESSAGE_ID and its own sender customer-N@example.org
--                    (so that every mail gets its own acknowledgement)
--   TM_COUNT         how many numbered mails, one milter connection each;
--                    unset or empty: one mail, as TM_QID and TM_MESSAGE_ID say
--   TM_FIRST         the first N (default 1)
--   TM_FROM          the sender of a single mail (default customer@example.org)
--   TM_BODY_KB       body size in KiB (default 1), sent in 16 KiB chunks
--   TM_EXPECT        tempfail: 451 4.3.0 and no header added;
--                    accept:   SMFIR_ACCEPT, the mail untouched;
--                    ticket:   CONTINUE with an X-Ticket-ID header
--                              (TM_TICKET, when set, is its value)
-- Prints one line per mail: "QID: tempfail|accept|ticket".
dofile(os.getenv("TM_MILTER_LUA"))

local qid = os.getenv("TM_QID")
local message_id = os.getenv("TM_MESSAGE_ID")
local expect = os.getenv("TM_EXPECT")
local ticket = os.getenv("TM_TICKET")
local count = tonumber(os.getenv("TM_COUNT") or "")
local first = tonumber(os.getenv("TM_FIRST") or "1")
local body_kb = tonumber(os.getenv("TM_BODY_KB") or "1")
tm.check(qid ~= nil and message_id ~= nil and expect ~= nil,
         "TM_QID, TM_MESSAGE_ID and TM_EXPECT must be set")

-- One line of prose, repeated: the body looks like text to the parser.
local line = "The printer on the third floor prints blank pages again, sorry.\r\n"
local chunk = string.rep(line, math.floor(16384 / #line))
local lines_wanted = math.floor(body_kb * 1024 / #line) + 1

local function send_body(conn)
  local left = lines_wanted
  local per_chunk = math.floor(16384 / #line)
  while left > 0 do
    local text = chunk
    if left < per_chunk then
      text = string.rep(line, left)
    end
    tm.check(mt.bodystring(conn, text) == nil, "mt.bodystring() failed")
    left = left - per_chunk
  end
end

local function send_one(id, mid, from)
  local conn = tm.connect()
  local mail = tm.customer_mail(id, "Printer on fire", mid)
  for _, header in ipairs(mail.headers) do
    if header[1] == "From" then
      header[2] = "Customer <" .. from .. ">"
    end
  end
  tm.check(mt.macro(conn, SMFIC_MAIL, "i", id, "{client_addr}", "192.0.2.10",
                    "{daemon_name}", "smtpd") == nil, "mt.macro() failed")
  tm.check(mt.mailfrom(conn, "<" .. from .. ">") == nil, "mt.mailfrom() failed")
  tm.check(mt.rcptto(conn, "<support@example.test>") == nil, "mt.rcptto() failed")
  for _, header in ipairs(mail.headers) do
    tm.check(mt.header(conn, header[1], header[2]) == nil, "mt.header() failed")
  end
  tm.check(mt.eoh(conn) == nil, "mt.eoh() failed")
  send_body(conn)
  tm.check(mt.eom(conn) == nil, "mt.eom() failed")
  local reply = mt.getreply(conn)

  if expect == "tempfail" then
    tm.check(reply == SMFIR_REPLYCODE or reply == SMFIR_TEMPFAIL,
             id .. ": expected a tempfail, got reply " .. tostring(reply))
    tm.check(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.3.0",
                          "ticket-milter: cannot store the ticket, try again later"),
             id .. ": the reply is not 451 4.3.0 ticket-milter: cannot store the ticket, try again later")
    tm.check(not mt.eom_check(conn, MT_HDRADD), id .. ": a header was added to a mail without a ticket")
  elseif expect == "accept" then
    tm.check(reply == SMFIR_ACCEPT, id .. ": expected accept, got reply " .. tostring(reply))
    tm.check(not mt.eom_check(conn, MT_HDRADD), id .. ": a header was added")
    tm.check(not mt.eom_check(conn, MT_HDRCHANGE), id .. ": a header was changed or deleted")
    tm.check(not mt.eom_check(conn, MT_SMTPREPLY, "451"), id .. ": a tempfail reply was set")
  elseif expect == "ticket" then
    tm.check(reply == SMFIR_CONTINUE, id .. ": expected continue, got reply " .. tostring(reply))
    if ticket ~= nil and ticket ~= "" then
      tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value(ticket)),
               id .. ": no X-Ticket-ID " .. ticket)
    else
      tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID"), id .. ": no X-Ticket-ID")
    end
  else
    tm.check(false, "TM_EXPECT: unknown " .. expect)
  end
  mt.disconnect(conn)
  print(id .. ": " .. expect)
end

if count == nil then
  local from = os.getenv("TM_FROM")
  if from == nil or from == "" then
    from = "customer@example.org"
  end
  send_one(qid, message_id, from)
else
  for n = first, first + count - 1 do
    send_one(qid .. n, n .. "-" .. message_id, "customer-" .. n .. "@example.org")
  end
end
