#!/usr/bin/env bash
# npm run test:asan [-- <vitest filters>]
#
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/ and runs the
# codec and connection tests (or the given test paths) against it. Fails on a failed test and on any
# sanitizer report:
# - ASan writes each report to a log file (log_path), so one from a child process whose exit status
#   a test does not look at still fails the run;
# - UBSan (GCC's runtime, with ASan preloaded) ignores log_path and writes to stderr: its reports end
#   the process (halt_on_error=1) and are looked for in the output of the run. A UBSan report in a
#   child process whose status and stderr a test both discard would go unseen.
set -euo pipefail
cd "$(dirname "$0")/.."

npx cmake-js compile --out build-asan --CDERL_PEB_SANITIZE=ON

addon="$PWD/build-asan/Release/erl_peb.node"
# gcc prints the bare name back when it has no such library.
libasan="$(gcc -print-file-name=libasan.so)"
if [[ "$libasan" != /* || ! -e "$libasan" ]]; then
  echo "test:asan: gcc's libasan.so was not found (Debian: apt-get install libasan8)" >&2
  exit 2
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

tests=("$@")
if [[ ${#tests[@]} -eq 0 ]]; then tests=(test/codec test/connection); fi

# node is not built with ASan, so the runtime must come first in the process: LD_PRELOAD. The addon
# pulls in libubsan itself. detect_leaks=0: Node keeps allocations alive until exit by design, so
# LeakSanitizer would report Node, not the addon (test/hardening/leaks.test.ts covers leaks).
rc=0
env \
  ERL_PEB_ADDON_PATH="$addon" \
  LD_PRELOAD="$libasan" \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$logs/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan" \
  npx vitest run "${tests[@]}" 2>&1 | tee "$logs/run.out" || rc=$?

shopt -s nullglob
reports=("$logs"/asan.* "$logs"/ubsan.*)
if [[ ${#reports[@]} -gt 0 ]]; then
  for f in "${reports[@]}"; do
    echo "---- sanitizer report: $(basename "$f")" >&2
    cat "$f" >&2
  done
  echo "test:asan: FAILED, ${#reports[@]} sanitizer report(s)" >&2
  exit 1
fi
if grep -qE 'runtime error:|ERROR: AddressSanitizer|SUMMARY: UndefinedBehaviorSanitizer' "$logs/run.out"; then
  echo "test:asan: FAILED, a sanitizer report is in the output above" >&2
  exit 1
fi
if [[ $rc -ne 0 ]]; then
  echo "test:asan: FAILED, vitest exited with $rc" >&2
  exit "$rc"
fi
echo "test:asan: passed, no sanitizer reports"
