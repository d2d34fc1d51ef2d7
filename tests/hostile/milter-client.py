#!/usr/bin/env python3
"""tests/hostile/milter-client.py - the MTA side of the milter protocol, as Postfix speaks it.

Usage: milter-client.py SOCKET MAIL RCPT-FILE QUEUE-ID

Sends the mail file MAIL (CRLF line ends) to the milter listening on SOCKET
(libmilter notation: unix:/path) as one SMTP transaction of Postfix would:
option negotiation as protocol version 6 offering every action and step,
the macros the filter asks for, MAIL FROM <customer@example.org>, one RCPT TO
per line of RCPT-FILE, each header field, end of headers, the body, end of
message; then QUIT. It prints what came back, one item a line:
  reply C                 the final reply to the mail (c, a, t, r, d, y ...)
  add NAME VALUE-LENGTH   a header the filter added (VALUE-LENGTH in bytes)
  change NAME INDEX VALUE-LENGTH, delete NAME INDEX (a change to "")
  rcpt-add ADDR, rcpt-delete ADDR
  header X-Ticket-ID VALUE  the value of an added X-Ticket-ID
  wall_ms MS              from connecting to the final reply
and exits 0. When the filter drops the connection or does not answer within
60 s it prints "dropped WHERE" and exits 1.

Why not miltertest: miltertest copies each header, and each reply it reads,
into a 1,024-byte stack buffer, so a header or a changed Subject longer than
that crashes it. This client has no such limit, and does what Postfix does
with a mail before its milters see it (milter8.c, cleanup):
  - each header field is one SMFIC_HEADER packet: name and value as C
    strings (a NUL ends them), folded lines joined with LF, the whole field
    cut to 60,000 bytes and the rest discarded: when milters are configured,
    Postfix's cleanup lowers header_size_limit (102400) to 60000 so as to
    stay under libmilter's 65,535-byte limit on one request, which would
    otherwise make libmilter drop the connection (KLUDGE_HEADER_LIMIT in
    cleanup_message.c; seen with Postfix 3.7 and this daemon);
  - with SMFIP_HDR_LEADSPC the value keeps the white space after the colon,
    without it one leading space is removed;
  - the body goes with CRLF line ends in chunks of at most 65535 bytes
    (MILTER_CHUNK_SIZE).
"""
import socket
import struct
import sys
import time

HEADER_SIZE_LIMIT = 60000  # Postfix's header_size_limit when milters are in use
CHUNK_SIZE = 65535
TIMEOUT = 60

# Protocol steps (SMFIP_*) and actions (SMFIF_*) of libmilter's mfdef.h.
SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT = 1 << 0, 1 << 1, 1 << 2, 1 << 3
SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NR_HDR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
SMFIP_NOUNKNOWN, SMFIP_NODATA = 1 << 8, 1 << 9
SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT = 1 << 12, 1 << 13, 1 << 14, 1 << 15
SMFIP_NR_DATA, SMFIP_NR_EOH, SMFIP_NR_BODY = 1 << 16, 1 << 18, 1 << 19
SMFIP_HDR_LEADSPC = 1 << 20
OFFERED_PROTOCOL = (1 << 21) - 1  # every step and option of protocol version 6
OFFERED_ACTIONS = 0x1FF
MACRO_STEPS = {0: b"C", 1: b"H", 2: b"M", 3: b"R", 4: b"T", 5: b"E", 6: b"N"}


class Dropped(Exception):
    """The filter closed the connection, or did not answer in time."""


class Milter:
    """One connection to the filter. A packet of the milter protocol is a
    4-byte length in network order, then that many bytes: the command
    character and its data. `where` names the step in progress, for the
    message when the filter drops the connection."""

    def __init__(self, address):
        if not address.startswith("unix:"):
            sys.exit("only unix: sockets are supported")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address[len("unix:"):])
        self.where = "connect"

    def send(self, command, data=b""):
        packet = struct.pack("!I", len(data) + 1) + command + data
        try:
            self.sock.sendall(packet)
        except OSError as error:
            raise Dropped("%s (%s)" % (self.where, error))

    def read_exactly(self, length):
        chunks = []
        while length > 0:
            try:
                chunk = self.sock.recv(min(length, 1 << 20))
            except OSError as error:
                raise Dropped("%s (%s)" % (self.where, error))
            if not chunk:
                raise Dropped(self.where)
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def receive(self):
        (length,) = struct.unpack("!I", self.read_exactly(4))
        packet = self.read_exactly(length)
        return packet[:1], packet[1:]


def cstr(text):
    """A C string: cut at the first NUL, NUL-terminated."""
    return text.split(b"\0", 1)[0] + b"\0"


def split_mail(data):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        block, body = data + b"\r\n", b""
    else:
        block, body = data[: end + 2], data[end + 4:]
    # [name, [value lines]]: joined once at the end, since appending to a
    # growing bytes value would copy it for each folded line.
    headers = []
    for line in block.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1][1].append(line)
        elif b":" in line:
            name, value = line.split(b":", 1)
            headers.append([name, [value]])
    return [(name, b"\n".join(lines)) for name, lines in headers], body


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: milter-client.py SOCKET MAIL RCPT-FILE QUEUE-ID")
    address, mail_path, rcpt_path, queue_id = sys.argv[1:]
    with open(mail_path, "rb") as f:
        headers, body = split_mail(f.read())
    with open(rcpt_path, "rb") as f:
        recipients = [line for line in f.read().split(b"\n") if line]

    started = time.monotonic()
    try:
        milter = Milter(address)
    except OSError as error:
        print("dropped connect (%s)" % error)
        return 1
    try:
        run(milter, headers, body, recipients, queue_id.encode())
        print("wall_ms %.1f" % ((time.monotonic() - started) * 1000.0))
    except Dropped as error:
        print("dropped", error)
        return 1
    except socket.timeout:
        print("dropped", milter.where, "(no answer within %d s)" % TIMEOUT)
        return 1
    return 0


def run(milter, headers, body, recipients, queue_id):
    milter.where = "option negotiation"
    milter.send(b"O", struct.pack("!III", 6, OFFERED_ACTIONS, OFFERED_PROTOCOL))
    command, data = milter.receive()
    if command != b"O":
        raise Dropped("negotiation answered %r" % command)
    _, actions, protocol = struct.unpack("!III", data[:12])
    macros = {}
    rest = data[12:]
    while len(rest) >= 4:
        (step,) = struct.unpack("!I", rest[:4])
        names, _, rest = rest[4:].partition(b"\0")
        macros[MACRO_STEPS.get(step, b"?")] = names.split()

    values = {b"i": queue_id, b"{client_addr}": b"192.0.2.10", b"{daemon_name}": b"smtpd",
              b"j": b"mx.example.test", b"{auth_authen}": b""}

    def send_macros(step):
        wanted = macros.get(step, [b"i", b"{client_addr}", b"{daemon_name}"] if step == b"M" else [])
        data = b"".join(name + b"\0" + values[name] + b"\0"
                        for name in wanted if values.get(name))
        if data:
            milter.send(b"D", step + data)

    # Sends one step unless the filter skipped it; False when the filter
    # answered it with anything but continue (or skip, which ends the body).
    skipped_body = []

    def step(command, data, skip_bit, no_reply_bit, where):
        if protocol & skip_bit:
            return True
        milter.where = where
        milter.send(command, data)
        if protocol & no_reply_bit:
            return True
        reply, _ = milter.receive()
        if reply == b"s" and command == b"B":
            skipped_body.append(True)
            return True
        if reply != b"c":
            print("reply", reply.decode("latin-1"))
            print("at", where)
            return False
        return True

    if not step(b"C", b"client.example.org\0" + b"4" + struct.pack("!H", 25) + b"192.0.2.10\0",
                SMFIP_NOCONNECT, SMFIP_NR_CONN, "connect"):
        return
    if not step(b"H", b"client.example.org\0", SMFIP_NOHELO, SMFIP_NR_HELO, "HELO"):
        return
    send_macros(b"M")
    if not step(b"M", b"<customer@example.org>\0", SMFIP_NOMAIL, SMFIP_NR_MAIL, "MAIL FROM"):
        return
    for rcpt in recipients:
        if not step(b"R", b"<" + rcpt + b">\0", SMFIP_NORCPT, SMFIP_NR_RCPT, "RCPT TO"):
            return
    if not step(b"T", b"", SMFIP_NODATA, SMFIP_NR_DATA, "DATA"):
        return
    for name, value in headers:
        if not protocol & SMFIP_HDR_LEADSPC and value[:1] == b" ":
            value = value[1:]
        value = value[: max(0, HEADER_SIZE_LIMIT - len(name) - 1)]
        if not step(b"L", cstr(name) + cstr(value), SMFIP_NOHDRS, SMFIP_NR_HDR,
                    "header %s" % name[:40].decode("latin-1")):
            return
    if not step(b"N", b"", SMFIP_NOEOH, SMFIP_NR_EOH, "end of headers"):
        return
    if not protocol & SMFIP_NOBODY:
        for pos in range(0, len(body), CHUNK_SIZE):
            if skipped_body:
                break
            if not step(b"B", body[pos: pos + CHUNK_SIZE], 0, SMFIP_NR_BODY, "body"):
                return
    send_macros(b"E")
    milter.where = "end of message"
    milter.send(b"E")
    while True:
        command, data = milter.receive()
        if command == b"h":
            name, value = data.split(b"\0")[:2]
            print("add", name.decode("latin-1"), len(value))
            if name.lower() == b"x-ticket-id":
                print("header", name.decode("latin-1"), value.strip().decode("latin-1"))
        elif command in (b"m", b"i"):
            (index,) = struct.unpack("!I", data[:4])
            name, value = data[4:].split(b"\0")[:2]
            kind = "delete" if command == b"m" and not value else (
                "change" if command == b"m" else "insert")
            print(kind, name.decode("latin-1"), index, len(value))
        elif command in (b"+", b"-", b"2"):
            print("rcpt-add" if command != b"-" else "rcpt-delete",
                  data.split(b"\0")[0].decode("latin-1"))
        elif command == b"p":
            continue
        else:
            print("reply", command.decode("latin-1"))
            break
    milter.where = "QUIT"
    milter.send(b"Q")


if __name__ == "__main__":
    sys.exit(main())
