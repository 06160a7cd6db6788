//! Metrics, target tracking and alarms of the local cloud, end to end: the real
//! binary, a real supervisor running the example api, real HTTP load on
//! loopback (bounded in time), `pantstack metrics`, `activity`, `alarms`.
//!
//! The metrics period is 1 s here (`local.metrics.period`), so "3 periods" and
//! "15 periods" are seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::{Cloud, text};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn json(c: &Cloud, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--env", c.env, "--format", "json"]);
    let o = c.run(&a);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

fn get(port: u16, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `threads` clients sending `path` in a loop until stopped (at most `limit`).
fn load(port: u16, path: &'static str, threads: usize, limit: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..threads {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + limit;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                get(port, path);
            }
        });
    }
    stop
}

fn activities(c: &Cloud) -> Vec<Value> {
    json(c, &["activity", "api"])["activities"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn desired(c: &Cloud) -> u64 {
    c.unit("api")["desired"].as_u64().expect("desired")
}

#[test]
fn cpu_load_scales_out_within_max_and_back_in_but_never_in_during_a_deployment() {
    let c = Cloud::new(
        "monitor-scaling",
        "local:\n  metrics:\n    period: 1s\n  healthcheck:\n    grace_period: 90s\n",
    );
    // min/max come from the stack file (Pulumi.test.yaml: 1..3); the target and
    // cooldowns are made short here.
    c.edit_manifest(
        "scaling:\n  min: 1\n  max: 10\n  cpu: 70\n",
        "scaling:\n  cpu: 50\n  cooldown_out: 2s\n  cooldown_in: 2s\n",
    );
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(60));
    let port = c.port();
    assert_eq!(desired(&c), 1);

    // A CPU-bound load: each request works 200 ms (the task's 256 CPU units are a
    // quarter core, so one busy client is ~400 %).
    let stop = load(port, "/busy?ms=200", 2, Duration::from_secs(90));
    let out = wait_for("a scale-out", Duration::from_secs(60), || {
        activities(&c)
            .into_iter()
            .find(|a| a["kind"] == "scale-out")
    });
    stop.store(true, Ordering::Relaxed);
    assert_eq!(out["from"], 1);
    assert_eq!(out["to"], 3, "capped at the stack file's max 3: {out}");
    let cause = out["cause"].as_str().unwrap_or("");
    assert!(
        cause.contains("CPUUtilization") && cause.contains("> 50"),
        "{cause}"
    );
    // The metrics that drove it are readable.
    let m = json(
        &c,
        &[
            "metrics",
            "api",
            "--metric",
            "CPUUtilization",
            "--since",
            "5m",
            "--period",
            "1s",
        ],
    );
    let points = m["series"][0]["points"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        points.iter().any(|p| p[1].as_f64().unwrap_or(0.0) > 50.0),
        "no CPU above target in {m}"
    );
    // Never beyond max while the load ran.
    assert!(desired(&c) <= 3);

    // Idle: scale-in after 15 periods below 0.9 × target, gradually.
    c.wait_healthy("api", 3, Duration::from_secs(60));
    let first_in = wait_for("a scale-in", Duration::from_secs(60), || {
        activities(&c).into_iter().find(|a| a["kind"] == "scale-in")
    });
    assert_eq!(
        (first_in["from"].as_u64(), first_in["to"].as_u64()),
        (Some(3), Some(2))
    );

    // A deployment whose tasks take 25 s to listen: scale-in is suspended while
    // it runs (recorded once), and happens once it has ended.
    let api = common::api_binary();
    c.edit_manifest(
        &format!("local: [\"{}\", \"serve\"]", api.display()),
        &format!(
            "local: [\"sh\", \"-c\", \"sleep 25; exec {} serve\"]",
            api.display()
        ),
    );
    let mut deploy = c
        .command(&["deploy", "api", "--env", c.env])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("deploy");
    wait_for("the deployment to start", Duration::from_secs(20), || {
        (!c.unit("api")["deployment"].is_null()).then_some(())
    });
    let suppressed = wait_for("a suspended scale-in", Duration::from_secs(40), || {
        activities(&c)
            .into_iter()
            .find(|a| a["status"] == "Suppressed")
    });
    assert!(
        !c.unit("api")["deployment"].is_null(),
        "the suspension came after the deployment: {suppressed}"
    );
    let during: Vec<Value> = activities(&c)
        .into_iter()
        .filter(|a| a["kind"] == "scale-in")
        .collect();
    assert_eq!(
        during.len(),
        1,
        "a scale-in during the deployment: {during:?}"
    );
    let _ = deploy.wait();
    // After the deployment: in to min 1.
    wait_for(
        "the scale-in to the minimum",
        Duration::from_secs(90),
        || (desired(&c) == 1).then_some(()),
    );
    let o = c.run(&["activity", "api", "--env", c.env]);
    let shown = text(&o.stdout);
    assert!(
        shown.contains("scale-out") || shown.contains("1 → 3"),
        "{shown}"
    );
}

/// A loopback HTTP server that keeps the bodies POSTed to it.
fn receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(50) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then the body by Content-Length.
            loop {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                let t = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = t.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let t = String::from_utf8_lossy(&buf).to_string();
            if let Some((_, body)) = t.split_once("\r\n\r\n") {
                keep.lock().expect("lock").push(body.to_string());
            }
        }
    });
    (port, got)
}

fn alarm(c: &Cloud, suffix: &str) -> Value {
    json(c, &["alarms", "api"])["alarms"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .find(|a| a["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
        .unwrap_or_else(|| panic!("no alarm *{suffix}"))
}

#[test]
fn a_5xx_burst_and_a_dead_letter_raise_alarms_with_actions_and_a_rollback_alarm_stops_a_deployment()
{
    let (hook_port, posted) = receiver();
    let marks = std::env::temp_dir().join(format!("pantstack-alarm-marks-{}", std::process::id()));
    let _ = std::fs::remove_file(&marks);
    let c = Cloud::new(
        "monitor-alarms",
        &format!(
            "local:\n  metrics:\n    period: 1s\n  healthcheck:\n    grace_period: 90s\n  alarms:\n    command: echo \"$PANTSTACK_ALARM_NAME $PANTSTACK_ALARM_STATE\" >> {}\n    url: http://127.0.0.1:{hook_port}/alarm\ndeployment:\n  rollback_alarms: true\n",
            marks.display()
        ),
    );
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(60));
    let port = c.port();
    wait_for(
        "the alarms to be evaluated",
        Duration::from_secs(30),
        || (alarm(&c, "-target-5xx")["state"] == "OK").then_some(()),
    );

    // A forced 5xx burst: more than 10 a minute for 3 periods.
    let stop = load(port, "/error", 1, Duration::from_secs(30));
    let a = wait_for("target-5xx in ALARM", Duration::from_secs(30), || {
        let a = alarm(&c, "-target-5xx");
        (a["state"] == "ALARM").then_some(a)
    });
    stop.store(true, Ordering::Relaxed);
    let reason = a["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("greater than the threshold (10.0)"),
        "{reason}"
    );
    // Back to OK once the errors stop.
    wait_for("target-5xx back to OK", Duration::from_secs(30), || {
        (alarm(&c, "-target-5xx")["state"] == "OK").then_some(())
    });
    let h = alarm(&c, "-target-5xx")["history"].clone();
    let states: Vec<&str> = h
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["to"].as_str())
        .collect();
    assert!(states.ends_with(&["ALARM", "OK"]), "{h}");

    // The actions ran: the command, and the POST with the change.
    wait_for("the alarm command", Duration::from_secs(10), || {
        std::fs::read_to_string(&marks)
            .ok()
            .filter(|t| t.contains("shop-test-api-target-5xx ALARM"))
    });
    let body = wait_for("the alarm POST", Duration::from_secs(10), || {
        posted
            .lock()
            .expect("lock")
            .iter()
            .find(|b| b.contains("\"NewStateValue\":\"ALARM\""))
            .cloned()
    });
    let v: Value = serde_json::from_str(&body).expect("POST body json");
    assert_eq!(v["AlarmName"], "shop-test-api-target-5xx");
    assert_eq!(v["OldStateValue"], "OK");

    // The load balancer's metrics of the burst: its 5xx count and the response
    // times' percentiles.
    let m = json(
        &c,
        &[
            "metrics",
            "api",
            "--metric",
            "HTTPCode_Target_5XX_Count",
            "--period",
            "1s",
        ],
    );
    let sum: f64 = m["series"][0]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p[1].as_f64())
        .sum();
    assert!(sum >= 30.0, "5xx counted: {m}");
    let m = json(
        &c,
        &[
            "metrics",
            "api",
            "--metric",
            "TargetResponseTime",
            "--stat",
            "p99",
            "--period",
            "1s",
        ],
    );
    assert_eq!(m["series"][0]["stat"], "p99", "{m}");
    assert!(
        m["series"][0]["points"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{m}"
    );

    // A message parked in the DLQ, and a business metric of the service's own.
    let o = c.run(&["aws-env", "--env", c.env, "--as", "api"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let vars: Vec<(String, String)> = text(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    let clients = std::env::var_os("PANTSTACK_AWS_CLIENTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/pantstack-ci/awsclients")
        });
    let py = clients.join("bin/python");
    assert!(
        py.is_file(),
        "boto3 is missing from {}: `bash .ci/run` installs it",
        clients.display()
    );
    let o = Command::new(&py)
        .args([
            "-c",
            "import boto3; s = boto3.client('sqs'); u = s.get_queue_url(QueueName='shop-test-api-jobs-dlq')['QueueUrl']; s.send_message(QueueUrl=u, MessageBody='parked'); boto3.client('cloudwatch').put_metric_data(Namespace='shop/test/api', MetricData=[{'MetricName': 'JobsAccepted', 'Value': 7, 'Unit': 'Count'}])",
        ])
        .env_remove("AWS_SESSION_TOKEN")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("python");
    assert!(o.status.success(), "send to the DLQ: {}", text(&o.stderr));
    let a = wait_for("dlq-not-empty in ALARM", Duration::from_secs(20), || {
        let a = alarm(&c, "-jobs-dlq-not-empty");
        (a["state"] == "ALARM").then_some(a)
    });
    assert!(a["reason"].as_str().unwrap_or("").contains("[1.0]"), "{a}");
    let m = json(&c, &["metrics", "api", "--metric", "JobsAccepted"]);
    assert_eq!(m["series"][0]["namespace"], "shop/test/api", "{m}");
    assert_eq!(m["series"][0]["points"][0][1], 7.0, "{m}");
    // The table shows built-in and custom metrics together.
    let o = c.run(&["metrics", "api", "--env", c.env]);
    let table = text(&o.stdout);
    for name in [
        "ECS/CPUUtilization",
        "ApplicationELB/RequestCount",
        "SQS/ApproximateNumberOfMessagesVisible",
        "shop/test/api/JobsAccepted",
    ] {
        assert!(table.contains(name), "{name} not in\n{table}");
    }

    // Rollback alarms: a deployment (its tasks slow to listen) during which the
    // service answers 5xx fails on the alarm and rolls back.
    let api = common::api_binary();
    c.edit_manifest(
        &format!("local: [\"{}\", \"serve\"]", api.display()),
        &format!(
            "local: [\"sh\", \"-c\", \"sleep 40; exec {} serve\"]",
            api.display()
        ),
    );
    let mut deploy = c
        .command(&["deploy", "api", "--env", c.env])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("deploy");
    wait_for("the deployment to start", Duration::from_secs(20), || {
        (!c.unit("api")["deployment"].is_null()).then_some(())
    });
    let stop = load(port, "/error", 1, Duration::from_secs(30));
    let done = wait_for("the deployment to end", Duration::from_secs(40), || {
        deploy.try_wait().ok().flatten()
    });
    stop.store(true, Ordering::Relaxed);
    let mut out = String::new();
    if let Some(mut s) = deploy.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    assert!(!done.success(), "the deployment succeeded: {out}");
    let h = json(&c, &["deployments", "api"]);
    let text_h = h.to_string();
    assert!(
        text_h.contains("rollback alarm shop-test-api-target-5xx went to ALARM"),
        "{h:#}"
    );
}

#[test]
fn a_healthy_revision_that_answers_5xx_is_rolled_back_while_its_deployment_bakes() {
    let c = Cloud::new(
        "monitor-bake",
        "local:\n  metrics:\n    period: 1s\ndeployment:\n  rollback_alarms: true\n",
    );
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(60));
    let port = c.port();
    wait_for(
        "the alarms to be evaluated",
        Duration::from_secs(30),
        || (alarm(&c, "-target-5xx")["state"] == "OK").then_some(()),
    );
    // A revision that passes its health checks at once and answers 500 to
    // everything else: its rollout completes within a second or two, before a
    // 3-period alarm could fire; the bake catches it.
    let script = c.root.join("bad.py");
    std::fs::write(
        &script,
        "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        code = 200 if self.path == '/healthz' else 500\n        self.send_response(code)\n        self.send_header('Content-Length', '2')\n        self.end_headers()\n        self.wfile.write(b'ok')\n    def log_message(self, *a):\n        pass\nhttp.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n",
    )
    .expect("script");
    let api = common::api_binary();
    c.edit_manifest(
        &format!("local: [\"{}\", \"serve\"]", api.display()),
        &format!("local: [\"python3\", \"{}\"]", script.display()),
    );
    let stop = load(port, "/jobs/x", 2, Duration::from_secs(40));
    let o = c.run(&["deploy", "api", "--env", c.env]);
    stop.store(true, Ordering::Relaxed);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "the bad revision stayed: {out}");
    let h = json(&c, &["deployments", "api"]).to_string();
    assert!(
        h.contains("rollback alarm shop-test-api-target-5xx went to ALARM"),
        "{h}"
    );
    // The revision serving again is the good one.
    c.wait_healthy("api", 1, Duration::from_secs(60));
    assert_eq!(get(port, "/healthz"), 200);
    assert_ne!(get(port, "/jobs/x"), 500, "the 5xx revision still serves");
}
