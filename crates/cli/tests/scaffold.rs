//! What `pantstack init` and `pantstack new` write, end to end: the scaffold builds
//! and passes its own tests, and runs in the local cloud through its own build
//! phase, its services on their own SQS queues, S3 buckets and secrets through the
//! AWS SDK. The compilation goes to `target/scaffold` (`.ci/run` warms it first).
//! Loopback only; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::{repo_root, text};

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Scaffold {
    base: PathBuf,
    demo: PathBuf,
}

impl Scaffold {
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pantstack"));
        c.current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .env("PANTSTACK_KEY_DIR", self.base.join("keys"))
            .env("CARGO_TARGET_DIR", repo_root().join("target/scaffold"))
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(&self.demo, args).output().unwrap()
    }

    fn status(&self) -> Value {
        let o = self.run(&["status", "--env", "test", "--format", "json"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn unit(&self, name: &str) -> Value {
        self.status()["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no unit {name}"))
    }
}

impl Drop for Scaffold {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--env", "test"]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn http(port: u16, method: &str, path: &str, body: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

#[test]
fn the_scaffold_builds_passes_its_tests_and_runs_on_its_own_queues_and_buckets() {
    let base = std::env::temp_dir().join(format!("pantstack-scaffold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let sc = Scaffold {
        demo: base.join("demo"),
        base,
    };
    let o = sc.command(&sc.base, &["init", "demo"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = sc.run(&["new", "mailer", "--kind", "worker"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The versions this workspace builds and tests (and a warm target/scaffold).
    std::fs::copy(repo_root().join("Cargo.lock"), sc.demo.join("Cargo.lock")).unwrap();

    // Its code names the new service, and its own tests pass.
    let code = std::fs::read_to_string(sc.demo.join("modules/mailer/src/main.rs")).unwrap();
    assert!(code.contains("usage: mailer [serve|work]"));
    assert!(!code.contains("usage: api"));
    let o = Command::new("cargo")
        .args(["test", "-q", "--manifest-path"])
        .arg(sc.demo.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", repo_root().join("target/scaffold"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo test of the scaffold:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    // The local cloud builds it (its build phase) and runs it.
    let mut set = sc
        .command(
            &sc.demo,
            &["secrets", "set", "--env", "test", "api", "API_TOKEN"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(b"scaffold-token")
        .unwrap();
    assert!(set.wait_with_output().unwrap().status.success());
    let o = sc.run(&["up", "--env", "test", "--detach"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "up:\n{out}\n{}", text(&o.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = |u: &Value| {
        u["deployment"].is_null()
            && u["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["phase"] == "running" && t["health"] == "healthy")
    };
    while !["api", "api-worker", "mailer-worker"]
        .iter()
        .all(|n| healthy(&sc.unit(n)))
    {
        assert!(Instant::now() < deadline, "{:#}", sc.status());
        std::thread::sleep(Duration::from_millis(200));
    }
    let api = sc.unit("api");
    assert_eq!(api["revisions"][0]["runs"], "build", "{api:#}");
    let port: u16 = api["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A job through api's queue, done by api's worker, its result in api's bucket;
    // without the token, refused.
    let (code, _) = http(port, "POST", "/jobs", "no token", None);
    assert_eq!(code, 401);
    let (code, body) = http(
        port,
        "POST",
        "/jobs",
        "scaffolded job",
        Some("scaffold-token"),
    );
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http(port, "GET", &format!("/jobs/{id}?wait=15"), "", None);
    assert_eq!(code, 200);
    assert!(
        body.contains("SCAFFOLDED JOB") && body.contains("\"done\""),
        "{body}"
    );
    // The mailer consumes its own queue, not the api's.
    let o = sc.run(&[
        "exec",
        "mailer-worker",
        "--env",
        "test",
        "--",
        "sh",
        "-c",
        "echo $JOBS_QUEUE_URL $RESULTS_BUCKET",
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        out.contains("/demo-test-mailer-jobs ") && out.contains("demo-test-mailer-results"),
        "{out}"
    );
    let o = sc.run(&["logs", "mailer", "--env", "test"]);
    let logs = text(&o.stdout);
    assert!(
        logs.contains("worker: consuming http://127.0.0.1:"),
        "{logs}"
    );
    assert!(logs.contains("/demo-test-mailer-jobs"), "{logs}");
}
