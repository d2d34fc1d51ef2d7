#!/usr/bin/env python3
"""tests/hostile/make-mails.py - writes the hostile mails of tests/hostile/run.sh.

Usage: make-mails.py DIR

For each mail NAME it writes into DIR:
  NAME.eml   the mail as a file, CRLF line ends (what `ticketctl simulate`
             reads and what tests/hostile/send-mail.lua sends to the daemon);
  NAME.rcpt  the envelope recipients, one a line.
and prints one line per mail: NAME SIZE-IN-BYTES EXPECTED, where EXPECTED
is "ticket" (the mail must become a ticket) or "pass" (no ticket: the mail
passes untouched).

The mails are made at test time, never committed: together they are about
2 MB. All come from customer@example.org and all but one are addressed to
support@example.test, so they should become tickets:
  many-headers      10,000 header fields (about 640 KB, under the daemon's
                    default max_header_size of 1M, so all are kept)
  deep-multipart    multipart/mixed nested 1,000 deep, then a text part
  many-recipients   1,000 envelope recipients and a To: listing all of them
  many-elsewhere    the same without the support address: no ticket
  long-header-line  a 64 KB header line without a space in it, and a 64 KB
                    References: line of 1,500 message ids
  nul-headers       NUL bytes in the Subject, the From, the Message-ID and
                    in other header values and names
  huge-subject      a Subject of 1,000,000 bytes, folded, half plain words
                    and half valid encoded words (Arabic, Persian, Latin-1)
  bad-encoded-words malformed RFC 2047 encoded words in the Subject and the
                    From, and a malformed RFC 2231 file name
"""
import base64
import os
import sys

CRLF = b"\r\n"
SUPPORT = b"support@example.test"


def common_headers(subject, message_id):
    return [
        b"From: Customer <customer@example.org>",
        b"To: " + SUPPORT,
        b"Subject: " + subject,
        b"Message-ID: <" + message_id + b">",
        b"Date: Mon, 23 Nov 2026 09:00:00 +0300",
    ]


def mail(headers, body):
    """headers: list of complete (possibly folded with CRLF) header fields."""
    return CRLF.join(headers) + CRLF + CRLF + body


TEXT_BODY = b"Hello,\r\nmy printer is on fire.\r\n"


def many_headers():
    headers = common_headers(b"Ten thousand headers", b"many-headers@example.org")
    for i in range(10000):
        headers.append(b"X-Filler-%05d: value %05d of a header that says nothing much" % (i, i))
    return mail(headers, TEXT_BODY), [SUPPORT]


def deep_multipart(depth=1000):
    headers = common_headers(b"Nested a thousand deep", b"deep-multipart@example.org")
    headers += [b"MIME-Version: 1.0",
                b'Content-Type: multipart/mixed; boundary="b0"']
    # Each level opens its boundary and holds the next level as its one
    # part; the innermost holds a text part. The top level then has a
    # second part, the text that a ticket should show.
    opening = []
    for level in range(depth):
        opening.append(b"--b%d\r\n" % level)
        if level + 1 < depth:
            opening.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (level + 1))
        else:
            opening.append(b"Content-Type: text/plain; charset=us-ascii\r\n\r\nthe bottom\r\n")
    closing = []
    for level in reversed(range(1, depth)):
        closing.append(b"--b%d--\r\n" % level)
    body = (b"".join(opening) + b"".join(closing)
            + b"--b0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            + TEXT_BODY + b"--b0--\r\n")
    return mail(headers, body), [SUPPORT]


def many_recipients(count=1000, support=True):
    others = [b"colleague%04d@example.net" % i for i in range(count - 1)]
    # The support address in the middle of the envelope, as one of many.
    middle = [SUPPORT] if support else [b"colleague-x@example.net"]
    envelope = others[: count // 2] + middle + others[count // 2:]
    to = b"To: " + b",\r\n\t".join(envelope)
    headers = [h for h in common_headers(b"A thousand recipients",
                                         b"many-recipients-%d@example.org" % support)
               if not h.startswith(b"To:")]
    headers.insert(1, to)
    return mail(headers, TEXT_BODY), envelope


def long_header_line():
    headers = common_headers(b"A 64 KB header line", b"long-header-line@example.org")
    # "X-Long-Line: " and 64 KB of one token: the line is 65,549 bytes.
    headers.append(b"X-Long-Line: " + b"x" * 65536)
    ids = []
    size = 0
    i = 0
    while size < 65536:
        mid = b"<ref-%06d.%s@example.org>" % (i, b"r" * 20)
        ids.append(mid)
        size += len(mid) + 1
        i += 1
    headers.append(b"References: " + b" ".join(ids))
    return mail(headers, TEXT_BODY), [SUPPORT]


def nul_headers():
    headers = [
        b"From: Customer <customer@example.org>\x00<intruder@example.net>",
        b"To: " + SUPPORT + b"\x00",
        b"Subject: NUL \x00 in the subject\x00",
        b"Message-ID: <nul-headers@example.org>\x00<other@example.net>",
        b"Date: Mon, 23 Nov 2026 09:00:00 +0300",
        b"X-Nul-Value: \x00\x00\x00",
        b"X-Nul\x00Name: the name has a NUL",
        b"X-Ticket-ID: 4242\x00",
        b"In-Reply-To: <\x00@example.org>",
    ]
    body = b"Hello,\r\nthe body has a NUL \x00 too.\r\n"
    return mail(headers, body), [SUPPORT]


def huge_subject(target=1000000):
    # Folded at about 76 columns, as a mail client would.
    pieces = [
        b"printer on fire",
        b"=?UTF-8?B?" + base64.b64encode("الطابعة لا تعمل".encode()) + b"?=",
        b"invoice refund",
        b"=?UTF-8?B?" + base64.b64encode("چاپگر خراب است".encode()) + b"?=",
        b"=?ISO-8859-1?Q?caf=E9_cr=E8me?=",
    ]
    lines = []
    size = len(b"Subject:")
    i = 0
    line = b"Subject:"
    while size < target:
        piece = pieces[i % len(pieces)]
        i += 1
        if len(line) + 1 + len(piece) > 76:
            lines.append(line)
            size += 2
            line = b""
        line += b" " + piece
        size += 1 + len(piece)
    lines.append(line)
    subject = CRLF.join(lines)
    headers = [h for h in common_headers(b"", b"huge-subject@example.org")
               if not h.startswith(b"Subject:")]
    headers.insert(2, subject)
    return mail(headers, TEXT_BODY), [SUPPORT]


def bad_encoded_words():
    subject = (b"Subject: =?UTF-8?B?not base64 at all!!?= "
               b"=?no-such-charset?Q?abc?= "
               b"=?UTF-8?Q?=E2=82?= "          # a cut multi-byte sequence
               b"=?UTF-8?X?unknown-encoding?= "
               b"=?UTF-8?B?2YXYsdit2Kg=?= "   # valid, between broken ones
               b"=?=?UTF-8?B?bmVzdGVk?=?= "
               b"=?UTF-8*ar?B?2YXYsdit2Kg?= "   # a language tag, no padding
               b"=?windows-1256?Q?=C7=E1=DA=D1=C8=ED=C9?= "
               b"=?UTF-8?B?" + b"A" * 3000 + b" "  # never ends
               b"=?UTF-8?Q?")
    headers = [
        b"From: =?UTF-8?B?broken?= =?x?Q?y?= <customer@example.org>",
        b"To: =?UTF-8?Q?Support=?= <" + SUPPORT + b">",
        subject,
        b"Message-ID: <bad-encoded-words@example.org>",
        b"Date: Mon, 23 Nov 2026 09:00:00 +0300",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="bew"',
    ]
    body = (b"--bew\r\n"
            b"Content-Type: text/plain; charset=\"=?UTF-8?B?dXRmLTg=?=\"\r\n\r\n"
            b"Hello,\r\nthe subject is broken.\r\n"
            b"--bew\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename*=UTF-8''%E2%82%; "
            b"filename*0*=no-such-charset''%FF%FE; filename*1=\"=?UTF-8?B?###?=\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            b"not base64 at all, @@@\r\n"
            b"--bew--\r\n")
    return mail(headers, body), [SUPPORT]


MAILS = [
    ("many-headers", many_headers, "ticket"),
    ("deep-multipart", deep_multipart, "ticket"),
    ("many-recipients", many_recipients, "ticket"),
    ("many-elsewhere", lambda: many_recipients(support=False), "pass"),
    ("long-header-line", long_header_line, "ticket"),
    ("nul-headers", nul_headers, "ticket"),
    ("huge-subject", huge_subject, "ticket"),
    ("bad-encoded-words", bad_encoded_words, "ticket"),
]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-mails.py DIR")
    out = sys.argv[1]
    for name, make, expected in MAILS:
        data, envelope = make()
        with open(os.path.join(out, name + ".eml"), "wb") as f:
            f.write(data)
        with open(os.path.join(out, name + ".rcpt"), "wb") as f:
            f.write(b"".join(r + b"\n" for r in envelope))
        print(name, len(data), expected)


if __name__ == "__main__":
    main()
