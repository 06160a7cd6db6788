#!/usr/bin/env bash
# bench/lb/run.sh — the local cloud's load balancer against nginx and haproxy (the
# tuned peer configs, nginx.conf and haproxy.cfg here) over the same two backends, in
# the same run.
#
#   bash bench/lb/run.sh            # ROUNDS=7 SECONDS_PER_RUN=10 by default
#
# wrk at 64 connections (throughput, CPU per request, p99) and at 1 connection (p50
# latency), each round running every proxy in turn (the order rotates by round, so a
# drift in the machine's speed does not favour one); then the resident memory each
# proxy holds per idle keep-alive connection. Medians and ratios are written to
# docs/benchmarks.md. Loopback only. Needs nginx, haproxy and wrk (Debian packages;
# installed with apt-get when missing and this runs as root).
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ROUNDS=${ROUNDS:-7}
SECS=${SECONDS_PER_RUN:-10}

for tool in nginx haproxy wrk; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light haproxy wrk >/dev/null
    else
      echo "FAIL: $tool is missing (apt-get install nginx-light haproxy wrk)"; exit 1
    fi
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

cargo build --release -q -p pantstack-bench
bin=target/release
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT

for p in 9001 9002 8081 8082 8083 8085 8086 8089; do
  if python3 -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1',$p)) else 1)"; then :; else
    echo "FAIL: 127.0.0.1:$p is in use"; exit 1
  fi
done

"$bin/bench-backend" 9001 & pids+=($!)
"$bin/bench-backend" 9002 & pids+=($!)
mkdir -p "$dir/logs"
sed "s|__DIR__|$dir|g" bench/lb/nginx.conf > "$dir/nginx.conf"
"$NGINX" -c "$dir/nginx.conf" -p "$dir" & nginx_master=$!; pids+=($nginx_master)
"$HAPROXY" -db -f bench/lb/haproxy.cfg >/dev/null 2>&1 & haproxy=$!; pids+=($haproxy)
"$bin/bench-lb" 8082 127.0.0.1:9001 127.0.0.1:9002 & ours=$!; pids+=($ours)

for p in 9001 9002 8082 8083 8085; do
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
def pct(p):
    m = re.search(p + r"%\s+([\d.]+)(us|ms|s)\b", out)
    return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
p50, p99 = pct("50"), pct("99")
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: (.*)", out)
cpu_us = (after - before) / tck * 1e6 / max(reqs, 1)
print(f"{rnd}\t{name}\t{conns}\t{rps:.0f}\t{p50:.1f}\t{cpu_us:.2f}\t{errs.group(1) if errs else 0}\t{sock.group(1) if sock else '-'}\t{p99:.1f}")
PY
}

# name port pid, for each proxy; the order rotates by round.
proxies=("nginx 8083 $nginx_master" "haproxy 8085 $haproxy" "pantstack 8082 $ours")
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS"
  round=$r
  run direct 9001 64 2 "${pids[0]}"
  n=${#proxies[@]}
  for c in "64 2" "1 1"; do
    for i in $(seq 0 $((n - 1))); do
      read -r name port pid <<<"${proxies[$(( (i + r) % n ))]}"
      run "$name" "$port" $c "$pid"
    done
  done
done

# Resident memory per idle keep-alive connection (each has served one request).
memory="$dir/memory.tsv"
for p in "${proxies[@]}"; do
  read -r name port pid <<<"$p"
  python3 bench/lb/idle.py "$name" "$port" "$pid" "${IDLE_CONNECTIONS:-2000}" >>"$memory"
done

python3 bench/lb/report.py "$results" "$ROUNDS" "$SECS" "$memory"
