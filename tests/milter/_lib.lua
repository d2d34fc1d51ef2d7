-- tests/milter/_lib.lua - helpers shared by the miltertest scripts.
-- Files whose name starts with "_" are not tests: run.sh skips them.
--
-- run.sh passes the daemon's socket in TM_SOCKET and its work directory in
-- TM_WORKDIR. ticket-milter negotiates SMFIP_HDR_LEADSPC, so the values it
-- adds or changes carry the space that follows the colon: tm.value("1") is
-- " 1" then, as Postfix and Sendmail expect.
tm = {}

-- Fails the script with a message (miltertest does not always print the
-- error it stops on, so the message is written to stderr first).
function tm.check(condition, what)
  if not condition then
    io.stderr:write("FAILED: " .. what .. "\n")
    error(what, 2)
  end
end

-- Connects and negotiates explicitly, so that miltertest knows which steps
-- and replies the filter waived.
function tm.connect()
  local socket = os.getenv("TM_SOCKET")
  tm.check(socket ~= nil, "TM_SOCKET is not set")
  local conn = mt.connect(socket)
  tm.check(conn ~= nil, "mt.connect(" .. socket .. ") failed")
  tm.check(mt.negotiate(conn, nil, nil, nil) == nil, "mt.negotiate() failed")
  tm.leading_space = mt.test_option(conn, SMFIP_HDR_LEADSPC)
  return conn
end

function tm.value(text)
  if tm.leading_space then
    return " " .. text
  end
  return text
end

-- Sends one mail up to and including end of message; returns the reply.
--   mail = { id = "QUEUEID", from = "a@b", rcpt = { "x@y", ... },
--            headers = { { "Name", "value" }, ... }, body = "text\r\n",
--            stop_after_headers = true (abort instead of finishing) }
function tm.send(conn, mail)
  tm.check(mt.macro(conn, SMFIC_MAIL, "i", mail.id, "{client_addr}", "192.0.2.10",
                    "{daemon_name}", "smtpd") == nil, "mt.macro() failed")
  tm.check(mt.mailfrom(conn, "<" .. (mail.from or "customer@example.org") .. ">") == nil,
           "mt.mailfrom() failed")
  for _, rcpt in ipairs(mail.rcpt or { "support@example.test" }) do
    tm.check(mt.rcptto(conn, "<" .. rcpt .. ">") == nil, "mt.rcptto() failed")
  end
  for _, header in ipairs(mail.headers or {}) do
    tm.check(mt.header(conn, header[1], header[2]) == nil,
             "mt.header(" .. header[1] .. ") failed")
  end
  tm.check(mt.eoh(conn) == nil, "mt.eoh() failed")
  if mail.stop_after_headers then
    tm.check(mt.abort(conn) == nil, "mt.abort() failed")
    return nil
  end
  tm.check(mt.bodystring(conn, mail.body or "Hello,\r\nmy printer is on fire.\r\n") == nil,
           "mt.bodystring() failed")
  tm.check(mt.eom(conn) == nil, "mt.eom() failed")
  return mt.getreply(conn)
end

-- A customer mail with the usual headers; EXTRA headers come first.
function tm.customer_mail(id, subject, message_id, extra)
  local headers = {}
  for _, header in ipairs(extra or {}) do
    table.insert(headers, header)
  end
  table.insert(headers, { "From", "Customer <customer@example.org>" })
  table.insert(headers, { "To", "support@example.test" })
  table.insert(headers, { "Subject", subject })
  table.insert(headers, { "Message-ID", "<" .. message_id .. ">" })
  table.insert(headers, { "Date", "Mon, 23 Nov 2026 09:00:00 +0300" })
  return { id = id, headers = headers }
end

-- Runs a shell command; fails the test when it fails.
function tm.run(command)
  local ok = os.execute(command)
  tm.check(ok == true or ok == 0, "command failed: " .. command)
end

-- The output of an sqlite3 query on the test's database, trailing newline cut.
function tm.sql(query)
  local db = os.getenv("TM_WORKDIR") .. "/tickets.db"
  local pipe = io.popen("sqlite3 '" .. db .. "' \"" .. query .. "\"")
  local out = pipe:read("*a")
  pipe:close()
  return (out:gsub("\n$", ""))
end
