#!/bin/sh
# A quick curl-only smoke load for the pixpool stack (the real load generator
# is `pixpool bench`, which the compose `loadgen` service runs):
# CONCURRENCY shell loops send REQUESTS requests in all through the load
# balancer, cycling through the three kinds of work:
#   1. POST /v1/process with an uploaded image
#   2. GET  /v1/process?url=ORIGIN/image (a download from the image origin)
#   3. POST /v1/jobs with two images, then follow its event stream to the end
#      (through the load balancer, so usually on another replica than the
#      one that accepted the job: with a Redis store any replica serves it)
# and print how many answered 200 and the elapsed time. POSIX sh + curl.
#
# The defaults (http://lb:8080, http://origin, /data) fit a container on the
# compose network. Natively, against `scripts/stack up`:
#   LB_URL=http://127.0.0.1:8080 ORIGIN_URL=http://127.0.0.1:18100 \
#     DATA_DIR=tests/data deploy/loadgen.sh
set -eu

lb="${LB_URL:-http://lb:8080}"
origin="${ORIGIN_URL:-http://origin}"
data="${DATA_DIR:-/data}"
requests="${REQUESTS:-200}"
concurrency="${CONCURRENCY:-4}"
img1="$data/fruits_320x240.jpg"
img2="$data/baboon_320x240.jpg"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

one() {  # one REQUEST_NUMBER: prints the final HTTP status
  case $(($1 % 3)) in
    0) curl -s -o /dev/null -w '%{http_code}' --max-time 60 --data-binary "@$img1" "$lb/v1/process" ;;
    1) curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$lb/v1/process?url=$origin/$(basename "$img2")" ;;
    2) id="$(curl -s --max-time 60 -F "image=@$img1" -F "image=@$img2" "$lb/v1/jobs" |
             grep -o '"id":"[^"]*"' | head -n 1 | cut -d'"' -f4)"
       if [ -z "$id" ]; then echo 000; return; fi
       curl -s -N -o "$tmp/events.$1" -w '%{http_code}' --max-time 120 "$lb/v1/jobs/$id/events"
       grep -q '^event: done' "$tmp/events.$1" || echo " (no done event)"
       rm -f "$tmp/events.$1" ;;
  esac
}

loop() {  # loop WORKER: requests WORKER, WORKER+CONCURRENCY, ...
  i="$1" ok=0 bad=0
  while [ "$i" -lt "$requests" ]; do
    code="$(one "$i" || true)"
    if [ "$code" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "loadgen: request $i: $code" >&2; fi
    i=$((i + concurrency))
  done
  echo "$ok $bad" >"$tmp/worker.$1"
}

echo "loadgen: $requests requests, $concurrency at a time, against $lb (origin $origin)"
start="$(date +%s.%N)"
w=0
while [ "$w" -lt "$concurrency" ]; do
  loop "$w" &
  w=$((w + 1))
done
wait
end="$(date +%s.%N)"

ok=0 bad=0
for f in "$tmp"/worker.*; do
  read -r o b <"$f"
  ok=$((ok + o)) bad=$((bad + b))
done
elapsed="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')"
rate="$(awk -v n="$((ok + bad))" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')"
echo "loadgen: $ok ok, $bad failed in ${elapsed}s ($rate requests/s)"
[ "$bad" -eq 0 ]
