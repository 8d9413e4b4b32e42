#!/usr/bin/env bash
# The attack suite (scripts/attack), short: every attack for 2 s against
# pixpool directly and through the nginx front (scripts/stack, one replica),
# while a steady client posts images and probes /healthz. Fails when any row
# of the table fails its criteria (see scripts/attack --help), or when the
# suite did not run every attack on both targets.
#
# Usage: tests/tools/test_attack.sh REPO_ROOT PIXPOOL_BINARY [SECONDS_PER_ATTACK]
# Exits 77 (skip) when nginx is not installed (scripts/setup test installs it).
set -uo pipefail

root="$(cd "${1:?usage: test_attack.sh REPO_ROOT PIXPOOL_BINARY}" && pwd)"
bin="${2:?usage: test_attack.sh REPO_ROOT PIXPOOL_BINARY}"
seconds="${3:-2}"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "test_attack: SKIP: nginx is not installed (scripts/setup test installs it)"
  exit 77
fi
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"

# The suite's own parser and criteria first: a judge that passes anything
# would make the run below meaningless.
"$python" "$root/scripts/attack" --self-test || exit 1

work="$(mktemp -d /tmp/pixpool-test-attack.XXXXXX)"
trap 'rm -rf "$work"' EXIT

timeout 600 "$python" "$root/scripts/attack" --target both --duration "${seconds}s" \
  --bin "$bin" --json "$work/rows.json"
rc=$?

# Every attack ran on both targets: a run that skipped rows must not pass.
"$python" - "$work/rows.json" "$root/scripts/attack" <<'PY' || rc=1
import json, subprocess, sys
rows = json.load(open(sys.argv[1]))
names = subprocess.run([sys.executable, sys.argv[2], "--list"], capture_output=True,
                       text=True, check=True).stdout.split("\n")
names = [n.split()[0] for n in names if n.strip()]
ran = {(r["target"], r["attack"]) for r in rows}
missing = [f"{t}/{n}" for t in ("direct", "front") for n in names if (t, n) not in ran]
if missing:
    print("test_attack: FAIL: rows missing: " + ", ".join(missing))
    sys.exit(1)
PY

if [ "$rc" -eq 0 ]; then echo "test_attack: OK"; else echo "test_attack: FAIL (exit $rc)"; fi
exit "$rc"
