# tests/lib.sh - shared helpers for the shell tests; every test prints TAP.
#
# Source it: . "$top_srcdir/tests/lib.sh". Provides:
#   tap_plan N           "1..N"
#   tap_ok NAME CMD...   runs CMD; "ok"/"not ok" with NAME, output on failure as comments
#   tap_is NAME GOT WANT compares two strings
#   tap_skip_all REASON  "1..0 # SKIP REASON" and exit 0
#   tap_done             exit status: 1 when any test failed
#   tm_workdir           makes a private temporary directory (short path: unix
#                        sockets have a 108-byte limit), removed on exit unless
#                        TM_KEEP_TMP=1; prints its path
#   tm_bin NAME          path of a built program (ticket-milter, ticketctl)
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${TM_TEST_DATA:=$top_srcdir/tests/messages}"

tap_count=0
tap_failed=0

tap_plan () { echo "1..$1"; }

# tap_status NAME STATUS OUTFILE: a TAP line for a step that had to run in this
# shell (it sets variables), with its output as comments when it failed.
tap_status () { tap_ok "$1" sh -c 'cat "$1"; exit "$2"' - "$3" "$2"; }

tap_ok () {
  local name=$1; shift
  local out
  tap_count=$((tap_count + 1))
  if out=$("$@" 2>&1); then
    echo "ok $tap_count - $name"
  else
    echo "not ok $tap_count - $name"
    printf '%s\n' "$out" | sed 's/^/# /'
    tap_failed=$((tap_failed + 1))
  fi
}

tap_is () {
  local name=$1 got=$2 want=$3
  tap_count=$((tap_count + 1))
  if [ "$got" = "$want" ]; then
    echo "ok $tap_count - $name"
  else
    echo "not ok $tap_count - $name"
    printf '# got:  %s\n# want: %s\n' "$got" "$want"
    tap_failed=$((tap_failed + 1))
  fi
}

tap_skip () { tap_count=$((tap_count + 1)); echo "ok $tap_count - $1 # SKIP $2"; }

tap_skip_all () { echo "1..0 # SKIP $1"; exit 0; }

tap_done () { [ "$tap_failed" -eq 0 ]; }

tm_cleanup_dirs=""
tm_cleanup_hooks=""
tm_run_cleanup () {
  local hook
  for hook in $tm_cleanup_hooks; do "$hook" || true; done
  if [ "${TM_KEEP_TMP:-0}" != 1 ] && [ -n "$tm_cleanup_dirs" ]; then
    rm -rf $tm_cleanup_dirs
  fi
}
trap tm_run_cleanup EXIT
# tm_on_exit FUNCTION: call FUNCTION (no arguments) when the test exits.
tm_on_exit () { tm_cleanup_hooks="$1 $tm_cleanup_hooks"; }

# Every directory of the test lives under one root made when this file is
# sourced, so that tm_workdir works in $(...) (a subshell) and still gets
# cleaned up by the test's own shell.
tm_test_root=$(mktemp -d /tmp/tm-test.XXXXXX)
chmod 755 "$tm_test_root"
tm_cleanup_dirs="$tm_test_root"

tm_workdir () {
  local dir
  dir=$(mktemp -d "$tm_test_root/w.XXXXXX")
  chmod 755 "$dir"
  echo "$dir"
}

tm_bin () {
  if [ -x "$top_builddir/$1" ]; then echo "$top_builddir/$1"; else echo "$1"; fi
}
