//! The local cloud end to end: the real `pantstack` binary runs the example services
//! (as processes, and as Docker containers) behind its load balancers. Loopback only;
//! every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::{Cloud, api_binary, repo_root, text};

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request on a new connection to 127.0.0.1:port.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let resp = text(&buf);
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response: {resp:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((status, head.to_string(), body.to_string()))
}

/// Requests in a loop until stopped; counts answers that are not 2xx.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) && n < 20_000 {
                n += 1;
                match http(port, "GET", path, "", &[]) {
                    Ok((code, _, _)) if (200..300).contains(&code) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((code, _, body)) => f.lock().unwrap().push(format!("{code} {body}")),
                    Err(e) => f.lock().unwrap().push(e),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
        )
    }
}

/// The example API takes jobs from holders of its API_TOKEN secret (`Cloud::up` sets it).
const AUTH: (&str, &str) = ("Authorization", "Bearer test-token");

const FAST: &str = "local:
  count: 2
  stop_timeout: 5s
  healthy_after: 1s
  deregistration_delay: 3s
  healthcheck: { interval: 1s, timeout: 1s, grace_period: 3s }";

#[test]
fn up_serves_jobs_through_the_load_balancer_and_down_stops_everything() {
    // Two API tasks: jobs live in the local cloud's SQS queue and S3 bucket, so any
    // task answers for any job.
    let c = Cloud::new("basic", FAST);
    c.up();
    let api = c.wait_healthy("api", 2, Duration::from_secs(30));
    let worker = c.wait_healthy("api-worker", 2, Duration::from_secs(30));
    let port = c.port();
    let pids: Vec<u64> = [&api, &worker]
        .iter()
        .flat_map(|u| u["tasks"].as_array().unwrap().clone())
        .filter_map(|t| t["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 4);

    // A job goes in through the load balancer; the worker (which found the API through
    // PANTSTACK_SERVICE_URL_API) finishes it.
    let (code, head, body) = http(
        port,
        "POST",
        "/jobs",
        "hello local cloud",
        &[("X-Request-Id", "req-123"), AUTH],
    )
    .unwrap();
    assert_eq!(code, 202, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("x-request-id: req-123"),
        "request id kept: {head}"
    );
    let id: Value = serde_json::from_str(&body).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, body) = http(port, "GET", &format!("/jobs/{id}"), "", &[]).unwrap();
        if code == 200 && body.contains("\"done\"") {
            assert!(body.contains("HELLO LOCAL CLOUD"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "job not done: {code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, head, _) = http(port, "GET", "/healthz", "", &[]).unwrap();
    assert!(
        head.to_ascii_lowercase().contains("x-request-id: "),
        "a request id is generated: {head}"
    );

    // Logs are per task, timestamped; the access log has ALB's shape.
    let o = c.run(&["logs", "api-worker"]);
    let logs = text(&o.stdout);
    assert!(
        logs.lines()
            .any(|l| l.starts_with("api-worker/") && l.contains("Z stderr ")),
        "{logs}"
    );
    // Workers write their access-log buffers every 500 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let access = std::fs::read_to_string(c.root.join(".pantstack/local/test/access/api.log"))
            .unwrap_or_default();
        if access.lines().any(|l| {
            l.starts_with("http ")
                && l.contains("\"POST http://127.0.0.1:")
                && l.contains(" 202 202 ")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no access-log line for the POST: {access}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let o = c.run(&["down"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "task {pid} still running"
        );
    }
    assert!(!c.root.join(".pantstack/local/test/control.sock").exists());
    assert!(
        http(port, "GET", "/healthz", "", &[]).is_err(),
        "load balancer still listening"
    );
}

#[test]
fn a_rolling_deploy_under_load_fails_no_request() {
    let c = Cloud::new("rolling", FAST);
    c.up();
    c.wait_healthy("api", 2, Duration::from_secs(30));
    let before = c.unit("api")["revision"].as_u64().unwrap();
    let load = Load::start(c.port(), "/healthz");
    std::thread::sleep(Duration::from_millis(500));
    let o = c.run(&["deploy", "api"]);
    let out = text(&o.stdout);
    assert!(
        o.status.success(),
        "deploy failed:\n{out}\n{}",
        text(&o.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "{} failed requests during the deploy: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests");
    assert!(out.contains("completed"), "{out}");
    let after = c.wait_healthy("api", 2, Duration::from_secs(10));
    assert!(after["revision"].as_u64().unwrap() > before);
    assert!(
        after["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["revision"] == after["revision"])
    );
    let o = c.run(&["deployments", "api"]);
    assert!(
        text(&o.stdout).contains("deploy    completed"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn a_revision_failing_its_health_checks_is_rolled_back_by_itself() {
    let c = Cloud::new("rollback", FAST);
    c.up();
    c.wait_healthy("api", 2, Duration::from_secs(30));
    let good = c.unit("api")["revision"].as_u64().unwrap();
    let load = Load::start(c.port(), "/healthz");
    // The new revision listens but answers 404 on /healthz (a static file server).
    let api = api_binary().display().to_string();
    c.edit_manifest(
        &format!("local: [\"{api}\", \"serve\"]"),
        "local: [\"sh\", \"-c\", \"exec python3 -m http.server $PORT --bind 127.0.0.1\"]",
    );
    let o = c.run(&["deploy", "api"]);
    let out = text(&o.stdout);
    let (ok, failed) = load.finish();
    assert_eq!(o.status.code(), Some(1), "deploy must fail:\n{out}");
    assert!(out.contains("circuit breaker"), "{out}");
    assert!(
        out.contains("HTTP 404 from /healthz"),
        "the failed check is named:\n{out}"
    );
    assert!(out.contains("rolled back"), "{out}");
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 20);
    let u = c.wait_healthy("api", 2, Duration::from_secs(20));
    assert_eq!(
        u["revision"].as_u64().unwrap(),
        good,
        "the last completed revision serves again"
    );
    let o = c.run(&["deployments", "api", "--format", "json"]);
    let hist: Value = serde_json::from_slice(&o.stdout).unwrap();
    let outcomes: Vec<&str> = hist[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.ends_with(&["failed", "completed"]), "{outcomes:?}");
}

#[test]
fn a_killed_task_is_replaced_and_leaves_the_rotation() {
    let c = Cloud::new("kill", FAST);
    c.up();
    let u = c.wait_healthy("api", 2, Duration::from_secs(30));
    let victim = u["tasks"][0]["pid"].as_u64().unwrap();
    let victim_id = u["tasks"][0]["id"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    // Replaced by a new task; the dead one is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let u = c.unit("api");
        let ids: Vec<u64> = u["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["health"] == "healthy")
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        if ids.len() == 2 && !ids.contains(&victim_id) {
            let stopped = u["recently_stopped"].to_string();
            assert!(
                stopped.contains("exited unexpectedly") && stopped.contains("signal 9"),
                "{stopped}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {u:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every request succeeds now.
    for _ in 0..50 {
        let (code, _, _) = http(c.port(), "GET", "/healthz", "", &[]).unwrap();
        assert_eq!(code, 200);
    }
}

#[test]
fn after_the_supervisor_is_killed_up_recovers_on_the_same_ports() {
    let c = Cloud::new("crash", FAST);
    c.up();
    let u = c.wait_healthy("api", 2, Duration::from_secs(30));
    let port = c.port();
    let sup = c.status()["pid"].as_u64().unwrap();
    let old: Vec<u64> = u["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["pid"].as_u64())
        .collect();
    Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.up();
    let u = c.wait_healthy("api", 2, Duration::from_secs(30));
    assert_eq!(c.port(), port, "same load-balancer port");
    for pid in old {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || !u.to_string().contains(&format!("\"pid\":{pid}")),
            "old task {pid} left behind"
        );
    }
    let (code, _, _) = http(port, "GET", "/healthz", "", &[]).unwrap();
    assert_eq!(code, 200);
}

#[test]
fn a_request_in_flight_finishes_while_its_task_drains() {
    let c = Cloud::new("drain", &FAST.replace("count: 2", "count: 1"));
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(30));
    // No worker: the job stays queued, so the long poll lasts its full 2 s.
    assert!(c.run(&["scale", "api-worker", "0"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.unit("api-worker")["tasks"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "workers did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = c.port();
    let (_, _, body) = http(port, "POST", "/jobs", "slow", &[AUTH]).unwrap();
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let r = http(port, "GET", &format!("/jobs/{id}?wait=2"), "", &[]);
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let o = c.run(&["deploy", "api"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    let (r, took) = slow.join().unwrap();
    let (code, _, body) = r.unwrap();
    // The old task was deregistered during the request and drained: it answered.
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"queued\""), "{body}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    let o = c.run(&["deployments", "api"]);
    assert!(
        text(&o.stdout).contains("deploy    completed"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn the_example_runs_as_docker_containers() {
    // In place: the image build compiles the example inside this workspace. The
    // `prod` environment keeps its state apart from anything else.
    let c = Cloud {
        root: repo_root().join("examples"),
        env: "prod",
        owned: false,
        keys: std::env::temp_dir().join(format!("pantstack-docker-keys-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(c.root.join(".pantstack/local/prod"));
    c.set_secret("prod", "api", "API_TOKEN", "test-token");
    let o = c.run(&["up", "--env", "prod", "--detach", "--runtime", "docker"]);
    assert!(
        o.status.success(),
        "up --runtime docker failed:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let u = c.wait_healthy("api", 1, Duration::from_secs(120));
    assert_eq!(u["runtime"], "docker");
    c.wait_healthy("api-worker", 1, Duration::from_secs(60));
    let port = c.port();
    let (code, _, body) = http(port, "POST", "/jobs", "in a container", &[AUTH]).unwrap();
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, body) = http(port, "GET", &format!("/jobs/{id}?wait=15"), "", &[]).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("IN A CONTAINER"), "{body}");
    let image = u["revisions"][0]["image"].as_str().unwrap().to_string();
    assert!(
        image.contains(":api-"),
        "tagged by the seed's strategy: {image}"
    );
    // A rolling deploy of containers (image rebuilt) under load: no failed request.
    let load = Load::start(port, "/healthz");
    let o = c.run(&["deploy", "api", "--env", "prod"]);
    let (ok, failed) = load.finish();
    assert!(o.status.success(), "deploy failed:\n{}", text(&o.stdout));
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 20, "only {ok} requests");
    let u = c.wait_healthy("api", 1, Duration::from_secs(60));
    assert!(u["revision"].as_u64().unwrap() >= 2);
    // The replaced container stopped on SIGTERM (the example handles it as PID 1),
    // not by the SIGKILL after the stop timeout.
    let stopped = u["recently_stopped"].as_array().unwrap();
    assert!(!stopped.is_empty(), "{u:#}");
    assert!(
        stopped.iter().all(|t| t["exit"] == "exit code 0"),
        "stopped by SIGTERM: {stopped:#?}"
    );
    // Fargate's size as hard limits: prod's stack file sets cpu 512 (half a vCPU)
    // and memory 1024 MiB.
    let container = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            "label=pantstack.environment=prod",
            "--filter",
            "label=pantstack.project=shop",
        ])
        .output()
        .unwrap();
    let first = text(&container.stdout).lines().next().unwrap().to_string();
    let limits = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
            &first,
        ])
        .output()
        .unwrap();
    assert_eq!(text(&limits.stdout).trim(), "500000000 1073741824");
    // This checkout's environment's image tags (each build has its own).
    let root_label = format!(
        "label=pantstack.root={}",
        std::fs::canonicalize(&c.root).unwrap().display()
    );
    let images = || {
        let o = Command::new("docker")
            .args([
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                "label=pantstack.environment=prod",
                "--filter",
                "label=pantstack.project=shop",
                "--filter",
                &root_label,
            ])
            .output()
            .unwrap();
        text(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = images();
    let ps = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            "label=pantstack.environment=prod",
            "--filter",
            "label=pantstack.project=shop",
        ])
        .output()
        .unwrap();
    assert!(!text(&ps.stdout).trim().is_empty());
    assert!(c.run(&["down", "--env", "prod"]).status.success());
    let ps = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=pantstack.environment=prod",
            "--filter",
            "label=pantstack.project=shop",
        ])
        .output()
        .unwrap();
    assert!(
        text(&ps.stdout).trim().is_empty(),
        "containers left: {}",
        text(&ps.stdout)
    );
    // The next `up` keeps no image of the run before (no revision of it is kept):
    // images do not pile up.
    assert!(!before.is_empty());
    let o = c.run(&["up", "--env", "prod", "--detach", "--runtime", "docker"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    c.wait_healthy("api", 1, Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = images();
        let left: Vec<&String> = now.iter().filter(|t| before.contains(t)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old images stay: {left:?} (all: {now:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(!images().is_empty(), "the running revision's image stays");
    assert!(c.run(&["down", "--env", "prod"]).status.success());
}

/// `FAST` with one task per unit.
fn fast_one() -> String {
    FAST.replace("count: 2", "count: 1")
}

/// Whether a process runs (a zombie does not).
fn alive(pid: u64) -> bool {
    u32::try_from(pid).is_ok_and(pantstack_local::task::running)
}

fn task_pids(c: &Cloud) -> Vec<u64> {
    c.status()["units"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["tasks"].as_array().unwrap().clone())
        .filter_map(|t| t["pid"].as_u64())
        .collect()
}

fn signal(sig: &str, pid: u64) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Runs `pantstack args` and waits at most `within`; `None` if it did not end
/// (then it is killed).
fn run_within(c: &Cloud, args: &[&str], within: Duration) -> Option<std::process::Output> {
    let mut child = c
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(child.wait_with_output().unwrap())
}

#[test]
fn state_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let c = Cloud::new("umask", &fast_one());
    // `secrets set` (the endpoint's state opened in-process) and `up` under umask 000.
    let under_umask = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("umask 000; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_pantstack"))
            .arg("--root")
            .arg(&c.root)
            .args(args)
            .env("NO_COLOR", "1")
            .env("PANTSTACK_KEY_DIR", c.key_dir())
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    };
    under_umask(
        &["secrets", "set", "--env", "test", "api", "API_TOKEN"],
        "test-token",
    );
    under_umask(&["up", "--env", "test", "--detach"], "");
    c.wait_healthy("api", 1, Duration::from_secs(30));
    let (code, _, _) = http(c.port(), "GET", "/healthz", "", &[]).unwrap();
    assert_eq!(code, 200);

    let local = c.root.join(".pantstack/local");
    let mut wrong = Vec::new();
    let mut seen = Vec::new();
    fn walk(p: &Path, wrong: &mut Vec<String>, seen: &mut Vec<String>) {
        let meta = std::fs::symlink_metadata(p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let kind = meta.file_type();
        let want = if kind.is_dir() { 0o700 } else { 0o600 };
        seen.push(p.display().to_string());
        if mode != want && !kind.is_symlink() {
            wrong.push(format!(
                "{} {:o} (want {want:o}{})",
                p.display(),
                mode,
                if kind.is_socket() { ", socket" } else { "" }
            ));
        }
        if kind.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), wrong, seen);
            }
        }
    }
    walk(&local, &mut wrong, &mut seen);
    for must in [
        "test/aws/journal.log",
        "test/aws/LOCK",
        "test/control.sock",
        "test/state.json",
        "test/supervisor.log",
        "test/logs/api/",
        "test/access/api.log",
    ] {
        assert!(
            seen.iter().any(|s| s.contains(must)),
            "{must} not found in {seen:#?}"
        );
    }
    assert!(wrong.is_empty(), "not private: {wrong:#?}");
}

#[test]
fn up_never_treats_a_live_but_silent_supervisor_as_dead() {
    let c = Cloud::new("silent", &fast_one());
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(30));
    c.wait_healthy("api-worker", 1, Duration::from_secs(30));
    let sup = c.status()["pid"].as_u64().unwrap();
    let tasks = task_pids(&c);
    assert_eq!(tasks.len(), 2);

    // Stopped (SIGSTOP): the socket accepts but never answers.
    signal("-STOP", sup);
    let o = run_within(
        &c,
        &["up", "--env", "test", "--detach"],
        Duration::from_secs(40),
    );
    let stopped_ok = tasks.iter().all(|&p| alive(p));
    // `status` (and the other short requests) are bounded too.
    let st = run_within(&c, &["status", "--env", "test"], Duration::from_secs(40));
    signal("-CONT", sup);
    let st = st.expect("`status` hung on a supervisor that does not answer");
    assert_eq!(st.status.code(), Some(4), "{}", text(&st.stdout));
    assert!(
        text(&st.stderr).contains(&format!("supervisor (pid {sup}) did not answer within")),
        "{}",
        text(&st.stderr)
    );
    let o = o.expect("`up` hung on a supervisor that does not answer");
    let err = text(&o.stderr);
    assert!(!o.status.success(), "up succeeded: {}", text(&o.stdout));
    assert!(
        err.contains(&format!("a supervisor (pid {sup}) holds")) && err.contains("does not answer"),
        "{err}"
    );
    assert!(stopped_ok, "a task was killed");

    // No socket to connect to (as when it cannot accept): still alive.
    let sock = c.root.join(".pantstack/local/test/control.sock");
    let aside = c.root.join(".pantstack/local/test/control.sock.aside");
    std::fs::rename(&sock, &aside).unwrap();
    let o = run_within(
        &c,
        &["up", "--env", "test", "--detach"],
        Duration::from_secs(40),
    );
    let tasks_ok = tasks.iter().all(|&p| alive(p));
    let sup_ok = alive(sup);
    std::fs::rename(&aside, &sock).unwrap();
    let o = o.expect("`up` hung");
    let err = text(&o.stderr);
    assert!(!o.status.success(), "up succeeded: {}", text(&o.stdout));
    assert!(err.contains("does not answer"), "{err}");
    assert!(tasks_ok, "the live supervisor's tasks were killed: {err}");
    assert!(sup_ok, "the supervisor was killed");

    // It carries on, with the same tasks.
    assert_eq!(c.status()["pid"].as_u64(), Some(sup));
    let mut now = task_pids(&c);
    let mut before = tasks.clone();
    now.sort();
    before.sort();
    assert_eq!(now, before);
}

#[test]
fn down_returns_once_the_environment_is_free_so_up_follows_at_once() {
    let c = Cloud::new("downup", &fast_one());
    c.up();
    for round in 0..3 {
        let o = c.run(&["down", "--env", "test"]);
        assert!(o.status.success(), "down {round}: {}", text(&o.stderr));
        let o = c.run(&["up", "--env", "test", "--detach"]);
        assert!(
            o.status.success(),
            "up right after down (round {round}) failed:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    c.wait_healthy("api", 1, Duration::from_secs(30));
}

#[test]
fn a_deploy_cut_short_by_a_killed_supervisor_fails_and_is_recorded_as_interrupted() {
    let c = Cloud::new("interrupt", &fast_one());
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(30));
    // The new revision never gets healthy (no listener): the deploy lasts.
    let api = api_binary().display().to_string();
    let good = format!("local: [\"{api}\", \"serve\"]");
    c.edit_manifest(&good, "local: [\"sleep\", \"600\"]");
    let deploy = c
        .command(&["deploy", "api"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let revision = loop {
        let u = c.unit("api");
        if let Some(r) = u["deployment"]["revision"].as_u64() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no deployment in progress: {u:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let sup = c.status()["pid"].as_u64().unwrap();
    signal("-9", sup);
    let o = deploy.wait_with_output().unwrap();
    assert!(
        !o.status.success(),
        "deploy exited 0 though its supervisor died:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("before it answered"),
        "{}",
        text(&o.stderr)
    );

    c.edit_manifest("local: [\"sleep\", \"600\"]", &good);
    c.up();
    let u = c.wait_healthy("api", 1, Duration::from_secs(30));
    assert!(
        u["revision"].as_u64().unwrap() > revision,
        "revision {revision} was given out again: {u:#}"
    );
    let o = c.run(&["deployments", "api", "--format", "json"]);
    let units: Value = serde_json::from_slice(&o.stdout).unwrap();
    let api_unit = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "api")
        .unwrap();
    let history = api_unit["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["revision"] == revision && h["outcome"] == "interrupted"),
        "the interrupted deployment is missing: {history:#?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for h in history.iter().filter(|h| h["kind"] != "rollback") {
        assert!(
            seen.insert(h["revision"].as_u64().unwrap()),
            "revision {} deployed twice: {history:#?}",
            h["revision"]
        );
    }
    let listing = text(&c.run(&["deployments", "api"]).stdout);
    assert!(listing.contains("interrupted"), "{listing}");
}

#[test]
fn down_stops_the_tasks_a_killed_supervisor_left() {
    let c = Cloud::new("orphans", &fast_one());
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(30));
    let sup = c.status()["pid"].as_u64().unwrap();
    let pids = task_pids(&c);
    assert!(!pids.is_empty());
    signal("-9", sup);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(sup) {
        assert!(
            std::time::Instant::now() < deadline,
            "supervisor still alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pids.iter().all(|p| alive(*p)), "the orphans serve on");
    let o = c.run(&["down"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("stopped"), "{}", text(&o.stdout));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "orphaned tasks still run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing left: a second `down` says nothing runs.
    assert!(!c.run(&["down"]).status.success());
}

/// The api's HTTP role as a static file server of its revision's build: the body of
/// `/healthz` tells which build a task runs.
const FILE_SERVER: &str = "local: [\"sh\", \"-c\", \"cd \\\"$PANTSTACK_ARTIFACTS\\\" && exec python3 -m http.server $PORT --bind 127.0.0.1\"]";

/// The build of the test service: slower than the grace period, and it writes the
/// working tree's VERSION into the revision's build.
const BUILD_SCRIPT: &str = "#!/bin/sh
set -eu
echo \"compiling $(cat VERSION)\"
sleep 3
if [ -e FAIL ]; then echo 'error[E0425]: cannot find value `boom`' >&2; exit 3; fi
printf 'ok %s' \"$(cat VERSION)\" > \"$PANTSTACK_ARTIFACTS/healthz\"
";

fn healthz(port: u16) -> String {
    match http(port, "GET", "/healthz", "", &[]) {
        Ok((200, _, body)) => body,
        Ok((code, _, body)) => format!("HTTP {code} {body}"),
        Err(e) => e,
    }
}

#[test]
fn each_revision_builds_before_its_tasks_start_and_rollback_runs_the_kept_build() {
    let extra = "local:
  build: [\"sh\", \"build-local.sh\"]
  count: 1
  stop_timeout: 5s
  healthy_after: 1s
  deregistration_delay: 1s
  healthcheck: { interval: 1s, timeout: 1s, grace_period: 1s }";
    let c = Cloud::new("build", extra);
    let api = api_binary().display().to_string();
    c.edit_manifest(&format!("local: [\"{api}\", \"serve\"]"), FILE_SERVER);
    let dir = c.root.join("modules/api");
    std::fs::write(dir.join("build-local.sh"), BUILD_SCRIPT).unwrap();
    std::fs::write(dir.join("VERSION"), "v1").unwrap();

    // The shell's variables do not reach the tasks (ECS tasks get their task
    // definition's only); the build takes 3 s, longer than the 1 s grace period,
    // and nothing counts it against the tasks.
    c.set_secret(c.env, "api", "API_TOKEN", "test-token");
    let o = c.run_with(
        &["up", "--env", c.env, "--detach"],
        &[("PANTSTACK_TEST_SHELL_ONLY", "leak")],
    );
    let out = text(&o.stdout);
    assert!(o.status.success(), "up:\n{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("building revision"),
        "the build phase is shown:\n{out}"
    );
    let u = c.wait_healthy("api", 1, Duration::from_secs(30));
    assert_eq!(healthz(c.port()), "ok v1");
    let rev = &u["revisions"][0];
    assert_eq!(rev["build"], "ready", "{u:#}");
    assert_eq!(rev["runs"], "build", "{u:#}");
    let log = c.root.join(".pantstack/local/test/logs/api/build-1.log");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("compiling v1"), "{log_text}");
    assert!(log_text.contains("built in"), "{log_text}");
    // The roles of one service share one build.
    assert!(
        !c.root
            .join(".pantstack/local/test/logs/api/build-2.log")
            .exists()
    );
    let pid = u["tasks"][0]["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = text(&environ);
    assert!(!environ.contains("PANTSTACK_TEST_SHELL_ONLY"), "{environ}");
    assert!(environ.contains("PANTSTACK_ARTIFACTS="), "{environ}");
    assert!(environ.contains("AWS_ENDPOINT_URL="), "{environ}");

    // v2 is built and deployed; a rollback runs v1's build again, not the working
    // tree (which says v2).
    std::fs::write(dir.join("VERSION"), "v2").unwrap();
    let o = c.run(&["deploy", "api"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "deploy v2:\n{out}\n{}", text(&o.stderr));
    assert!(out.contains("build"), "{out}");
    c.wait_healthy("api", 1, Duration::from_secs(30));
    assert_eq!(healthz(c.port()), "ok v2");
    let o = c.run(&["rollback", "api"]);
    assert!(
        o.status.success(),
        "rollback:\n{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    c.wait_healthy("api", 1, Duration::from_secs(30));
    assert_eq!(
        healthz(c.port()),
        "ok v1",
        "the rolled-back revision runs its own build"
    );

    // A failing build fails its deployment with the compiler's words; nothing of
    // what runs is touched.
    let running = |u: &Value| -> Vec<Value> {
        u["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["phase"] == "running")
            .map(|t| t["id"].clone())
            .collect()
    };
    let before = running(&c.unit("api"));
    assert_eq!(before.len(), 1);
    std::fs::write(dir.join("FAIL"), "").unwrap();
    let o = c.run(&["deploy", "api"]);
    let out = text(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("cannot find value `boom`"),
        "the build's last lines:\n{out}"
    );
    assert!(out.contains("exited with code 3"), "{out}");
    assert!(
        !out.contains("rolling back"),
        "a failed build started nothing to undo:\n{out}"
    );
    let u = c.unit("api");
    assert_eq!(running(&u), before, "{u:#}");
    assert_eq!(healthz(c.port()), "ok v1");
}

#[test]
fn rollback_refuses_to_run_todays_working_tree_as_an_old_revision() {
    let c = Cloud::new("worktree", &fast_one());
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(30));
    c.edit_manifest("LOG_LEVEL: info", "LOG_LEVEL: debug");
    let o = c.run(&["deploy", "api"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = c.run(&["rollback", "api"]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("ran the working tree"), "{out}");
    assert!(out.contains("local.build"), "the fix is named:\n{out}");
}

#[test]
fn a_failed_start_deployment_keeps_its_healthy_tasks() {
    // Two tasks wanted; only the first one that starts can run (the others exit), so
    // the start deployment fails by its circuit breaker while one task is healthy.
    // Nothing to roll back to: that task must keep serving, and the user is told.
    let c = Cloud::new(
        "keep",
        &FAST.replace("grace_period: 3s", "grace_period: 1s"),
    );
    let lock = c.root.join("only-one");
    let api = api_binary().display().to_string();
    c.edit_manifest(
        &format!("local: [\"{api}\", \"serve\"]"),
        &format!(
            "local: [\"sh\", \"-c\", \"mkdir {} 2>/dev/null && exec {api} serve; exit 1\"]",
            lock.display()
        ),
    );
    c.set_secret(c.env, "api", "API_TOKEN", "test-token");
    let o = c.run(&["up", "--env", c.env, "--detach"]);
    let out = text(&o.stdout);
    assert!(!o.status.success(), "the start deployment fails:\n{out}");
    assert!(out.contains("circuit breaker"), "{out}");
    // It stays up, not for a moment only.
    for _ in 0..3 {
        let u = c.unit("api");
        let healthy = u["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["phase"] == "running" && t["health"] == "healthy")
            .count();
        assert_eq!(healthy, 1, "{u:#}");
        assert_eq!(u["revision"], 1, "{u:#}");
        assert_eq!(healthz(c.port()).trim(), "ok");
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = std::fs::read_to_string(c.root.join(".pantstack/local/test/supervisor.log")).unwrap();
    assert!(
        log.contains("nothing to roll back to: revision 1 keeps its"),
        "the user is told:\n{log}"
    );
}

#[test]
fn the_readme_main_job_builds_and_runs_the_example() {
    // In place, as README.md runs it: the example's own build phase
    // (`./build.sh --local`, a cargo build in this workspace), its binary kept with
    // the revision; a preview environment of its own keeps the state apart.
    let env = "preview-9001";
    let c = Cloud {
        root: repo_root().join("examples"),
        env,
        owned: false,
        keys: std::env::temp_dir().join(format!("pantstack-readme-keys-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(c.root.join(".pantstack/local").join(env));
    c.set_secret(env, "api", "API_TOKEN", "test-token");
    let o = c.run(&["up", "--env", env, "--detach"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "up:\n{out}\n{}", text(&o.stderr));
    let u = c.wait_healthy("api", 1, Duration::from_secs(120));
    c.wait_healthy("api-worker", 1, Duration::from_secs(60));
    assert_eq!(u["revisions"][0]["runs"], "build", "{u:#}");
    let port = c.port();
    let (code, _, body) = http(port, "POST", "/jobs", "hello readme", &[AUTH]).unwrap();
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, body) = http(port, "GET", &format!("/jobs/{id}?wait=15"), "", &[]).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("HELLO README"), "{body}");
    // The second service: it calls the api (API_URL) passing the request id along,
    // and reads the api's bucket, which the api grants it to read.
    let r = c.wait_healthy("reports", 1, Duration::from_secs(120));
    let rport: u16 = r["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (code, _, body) = http(
        rport,
        "GET",
        "/report",
        "",
        &[("X-Request-Id", "readme-hop-1")],
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["api"], "ok", "{report}");
    assert!(report["jobs"].as_u64().unwrap() >= 1, "{report}");
    // The access log is written in batches: bounded wait.
    let access = c
        .root
        .join(".pantstack/local")
        .join(env)
        .join("access/api.log");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&access)
        .unwrap_or_default()
        .contains("readme-hop-1")
    {
        assert!(
            Instant::now() < deadline,
            "the request id never reached the api's log"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = c.run(&["down", "--env", env]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(c.root.join(".pantstack/local").join(env));
}

#[test]
fn up_runs_the_services_named_exec_sees_a_tasks_environment_and_logs_interleave() {
    let c = Cloud::new("subset", &fast_one());
    // A second service: a copy of the api named api2.
    let api2 = c.root.join("modules/api2");
    common::copy_dir(&c.root.join("modules/api"), &api2);
    for (file, from, to) in [
        (
            "infrastructure/pantstack.yaml",
            "service: api\n",
            "service: api2\n",
        ),
        ("infrastructure/Pulumi.yaml", "shop-api", "shop-api2"),
    ] {
        let p = api2.join(file);
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(from), "{file}");
        std::fs::write(&p, t.replace(from, to)).unwrap();
    }
    c.set_secret(c.env, "api2", "API_TOKEN", "test-token");
    let o = c.run(&["up", "--env", c.env, "--detach", "api22"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("did you mean `api2`?"),
        "{}",
        text(&o.stderr)
    );
    let o = c.run_with(
        &["up", "--env", c.env, "--detach", "api2"],
        &[("PANTSTACK_TEST_SHELL_ONLY", "leak")],
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let names: Vec<String> = c.status()["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["api2", "api2-worker"]);
    c.wait_healthy("api2", 1, Duration::from_secs(30));
    c.wait_healthy("api2-worker", 1, Duration::from_secs(30));

    // exec: exactly the task's environment.
    let o = c.run(&[
        "exec",
        "api2",
        "--",
        "sh",
        "-c",
        "echo $SERVICE_NAME $PANTSTACK_ROLE $JOBS_QUEUE_URL; pwd",
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(out.starts_with("api2 http http://127.0.0.1:"), "{out}");
    assert!(out.contains("/shop-test-api2-jobs"), "{out}");
    assert!(
        out.trim_end().ends_with("modules/api2"),
        "runs in the service's directory: {out}"
    );
    let o = c.run(&["exec", "api2-worker", "--", "env"]);
    let env = text(&o.stdout);
    assert!(env.contains("PANTSTACK_ROLE=worker"), "{env}");
    assert!(
        env.contains("API_TOKEN=test-token"),
        "the task's secrets: {env}"
    );
    assert!(!env.contains("PANTSTACK_TEST_SHELL_ONLY"), "{env}");
    // The command's exit status is exec's.
    let o = c.run(&["exec", "api2", "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = c.run(&["exec", "nope", "--", "true"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no service or unit `nope`"),
        "{}",
        text(&o.stderr)
    );

    // logs without a service: every unit's, by time.
    let o = c.run(&["logs", "--env", c.env]);
    let logs = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(logs.lines().any(|l| l.starts_with("api2/")), "{logs}");
    assert!(
        logs.lines().any(|l| l.starts_with("api2-worker/")),
        "{logs}"
    );
}

#[test]
fn a_taken_port_is_named_with_its_holder_and_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let c = Cloud::new("port", &format!("{}\n  port: {port}", fast_one()));
    c.set_secret(c.env, "api", "API_TOKEN", "test-token");
    let o = c.run(&["up", "--env", c.env, "--detach"]);
    let err = text(&o.stdout) + &text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("held by") && err.contains(&format!("(pid {})", std::process::id())),
        "the holder is named: {err}"
    );
    assert!(err.contains("local: { port: N }"), "the fix: {err}");
    drop(taken);
    // Unpinned, the port is chosen below the kernel's ephemeral range and kept.
    c.edit_manifest(&format!("\n  port: {port}"), "");
    c.up();
    let first = c.port();
    let (eph_lo, _) = pantstack_local::ports::ephemeral_range();
    assert!(
        first < eph_lo,
        "{first} is in the ephemeral range (from {eph_lo})"
    );
    assert!(c.run(&["down"]).status.success());
    c.up();
    assert_eq!(c.port(), first, "the same port after a restart");
}

#[test]
fn a_moved_project_says_how_to_take_its_key_along() {
    let mut c = Cloud::new("moved", &fast_one());
    c.set_secret(c.env, "api", "API_TOKEN", "s3cret-value");
    let moved = c.root.with_file_name("moved");
    std::fs::rename(&c.root, &moved).unwrap();
    c.root = moved;
    let o = c.run(&[
        "secrets",
        "get",
        "api",
        "API_TOKEN",
        "--reveal",
        "--env",
        c.env,
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("moved or copied"), "{err}");
    assert!(err.contains("pantstack secrets move-key"), "{err}");
    assert!(!err.contains("s3cret-value"));
    let o = c.run(&["secrets", "move-key", "--env", c.env]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = c.run(&[
        "secrets",
        "get",
        "api",
        "API_TOKEN",
        "--reveal",
        "--env",
        c.env,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("s3cret-value"),
        "{}",
        text(&o.stdout)
    );
    // And the local cloud starts with it.
    c.up();
    c.wait_healthy("api", 1, Duration::from_secs(30));
}

#[test]
fn a_builds_leftovers_do_not_hold_it_and_its_error_is_among_the_last_lines() {
    let extra = "local:
  build: [\"sh\", \"b.sh\"]
  build_timeout: 10s
  count: 1
  healthy_after: 1s
  deregistration_delay: 1s
  healthcheck: { interval: 1s, timeout: 1s, grace_period: 3s }";
    let c = Cloud::new("build-leftovers", extra);
    let dir = c.root.join("modules/api");
    // Leaves a process behind that holds the build's output for 30 s.
    std::fs::write(dir.join("b.sh"), "sleep 30 &\necho built\n").unwrap();
    c.up();
    let u = c.wait_healthy("api", 1, Duration::from_secs(30));
    assert_eq!(u["revisions"][0]["build"], "ready");
    let log =
        std::fs::read_to_string(c.root.join(".pantstack/local/test/logs/api/build-1.log")).unwrap();
    let secs: f64 = log
        .lines()
        .find_map(|l| l.split("built in ").nth(1))
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        secs < 10.0,
        "the leftover held the build for {secs} s:\n{log}"
    );
    // stdout and stderr keep their order: the error written last is in the tail.
    std::fs::write(
        dir.join("b.sh"),
        "for i in $(seq 1 30); do echo \"line $i\"; done\necho 'ERROR: compile failed' >&2\nexit 3\n",
    )
    .unwrap();
    let o = c.run(&["deploy", "api"]);
    let out = text(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("ERROR: compile failed"), "{out}");
    assert_eq!(
        out.matches("api deployment 3 (deploy) of revision 2: failed")
            .count(),
        1,
        "each outcome once:\n{out}"
    );
    // A count changed in the manifest applies on deploy (as desiredCount does).
    std::fs::write(dir.join("b.sh"), "echo built\n").unwrap();
    c.edit_manifest("count: 1", "count: 2");
    let o = c.run(&["deploy", "api"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    c.wait_healthy("api", 2, Duration::from_secs(30));
    // exec: a command that does not exist exits 127, as in a shell.
    let o = c.run(&["exec", "api", "--", "/nonexistent/command"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
}
