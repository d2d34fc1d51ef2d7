# tests/postfix-lib.sh - a private, throw-away Postfix instance for tests and benchmarks.
#
# Source it after tests/lib.sh. Every function takes the instance directory DIR
# (usually from tm_workdir) and is prefixed pf_. The instance lives entirely
# under DIR and never touches the machine's own Postfix:
#   DIR/etc      config directory (main.cf, master.cf written from scratch)
#   DIR/queue    queue_directory; DIR/data data_directory (owned by postfix)
#   DIR/mail     virtual mailboxes: DIR/mail/USER/new/... (maildirs)
#   DIR/maillog  the instance's log (maillog_file via postlogd; no syslog)
#   DIR/port     the TCP port smtpd listens on, on 127.0.0.1
#
#   pf_usable                 true when a private Postfix can run here (root,
#                             postfix installed); else prints why, returns 1
#   pf_setup DIR PORT         write and check the instance; PORT 0 picks a free
#                             port. Registers DIR/etc in the default main.cf's
#                             alternate_config_directories (creating a minimal
#                             /etc/postfix/main.cf if Debian's "No configuration"
#                             left none). Returns 1 with a message on failure.
#   pf_set_milter DIR SOCKET  set smtpd_milters (empty SOCKET: none); reloads a
#                             running instance and waits for the reload
#   pf_conf DIR 'key = value'...  any other main.cf setting (no reload)
#   pf_reload DIR             reload a running instance and wait for it
#   pf_start DIR / pf_stop DIR   start (waits until smtpd's port accepts) and
#                             stop (waits until the master has exited, then
#                             removes DIR/etc from alternate_config_directories).
#                             pf_stop is safe to call twice or before pf_start:
#                             register it with tm_on_exit.
#   pf_port DIR               the smtpd port
#   pf_wait_queue_empty DIR [TIMEOUT]  wait (default 20 s) until nothing is in
#                             maildrop/incoming/active; returns 1 and prints the
#                             queue when mail is deferred or held, or on timeout
#   pf_mailbox_files DIR USER the delivered files of USER's maildir (new/), one
#                             path a line, oldest first
#   pf_log DIR PREFIX         the maillog, each line prefixed (e.g. "# " for TAP)
#   pf_unix_listens PATH      something accepts connections on the unix socket
#                             PATH (a stale socket file left by a killed milter
#                             does not count)
#
# Instances may run in parallel (different DIRs): the shared default main.cf is
# only edited under a lock, and each instance adds and removes only its own entry.
# Mail for anything outside example.test bounces at once (default_transport is
# error:), so nothing ever waits in the deferred queue for DNS.

PF_POSTFIX=${POSTFIX:-}
[ -n "$PF_POSTFIX" ] || PF_POSTFIX=$(PATH=$PATH:/usr/sbin:/sbin command -v postfix || true)
PF_POSTCONF=$(PATH=$PATH:/usr/sbin:/sbin command -v postconf || true)
PF_POSTQUEUE=$(PATH=$PATH:/usr/sbin:/sbin command -v postqueue || true)
PF_DEFAULT_CONFIG=${PF_DEFAULT_CONFIG:-/etc/postfix}
PF_LOCK=${PF_LOCK:-/tmp/.tm-postfix-main-cf.lock}
# Mailboxes every instance has, in domain example.test.
PF_MAILBOXES="support frontline billing customer alice"

pf_usable () {
  if [ "$(id -u)" != 0 ]; then
    echo "a private Postfix needs root (postfix start, postfix-owned directories)"
    return 1
  fi
  if [ -z "$PF_POSTFIX" ] || [ ! -x "$PF_POSTFIX" ] || [ -z "$PF_POSTCONF" ]; then
    echo "postfix is not installed"
    return 1
  fi
  if ! id postfix > /dev/null 2>&1; then
    echo "there is no postfix user"
    return 1
  fi
}

# A TCP port on 127.0.0.1 nobody listens on now (the kernel picks it).
pf_free_port () {
  if command -v perl > /dev/null 2>&1; then
    perl -MIO::Socket::INET -e '
      my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                    LocalPort => 0, ReuseAddr => 1) or exit 1;
      print $s->sockport, "\n";' && return 0
  fi
  local port tries=0
  while [ $tries -lt 50 ]; do
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
    if ! ss -ltnH "sport = :$port" 2> /dev/null | grep -q .; then
      echo "$port"; return 0
    fi
    tries=$((tries + 1))
  done
  return 1
}

pf_port () { cat "$1/port"; }

pf_conf () {
  local dir=$1; shift
  "$PF_POSTCONF" -c "$dir/etc" -e "$@"
}

# The default main.cf must list DIR/etc in alternate_config_directories, or
# "postfix -c DIR/etc" refuses to run. Read-modify-write under a lock so that
# parallel tests keep each other's entries.
pf__edit_alternates () {
  local action=$1 entry=$2
  (
    flock -w 30 9 || { echo "pf: cannot lock $PF_LOCK"; exit 1; }
    if [ ! -e "$PF_DEFAULT_CONFIG/main.cf" ]; then
      [ "$action" = add ] || exit 0
      cat > "$PF_DEFAULT_CONFIG/main.cf" <<EOF
# Created by ticket-milter's tests/postfix-lib.sh: Postfix was installed with
# "No configuration", and private test instances must be listed here.
compatibility_level = 3.6
alternate_config_directories =
EOF
    fi
    local current kept="" item found=0
    current=$("$PF_POSTCONF" -c "$PF_DEFAULT_CONFIG" -h alternate_config_directories 2> /dev/null)
    for item in $(printf '%s\n' "$current" | tr ',' ' '); do
      if [ "$item" = "$entry" ]; then found=1; [ "$action" = remove ] && continue; fi
      kept="$kept${kept:+ }$item"
    done
    if [ "$action" = add ] && [ $found = 0 ]; then
      kept="$kept${kept:+ }$entry"
    elif [ "$action" = add ] || [ $found = 0 ]; then
      exit 0
    fi
    "$PF_POSTCONF" -c "$PF_DEFAULT_CONFIG" -e "alternate_config_directories = $kept"
  ) 9> "$PF_LOCK"
}

pf_setup () {
  local dir=$1 port=$2 uid gid maps="" box
  pf_usable > /dev/null || { pf_usable; return 1; }
  if [ "$port" = 0 ]; then
    port=$(pf_free_port) || { echo "pf_setup: no free port"; return 1; }
  fi
  uid=$(id -u postfix) gid=$(id -g postfix)
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/mail" || return 1
  chmod 755 "$dir" "$dir/etc" "$dir/queue" "$dir/mail"
  chown postfix:postfix "$dir/data" "$dir/mail"
  echo "$port" > "$dir/port"
  : > "$dir/maillog"
  for box in $PF_MAILBOXES; do
    maps="$maps${maps:+, }$box@example.test=$box/"
  done

  cat > "$dir/etc/main.cf" <<EOF
# Private Postfix instance written by tests/postfix-lib.sh; thrown away after the test.
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
syslog_name = postfix-tm
myhostname = mx.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
relayhost =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_banner = \$myhostname ESMTP test instance
virtual_mailbox_domains = example.test
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = inline:{ $maps }
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
default_transport = error:5.7.1 this test instance delivers only to example.test
milter_protocol = 6
milter_default_action = tempfail
smtpd_milters =
non_smtpd_milters =
biff = no
append_dot_mydomain = no
readme_directory = no
EOF

  # Written from scratch rather than copied so that the services are known:
  # nothing is chrooted (a chrooted smtpd or cleanup would look for a unix:
  # milter socket inside the queue directory), and smtpd listens on PORT only.
  cat > "$dir/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$port inet n -       n       -       -       smtpd
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
local      unix  -       n       n       -       -       local
virtual    unix  -       n       n       -       -       virtual
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
EOF

  pf__edit_alternates add "$dir/etc" || return 1
  # "check" creates the queue's subdirectories with the right owners.
  local out
  if ! out=$("$PF_POSTFIX" -c "$dir/etc" check 2>&1); then
    echo "pf_setup: postfix check failed:"; printf '%s\n' "$out"
    return 1
  fi
}

pf__master_pid () {
  local pid
  [ -r "$1/queue/pid/master.pid" ] || return 1
  pid=$(tr -d ' \n' < "$1/queue/pid/master.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null && echo "$pid"
}

# True once something accepts TCP connections on 127.0.0.1:PORT.
pf__port_open () {
  if command -v perl > /dev/null 2>&1; then
    perl -MIO::Socket::INET -e '
      IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or exit 1' "$1"
  else
    bash -c 'exec 3<> "/dev/tcp/127.0.0.1/$1"' - "$1" 2> /dev/null
  fi
}

pf_start () {
  local dir=$1 port out i=0
  port=$(pf_port "$dir")
  pf__edit_alternates add "$dir/etc" || return 1
  if ! out=$("$PF_POSTFIX" -c "$dir/etc" start 2>&1); then
    echo "pf_start: postfix start failed:"; printf '%s\n' "$out"
    return 1
  fi
  while ! pf__port_open "$port"; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
      echo "pf_start: nothing listens on 127.0.0.1:$port after 10 s"
      tail -n 20 "$dir/maillog"
      return 1
    fi
    sleep 0.1
  done
}

pf_stop () {
  local dir=$1 pid i=0
  if pid=$(pf__master_pid "$dir"); then
    "$PF_POSTFIX" -c "$dir/etc" stop > /dev/null 2>&1 || true
    while kill -0 "$pid" 2> /dev/null; do
      i=$((i + 1))
      if [ $i = 100 ]; then
        "$PF_POSTFIX" -c "$dir/etc" abort > /dev/null 2>&1 || true
      elif [ $i -ge 150 ]; then
        kill -KILL "$pid" 2> /dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  pf__edit_alternates remove "$dir/etc"
}

# pf__children MASTER_PID NAME: pids of the master's children called NAME.
pf__children () {
  local stat
  for stat in /proc/[0-9]*/stat; do
    awk -v ppid="$1" -v name="($2)" '$4 == ppid && $2 == name { print $1 }' "$stat" 2> /dev/null
  done
}

# Reload, wait until the master has logged it, then until every smtpd started
# before the reload has exited: an idle old smtpd could otherwise still take
# one new connection with the old settings (seen as a stray mail per switch
# in benchmarks). Sessions already open finish with the old settings.
pf_reload () {
  local dir=$1 master before old pid i=0
  master=$(pf__master_pid "$dir") || return 0
  old=$(pf__children "$master" smtpd)
  before=$(grep -c 'reload -- version' "$dir/maillog")
  "$PF_POSTFIX" -c "$dir/etc" reload > /dev/null 2>&1 || return 1
  while [ "$(grep -c 'reload -- version' "$dir/maillog")" -le "$before" ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "pf_reload: no reload logged after 10 s"; return 1; }
    sleep 0.1
  done
  for pid in $old; do
    while kill -0 "$pid" 2> /dev/null; do
      i=$((i + 1))
      [ $i -gt 200 ] && { echo "pf_reload: smtpd $pid still runs with the old settings"; return 1; }
      sleep 0.1
    done
  done
}

# pf_start_milter CONF SOCKET LOG [ARGS...]: starts $MILTER -c CONF -f ARGS in
# the background, its output appended to LOG, and waits up to 10 s until
# SOCKET listens (the daemon removes a socket a killed predecessor left).
# Sets milter_pid. When the daemon exits first, prints the end of LOG, reaps
# it, clears milter_pid and returns 1; when the socket never listens, returns 1.
pf_start_milter () {
  local conf=$1 sock=$2 log=$3 i=0
  shift 3
  "$MILTER" -c "$conf" -f "$@" >> "$log" 2>&1 &
  milter_pid=$!
  until [ -S "$sock" ] && pf_unix_listens "$sock"; do
    if ! kill -0 "$milter_pid" 2> /dev/null; then
      echo "ticket-milter exited at start:"; tail -n 20 "$log"
      wait "$milter_pid"; milter_pid=
      return 1
    fi
    i=$((i + 1))
    [ $i -gt 200 ] && { echo "no socket listening at $sock after 10 s"; return 1; }
    sleep 0.05
  done
}

pf_set_milter () {
  local dir=$1 socket=$2
  pf_conf "$dir" "smtpd_milters = $socket" || return 1
  pf_reload "$dir"
}

pf__queue_count () {
  local dir=$1; shift
  local sub n=0
  for sub in "$@"; do
    [ -d "$dir/queue/$sub" ] || continue
    n=$((n + $(find "$dir/queue/$sub" -type f | wc -l)))
  done
  echo $n
}

pf_wait_queue_empty () {
  local dir=$1 timeout=${2:-20} waited=0 stuck
  while [ "$(pf__queue_count "$dir" maildrop incoming active)" != 0 ]; do
    waited=$((waited + 1))
    if [ $waited -gt $((timeout * 10)) ]; then
      echo "pf_wait_queue_empty: mail still queued after $timeout s:"
      "$PF_POSTQUEUE" -c "$dir/etc" -p 2>&1
      return 1
    fi
    sleep 0.1
  done
  stuck=$(pf__queue_count "$dir" deferred hold)
  if [ "$stuck" != 0 ]; then
    echo "pf_wait_queue_empty: $stuck mail(s) deferred or held:"
    "$PF_POSTQUEUE" -c "$dir/etc" -p 2>&1
    return 1
  fi
}

pf_mailbox_files () {
  local box="$1/mail/$2/new"
  [ -d "$box" ] || return 0
  # Maildir names start with the delivery time in seconds, then a sequence.
  ls -1tr "$box" | sed "s|^|$box/|"
}

pf_log () { sed "s/^/${2:-}/" "$1/maillog" 2> /dev/null; }

pf_unix_listens () {
  if command -v ss > /dev/null 2>&1; then
    ss -xlnH 2> /dev/null | awk -v p="$1" '$5 == p { found = 1 } END { exit !found }'
  else
    perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1' "$1"
  fi
}
