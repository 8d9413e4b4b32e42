#!/usr/bin/env bash
# End-to-end test of `pixpool bench` as a command: help, a tiny verified run
# with a report folder, exit statuses 2 (usage and unknown flags, a refused
# connection, each explained in words) and 130
# (SIGTERM mid-run, with the report still written). Loopback only, < 20 s.
# Usage: tests/tools/test_bench_cli.sh PIXPOOL_BINARY
# Prints "test_bench_cli: OK" and exits 0 when every check passes.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PIXPOOL_BINARY" >&2
  exit 2
fi
pixpool=$(realpath "$1")
[[ -x "$pixpool" ]] || { echo "test_bench_cli: no pixpool binary at $pixpool" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_bench_cli.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/pixpool_server.sh"
bench_pid=""
cleanup() {
  [[ -n "$bench_pid" ]] && { kill -KILL "$bench_pid" 2>/dev/null || true; }
  stop_pixpool
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "test_bench_cli: FAIL: $*" >&2
  for f in "$tmp"/*.out "$tmp"/*.err "$tmp"/server.log; do
    [[ -f "$f" ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# Runs `pixpool bench ARGS...` and checks its exit status.
expect_status() {
  local want=$1 name=$2
  shift 2
  local got=0
  "$pixpool" bench "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || got=$?
  [[ $got -eq $want ]] || fail "$name: exit status $got, expected $want"
}

# 1. Help and usage errors.
expect_status 0 help --help
grep -q -- "--concurrency" "$tmp/help.out" || fail "help does not list --concurrency"
expect_status 2 usage --duration 1s --requests 1
grep -q "either --duration or --requests" "$tmp/usage.err" || fail "usage error not explained"
# An unknown flag is named, alone or with a value, and points at --help.
for args in "--bogus" "--bogus 1" "--bogus=1" "--requests 1 --bogus"; do
  # shellcheck disable=SC2086  # split on purpose
  expect_status 2 bogus $args
  grep -qx "pixpool bench: unknown flag --bogus; see pixpool bench --help" "$tmp/bogus.err" ||
    fail "'$args': unknown flag not named: $(cat "$tmp/bogus.err")"
done
expect_status 2 typo --concurency 4
grep -q "unknown flag --concurency (did you mean --concurrency?)" "$tmp/typo.err" ||
  fail "no suggestion for a misspelt flag: $(cat "$tmp/typo.err")"
expect_status 2 novalue --report --requests 5
grep -q -- "--report needs a value" "$tmp/novalue.err" || fail "a missing value not explained"

# 2. The server on a free loopback port.
start_pixpool "$pixpool" "$tmp/server.log" --workers 1 --access-log off
url="http://127.0.0.1:$port"

# 3. A tiny run: every response verified, the table and the report.
expect_status 0 run --url "$url" --sizes vga --per-size 1 --backends tbb,process \
  --concurrency 1,2 --requests 4 --report "$tmp/report"
rows=$(grep -cE '^(tbb|process) +[12] +4 ' "$tmp/run.out" || true)
[[ $rows -eq 4 ]] || fail "expected 4 table rows with 4 requests, got $rows"
[[ -s "$tmp/report/report.json" ]] || fail "no report.json"
[[ -s "$tmp/report/index.html" ]] || fail "no index.html"
grep -q '"exit_status": 0' "$tmp/report/report.json" || fail "report.json lacks exit_status 0"
if command -v gnuplot >/dev/null; then
  [[ -s "$tmp/report/throughput.svg" && -s "$tmp/report/latency.svg" ]] || fail "no SVG plots"
fi

# 4. Nothing listening: exit 2 before any step, saying so in words, at once.
kill -0 "$server_pid"
dead_port=""
for candidate in $(seq $((port > 65000 ? 1025 : port + 1)) $((port > 65000 ? 1100 : port + 80))); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    dead_port=$candidate
    break
  fi
done
[[ -n "$dead_port" ]] || fail "no closed loopback port found near $port"
SECONDS=0
expect_status 2 unreachable --url "http://127.0.0.1:$dead_port" --sizes vga --requests 1
[[ $SECONDS -le 10 ]] || fail "refused connection took ${SECONDS}s to report"
want="pixpool bench: cannot connect to http://127.0.0.1:$dead_port: connection refused (is pixpool running?)"
grep -qxF "$want" "$tmp/unreachable.err" ||
  fail "refused connection not explained: $(cat "$tmp/unreachable.err")"

# 5. SIGTERM during a 20 s step: it stops within seconds, exits 130 and
#    still writes the report.
"$pixpool" bench --url "$url" --sizes vga --per-size 1 --backends tbb --concurrency 1 \
  --duration 20s --warmup 0 --report "$tmp/stopped" >"$tmp/stopped.out" 2>"$tmp/stopped.err" &
bench_pid=$!
# Wait (up to 20 s) for the table header: the corpus is built and the step
# is running, so SIGTERM lands mid-step.
for _ in $(seq 1 200); do
  grep -q '^backend ' "$tmp/stopped.out" 2>/dev/null && break
  kill -0 "$bench_pid" 2>/dev/null || fail "stopped run exited early"
  sleep 0.1
done
grep -q '^backend ' "$tmp/stopped.out" || fail "stopped run never started its step"
kill -TERM "$bench_pid"
got=0
SECONDS=0
wait "$bench_pid" || got=$?
bench_pid=""
[[ $got -eq 130 ]] || fail "stopped run: exit status $got, expected 130"
[[ $SECONDS -le 5 ]] || fail "stopped run took ${SECONDS}s to end"
grep -q '"interrupted": true' "$tmp/stopped/report.json" || fail "report not marked interrupted"

echo "test_bench_cli: OK"
