"""Writes the load-balancer benchmark's block of docs/benchmarks.md from the runs
bench/lb/run.sh recorded (one line a run: round, name, connections, requests/s, p50
in µs, CPU µs per request, non-2xx answers, socket errors).

Usage: report.py RESULTS.tsv ROUNDS SECONDS [LAST_RUN]  (LAST_RUN: the run's time, as
text; now by default)
"""
import statistics, sys, datetime, platform, os
rows = [l.rstrip("\n").split("\t")[1:] for l in open(sys.argv[1])]
rounds = [l.rstrip("\n").split("\t")[0] for l in open(sys.argv[1])]
def med(name, conns, col):
    v = [float(r[col]) for r in rows if r[0] == name and r[1] == conns]
    return statistics.median(v) if v else float("nan")
errors = sum(int(r[5]) for r in rows)
n_rps, p_rps, d_rps = med("nginx", "64", 2), med("pantstack", "64", 2), med("direct", "64", 2)
n_cpu, p_cpu = med("nginx", "64", 4), med("pantstack", "64", 4)
n_p50, p_p50 = med("nginx", "1", 3), med("pantstack", "1", 3)
ok = lambda b: "met" if b else "**not met**"
last_run = sys.argv[4] if len(sys.argv) > 4 else datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
# Each round's own requests/s ratio, as a check on the ratio of the medians.
by_round = {}
for rnd, r in zip(rounds, rows):
    if r[1] == "64" and r[0] in ("nginx", "pantstack"):
        by_round.setdefault(rnd, {})[r[0]] = float(r[2])
round_ratios = [v["pantstack"] / v["nginx"] for _, v in sorted(by_round.items(), key=lambda kv: int(kv[0])) if len(v) == 2]
round_line = ", ".join(f"{x:.2f}" for x in round_ratios)
round_median = statistics.median(round_ratios) if round_ratios else float("nan")
section = f"""## Load balancer: `bash bench/lb/run.sh`

Pantstack's local load balancer (`bench-lb`: the same `pantstack_lb::Balancer`
the local cloud runs — thread per core, its HTTP/1.1 fast path, request ids and trace
ids and `X-Forwarded-*` on every request, health checks; access log off, as nginx's)
against nginx
(`bench/lb/nginx.conf`, the tuned peer config; its port 8083, which also injects an
`X-Request-Id`) over the same two backends (`bench-backend`, hyper). wrk: `-t2 -c64`
for throughput and CPU, `-t1 -c1` for latency; {sys.argv[2]} rounds of {sys.argv[3]} s,
the proxy that goes first alternating by round.
CPU per request is the proxy's user+system time (all its processes) over the
requests served.

Last run: {last_run}, {os.cpu_count()} cores, {platform.machine()}.

| measure | nginx | pantstack | ratio | target | |
|---|---|---|---|---|---|
| requests/s at 64 connections | {n_rps:,.0f} | {p_rps:,.0f} | {p_rps/n_rps:.2f}× | ≥ 1.20× | {ok(p_rps/n_rps >= 1.2)} |
| proxy CPU per request (µs) | {n_cpu:.1f} | {p_cpu:.1f} | {p_cpu/n_cpu:.2f}× | ≤ 1.00× | {ok(p_cpu <= n_cpu)} |
| p50 latency at 1 connection (µs) | {n_p50:.0f} | {p_p50:.0f} | {p_p50/n_p50:.2f}× | ≤ 1.00× | {ok(p_p50 <= n_p50)} |

Backends hit directly (no proxy): {d_rps:,.0f} requests/s at 64 connections
(nginx reaches {n_rps/d_rps:.2f} of that, Pantstack {p_rps/d_rps:.2f}).
Requests/s ratio of each round (same round, pantstack / nginx): {round_line};
their median {round_median:.2f}×.
Non-2xx answers during the whole run: {errors}.
""" + (open("bench/lb/NOTES.md").read() if os.path.exists("bench/lb/NOTES.md") else "") + """
Every run (round, name, connections, requests/s, p50 µs, CPU µs/request, non-2xx, socket errors):

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
