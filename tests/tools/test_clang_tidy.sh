#!/usr/bin/env bash
# Runs clang-tidy (the checks in .clang-tidy, every warning an error) on every
# pixpool source file in the build's compile_commands.json. A finding fails
# the test with the file, line and check named.
# Usage: test_clang_tidy.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="${1:?usage: $0 SOURCE_DIR BUILD_DIR}"
build="${2:?usage: $0 SOURCE_DIR BUILD_DIR}"
# CI (scripts/test) runs this script once in the background, at nice 19,
# while the sanitizer suites mostly wait on servers and timers, and then
# points the dev suite's ctest entry at that run's result: <prefix>.out and
# <prefix>.status with PIXPOOL_CLANG_TIDY_RESULT=<prefix>. Same sources, same
# compile_commands.json, same verdict, without both cores for ten minutes.
if [[ -n "${PIXPOOL_CLANG_TIDY_RESULT:-}" ]]; then
  result="$PIXPOOL_CLANG_TIDY_RESULT"
  [[ -f "$result.status" ]] || { echo "clang-tidy: no result at $result.status" >&2; exit 1; }
  echo "clang-tidy: the run scripts/test started in the background ($result.out):"
  cat "$result.out"
  exit "$(cat "$result.status")"
fi
tidy_runner="$(command -v run-clang-tidy || command -v run-clang-tidy-14 || true)"
if [[ -z "$tidy_runner" ]]; then
  echo "clang-tidy: run-clang-tidy not found; scripts/setup test installs clang-tidy" >&2
  exit 1
fi
[[ -f "$build/compile_commands.json" ]] || {
  echo "clang-tidy: no $build/compile_commands.json (configure with a CMake preset)" >&2
  exit 1
}
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Our folders only: third-party headers are SYSTEM includes and never checked.
files="^$(realpath "$src")/(core|filters|pipeline|service|bench|tests)/"
status=0
"$tidy_runner" -p "$build" -j "$(nproc)" -quiet "$files" >"$log" 2>&1 || status=$?
findings="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^/.*: (warning|error): ' | sort -u || true)"
if [[ -n "$findings" || $status -ne 0 ]]; then
  echo "$findings"
  [[ -n "$findings" ]] || tail -50 "$log"
  echo "clang-tidy: $(printf '%s\n' "$findings" | grep -c . || true) finding(s); fix them or add NOLINT(check) with a reason"
  exit 1
fi
echo "clang-tidy: clean ($(grep -c '^clang-tidy' "$log" || true) files)"
