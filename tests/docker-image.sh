#!/usr/bin/env bash
# The example service's image: built FROM scratch around the static binary (AWS SDK
# for Rust included), tagged by `pantstack tag`, run as a real container. With no
# AWS endpoint reachable it must still start, answer /healthz, and refuse jobs with
# a clear 503 naming the failed call. (The whole job flow in containers, against
# the local cloud's SQS and S3, is the e2e test `the_example_runs_as_docker_containers`.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pantstack=${PANTSTACK:-$root/target/debug/pantstack}
cd "$root/examples"

"$root/examples/modules/api/build.sh"

sha=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo 0000000000000000)
tag=$("$pantstack" tag api --branch ci --sha "$sha")
wtag=$("$pantstack" tag api --worker --branch ci --sha "$sha")
image="pantstack-test/shop:$tag"
wimage="pantstack-test/shop:$wtag"
docker build -q -t "$image" -t "$wimage" modules/api >/dev/null

api=""
cleanup() {
  [ -n "$api" ] && docker rm -f "$api" >/dev/null 2>&1 || true
  docker rmi "$image" "$wimage" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# An endpoint on a loopback port nothing listens on (inside the container).
api=$(docker run -d -p 127.0.0.1::8080 -e SERVICE_NAME=api \
  -e AWS_ENDPOINT_URL=http://127.0.0.1:9 -e AWS_REGION=us-east-1 \
  -e AWS_ACCESS_KEY_ID=test -e AWS_SECRET_ACCESS_KEY=test -e AWS_EC2_METADATA_DISABLED=true \
  -e JOBS_QUEUE_URL=http://127.0.0.1:9/000000000000/jobs -e RESULTS_BUCKET=results \
  "$image" serve)
port=$(docker port "$api" 8080/tcp | head -n1 | sed 's/.*://')

python3 - "$port" <<'PY'
import json, sys, time, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(method, path, body=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
deadline = time.time() + 20
while True:
    try:
        status, body = call("GET", "/healthz")
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("FAIL: container never answered /healthz")
        time.sleep(0.1)
assert (status, body) == (200, "ok\n"), (status, body)
status, body = call("POST", "/jobs", b"hello from a container")
assert status == 503 and "S3 PutObject" in json.loads(body)["error"], (status, body)
print("docker image test: 2 passed, 0 failed")
PY
echo "images: $image, $wimage"
