#!/usr/bin/env python3
"""Measures how fast the process pool heals: SIGKILLs the worker zygote of a
fresh pixpool (loopback, --workers 2) N times and reports the time from each
kill to /readyz showing the process backend ready at full size again (median,
max), and the zygote's own start cost (spawn + exec + setup, from the
server's "started in N ms" log lines).

usage: measure_zygote_healing.py PIXPOOL_BINARY [KILLS=20]
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def main():
    binary = sys.argv[1]
    kills = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        server = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--workers", "2"],
                                  stdout=log, stderr=log)
        try:
            port = wait_for_port(log.name)
            base = f"http://127.0.0.1:{port}"

            def ready():
                try:
                    body = json.load(urllib.request.urlopen(base + "/readyz", timeout=2))
                except Exception:
                    return False
                process = body["backends"]["process"]
                return process["state"] == "ready" and process["workers"] == 2

            def zygote():
                for task in os.listdir(f"/proc/{server.pid}/task"):
                    with open(f"/proc/{server.pid}/task/{task}/children") as f:
                        for child in f.read().split():
                            with open(f"/proc/{child}/comm") as comm:
                                if comm.read().strip() == "pixpool-zygote":
                                    return int(child)
                return -1

            wait(ready, 20)
            took = []
            for _ in range(kills):
                old = zygote()
                start = time.monotonic()
                os.kill(old, signal.SIGKILL)
                wait(lambda: ready() and zygote() not in (-1, old), 30)
                took.append((time.monotonic() - start) * 1000)
                time.sleep(0.2)  # let the pool settle between kills
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        starts = [int(m) for m in re.findall(r"started in (\d+) ms", open(log.name).read())]
    print(f"kills={kills} kill->ready ms: median={statistics.median(took):.0f} "
          f"max={max(took):.0f} min={min(took):.0f}")
    print(f"zygote start ms: median={statistics.median(starts):.0f} max={max(starts)} "
          f"min={min(starts)}")


def wait_for_port(path):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = re.search(r"listening on http://[^:]+:(\d+)", open(path).read())
        if m:
            return int(m.group(1))
        time.sleep(0.02)
    raise SystemExit("pixpool did not start: " + open(path).read())


def wait(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.002)


if __name__ == "__main__":
    main()
