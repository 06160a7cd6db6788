"""Our AWS endpoint against moto's server, in the same run, driven by the same
SigV4-signing Rust client (bench-aws). Writes its section of docs/benchmarks.md.

  python compare.py queue|objects BIN_DIR [ROUNDS] [SECONDS]
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

group, bindir = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
secs = float(sys.argv[4]) if len(sys.argv) > 4 else 5
root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCENARIOS = {
    # scenario: (connections, fill for ours, fill for moto)
    "queue": [("sqs-send", 8, 0, 0), ("sqs-send", 64, 0, 0), ("sqs-batch", 8, 0, 0), ("sqs-recv", 8, 60000, 300)],
    "objects": [("s3-put", 8, 0, 0), ("s3-put", 64, 0, 0), ("s3-get", 8, 0, 0), ("s3-big", 1, 0, 0)],
}[group]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"FAIL: {what} never listened on {port}")


tmp = tempfile.mkdtemp(prefix="pantstack-bench-")
procs = []
try:
    ours = subprocess.Popen([os.path.join(bindir, "bench-endpoint"), tmp, "0"], stdout=subprocess.PIPE, text=True)
    procs.append(ours)
    port, access, secret = ours.stdout.readline().split()
    ours_t = (f"http://127.0.0.1:{port}", access, secret, ours.pid)
    mport = free_port()
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(mport)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(moto)
    wait_port(mport, "moto_server")
    moto_t = (f"http://127.0.0.1:{mport}", "test", "test", moto.pid)

    def bench(t, scenario, conns, fill):
        url, access, secret, pid = t
        out = subprocess.run([os.path.join(bindir, "bench-aws"), scenario, url, access, secret, str(pid), str(secs), str(conns), str(fill)],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            sys.exit(f"FAIL: bench-aws {scenario} against {url}: {out.stderr}")
        return json.loads(out.stdout)

    results = {}
    for scenario, conns, fill_ours, fill_moto in SCENARIOS:
        rows = {"ours": [], "moto": []}
        for r in range(rounds):
            for name, t, fill in (("ours", ours_t, fill_ours), ("moto", moto_t, fill_moto)):
                res = bench(t, scenario, conns, fill)
                if res.get("errors"):
                    sys.exit(f"FAIL: {name} {scenario}: {res['errors']} errors")
                rows[name].append(res)
                print(f"{scenario:10} round {r + 1} {name:5} {json.dumps(res)}", flush=True)
        results[(scenario, conns)] = rows
finally:
    for p in procs:
        p.kill()
        p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def med(rows, f):
    return statistics.median(f(x) for x in rows)


def rate(x):
    return x["units"] / x["seconds"]


def cpu_per_unit_us(x):
    return x["server_cpu_s"] / max(x["units"], 1) * 1e6


lines = []
unit = {"sqs-send": "messages", "sqs-batch": "messages", "sqs-recv": "messages", "s3-put": "objects", "s3-get": "objects", "s3-big": "bytes"}
targets = {
    "sqs-send": ("server CPU per message ≤ 30 µs", lambda o: cpu_per_unit_us(o) <= 30),
    "sqs-batch": ("> 50,000 messages/s", lambda o: rate(o) > 50_000),
    "sqs-recv": ("server CPU per received+deleted message ≤ 30 µs", lambda o: cpu_per_unit_us(o) <= 30),
    "s3-put": ("server CPU per 4 KiB PUT ≤ 100 µs", lambda o: cpu_per_unit_us(o) <= 100),
    "s3-get": ("server CPU per 4 KiB GET ≤ 100 µs", lambda o: cpu_per_unit_us(o) <= 100),
    "s3-big": ("256 MiB GET > 1 GiB/s", lambda o: rate(o) > 1024 ** 3),
}
lines.append(f"Medians of {rounds} rounds × {secs:g} s per server, alternating; {time.strftime('%Y-%m-%d')}, this machine (2 cores shared by client and server).\n")
lines.append("| scenario | connections | ours: rate | ours: server CPU per unit | moto: rate | moto: server CPU per unit | rate ratio | CPU ratio | target | met |")
lines.append("|---|---|---|---|---|---|---|---|---|---|")
for (scenario, conns), rows in results.items():
    o, m = rows["ours"], rows["moto"]
    ro, rm = med(o, rate), med(m, rate)
    co, cm = med(o, cpu_per_unit_us), med(m, cpu_per_unit_us)
    u = unit[scenario]
    fmt_rate = (lambda v: f"{v / 1024 ** 2:,.0f} MiB/s") if u == "bytes" else (lambda v: f"{v:,.0f} {u}/s")
    fmt_cpu = (lambda v: f"{v * 1024 ** 2:,.0f} µs/MiB") if u == "bytes" else (lambda v: f"{v:,.1f} µs")
    text, ok = targets[scenario]
    met = sum(1 for x in o if ok(x))
    lines.append(f"| {scenario} | {conns} | {fmt_rate(ro)} | {fmt_cpu(co)} | {fmt_rate(rm)} | {fmt_cpu(cm)} | {ro / max(rm, 1e-9):,.1f}× | {co / max(cm, 1e-9):.3f}× | {text} | {met}/{len(o)} rounds |")
section = "\n".join(lines)
print(section)

path = os.path.join(root, "docs", "benchmarks.md")
doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
title = {"queue": "SQS: our endpoint vs moto (`bash bench/queue/run.sh`)", "objects": "S3: our endpoint vs moto (`bash bench/objects/run.sh`)"}[group]
block = f"<!-- bench:{group} -->\n## {title}\n\n{section}\n<!-- /bench:{group} -->"
pattern = re.compile(rf"<!-- bench:{group} -->.*?<!-- /bench:{group} -->", re.S)
doc = pattern.sub(block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(doc)
print(f"wrote {path}")
