#!/usr/bin/env bash
# End-to-end test of tools/pixpool-batch against a real pixpool server.
# Usage: tests/tools/test_pixpool_batch.sh PIXPOOL_BINARY REPO_ROOT
# Environment: PYTHON (default /usr/bin/python3, else python3 from PATH).
# Prints "test_pixpool_batch: OK" and exits 0 when every check passes.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PIXPOOL_BINARY REPO_ROOT" >&2
  exit 2
fi
pixpool=$(realpath "$1")
root=$(realpath "$2")
batch="$root/tools/pixpool-batch"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
[[ -x "$pixpool" ]] || { echo "test_pixpool_batch: no pixpool binary at $pixpool" >&2; exit 1; }
[[ -f "$batch" ]] || { echo "test_pixpool_batch: no $batch" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_pixpool_batch.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/pixpool_server.sh"
cleanup() {
  stop_pixpool
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "test_pixpool_batch: FAIL: $*" >&2
  if [[ -n "${last_log:-}" && -f "$last_log" ]]; then
    echo "--- output of the last pixpool-batch run:" >&2
    cat "$last_log" >&2
  fi
  if [[ -f "$tmp/server.log" ]]; then
    echo "--- server log (tail):" >&2
    tail -n 20 "$tmp/server.log" >&2
  fi
  exit 1
}

# --- server on a free port (test ops on for the Ctrl-C check) ---------------
# (--max-batch-items 7: a larger job is refused with 400, checked below.)
start_pixpool "$pixpool" "$tmp/server.log" --workers 2 --enable-test-ops on --shutdown-timeout 1 \
  --max-batch-items 7
url="http://127.0.0.1:$port"

# run_batch NAME ARGS...: runs pixpool-batch (bounded), output in $tmp/NAME.log,
# exit status in $rc.
run_batch() {
  local name=$1
  shift
  last_log="$tmp/$name.log"
  rc=0
  timeout 30 "$PYTHON" "$batch" --url "$url" "$@" >"$last_log" 2>&1 || rc=$?
}

is_jpeg() {
  [[ -s "$1" ]] && [[ "$(head -c 3 "$1" | od -An -tx1 | tr -d ' \n')" == "ffd8ff" ]]
}

# --- inputs -----------------------------------------------------------------
mkdir "$tmp/mixed" "$tmp/good"
good_names=()
for f in "$root"/tests/data/*.jpg; do
  cp "$f" "$tmp/mixed/"
  cp "$f" "$tmp/good/"
  good_names+=("$(basename "$f")")
done
[[ ${#good_names[@]} -ge 1 ]] || fail "no tests/data/*.jpg"
echo "this is not an image" >"$tmp/mixed/zz-not-an-image.txt"  # sorts last
echo "hidden" >"$tmp/mixed/.hidden.jpg"                           # skipped
mkdir "$tmp/mixed/subfolder"                                      # skipped
n_good=${#good_names[@]}

# --- --help -----------------------------------------------------------------
run_batch help --help
[[ $rc -eq 0 ]] || fail "--help exited $rc"
grep -q "examples:" "$last_log" || fail "--help shows no examples"

# --- folder with one bad file: exit 1, good outputs saved, failure shown ------
run_batch mixed --ops blur:3,contour --out "$tmp/out-mixed" "$tmp/mixed"
[[ $rc -eq 1 ]] || fail "mixed folder: exit status $rc, expected 1"
# The last line names the counts and the output folder.
summary="$n_good of $((n_good + 1)) images succeeded, 1 failed in "
tail -n 1 "$last_log" | grep -qF "pixpool-batch: $summary" ||
  fail "mixed folder: last line does not say '$summary'"
tail -n 1 "$last_log" | grep -qF -- "-> $tmp/out-mixed/" ||
  fail "mixed folder: last line does not name the output folder"
grep -q "zz-not-an-image.txt: unsupported_image" "$last_log" ||
  fail "mixed folder: the failed item is not reported with its error code"
i=0
for name in "${good_names[@]}"; do
  i=$((i + 1))
  out=$(printf '%s/out-mixed/%04d-%s.jpg' "$tmp" "$i" "${name%.*}")
  is_jpeg "$out" || fail "mixed folder: $out missing or not a JPEG"
done
count=$(find "$tmp/out-mixed" -type f | wc -l)
[[ $count -eq $n_good ]] || fail "mixed folder: $count files in --out, expected $n_good"

# --- only good files: exit 0 ------------------------------------------------
run_batch good --out "$tmp/out-good" "$tmp/good"
[[ $rc -eq 0 ]] || fail "good folder: exit status $rc, expected 0"
for f in "$tmp"/out-good/*; do
  is_jpeg "$f" || fail "good folder: $f is not a JPEG"
done
count=$(find "$tmp/out-good" -type f -name '*.jpg' | wc -l)
[[ $count -eq $n_good ]] || fail "good folder: $count outputs, expected $n_good"

# --- FILES... with another output format ------------------------------------
run_batch files --format png --out "$tmp/out-files" "$tmp/good/${good_names[0]}"
[[ $rc -eq 0 ]] || fail "files: exit status $rc, expected 0"
out=$(printf '%s/out-files/0001-%s.png' "$tmp" "${good_names[0]%.*}")
[[ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' \n')" == "89504e47" ]] ||
  fail "files: $out missing or not a PNG"

# --- --url-list with a URL the SSRF guard refuses: exit 1 -------------------
printf '# comment\n\nhttp://127.0.0.1:1/x.jpg\r\n' >"$tmp/urls.txt"
run_batch urls --out "$tmp/out-urls" --url-list "$tmp/urls.txt"
[[ $rc -eq 1 ]] || fail "url list: exit status $rc, expected 1"
grep -q "source_forbidden" "$last_log" || fail "url list: no source_forbidden failure reported"
tail -n 1 "$last_log" | grep -qF "0 of 1 image succeeded, 1 failed" ||
  fail "url list: last line does not say 0 of 1 image succeeded, 1 failed"
tail -n 1 "$last_log" | grep -qF "nothing saved" || fail "url list: last line does not say nothing saved"
[[ ! -e "$tmp/out-urls" ]] || fail "url list: --out created although nothing succeeded"

# --- bad --ops: exit 2 with the server's message -----------------------------
run_batch badops --ops no-such-op --out "$tmp/out-badops" "$tmp/good"
[[ $rc -eq 2 ]] || fail "bad ops: exit status $rc, expected 2"
grep -q "invalid_ops" "$last_log" || fail "bad ops: the server's error code is not shown"
grep -q "no-such-op" "$last_log" || fail "bad ops: the server's message is not shown"
[[ ! -e "$tmp/out-badops" ]] || fail "bad ops: --out created for a job the server refused"

# --- a job over --max-batch-items: refused (400), no --out folder left --------
mkdir "$tmp/many"
for i in 1 2 3 4 5 6 7 8; do cp "$tmp/good/${good_names[0]}" "$tmp/many/img$i.jpg"; done
run_batch toomany --out "$tmp/out-many/nested" "$tmp/many"
[[ $rc -eq 2 ]] || fail "too many items: exit status $rc, expected 2"
grep -q "server answered 400 invalid_parameter: too many items" "$last_log" ||
  fail "too many items: the server's refusal is not shown"
[[ ! -e "$tmp/out-many" ]] || fail "too many items: --out (or its parent) created for a refused job"
# An --out that existed before is left as it was (with what it held).
mkdir "$tmp/out-existing"
touch "$tmp/out-existing/keep.txt"
run_batch toomany-existing --out "$tmp/out-existing" "$tmp/many"
[[ $rc -eq 2 ]] || fail "too many items (existing --out): exit status $rc, expected 2"
[[ -f "$tmp/out-existing/keep.txt" ]] || fail "too many items: the existing --out was changed"
# An --out that cannot be created: a usage error before anything is sent.
run_batch badout --out "$tmp/good/${good_names[0]}/sub" "$tmp/good"
[[ $rc -eq 2 ]] || fail "bad --out: exit status $rc, expected 2"
grep -q "cannot create output folder" "$last_log" || fail "bad --out: not reported"

# --- progress bar (stderr on a terminal): its rate is the summary's -----------
# script(1) gives the client a pseudo-terminal; the last bar stays on screen.
mkdir "$tmp/three"
for i in 1 2 3; do cp "$tmp/good/${good_names[0]}" "$tmp/three/img$i.jpg"; done
last_log="$tmp/bar.log"
rc=0
COLUMNS=120 timeout 30 script -qefc "$(printf '%q ' "$PYTHON" "$batch" --url "$url" \
  --ops sleep:150 --out "$tmp/out-bar" "$tmp/three")" /dev/null >"$last_log" 2>&1 || rc=$?
[[ $rc -eq 0 ]] || fail "progress bar: exit status $rc, expected 0"
"$PYTHON" - "$last_log" <<'PY' || fail "progress bar: its rate and the summary's disagree"
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
bars = re.findall(r"\] 3/3  ([0-9.]+) img/s", text)
summary = re.search(r"3 of 3 images succeeded, 0 failed in ([0-9.]+) s \(([0-9.]+) img/s", text)
if not bars or not summary:
    sys.exit(f"no final bar or no summary in: {text!r}")
elapsed, rate = float(summary.group(1)), float(summary.group(2))
print(f"final bar {bars[-1]} img/s, summary {rate} img/s over {elapsed} s")
if bars[-1] != summary.group(2):
    sys.exit(f"bar says {bars[-1]} img/s, summary says {summary.group(2)} img/s")
# Both are succeeded images per second of the job's wall time.
# (elapsed is rounded to 0.01 s and the rate to 0.1 img/s.)
if not 3 / (elapsed + 0.005) - 0.05 <= rate <= 3 / max(elapsed - 0.005, 0.001) + 0.05:
    sys.exit(f"{rate} img/s is not 3 images / {elapsed} s")
if elapsed < 0.15:
    sys.exit(f"{elapsed} s is shorter than one item (sleep:150)")
PY

# --- usage and connection errors: exit 2 ------------------------------------
run_batch usage --out "$tmp/out-usage"
[[ $rc -eq 2 ]] || fail "no inputs: exit status $rc, expected 2"
last_log="$tmp/refused.log"
rc=0
timeout 30 "$PYTHON" "$batch" --url http://127.0.0.1:1 --out "$tmp/out-refused" \
  "$tmp/good" >"$last_log" 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "connection refused: exit status $rc, expected 2"
grep -q "connection refused" "$last_log" || fail "connection refused: not reported"
[[ ! -e "$tmp/out-refused" ]] || fail "connection refused: --out created"
[[ ! -e "$tmp/out-usage" ]] || fail "no inputs: --out created"

# --- Ctrl-C: cancels the job on the server and exits 130 --------------------
mkdir "$tmp/slow"
for i in 1 2 3 4 5 6; do cp "$tmp/good/${good_names[0]}" "$tmp/slow/img$i.jpg"; done
last_log="$tmp/interrupt.log"
"$PYTHON" "$batch" --url "$url" --ops sleep:700 --out "$tmp/out-slow" "$tmp/slow" \
  >"$last_log" 2>&1 &
client_pid=$!
for _ in $(seq 1 100); do  # until the first item is done (up to 10 s)
  grep -q " ok " "$last_log" && break
  kill -0 "$client_pid" 2>/dev/null || break
  sleep 0.1
done
kill -INT "$client_pid" 2>/dev/null || true
rc=0
for _ in $(seq 1 150); do  # the client must end promptly (up to 15 s)
  kill -0 "$client_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$client_pid" 2>/dev/null; then
  kill -KILL "$client_pid" 2>/dev/null || true
  wait "$client_pid" 2>/dev/null || true
  fail "Ctrl-C: pixpool-batch did not exit"
fi
wait "$client_pid" || rc=$?
[[ $rc -eq 130 ]] || fail "Ctrl-C: exit status $rc, expected 130"
grep -q "interrupted: cancelled job" "$last_log" || fail "Ctrl-C: the job was not cancelled"

last_log=""
echo "test_pixpool_batch: OK"
