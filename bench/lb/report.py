"""Writes the load-balancer benchmark's block of docs/benchmarks.md from the runs
bench/lb/run.sh recorded (one line a run: round, name, connections, requests/s, p50
in µs, CPU µs per request, non-2xx answers, socket errors, p99 in µs) and the
idle-connection memory bench/lb/idle.py measured.

Usage: report.py RESULTS.tsv ROUNDS SECONDS [MEMORY.tsv]
"""
import statistics, sys, datetime, platform, os
rows = [l.rstrip("\n").split("\t")[1:] for l in open(sys.argv[1])]
rounds = [l.rstrip("\n").split("\t")[0] for l in open(sys.argv[1])]
memory = [l.rstrip("\n").split("\t") for l in open(sys.argv[4])] if len(sys.argv) > 4 and os.path.exists(sys.argv[4]) else []
def med(name, conns, col):
    v = [float(r[col]) for r in rows if r[0] == name and r[1] == conns and len(r) > col]
    return statistics.median(v) if v else float("nan")
errors = sum(int(r[5]) for r in rows)
PEERS = ["nginx", "haproxy"]
rps = {n: med(n, "64", 2) for n in PEERS + ["pantstack"]}
cpu = {n: med(n, "64", 4) for n in PEERS + ["pantstack"]}
p50 = {n: med(n, "1", 3) for n in PEERS + ["pantstack"]}
p99 = {n: med(n, "64", 7) for n in PEERS + ["pantstack"]}
d_rps = med("direct", "64", 2)
ok = lambda b: "met" if b else "**not met**"
last_run = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
# Each round's own requests/s ratio against each peer, as a check on the ratio of the medians.
by_round = {}
for rnd, r in zip(rounds, rows):
    if r[1] == "64" and r[0] in PEERS + ["pantstack"]:
        by_round.setdefault(rnd, {})[r[0]] = float(r[2])
def round_ratios(peer):
    return [v["pantstack"] / v[peer] for _, v in sorted(by_round.items(), key=lambda kv: int(kv[0])) if "pantstack" in v and peer in v]
round_lines = "; ".join(f"against {peer}: " + ", ".join(f"{x:.2f}" for x in round_ratios(peer)) for peer in PEERS)
best_p99 = min(p99[n] for n in PEERS)
P = "pantstack"
table = [
    ("requests/s at 64 connections", rps, "{:,.0f}", None, None),
    ("proxy CPU per request (µs)", cpu, "{:.1f}", "≤ 0.45× each peer", all(cpu[P] <= 0.45 * cpu[n] for n in PEERS)),
    ("p50 latency at 1 connection (µs)", p50, "{:.0f}", "≤ 0.85× nginx", p50[P] <= 0.85 * p50["nginx"]),
    ("p99 latency at 64 connections (µs)", p99, "{:.0f}", "≤ 0.6× the better peer", p99[P] <= 0.6 * best_p99),
]
lines = []
for label, vals, fmt, target, met in table:
    ratios = " / ".join(f"{vals[P] / vals[n]:.2f}×" for n in PEERS)
    lines.append(f"| {label} | " + " | ".join(fmt.format(vals[n]) for n in PEERS + [P]) + f" | {ratios} | {target or '–'} | {ok(met) if target else ''} |")
direct_share = rps[P] / d_rps
lines.append(f"| share of the backends' direct requests/s | " + " | ".join(f"{rps[n] / d_rps:.2f}" for n in PEERS + [P]) + f" | – | ≥ 0.60 | {ok(direct_share >= 0.6)} |")
mem_lines = "".join(f"| {m[0]} | {int(m[1]):,} | {int(m[2]):,} | {int(m[3]):,} | {float(m[4]):.2f} |\n" for m in memory)
section = f"""## Load balancer: `bash bench/lb/run.sh`

Pantstack's local load balancer (`bench-lb`: the same `pantstack_lb::Balancer`
the local cloud runs — thread per core, its HTTP/1.1 fast path, request ids and trace
ids and `X-Forwarded-*` on every request, health checks; access log off, as the
peers') against nginx (`bench/lb/nginx.conf`, the tuned peer config; its port 8083,
which also injects an `X-Request-Id`) and haproxy (`bench/lb/haproxy.cfg`, the tuned
peer config, `nbthread 2`, `http-reuse always`; its port 8085, which injects an
`X-Request-Id` too) over the same two backends (`bench-backend`, hyper). wrk: `-t2
-c64` for throughput, CPU and p99, `-t1 -c1` for p50; {sys.argv[2]} rounds of
{sys.argv[3]} s, every proxy in each round, the order rotating by round. CPU per
request is the proxy's user+system time (all its processes) over the requests served.
Targets are issue 24's.

Last run: {last_run}, {os.cpu_count()} cores, {platform.machine()}.

| measure | nginx | haproxy | pantstack | ratio (to nginx / haproxy) | target | |
|---|---|---|---|---|---|---|
""" + "\n".join(lines) + f"""

Backends hit directly (no proxy): {d_rps:,.0f} requests/s at 64 connections.
Requests/s ratio of each round (same round, pantstack / peer): {round_lines}.
Non-2xx answers during the whole run: {errors}.

Resident memory per idle keep-alive connection (each served one request, then left
open; VmRSS of the proxy and its worker processes before and after):

| proxy | connections | RSS before (KiB) | RSS after (KiB) | KiB per connection |
|---|---|---|---|---|
{mem_lines}
""" + (open("bench/lb/NOTES.md").read() if os.path.exists("bench/lb/NOTES.md") else "") + """
Every run (round, name, connections, requests/s, p50 µs, CPU µs/request, non-2xx, socket errors, p99 µs):

```
""" + "".join("\t".join([n] + r) + "\n" for n, r in zip(rounds, rows)) + "```"
# Only this benchmark's block of docs/benchmarks.md is replaced.
import re
path = "docs/benchmarks.md"
doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
block = "<!-- bench:lb -->\n" + section + "\n<!-- /bench:lb -->"
pattern = re.compile(r"<!-- bench:lb -->.*?<!-- /bench:lb -->", re.S)
doc = pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(doc)
print(section)
