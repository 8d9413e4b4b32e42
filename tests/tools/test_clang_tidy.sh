#!/usr/bin/env bash
# Runs clang-tidy (the checks in .clang-tidy, every warning an error) on every
# pixpool source file in the build's compile_commands.json. A finding fails
# the test with the file, line and check named.
# A file whose clean verdict is cached for exactly its current inputs (the
# clang-tidy build, .clang-tidy, its compile command, its source and every
# header it includes) is not run again: clang_tidy_cached.py explains the
# key. The cache is outside the clone, so fresh CI clones share it:
# $PIXPOOL_CLANG_TIDY_CACHE, by default ${XDG_CACHE_HOME:-~/.cache}/pixpool/
# clang-tidy; PIXPOOL_CLANG_TIDY_CACHE=off checks every file.
# Usage: test_clang_tidy.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="${1:?usage: $0 SOURCE_DIR BUILD_DIR}"
build="${2:?usage: $0 SOURCE_DIR BUILD_DIR}"
# CI (scripts/test) runs this script once in the background, at nice 19,
# while the sanitizer suites mostly wait on servers and timers, and then
# points the dev suite's ctest entry at that run's result: <prefix>.out and
# <prefix>.status with PIXPOOL_CLANG_TIDY_RESULT=<prefix>. Same sources, same
# compile_commands.json, same verdict, without both cores for up to ten
# minutes (that long when nothing is cached).
if [[ -n "${PIXPOOL_CLANG_TIDY_RESULT:-}" ]]; then
  result="$PIXPOOL_CLANG_TIDY_RESULT"
  [[ -f "$result.status" ]] || { echo "clang-tidy: no result at $result.status" >&2; exit 1; }
  echo "clang-tidy: the run scripts/test started in the background ($result.out):"
  cat "$result.out"
  exit "$(cat "$result.status")"
fi
command -v clang-tidy >/dev/null || command -v clang-tidy-14 >/dev/null || {
  echo "clang-tidy: clang-tidy not found; scripts/setup test installs it" >&2
  exit 1
}
[[ -f "$build/compile_commands.json" ]] || {
  echo "clang-tidy: no $build/compile_commands.json (configure with a CMake preset)" >&2
  exit 1
}
# Runs clang-tidy -quiet on our folders' files -j $(nproc), prints the
# findings as file:line:col: warning|error: ..., and ends with
# "clang-tidy: clean (N files, M cached)" or a count of findings (exit 1).
exec /usr/bin/python3 "$(dirname "$0")/clang_tidy_cached.py" "$src" "$build"
