#!/usr/bin/env bash
# The soak (scripts/soak), short: 2 minutes of mixed traffic on both backends
# (good, corrupt and hostile images, oversize bodies, url= to slow, dead and
# forbidden origins, batches, cancelled jobs, dropped SSE clients) while
# workers and the zygote are SIGKILLed at random. Fails when a request got
# no HTTP answer, an answer broke its expectation, a forbidden origin saw a
# connection, RSS did not plateau, or pixpool did not stop cleanly (see
# scripts/soak --help).
#
# Usage: tests/tools/test_soak.sh REPO_ROOT PIXPOOL_BINARY [MINUTES]
# Exits 77 (skip) when something the soak needs is missing.
set -uo pipefail

root="$(cd "${1:?usage: test_soak.sh REPO_ROOT PIXPOOL_BINARY}" && pwd)"
bin="${2:?usage: test_soak.sh REPO_ROOT PIXPOOL_BINARY}"
minutes="${3:-2}"

python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3 || true)"
if [ -z "$python" ]; then
  echo "test_soak: SKIP: python3 is not installed"
  exit 77
fi
if [ ! -x "$bin" ]; then
  echo "test_soak: SKIP: no pixpool binary at $bin"
  exit 77
fi
# The soak's clients, origin and trap bind 127.0.0.2/3/5 (all of 127/8 is lo).
if ! "$python" -c 'import socket; [socket.socket().bind((a, 0)) for a in ("127.0.0.2", "127.0.0.3", "127.0.0.5")]' 2>/dev/null; then
  echo "test_soak: SKIP: cannot bind 127.0.0.2/3/5"
  exit 77
fi

# The soak's own judge first: one that passes anything would make the run
# below meaningless.
"$python" "$root/scripts/soak" --self-test || exit 1

work="$(mktemp -d /tmp/pixpool-test-soak.XXXXXX)"
trap 'rm -rf "$work"' EXIT

timeout 280 "$python" "$root/scripts/soak" --minutes "$minutes" --bin "$bin" --out "$work"
rc=$?

# The run must have exercised what it claims: both backends, every kind of
# request, and kills of workers and of the zygote.
"$python" - "$work/summary.json" "$work/requests.csv" "$root/scripts/soak" <<'PY' || rc=1
import csv, json, sys
s = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
import importlib.machinery, importlib.util
loader = importlib.machinery.SourceFileLoader("soak", sys.argv[3])
spec = importlib.util.spec_from_loader("soak", loader)
soak = importlib.util.module_from_spec(spec)
loader.exec_module(soak)
bad = []
kinds = {r["kind"] for r in rows}
missing = sorted(set(soak.KINDS) - kinds)
if missing:
    bad.append("kinds never sent: " + ", ".join(missing))
backends = {r["backend"] for r in rows}
if backends != {"tbb", "process"}:
    bad.append(f"backends used: {sorted(backends)}")
if s["kills"]["worker"] == 0 or s["kills"]["zygote"] == 0:
    bad.append(f"kills: {s['kills']}")
for what in bad:
    print("test_soak: FAIL: " + what)
sys.exit(1 if bad else 0)
PY

if [ "$rc" -eq 0 ]; then echo "test_soak: OK"; else echo "test_soak: FAIL (exit $rc)"; fi
exit "$rc"
