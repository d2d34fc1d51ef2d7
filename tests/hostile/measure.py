#!/usr/bin/env python3
"""tests/hostile/measure.py - runs a command and reports its time and peak memory.

Usage: measure.py TIMEOUT-SECONDS STDOUT-FILE STDERR-FILE COMMAND [ARG]...

Runs COMMAND with its output in the two files and prints one line:
  STATUS WALL-MS MAX-RSS-KB
STATUS is the command's exit status, "timeout" when it ran longer than
TIMEOUT-SECONDS (it is then killed), or "signal-N" when a signal ended it.
MAX-RSS-KB is the command's own peak resident set size, in kilobytes: what
`/usr/bin/time -f %M` says, without needing GNU time.

Why the detour through sh: the kernel's peak RSS of a process counts the
memory it had before exec, and a child forked by Python starts with all of
Python's (10 MB or more), which would hide a small command's figure. So a
small sh forks the process that will run COMMAND and exits; this script,
a child subreaper (prctl PR_SET_CHILD_SUBREAPER), inherits that process
and reaps it with wait4, which gives its own rusage. The process waits on
a pipe until it has been inherited, since sh may reap a background job that
ends before sh does, and its status would be lost.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36

# $1: the pipe's descriptor; $2, $3: the output files; then the command.
LAUNCHER = ('fd=$1 out=$2 err=$3; shift 3; '
            '{ eval "read go <&$fd"; eval "exec $fd<&-"; exec "$@"; } '
            '< /dev/null > "$out" 2> "$err" & '
            'echo $!')


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: measure.py TIMEOUT-SECONDS STDOUT-FILE STDERR-FILE COMMAND [ARG]...")
    timeout = float(sys.argv[1])
    out_path, err_path, command = sys.argv[2], sys.argv[3], sys.argv[4:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("measure.py: prctl(PR_SET_CHILD_SUBREAPER): %s" % os.strerror(ctypes.get_errno()))

    go_read, go_write = os.pipe()
    launcher = subprocess.run(["sh", "-c", LAUNCHER, "sh", str(go_read), out_path, err_path]
                              + command, stdout=subprocess.PIPE, pass_fds=(go_read,), check=True)
    os.close(go_read)
    pid = int(launcher.stdout)
    started = time.monotonic()
    os.write(go_write, b"go\n")
    os.close(go_write)

    deadline = started + timeout
    status = None
    while True:
        done, wait_status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            break
        if status is None and time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            status = "timeout"
        time.sleep(0.002)
    wall_ms = (time.monotonic() - started) * 1000.0
    if status is None:
        if os.WIFEXITED(wait_status):
            status = str(os.WEXITSTATUS(wait_status))
        else:
            status = "signal-%d" % os.WTERMSIG(wait_status)
    print("%s %.1f %d" % (status, wall_ms, usage.ru_maxrss))


if __name__ == "__main__":
    main()
