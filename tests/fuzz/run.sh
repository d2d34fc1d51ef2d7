#!/bin/sh
# tests/fuzz/run.sh - build ticket-milter's libFuzzer targets and run each one.
#
#   tests/fuzz/run.sh [SECONDS [TARGET...]]
#
# Builds the libticket sources (the .c files of libticket_a_SOURCES in
# Makefile.am) with clang and -fsanitize=fuzzer-no-link,address,undefined,
# links each target in tests/fuzz (fuzz-message, fuzz-pipeline, fuzz-config,
# fuzz-template, fuzz-milter-wire) with -fsanitize=fuzzer,address,undefined,
# then runs each for SECONDS (default 60) on a copy of its seed corpus
# tests/fuzz/corpus/NAME.
# SECONDS 0 only replays the seed files once each (a quick regression check).
# Nothing is written into the source tree: objects, the working corpora and
# any crash reproducer live in a temporary directory, kept (and named) when
# a target fails, or always with TM_FUZZ_KEEP=1.
#
# Prints per target the runs executed, the coverage reached and PASS or FAIL;
# a crash, a leak, a timeout or an out-of-memory fails the target, and its
# reproducer is printed (path, base64 when small, and the sanitizer's report).
# Ends with automake-style "# PASS: N" / "# FAIL: N" / "# SKIP: N" lines and
# exits non-zero when any target failed.
#
# Environment:
#   TM_FUZZ_BUILDDIR  the configured build directory (for autoconfig.h); by
#                     default the current directory when it holds autoconfig.h,
#                     else SRCDIR/_build, else SRCDIR (SRCDIR is this script's ../..)
#   TM_FUZZ_CC        the compiler, default clang (must support -fsanitize=fuzzer:
#                     Debian's clang plus libclang-rt-14-dev)
#   TM_FUZZ_WORKDIR   where to build and run (default: a new temporary directory)
#   TM_FUZZ_KEEP=1    keep the work directory even when every target passes
#   TM_FUZZ_FLAGS     extra libFuzzer flags for every target (e.g. -jobs=2)
# Skips (exit 0, "# SKIP: N") when the compiler cannot build a fuzzer.
set -u

seconds=${1:-60}
[ $# -gt 0 ] && shift
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
all_targets="message pipeline config template milter-wire"
targets=${*:-$all_targets}
target_count=$(echo $targets | wc -w)

case $seconds in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS [TARGET...]] (targets: $all_targets)" >&2; exit 64 ;;
esac

if [ -n "${TM_FUZZ_BUILDDIR:-}" ]; then
  builddir=$TM_FUZZ_BUILDDIR
elif [ -f "$PWD/autoconfig.h" ]; then
  builddir=$PWD
elif [ -f "$srcdir/_build/autoconfig.h" ]; then
  builddir=$srcdir/_build
else
  builddir=$srcdir
fi
builddir=$(cd "$builddir" && pwd) || { echo "fuzz: no build directory $builddir" >&2; exit 1; }

skip_all () {
  echo "fuzz: skipped: $*"
  echo "# TOTAL: $target_count"
  echo "# PASS: 0"
  echo "# SKIP: $target_count"
  echo "# FAIL: 0"
  exit 0
}

CC=${TM_FUZZ_CC:-clang}
command -v "$CC" >/dev/null 2>&1 || skip_all "$CC is not installed (Debian: clang libclang-rt-14-dev)"
command -v pkg-config >/dev/null 2>&1 || skip_all "pkg-config is not installed"
modules="gmime-3.0 glib-2.0 sqlite3 libcurl json-glib-1.0"
pkg_cflags=$(pkg-config --cflags $modules) || skip_all "pkg-config cannot find: $modules"
pkg_libs=$(pkg-config --libs $modules)

if [ -n "${TM_FUZZ_WORKDIR:-}" ]; then
  work=$TM_FUZZ_WORKDIR
  mkdir -p "$work" || exit 1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/tm-fuzz.XXXXXX") || exit 1
fi
mkdir -p "$work/obj" "$work/bin"
# Where the targets write their per-input files: tmpfs when there is one.
scratch=$(mktemp -d /dev/shm/tm-fuzz.XXXXXX 2>/dev/null) || scratch=$work/scratch
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
export TM_FUZZ_SCRATCH="$scratch"

printf 'int LLVMFuzzerTestOneInput (const unsigned char *d, unsigned long n) { return 0; }\n' \
  > "$work/probe.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined -o "$work/probe" "$work/probe.c" \
     > "$work/probe.log" 2>&1; then
  cat "$work/probe.log"
  rm -rf "$work"
  skip_all "$CC cannot link -fsanitize=fuzzer (Debian: libclang-rt-14-dev)"
fi

sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-std=c11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter \
  -D_GNU_SOURCE -DSYSCONFDIR=\"/etc\" -DLOCALSTATEDIR=\"/var\" -DRUNSTATEDIR=\"/run\" \
  -I$builddir -I$srcdir/src $pkg_cflags"

# The library's sources, as Makefile.am lists them.
sources=$(sed -n '/^libticket_a_SOURCES/,/^$/p' "$srcdir/Makefile.am" \
  | tr ' \t\\' '\n\n\n' | grep '\.c$')
[ -n "$sources" ] || { echo "fuzz: no libticket_a_SOURCES in $srcdir/Makefile.am"; exit 1; }

echo "fuzz: building in $work (sources $srcdir, build $builddir)"
# Two compilers at a time: the machines have two cores.
if ! printf '%s\n' $sources | xargs -P 2 -I{} sh -c \
     'o="$1/obj/$(basename "$2" .c).o"; $3 -fsanitize=fuzzer-no-link $4 $5 -c "$6/$2" -o "$o" \
        > "$o.log" 2>&1 || { cat "$o.log"; exit 1; }' \
     sh "$work" {} "$CC" "$sanitize" "$cflags" "$srcdir"; then
  echo "fuzz: building libticket failed (work directory kept: $work)"
  printf '# TOTAL: %s\n# PASS: 0\n# SKIP: 0\n# FAIL: %s\n' "$target_count" "$target_count"
  exit 1
fi
rm -f "$work/libticket-fuzz.a"
ar cr "$work/libticket-fuzz.a" "$work"/obj/*.o || exit 1

max_len () {
  case $1 in
    message|pipeline) echo 65536 ;;
    *) echo 16384 ;;
  esac
}

passed=0 failed=0 skipped=0
for target in $targets; do
  name=fuzz-$target
  if [ ! -f "$here/$name.c" ]; then
    echo "FAIL: $name: no $here/$name.c"
    failed=$((failed + 1))
    continue
  fi
  bin=$work/bin/$name
  # shellcheck disable=SC2086
  if ! "$CC" -fsanitize=fuzzer $sanitize $cflags -Werror -DTM_FUZZ_SRCDIR="\"$srcdir\"" \
       -o "$bin" "$here/$name.c" "$work/libticket-fuzz.a" $pkg_libs > "$work/$name.build.log" 2>&1; then
    cat "$work/$name.build.log"
    echo "FAIL: $name: does not build"
    failed=$((failed + 1))
    continue
  fi

  corpus=$work/corpus/$target
  artifacts=$work/artifacts/$target
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  [ -d "$here/corpus/$target" ] && cp "$here/corpus/$target"/* "$corpus"/ 2>/dev/null
  dict=
  case $target in message|pipeline) dictfile=$here/mail.dict ;; *) dictfile=$here/$target.dict ;; esac
  [ -f "$dictfile" ] && dict="-dict=$dictfile"
  log=$work/$name.log

  if [ "$seconds" -eq 0 ]; then
    set -- "$corpus"/*
    [ -e "$1" ] || set --
    extra="-runs=1"
  else
    set -- "$corpus"
    extra="-max_total_time=$seconds"
  fi
  # shellcheck disable=SC2086
  ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=32 \
  LSAN_OPTIONS=suppressions=$srcdir/tests/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TM_TEMPLATE_DIR=$srcdir/templates \
  "$bin" $extra -max_len="$(max_len "$target")" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" $dict ${TM_FUZZ_FLAGS:-} "$@" \
    > "$log" 2>&1
  rc=$?

  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$seconds" -eq 0 ]; then
    summary="$name: replayed $# seed files"
  else
    summary="$name: ${seconds}s, ${runs:-?} runs (${speed:-?}/s), coverage ${cov:-?} edges"
  fi
  reproducer=$(ls "$artifacts" 2>/dev/null | head -1)
  if [ $rc -eq 0 ] && [ -z "$reproducer" ]; then
    echo "PASS: $summary"
    passed=$((passed + 1))
  else
    echo "FAIL: $summary (exit $rc)"
    failed=$((failed + 1))
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant broken|GLib|SUMMARY:' \
      "$log" | head -20 | sed 's/^/  /'
    sed -n '/^==[0-9]*==ERROR/,/^SUMMARY/p' "$log" | head -60 | sed 's/^/  | /'
    if [ -n "$reproducer" ]; then
      file=$artifacts/$reproducer
      echo "  reproducer: $file ($(wc -c < "$file") bytes)"
      echo "  replay: $bin $file"
      # Once more with full stacks through GLib (slow unwinding), for the
      # report; a leak or a crash that needed earlier inputs may not repeat.
      ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
      LSAN_OPTIONS=suppressions=$srcdir/tests/lsan.supp:print_suppressions=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      TM_TEMPLATE_DIR=$srcdir/templates \
        "$bin" "$file" > "$work/$name.replay.log" 2>&1
      if grep -q '^==[0-9]*==ERROR' "$work/$name.replay.log"; then
        echo "  replayed with full stacks:"
        sed -n '/^==[0-9]*==ERROR/,/^SUMMARY/p' "$work/$name.replay.log" | head -60 | sed 's/^/  | /'
      fi
      if [ "$(wc -c < "$file")" -le 1024 ]; then
        echo "  base64:"
        base64 < "$file" | sed 's/^/    /'
      fi
    else
      tail -30 "$log" | sed 's/^/  | /'
    fi
    TM_FUZZ_KEEP=1
  fi
done

if [ "${TM_FUZZ_KEEP:-0}" = 1 ]; then
  echo "fuzz: work directory kept: $work"
else
  rm -rf "$work"
fi
echo "# TOTAL: $((passed + failed + skipped))"
echo "# PASS: $passed"
echo "# SKIP: $skipped"
echo "# FAIL: $failed"
[ $failed -eq 0 ]
