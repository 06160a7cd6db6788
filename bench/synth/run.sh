#!/usr/bin/env bash
# `pantstack synth` at scale: generated monorepos of 50, 100 and 200 HTTP services
# (each with a worker and a queue), synthesized by the release binary, median wall
# time of ROUNDS runs each (output directory kept between runs, as a user's is).
# Target (issue 24): 200 services under 0.3 s, linear in services. Writes its
# section of docs/benchmarks.md. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ROUNDS=${ROUNDS:-7}
cargo build -q --release -p pantstack
bin=target/release/pantstack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gen() { # N DIR
  local n=$1 d=$2
  mkdir -p "$d/stack/infra/foundation"
  cp examples/stack/infra/foundation/Pulumi.yaml examples/stack/infra/foundation/Pulumi.*.yaml "$d/stack/infra/foundation/"
  sed "s/^network:\$/network:\n  load_balancer: shared\n  load_balancers: $(( (n + 49) / 50 ))/" examples/stack/infra/foundation/pantstack.yaml >"$d/stack/infra/foundation/pantstack.yaml"
  for i in $(seq -w 1 "$n"); do
    mkdir -p "$d/modules/svc$i/infrastructure"
    printf 'name: shop-svc%s\nruntime: python\n' "$i" >"$d/modules/svc$i/infrastructure/Pulumi.yaml"
    printf 'service: svc%s\nhttp:\n  command: ["/s"]\nworker:\n  queue: jobs\n  command: ["/w"]\nqueues:\n  jobs: {}\n' "$i" >"$d/modules/svc$i/infrastructure/pantstack.yaml"
  done
}

results="$work/results.tsv"
for n in 50 100 200; do
  gen "$n" "$work/repo$n"
  "$bin" --root "$work/repo$n" synth --env prod --out "$work/out$n" >/dev/null # warm
  for r in $(seq "$ROUNDS"); do
    s=$(date +%s%N)
    "$bin" --root "$work/repo$n" synth --env prod --out "$work/out$n" >/dev/null
    e=$(date +%s%N)
    printf '%s\t%s\n' "$n" "$(( (e - s) / 1000 ))" >>"$results"
  done
  echo "$n services: $(ls "$work/out$n" | wc -l) files"
done

python3 - "$results" "$ROUNDS" <<'PY'
import os, re, statistics, sys, datetime
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
med = {n: statistics.median(int(us) for m, us in rows if int(m) == n) / 1e6 for n in (50, 100, 200)}
per = {n: med[n] / n * 1000 for n in med}
linear = per[200] <= per[50] * 1.5
met = med[200] < 0.3
section = f"""## `pantstack synth` at scale: `bash bench/synth/run.sh`

Generated monorepos of N HTTP services, each with a worker and a queue, sharing
the environment's load balancers; the release binary synthesizes `prod` (N service
templates, the shared, foundation and load-balancer stacks, `stacks.json`) into an
existing output directory; median of {sys.argv[2]} runs. Files are written, made
durable with one `syncfs`, then renamed into place.

Last run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores.

| services | wall (s) | per service (ms) |
|---|---|---|
""" + "\n".join(f"| {n} | {med[n]:.3f} | {per[n]:.2f} |" for n in (50, 100, 200)) + f"""

Target: 200 services under 0.3 s — {"met" if met else "NOT met"}; linear (per-service time at 200 within 1.5× of that at 50) — {"yes" if linear else "no"}.
"""
path = "docs/benchmarks.md"
doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
block = "<!-- bench:synth -->\n" + section + "<!-- /bench:synth -->"
pattern = re.compile(r"<!-- bench:synth -->.*?<!-- /bench:synth -->", re.S)
doc = pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(doc)
print(section)
PY
