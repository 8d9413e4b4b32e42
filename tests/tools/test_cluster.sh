#!/usr/bin/env bash
# Cluster mode end to end (issue 13), natively on loopback with scripts/stack:
# its own Redis, 3 identical replicas on it (--store redis://..., small
# --workers/--tbb-threads so that 3 fit 2 cores, --reclaim-after 3s, and
# --enable-test-ops for a sleep op that makes items slow without CPU), nginx
# balancing over all of them, and the origin.
#
#   1. A job of 50 large images (1920x1080 JPEGs made from tests/data with
#      Pillow) is posted through the load balancer; the replica that
#      accepted it (X-Pixpool-Replica of the POST) is SIGKILLed mid-job,
#      after some items are done and before all are. The job still finishes
#      with every item `succeeded`; its event stream, read through the load
#      balancer from a surviving replica, ends with `event: done` and names
#      every item index exactly once; a stream from the killed replica, cut
#      by the kill, resumes through the load balancer with Last-Event-ID and
#      loses or repeats nothing; every result is fetched through the load
#      balancer (200, a JPEG); more than one replica processed items.
#   2. The killed replica is started again and rejoins.
#   3. Redis is killed (SIGKILL) and started again (same port, same
#      append-only file). While it is down, /v1/process keeps answering 200
#      through the load balancer and POST /v1/jobs answers 503
#      store_unavailable; once it is back, the replicas reconnect by
#      themselves, the first job is still there (AOF), and a new job is
#      accepted and finishes.
#
# Prints a summary with figures (items/s, items per replica, time to finish
# after the kill, outage figures). Every wait has a deadline; the whole test
# takes well under a minute on 2 cores.
#
# Usage: tests/tools/test_cluster.sh REPO_ROOT [PIXPOOL_BINARY]
#   PIXPOOL_BINARY defaults to REPO_ROOT/build/release/pixpool.
# Exits 77 (skip) when nginx or redis-server is not installed. Everything it
# starts is stopped on exit (scripts/stack down); on failure the tails of
# the stack's logs are printed.
set -euo pipefail

root="$(cd "${1:?usage: test_cluster.sh REPO_ROOT [PIXPOOL_BINARY]}" && pwd)"
bin="${2:-$root/build/release/pixpool}"
stack="$root/scripts/stack"
small1="$root/tests/data/fruits_320x240.jpg"
small2="$root/tests/data/baboon_320x240.jpg"
items=50
replicas=3
kill_after_items=5   # SIGKILL the accepting replica once this many items are done
# Per item: the test op sleep:150 (replicas get --enable-test-ops) and 14
# real ops, ~40 ms of pixel work per 1080p image on one core. Each replica
# runs one item at a time (--tbb-threads 1), so the job lasts some 5-6 s
# whatever the load of the machine (the sleep takes no CPU): long enough to
# kill a replica in the middle of it with room to spare.
ops="sleep:150,blur:3,contour,blur:3,contour,blur:3,contour,blur:3,contour,blur:3,contour,blur:3,contour,blur:3,contour"

fail() { echo "test_cluster: FAIL: $*" >&2; exit 1; }
step() { echo "test_cluster: $*"; }

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "test_cluster: SKIP: nginx is not installed (scripts/setup test installs it)"
  exit 77
fi
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "test_cluster: SKIP: redis-server is not installed (scripts/setup test installs it)"
  exit 77
fi
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"
"$python" -c 'import PIL' 2>/dev/null \
  || fail "$python has no Pillow (Debian python3-pil; scripts/setup test installs it)"
[ -x "$bin" ] || fail "no pixpool binary at $bin"

work="$(mktemp -d /tmp/pixpool-test-cluster.XXXXXX)"
export PIXPOOL_STACK_DIR="$work/stack"
main_pid=""
cut_pid=""
monitor_pid=""
cleanup() {
  local rc=$? pid
  for pid in "$main_pid" "$cut_pid" "$monitor_pid"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  timeout 90 "$stack" down >"$work/down.log" 2>&1 || cat "$work/down.log" >&2
  if [ "$rc" -ne 0 ]; then
    local log
    for log in "$PIXPOOL_STACK_DIR"/logs/*.log; do
      [ -s "$log" ] || continue
      case "$log" in */nginx-access.log|*/nginx-check.log) continue ;; esac
      echo "---- $log (last lines)" >&2
      tail -n 25 "$log" >&2
    done
    [ -s "$work/job.json" ] && { echo "---- last job JSON (first 3000 bytes)" >&2; head -c 3000 "$work/job.json" >&2; echo >&2; }
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# json FILE PYTHON_EXPR: evaluates EXPR with d = the parsed JSON of FILE.
json() { "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# header FILE NAME: the last value of a header in a curl -D dump.
header() { tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | tail -n 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- images

t0="$(now)"
mkdir -p "$work/images"
"$python" - "$work/images" "$items" "$small1" "$small2" <<'EOF'
import sys
from PIL import Image, ImageEnhance, ImageOps
out, n, srcs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
big = [Image.open(p).convert("RGB").resize((1920, 1080), Image.BICUBIC) for p in srcs]
for i in range(n):
    im = big[i % len(big)]
    if (i // 2) % 2:
        im = ImageOps.mirror(im)
    if (i // 4) % 2:
        im = ImageOps.flip(im)
    # Every image different: its brightness.
    ImageEnhance.Brightness(im).enhance(0.7 + 0.6 * i / n).save(f"{out}/img{i:03d}.jpg", quality=90)
EOF
image_mb="$(du -sm "$work/images" | cut -f1)"
step "$items images of 1920x1080 ($image_mb MB) made in $(secs "$t0" "$(now)") s"

# ---------------------------------------------------------------- stack up

# Free loopback ports below the ephemeral range: "LB BASE" where
# BASE-1..BASE+3 (redis, origin, r1..r3) are free too.
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
    if abs(lb - base) > 5 and all(free(p) for p in [lb] + list(range(base - 1, base + 4))):
        print(lb, base)
        break
EOF
}

started=0
for attempt in 1 2 3; do
  read -r lb base < <(pick_ports) || fail "no free ports"
  if timeout 120 "$stack" up --replicas "$replicas" --reclaim-after 3s --port "$lb" --base-port "$base" \
       --bin "$bin" -- --workers 1 --tbb-threads 1 --enable-test-ops on >"$work/up.log" 2>&1; then
    started=1
    break
  fi
  cat "$work/up.log" >&2
  # A binary without cluster mode is a failure, not a port clash: no retry.
  grep -q "no --store flag" "$work/up.log" && fail "$bin has no cluster mode (--store)"
  echo "test_cluster: stack up failed (attempt $attempt)" >&2
done
[ "$started" = 1 ] || fail "scripts/stack up did not start the cluster"
LB="http://127.0.0.1:$lb"
step "cluster up: lb $LB, redis 127.0.0.1:$((base - 1)), replicas r1..r$replicas on $((base + 1))..$((base + replicas))"

# ---------------------------------------------------------------- the job

# The monitor: polls the job through the load balancer, SIGKILLs the
# replica that accepted it (scripts/stack kill) once some items are done,
# then waits until the job is over; figures to kill.json, the last job JSON
# to job.json. Started before the POST, so that it is polling (not still
# starting) when the first items finish; it learns the job and the replica
# from job.id and victim.
cat >"$work/monitor.py" <<'EOF'
import json, os, subprocess, sys, time, urllib.request
lb, work, threshold, stack = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def wait_file(name, secs):
    deadline = time.time() + secs
    while not os.path.exists(os.path.join(work, name)):
        if time.time() > deadline:
            sys.exit(f"monitor: no {name} within {secs} s")
        time.sleep(0.01)
    return open(os.path.join(work, name)).read().strip()
job = wait_file("job.id", 90)
victim = wait_file("victim", 5)
# No request of ours between the streams' requests while they are being
# placed (nginx takes replicas in turn).
wait_file("streams.ready", 30)
def get():
    try:
        with urllib.request.urlopen(f"{lb}/v1/jobs/{job}", timeout=5) as r:
            body = r.read()
    except Exception:   # e.g. a request that met the dying replica: ask again
        return None
    open(os.path.join(work, "job.json"), "wb").write(body)
    return json.loads(body)
stats = {}
deadline = time.time() + 60
while True:
    if time.time() > deadline:
        sys.exit(f"monitor: fewer than {threshold} items done within 60 s")
    d = get()
    if d and d["totals"]["done"] >= threshold:
        break
    time.sleep(0.02)
t = d["totals"]
if d["state"] != "running" or t["done"] >= t["total"]:
    sys.exit(f"monitor: the job was over ({t['done']}/{t['total']} done, state {d['state']}) before"
             " the kill: too fast to kill mid-job on this machine")
stats["done_at_kill"] = t["done"]
stats["t_kill"] = time.time()
r = subprocess.run([stack, "kill", victim], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"monitor: scripts/stack kill {victim} failed: {r.stdout}{r.stderr}")
deadline = time.time() + 90
while True:
    if time.time() > deadline:
        sys.exit(f"monitor: the job did not finish within 90 s of the kill: {t}")
    d = get()
    if d:
        t = d["totals"]
        if d["state"] != "running":
            break
    time.sleep(0.1)
stats["t_done"] = time.time()
json.dump(stats, open(os.path.join(work, "kill.json"), "w"))
EOF
"$python" "$work/monitor.py" "$LB" "$work" "$kill_after_items" "$stack" 2>"$work/monitor.err" &
monitor_pid=$!

form=()
for f in "$work"/images/*.jpg; do form+=(-F "image=@$f"); done
t_post="$(now)"
code="$(curl -sS -D "$work/post.head" -o "$work/post.json" -w '%{http_code}' --max-time 60 \
          "${form[@]}" "$LB/v1/jobs?ops=$ops")"
[ "$code" = 202 ] || fail "POST /v1/jobs ($items images) answered $code: $(head -c 500 "$work/post.json")"
t_accepted="$(now)"
id="$(json "$work/post.json" 'd["id"]')"
accepted_by="$(header "$work/post.head" X-Pixpool-Replica)"
[[ "$accepted_by" =~ ^r[1-9]$ ]] || fail "POST /v1/jobs: X-Pixpool-Replica is '$accepted_by', not one of r1..r$replicas"
echo "$accepted_by" >"$work/victim.new" && mv "$work/victim.new" "$work/victim"
echo "$id" >"$work/job.id.new" && mv "$work/job.id.new" "$work/job.id"
step "job $id ($items items) accepted by $accepted_by in $(secs "$t_post" "$t_accepted") s (upload included)"

# Two event streams through the load balancer: `main` from a replica that
# survives, `cut` from the replica that accepted the job, which the kill cuts
# off; a client then reconnects with Last-Event-ID (below). nginx takes the
# replicas in turn, so both come within a few tries. -i puts the headers in
# the file, -N writes every event at once.
main_by=""
for ((try = 1; try <= 3 * replicas; try++)); do
  [ -n "$main_pid" ] && [ -n "$cut_pid" ] && break
  f="$work/stream.$try"
  curl -sS -N -i --max-time 120 -o "$f" "$LB/v1/jobs/$id/events" 2>"$f.err" &
  pid=$!
  deadline=$((SECONDS + 10))
  until grep -qi '^X-Pixpool-Replica:' "$f" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || break
    [ "$SECONDS" -lt "$deadline" ] || fail "the event stream of $id sent no headers within 10 s"
    sleep 0.02
  done
  by="$(header "$f" X-Pixpool-Replica)"
  [ -n "$by" ] || fail "the event stream of $id has no X-Pixpool-Replica: $(head -c 500 "$f"; cat "$f.err")"
  if [ "$by" = "$accepted_by" ] && [ -z "$cut_pid" ]; then
    cut_pid=$pid cut_file="$f"
  elif [ "$by" != "$accepted_by" ] && [ -z "$main_pid" ]; then
    main_pid=$pid main_file="$f" main_by="$by"
  else
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
done
[ -n "$main_pid" ] && [ -n "$cut_pid" ] \
  || fail "$((3 * replicas)) event streams of $id did not reach both $accepted_by and another replica"
touch "$work/streams.ready"
step "event streams of $id through the lb: from $main_by, and from $accepted_by (to be killed)"

# The monitor kills the accepting replica mid-job and waits for the job's end.
wait "$monitor_pid" || { monitor_pid=""; fail "$(cat "$work/monitor.err")"; }
monitor_pid=""
t_kill="$(json "$work/kill.json" 'd["t_kill"]')"
t_done="$(json "$work/kill.json" 'd["t_done"]')"
done_at_kill="$(json "$work/kill.json" 'd["done_at_kill"]')"
step "killed $accepted_by (SIGKILL) with $done_at_kill/$items items done; the job ended $(secs "$t_kill" "$t_done") s later"

# The job: done, every item succeeded, with a result and a replica.
[ "$(json "$work/job.json" 'd["state"]')" = "done" ] || fail "job $id ended '$(json "$work/job.json" 'd["state"]')', not done"
[ "$(json "$work/job.json" '(d["totals"]["total"], d["totals"]["done"], d["totals"]["succeeded"], d["totals"]["failed"])')" \
  = "($items, $items, $items, 0)" ] || fail "job $id totals: $(json "$work/job.json" 'd["totals"]')"
bad="$(json "$work/job.json" '[i["index"] for i in d["items"] if i.get("state") != "succeeded" or not i.get("id") or not i.get("replica")]')"
[ "$bad" = "[]" ] || fail "items not succeeded, or without a result id or a replica: $bad"
[ "$(json "$work/job.json" 'sorted(i["index"] for i in d["items"]) == list(range('"$items"'))')" = True ] \
  || fail "the job's items are not indexes 0..$((items - 1))"
per_replica="$(json "$work/job.json" '", ".join(f"{k} {v}" for k, v in sorted(__import__("collections").Counter(i["replica"] for i in d["items"]).items()))')"
n_replicas="$(json "$work/job.json" 'len(set(i["replica"] for i in d["items"]))')"
[ "$n_replicas" -ge 2 ] || fail "only one replica processed items: $per_replica"
step "job done: $items/$items succeeded; items per replica: $per_replica"

# sse_check FILE...: the item events of the streams in FILEs (in order;
# only complete events count: a stream cut by the kill may end in the middle
# of one) name every index exactly once, and the last stream ends with done.
# Prints the id of the last complete item event.
sse_check() {
  "$python" - "$items" "$@" <<'EOF'
import collections, json, sys
n, files = int(sys.argv[1]), sys.argv[2:]
seen, last_id, done = collections.Counter(), "", False
for f in files:
    text = open(f, encoding="utf-8", errors="replace").read().replace("\r", "")
    # Events end with a blank line; whatever follows the last one is cut off.
    for block in text.split("\n\n")[:-1]:
        fields = {}
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            fields.setdefault(key, value)
        if fields.get("event") == "item":
            seen[json.loads(fields["data"])["index"]] += 1
            last_id = fields.get("id", last_id)
        elif fields.get("event") == "done" and f == files[-1]:
            done = True
missing = [i for i in range(n) if seen[i] == 0]
twice = {i: c for i, c in seen.items() if c != 1}
if missing or twice or len(seen) != n or not done:
    sys.exit(f"missing {missing}, more than once {twice}, {len(seen)} indexes, done event: {done}")
print(last_id)
EOF
}

# The main stream ends with `done` and names every index exactly once.
deadline=$((SECONDS + 30))
while kill -0 "$main_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the event stream of $id from $main_by did not end within 30 s of the job"
  sleep 0.1
done
wait "$main_pid" || fail "the event stream of $id from $main_by failed: $(cat "$main_file.err")"
main_pid=""
sse_check "$main_file" >/dev/null || fail "the event stream from $main_by: $(tail -c 600 "$main_file")"
step "event stream via $main_by: $items item events, each index once, then done"

# The stream from the killed replica was cut off; resuming it through the
# load balancer with the last event id it got (as EventSource does) gives
# the rest: every index exactly once over both parts, then done.
deadline=$((SECONDS + 10))
while kill -0 "$cut_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the event stream from $accepted_by still runs 10 s after the job, though $accepted_by was killed"
  sleep 0.1
done
wait "$cut_pid" 2>/dev/null || true
cut_pid=""
! grep -q '^event: done' "$cut_file" || fail "the event stream from $accepted_by ended with done, though $accepted_by was killed"
cut_items="$(grep -c '^event: item' "$cut_file" || true)"
last_id="$("$python" - "$cut_file" <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read().replace("\r", "")
last = ""
for block in text.split("\n\n")[:-1]:
    lines = block.split("\n")
    if "event: item" in lines:
        last = next((l[4:] for l in lines if l.startswith("id: ")), last)
print(last)
EOF
)"
resume=()
[ -n "$last_id" ] && resume=(-H "Last-Event-ID: $last_id")
curl -sS -N -i --max-time 60 ${resume[@]+"${resume[@]}"} -o "$work/resumed.txt" "$LB/v1/jobs/$id/events" \
  || fail "resuming the event stream of $id after $last_id failed"
resumed_by="$(header "$work/resumed.txt" X-Pixpool-Replica)"
sse_check "$cut_file" "$work/resumed.txt" >/dev/null \
  || fail "the cut stream ($cut_items item events) resumed after '$last_id' via $resumed_by: $(tail -c 600 "$work/resumed.txt")"
step "event stream via $accepted_by: cut by the kill after $cut_items item events, resumed via $resumed_by with Last-Event-ID: each index once, then done"

# Every result through the load balancer: 200, a JPEG.
t_res="$(now)"
res_bytes=0
while read -r rid; do
  read -r code type size < <(curl -sS -o "$work/result.jpg" -w '%{http_code} %{content_type} %{size_download}\n' \
                               --max-time 20 "$LB/v1/results/$rid")
  [ "$code" = 200 ] || fail "GET /v1/results/$rid via the lb: $code"
  [[ "$type" == image/jpeg* ]] || fail "result $rid has Content-Type '$type'"
  [ "$(head -c 2 "$work/result.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8 ] || fail "result $rid is not a JPEG"
  res_bytes=$((res_bytes + size))
done < <(json "$work/job.json" '"\n".join(i["id"] for i in d["items"])')
step "$items results fetched through the lb ($((res_bytes / 1024)) KiB) in $(secs "$t_res" "$(now)") s"

# ---------------------------------------------------------------- the killed replica rejoins

timeout 90 "$stack" start "$accepted_by" >"$work/start-replica.log" 2>&1 \
  || { cat "$work/start-replica.log"; fail "scripts/stack start $accepted_by failed"; }
step "$accepted_by started again: $(tail -n 1 "$work/start-replica.log")"

# ---------------------------------------------------------------- Redis outage

# replica_store URL: the store state in the replica's /readyz ("up", "down").
replica_store() {
  curl -s --max-time 3 "$1/readyz" 2>/dev/null \
    | "$python" -c 'import json,sys; print(json.load(sys.stdin)["store"]["state"])' 2>/dev/null || echo "?"
}
post_small_job() {  # post_small_job OUT_JSON: prints the HTTP status
  curl -sS -o "$1" -w '%{http_code}' --max-time 15 -F "image=@$small1" -F "image=@$small2" "$LB/v1/jobs" || echo 000
}

timeout 30 "$stack" kill redis >"$work/kill-redis.log" 2>&1 || { cat "$work/kill-redis.log"; fail "scripts/stack kill redis failed"; }
t_redis_down="$(now)"
# Job routes: 503 store_unavailable, from every replica (nginx takes them in turn).
deadline=$((SECONDS + 20))
while :; do
  code="$(post_small_job "$work/outage.json")"
  if [ "$code" = 503 ] && [ "$(json "$work/outage.json" 'd["error"]["code"]' 2>/dev/null)" = store_unavailable ]; then break; fi
  [ "$SECONDS" -lt "$deadline" ] || fail "POST /v1/jobs with Redis down: $code $(head -c 300 "$work/outage.json"), not 503 store_unavailable within 20 s"
  sleep 0.2
done
t_first_503="$(now)"
for ((i = 1; i <= replicas; i++)); do
  code="$(post_small_job "$work/outage.json")"
  [ "$code" = 503 ] && [ "$(json "$work/outage.json" 'd["error"]["code"]')" = store_unavailable ] \
    || fail "POST /v1/jobs #$i with Redis down: $code $(head -c 300 "$work/outage.json")"
done
code="$(curl -sS -o "$work/outage.json" -w '%{http_code}' --max-time 15 "$LB/v1/jobs/$id")" || true
[ "$code" = 503 ] && [ "$(json "$work/outage.json" 'd["error"]["code"]')" = store_unavailable ] \
  || fail "GET /v1/jobs/$id with Redis down: $code $(head -c 300 "$work/outage.json")"
# Synchronous processing never needs the store: several requests, so that
# every replica answers some.
ok=0
for ((i = 1; i <= 2 * replicas; i++)); do
  img="$small1"; [ $((i % 2)) = 0 ] && img="$small2"
  read -r code type < <(curl -sS -o "$work/process.out" -w '%{http_code} %{content_type}\n' --max-time 30 \
                          --data-binary "@$img" "$LB/v1/process" || echo "000 -")
  [ "$code" = 200 ] && [[ "$type" == image/jpeg* ]] \
    || fail "POST /v1/process #$i with Redis down: $code $type $(head -c 300 "$work/process.out")"
  ok=$((ok + 1))
done
# Every replica says so in /readyz, and stays ready.
for ((k = 1; k <= replicas; k++)); do
  url="http://127.0.0.1:$((base + k))"
  deadline=$((SECONDS + 20))
  until [ "$(replica_store "$url")" = down ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "r$k /readyz: store not 'down' within 20 s of Redis's death: $(curl -s --max-time 3 "$url/readyz")"
    sleep 0.2
  done
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$url/readyz" || true)"
  [ "$code" = 200 ] || fail "r$k /readyz answers $code while Redis is down (a backend can still serve)"
done
step "Redis down: POST /v1/jobs 503 store_unavailable after $(secs "$t_redis_down" "$t_first_503") s, /v1/process $ok/$ok 200, every /readyz 200 with store down"

# Redis again, same port and append-only file: the replicas reconnect.
timeout 60 "$stack" start redis >"$work/start-redis.log" 2>&1 || { cat "$work/start-redis.log"; fail "scripts/stack start redis failed"; }
t_redis_up="$(now)"
for ((k = 1; k <= replicas; k++)); do
  url="http://127.0.0.1:$((base + k))"
  deadline=$((SECONDS + 30))
  until [ "$(replica_store "$url")" = up ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "r$k did not reconnect to Redis within 30 s: $(curl -s --max-time 3 "$url/readyz")"
    sleep 0.2
  done
done
t_reconnected="$(now)"
# The first job survived in the append-only file.
code="$(curl -sS -o "$work/job-again.json" -w '%{http_code}' --max-time 15 "$LB/v1/jobs/$id")"
[ "$code" = 200 ] && [ "$(json "$work/job-again.json" 'd["state"] + " " + str(d["totals"]["succeeded"])')" = "done $items" ] \
  || fail "GET /v1/jobs/$id after Redis's restart: $code $(head -c 300 "$work/job-again.json")"
# A new job is accepted and finishes.
t_job2="$(now)"
code="$(post_small_job "$work/post2.json")"
[ "$code" = 202 ] || fail "POST /v1/jobs after Redis's restart: $code $(head -c 300 "$work/post2.json")"
id2="$(json "$work/post2.json" 'd["id"]')"
deadline=$((SECONDS + 30))
while :; do
  code="$(curl -sS -o "$work/job.json" -w '%{http_code}' --max-time 10 "$LB/v1/jobs/$id2" || true)"
  [ "$code" = 200 ] && [ "$(json "$work/job.json" 'd["state"]')" != running ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "job $id2 (after Redis's restart) not over within 30 s: $code"
  sleep 0.1
done
[ "$(json "$work/job.json" 'd["state"] + " " + str(d["totals"]["succeeded"])')" = "done 2" ] \
  || fail "job $id2 after Redis's restart: $(json "$work/job.json" 'd["totals"]')"
t_job2_done="$(now)"
step "Redis back: every replica reconnected in $(secs "$t_redis_up" "$t_reconnected") s, job $id still there, new job $id2 done in $(secs "$t_job2" "$t_job2_done") s"

# ---------------------------------------------------------------- summary

elapsed="$(secs "$t_accepted" "$t_done")"
echo "test_cluster: summary"
echo "  job:          $items x 1920x1080 JPEG ($image_mb MB), ops=$ops, $replicas replicas (--workers 1 --tbb-threads 1)"
echo "  throughput:   $(awk -v n="$done_at_kill" -v t="$(secs "$t_accepted" "$t_kill")" 'BEGIN { printf "%.1f", n / t }') items/s from the 202 to the kill;" \
     "$items items in $elapsed s from the 202 = $(awk -v n="$items" -v t="$elapsed" 'BEGIN { printf "%.1f", n / t }') items/s, the reclaim wait included"
echo "  kill:         $accepted_by (accepted the job) SIGKILLed with $done_at_kill/$items done; job finished $(secs "$t_kill" "$t_done") s after the kill (--reclaim-after 3s)"
echo "  per replica:  $per_replica"
echo "  events:       via $main_by all $items, each index once, then done; via $accepted_by cut after $cut_items, resumed via $resumed_by with Last-Event-ID, nothing lost or repeated"
echo "  redis outage: first 503 store_unavailable $(secs "$t_redis_down" "$t_first_503") s after the kill, /v1/process $ok/$ok 200; replicas reconnected $(secs "$t_redis_up" "$t_reconnected") s after the restart; new job done in $(secs "$t_job2" "$t_job2_done") s"

# down leaves nothing: no live process in the groups the stack started (each
# process is the leader of its own; a replica's zygote and workers, nginx's
# workers belong to them).
groups=" "
for f in "$PIXPOOL_STACK_DIR"/pids/*.pid; do read -r pid _ <"$f"; groups+="$pid "; done
timeout 90 "$stack" down >"$work/down.log" 2>&1 || { cat "$work/down.log"; fail "scripts/stack down failed"; }
left="$(ps -e -o pid=,pgid=,stat=,comm= | awk -v groups="$groups" \
          'index(groups, " " $2 " ") && $3 !~ /^Z/ { printf "%s(%s) ", $1, $4 }')"
[ -z "$left" ] || fail "processes of the stack left after down: $left"
echo "test_cluster: OK"
