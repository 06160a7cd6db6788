"""Crash test of the local cloud's AWS endpoint (driven by crates/cli/tests/aws.rs).

  crash.py load ACK      sends, deletes and puts; records what was acknowledged
  crash.py busy ACK      sends one message at a time, recording each acknowledgement
                         (fsync'd) until it is killed or the endpoint goes away; every
                         fifth, also overwrites the object `busy` (60 KB: the journal
                         keeps growing with history, so compactions run meanwhile)
  crash.py verify ACK    after kill -9 and restart: everything acknowledged is there,
                         intact; everything whose delete was acknowledged is gone
"""
import json
import os
import sys

import boto3
import botocore

mode, ack = sys.argv[1], sys.argv[2]
busy_file = os.path.splitext(ack)[0] + ".busy"
sqs = boto3.client("sqs", config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=5, connect_timeout=2))
ssm = boto3.client("ssm")
s3 = boto3.client("s3")

if mode == "load":
    url = sqs.create_queue(QueueName="crash-q")["QueueUrl"]
    sent = {}
    for i in range(200):
        body = f"single-{i}-" + "x" * (i % 50)
        sent[sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]] = body
    for b in range(30):
        entries = [{"Id": f"e{j}", "MessageBody": f"batch-{b}-{j}"} for j in range(10)]
        r = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert len(r["Successful"]) == 10
        for s in r["Successful"]:
            sent[s["MessageId"]] = f"batch-{b}-{s['Id'][1:]}"
    deleted = []
    while len(deleted) < 50:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
            if len(deleted) < 50:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                deleted.append(m["MessageId"])
    params = {}
    for i in range(50):
        name, value = f"/crash/secure/{i}", f"secret-value-{i}"
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
        params[name] = value
    for i in range(20):
        name, value = f"/crash/plain/{i}", f"plain-{i}"
        ssm.put_parameter(Name=name, Value=value, Type="String")
        params[name] = value
    gone = []
    for i in range(10):
        ssm.delete_parameter(Name=f"/crash/plain/{i}")
        gone.append(f"/crash/plain/{i}")
        del params[f"/crash/plain/{i}"]
    import hashlib
    s3.create_bucket(Bucket="crash-b")
    objects = {}
    for i in range(60):
        data = os.urandom(100 + i * 997)
        s3.put_object(Bucket="crash-b", Key=f"obj/{i}", Body=data)
        objects[f"obj/{i}"] = hashlib.md5(data).hexdigest()
    for i in range(10):
        s3.delete_object(Bucket="crash-b", Key=f"obj/{i}")
        del objects[f"obj/{i}"]
    big = os.urandom(6 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket="crash-b", Key="big")
    p1 = s3.upload_part(Bucket="crash-b", Key="big", UploadId=up["UploadId"], PartNumber=1, Body=big[: 5 * 1024 * 1024])
    p2 = s3.upload_part(Bucket="crash-b", Key="big", UploadId=up["UploadId"], PartNumber=2, Body=big[5 * 1024 * 1024 :])
    s3.complete_multipart_upload(Bucket="crash-b", Key="big", UploadId=up["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    objects["big"] = hashlib.md5(big).hexdigest()
    # History a journal compaction drops: one key overwritten again and again.
    for i in range(80):
        data = os.urandom(60000)
        s3.put_object(Bucket="crash-b", Key="churn", Body=data)
    objects["churn"] = hashlib.md5(data).hexdigest()
    with open(ack, "w") as f:
        json.dump({"url": url, "sent": sent, "deleted": deleted, "params": params, "gone": gone, "objects": objects}, f)
    print(f"acknowledged {len(sent)} sends, {len(deleted)} deletes, {len(params)} parameters, {len(objects)} objects")

elif mode == "busy":
    url = json.load(open(ack))["url"]
    with open(busy_file, "a") as f:
        f.flush()
        os.fsync(f.fileno())
        import hashlib
        i = 0
        while True:
            body = f"busy-{i}"
            try:
                mid = sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]
            except Exception:
                break
            f.write(json.dumps([mid, body]) + "\n")
            f.flush()
            os.fsync(f.fileno())
            if i % 5 == 0:
                data = os.urandom(60000)
                md5 = hashlib.md5(data).hexdigest()
                # Intent first: a put cut by the kill may or may not have landed.
                f.write(json.dumps(["put", md5]) + "\n")
                f.flush()
                os.fsync(f.fileno())
                try:
                    s3.put_object(Bucket="crash-b", Key="busy", Body=data)
                except Exception:
                    break
                f.write(json.dumps(["acked", md5]) + "\n")
                f.flush()
                os.fsync(f.fileno())
            i += 1

elif mode == "verify":
    a = json.load(open(ack))
    expected = {k: v for k, v in a["sent"].items() if k not in set(a["deleted"])}
    busy = 0
    acked_put, last_put = None, None
    if os.path.exists(busy_file):
        for line in open(busy_file):
            if line.endswith("\n"):
                mid, body = json.loads(line)
                if mid == "put":
                    last_put = body
                elif mid == "acked":
                    acked_put = body
                else:
                    expected[mid] = body
                    busy += 1
    seen = {}
    while True:
        got = sqs.receive_message(QueueUrl=a["url"], MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages", [])
        if not got:
            break
        for m in got:
            seen[m["MessageId"]] = m["Body"]
    missing = [k for k in expected if k not in seen]
    wrong = [k for k in expected if k in seen and seen[k] != expected[k]]
    resurrected = [k for k in a["deleted"] if k in seen]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    assert not wrong, f"{len(wrong)} messages changed, e.g. {wrong[:3]}"
    assert not resurrected, f"{len(resurrected)} deleted messages came back"
    for name, value in a["params"].items():
        got = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        assert got == value, f"{name}: {got!r} != {value!r}"
    for name in a["gone"]:
        try:
            ssm.get_parameter(Name=name)
            raise AssertionError(f"{name} came back after its delete")
        except ssm.exceptions.ParameterNotFound:
            pass
    import hashlib
    for key, md5 in a["objects"].items():
        data = s3.get_object(Bucket="crash-b", Key=key)["Body"].read()
        assert hashlib.md5(data).hexdigest() == md5, f"object {key} is not intact"
    for i in range(10):
        try:
            s3.head_object(Bucket="crash-b", Key=f"obj/{i}")
            raise AssertionError(f"obj/{i} came back after its delete")
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "404", e
    if acked_put is not None:
        data = s3.get_object(Bucket="crash-b", Key="busy")["Body"].read()
        got = hashlib.md5(data).hexdigest()
        assert got in (acked_put, last_put), "the object `busy` is neither its last acknowledged version nor the one in flight"
    assert busy > 0, "the busy writer acknowledged nothing before the kill"
    print(f"all acknowledged: {len(expected)} messages ({busy} sent during the kill), {len(a['params'])} parameters, {len(a['objects'])} objects intact")
