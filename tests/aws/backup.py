"""Data for the backup and restore round trip of crates/cli/tests/backup.rs, written
and read back through boto3 against a running `pantstack up` (with the settings
`pantstack aws-env` prints in the environment). Loopback only; every wait is bounded.

Modes:
  write EXPECTED     queues, messages (one left in flight), versioned and plain
                     buckets (inline and blob-sized objects, metadata, tags, a delete
                     marker), parameters (versions, labels, tags, a SecureString);
                     the messages sent are written to EXPECTED (JSON)
  dump               S3 and SSM as clients see them, as JSON on stdout (bodies by
                     SHA-256, SecureStrings decrypted): compared before and after
  messages EXPECTED  receives every message and checks ids, bodies, attributes and
                     receive counts against EXPECTED
  churn STOP         until the file STOP exists: put object i, then send message i
  churned            the churn's objects and messages: every message's object is
                     there, and the messages are 0..n without a gap
"""
import hashlib
import json
import os
import sys
import time

import boto3

sqs = boto3.client("sqs")
s3 = boto3.client("s3")
ssm = boto3.client("ssm")
BIG = bytes((i * 7919) % 251 for i in range(200 * 1024))  # > 64 KiB: its own blob file


def fail(what):
    print(f"FAILED: {what}", file=sys.stderr)
    sys.exit(1)


def write(expected):
    url = sqs.create_queue(QueueName="bk-std", Attributes={"VisibilityTimeout": "30"}, tags={"team": "a"})["QueueUrl"]
    sent = {}
    for i in range(3):
        attrs = {"n": {"DataType": "Number", "StringValue": str(i)}, "kind": {"DataType": "String", "StringValue": f"k{i}"}}
        r = sqs.send_message(QueueUrl=url, MessageBody=f"message {i} \u00e9\u4e2d", MessageAttributes=attrs)
        sent[r["MessageId"]] = {"body": f"message {i} \u00e9\u4e2d", "attrs": attrs, "md5": r["MD5OfMessageAttributes"]}
    # One in flight: received once, invisible for 3 s, so it comes back after restore.
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=3)["Messages"]
    if len(got) != 1:
        fail("one message received before the backup")
    in_flight = got[0]["MessageId"]
    fifo = sqs.create_queue(QueueName="bk-order.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for i in range(2):
        r = sqs.send_message(QueueUrl=fifo, MessageBody=f"fifo {i}", MessageGroupId="g")
        sent[r["MessageId"]] = {"body": f"fifo {i}", "attrs": {}, "md5": None}

    s3.create_bucket(Bucket="bk-versioned")
    s3.put_bucket_versioning(Bucket="bk-versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="bk-versioned", Key="a.txt", Body=b"first", Metadata={"who": "one"}, ContentType="text/plain")
    s3.put_object(Bucket="bk-versioned", Key="a.txt", Body=BIG, Metadata={"who": "two"})
    s3.put_object(Bucket="bk-versioned", Key="gone.txt", Body=b"soon deleted")
    s3.delete_object(Bucket="bk-versioned", Key="gone.txt")
    s3.put_object_tagging(Bucket="bk-versioned", Key="a.txt", Tagging={"TagSet": [{"Key": "t", "Value": "v"}]})
    s3.create_bucket(Bucket="bk-plain")
    s3.put_object(Bucket="bk-plain", Key="dir/c.bin", Body=BIG[:70000] + b"tail")
    s3.put_object(Bucket="bk-plain", Key="empty", Body=b"")

    ssm.put_parameter(Name="/bk/plain", Value="v1", Type="String")
    ssm.put_parameter(Name="/bk/plain", Value="v2", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name="/bk/plain", ParameterVersion=1, Labels=["old"])
    ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId="/bk/plain", Tags=[{"Key": "owner", "Value": "ops"}])
    ssm.put_parameter(Name="/bk/secret", Value="s3cr3t-value", Type="SecureString")
    ssm.put_parameter(Name="/bk/list", Value="a,b,c", Type="StringList")
    with open(expected, "w") as f:
        json.dump({"sent": sent, "in_flight": in_flight}, f)


def dump():
    out = {"buckets": {}, "parameters": {}}
    for b in ["bk-plain", "bk-versioned"]:
        vs = s3.list_object_versions(Bucket=b)
        entry = {"versioning": s3.get_bucket_versioning(Bucket=b).get("Status"), "versions": [], "markers": []}
        for v in vs.get("Versions", []):
            o = s3.get_object(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])
            entry["versions"].append({
                "key": v["Key"], "version": v["VersionId"], "latest": v["IsLatest"], "etag": v["ETag"],
                "size": v["Size"], "sha256": hashlib.sha256(o["Body"].read()).hexdigest(),
                "metadata": o["Metadata"], "type": o.get("ContentType"),
                "modified": v["LastModified"].isoformat(),
                "tags": s3.get_object_tagging(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])["TagSet"],
            })
        for m in vs.get("DeleteMarkers", []):
            entry["markers"].append({"key": m["Key"], "version": m["VersionId"], "latest": m["IsLatest"]})
        out["buckets"][b] = entry
    names = []
    for page in ssm.get_paginator("describe_parameters").paginate():
        names += [p["Name"] for p in page["Parameters"]]
    for n in sorted(names):
        hist = ssm.get_parameter_history(Name=n, WithDecryption=True)["Parameters"]
        out["parameters"][n] = {
            "history": [{"version": h["Version"], "value": h["Value"], "type": h["Type"], "labels": h.get("Labels", []),
                         "modified": h["LastModifiedDate"].isoformat()} for h in hist],
            "tags": ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=n)["TagList"],
        }
    print(json.dumps(out, indent=1, sort_keys=True))


def messages(expected):
    exp = json.load(open(expected))
    seen = {}
    counts = {}
    deadline = time.time() + 20
    for name in ["bk-std", "bk-order.fifo"]:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        want = sum(1 for m in exp["sent"].values() if m["body"].startswith("fifo") == name.endswith(".fifo"))
        got = 0
        while got < want:
            if time.time() > deadline:
                fail(f"{name}: {got} of {want} messages came back")
            r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                    MessageAttributeNames=["All"], AttributeNames=["All"])
            for m in r.get("Messages", []):
                got += 1
                seen[m["MessageId"]] = m
                counts[m["MessageId"]] = int(m["Attributes"]["ApproximateReceiveCount"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    if set(seen) != set(exp["sent"]):
        fail(f"message ids after restore: {sorted(seen)} != {sorted(exp['sent'])}")
    for mid, want in exp["sent"].items():
        m = seen[mid]
        if m["Body"] != want["body"]:
            fail(f"{mid}: body {m['Body']!r} != {want['body']!r}")
        if want["attrs"] and m.get("MessageAttributes") != want["attrs"]:
            fail(f"{mid}: attributes {m.get('MessageAttributes')} != {want['attrs']}")
        if want["md5"] and m.get("MD5OfMessageAttributes") != want["md5"]:
            fail(f"{mid}: attributes' MD5 changed")
        if m["MD5OfBody"] != hashlib.md5(want["body"].encode()).hexdigest():
            fail(f"{mid}: body MD5")
        n = 2 if mid == exp["in_flight"] else 1
        if counts[mid] != n:
            fail(f"{mid}: receive count {counts[mid]}, expected {n}")
    print(json.dumps({"messages": len(seen)}))


def churn(stop):
    s3.create_bucket(Bucket="bk-churn")
    url = sqs.create_queue(QueueName="bk-churn")["QueueUrl"]
    i = 0
    while not os.path.exists(stop) and i < 100000:
        s3.put_object(Bucket="bk-churn", Key=f"obj-{i:06}", Body=str(i).encode())
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
        i += 1
    print(json.dumps({"churned": i}))


def churned():
    url = sqs.get_queue_url(QueueName="bk-churn")["QueueUrl"]
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bk-churn"):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    bodies = []
    idle = 0
    while idle < 2:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=300)
        ms = r.get("Messages", [])
        idle = 0 if ms else idle + 1
        bodies += [int(m["Body"]) for m in ms]
    bodies.sort()
    if bodies != list(range(len(bodies))):
        fail(f"the churn's messages have gaps: {bodies[:5]}...{bodies[-5:]} ({len(bodies)})")
    missing = [b for b in bodies if f"obj-{b:06}" not in keys]
    if missing:
        fail(f"messages whose object (put before them) is not in the backup: {missing[:10]}")
    if len(keys) > len(bodies) + 1:
        fail(f"{len(keys)} objects but {len(bodies)} messages: more than the one put in flight")
    print(json.dumps({"messages": len(bodies), "objects": len(keys)}))


mode = sys.argv[1]
if mode == "write":
    write(sys.argv[2])
elif mode == "dump":
    dump()
elif mode == "messages":
    messages(sys.argv[2])
elif mode == "churn":
    churn(sys.argv[2])
elif mode == "churned":
    churned()
else:
    fail(f"unknown mode {mode}")
