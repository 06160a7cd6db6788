//! CloudWatch custom metrics through real clients: boto3 (RPC v2 CBOR, its
//! default for CloudWatch), botocore forced to JSON 1.0, and the AWS CLI, against
//! an endpoint of its own. Put then get with each statistic, list with filters
//! and paging, IAM scoped by `cloudwatch:namespace`, AWS's validation errors, and
//! datapoints kept across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use pantstack_endpoint::iam::Policy;
use pantstack_endpoint::{Config, Core, USER, cloudwatch, http};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";

/// The Python with boto3 and the AWS CLI that .ci/run installs.
fn clients() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("PANTSTACK_AWS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            PathBuf::from(home).join(".cache/pantstack-ci/awsclients")
        });
    let py = dir.join("bin/python");
    let aws = dir.join("bin/aws");
    assert!(
        py.is_file() && aws.is_file(),
        "boto3 and the AWS CLI are missing from {}: `bash .ci/run` installs them (or set PANTSTACK_AWS_CLIENTS to a virtualenv with boto3 and awscli)",
        dir.display()
    );
    (py, aws)
}

struct Running {
    core: Arc<Core>,
    server: http::Server,
}

async fn start(dir: &Path) -> Running {
    // The unit `api` may put into its own namespace only, and read.
    let mut policies = HashMap::new();
    policies.insert(
        "api".to_string(),
        Policy::default()
            .allow(
                &["cloudwatch:PutMetricData"],
                vec![cloudwatch::namespace_resource("shop/test/api")],
            )
            .allow(
                &["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"],
                vec!["*".into()],
            ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let core = loop {
        let config = Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: REGION.into(),
            principals: vec!["api".into()],
            policies: policies.clone(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        };
        match Core::open(&config) {
            Ok(c) => break Arc::new(c),
            Err(e) if Instant::now() < deadline && e.contains("in use") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    };
    let server = http::serve(core.clone(), 0).await.expect("serve");
    Running { core, server }
}

async fn stop(r: Running) {
    r.server.shutdown();
    drop(r);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Runs `script` with boto3 signing as `principal`; its stdout must end in `ok`.
fn python(r: &Running, principal: &str, script: &str) -> String {
    let (py, aws) = clients();
    let creds = r.core.credentials(principal);
    let out = Command::new(py)
        .args(["-c", script])
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", &creds.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_ENDPOINT_URL", r.server.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("PANTSTACK_AWS_CLI", aws)
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{principal}'s script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const PRELUDE: &str = r#"
import boto3, botocore, datetime, json, os, subprocess, time
cw = boto3.client("cloudwatch")
now = int(time.time())
base = now - now % 60 - 600
def ts(s): return datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
def err(f, **kw):
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    raise AssertionError("no error for %r" % (kw,))
def get(stat, period=60, ns="shop/test/api", name="Orders", dims=None, **kw):
    m = {"Namespace": ns, "MetricName": name, "Dimensions": dims if dims is not None else [{"Name": "Region", "Value": "eu"}]}
    r = cw.get_metric_data(MetricDataQueries=[{"Id": "q", "MetricStat": {"Metric": m, "Period": period, "Stat": stat}}],
                           StartTime=ts(base - 600), EndTime=ts(now + 60), **kw)
    res = r["MetricDataResults"][0]
    return [(int(t.timestamp()), v) for t, v in zip(res["Timestamps"], res["Values"])]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_puts_gets_lists_and_a_restart_keeps_the_datapoints() {
    let dir = std::env::temp_dir().join(format!("pantstack-cw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let r = start(&dir).await;
    let script = format!(
        r#"{PRELUDE}
d = [{{"Name": "Region", "Value": "eu"}}]
# Minute 0: single values 1, 2, 3 and a Values/Counts datum {{10 x2, 20}}.
for v in (1, 2, 3):
    cw.put_metric_data(Namespace="shop/test/api", MetricData=[{{"MetricName": "Orders", "Dimensions": d, "Value": v, "Unit": "Count", "Timestamp": ts(base + 5)}}])
cw.put_metric_data(Namespace="shop/test/api", MetricData=[{{"MetricName": "Orders", "Dimensions": d, "Values": [10, 20], "Counts": [2, 1], "Timestamp": ts(base + 10), "StorageResolution": 1}}])
# Minute 1: a statistic set.
cw.put_metric_data(Namespace="shop/test/api", MetricData=[{{"MetricName": "Orders", "Dimensions": d, "StatisticValues": {{"SampleCount": 4, "Sum": 40, "Minimum": 5, "Maximum": 15}}, "Timestamp": ts(base + 70)}}])
m0, m1 = base, base + 60
assert get("Sum") == [(m1, 40.0), (m0, 46.0)], get("Sum")
assert get("SampleCount", ScanBy="TimestampAscending") == [(m0, 6.0), (m1, 4.0)]
assert get("Average") == [(m1, 10.0), (m0, 46.0 / 6)], get("Average")
assert get("Minimum") == [(m1, 5.0), (m0, 1.0)]
assert get("Maximum") == [(m1, 15.0), (m0, 20.0)]
# Percentiles come from values; the statistic set has none.
assert get("p50") == [(m0, 3.0)], get("p50")
assert get("p99") == [(m0, 20.0)], get("p99")
# A 5-minute period sums both minutes (base is a multiple of 60, not of 300).
five = get("Sum", period=300)
assert sum(v for _, v in five) == 86.0 and all(t % 300 == 0 for t, _ in five), five
# ReturnData false and Label.
r = cw.get_metric_data(MetricDataQueries=[
    {{"Id": "a", "Label": "orders", "MetricStat": {{"Metric": {{"Namespace": "shop/test/api", "MetricName": "Orders", "Dimensions": d}}, "Period": 60, "Stat": "Sum"}}}},
    {{"Id": "b", "ReturnData": False, "MetricStat": {{"Metric": {{"Namespace": "shop/test/api", "MetricName": "Orders", "Dimensions": d}}, "Period": 60, "Stat": "Sum"}}}}],
    StartTime=ts(base - 600), EndTime=ts(now + 60))
assert [(x["Id"], x["Label"], x["StatusCode"]) for x in r["MetricDataResults"]] == [("a", "orders", "Complete")], r
# Another dimension value is another metric.
assert get("Sum", dims=[{{"Name": "Region", "Value": "us"}}]) == []
# 520 metrics to page through, in batches of 1000 datums at most.
cw.put_metric_data(Namespace="shop/test/api", MetricData=[{{"MetricName": "Page", "Dimensions": [{{"Name": "N", "Value": str(i)}}], "Value": i}} for i in range(520)])
ms, token, pages = [], None, 0
while True:
    kw = {{"NextToken": token}} if token else {{}}
    p = cw.list_metrics(Namespace="shop/test/api", MetricName="Page", **kw)
    ms += p["Metrics"]; pages += 1
    token = p.get("NextToken")
    if not token: break
assert pages == 2 and len(ms) == 520 and len({{m["Dimensions"][0]["Value"] for m in ms}}) == 520, (pages, len(ms))
l = cw.list_metrics(Dimensions=[{{"Name": "Region", "Value": "eu"}}])["Metrics"]
assert l == [{{"Namespace": "shop/test/api", "MetricName": "Orders", "Dimensions": d}}], l
assert cw.list_metrics(Dimensions=[{{"Name": "Region"}}], MetricName="Orders")["Metrics"] == l
assert cw.list_metrics(Namespace="other")["Metrics"] == []
# The paginator follows NextToken too.
assert sum(len(p["Metrics"]) for p in cw.get_paginator("list_metrics").paginate(MetricName="Page")) == 520
# Errors, with CloudWatch's codes.
c, m = err(cw.put_metric_data, Namespace="AWS/EC2", MetricData=[{{"MetricName": "x", "Value": 1}}])
assert c == "InvalidParameterValue" and "AWS/" in m, (c, m)
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x", "Value": 1}}] * 1001)
assert c == "InvalidParameterValue" and "1000" in m, (c, m)
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x", "Value": 1e200}}])
assert c == "InvalidParameterValue", (c, m)
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x", "Value": 1, "StatisticValues": {{"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}}}])
assert c == "InvalidParameterCombination", (c, m)
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x"}}])
assert c == "MissingParameter", (c, m)
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x", "Value": 1, "Timestamp": ts(now - 15 * 86400)}}])
assert c == "InvalidParameterValue" and "two weeks" in m, (c, m)
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x", "Values": [1, 2], "Counts": [1]}}])
assert c == "InvalidParameterValue", (c, m)
c, m = err(cw.get_metric_data, MetricDataQueries=[{{"Id": "Q", "MetricStat": {{"Metric": {{"Namespace": "n", "MetricName": "m"}}, "Period": 60, "Stat": "Sum"}}}}], StartTime=ts(base), EndTime=ts(now))
assert c == "InvalidParameterValue", (c, m)
c, m = err(cw.get_metric_data, MetricDataQueries=[{{"Id": "q", "MetricStat": {{"Metric": {{"Namespace": "n", "MetricName": "m"}}, "Period": 60, "Stat": "Median"}}}}], StartTime=ts(base), EndTime=ts(now))
assert c == "InvalidParameterValue", (c, m)
c, m = err(cw.list_metrics, NextToken="garbage")
assert c == "InvalidNextToken", (c, m)
# A control character in a name, and a request over AWS's 1 MB (boto3 gzips it;
# what counts is the content): refused, nothing stored.
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=[{{"MetricName": "x\u0001", "Value": 1}}])
assert c == "InvalidParameterValue" and "control character" in m, (c, m)
big = [{{"MetricName": "Big", "Value": 1, "Dimensions": [{{"Name": "d%02d" % i, "Value": "v" * 1000}} for i in range(30)]}}] * 40
c, m = err(cw.put_metric_data, Namespace="shop/test/api", MetricData=big)
assert c == "InvalidParameterValue" and "split its MetricData" in m, (c, m)
assert not cw.list_metrics(MetricName="Big")["Metrics"]
# boto3 speaks JSON 1.0 to CloudWatch; forced to RPC v2 CBOR it gets the same answers.
assert cw.meta.service_model.resolved_protocol == "json"
import botocore.model
botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = ("smithy-rpc-v2-cbor",)
j2 = boto3.session.Session().client("cloudwatch")
assert j2.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
j2.put_metric_data(Namespace="shop/test/api", MetricData=[{{"MetricName": "Big", "Value": i, "Timestamp": ts(base + 5)}} for i in range(600)])
assert get("Sum", name="Big", dims=[]) == [(base, float(sum(range(600))))]
j2.put_metric_data(Namespace="shop/test/api", MetricData=[{{"MetricName": "Cbor", "Value": 7, "Timestamp": ts(base + 5)}}])
res = j2.get_metric_data(MetricDataQueries=[{{"Id": "q", "MetricStat": {{"Metric": {{"Namespace": "shop/test/api", "MetricName": "Cbor"}}, "Period": 60, "Stat": "Sum"}}}}], StartTime=ts(base - 600), EndTime=ts(now + 60))["MetricDataResults"][0]
assert [int(t.timestamp()) for t in res["Timestamps"]] == [base] and res["Values"] == [7.0], res
try:
    j2.put_metric_data(Namespace="AWS/X", MetricData=[{{"MetricName": "x", "Value": 1}}])
    raise AssertionError("AWS/ accepted over CBOR")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidParameterValue", e.response
# The AWS CLI.
out = subprocess.run([os.environ["PANTSTACK_AWS_CLI"], "cloudwatch", "put-metric-data", "--namespace", "shop/test/api",
                      "--metric-name", "Cli", "--value", "3", "--unit", "Seconds"], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
out = subprocess.run([os.environ["PANTSTACK_AWS_CLI"], "cloudwatch", "list-metrics", "--metric-name", "Cli"], capture_output=True, text=True)
assert out.returncode == 0 and json.loads(out.stdout)["Metrics"][0]["Namespace"] == "shop/test/api", out
# The query protocol (old SDKs) is refused with a message that says so.
botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = ("query",)
q = boto3.session.Session().client("cloudwatch")
assert q.meta.service_model.resolved_protocol == "query"
c, m = err(q.list_metrics)
assert c == "InvalidAction" and "query protocol" in m, (c, m)
print("ok")
"#
    );
    python(&r, "api", &script);
    // Another namespace is denied to the unit; `user` (no policy) may put anywhere.
    python(
        &r,
        "api",
        &format!(
            r#"{PRELUDE}
c, m = err(cw.put_metric_data, Namespace="shop/test/other", MetricData=[{{"MetricName": "x", "Value": 1}}])
assert c == "AccessDenied" and "cloudwatch:PutMetricData" in m, (c, m)
assert cw.list_metrics(Namespace="shop/test/other")["Metrics"] == []
print("ok")
"#
        ),
    );
    python(
        &r,
        USER,
        &format!(
            r#"{PRELUDE}
cw.put_metric_data(Namespace="shop/test/other", MetricData=[{{"MetricName": "x", "Value": 1}}])
print("ok")
"#
        ),
    );
    stop(r).await;
    // After a restart (the journal replayed) the datapoints are there.
    let r = start(&dir).await;
    python(
        &r,
        "api",
        &format!(
            r#"{PRELUDE}
m0, m1 = base, base + 60
assert get("Sum") == [(m1, 40.0), (m0, 46.0)], get("Sum")
assert get("p50") == [(m0, 3.0)]
assert len(cw.list_metrics(MetricName="Page")["Metrics"]) == 500
print("ok")
"#
        ),
    );
    // And after a compaction (the journal rewritten from the image) too.
    r.core.compact().expect("compact");
    stop(r).await;
    let r = start(&dir).await;
    python(
        &r,
        "api",
        &format!(
            r#"{PRELUDE}
assert get("Sum") == [(base + 60, 40.0), (base, 46.0)], get("Sum")
assert get("Maximum") == [(base + 60, 15.0), (base, 20.0)]
assert cw.list_metrics(Namespace="shop/test/other")["Metrics"][0]["MetricName"] == "x"
print("ok")
"#
        ),
    );
    stop(r).await;
    let _ = std::fs::remove_dir_all(&dir);
}
