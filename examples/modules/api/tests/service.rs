//! The example service as real processes against a real local AWS endpoint (the
//! local cloud's, started in this test): the API enqueues jobs on SQS and reads
//! results from S3, the worker consumes the queue and writes results, and a poison
//! job ends in the dead-letter queue. Loopback only; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use pantstack_endpoint::{Config, Core, http};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A local AWS endpoint with the example's queue (and its DLQ) and bucket.
struct Aws {
    rt: tokio::runtime::Runtime,
    core: Arc<Core>,
    server: http::Server,
    dir: std::path::PathBuf,
}

impl Drop for Aws {
    fn drop(&mut self) {
        self.server.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The task role's policy, on this test's resource names.
fn task_role() -> pantstack_endpoint::iam::Policy {
    use pantstack_model::iam;
    let queue = |n: &str| format!("arn:aws:sqs:us-east-1:000000000000:{n}");
    pantstack_endpoint::iam::Policy::default()
        .allow(iam::QUEUE_ACTIONS, vec![queue("jobs"), queue("jobs-dlq")])
        .allow(iam::BUCKET_ACTIONS, vec!["arn:aws:s3:::results".into()])
        .allow(iam::OBJECT_ACTIONS, vec!["arn:aws:s3:::results/*".into()])
}

impl Aws {
    fn start(name: &str) -> Aws {
        let dir = std::env::temp_dir().join(format!("example-api-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let core = Arc::new(
            Core::open(&Config {
                dir: dir.join("aws"),
                key_file: dir.join("keys/k.key"),
                region: "us-east-1".into(),
                principals: vec!["api".into(), "api-worker".into()],
                // Both units as their task role on AWS: the service's own queue,
                // DLQ and bucket only.
                policies: ["api", "api-worker"]
                    .into_iter()
                    .map(|unit| (unit.to_string(), task_role()))
                    .collect(),
                compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
            })
            .unwrap(),
        );
        let server = rt.block_on(http::serve(core.clone(), 0)).unwrap();
        rt.block_on(async {
            core.ensure_queue("jobs-dlq", &[]).await.unwrap();
            let redrive =
                json!({ "deadLetterTargetArn": core.queue_arn("jobs-dlq"), "maxReceiveCount": 3 });
            core.ensure_queue("jobs", &[("RedrivePolicy".into(), redrive.to_string())])
                .await
                .unwrap();
            core.ensure_bucket("results", true).await.unwrap();
        });
        Aws {
            rt,
            core,
            server,
            dir,
        }
    }

    fn env(&self, principal: &str) -> Vec<(String, String)> {
        let c = self.core.credentials(principal);
        vec![
            ("AWS_ENDPOINT_URL".into(), self.server.url()),
            ("AWS_ACCESS_KEY_ID".into(), c.access_key),
            ("AWS_SECRET_ACCESS_KEY".into(), c.secret_key),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            (
                "JOBS_QUEUE_URL".into(),
                format!("{}/000000000000/jobs", self.server.url()),
            ),
            ("RESULTS_BUCKET".into(), "results".into()),
        ]
    }

    fn visible(&self, queue: &str) -> u64 {
        let url = format!("{}/000000000000/{queue}", self.server.url());
        let v = self
            .rt
            .block_on(self.core.sqs(
                "GetQueueAttributes",
                &json!({ "QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"] }),
                "test",
            ))
            .unwrap();
        v["Attributes"]["ApproximateNumberOfMessages"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// Starts `api MODE` on port 0 and returns it with the address it printed.
fn start(mode: &str, env: &[(String, String)]) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_api"));
    cmd.arg(mode)
        .env_clear()
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn api");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line").expect("utf8");
    let addr = first.rsplit(' ').next().expect("address").to_string();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Proc(child), addr)
}

fn request(addr: &str, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(25)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn jobs_go_through_sqs_and_results_through_s3_and_poison_ends_in_the_dlq() {
    let aws = Aws::start("flow");
    let mut api_env = aws.env("api");
    api_env.push(("API_TOKEN".into(), "t0k3n".into()));
    let (_api, api) = start("serve", &api_env);
    assert_eq!(
        request(&api, "GET", "/healthz", "", None),
        (200, "ok\n".into())
    );
    let (status, _) = request(&api, "POST", "/jobs", "no token", None);
    assert_eq!(status, 401, "the API_TOKEN secret guards submissions");

    let (status, body) = request(
        &api,
        "POST",
        "/jobs",
        "hello pantstack world",
        Some("t0k3n"),
    );
    assert_eq!(status, 202, "{body}");
    let good: Value = serde_json::from_str(&body).unwrap();
    let (_, body) = request(&api, "POST", "/jobs", "a poison pill", Some("t0k3n"));
    let poison: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(aws.visible("jobs"), 2, "both jobs wait in the queue");

    let (_worker, worker) = start("work", &aws.env("api-worker"));
    assert_eq!(request(&worker, "GET", "/healthz", "", None).0, 200);

    let id = good["id"].as_str().unwrap();
    let (status, body) = request(&api, "GET", &format!("/jobs/{id}?wait=15"), "", None);
    assert_eq!(status, 200);
    let done: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(done["status"], "done", "{body}");
    assert_eq!(done["result"], "3 words: HELLO PANTSTACK WORLD");

    // The poison job is retried until the redrive policy moves it to the DLQ.
    let deadline = Instant::now() + Duration::from_secs(20);
    while aws.visible("jobs-dlq") == 0 {
        assert!(
            Instant::now() < deadline,
            "the poison job never reached the DLQ"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = poison["id"].as_str().unwrap();
    let (_, body) = request(&api, "GET", &format!("/jobs/{pid}"), "", None);
    let failed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(failed["status"], "failed", "{body}");
    assert_eq!(failed["attempts"], 3, "maxReceiveCount deliveries: {body}");
    assert_eq!(aws.visible("jobs"), 0);

    assert_eq!(request(&api, "GET", "/jobs/nope", "", None).0, 404);
    assert_eq!(request(&api, "DELETE", "/jobs", "", None).0, 405);
}

#[test]
fn oversized_bodies_are_refused_and_a_missing_setting_is_named() {
    let aws = Aws::start("limits");
    let (_api, addr) = start("serve", &aws.env("api"));
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "POST /jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n"
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");

    let o = Command::new(env!("CARGO_BIN_EXE_api"))
        .arg("serve")
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("JOBS_QUEUE_URL is not set"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
