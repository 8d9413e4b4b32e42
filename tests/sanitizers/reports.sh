#!/usr/bin/env bash
# The sanitizer report check of the asan and tsan suites (a ctest fixture,
# see tests/CMakeLists.txt). The test presets set log_path in ASAN_OPTIONS,
# UBSAN_OPTIONS and TSAN_OPTIONS, so every process of a test (the test
# itself, the zygote and workers it forks, a pixpool server it starts and
# that server's workers) writes any report to <folder>/<tool>.<pid> instead
# of a stderr that may be a deleted log file or a dead pipe.
#
# Usage: reports.sh clear   empty the folder (fixture setup)
#        reports.sh check   fail with every report found (fixture cleanup)
# Exits 77 (skip) when no log_path is set (ctest run without a preset).
#
# Expected, and the only reports let through: the SEGV of the test-only
# `crash` op (filters/test_ops/crash_op.cpp raises SIGSEGV on purpose, and
# the sanitizer's deadly-signal handler reports it before the worker dies).
set -uo pipefail

folder=""
for options in "${ASAN_OPTIONS:-}" "${UBSAN_OPTIONS:-}" "${TSAN_OPTIONS:-}"; do
  path="$(tr ':' '\n' <<<"$options" | sed -n 's/^log_path=//p' | tail -1)"
  if [[ -n "$path" ]]; then folder="$(dirname "$path")"; break; fi
done
if [[ -z "$folder" ]]; then
  echo "sanitizers: no log_path in ASAN_OPTIONS/UBSAN_OPTIONS/TSAN_OPTIONS: reports went to each" \
       "process's stderr and are not checked here (run ctest --preset asan or tsan)"
  exit 77
fi

case "${1:-}" in
  clear)
    rm -rf "$folder" && mkdir -p "$folder" && echo "sanitizers: reports go to $folder"
    exit
    ;;
  check) ;;
  *) echo "usage: $0 clear|check" >&2; exit 2 ;;
esac

[[ -d "$folder" ]] || { echo "sanitizers: $folder is missing (the clear step did not run)"; exit 1; }
shopt -s nullglob
expected=0
unexpected=()
for file in "$folder"/*; do
  # One finding per report header; TSan may write several into one file.
  findings="$(grep -cE '(ERROR|WARNING): [A-Za-z]+Sanitizer|runtime error:' "$file")"
  if [[ "$findings" == 1 ]] && grep -qE 'ERROR: [A-Za-z]+Sanitizer: SEGV' "$file" &&
     grep -q 'test_ops/crash_op\.cpp' "$file"; then
    expected=$((expected + 1))
  else
    unexpected+=("$file")
  fi
done
if [[ ${#unexpected[@]} -gt 0 ]]; then
  for file in "${unexpected[@]}"; do
    echo "==== $file"
    cat "$file"
  done
  echo "sanitizers: ${#unexpected[@]} process(es) reported errors (above); $expected expected crash-op report(s)"
  exit 1
fi
echo "sanitizers: no report ($expected expected from the test-only crash op)"
