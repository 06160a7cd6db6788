#!/usr/bin/env bash
# bench/aws/run.sh queue|objects — the local cloud's AWS endpoint against moto's
# server, in the same run, both driven by the same SigV4-signing Rust client
# (bench-aws). Loopback only. Called by bench/queue/run.sh and bench/objects/run.sh.
#
# Installs moto[server] into its own virtualenv (~/.cache/pantstack-bench/moto) when
# missing. ROUNDS=3 SECONDS_PER_RUN=5 by default. Results (medians, ratios, targets
# met) go to docs/benchmarks.md.
set -euo pipefail
group=${1:?usage: bench/aws/run.sh queue|objects}
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
venv=${XDG_CACHE_HOME:-$HOME/.cache}/pantstack-bench/moto
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
cargo build --release -q -p pantstack-bench
"$venv/bin/python" bench/aws/compare.py "$group" target/release "${ROUNDS:-3}" "${SECONDS_PER_RUN:-5}"
