#!/usr/bin/env bash
# The cluster stack on loopback (scripts/stack: its own Redis, 2 identical
# pixpool replicas on it behind nginx, plus an image origin): ids name no
# replica and nginx balances every route over both replicas; a job is found
# through the load balancer and through either replica directly, its event
# stream ends with `event: done`, its results are JPEGs, and ?url= downloads
# from the allowlisted origin work through the load balancer. Then the
# single-server deployment (--store memory: one replica, no Redis).
#
# Usage: tests/tools/test_stack.sh REPO_ROOT [PIXPOOL_BINARY]
#   PIXPOOL_BINARY defaults to REPO_ROOT/build/release/pixpool (built by
#   scripts/stack when missing or too old: pass the binary to keep it fast).
# The stack's nginx and Redis must keep to their own folder: afterwards none
# of their processes runs, and the system nginx's and Redis's logs, data and
# pid files were not written.
# Exits 77 (skip) when nginx or redis-server is not installed.
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
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "test_stack: SKIP: redis-server is not installed (scripts/setup test installs it)"
  exit 77
fi
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"

# The system nginx's and Redis's files, to compare at the end (size and
# mtime); only when no system nginx or Redis runs, which may write them.
system_nginx_files() { stat -c '%n %s %Y' /var/log/nginx/* /run/nginx.pid 2>/dev/null || true; }
system_redis_files() { stat -c '%n %s %Y' /var/log/redis/* /var/lib/redis/* /run/redis/* 2>/dev/null || true; }
system_nginx_before="$(system_nginx_files)"
system_redis_before="$(system_redis_files)"
system_nginx_runs=0
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then system_nginx_runs=1; fi
system_redis_runs=0
pgrep -x redis-server >/dev/null && system_redis_runs=1
# The stack starts each process in its own process group (pid = group id,
# from its pid file): after down, no process of these groups may be left
# (nginx's workers, a replica's zygote and workers included).
stack_groups() {
  local f pid
  for f in "$PIXPOOL_STACK_DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    read -r pid _ <"$f"
    echo "$pid"
  done
}
groups_left() {  # groups_left PGID...: the live processes still in those groups
  ps -e -o pid=,pgid=,stat=,comm= | awk -v groups=" $* " \
    'index(groups, " " $2 " ") && $3 !~ /^Z/ { printf "%s(%s) ", $1, $4 }'
}

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
# the PIXPOOL_LB_* variables with the compose replicas file (Docker's DNS
# resolver; the `api` name is resolved per request, so nginx -t needs no
# such host), checked by nginx -t. No routing by id is left in it.
if command -v envsubst >/dev/null 2>&1; then
  c="$work/compose"
  mkdir -p "$c"
  PIXPOOL_LB_LISTEN=127.0.0.1:8080 PIXPOOL_LB_REPLICAS_CONF="$root/deploy/nginx-replicas.compose.conf" \
    PIXPOOL_LB_MAX_BODY=64m envsubst '${PIXPOOL_LB_LISTEN} ${PIXPOOL_LB_REPLICAS_CONF} ${PIXPOOL_LB_MAX_BODY}' \
    <"$root/deploy/nginx.conf.template" >"$c/default.conf"
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
  if grep -Eq 'pixpool_r[0-9]|\$pixpool_replica\b|pixpool_any' "$c/default.conf" "$root/deploy/nginx-replicas.compose.conf"; then
    fail "the compose rendering still routes by replica id"
  fi
  step "the compose rendering of the template passes nginx -t"
fi

# json FILE PYTHON_EXPR: evaluates EXPR with d = the parsed JSON of FILE.
json() { "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
header() { tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | tail -n 1; }

# Free loopback ports below the ephemeral range: "LB BASE" where BASE-1..BASE+2
# (redis, origin, r1, r2) are free too.
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
    if abs(lb - base) > 4 and all(free(p) for p in (lb, base - 1, base, base + 1, base + 2)):
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
R1="http://127.0.0.1:$((base + 1))"
R2="http://127.0.0.1:$((base + 2))"
step "stack up: lb $LB, origin $ORIGIN, redis on $((base - 1)), replicas on $((base + 1)) and $((base + 2))"

# up again with the same settings: left alone.
timeout 30 "$stack" up "${up_args[@]}" >"$work/up2.log" 2>&1 || { cat "$work/up2.log"; fail "second up failed"; }
grep -q "already up" "$work/up2.log" || { cat "$work/up2.log"; fail "second up did not keep the running stack"; }
timeout 10 "$stack" status >"$work/status.log" 2>&1 || { cat "$work/status.log"; fail "status != 0 on a running stack"; }
grep -q "store: redis 127.0.0.1:$((base - 1)) (PING: PONG)" "$work/status.log" \
  || { cat "$work/status.log"; fail "status does not show the stack's Redis"; }
# Both replicas run on the stack's Redis, and say so in /readyz.
for url in "$R1" "$R2"; do
  curl -sS -o "$work/readyz.json" --max-time 5 "$url/readyz" || fail "$url/readyz"
  [ "$(json "$work/readyz.json" 'd["store"]["kind"] + "/" + d["store"]["state"]')" = redis/up ] \
    || fail "$url/readyz store: $(cat "$work/readyz.json")"
done

# nginx balances every route over both replicas (X-Pixpool-Replica names the
# one that answered): four POST /v1/jobs in a row reach both.
declare -A accepted_by=()
ids=()
for ((i = 1; i <= 4; i++)); do
  code="$(curl -sS -D "$work/post.head" -o "$work/post.json" -w '%{http_code}' --max-time 10 \
          -F "image=@$image" -F "image=@$image2" "$LB/v1/jobs")"
  [ "$code" = 202 ] || { cat "$work/post.json"; fail "POST /v1/jobs answered $code"; }
  id="$(json "$work/post.json" 'd["id"]')"
  [[ "$id" != r[0-9]-* ]] || fail "job id '$id' is prefixed by a replica name (cluster ids are not)"
  replica="$(header "$work/post.head" X-Pixpool-Replica)"
  [ -n "$replica" ] || { cat "$work/post.head"; fail "POST /v1/jobs has no X-Pixpool-Replica header"; }
  accepted_by[$replica]=1
  ids+=("$id")
done
[ -n "${accepted_by[r1]:-}" ] && [ -n "${accepted_by[r2]:-}" ] \
  || fail "4 jobs were not balanced over r1 and r2 (accepted by: ${!accepted_by[*]})"
step "jobs ${ids[*]} accepted by ${!accepted_by[*]}"

for id in "${ids[0]}" "${ids[1]}"; do
  # The event stream through the load balancer ends with `done`, one item
  # event per image.
  curl -sS -N --max-time 30 -o "$work/events.txt" "$LB/v1/jobs/$id/events" \
    || fail "event stream of $id failed or did not end"
  grep -q '^event: done' "$work/events.txt" || { cat "$work/events.txt"; fail "no 'event: done' for $id"; }
  [ "$(grep -c '^event: item' "$work/events.txt")" = 2 ] || fail "expected 2 item events for $id"

  # Every replica knows the job, directly as through the load balancer.
  for url in "$LB" "$R1" "$R2"; do
    code="$(curl -sS -o "$work/job.json" -w '%{http_code}' --max-time 10 "$url/v1/jobs/$id")"
    [ "$code" = 200 ] || { cat "$work/job.json"; fail "GET $url/v1/jobs/$id: $code"; }
    [ "$(json "$work/job.json" 'd["id"]')" = "$id" ] || fail "GET $url/v1/jobs/$id returned another job"
    [ "$(json "$work/job.json" 'd["state"]')" = "done" ] || { cat "$work/job.json"; fail "$id not done at $url"; }
  done
  # Each finished item names the replica that processed it.
  names="$(json "$work/job.json" '" ".join(sorted(set(str(i.get("replica")) for i in d["items"])))')"
  [[ "$names" =~ ^r[12]( r[12])?$ ]] \
    || { cat "$work/job.json"; fail "items of $id do not name r1/r2 as their replica: '$names'"; }

  # The first item's result is a JPEG, through the load balancer and from
  # either replica.
  rid="$(json "$work/job.json" 'd["items"][0]["id"]')"
  for url in "$LB" "$R1" "$R2"; do
    read -r code type < <(curl -sS -o "$work/result.jpg" -w '%{http_code} %{content_type}\n' \
                            --max-time 10 "$url/v1/results/$rid")
    [ "$code" = 200 ] || fail "GET $url/v1/results/$rid: $code"
    [[ "$type" == image/jpeg* ]] || fail "result $rid from $url has Content-Type '$type'"
    [ "$(head -c 2 "$work/result.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8 ] || fail "result $rid from $url is not a JPEG"
  done

  # The archive too.
  read -r code type < <(curl -sS -o "$work/archive.tar" -w '%{http_code} %{content_type}\n' \
                          --max-time 10 "$LB/v1/jobs/$id/archive")
  [ "$code" = 200 ] && [[ "$type" == application/x-tar* ]] || fail "GET /v1/jobs/$id/archive: $code $type"
  step "job $id (items by $names): events, the job on every replica, result and archive through the lb"
done

# DELETE through the load balancer; an unknown id gets pixpool's own 404.
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X DELETE "$LB/v1/jobs/${ids[2]}")"
[ "$code" = 200 ] || fail "DELETE /v1/jobs/${ids[2]} via the lb: $code"
code="$(curl -sS -o "$work/missing.json" -w '%{http_code}' --max-time 10 "$LB/v1/jobs/0123456789abcdef0123")"
[ "$code" = 404 ] && [ "$(json "$work/missing.json" 'd["error"]["code"]')" = not_found ] \
  || fail "unknown job id: $code $(cat "$work/missing.json")"

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
# The web page and its scripts through the front, with the page's CSP.
code="$(curl -sS -D "$work/page.head" -o "$work/page.html" -w '%{http_code}' --max-time 10 "$LB/")"
[ "$code" = 200 ] && grep -q '<title>pixpool' "$work/page.html" \
  && grep -qi '^content-security-policy:' "$work/page.head" || fail "GET / via the lb: $code"
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$LB/assets/chart.min.js")"
[ "$code" = 200 ] || fail "GET /assets/chart.min.js via the lb: $code"
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
mapfile -t pids < <(stack_groups)
groups=("${pids[@]}")
[ ${#pids[@]} = 5 ] || fail "expected 5 pid files (nginx, origin, redis, r1, r2), found ${#pids[@]}"
# nginx's workers too (their command line does not name the stack's folder).
read -r nginx_pid _ <"$PIXPOOL_STACK_DIR/pids/nginx.pid"
mapfile -t workers < <(pgrep -P "$nginx_pid")
[ ${#workers[@]} -ge 1 ] || fail "nginx (pid $nginx_pid) has no worker process"
pids+=("${workers[@]}")
timeout 90 "$stack" down >"$work/down.log" 2>&1 || { cat "$work/down.log"; fail "scripts/stack down failed"; }
for pid in "${pids[@]}"; do
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)"
  [ -z "$state" ] || [ "$state" = Z ] || fail "pid $pid still running after scripts/stack down"
done
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$LB/readyz" || true)"
[ "$code" = 000 ] || fail "the lb still answers after down ($code)"
if pgrep -f "$PIXPOOL_STACK_DIR/(nginx|redis)" >/dev/null; then
  fail "an nginx or Redis of the stack still runs after down: $(pgrep -af "$PIXPOOL_STACK_DIR/(nginx|redis)")"
fi
(exec 3<>"/dev/tcp/127.0.0.1/$((base - 1))") 2>/dev/null \
  && fail "something still listens on the stack's Redis port $((base - 1)) after down"
[ -s "$PIXPOOL_STACK_DIR/redis/redis.conf" ] && [ -d "$PIXPOOL_STACK_DIR/redis/data/appendonlydir" ] \
  || fail "the stack's Redis did not keep its config and append-only file in the stack's folder"
[ "$system_nginx_runs" = 1 ] || [ "$(system_nginx_files)" = "$system_nginx_before" ] \
  || fail "the system nginx's files changed: before [$system_nginx_before] after [$(system_nginx_files)]"
[ "$system_redis_runs" = 1 ] || [ "$(system_redis_files)" = "$system_redis_before" ] \
  || fail "the system Redis's files changed: before [$system_redis_before] after [$(system_redis_files)]"
left="$(groups_left "${groups[@]}")"
[ -z "${left// /}" ] || fail "processes of the stack left after down: $left"
step "down stopped nginx, Redis, the replicas and the origin; the system nginx and Redis untouched"

# Several replicas with their jobs in memory are refused before anything
# starts: a job would be found on one replica only.
read -r lb base < <(pick_ports) || fail "no free ports"
if timeout 30 "$stack" up --store memory --replicas 2 --port "$lb" --base-port "$base" \
     >"$work/up-memory-2.log" 2>&1; then
  fail "scripts/stack up --store memory --replicas 2 was accepted"
fi
grep -q "one replica only" "$work/up-memory-2.log" || { cat "$work/up-memory-2.log"; fail "no clear refusal"; }
[ -z "$(ls "$PIXPOOL_STACK_DIR/pids")" ] || fail "a refused up left pid files: $(ls "$PIXPOOL_STACK_DIR/pids")"

# The single-server deployment: one replica with its jobs in memory, no
# Redis, no origin (so no private download source is allowed), the same front.
single_args=(--store memory --no-origin --port "$lb" --base-port "$base")
[ -n "$bin" ] && single_args+=(--bin "$bin")
timeout 120 "$stack" up "${single_args[@]}" >"$work/up-single.log" 2>&1 \
  || { cat "$work/up-single.log"; fail "scripts/stack up --store memory --no-origin failed"; }
names="$(cd "$PIXPOOL_STACK_DIR/pids" && echo *.pid)"
[ "$names" = "nginx.pid r1.pid" ] || fail "single-server stack runs: $names"
mapfile -t groups < <(stack_groups)
code="$(curl -sS -o "$work/single.json" -w '%{http_code}' --max-time 20 \
          "http://127.0.0.1:$lb/v1/process?url=http://127.0.0.1:$base/fruits_320x240.jpg")"
[ "$code" = 403 ] && [ "$(json "$work/single.json" 'd["error"]["code"]')" = source_forbidden ] \
  || fail "single-server stack: a loopback url= answered $code $(cat "$work/single.json")"
# Its jobs work through the front, and live in the replica's memory.
code="$(curl -sS -o "$work/post.json" -w '%{http_code}' --max-time 10 -F "image=@$image" \
          "http://127.0.0.1:$lb/v1/jobs")"
[ "$code" = 202 ] || fail "single-server stack: POST /v1/jobs answered $code $(cat "$work/post.json")"
id="$(json "$work/post.json" 'd["id"]')"
curl -sS -N --max-time 30 -o "$work/events.txt" "http://127.0.0.1:$lb/v1/jobs/$id/events" \
  || fail "single-server stack: the event stream of $id failed"
grep -q '^event: done' "$work/events.txt" || fail "single-server stack: the events of $id did not end with done"
curl -sS -o "$work/readyz.json" --max-time 5 "http://127.0.0.1:$((base + 1))/readyz" || fail "single-server /readyz"
kind="$(json "$work/readyz.json" 'd.get("store", {}).get("kind", "memory")')"
[ "$kind" = memory ] || fail "single-server stack: the replica's store is '$kind'"
timeout 60 "$stack" down >"$work/down-single.log" 2>&1 || fail "scripts/stack down (single) failed"
left="$(groups_left "${groups[@]}")"
[ -z "${left// /}" ] || fail "processes of the single-server stack left after down: $left"
step "single-server stack (--store memory --no-origin): up, a job, loopback downloads refused, down"

echo "test_stack: OK"
