"""Conformance of the local cloud's SQS, S3 and SSM endpoint through boto3 and the AWS CLI.

Run by crates/cli/tests/aws.rs against a running `pantstack up`, with the settings
`pantstack aws-env` prints in the environment. Every check asserts; the first failure
exits non-zero with its name. Loopback only; every wait is bounded.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
REGION = os.environ["AWS_REGION"]
sqs = boto3.client("sqs")
ssm = boto3.client("ssm")
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def error_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e
    return None, None


def receive(url, **kw):
    return sqs.receive_message(QueueUrl=url, **kw).get("Messages", [])


# ---- SQS: queues --------------------------------------------------------------
url = sqs.create_queue(QueueName="conf-std", Attributes={"VisibilityTimeout": "30"}, tags={"team": "a"})["QueueUrl"]
check(url.endswith("/000000000000/conf-std"), "CreateQueue returns the queue URL")
check(sqs.create_queue(QueueName="conf-std")["QueueUrl"] == url, "CreateQueue is idempotent")
code, _ = error_code(sqs.create_queue, QueueName="conf-std", Attributes={"VisibilityTimeout": "31"})
check(code in ("QueueAlreadyExists", "QueueNameExists"), f"CreateQueue with other attributes: {code}")
check(sqs.get_queue_url(QueueName="conf-std")["QueueUrl"] == url, "GetQueueUrl")
check(url in sqs.list_queues(QueueNamePrefix="conf-")["QueueUrls"], "ListQueues with a prefix")
try:
    sqs.get_queue_url(QueueName="conf-missing")
    check(False, "GetQueueUrl of a missing queue fails")
except sqs.exceptions.QueueDoesNotExist:
    check(True, "QueueDoesNotExist is the exception type")
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
check(attrs["VisibilityTimeout"] == "30" and attrs["MessageRetentionPeriod"] == "345600", f"attributes: {attrs}")
check(attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:000000000000:conf-std", "QueueArn")
sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "0", "MaximumMessageSize": "2048"})
check(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"]["MaximumMessageSize"] == "2048", "SetQueueAttributes")
code, _ = error_code(sqs.set_queue_attributes, QueueUrl=url, Attributes={"VisibilityTimeout": "50000"})
check(code == "InvalidAttributeValue", f"VisibilityTimeout above 12 h: {code}")
code, _ = error_code(sqs.send_message, QueueUrl=url, MessageBody="x" * 3000)
check(code == "InvalidParameterValue", f"a message above MaximumMessageSize: {code}")
sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "262144"})
code, _ = error_code(sqs.send_message, QueueUrl=url, MessageBody="x" * (256 * 1024 + 1))
check(code == "InvalidParameterValue", f"a message above 256 KiB: {code}")
sqs.tag_queue(QueueUrl=url, Tags={"cost": "b"})
check(sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a", "cost": "b"}, "tags")

# ---- SQS: messages --------------------------------------------------------------
r = sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes={
    "kind": {"DataType": "String", "StringValue": "greeting"},
    "n": {"DataType": "Number", "StringValue": "42"},
    "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
})
check("MessageId" in r and r["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592", "SendMessage: id and MD5 of the body")
check("MD5OfMessageAttributes" in r, "SendMessage: MD5 of the attributes")
m = receive(url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"], VisibilityTimeout=1)
check(len(m) == 1 and m[0]["Body"] == "hello", "ReceiveMessage")
check(m[0]["MessageAttributes"]["raw"]["BinaryValue"] == b"\x00\x01", "binary attribute round trip")
check(m[0]["MD5OfMessageAttributes"] == r["MD5OfMessageAttributes"], "attribute MD5 matches the send")
check(m[0]["Attributes"]["ApproximateReceiveCount"] == "1" and "SentTimestamp" in m[0]["Attributes"], "system attributes")
check(receive(url) == [], "an in-flight message is invisible")
time.sleep(1.3)
m2 = receive(url, MessageSystemAttributeNames=["ApproximateReceiveCount"])
check(len(m2) == 1 and m2[0]["Attributes"]["ApproximateReceiveCount"] == "2", "visibility expiry re-delivers, count 2")
check(m2[0]["ReceiptHandle"] != m[0]["ReceiptHandle"], "a new receipt handle per delivery")
sqs.delete_message(QueueUrl=url, ReceiptHandle=m2[0]["ReceiptHandle"])
code, _ = error_code(sqs.delete_message, QueueUrl=url, ReceiptHandle="garbage")
check(code == "ReceiptHandleIsInvalid", f"malformed receipt handle: {code}")
check(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, "deleted")

# ChangeMessageVisibility: 0 makes it visible again.
sqs.send_message(QueueUrl=url, MessageBody="cv")
m = receive(url, VisibilityTimeout=60)
sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"], VisibilityTimeout=0)
m = receive(url)
check(len(m) == 1 and m[0]["Body"] == "cv", "ChangeMessageVisibility 0")
sqs.delete_message(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"])

# Delay.
sqs.send_message(QueueUrl=url, MessageBody="late", DelaySeconds=1)
check(receive(url) == [], "a delayed message is not visible yet")
time.sleep(1.2)
m = receive(url)
check(len(m) == 1 and m[0]["Body"] == "late", "visible after its delay")
sqs.delete_message(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"])

# Long polling wakes on send.
t0 = time.time()
def later():
    time.sleep(0.5)
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody="wake")
threading.Thread(target=later).start()
m = receive(url, WaitTimeSeconds=10)
waited = time.time() - t0
check(len(m) == 1 and m[0]["Body"] == "wake" and waited < 5, f"long poll woke on send after {waited:.2f}s")
sqs.delete_message(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"])
t0 = time.time()
check(receive(url, WaitTimeSeconds=1) == [] and time.time() - t0 >= 0.9, "an empty long poll waits its time")

# Batches.
r = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": f"b{i}"} for i in range(10)])
check(len(r["Successful"]) == 10 and not r.get("Failed"), "SendMessageBatch of 10")
code, _ = error_code(sqs.send_message_batch, QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)])
check(code == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", f"11 entries: {code}")
code, _ = error_code(sqs.send_message_batch, QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}])
check(code == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", f"repeated ids: {code}")
r = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "ok", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": "x", "DelaySeconds": 901}])
check(len(r["Successful"]) == 1 and r["Failed"][0]["Id"] == "bad" and r["Failed"][0]["SenderFault"], "a batch fails entry by entry")
got = []
for _ in range(5):
    got += receive(url, MaxNumberOfMessages=10, VisibilityTimeout=30)
check(len(got) == 11, f"received all 11 batch messages ({len(got)})")
r = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0}, {"Id": "y", "ReceiptHandle": "nope", "VisibilityTimeout": 0}])
check(len(r["Successful"]) == 1 and len(r["Failed"]) == 1, "ChangeMessageVisibilityBatch")
r = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": f"d{i}", "ReceiptHandle": g["ReceiptHandle"]} for i, g in enumerate(got[1:])])
check(len(r["Successful"]) == 10, "DeleteMessageBatch")
sqs.purge_queue(QueueUrl=url)
code, _ = error_code(sqs.purge_queue, QueueUrl=url)
check(code == "AWS.SimpleQueueService.PurgeQueueInProgress", f"a second purge within 60 s: {code}")
check(receive(url) == [], "purged")

# ---- SQS: dead-letter queues ---------------------------------------------------
dlq = sqs.create_queue(QueueName="conf-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
src = sqs.create_queue(QueueName="conf-src", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
sqs.send_message(QueueUrl=src, MessageBody="poison")
check(len(receive(src)) == 1 and len(receive(src)) == 1, "two deliveries")
check(receive(src) == [], "the third receive moves it to the DLQ")
m = receive(dlq, MessageSystemAttributeNames=["All"])
check(len(m) == 1 and m[0]["Body"] == "poison", "the poison message is in the DLQ")
check(sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src], "ListDeadLetterSourceQueues")
sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=m[0]["ReceiptHandle"], VisibilityTimeout=0)
task = sqs.start_message_move_task(SourceArn=dlq_arn)
check("TaskHandle" in task, "StartMessageMoveTask")
check(sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] == "COMPLETED", "ListMessageMoveTasks")
m = receive(src)
check(len(m) == 1 and m[0]["Body"] == "poison", "moved back to its source queue")

# ---- SQS: FIFO -------------------------------------------------------------------
fifo = sqs.create_queue(QueueName="conf.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
code, _ = error_code(sqs.create_queue, QueueName="conf-nofifo", Attributes={"FifoQueue": "true"})
check(code == "InvalidParameterValue", f"a FIFO queue's name must end in .fifo: {code}")
a1 = sqs.send_message(QueueUrl=fifo, MessageBody="a1", MessageGroupId="a")
sqs.send_message(QueueUrl=fifo, MessageBody="a2", MessageGroupId="a")
sqs.send_message(QueueUrl=fifo, MessageBody="b1", MessageGroupId="b")
dup = sqs.send_message(QueueUrl=fifo, MessageBody="a1", MessageGroupId="a")
check(dup["MessageId"] == a1["MessageId"], "content-based dedup within 5 minutes")
check(len(a1["SequenceNumber"]) == 20, "SequenceNumber")
code, _ = error_code(sqs.send_message, QueueUrl=fifo, MessageBody="x")
check(code == "MissingParameter", f"FIFO without a group: {code}")
m = receive(fifo, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"])
check(m[0]["Body"] == "a1" and m[0]["Attributes"]["MessageGroupId"] == "a", "FIFO order")
m2 = receive(fifo, MaxNumberOfMessages=10)
check([x["Body"] for x in m2] == ["b1"], "a group in flight blocks its next message")
sqs.delete_message(QueueUrl=fifo, ReceiptHandle=m[0]["ReceiptHandle"])
check([x["Body"] for x in receive(fifo, MaxNumberOfMessages=10)] == ["a2"], "then the group goes on in order")

# ---- SQS: query protocol (older SDKs) --------------------------------------------
creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])


def signed_post(body, service="sqs", secret=None, headers=None):
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body,
                     headers=headers or {"Content-Type": "application/x-www-form-urlencoded"})
    c = creds if secret is None else Credentials(creds.access_key, secret)
    SigV4Auth(c, service, REGION).add_auth(req)
    r = urllib.request.Request(ENDPOINT + "/", data=body.encode(), headers=dict(req.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


from urllib.parse import quote
status, xml = signed_post(f"Action=SendMessage&Version=2012-11-05&QueueUrl={quote(url, safe='')}&MessageBody=via+query&MessageAttribute.1.Name=k&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v")
ns = {"q": "http://queue.amazonaws.com/doc/2012-11-05/"}
check(status == 200 and ET.fromstring(xml).find("q:SendMessageResult/q:MessageId", ns) is not None, f"query SendMessage: {status} {xml}")
status, xml = signed_post(f"Action=ReceiveMessage&Version=2012-11-05&QueueUrl={quote(url, safe='')}&MessageAttributeName.1=All&AttributeName.1=All")
doc = ET.fromstring(xml)
check(doc.find("q:ReceiveMessageResult/q:Message/q:Body", ns).text == "via query", "query ReceiveMessage")
check(doc.find("q:ReceiveMessageResult/q:Message/q:MessageAttribute/q:Value/q:StringValue", ns).text == "v", "query message attributes")
status, xml = signed_post("Action=GetQueueUrl&Version=2012-11-05&QueueName=conf-missing")
check(status == 400 and "AWS.SimpleQueueService.NonExistentQueue" in xml, f"query error document: {xml}")

# ---- Bad input gets the AWS error ------------------------------------------------
def signed_json(target, body, service="sqs"):
    ctype = "application/x-amz-json-1.0" if service == "sqs" else "application/x-amz-json-1.1"
    return signed_post(body, service=service, headers={"X-Amz-Target": target, "Content-Type": ctype})

status, body = signed_json("AmazonSQS.SendMessage", '{"QueueUrl": ')
check(status == 400 and "SerializationException" in body, f"malformed JSON: {status} {body}")
status, body = signed_json("AmazonSSM.GetParameter", "[1,2]", service="ssm")
check(status == 400 and "SerializationException" in body, f"JSON that is not an object: {status} {body}")
status, body = signed_json("AmazonSQS.Frobnicate", "{}")
check(status == 400 and "InvalidAction" in body, f"an unknown action: {status} {body}")
req = urllib.request.Request(ENDPOINT + "/", data=b"x" * (6 * 1024 * 1024), headers={"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"}, method="POST")
try:
    urllib.request.urlopen(req, timeout=10)
    check(False, "an oversized body is refused")
except urllib.error.HTTPError as e:
    check(e.code == 413, f"an oversized body is refused before it is read: {e.code}")
except (ConnectionError, urllib.error.URLError):
    check(True, "an oversized body is refused (connection closed before the body was read)")

# ---- Signatures -----------------------------------------------------------------
status, body = signed_post("Action=ListQueues", secret="wrong" * 8)
check(status == 403 and "SignatureDoesNotMatch" in body, f"a wrong secret is refused: {status} {body}")
r = urllib.request.Request(ENDPOINT + "/", data=b"{}", headers={"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}, method="POST")
try:
    urllib.request.urlopen(r, timeout=10)
    check(False, "an unsigned request is refused")
except urllib.error.HTTPError as e:
    check(e.code == 403 and "MissingAuthenticationToken" in e.read().decode(), "unsigned → MissingAuthenticationToken")
stranger = boto3.client("sqs", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40)
code, _ = error_code(stranger.list_queues)
check(code == "InvalidClientTokenId", f"an unknown access key: {code}")

# ---- SSM Parameter Store --------------------------------------------------------
ssm.put_parameter(Name="/conf/app/plain", Value="v1", Type="String")
ssm.put_parameter(Name="/conf/app/list", Value="a,b,c", Type="StringList")
ssm.put_parameter(Name="/conf/app/deep/secret", Value="conformance-secret-value", Type="SecureString")
ssm.put_parameter(Name="/conf/app/keyed", Value="conformance-keyed-value", Type="SecureString", KeyId="alias/custom")
p = ssm.get_parameter(Name="/conf/app/deep/secret")["Parameter"]
check(p["Type"] == "SecureString" and p["Value"] != "conformance-secret-value", "without decryption the value stays encrypted")
p = ssm.get_parameter(Name="/conf/app/deep/secret", WithDecryption=True)["Parameter"]
check(p["Value"] == "conformance-secret-value" and p["Version"] == 1, "WithDecryption")
try:
    ssm.put_parameter(Name="/conf/app/plain", Value="v2", Type="String")
    check(False, "overwrite needs Overwrite")
except ssm.exceptions.ParameterAlreadyExists:
    check(True, "ParameterAlreadyExists")
check(ssm.put_parameter(Name="/conf/app/plain", Value="v2", Type="String", Overwrite=True)["Version"] == 2, "version 2")
check(ssm.get_parameter(Name="/conf/app/plain:1")["Parameter"]["Value"] == "v1", "name:version")
r = ssm.get_parameters(Names=["/conf/app/plain", "/conf/nope"])
check([x["Value"] for x in r["Parameters"]] == ["v2"] and r["InvalidParameters"] == ["/conf/nope"], "GetParameters")
names = sorted(x["Name"] for x in ssm.get_parameters_by_path(Path="/conf/app")["Parameters"])
check(names == ["/conf/app/keyed", "/conf/app/list", "/conf/app/plain"], f"by path, one level: {names}")
pages = ssm.get_paginator("get_parameters_by_path").paginate(Path="/conf", Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 2})
every = [x for page in pages for x in page["Parameters"]]
check(len(every) == 4 and {x["Value"] for x in every} >= {"conformance-secret-value"}, "by path, recursive, paginated, decrypted")
hist = ssm.get_parameter_history(Name="/conf/app/plain")["Parameters"]
check([h["Value"] for h in hist] == ["v1", "v2"], "history")
# History in pages (AWS: MaxResults 1..50, oldest first; boto3's paginator follows NextToken).
for i in range(3, 8):
    ssm.put_parameter(Name="/conf/app/paged", Value=f"p{i}", Type="String", Overwrite=True)
pages = list(ssm.get_paginator("get_parameter_history").paginate(Name="/conf/app/paged", PaginationConfig={"PageSize": 2}))
check([h["Value"] for p in pages for h in p["Parameters"]] == ["p3", "p4", "p5", "p6", "p7"] and len(pages) == 3, f"history in pages: {pages}")
try:
    ssm.get_parameter_history(Name="/conf/app/paged", MaxResults=51)
    check(False, "MaxResults over 50")
except botocore.exceptions.ClientError as e:
    check(e.response["Error"]["Code"] == "ValidationException", "MaxResults over 50 refused")
d = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": ["/conf/app/k"]}])["Parameters"]
check([x["Name"] for x in d] == ["/conf/app/keyed"] and d[0]["KeyId"] == "alias/custom", "DescribeParameters with a filter and KeyId")
try:
    ssm.get_parameter(Name="/conf/missing")
    check(False, "a missing parameter")
except ssm.exceptions.ParameterNotFound:
    check(True, "ParameterNotFound")
try:
    ssm.put_parameter(Name="/conf/app/plain", Value="x", Type="SecureString", Overwrite=True)
    check(False, "type change")
except botocore.exceptions.ClientError as e:
    check(e.response["Error"]["Code"] == "HierarchyTypeMismatchException", "type change refused")
ssm.delete_parameter(Name="/conf/app/list")
code, _ = error_code(ssm.get_parameter, Name="/conf/app/list")
check(code == "ParameterNotFound", "deleted")
# Labels: attached to a version (moved from another), invalid ones listed, read by name:label.
r = ssm.label_parameter_version(Name="/conf/app/plain", ParameterVersion=1, Labels=["stable", "1bad"])
check(r["ParameterVersion"] == 1 and r["InvalidLabels"] == ["1bad"], "LabelParameterVersion")
ssm.label_parameter_version(Name="/conf/app/plain", Labels=["stable"])
p = ssm.get_parameter(Name="/conf/app/plain:stable")["Parameter"]
check(p["Value"] == "v2" and p["Selector"] == ":stable", "a label moved to the latest version")
hist = ssm.get_parameter_history(Name="/conf/app/plain")["Parameters"]
check([h["Labels"] for h in hist] == [[], ["stable"]], "labels in GetParameterHistory")
code, _ = error_code(ssm.get_parameter, Name="/conf/app/plain:nope")
check(code == "ParameterVersionLabelNotFound", "an unknown label")
# Tags: on the parameter, by name; DescribeParameters filters by them.
ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId="/conf/app/plain", Tags=[{"Key": "team", "Value": "conf"}])
tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/conf/app/plain")["TagList"]
check(tags == [{"Key": "team", "Value": "conf"}], "ListTagsForResource")
d = ssm.describe_parameters(ParameterFilters=[{"Key": "tag:team", "Values": ["conf"]}])["Parameters"]
check([x["Name"] for x in d] == ["/conf/app/plain"], "DescribeParameters by tag")
code, _ = error_code(ssm.put_parameter, Name="/conf/app/t", Value="v", Type="String", Overwrite=True, Tags=[{"Key": "k", "Value": "v"}])
check(code == "ValidationException", "Tags with Overwrite refused")


# ---- S3 -------------------------------------------------------------------------
import hashlib
import http.client
import base64
import zlib
from urllib.parse import urlparse

s3 = boto3.client("s3")
BUCKET = "conf-bucket"
s3.create_bucket(Bucket=BUCKET)
s3.head_bucket(Bucket=BUCKET)
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
check(BUCKET in names and "shop-test-api-results" in names, f"ListBuckets has the manifest's bucket: {names}")
check(s3.get_bucket_versioning(Bucket="shop-test-api-results").get("Status") == "Enabled", "the manifest's versioning")
code, _ = error_code(s3.head_bucket, Bucket="conf-missing-bucket")
check(code == "404", f"HeadBucket of a missing bucket: {code}")

body = b"hello, object"
r = s3.put_object(Bucket=BUCKET, Key="dir/a.txt", Body=body, ContentType="text/plain", Metadata={"owner": "conf"}, CacheControl="no-cache")
check(r["ETag"] == '"' + hashlib.md5(body).hexdigest() + '"', "PutObject ETag is the MD5")
g = s3.get_object(Bucket=BUCKET, Key="dir/a.txt")
check(g["Body"].read() == body and g["ContentType"] == "text/plain" and g["Metadata"] == {"owner": "conf"} and g["CacheControl"] == "no-cache", "GetObject: body, type, metadata")
h = s3.head_object(Bucket=BUCKET, Key="dir/a.txt")
check(h["ContentLength"] == len(body) and h["ETag"] == r["ETag"], "HeadObject")
g = s3.get_object(Bucket=BUCKET, Key="dir/a.txt", Range="bytes=7-11")
check(g["Body"].read() == b"objec" and g["ContentRange"] == f"bytes 7-11/{len(body)}" and g["ResponseMetadata"]["HTTPStatusCode"] == 206, "a byte range")
check(s3.get_object(Bucket=BUCKET, Key="dir/a.txt", Range="bytes=-3")["Body"].read() == b"ect", "a suffix range")
code, _ = error_code(s3.get_object, Bucket=BUCKET, Key="dir/a.txt", Range="bytes=100-200")
check(code == "InvalidRange", f"a range past the end: {code}")
code, _ = error_code(s3.get_object, Bucket=BUCKET, Key="dir/a.txt", IfNoneMatch=r["ETag"])
check(code == "304", f"If-None-Match with the ETag: {code}")
code, _ = error_code(s3.get_object, Bucket=BUCKET, Key="dir/a.txt", IfMatch='"0000"')
check(code == "PreconditionFailed", f"If-Match another ETag: {code}")
check(s3.get_object(Bucket=BUCKET, Key="dir/a.txt", IfMatch=r["ETag"])["Body"].read() == body, "If-Match the ETag")
code, _ = error_code(s3.put_object, Bucket=BUCKET, Key="dir/a.txt", Body=b"x", IfNoneMatch="*")
check(code == "PreconditionFailed", f"If-None-Match: * on an existing key: {code}")
code, e = error_code(s3.get_object, Bucket=BUCKET, Key="missing")
check(code == "NoSuchKey", f"GetObject of a missing key: {code}")
code, _ = error_code(s3.put_object, Bucket="conf-missing-bucket", Key="k", Body=b"x")
check(code == "NoSuchBucket", f"PutObject to a missing bucket: {code}")

# Checksums: the SDK's default (CRC32 with an aws-chunked trailer), and explicit ones.
r = s3.put_object(Bucket=BUCKET, Key="sum/default", Body=b"checksummed")
crc = base64.b64encode((zlib.crc32(b"checksummed") & 0xFFFFFFFF).to_bytes(4, "big")).decode()
check(r.get("ChecksumCRC32") == crc, f"default CRC32 checksum stored and returned: {r.get('ChecksumCRC32')} vs {crc}")
g = s3.get_object(Bucket=BUCKET, Key="sum/default", ChecksumMode="ENABLED")
check(g.get("ChecksumCRC32") == crc and g["Body"].read() == b"checksummed", "GetObject with ChecksumMode returns it (and the SDK validated it)")
for algo in ("SHA256", "SHA1"):  # CRC32C needs botocore[crt]; the Rust SDK test covers it
    r = s3.put_object(Bucket=BUCKET, Key=f"sum/{algo}", Body=b"payload-" + algo.encode(), ChecksumAlgorithm=algo)
    check(r.get("Checksum" + algo), f"PutObject with {algo}")
    check(s3.head_object(Bucket=BUCKET, Key=f"sum/{algo}", ChecksumMode="ENABLED").get("Checksum" + algo) == r["Checksum" + algo], f"HeadObject returns {algo}")
code, _ = error_code(s3.put_object, Bucket=BUCKET, Key="sum/bad", Body=b"data", ChecksumSHA256=base64.b64encode(hashlib.sha256(b"other").digest()).decode())
check(code == "BadDigest", f"a wrong SHA256: {code}")
code, _ = error_code(s3.put_object, Bucket=BUCKET, Key="sum/badmd5", Body=b"data", ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
check(code == "BadDigest", f"a wrong Content-MD5: {code}")
code, _ = error_code(s3.head_object, Bucket=BUCKET, Key="sum/bad")
check(code == "404", "nothing was written for a failed checksum")

# Copy.
s3.copy_object(Bucket=BUCKET, Key="dir/copy.txt", CopySource={"Bucket": BUCKET, "Key": "dir/a.txt"})
c = s3.get_object(Bucket=BUCKET, Key="dir/copy.txt")
check(c["Body"].read() == body and c["Metadata"] == {"owner": "conf"}, "CopyObject keeps data and metadata")
s3.copy_object(Bucket=BUCKET, Key="dir/copy2.txt", CopySource={"Bucket": BUCKET, "Key": "dir/a.txt"}, MetadataDirective="REPLACE", Metadata={"n": "2"}, ContentType="application/x-test")
c = s3.head_object(Bucket=BUCKET, Key="dir/copy2.txt")
check(c["Metadata"] == {"n": "2"} and c["ContentType"] == "application/x-test", "CopyObject with REPLACE")

# Listing: prefix, delimiter, pagination, keys that need URL encoding.
for k in ["list/a", "list/b/1", "list/b/2", "list/c", "list/d e+f%", "list/z/9"]:
    s3.put_object(Bucket=BUCKET, Key=k, Body=b"l")
r = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/")
check([o["Key"] for o in r["Contents"]] == ["list/a", "list/c", "list/d e+f%"], f"ListObjectsV2 keys: {[o['Key'] for o in r['Contents']]}")
check([p["Prefix"] for p in r["CommonPrefixes"]] == ["list/b/", "list/z/"], "common prefixes")
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="list/", PaginationConfig={"PageSize": 2}))
keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
check(len(pages) == 3 and keys == ["list/a", "list/b/1", "list/b/2", "list/c", "list/d e+f%", "list/z/9"], f"pagination: {len(pages)} pages {keys}")
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": 1}))
seen = [o["Key"] for p in pages for o in p.get("Contents", [])] + [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
check(sorted(seen) == ["list/a", "list/b/", "list/c", "list/d e+f%", "list/z/"], f"pagination across prefixes: {seen}")
r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "list/a"}, {"Key": "list/c"}, {"Key": "never-existed"}]})
check(len(r["Deleted"]) == 3, "DeleteObjects")
check([o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/")["Contents"]] == ["list/d e+f%"], "deleted by DeleteObjects")

# Versioning and delete markers.
VB = "conf-versions"
s3.create_bucket(Bucket=VB)
s3.put_bucket_versioning(Bucket=VB, VersioningConfiguration={"Status": "Enabled"})
v1 = s3.put_object(Bucket=VB, Key="k", Body=b"one")["VersionId"]
v2 = s3.put_object(Bucket=VB, Key="k", Body=b"two")["VersionId"]
check(v1 != v2 and v1 != "null", "each put makes a version")
d = s3.delete_object(Bucket=VB, Key="k")
check(d.get("DeleteMarker") is True and d.get("VersionId"), "DELETE makes a delete marker")
try:
    s3.get_object(Bucket=VB, Key="k")
    check(False, "GET after a delete marker")
except botocore.exceptions.ClientError as e:
    check(e.response["Error"]["Code"] == "NoSuchKey" and e.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true", "GET → 404 NoSuchKey with x-amz-delete-marker")
try:
    s3.get_object(Bucket=VB, Key="k", VersionId=d["VersionId"])
    check(False, "GET of a marker by versionId")
except botocore.exceptions.ClientError as e:
    check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 405 and e.response["Error"]["Code"] == "MethodNotAllowed", f"GET of a marker → 405: {e.response['Error']}")
check(s3.get_object(Bucket=VB, Key="k", VersionId=v1)["Body"].read() == b"one", "GET by versionId")
lv = s3.list_object_versions(Bucket=VB)
check(sorted(v["VersionId"] for v in lv["Versions"]) == sorted([v1, v2]) and len(lv["DeleteMarkers"]) == 1 and lv["DeleteMarkers"][0]["IsLatest"], "ListObjectVersions")
code, _ = error_code(s3.delete_bucket, Bucket=VB)
check(code == "BucketNotEmpty", f"DeleteBucket with versions: {code}")
s3.delete_object(Bucket=VB, Key="k", VersionId=d["VersionId"])
check(s3.get_object(Bucket=VB, Key="k")["Body"].read() == b"two", "removing the marker brings the object back")
for v in (v1, v2):
    s3.delete_object(Bucket=VB, Key="k", VersionId=v)
check(not s3.list_object_versions(Bucket=VB).get("Versions"), "DELETE with versionId removes permanently")
s3.delete_bucket(Bucket=VB)
code, _ = error_code(s3.head_bucket, Bucket=VB)
check(code == "404", "DeleteBucket")

# Multipart.
big = os.urandom(5 * 1024 * 1024)
mp = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/obj", ContentType="application/octet-stream")
p1 = s3.upload_part(Bucket=BUCKET, Key="mp/obj", UploadId=mp["UploadId"], PartNumber=1, Body=big)
p2 = s3.upload_part(Bucket=BUCKET, Key="mp/obj", UploadId=mp["UploadId"], PartNumber=2, Body=b"tail")
parts = s3.list_parts(Bucket=BUCKET, Key="mp/obj", UploadId=mp["UploadId"])["Parts"]
check([p["PartNumber"] for p in parts] == [1, 2] and parts[0]["Size"] == len(big), "ListParts")
check(any(u["UploadId"] == mp["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]), "ListMultipartUploads")
done = s3.complete_multipart_upload(Bucket=BUCKET, Key="mp/obj", UploadId=mp["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
expect = hashlib.md5(hashlib.md5(big).digest() + hashlib.md5(b"tail").digest()).hexdigest() + "-2"
check(done["ETag"] == f'"{expect}"', f"multipart ETag {done['ETag']} vs {expect}")
g = s3.get_object(Bucket=BUCKET, Key="mp/obj")
check(g["Body"].read() == big + b"tail" and g["ContentType"] == "application/octet-stream", "the assembled object")
small = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/small")
a = s3.upload_part(Bucket=BUCKET, Key="mp/small", UploadId=small["UploadId"], PartNumber=1, Body=b"x")
b_ = s3.upload_part(Bucket=BUCKET, Key="mp/small", UploadId=small["UploadId"], PartNumber=2, Body=b"y")
code, _ = error_code(s3.complete_multipart_upload, Bucket=BUCKET, Key="mp/small", UploadId=small["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": a["ETag"]}, {"PartNumber": 2, "ETag": b_["ETag"]}]})
check(code == "EntityTooSmall", f"a small first part: {code}")
code, _ = error_code(s3.complete_multipart_upload, Bucket=BUCKET, Key="mp/small", UploadId=small["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": a["ETag"]}]})
check(code == "InvalidPart", f"a part never uploaded: {code}")
s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/small", UploadId=small["UploadId"])
code, _ = error_code(s3.list_parts, Bucket=BUCKET, Key="mp/small", UploadId=small["UploadId"])
check(code == "NoSuchUpload", f"after AbortMultipartUpload: {code}")

# Presigned URLs, and virtual-hosted addressing on *.localhost. botocore presigns
# S3 URLs with Signature Version 2 unless told otherwise; AWS (and we) refuse those.
v2url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "dir/a.txt"}, ExpiresIn=60)
if "AWSAccessKeyId=" in v2url:
    try:
        urllib.request.urlopen(v2url, timeout=10)
        check(False, "a Signature Version 2 presigned URL")
    except urllib.error.HTTPError as e:
        check(e.code == 400 and b"InvalidRequest" in e.read(), f"a SigV2 presigned URL is refused: {e.code}")
s3v4 = boto3.client("s3", config=botocore.config.Config(signature_version="s3v4"))
url = s3v4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "dir/a.txt"}, ExpiresIn=60)
with urllib.request.urlopen(url, timeout=10) as resp:
    check(resp.read() == body, "a presigned GET")
try:
    urllib.request.urlopen(url.replace("dir/a.txt", "dir/copy.txt"), timeout=10)
    check(False, "a tampered presigned URL")
except urllib.error.HTTPError as e:
    check(e.code == 403, f"a tampered presigned URL is refused: {e.code}")
port = urlparse(ENDPOINT).port
vh = boto3.client("s3", endpoint_url=f"http://localhost:{port}", config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
vurl = urlparse(vh.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "dir/a.txt"}, ExpiresIn=60))
check(vurl.hostname == f"{BUCKET}.localhost", f"virtual-hosted URL: {vurl.geturl()}")
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
conn.request("GET", vurl.path + "?" + vurl.query, headers={"Host": vurl.netloc})
resp = conn.getresponse()
check(resp.status == 200 and resp.read() == body, f"virtual-hosted GET on {BUCKET}.localhost: {resp.status}")
bad = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/bad")
mreq2 = AWSRequest(method="POST", url=f"{ENDPOINT}/{BUCKET}/mp/bad?uploadId={bad['UploadId']}", data=b"<CompleteMultipartUpload><Part>", headers={"Content-Type": "application/xml", "x-amz-content-sha256": hashlib.sha256(b"<CompleteMultipartUpload><Part>").hexdigest()})
SigV4Auth(creds, "s3", REGION).add_auth(mreq2)
r = urllib.request.Request(mreq2.url, data=mreq2.body, headers=dict(mreq2.headers.items()), method="POST")
try:
    urllib.request.urlopen(r, timeout=10)
    check(False, "malformed XML is refused")
except urllib.error.HTTPError as e:
    text_ = e.read().decode()
    check(e.code == 400 and "MalformedXML" in text_, f"malformed XML → MalformedXML: {e.code} {text_}")
code, _ = error_code(boto3.client("s3", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40).list_buckets)
check(code == "InvalidAccessKeyId", f"S3 with an unknown key: {code}")

# ---- S3: tags, encryption, policies, lifecycle, UploadPartCopy (boto3's own view) ----
s3.put_object(Bucket=BUCKET, Key="tagged", Body=b"t", Tagging="team=blue&env=conf")
tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BUCKET, Key="tagged")["TagSet"]}
check(tags == {"team": "blue", "env": "conf"}, f"PutObject Tagging → GetObjectTagging: {tags}")
check(s3.get_object(Bucket=BUCKET, Key="tagged").get("TagCount") == 2, "GetObject reports x-amz-tagging-count")
s3.put_object_tagging(Bucket=BUCKET, Key="tagged", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
check(s3.get_object_tagging(Bucket=BUCKET, Key="tagged")["TagSet"] == [{"Key": "k", "Value": "v"}], "PutObjectTagging replaces the set")
code, _ = error_code(s3.put_object_tagging, Bucket=BUCKET, Key="tagged", Tagging={"TagSet": [{"Key": f"k{n}", "Value": "v"} for n in range(11)]})
check(code == "InvalidTag", f"11 tags: {code}")
check(s3.head_object(Bucket=BUCKET, Key="tagged").get("ServerSideEncryption") == "AES256", "objects report SSE-S3")
r = s3.put_object(Bucket=BUCKET, Key="kms", Body=b"k", ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/conf")
check(r.get("ServerSideEncryption") == "aws:kms" and r.get("SSEKMSKeyId") == "alias/conf", f"SSE-KMS is reported: {r.get('ServerSideEncryption')}")
# A managed copy of a large object goes part by part through UploadPartCopy.
big = bytes(range(256)) * (9 * 4096)  # 9 MiB
s3.put_object(Bucket=BUCKET, Key="big/src", Body=big)
from boto3.s3.transfer import TransferConfig
s3.copy({"Bucket": BUCKET, "Key": "big/src"}, BUCKET, "big/dst", Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
d = s3.get_object(Bucket=BUCKET, Key="big/dst")
check(d["Body"].read() == big and d["ETag"].endswith('-2"'), f"boto3's managed copy (UploadPartCopy, 2 parts): {d['ETag']}")
policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{BUCKET}/keep/*"}]})
code, _ = error_code(s3.put_bucket_policy, Bucket=BUCKET, Policy="{")
check(code == "MalformedPolicy", f"a policy that is not JSON: {code}")
s3.put_bucket_policy(Bucket=BUCKET, Policy=policy)
check(json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"]) == json.loads(policy), "GetBucketPolicy reads it back")
s3.put_object(Bucket=BUCKET, Key="keep/x", Body=b"x")
code, _ = error_code(s3.delete_object, Bucket=BUCKET, Key="keep/x")
check(code == "AccessDenied", f"a bucket policy's Deny applies: {code}")
s3.delete_bucket_policy(Bucket=BUCKET)
s3.delete_object(Bucket=BUCKET, Key="keep/x")
rules = s3.get_bucket_lifecycle_configuration(Bucket="shop-test-api-results")["Rules"]
check(any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 7 for r in rules), f"up sets the manifest bucket's lifecycle rules: {rules}")
s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]})
got = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
check(got[0]["ID"] == "tmp" and got[0]["Expiration"]["Days"] == 1 and got[0]["Filter"]["Prefix"] == "tmp/", f"lifecycle read back: {got}")
s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]})
check(s3.get_bucket_cors(Bucket=BUCKET)["CORSRules"][0]["AllowedMethods"] == ["GET"], "CORS read back")

# ---- The AWS CLI ------------------------------------------------------------------
aws = os.environ.get("PANTSTACK_AWS_CLI", "aws")
def cli(*args):
    out = subprocess.run([aws, "--endpoint-url", ENDPOINT, "--output", "json", *args], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, f"aws {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout) if out.stdout.strip() else {}
q = cli("sqs", "create-queue", "--queue-name", "conf-cli")["QueueUrl"]
cli("sqs", "send-message", "--queue-url", q, "--message-body", "from the cli")
check(cli("sqs", "receive-message", "--queue-url", q)["Messages"][0]["Body"] == "from the cli", "aws sqs receive-message")
cli("ssm", "put-parameter", "--name", "/conf/cli", "--value", "cli-secret", "--type", "SecureString")
check(cli("ssm", "get-parameter", "--name", "/conf/cli", "--with-decryption")["Parameter"]["Value"] == "cli-secret", "aws ssm get-parameter --with-decryption")
# AWS_ENDPOINT_URL alone (no --endpoint-url) for services the CLI v1 does not pin.
out = subprocess.run([aws, "--output", "json", "ssm", "get-parameter", "--name", "/conf/cli"], capture_output=True, text=True, timeout=60)
check(out.returncode == 0 and json.loads(out.stdout)["Parameter"]["Name"] == "/conf/cli", f"aws ssm with AWS_ENDPOINT_URL only: {out.stderr}")

src = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"conf-cli-{os.getpid()}.txt")
with open(src, "w") as f:
    f.write("via the cli\n")
out = subprocess.run([aws, "--output", "json", "s3", "cp", src, f"s3://{BUCKET}/cli/file.txt"], capture_output=True, text=True, timeout=60)
check(out.returncode == 0, f"aws s3 cp (AWS_ENDPOINT_URL): {out.stderr}")
out = subprocess.run([aws, "s3", "ls", f"s3://{BUCKET}/cli/"], capture_output=True, text=True, timeout=60)
check(out.returncode == 0 and "file.txt" in out.stdout, f"aws s3 ls: {out.stdout} {out.stderr}")
check(s3.get_object(Bucket=BUCKET, Key="cli/file.txt")["Body"].read() == b"via the cli\n", "what the CLI uploaded")
os.remove(src)

print(f"conformance: {checks} checks passed")
