"""A/B of two builds of the endpoint on one S3 scenario, in the same sitting:
both endpoints (and fakecloud in memory, when FAKECLOUD names its binary) run
side by side, driven by the same client (the new build's bench-aws), the order
alternating by round; prints each run and the medians.

  python3 bench/objects/ab.py OLD_BIN_DIR NEW_BIN_DIR [ROUNDS] [SECONDS] [SCENARIO] [CONNS]

SCENARIO is s3-big (a 256 MiB GET, one connection) by default. fakecloud is set
up as bench/aws/compare.py sets it up (signature checks on, an IAM user's key),
which needs boto3 in this Python.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

old_dir, new_dir = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
secs = float(sys.argv[4]) if len(sys.argv) > 4 else 5
scenario = sys.argv[5] if len(sys.argv) > 5 else "s3-big"
conns = sys.argv[6] if len(sys.argv) > 6 else "1"
tmp = tempfile.mkdtemp(prefix="pantstack-ab-")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def endpoint(bindir, name):
    p = subprocess.Popen([os.path.join(bindir, "bench-endpoint"), os.path.join(tmp, name), "0"],
                         stdout=subprocess.PIPE, text=True)
    procs.append(p)
    port, access, secret = p.stdout.readline().split()
    return (f"http://127.0.0.1:{port}", access, secret, p.pid)


def fakecloud(binary):
    port = free_port()
    p = subprocess.Popen([binary, "--addr", f"127.0.0.1:{port}", "--verify-sigv4", "--log-level", "warn"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("FAIL: fakecloud never listened")
            time.sleep(0.1)
    import boto3
    iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    iam.create_user(UserName="bench")
    iam.put_user_policy(UserName="bench", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    return (f"http://127.0.0.1:{port}", key["AccessKeyId"], key["SecretAccessKey"], p.pid)


try:
    servers = {"old": endpoint(old_dir, "old"), "new": endpoint(new_dir, "new")}
    fc = os.environ.get("FAKECLOUD")
    if fc and os.access(fc, os.X_OK):
        servers["fakecloud"] = fakecloud(fc)
    names = list(servers)
    rows = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        if r % 2:
            order.reverse()
        for name in order:
            url, access, secret, pid = servers[name]
            out = subprocess.run([os.path.join(new_dir, "bench-aws"), scenario, url, access, secret, str(pid), str(secs), conns],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                sys.exit(f"FAIL: {name}: {out.stderr}")
            res = json.loads(out.stdout)
            rows[name].append(res)
            rate = res["units"] / res["seconds"]
            cpu = res["server_cpu_s"] / max(res["units"], 1)
            per = (f"{rate / 2**20:,.0f} MiB/s, {cpu * 2**20 * 1e6:,.0f} µs CPU/MiB" if scenario == "s3-big"
                   else f"{rate:,.0f}/s, {cpu * 1e6:,.1f} µs CPU each")
            print(f"round {r + 1} {name:10} {per}", flush=True)
    hwm = {}
    for name in names:
        try:
            with open(f"/proc/{servers[name][3]}/status") as f:
                hwm[name] = next((int(l.split()[1]) for l in f if l.startswith("VmHWM:")), 0)
        except OSError:
            hwm[name] = 0
finally:
    for p in procs:
        p.kill()
        p.wait()
    shutil.rmtree(tmp, ignore_errors=True)

med = {}
for name in names:
    rate = statistics.median(x["units"] / x["seconds"] for x in rows[name])
    cpu = statistics.median(x["server_cpu_s"] / max(x["units"], 1) for x in rows[name])
    med[name] = rate
    if scenario == "s3-big":
        print(f"median {name:10} {rate / 2**20:,.0f} MiB/s, {cpu * 2**20 * 1e6:,.0f} µs CPU/MiB")
    else:
        print(f"median {name:10} {rate:,.0f}/s, {cpu * 1e6:,.1f} µs CPU each")
print(f"new/old {med['new'] / med['old']:.2f}×")
print("peak resident memory (VmHWM): " + ", ".join(f"{n} {hwm[n] / 1024:,.0f} MiB" for n in names))
if "fakecloud" in med:
    print(f"new/fakecloud {med['new'] / med['fakecloud']:.2f}×, old/fakecloud {med['old'] / med['fakecloud']:.2f}×")
