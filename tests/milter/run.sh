#!/bin/sh
# tests/milter/run.sh - the daemon over the milter protocol, driven by miltertest.
#
# For each tests/milter/*.lua script (files starting with "_" are helpers),
# starts `ticket-milter -f` with its own configuration and database in a
# private directory, runs the script against it (TM_SOCKET, TM_WORKDIR and
# TM_LUA_DIR in the environment), then stops the daemon with SIGTERM and
# checks that it exits with status 0 and removes its socket. Then the command
# line: bad configurations exit 78 naming the group and key, an unknown
# option exits 64.
#
# Skips when miltertest (MILTERTEST) or sqlite3 is missing. TM_KEEP_TMP=1
# keeps the work directories, with each daemon's stderr in daemon.log.
. "$top_srcdir/tests/lib.sh"

[ -n "${MILTERTEST:-}" ] || tap_skip_all "miltertest is not installed"
SQLITE3=$(command -v sqlite3) || tap_skip_all "sqlite3 is not installed"
MILTER=$(tm_bin ticket-milter)
lua_dir=$top_srcdir/tests/milter
scripts=$(ls "$lua_dir"/*.lua | grep -v '/_[^/]*$')

# Per script: the script, the daemon's exit status, its socket removed.
script_count=$(printf '%s\n' $scripts | wc -l)
tap_plan $((script_count * 3 + 13))

daemon_pid=""
stop_daemon () {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
    daemon_pid=""
  fi
}
tm_on_exit stop_daemon

write_config () { # DIR [EXTRA [milter] LINES] [EXTRA [store] LINES]
  # on_error is tempfail unless the extra lines say otherwise (a key given
  # twice is a configuration error).
  local on_error='on_error = tempfail'
  case ${2:-} in *on_error*) on_error='' ;; esac
  cat > "$1/ticket-milter.conf" <<EOC
[milter]
socket = unix:$1/milter.sock
user =
socket_mode = 0600
$on_error
${2:-}

[store]
path = $1/tickets.db
${3:-}

[templates]
dir = $top_srcdir/templates
# Nothing listens on the discard port: acknowledgements stay in the outbox
# and the worker's retry path runs without any mail leaving the test.
[smtp]
url = smtp://127.0.0.1:9
connect_timeout = 2s

[queue support]
address = support@example.test
tag_prefix = Ticket
EOC
}

# Helper commands for tempfail-on-store-error.lua: a second sqlite3 process
# holds BEGIN EXCLUSIVE on the database until told to commit. Being root does
# not bypass a lock, so this works where chmod tricks would not.
write_lock_helpers () { # DIR
  cat > "$1/lock.sh" <<EOS
#!/bin/sh
set -e
mkfifo "$1/lock.fifo"
# The reader first, then a writer that keeps the fifo open (no EOF) until
# unlock.sh stops it.
# Neither keeps the test's output open: miltertest's caller waits for EOF.
"$SQLITE3" "$1/tickets.db" < "$1/lock.fifo" > "$1/lock.out" 2>&1 &
echo \$! > "$1/lock.sqlite.pid"
sleep 60 > "$1/lock.fifo" 2>/dev/null < /dev/null &
echo \$! > "$1/lock.holder.pid"
# The holder waits for the checks below, which take the write lock briefly.
printf '.timeout 5000\nBEGIN EXCLUSIVE;\n' > "$1/lock.fifo"
# Wait until another connection really finds the database locked.
tries=0
while "$SQLITE3" -cmd '.timeout 0' "$1/tickets.db" 'BEGIN IMMEDIATE; ROLLBACK;' >/dev/null 2>&1; do
  tries=\$((tries + 1))
  [ \$tries -lt 100 ] || { echo "the lock was never taken" >&2; exit 1; }
  sleep 0.05
done
EOS
  # Safe to run twice, or when the lock was never taken: opening the fifo
  # for writing would block for ever once its reader is gone.
  cat > "$1/unlock.sh" <<EOS
#!/bin/sh
[ -e "$1/lock.sqlite.pid" ] || exit 0
sqlite_pid=\$(cat "$1/lock.sqlite.pid")
if kill -0 "\$sqlite_pid" 2>/dev/null; then
  printf 'COMMIT;\n' > "$1/lock.fifo"
fi
[ -e "$1/lock.holder.pid" ] && kill "\$(cat "$1/lock.holder.pid")" 2>/dev/null
tries=0
while kill -0 "\$sqlite_pid" 2>/dev/null; do
  tries=\$((tries + 1))
  [ \$tries -lt 100 ] || { kill "\$sqlite_pid"; break; }
  sleep 0.05
done
rm -f "$1/lock.sqlite.pid" "$1/lock.holder.pid"
EOS
}

# Starts the daemon on DIR's configuration; waits for its socket.
# TM_MILTER_WRAPPER, when set, runs the daemon under a tool, e.g.
#   TM_MILTER_WRAPPER="valgrind --leak-check=full --error-exitcode=99"
# so that any error it finds turns the exit-status checks below into failures.
start_daemon () { # DIR
  ${TM_MILTER_WRAPPER:-} "$MILTER" -f -c "$1/ticket-milter.conf" > "$1/daemon.log" 2>&1 &
  daemon_pid=$!
  tries=0
  while [ ! -S "$1/milter.sock" ]; do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
      wait "$daemon_pid" 2>/dev/null
      daemon_pid=""
      return 1
    fi
    tries=$((tries + 1))
    [ $tries -lt 200 ] || return 1
    sleep 0.05
  done
}

for script in $scripts; do
  name=$(basename "$script" .lua)
  dir=$(tm_workdir)
  # Scripts that need more than the common configuration.
  case $name in
    tempfail-on-store-error)
      write_config "$dir" "" "busy_timeout = 100"; write_lock_helpers "$dir" ;;
    accept-on-store-error)
      write_config "$dir" "on_error = accept" "busy_timeout = 100"; write_lock_helpers "$dir" ;;
    large-message)
      write_config "$dir" "max_message_size = 1K
max_header_size = 1K" ;;
    *) write_config "$dir" ;;
  esac

  if ! start_daemon "$dir"; then
    tap_is "$name: the daemon starts" "it did not: $(cat "$dir/daemon.log")" "it does"
    tap_skip "$name: the daemon exits with status 0 on SIGTERM" "it did not start"
    tap_skip "$name: the daemon removes its socket" "it did not start"
    continue
  fi
  tap_ok "$name" env TM_SOCKET="unix:$dir/milter.sock" TM_WORKDIR="$dir" TM_LUA_DIR="$lua_dir" \
    TM_LOCK="sh $dir/lock.sh" TM_UNLOCK="sh $dir/unlock.sh" \
    sh -c '"$0" -s "$1" 2>&1 || { echo "--- daemon log:"; cat "$2"; exit 1; }' \
    "$MILTERTEST" "$script" "$dir/daemon.log"

  # A lock left behind by a failed script must not outlive it.
  [ -e "$dir/unlock.sh" ] && sh "$dir/unlock.sh"
  kill -TERM "$daemon_pid"
  wait "$daemon_pid"
  status=$?
  daemon_pid=""
  if [ "$status" -ne 0 ]; then
    echo "# daemon log of $name:"
    sed 's/^/#   /' "$dir/daemon.log"
  fi
  tap_is "$name: the daemon exits with status 0 on SIGTERM" "$status" "0"
  tap_ok "$name: the daemon removes its socket" test ! -e "$dir/milter.sock"
done

# --- the command line -----------------------------------------------------
dir=$(tm_workdir)
run_milter () { # ARGS...: prints "STATUS|STDERR"
  "$MILTER" "$@" > /dev/null 2> "$dir/stderr"
  printf '%s|%s' "$?" "$(cat "$dir/stderr")"
}

printf '[milter]\nsokcet = unix:%s/x.sock\n' "$dir" > "$dir/unknown-key.conf"
out=$(run_milter -f -c "$dir/unknown-key.conf")
tap_is "an unknown key: exit status 78" "${out%%|*}" "78"
case ${out#*|} in
  *"[milter]"*sokcet*) tap_is "an unknown key: stderr names the group and the key" ok ok ;;
  *) tap_is "an unknown key: stderr names the group and the key" "${out#*|}" "ticket-milter: ... [milter] sokcet ..." ;;
esac

printf '[milter]\non_error = bounce\n' > "$dir/bad-value.conf"
out=$(run_milter -f -c "$dir/bad-value.conf")
tap_is "a bad on_error value: exit status 78" "${out%%|*}" "78"
case ${out#*|} in
  ticket-milter:*"[milter]"*on_error*) tap_is "a bad on_error value: stderr names the group and the key" ok ok ;;
  *) tap_is "a bad on_error value: stderr names the group and the key" "${out#*|}" "ticket-milter: ... [milter] on_error ..." ;;
esac

out=$(run_milter -f -c "$dir/does-not-exist.conf")
tap_is "-c on a missing file: exit status 78" "${out%%|*}" "78"

out=$(run_milter -f -x)
tap_is "an unknown option: exit status 64" "${out%%|*}" "64"
case ${out#*|} in
  *usage:*) tap_is "an unknown option: a usage line" ok ok ;;
  *) tap_is "an unknown option: a usage line" "${out#*|}" "... usage: ticket-milter ..." ;;
esac

# --- privileges -------------------------------------------------------------
# Started as root with a user configured, the daemon runs as that user, and the
# socket and the database it creates belong to that user.
if [ "$(id -u)" = 0 ] && getent passwd nobody > /dev/null; then
  pdir=$(tm_workdir)
  cat > "$pdir/ticket-milter.conf" <<EOC
[milter]
socket = unix:$pdir/run/milter.sock
user = nobody
socket_mode = 0660
[store]
path = $pdir/state/tickets.db
[templates]
dir = $top_srcdir/templates
[smtp]
url = smtp://127.0.0.1:9
[queue support]
address = support@example.test
EOC
  "$MILTER" -f -c "$pdir/ticket-milter.conf" > "$pdir/daemon.log" 2>&1 &
  priv_pid=$!
  tries=0
  while [ ! -S "$pdir/run/milter.sock" ] && [ $tries -lt 100 ] && kill -0 $priv_pid 2>/dev/null; do
    sleep 0.05; tries=$((tries + 1))
  done
  nobody_uid=$(id -u nobody)
  tap_is "user = nobody: the daemon runs as nobody" \
    "$(awk '/^Uid:/ { print $2 "," $3 "," $4 "," $5 }' /proc/$priv_pid/status 2>/dev/null)" \
    "$nobody_uid,$nobody_uid,$nobody_uid,$nobody_uid"
  tap_is "user = nobody: the socket belongs to nobody, mode 0660" \
    "$(stat -c '%U %a' "$pdir/run/milter.sock" 2>/dev/null)" "nobody 660"
  tap_is "user = nobody: the database belongs to nobody" \
    "$(stat -c '%U' "$pdir/state/tickets.db" 2>/dev/null)" "nobody"
  kill -TERM $priv_pid 2>/dev/null
  wait $priv_pid
  tap_is "user = nobody: a clean stop" "$?" "0"
  [ "$tap_failed" -eq 0 ] || sed 's/^/#   /' "$pdir/daemon.log"

  printf '[milter]\nsocket = unix:%s/u.sock\nuser = no-such-user-here\n[store]\npath = %s/u.db\n[templates]\ndir = %s/templates\n' \
    "$pdir" "$pdir" "$top_srcdir" > "$pdir/unknown-user.conf"
  out=$(run_milter -f -c "$pdir/unknown-user.conf")
  tap_is "an unknown user: exit status 78" "${out%%|*}" "78"
  case ${out#*|} in
    *no-such-user-here*) tap_is "an unknown user: stderr names it" ok ok ;;
    *) tap_is "an unknown user: stderr names it" "${out#*|}" "... no-such-user-here ..." ;;
  esac
else
  for t in "runs as nobody" "socket owner" "database owner" "clean stop" "unknown user" "unknown user named"; do
    tap_skip "privileges: $t" "needs root and a nobody user"
  done
fi

tap_done
