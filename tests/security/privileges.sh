#!/bin/sh
# tests/security/privileges.sh - the privilege drop and the files it leaves.
#
# Started as root with [milter] user = nobody (the unprivileged account every
# Debian system has; nothing is created), as a daemon and with -f, the
# running filter must show in /proc/PID/status real, effective, saved and
# file-system uid and gid all nobody's, no group 0 among its groups, and no
# capabilities (effective, permitted, ambient); its unix socket must have
# exactly socket_mode and belong to nobody; the directories it creates
# (socket, state) and the database with its -wal and -shm files must belong
# to nobody and be writable by nobody else; the pid file must name it, and
# go when it stops. A mail sent over the socket (miltertest, when installed)
# proves the filter still works as nobody. Then the refusals: an unknown
# user, an invalid or setuid socket_mode, a state directory the user cannot
# write - each stops start-up with its exit status and a clear message and
# leaves nothing running; and without a user it keeps root but says so.
# A known gap is reported as TAP TODO (an expected failure until fixed): under
# umask 000 the pid file comes out world-writable, milter.c setting no umask.
# Needs root (skips otherwise) and the nobody account.
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || tap_skip_all "needs root to drop privileges"
MILTER=$(tm_bin ticket-milter)
command -v "$MILTER" > /dev/null 2>&1 || tap_skip_all "ticket-milter is not built"
user=nobody
uid=$(id -u "$user" 2> /dev/null) || tap_skip_all "there is no user $user"
gid=$(id -g "$user")
group=$(id -gn "$user")
[ "$uid" -ne 0 ] && [ "$gid" -ne 0 ] || tap_skip_all "$user is root"
SQLITE=$(command -v sqlite3 || true)

work=$(tm_workdir)
daemon_pids=""
stop_daemons () {
  local pid
  for pid in $daemon_pids; do
    kill -KILL "$pid" 2> /dev/null || true
  done
  daemon_pids=""
}
tm_on_exit stop_daemons

# write_config DIR SOCKET_MODE [USER]: a configuration whose socket, state
# and pid file all live under DIR, in directories the daemon has to make.
write_config () {
  cat > "$1/ticket-milter.conf" <<EOC
[milter]
socket = unix:$1/run/milter.sock
user = ${3-$user}
socket_mode = $2
pid_file = $1/run/ticket-milter.pid
[store]
path = $1/state/tickets.db
[templates]
dir = $top_srcdir/templates
# Nothing listens there: acknowledgements stay in the outbox.
[smtp]
url = smtp://127.0.0.1:9
[queue support]
address = support@example.test
EOC
}

# wait_gone PID: until the process has exited (at most 10 s).
wait_gone () {
  local i=0
  while kill -0 "$1" 2> /dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && return 1
    sleep 0.1
  done
}

# status_field PID NAME: the value of NAME: in /proc/PID/status, tabs as spaces.
status_field () { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr '\t' ' ' | sed 's/ *$//'; }

# not_writable_by_others PATH...: each exists and has no group or other write bit
# that would let anyone but the user change it.
not_writable_by_others () {
  local path mode
  for path in "$@"; do
    [ -e "$path" ] || { echo "$path does not exist"; return 1; }
    mode=$(stat -c %a "$path")
    case $mode in
      *[2367]) echo "$path is world-writable ($mode)"; return 1 ;;
    esac
  done
}

# check_process NAME PID: the privilege checks on a running filter.
check_process () {
  tap_is "$1: uid real/effective/saved/fs" "$(status_field "$2" Uid)" "$uid $uid $uid $uid"
  tap_is "$1: gid real/effective/saved/fs" "$(status_field "$2" Gid)" "$gid $gid $gid $gid"
  tap_ok "$1: no group 0 among its groups ($(status_field "$2" Groups))" \
    sh -c 'for g in $1; do [ "$g" != 0 ] || exit 1; done' - "$(status_field "$2" Groups)"
  tap_is "$1: no effective, permitted or ambient capabilities" \
    "$(status_field "$2" CapEff) $(status_field "$2" CapPrm) $(status_field "$2" CapAmb)" \
    "0000000000000000 0000000000000000 0000000000000000"
}

# tap_todo NAME REASON CMD...: a known gap, reported as TAP TODO: a failure
# is an expected one (XFAIL); a pass (XPASS) fails the run, so that the
# TODO is removed once the gap is closed.
tap_todo () {
  local name=$1 reason=$2 out
  shift 2
  tap_count=$((tap_count + 1))
  if out=$("$@" 2>&1); then
    echo "ok $tap_count - $name # TODO $reason"
  else
    echo "not ok $tap_count - $name # TODO $reason"
    printf '%s\n' "$out" | sed 's/^/# /'
  fi
}

plan=31
[ -n "$SQLITE" ] && plan=$((plan + 1))
tap_plan $plan

# --- as a daemon ----------------------------------------------------------------
d=$(tm_workdir)
write_config "$d" 0660
"$MILTER" -c "$d/ticket-milter.conf" > "$d/start.log" 2>&1
status=$?
pid=$(cat "$d/run/ticket-milter.pid" 2> /dev/null || true)
[ -n "$pid" ] && daemon_pids="$daemon_pids $pid"
tap_ok "daemon: starts (exit 0) and writes its pid file" \
  sh -c '[ "$1" -eq 0 ] && [ -n "$2" ] && kill -0 "$2" || { cat "$3"; exit 1; }' - \
  "$status" "$pid" "$d/start.log"
tap_is "daemon: the pid file names the running ticket-milter" \
  "$(readlink "/proc/${pid:-0}/exe" 2> /dev/null | sed 's|.*/||')" "ticket-milter"
check_process daemon "${pid:-0}"
tap_is "daemon: the socket has socket_mode 0660 and belongs to $user:$group" \
  "$(stat -c '%F %a %U:%G' "$d/run/milter.sock" 2> /dev/null)" "socket 660 $user:$group"
tap_is "daemon: the socket and state directories it made belong to $user" \
  "$(stat -c '%U:%G %a' "$d/run" "$d/state" | tr '\n' ' ')" "$user:$group 755 $user:$group 750 "
tap_ok "daemon: nothing it made is world-writable" \
  not_writable_by_others "$d/run" "$d/state" "$d/run/milter.sock" "$d/run/ticket-milter.pid" \
  "$d/state/tickets.db"

# One mail through the socket: the filter still works once it is nobody.
if [ -n "${MILTERTEST:-}" ]; then
  cat > "$d/one-mail.lua" <<'EOL'
dofile(os.getenv("TM_LUA_DIR") .. "/_lib.lua")
local conn = tm.connect()
local reply = tm.send(conn, tm.customer_mail("PRIV001", "as nobody", "priv-1@example.org"))
tm.check(reply == SMFIR_CONTINUE, "unexpected reply " .. tostring(reply))
tm.check(mt.eom_check(conn, MT_HDRADD, "X-Ticket-ID", tm.value("1")), "X-Ticket-ID: 1 not added")
mt.disconnect(conn)
EOL
  tap_ok "daemon: a mail over the socket makes ticket 1" \
    env TM_SOCKET="unix:$d/run/milter.sock" TM_LUA_DIR="$top_srcdir/tests/milter" \
    "$MILTERTEST" -s "$d/one-mail.lua"
else
  tap_skip "daemon: a mail over the socket makes ticket 1" "miltertest is not installed"
fi
tap_is "daemon: the database, its -wal and -shm belong to $user" \
  "$(cd "$d/state" && stat -c '%n %U:%G' tickets.db tickets.db-wal tickets.db-shm 2>&1 | tr '\n' ' ')" \
  "tickets.db $user:$group tickets.db-wal $user:$group tickets.db-shm $user:$group "
tap_ok "daemon: none of the database files is world-writable" \
  not_writable_by_others "$d/state/tickets.db" "$d/state/tickets.db-wal" "$d/state/tickets.db-shm"
if [ -n "$SQLITE" ] && [ -n "${MILTERTEST:-}" ]; then
  tap_is "daemon: the ticket is in the database" \
    "$("$SQLITE" "$d/state/tickets.db" 'SELECT count(*) FROM tickets')" "1"
elif [ -n "$SQLITE" ]; then
  tap_skip "daemon: the ticket is in the database" "miltertest is not installed"
fi
[ -n "$pid" ] && kill -TERM "$pid"
tap_ok "daemon: SIGTERM stops it" wait_gone "${pid:-0}"
tap_ok "daemon: the socket and the pid file are gone" \
  sh -c '! [ -e "$1" ] && ! [ -e "$2" ]' - "$d/run/milter.sock" "$d/run/ticket-milter.pid"

# --- in the foreground ------------------------------------------------------------
f=$(tm_workdir)
write_config "$f" 0600
"$MILTER" -f -c "$f/ticket-milter.conf" > "$f/milter.log" 2>&1 &
fpid=$!
daemon_pids="$daemon_pids $fpid"
i=0
until [ -S "$f/run/milter.sock" ] || [ $i -gt 100 ] || ! kill -0 "$fpid" 2> /dev/null; do
  i=$((i + 1)); sleep 0.1
done
tap_ok "-f: starts and listens" sh -c '[ -S "$1" ] && kill -0 "$2" || { cat "$3"; exit 1; }' - \
  "$f/run/milter.sock" "$fpid" "$f/milter.log"
tap_is "-f: the pid file names it" "$(cat "$f/run/ticket-milter.pid" 2> /dev/null)" "$fpid"
check_process -f "$fpid"
tap_is "-f: the socket has socket_mode 0600 and belongs to $user" \
  "$(stat -c '%a %U' "$f/run/milter.sock" 2> /dev/null)" "600 $user"
kill -TERM "$fpid"
wait "$fpid"
tap_is "-f: SIGTERM stops it with status 0" "$?" "0"

# --- refusals -----------------------------------------------------------------------
# refused NAME DIR STATUS TEXT [-f]: start-up fails with STATUS, says TEXT, and
# leaves no process, socket or pid file behind.
refused () {
  local name=$1 dir=$2 want=$3 text=$4 flag=${5:-}
  "$MILTER" $flag -c "$dir/ticket-milter.conf" > "$dir/start.log" 2>&1
  local got=$?
  tap_ok "$name: exit $want, \"$text\"" sh -c '
    cat "$3"
    [ "$1" -eq "$2" ] && grep -qF -- "$4" "$3" && ! [ -e "$5/run/ticket-milter.pid" ] \
      && ! [ -e "$5/run/milter.sock" ]' - "$got" "$want" "$dir/start.log" "$text" "$dir"
}
u=$(tm_workdir)
write_config "$u" 0660 no-such-user-for-ticket-milter
refused "unknown user, daemon" "$u" 78 'user "no-such-user-for-ticket-milter" does not exist'
refused "unknown user, -f" "$u" 78 'user "no-such-user-for-ticket-milter" does not exist' -f
tap_ok "unknown user: nothing created" sh -c '! [ -e "$1/run" ] && ! [ -e "$1/state" ]' - "$u"
m=$(tm_workdir)
write_config "$m" 0999
refused "socket_mode 0999" "$m" 78 "socket_mode"
write_config "$m" 04770
refused "socket_mode 04770 (setuid bit)" "$m" 78 "socket_mode"
write_config "$m" rw-rw----
refused "socket_mode rw-rw----" "$m" 78 "socket_mode"
# A state directory that exists (the admin's) but that nobody cannot write:
# the filter must not run half-broken.
s=$(tm_workdir)
write_config "$s" 0660
mkdir -m 755 "$s/state"
refused "state directory not writable by $user" "$s" 73 "$s/state/tickets.db" -f

# Under a careless umask (0) the daemon's own files must still not be
# writable by others: a world-writable pid file lets any local user choose
# what an init script kills as root.
w=$(tm_workdir)
write_config "$w" 0660
(umask 000; exec "$MILTER" -c "$w/ticket-milter.conf") > "$w/start.log" 2>&1
wpid=$(cat "$w/run/ticket-milter.pid" 2> /dev/null || true)
[ -n "$wpid" ] && daemon_pids="$daemon_pids $wpid"
tap_ok "umask 000: the pid file, socket and database are not world-writable" \
  not_writable_by_others "$w/run/ticket-milter.pid" "$w/run/milter.sock" "$w/state/tickets.db"
[ -n "$wpid" ] && kill -TERM "$wpid" && wait_gone "$wpid"

# Without a user it stays root, and says so (ticket-milter(8), PRIVILEGES).
r=$(tm_workdir)
write_config "$r" 0660 ""
"$MILTER" -f -c "$r/ticket-milter.conf" > "$r/milter.log" 2>&1 &
rpid=$!
daemon_pids="$daemon_pids $rpid"
i=0
until [ -S "$r/run/milter.sock" ] || [ $i -gt 100 ] || ! kill -0 "$rpid" 2> /dev/null; do
  i=$((i + 1)); sleep 0.1
done
tap_ok "empty user: runs as root and logs a warning" \
  sh -c 'grep -q "running as root" "$1" && [ "$(sed -n "s/^Uid:\t//p" /proc/$2/status | cut -f1)" = 0 ]' \
  - "$r/milter.log" "$rpid"
kill -TERM "$rpid" 2> /dev/null
wait "$rpid" 2> /dev/null
tap_done
