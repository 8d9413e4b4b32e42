#!/usr/bin/env bash
# The OpenAPI document (GET /openapi.json) against the real server:
# tests/web/check_openapi.py validates it against the OpenAPI 3.1 structure
# (tests/web/openapi-3.1.schema.json) and probes the server both ways, once
# on a server without API keys and once on one with a key (where it also
# checks which operations need the key). Loopback only, a few seconds.
# Usage: tests/tools/test_openapi.sh PIXPOOL_BINARY REPO_ROOT
# Environment: PYTHON (default /usr/bin/python3, else python3 from PATH).
# Prints "test_openapi: OK" and exits 0 when every check passes.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PIXPOOL_BINARY REPO_ROOT" >&2
  exit 2
fi
pixpool=$(realpath "$1")
root=$(realpath "$2")
check="$root/tests/web/check_openapi.py"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
[[ -x "$pixpool" ]] || { echo "test_openapi: no pixpool binary at $pixpool" >&2; exit 1; }
[[ -f "$check" ]] || { echo "test_openapi: no $check" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_openapi.XXXXXX")
# shellcheck source=tests/tools/pixpool_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/pixpool_server.sh"
cleanup() {
  stop_pixpool
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

server_log=""
fail() {
  echo "test_openapi: FAIL: $*" >&2
  if [[ -n "$server_log" && -f "$server_log" ]]; then
    echo "--- server log (tail):" >&2
    tail -n 20 "$server_log" >&2
  fi
  exit 1
}

"$PYTHON" -c 'import jsonschema' 2>/dev/null ||
  fail "$PYTHON has no jsonschema (Debian python3-jsonschema)"

# run_check NAME [ARGS...]: check_openapi.py against the running server.
run_check() {
  local name=$1
  shift
  local rc=0
  timeout 90 "$PYTHON" "$check" --url "http://127.0.0.1:$port" "$@" >"$tmp/$name.out" 2>&1 || rc=$?
  cat "$tmp/$name.out"
  [[ $rc -eq 0 ]] || fail "$name: check_openapi.py exited $rc"
}

# One worker process is enough; the checks run both backends. Each server
# has its own log: start_pixpool reads its port from the log it is given.
server_log="$tmp/server-open.log"
start_pixpool "$pixpool" "$server_log" --workers 1 --shutdown-timeout 1
run_check open
stop_pixpool

# The same server with an API key: every /v1 route needs it, the probes,
# the page and the document do not.
key="openapi-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server_log="$tmp/server-keyed.log"
start_pixpool "$pixpool" "$server_log" --workers 1 --shutdown-timeout 1 --api-keys "$key"
run_check keyed --api-key "$key"
stop_pixpool

echo "test_openapi: OK"
