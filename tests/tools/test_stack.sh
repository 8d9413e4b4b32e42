#!/usr/bin/env bash
# The multi-replica stack on loopback (scripts/stack: 2 pixpool replicas behind
# nginx, plus an image origin): jobs and results made by either replica are
# found through the load balancer (routing by id), their event streams end
# with `event: done`, their results are JPEGs, and ?url= downloads from the
# allowlisted origin work through the load balancer.
#
# Usage: tests/tools/test_stack.sh REPO_ROOT [PIXPOOL_BINARY]
#   PIXPOOL_BINARY defaults to REPO_ROOT/build/release/pixpool (built by
#   scripts/stack when missing or too old: pass the binary to keep it fast).
# The stack's nginx must keep to its own folder: afterwards no nginx of it
# runs, and the system nginx's logs and pid file were not written.
# Exits 77 (skip) when nginx is not installed.
set -euo pipefail

root="$(cd "${1:?usage: test_stack.sh REPO_ROOT [PIXPOOL_BINARY]}" && pwd)"
bin="${2:-}"
stack="$root/scripts/stack"
image="$root/tests/data/fruits_320x240.jpg"
image2="$root/tests/data/baboon_320x240.jpg"

fail() { echo "test_stack: FAIL: $*" >&2; exit 1; }
step() { echo "test_stack: $*"; }

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "test_stack: SKIP: nginx is not installed (scripts/setup test installs it)"
  exit 77
fi
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"

# The system nginx's files, to compare at the end (size and mtime); only when
# no system nginx runs, which may write them itself.
system_nginx_files() { stat -c '%n %s %Y' /var/log/nginx/* /run/nginx.pid 2>/dev/null || true; }
system_before="$(system_nginx_files)"
system_nginx_runs=0
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then system_nginx_runs=1; fi

work="$(mktemp -d /tmp/pixpool-test-stack.XXXXXX)"
export PIXPOOL_STACK_DIR="$work/stack"
cleanup() {
  local rc=$?
  "$stack" down >"$work/down.log" 2>&1 || true
  if [ "$rc" -ne 0 ]; then
    local log
    for log in "$PIXPOOL_STACK_DIR"/logs/*.log; do
      [ -s "$log" ] || continue
      echo "---- $log (last lines)" >&2
      tail -n 20 "$log" >&2
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# The compose rendering of the template: the official image's envsubst of
# the PIXPOOL_LB_* variables, the compose replica list (its host names
# pointed at loopback, which nginx -t must resolve), checked by nginx -t.
if command -v envsubst >/dev/null 2>&1; then
  mkdir -p "$work/compose"
  sed 's/pixpool-r[0-9]*:8080/127.0.0.1:8080/' "$root/deploy/nginx-replicas.compose.conf" \
    >"$work/compose/replicas.conf"
  PIXPOOL_LB_LISTEN=127.0.0.1:8080 PIXPOOL_LB_REPLICAS_CONF="$work/compose/replicas.conf" \
    PIXPOOL_LB_MAX_BODY=64m envsubst '${PIXPOOL_LB_LISTEN} ${PIXPOOL_LB_REPLICAS_CONF} ${PIXPOOL_LB_MAX_BODY}' \
    <"$root/deploy/nginx.conf.template" >"$work/compose/default.conf"
  c="$work/compose"
  cat >"$c/nginx.conf" <<EOF
pid $c/nginx.pid;
error_log $c/error.log;
events {}
http {
    client_body_temp_path $c/body;
    proxy_temp_path $c/proxy;
    fastcgi_temp_path $c/fastcgi;
    uwsgi_temp_path $c/uwsgi;
    scgi_temp_path $c/scgi;
    access_log off;
    include $c/default.conf;
}
EOF
  nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
  "$nginx_bin" -t -q -p "$c" -c "$c/nginx.conf" -e "$c/error.log" >"$c/check.log" 2>&1 \
    || { cat "$c/check.log"; fail "nginx -t rejects the compose rendering of deploy/nginx.conf.template"; }
  step "the compose rendering of the template passes nginx -t"
fi

# json FILE PYTHON_EXPR: evaluates EXPR with d = the parsed JSON of FILE.
json() { "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# Free loopback ports below the ephemeral range: "LB BASE" where BASE..BASE+2
# (origin, r1, r2) are free too.
pick_ports() {
  "$python" - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    lb = random.randrange(20000, 32000)
    base = random.randrange(20000, 32000)
    if abs(lb - base) > 3 and all(free(p) for p in (lb, base, base + 1, base + 2)):
        print(lb, base)
        break
EOF
}

up_args=()
started=0
for attempt in 1 2 3; do
  read -r lb base < <(pick_ports) || fail "no free ports"
  up_args=(--replicas 2 --port "$lb" --base-port "$base")
  [ -n "$bin" ] && up_args+=(--bin "$bin")
  up_args+=(-- --workers 1 --tbb-threads 1)
  if timeout 120 "$stack" up "${up_args[@]}" >"$work/up.log" 2>&1; then
    started=1
    break
  fi
  # Another process may have taken a port between the check and the bind.
  echo "test_stack: stack up failed (attempt $attempt):" >&2
  cat "$work/up.log" >&2
done
[ "$started" = 1 ] || fail "scripts/stack up did not start the stack"
LB="http://127.0.0.1:$lb"
ORIGIN="http://127.0.0.1:$base"
step "stack up: lb $LB, origin $ORIGIN, replicas on $((base + 1)) and $((base + 2))"

# up again with the same settings: left alone.
timeout 30 "$stack" up "${up_args[@]}" >"$work/up2.log" 2>&1 || { cat "$work/up2.log"; fail "second up failed"; }
grep -q "already up" "$work/up2.log" || { cat "$work/up2.log"; fail "second up did not keep the running stack"; }
timeout 10 "$stack" status >"$work/status.log" 2>&1 || { cat "$work/status.log"; fail "status != 0 on a running stack"; }

# Jobs until each replica made one (round-robin: two posts are enough).
declare -A job=()
for ((i = 1; i <= 10; i++)); do
  code="$(curl -sS -o "$work/post.json" -w '%{http_code}' --max-time 10 \
          -F "image=@$image" -F "image=@$image2" "$LB/v1/jobs")"
  [ "$code" = 202 ] || { cat "$work/post.json"; fail "POST /v1/jobs answered $code"; }
  id="$(json "$work/post.json" 'd["id"]')"
  case "$id" in
    r1-*) job[r1]="${job[r1]:-$id}" ;;
    r2-*) job[r2]="${job[r2]:-$id}" ;;
    *) fail "job id '$id' names no replica" ;;
  esac
  [ -n "${job[r1]:-}" ] && [ -n "${job[r2]:-}" ] && break
done
[ -n "${job[r1]:-}" ] && [ -n "${job[r2]:-}" ] || fail "10 jobs did not reach both replicas"
step "jobs ${job[r1]} and ${job[r2]}"

for r in r1 r2; do
  id="${job[$r]}"
  other_port=$((base + 1)); [ "$r" = r1 ] && other_port=$((base + 2))

  # The job is found through the load balancer...
  code="$(curl -sS -o "$work/job.json" -w '%{http_code}' --max-time 10 "$LB/v1/jobs/$id")"
  [ "$code" = 200 ] || { cat "$work/job.json"; fail "GET /v1/jobs/$id via the lb: $code"; }
  [ "$(json "$work/job.json" 'd["id"]')" = "$id" ] || fail "GET /v1/jobs/$id returned another job"
  # ...though the other replica does not know it (so the lb routed by id).
  code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$other_port/v1/jobs/$id")"
  [ "$code" = 404 ] || fail "the other replica answered $code for $id (expected 404)"

  # The event stream through the load balancer ends with `done`.
  curl -sS -N --max-time 20 -o "$work/events.txt" "$LB/v1/jobs/$id/events" \
    || fail "event stream of $id failed or did not end"
  grep -q '^event: done' "$work/events.txt" || { cat "$work/events.txt"; fail "no 'event: done' for $id"; }
  [ "$(grep -c '^event: item' "$work/events.txt")" = 2 ] || fail "expected 2 item events for $id"

  # The first item's result is a JPEG, fetched through the load balancer.
  curl -sS -o "$work/job.json" --max-time 10 "$LB/v1/jobs/$id"
  [ "$(json "$work/job.json" 'd["state"]')" = "done" ] || { cat "$work/job.json"; fail "$id not done"; }
  rid="$(json "$work/job.json" 'd["items"][0]["id"]')"
  [[ "$rid" == "$r"-* ]] || fail "result id '$rid' of $id does not start with $r-"
  read -r code type < <(curl -sS -o "$work/result.jpg" -w '%{http_code} %{content_type}\n' \
                          --max-time 10 "$LB/v1/results/$rid")
  [ "$code" = 200 ] || fail "GET /v1/results/$rid via the lb: $code"
  [[ "$type" == image/jpeg* ]] || fail "result $rid has Content-Type '$type'"
  [ "$(head -c 2 "$work/result.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8 ] || fail "result $rid is not a JPEG"

  # The archive too.
  read -r code type < <(curl -sS -o "$work/archive.tar" -w '%{http_code} %{content_type}\n' \
                          --max-time 10 "$LB/v1/jobs/$id/archive")
  [ "$code" = 200 ] && [[ "$type" == application/x-tar* ]] || fail "GET /v1/jobs/$id/archive: $code $type"
  step "$r: job, events, result $rid and archive found through the lb"
done

# DELETE is routed too; an id naming no replica gets pixpool's own 404.
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X DELETE "$LB/v1/jobs/${job[r2]}")"
[ "$code" = 200 ] || fail "DELETE /v1/jobs/${job[r2]} via the lb: $code"
code="$(curl -sS -o "$work/missing.json" -w '%{http_code}' --max-time 10 "$LB/v1/jobs/r9-0123abcd")"
[ "$code" = 404 ] && [ "$(json "$work/missing.json" 'd["error"]["code"]')" = not_found ] \
  || fail "unknown replica id: $code $(cat "$work/missing.json")"

# A download from the allowlisted origin, through the load balancer.
read -r code type < <(curl -sS -o "$work/url.jpg" -w '%{http_code} %{content_type}\n' --max-time 20 \
                        "$LB/v1/process?url=$ORIGIN/fruits_320x240.jpg")
[ "$code" = 200 ] && [[ "$type" == image/jpeg* ]] \
  || fail "GET /v1/process?url=$ORIGIN/fruits_320x240.jpg via the lb: $code $type $(head -c 300 "$work/url.jpg")"
step "?url= download from the origin works through the lb"

# The front's own limits (deploy/nginx.conf.template, docs/security.md).
# An upload over nginx's 1 MiB body buffer is spooled to the stack's temp
# folder by nginx's worker, and still arrives whole.
"$python" - "$work/big.png" <<'EOF'
import random, struct, sys, zlib
w, h = 900, 700
rnd = random.Random(3)
raw = b"".join(b"\x00" + rnd.randbytes(w * 3) for _ in range(h))
def chunk(k, d):
    return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
EOF
[ "$(stat -c %s "$work/big.png")" -gt $((1 << 20)) ] || fail "the test image is not over 1 MiB"
code="$(curl -sS -o "$work/big.out" -w '%{http_code}' --max-time 30 --data-binary "@$work/big.png" \
          "$LB/v1/process?ops=contour&format=jpeg")"
[ "$code" = 200 ] || fail "a 1.9 MB upload through the lb: $code $(head -c 300 "$work/big.out")"
# A body on a GET is refused by the front itself, in pixpool's JSON.
code="$(curl -sS -o "$work/get-body.json" -w '%{http_code}' --max-time 10 -X GET --data x "$LB/healthz")"
[ "$code" = 400 ] && [ "$(json "$work/get-body.json" 'd["error"]["code"]')" = invalid_parameter ] \
  || fail "GET with a body via the lb: $code $(cat "$work/get-body.json")"
# Several ranges never reach a replica: /metrics comes whole, not in parts.
code="$(curl -sS -D "$work/metrics.head" -o "$work/metrics.txt" -w '%{http_code}' --max-time 10 \
          -H 'Range: bytes=0-0,0-0,0-' "$LB/metrics")"
[ "$code" = 200 ] && ! grep -qi 'multipart/byteranges\|^Content-Range' "$work/metrics.head" \
  || fail "a multi-range /metrics via the lb answered $code"
step "front: a 1.9 MB upload is buffered and arrives, a GET body is refused (400), ranges are dropped"

# down stops every process it started.
pids=()
for f in "$PIXPOOL_STACK_DIR"/pids/*.pid; do
  read -r pid _ <"$f"
  pids+=("$pid")
done
[ ${#pids[@]} = 4 ] || fail "expected 4 pid files (nginx, origin, r1, r2), found ${#pids[@]}"
# nginx's workers too (their command line does not name the stack's folder).
read -r nginx_pid _ <"$PIXPOOL_STACK_DIR/pids/nginx.pid"
mapfile -t workers < <(pgrep -P "$nginx_pid")
[ ${#workers[@]} -ge 1 ] || fail "nginx (pid $nginx_pid) has no worker process"
pids+=("${workers[@]}")
timeout 60 "$stack" down >"$work/down.log" 2>&1 || { cat "$work/down.log"; fail "scripts/stack down failed"; }
for pid in "${pids[@]}"; do
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)"
  [ -z "$state" ] || [ "$state" = Z ] || fail "pid $pid still running after scripts/stack down"
done
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$LB/readyz" || true)"
[ "$code" = 000 ] || fail "the lb still answers after down ($code)"
if pgrep -f "$PIXPOOL_STACK_DIR/nginx" >/dev/null; then
  fail "an nginx of the stack still runs after down: $(pgrep -af "$PIXPOOL_STACK_DIR/nginx")"
fi
[ "$system_nginx_runs" = 1 ] || [ "$(system_nginx_files)" = "$system_before" ] \
  || fail "the system nginx's files changed: before [$system_before] after [$(system_nginx_files)]"

# The single-server deployment: one replica, no origin (so no private
# download source is allowed), the same front.
read -r lb base < <(pick_ports) || fail "no free ports"
single_args=(--replicas 1 --no-origin --port "$lb" --base-port "$base")
[ -n "$bin" ] && single_args+=(--bin "$bin")
timeout 120 "$stack" up "${single_args[@]}" >"$work/up-single.log" 2>&1 \
  || { cat "$work/up-single.log"; fail "scripts/stack up --replicas 1 --no-origin failed"; }
names="$(cd "$PIXPOOL_STACK_DIR/pids" && echo *.pid)"
[ "$names" = "nginx.pid r1.pid" ] || fail "single-server stack runs: $names"
code="$(curl -sS -o "$work/single.json" -w '%{http_code}' --max-time 20 \
          "http://127.0.0.1:$lb/v1/process?url=http://127.0.0.1:$base/fruits_320x240.jpg")"
[ "$code" = 403 ] && [ "$(json "$work/single.json" 'd["error"]["code"]')" = source_forbidden ] \
  || fail "single-server stack: a loopback url= answered $code $(cat "$work/single.json")"
timeout 60 "$stack" down >"$work/down-single.log" 2>&1 || fail "scripts/stack down (single) failed"
step "single-server stack (--replicas 1 --no-origin): up, loopback downloads refused, down"

echo "test_stack: OK"
