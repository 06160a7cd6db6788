#!/usr/bin/env bash
# The example service's image: built FROM scratch around the static binary, tagged by
# `pantstack tag`, run as real containers (API + worker), exercised over loopback.
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

api=""; worker=""
cleanup() {
  [ -n "$worker" ] && docker rm -f "$worker" >/dev/null 2>&1 || true
  [ -n "$api" ] && docker rm -f "$api" >/dev/null 2>&1 || true
  docker rmi "$image" "$wimage" >/dev/null 2>&1 || true
}
trap cleanup EXIT

api=$(docker run -d -p 127.0.0.1::8080 -e SERVICE_NAME=api "$image" serve)
port=$(docker port "$api" 8080/tcp | head -n1 | sed 's/.*://')
worker=$(docker run -d --network "container:$api" -e PORT=8081 \
  -e JOBS_API_URL=http://127.0.0.1:8080 "$wimage" work)

python3 - "$port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(method, path, body=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read().decode()
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
assert status == 202, (status, body)
job = json.loads(body)["id"]
deadline = time.time() + 20
while True:
    status, body = call("GET", f"/jobs/{job}")
    if json.loads(body)["status"] == "done":
        break
    if time.time() > deadline:
        sys.exit(f"FAIL: the worker container never processed job {job}: {body}")
    time.sleep(0.1)
assert "4 words: HELLO FROM A CONTAINER" in body, body
print(f"docker image test: 3 passed, 0 failed")
PY
echo "images: $image, $wimage"
