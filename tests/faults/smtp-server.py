#!/usr/bin/env python3
"""tests/faults/smtp-server.py - a stand-in for the MTA that takes the desk's
own mail (the outbox's acknowledgements), for tests/faults/run.sh.

usage: smtp-server.py silent|sink STATUS_FILE

Listens on 127.0.0.1 on a port the system picks and keeps STATUS_FILE up to
date with one line:

    port=PORT accepted=N open=N delivered=N

  silent  accepts every connection and never says a word (no greeting): a
          server that hangs, so that a client waits for its timeouts.
  sink    speaks just enough SMTP to take every mail (250 to everything,
          354 to DATA), then forgets it.

Runs until killed; the status file is rewritten whole (a rename) on every
change, so that a reader never sees half a line.
"""
import os
import socket
import sys
import threading

mode, status_path = sys.argv[1], sys.argv[2]
if mode not in ("silent", "sink"):
    sys.exit("usage: smtp-server.py silent|sink STATUS_FILE")

lock = threading.Lock()
counts = {"accepted": 0, "open": 0, "delivered": 0}


def write_status(port):
    with lock:
        line = "port=%d accepted=%d open=%d delivered=%d\n" % (
            port, counts["accepted"], counts["open"], counts["delivered"])
        tmp = status_path + ".tmp"
        with open(tmp, "w") as out:
            out.write(line)
        os.rename(tmp, status_path)


def count(key, delta, port):
    with lock:
        counts[key] += delta
    write_status(port)


def serve_sink(conn, port):
    """One SMTP session: answers every command, swallows the data."""
    reader = conn.makefile("rb")
    conn.sendall(b"220 sink.example.test ESMTP\r\n")
    in_data = False
    for line in reader:
        if in_data:
            if line.rstrip(b"\r\n") == b".":
                in_data = False
                count("delivered", 1, port)
                conn.sendall(b"250 2.0.0 queued\r\n")
            continue
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            conn.sendall(b"250 sink.example.test\r\n")
        elif verb == b"DATA":
            in_data = True
            conn.sendall(b"354 go ahead\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 2.0.0 bye\r\n")
            break
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")


def handle(conn, port):
    count("accepted", 1, port)
    count("open", 1, port)
    try:
        if mode == "sink":
            serve_sink(conn, port)
        else:
            # Read (and drop) whatever comes until the client gives up.
            while conn.recv(4096):
                pass
    except OSError:
        pass
    finally:
        conn.close()
        count("open", -1, port)


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    write_status(port)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, port), daemon=True).start()


main()
