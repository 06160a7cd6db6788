#!/usr/bin/env bash
# bench/lb/run.sh — the local cloud's load balancer against nginx (tuned peer
# config, nginx.conf here) over the same two backends, in the same run.
#
#   bash bench/lb/run.sh            # ROUNDS=7 SECONDS_PER_RUN=10 by default
#
# wrk at 64 connections (throughput, CPU per request) and at 1 connection (p50
# latency), rounds alternating between the proxies (which one goes first alternates
# too, so a drift in the machine's speed does not favour either); medians and
# ratios are written
# to docs/benchmarks.md. Loopback only. Needs nginx and wrk (Debian packages; they are
# installed with apt-get when missing and this runs as root).
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ROUNDS=${ROUNDS:-7}
SECS=${SECONDS_PER_RUN:-10}

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light wrk >/dev/null
    else
      echo "FAIL: $tool is missing (apt-get install nginx-light wrk)"; exit 1
    fi
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q -p pantstack-bench
bin=target/release
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT

for p in 9001 9002 8081 8082 8083 8089; do
  if python3 -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1',$p)) else 1)"; then :; else
    echo "FAIL: 127.0.0.1:$p is in use"; exit 1
  fi
done

"$bin/bench-backend" 9001 & pids+=($!)
"$bin/bench-backend" 9002 & pids+=($!)
mkdir -p "$dir/logs"
sed "s|__DIR__|$dir|g" bench/lb/nginx.conf > "$dir/nginx.conf"
"$NGINX" -c "$dir/nginx.conf" -p "$dir" & nginx_master=$!; pids+=($nginx_master)
"$bin/bench-lb" 8082 127.0.0.1:9001 127.0.0.1:9002 & ours=$!; pids+=($ours)

for p in 9001 9002 8082 8083; do
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$p/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$p/" >/dev/null || { echo "FAIL: nothing answers on $p"; exit 1; }
done
sleep 1   # first health checks

# CPU time (clock ticks) of a process and its children threads (nginx: master + workers).
cpu() {
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}

results="$dir/results.tsv"
round=0
run() { # NAME PORT CONNS THREADS PID
  local name=$1 port=$2 c=$3 t=$4 pid=$5 before after out
  before=$(cpu "$pid")
  out=$(wrk -t"$t" -c"$c" -d"${SECS}s" --latency "http://127.0.0.1:$port/")
  after=$(cpu "$pid")
  python3 - "$name" "$c" "$before" "$after" "$(getconf CLK_TCK)" "$round" >>"$results" <<PY
import re, sys
out = """$out"""
name, conns, before, after, tck, rnd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
reqs = int(re.search(r"(\d+) requests in", out).group(1))
m = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
p50 = float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: (.*)", out)
cpu_us = (after - before) / tck * 1e6 / max(reqs, 1)
print(f"{rnd}\t{name}\t{conns}\t{rps:.0f}\t{p50:.1f}\t{cpu_us:.2f}\t{errs.group(1) if errs else 0}\t{sock.group(1) if sock else '-'}")
PY
}

for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS"
  round=$r
  run direct 9001 64 2 "${pids[0]}"
  if (( r % 2 )); then
    run nginx 8083 64 2 "$nginx_master"
    run pantstack 8082 64 2 "$ours"
    run nginx 8083 1 1 "$nginx_master"
    run pantstack 8082 1 1 "$ours"
  else
    run pantstack 8082 64 2 "$ours"
    run nginx 8083 64 2 "$nginx_master"
    run pantstack 8082 1 1 "$ours"
    run nginx 8083 1 1 "$nginx_master"
  fi
done

python3 bench/lb/report.py "$results" "$ROUNDS" "$SECS"
