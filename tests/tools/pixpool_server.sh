# Sourced by the tool tests: start the real pixpool on a free loopback port
# and stop it again. Callers define fail() (message, exit 1) first.
#
#   start_pixpool BINARY LOG [FLAGS...]   sets server_pid and port (waits up to 10 s)
#   stop_pixpool                          SIGTERM, up to 3 s to drain, then SIGKILL

server_pid=""
port=""

start_pixpool() {
  local binary=$1 log=$2
  shift 2
  "$binary" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
    [[ -n "$port" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "pixpool exited at startup"
    sleep 0.1
  done
  fail "pixpool did not report its port"
}

stop_pixpool() {
  [[ -n "$server_pid" ]] || return 0
  if kill -TERM "$server_pid" 2>/dev/null; then
    for _ in $(seq 1 30); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
