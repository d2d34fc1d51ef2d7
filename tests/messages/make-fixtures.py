#!/usr/bin/env python3
"""Writes the parser fixtures in this directory (see README).

The fixtures are committed; this script documents how their bytes were
made, in particular the windows-1256 and ISO-8859-6 ones, and re-creates
them byte for byte:  python3 tests/messages/make-fixtures.py
It only writes the files listed below; e2e-* and milter-* files belong to
other tests and are left alone.
"""
import base64
import os
import quopri
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def b_word(text, charset):
    data = text.encode(charset)
    return "=?%s?B?%s?=" % (charset, base64.b64encode(data).decode("ascii"))


def q_word(text, charset):
    out = []
    for byte in text.encode(charset):
        c = chr(byte)
        if c == " ":
            out.append("_")
        elif c.isascii() and c.isalnum():
            out.append(c)
        else:
            out.append("=%02X" % byte)
    return "=?%s?Q?%s?=" % (charset, "".join(out))


def b64_lines(data):
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i:i + 76] for i in range(0, len(text), 76))


def write(name, text_or_bytes, crlf):
    data = text_or_bytes if isinstance(text_or_bytes, bytes) else text_or_bytes.encode("utf-8")
    data = data.replace(b"\r\n", b"\n")
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


# A small but valid PDF (one empty page); its size is checked by the tests.
PDF = (b"%PDF-1.4\n"
       b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
       b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n"
       b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n"
       b"0000000058 00000 n \n0000000115 00000 n \n"
       b"trailer << /Size 4 /Root 1 0 R >>\nstartxref\n186\n%%EOF\n")

# ---------------------------------------------------------------------------
ar_subject = "لم تصل فاتورتي لشهر أكتوبر"
ar_body = ("مرحبا، لم تصل فاتورتي لشهر أكتوبر.\n"
           "رقم الحساب 4471، وقد دفعت المبلغ في الموعد.\n"
           "شكرا لكم\n"
           "أحمد السالم\n")
headers = (
    "Return-Path: <ahmed.salem@example.sa>\n"
    "Received: from mail.example.sa (mail.example.sa [192.0.2.10])\n"
    "\tby mx.example.com (Postfix) with ESMTPS id 4XYZ1\n"
    "\tfor <support@example.com>; Mon, 14 Oct 2024 09:30:02 +0300 (+03)\n"
    "From: %s <Ahmed.Salem@Example.SA>\n"
    "To: Support <support@example.com>\n"
    "Subject: %s\n"
    "Date: Mon, 14 Oct 2024 09:30:00 +0300\n"
    "Message-ID: <20241014093000.4471@mail.example.sa>\n"
    "Content-Language: ar\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=windows-1256\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n" % (b_word("أحمد السالم", "windows-1256"), b_word(ar_subject, "windows-1256")))
body = quopri.encodestring(ar_body.encode("cp1256")).decode("ascii")
write("arabic-windows-1256.eml", headers + body, crlf=True)

# ---------------------------------------------------------------------------
iso_subject = "استفسار عن الطلب"
iso_body = ("السلام عليكم،\n"
            "أرجو إفادتي بموعد وصول الطلب رقم 5521.\n"
            "مع الشكر\n")
msg = (b"From: Layla <layla@example.jo>\n"
       b"To: support@example.com\n"
       b"Subject: " + q_word(iso_subject, "ISO-8859-6").encode("ascii") + b"\n"
       b"Date: Tue, 15 Oct 2024 11:05:00 +0300\n"
       b"Message-ID: <iso-8859-6.5521@example.jo>\n"
       b"MIME-Version: 1.0\n"
       b"Content-Type: text/plain; charset=\"ISO_8859-6\"\n"
       b"Content-Transfer-Encoding: 8bit\n"
       b"\n" + iso_body.encode("iso-8859-6"))
write("arabic-iso-8859-6.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
fa_subject = "مشکل در پرداخت"
fa_text = ("سلام، کارت بانکی من کار نمی‌کند و پرداخت انجام نشد.\n"
           "لطفا رسید پیوست را بررسی کنید.\n"
           "با تشکر، مریم احمدی\n")
fa_html = ("<html><head><title>پرداخت</title><style>p{color:red}</style></head>"
           "<body><p>سلام، کارت بانکی من کار نمی&zwnj;کند و پرداخت انجام نشد.</p>"
           "<p>لطفا رسید پیوست را بررسی کنید.</p></body></html>\n")
pdf_name = "رسید-پرداخت.pdf"
pdf_name_2231 = "UTF-8''" + urllib.parse.quote(pdf_name.encode("utf-8"))
msg = (
    "From: %s <Maryam.Ahmadi@Example.IR>\n"
    "To: support@example.com, \"Billing\" <Billing@Example.com>\n"
    "Cc: Finance: Ali <ali@example.ir>, sara@example.ir;, Omid <OMID@example.ir>\n"
    "Subject: %s\n"
    "Date: Wed, 16 Oct 2024 14:20:00 +0330\n"
    "Message-ID: <fa-utf8-0001@mail.example.ir>\n"
    "Content-Language: fa\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"=-outer-7f3a\"\n"
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--=-outer-7f3a\n"
    "Content-Type: multipart/alternative; boundary=\"=-alt-19c2\"\n"
    "\n"
    "--=-alt-19c2\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "%s\n"
    "--=-alt-19c2\n"
    "Content-Type: text/html; charset=UTF-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "%s\n"
    "--=-alt-19c2--\n"
    "\n"
    "--=-outer-7f3a\n"
    "Content-Type: application/pdf\n"
    "Content-Disposition: attachment; filename*=%s\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "%s\n"
    "--=-outer-7f3a--\n" % (
        b_word("مریم احمدی", "UTF-8"), b_word(fa_subject, "UTF-8"),
        b64_lines(fa_text.encode("utf-8")), b64_lines(fa_html.encode("utf-8")),
        pdf_name_2231, b64_lines(PDF)))
write("persian-utf8.eml", msg, crlf=True)

# ---------------------------------------------------------------------------
msg = ("From: رضا کریمی <reza.karimi@example.ir>\n"
       "To: support@example.com\n"
       "Subject: درخواست بازپرداخت سفارش ۱۲۳۴\n"
       "Date: Thu, 17 Oct 2024 08:00:00 +0330\n"
       "Message-ID: <raw-8bit-fa@example.ir>\n"
       "MIME-Version: 1.0\n"
       "Content-Type: text/plain; charset=utf-8\n"
       "Content-Transfer-Encoding: 8bit\n"
       "\n"
       "سلام، لطفا مبلغ سفارش ۱۲۳۴ را بازپرداخت کنید.\n")
write("persian-raw-8bit-header.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
cp_subject = "طلب استرداد المبلغ"
cp_body = "أرجو استرداد المبلغ المدفوع مرتين.\nمع التحية\n"
msg = (b"From: Khalid <khalid@example.ae>\n"
       b"To: support@example.com\n"
       b"Subject: " + cp_subject.encode("cp1256") + b"\n"
       b"Date: Fri, 18 Oct 2024 10:00:00 +0400\n"
       b"Message-ID: <raw-cp1256@example.ae>\n"
       b"MIME-Version: 1.0\n"
       b"Content-Type: text/plain\n"
       b"Content-Transfer-Encoding: 8bit\n"
       b"\n" + cp_body.encode("cp1256"))
write("arabic-raw-8bit-cp1256-header.eml", msg, crlf=True)

# ---------------------------------------------------------------------------
msg = ("Received: from client.example.org (client.example.org [198.51.100.7])\n"
       "\tby mx.example.com (Postfix) with ESMTPSA id 4ABC2\n"
       "\tfor <support@example.com>; Sat, 19 Oct 2024 12:00:01 +0000 (UTC)\n"
       "From: \"John Smith\" <John.Smith@Example.ORG>\n"
       "Reply-To: John Smith <J.Smith+Tickets@Example.ORG>\n"
       "To: Support <Support@Example.com>, sales@example.com\n"
       "Cc: manager@example.org\n"
       "Subject: Cannot log in to my account\n"
       "Date: Sat, 19 Oct 2024 12:00:00 +0000\n"
       "Message-ID: <CAF=english.plain.001@mail.example.org>\n"
       "Content-Language: en-GB\n"
       "MIME-Version: 1.0\n"
       "Content-Type: text/plain; charset=us-ascii\n"
       "Content-Transfer-Encoding: 7bit\n"
       "\n"
       "Hello,\n"
       "\n"
       "Since yesterday I cannot log in to my account. The page says\n"
       "\"invalid session\" and sends me back to the start.\n"
       "\n"
       "Regards,\n"
       "John\n")
write("english-plain.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
html = ("<!DOCTYPE html>\n<html><head><title>Order</title>\n"
        "<script>var tracking = \"do not show\";</script>\n"
        "<style>body { font-family: sans-serif; }</style></head>\n"
        "<body>\n<!-- a comment that must vanish -->\n"
        "<h1>Order&nbsp;#7781 &amp; delivery</h1>\n"
        "<p>The parcel   was\n   <b>not</b> delivered &mdash; tracking says &quot;lost&quot;.</p>\n"
        "<ul><li>Item: caf&eacute; beans</li><li>Price: &euro;12 &lt;incl. VAT&gt;</li></ul>\n"
        "<p>See <a href=\"https://shop.example.net/orders/7781\">my order</a> "
        "or <a href=\"https://shop.example.net/help\">https://shop.example.net/help</a>.</p>\n"
        "<div>Thanks &#8211; Emma &#x263A;</div>\n"
        "</body></html>\n")
msg = ("From: Emma Brown <emma@example.net>\n"
       "To: support@example.com\n"
       "Subject: Parcel lost\n"
       "Date: Sun, 20 Oct 2024 16:45:00 +0100\n"
       "Message-ID: <html-only.7781@example.net>\n"
       "MIME-Version: 1.0\n"
       "Content-Type: text/html; charset=utf-8\n"
       "Content-Transfer-Encoding: quoted-printable\n"
       "\n" + quopri.encodestring(html.encode("utf-8")).decode("ascii"))
write("html-only.eml", msg, crlf=True)

# ---------------------------------------------------------------------------
msg = ("From: Old Client <oldclient@example.com>\n"
       "To: support@example.com\n"
       "Subject: Question without an id\n"
       "Date: Mon, 21 Oct 2024 07:00:00 -0500\n"
       "\n"
       "My mail program does not add a Message-ID.\n")
write("no-message-id.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = (b"From: Tariq <tariq@example.qa>\n"
       b"To: support@example.com\n"
       b"Subject: Wrong invoice\n"
       b"Date: Tue, 22 Oct 2024 09:00:00 +0300\n"
       b"Message-ID: <unknown-charset@example.qa>\n"
       b"MIME-Version: 1.0\n"
       b"Content-Type: text/plain; charset=x-klingon\n"
       b"Content-Transfer-Encoding: 8bit\n"
       b"\n"
       b"The invoice is wrong: " + "الفاتورة خاطئة".encode("cp1256") + b"\n")
write("unknown-charset.eml", msg, crlf=True)

# ---------------------------------------------------------------------------
# 20 full base64 lines (57 bytes each) and 40 more characters (30 bytes):
# the attachment decodes to 1170 bytes, then the mail just stops.
blob = bytes((i * 37 + 11) % 256 for i in range(4000))
lines = b64_lines(blob).split("\n")
cut = "\n".join(lines[:20]) + "\n" + lines[20][:40]
msg = ("From: Big Sender <big@example.com>\n"
       "To: support@example.com\n"
       "Subject: Logs attached\n"
       "Date: Wed, 23 Oct 2024 10:00:00 +0000\n"
       "Message-ID: <truncated-multipart@example.com>\n"
       "MIME-Version: 1.0\n"
       "Content-Type: multipart/mixed; boundary=\"b1\"\n"
       "\n"
       "--b1\n"
       "Content-Type: text/plain; charset=utf-8\n"
       "\n"
       "Please find the server logs attached.\n"
       "--b1\n"
       "Content-Type: application/zip; name=\"logs.zip\"\n"
       "Content-Disposition: attachment; filename=\"logs.zip\"\n"
       "Content-Transfer-Encoding: base64\n"
       "\n" + cut)
write("truncated-multipart.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = ("From: Quiet <quiet@example.com>\n"
       "To: support@example.com\n"
       "Subject: Empty body\n"
       "Date: Thu, 24 Oct 2024 10:00:00 +0000\n"
       "Message-ID: <empty-body@example.com>\n"
       "\n")
write("empty-body.eml", msg, crlf=True)

# ---------------------------------------------------------------------------
msg = ("To: support@example.com\n"
       "Message-ID: <missing-headers@example.com>\n"
       "\n"
       "A mail without From, Subject or Date.\n")
write("missing-headers.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = ("From: Mallory <mallory@example.com>\n"
       "To: support@example.com\n"
       "Subject: Please close ticket 999\n"
       "Date: Fri, 25 Oct 2024 10:00:00 +0000\n"
       "Message-ID: <forged-ticket-header@example.com>\n"
       "X-Ticket-ID: 999\n"
       "X-Ticket-Queue: support\n"
       "\n"
       "I set the ticket headers myself.\n")
write("forged-ticket-header.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = ("From: \"John Smith\" <john.smith@example.org>\n"
       "To: support@example.com\n"
       "Subject: Re: [Ticket#1] Cannot log in to my account\n"
       "Date: Sat, 26 Oct 2024 09:00:00 +0000\n"
       "Message-ID: <reply-with-tag.002@mail.example.org>\n"
       "In-Reply-To: <ack-1@support.example.com>\n"
       "References: <CAF=english.plain.001@mail.example.org>\n"
       " <ack-1@support.example.com>\n"
       "\n"
       "It still does not work.\n"
       "\n"
       "> Your request has been received as ticket 1.\n")
write("reply-with-tag.eml", msg, crlf=True)

# ---------------------------------------------------------------------------
msg = ("From: \"John Smith\" <john.smith@example.org>\n"
       "To: support@example.com\n"
       "Subject: Re: Cannot log in to my account\n"
       "Date: Sun, 27 Oct 2024 09:00:00 +0000\n"
       "Message-ID: <reply-without-tag.003@mail.example.org>\n"
       "In-Reply-To: <ack-1@support.example.com>\n"
       "\n"
       "Any news?\n")
write("reply-without-tag.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = ("From: Partner Desk <desk@partner.example>\n"
       "To: support@example.com\n"
       "Subject: [#1042] [rt #5] hello\n"
       "Date: Mon, 28 Oct 2024 09:00:00 +0000\n"
       "Message-ID: <other-system-tags@partner.example>\n"
       "\n"
       "Tags of other ticket systems must not be mistaken for ours.\n")
write("other-system-tags.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = (b"From: Null Byte <null@example.com>\n"
       b"To: support@example.com\n"
       b"Subject: Order\x00 status\n"
       b"X-Junk: a\x00b\xff\xfec\n"
       b"Date: Tue, 29 Oct 2024 09:00:00 +0000\n"
       b"Message-ID: <nul-in-header@example.com>\n"
       b"\n"
       b"Header values with NUL bytes.\n")
write("nul-in-header.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
msg = ("From: =?utf-8?Q?Broken=ZZName?= <broken@example.com>\n"
       "To: support@example.com\n"
       "Subject: =?utf-8?B?@@@?= =?unknown?Q?x?= tail\n"
       "Date: Wed, 30 Oct 2024 09:00:00 +0000\n"
       "Message-ID: <encoded-word-malformed@example.com>\n"
       "\n"
       "Malformed encoded words.\n")
write("encoded-word-malformed.eml", msg, crlf=False)

# ---------------------------------------------------------------------------
inner = ("From: Vendor <billing@vendor.example>\n"
         "To: maryam.ahmadi@example.ir\n"
         "Subject: Your invoice 2024-10\n"
         "Date: Tue, 01 Oct 2024 09:00:00 +0000\n"
         "Message-ID: <inner-invoice@vendor.example>\n"
         "MIME-Version: 1.0\n"
         "Content-Type: multipart/mixed; boundary=\"inner\"\n"
         "\n"
         "--inner\n"
         "Content-Type: text/plain; charset=utf-8\n"
         "\n"
         "Invoice attached.\n"
         "--inner\n"
         "Content-Type: application/pdf; name=\"invoice-2024-10.pdf\"\n"
         "Content-Transfer-Encoding: base64\n"
         "\n" + b64_lines(PDF) + "\n"
         "--inner--\n")
msg = ("From: Maryam Ahmadi <maryam.ahmadi@example.ir>\n"
       "To: support@example.com\n"
       "Subject: Fwd: Your invoice 2024-10\n"
       "Date: Thu, 31 Oct 2024 09:00:00 +0330\n"
       "Message-ID: <forwarded-rfc822@example.ir>\n"
       "MIME-Version: 1.0\n"
       "Content-Type: multipart/mixed; boundary=\"outer\"\n"
       "\n"
       "--outer\n"
       "Content-Type: text/plain; charset=utf-8\n"
       "\n"
       "See the forwarded invoice below.\n"
       "--outer\n"
       "Content-Type: message/rfc822\n"
       "Content-Disposition: attachment\n"
       "\n" + inner +
       "--outer--\n")
write("forwarded-rfc822.eml", msg, crlf=True)

print("fixtures written; PDF is %d bytes" % len(PDF))
