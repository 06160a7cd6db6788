#!/usr/bin/env bash
# bench/aws/run.sh queue|objects — the local cloud's AWS endpoint against moto's
# server and fakecloud (in memory, and persistent), in the same run, all driven by
# the same SigV4-signing Rust client (bench-aws). Loopback only. Called by
# bench/queue/run.sh and bench/objects/run.sh.
#
# Installs moto[server] into its own virtualenv (~/.cache/pantstack-bench/moto) and a
# release build of fakecloud 0.51.0 (~/.cache/pantstack-bench/fakecloud-0.51.0; about
# an hour on two cores, once) when missing; FAKECLOUD names another build, PEERS
# (comma-separated: moto,fakecloud,fakecloud-disk) selects the peers. ROUNDS=3
# SECONDS_PER_RUN=5 by default. Results (medians, ratios, targets met) go to
# docs/benchmarks.md. fakecloud is AGPL-licensed: a benchmark peer, never a dependency.
set -euo pipefail
group=${1:?usage: bench/aws/run.sh queue|objects}
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
venv=${XDG_CACHE_HOME:-$HOME/.cache}/pantstack-bench/moto
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
peers=${PEERS:-moto,fakecloud,fakecloud-disk}
if [[ ",$peers," == *",fakecloud"* ]]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/pantstack-bench
  export FAKECLOUD=${FAKECLOUD:-$cache/fakecloud-0.51.0/bin/fakecloud}
  if [ ! -x "$FAKECLOUD" ]; then
    echo "installing fakecloud 0.51.0 (release build) into $cache/fakecloud-0.51.0"
    CARGO_TARGET_DIR="$cache/fakecloud-target" cargo install fakecloud --locked --version 0.51.0 --root "$cache/fakecloud-0.51.0"
    rm -rf "$cache/fakecloud-target"
  fi
fi
export PEERS=$peers
cargo build --release -q -p pantstack-bench
"$venv/bin/python" bench/aws/compare.py "$group" target/release "${ROUNDS:-3}" "${SECONDS_PER_RUN:-5}"
