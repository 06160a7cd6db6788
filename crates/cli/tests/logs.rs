//! Logs, traces and Spot drills end to end: the real `pantstack` binary runs a
//! small monorepo of two Python HTTP services (process tasks, no build, no Docker)
//! behind its load balancers. Loopback only; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::text;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A service that logs one JSON line per request (with its X-Request-Id), calls
/// `BACK_URL` on `/front` passing the id on, prints `n` filler lines on
/// `/spam?n`, and on SIGTERM says so (and stops unless IGNORE_TERM=1).
const SERVICE: &str = r#"
import http.server, json, os, signal, sys, urllib.request
name = os.environ["SERVICE_NAME"]
def log(level, message, **kw):
    print(json.dumps(dict(level=level, message=message, **kw)), flush=True)
def term(*_):
    log("warn", "SIGTERM received", service=name)
    if os.environ.get("IGNORE_TERM") != "1":
        sys.exit(0)
signal.signal(signal.SIGTERM, term)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        rid = self.headers.get("X-Request-Id", "-")
        if self.path == "/healthz":
            body = b"ok"
        elif self.path.startswith("/spam"):
            for i in range(int(self.path.split("?")[1])):
                print("filler line %06d %s" % (i, "x" * 80))
            sys.stdout.flush()
            body = b"spammed"
        else:
            log("info", "handling " + self.path, request_id=rid)
            if self.path == "/front":
                req = urllib.request.Request(os.environ["BACK_URL"] + "/back", headers={"X-Request-Id": rid})
                body = urllib.request.urlopen(req, timeout=10).read()
            else:
                body = ("hello from " + name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
log("info", "listening", port=os.environ["PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

struct Mono {
    root: PathBuf,
    keys: PathBuf,
}

impl Mono {
    /// `services`: (name, extra manifest text).
    fn new(name: &str, services: &[(&str, &str)]) -> Mono {
        let base =
            std::env::temp_dir().join(format!("pantstack-logs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("repo");
        let f = root.join("stack/infra/foundation");
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(
            f.join("Pulumi.yaml"),
            "name: tiny-foundation\nruntime: python\ndescription: foundation\n",
        )
        .unwrap();
        std::fs::write(
            f.join("Pulumi.test.yaml"),
            "config:\n  aws:region: us-east-1\n  pantstack:environment: test\n",
        )
        .unwrap();
        std::fs::write(
            f.join("pantstack.yaml"),
            "project: tiny\nregion: us-east-1\nregistry:\n  name: tiny\ngithub:\n  owner: example\n  repo: tiny\nenvironments:\n  test:\n    branch: dev\n",
        )
        .unwrap();
        for (svc, extra) in services {
            let m = root.join("modules").join(svc);
            let infra = m.join("infrastructure");
            std::fs::create_dir_all(&infra).unwrap();
            std::fs::write(m.join("svc.py"), SERVICE).unwrap();
            std::fs::write(m.join("Dockerfile"), "FROM scratch\n").unwrap();
            std::fs::write(
                infra.join("Pulumi.yaml"),
                format!("name: tiny-{svc}\nruntime: python\ndescription: {svc}\n"),
            )
            .unwrap();
            std::fs::write(
                infra.join("Pulumi.test.yaml"),
                "config:\n  aws:region: us-east-1\n  pantstack:environment: test\n",
            )
            .unwrap();
            std::fs::write(
                infra.join("pantstack.yaml"),
                format!(
                    "service: {svc}\nimage:\n  dockerfile: Dockerfile\n  context: .\nhttp:\n  port: 8080\n  command: [\"/{svc}\"]\n  local: [\"python3\", \"-u\", \"svc.py\"]\n  healthcheck:\n    path: /healthz\n{extra}\n"
                ),
            )
            .unwrap();
        }
        Mono {
            keys: base.join("keys"),
            root,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pantstack"));
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .env("NO_COLOR", "1")
            .env("PANTSTACK_KEY_DIR", &self.keys)
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn up(&self) {
        let o = self.run(&["up", "--env", "test", "--detach"]);
        assert!(
            o.status.success(),
            "up failed:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }

    fn unit(&self, name: &str) -> Value {
        let o = self.run(&["status", "--env", "test", "--format", "json"]);
        assert!(o.status.success(), "status: {}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap()
    }

    fn port(&self, unit: &str) -> u16 {
        let u = self.unit(unit);
        u["url"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn running(&self, unit: &str) -> Vec<Value> {
        self.unit(unit)["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["phase"] == "running")
            .cloned()
            .collect()
    }

    fn wait_healthy(&self, unit: &str, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let healthy: Vec<Value> = self
                .running(unit)
                .into_iter()
                .filter(|t| t["health"] == "healthy")
                .collect();
            if healthy.len() >= n {
                return healthy;
            }
            assert!(Instant::now() < deadline, "{unit}: {:#}", self.unit(unit));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs_dir(&self) -> PathBuf {
        self.root.join(".pantstack/local/test/logs")
    }
}

impl Drop for Mono {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--env", "test"]);
        if let Some(base) = self.root.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

fn get(port: u16, path: &str, request_id: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Request-Id: {request_id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let resp = text(&buf);
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

fn alive(pid: u64) -> bool {
    u32::try_from(pid).is_ok_and(pantstack_local::task::running)
}

/// Waits until `f` holds, polling.
fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const FAST: &str = "local:
  stop_timeout: 3s
  healthy_after: 1s
  deregistration_delay: 1s
  healthcheck: { interval: 1s, timeout: 1s, grace_period: 3s }";

#[test]
fn logs_filter_follow_a_replacement_end_on_a_closed_pipe_and_trace_a_request_across_services() {
    let m = Mono::new(
        "logs",
        &[
            ("front", &format!("calls: [back]\n{FAST}\n  log_max_mib: 1")),
            ("back", FAST),
        ],
    );
    // Streams of tasks that are gone: one past logs.retention_days (30), one that
    // puts the group over local.log_max_mib (1), and a recent one.
    let group = m.logs_dir().join("front");
    std::fs::create_dir_all(&group).unwrap();
    let line = "2026-01-01T00:00:00.000000Z stdout seeded\n";
    std::fs::write(group.join("900.log"), line).unwrap();
    std::fs::write(
        group.join("902.log"),
        line.repeat(2 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    std::fs::write(group.join("903.log"), line).unwrap();
    for (file, age) in [("900.log", "40 days ago"), ("902.log", "2 minutes ago")] {
        let p = group.join(file);
        assert!(
            Command::new("touch")
                .args(["-d", age])
                .arg(&p)
                .status()
                .unwrap()
                .success()
        );
    }
    m.up();
    m.wait_healthy("front", 1, Duration::from_secs(30));
    m.wait_healthy("back", 1, Duration::from_secs(30));
    wait_for("retention", Duration::from_secs(15), || {
        !group.join("900.log").exists() && !group.join("902.log").exists()
    });
    assert!(group.join("903.log").exists(), "a recent stream stays");
    let front = m.port("front");
    let (code, resp) = get(front, "/front", "trace-me-42");
    assert_eq!(code, 200, "{resp}");
    assert!(resp.ends_with("hello from back"), "{resp}");
    // The supervisor writes a task's lines as it reads them: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = m.run(&["logs", "--grep", "trace-me-42"]);
        if text(&o.stdout).lines().count() == 2 {
            break;
        }
        let all = text(&m.run(&["logs"]).stdout);
        assert!(Instant::now() < deadline, "both services' lines: {all}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // JSON-aware output and --grep (a substring).
    let o = m.run(&["logs", "front", "--grep", "handling"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("front/"), "{out}");
    assert!(
        lines[0].ends_with(" stdout INFO handling /front request_id=trace-me-42"),
        "{out}"
    );
    let o = m.run(&["logs", "front", "--grep", "HANDLING"]);
    assert!(text(&o.stdout).is_empty(), "case-sensitive by default");
    let o = m.run(&["logs", "front", "--grep", "HANDLING", "-i"]);
    assert_eq!(text(&o.stdout).lines().count(), 1);

    // --format json: one object a line, across services.
    let o = m.run(&["logs", "--grep", "trace-me-42", "--format", "json"]);
    let objs: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2, "{}", text(&o.stdout));
    let services: Vec<&str> = objs
        .iter()
        .map(|v| v["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["front", "back"], "in time order");
    for v in &objs {
        assert!(v["task"].as_str().unwrap().parse::<u64>().is_ok(), "{v}");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
        assert_eq!(v["level"], "info");
        assert!(
            v["message"].as_str().unwrap().starts_with("handling /"),
            "{v}"
        );
        assert_eq!(v["fields"]["request_id"], "trace-me-42");
    }

    // --since / --until: durations and RFC 3339 times.
    let count = |args: &[&str]| {
        let mut all = vec!["logs", "front", "--grep", "handling"];
        all.extend_from_slice(args);
        let o = m.run(&all);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout).lines().count()
    };
    assert_eq!(count(&["--since", "10m"]), 1);
    assert_eq!(count(&["--until", "10m"]), 0);
    assert_eq!(count(&["--since", "2000-01-01T00:00:00Z"]), 1);
    assert_eq!(count(&["--since", "2999-01-01T00:00:00+02:00"]), 0);
    assert_eq!(count(&["--until", "2999-01-01T00:00:00Z"]), 1);
    let o = m.run(&["logs", "front", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("RFC 3339"), "{}", text(&o.stderr));

    // trace: both load balancers' entries and both services' lines, by time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let o = m.run(&["trace", "trace-me-42"]);
        let t = text(&o.stdout);
        if o.status.success() && t.lines().filter(|l| l.contains(" load-balancer ")).count() == 2 {
            break t;
        }
        assert!(Instant::now() < deadline, "{t}{}", text(&o.stderr));
        std::thread::sleep(Duration::from_millis(300));
    };
    let order: Vec<&str> = trace
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(order.len(), 4, "{trace}");
    // Both services' lines, and both balancers' entries: back's answer ended
    // before front's, which waited for it.
    assert!(order.iter().any(|u| u.starts_with("front/")), "{trace}");
    assert!(order.iter().any(|u| u.starts_with("back/")), "{trace}");
    let balancers: Vec<&str> = order.iter().copied().filter(|u| !u.contains('/')).collect();
    assert_eq!(balancers, ["back", "front"], "{trace}");
    assert!(trace.contains("GET http://127.0.0.1:"), "{trace}");
    assert!(trace.contains("/back HTTP/1.1 → 200"), "{trace}");
    let o = m.run(&["trace", "trace-me-42", "--format", "json"]);
    let v: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 4);
    // In time order.
    let stamps: Vec<&str> = v.iter().map(|e| e["timestamp"].as_str().unwrap()).collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted);
    let front_lb = v
        .iter()
        .find(|e| e["source"] == "load-balancer" && e["unit"] == "front")
        .unwrap();
    assert_eq!(front_lb["request_id"], "trace-me-42");
    assert_eq!(front_lb["status"], 200);
    // The trace id the first balancer gave finds the same request.
    let root = front_lb["trace_id"].as_str().unwrap().to_string();
    let o = m.run(&["trace", &root]);
    assert_eq!(text(&o.stdout).lines().count(), 4, "{}", text(&o.stdout));
    let o = m.run(&["trace", "no-such-request"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));

    // A closed pipe ends `logs` quietly, also while following with nothing new.
    for args in ["", " -f"] {
        let cmd = format!(
            "set -o pipefail; {} --root {} logs front{args} | head -1",
            env!("CARGO_BIN_EXE_pantstack"),
            m.root.display()
        );
        let started = Instant::now();
        let mut child = Command::new("bash")
            .args(["-c", &cmd])
            .env("PANTSTACK_KEY_DIR", &m.keys)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("`logs front{args} | head -1` did not end");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{args}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout).lines().count(), 1);
        assert!(text(&o.stderr).is_empty(), "{}", text(&o.stderr));
    }

    // --follow across a replacement: the new task's stream is followed too.
    let mut follow = m
        .command(&["logs", "front", "-f", "--grep", "listening"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // Every stream's line so far (earlier tasks' too), the running task's among them.
    let old = m.running("front")[0].clone();
    let old_prefix = format!("front/{} ", old["id"]);
    let mut earlier = Vec::new();
    loop {
        let l = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let done = l.starts_with(&old_prefix);
        earlier.push(l.split(' ').next().unwrap().to_string());
        if done {
            break;
        }
    }
    let pid = old["pid"].as_u64().unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // The replacement's stream, which did not exist when `logs -f` started.
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let l = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap();
        let task = l.split(' ').next().unwrap().to_string();
        if !earlier.contains(&task) {
            break l;
        }
    };
    assert!(second.starts_with("front/"), "{second}");
    let _ = follow.kill();
    let _ = follow.wait();

    // A running task's stream rolls over at a quarter of the group's budget
    // (local.log_max_mib: 1 → 256 KiB), one older file kept.
    m.wait_healthy("front", 1, Duration::from_secs(30));
    for _ in 0..2 {
        assert_eq!(get(front, "/spam?1500", "spam").0, 200);
    }
    wait_for("a rolled-over stream", Duration::from_secs(10), || {
        std::fs::read_dir(&group)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".log.1"))
    });
    let total: u64 = std::fs::read_dir(&group)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(total <= 1024 * 1024, "group at {total} bytes");
    // Rolled-over lines are still read, once (the supervisor writes the lines
    // after the task printed them: wait for the last).
    let fillers = |n: &str| {
        let o = m.run(&["logs", "front", "--grep", &format!("filler line {n}")]);
        text(&o.stdout).lines().count()
    };
    wait_for(
        "the second spam's last line",
        Duration::from_secs(10),
        || fillers("001499") >= 2,
    );
    assert_eq!(fillers("001499"), 2);
    assert_eq!(fillers("000000"), 2);
}

#[test]
fn a_spot_interruption_sends_sigterm_then_sigkill_after_the_stop_timeout_and_the_task_is_replaced()
{
    let m = Mono::new(
        "spot",
        &[
            (
                "back",
                &format!("variables:\n  IGNORE_TERM: \"1\"\n{FAST}\n  count: 2"),
            ),
            (
                "front",
                &format!("capacity:\n  spot_weight: 0\n{FAST}\n  count: 2"),
            ),
        ],
    );
    m.up();
    let tasks = m.wait_healthy("back", 2, Duration::from_secs(30));
    m.wait_healthy("front", 2, Duration::from_secs(30));
    // The seed's strategy: the oldest task is the on-demand base, the other Spot.
    let mut by_id = tasks.clone();
    by_id.sort_by_key(|t| t["id"].as_u64());
    assert_eq!(by_id[0]["capacity"], "FARGATE", "{by_id:?}");
    assert_eq!(by_id[1]["capacity"], "FARGATE_SPOT", "{by_id:?}");
    let spot_id = by_id[1]["id"].as_u64().unwrap();
    let spot_pid = by_id[1]["pid"].as_u64().unwrap();

    // Only Spot tasks can be interrupted; a service without Spot says why.
    let od = by_id[0]["id"].as_u64().unwrap().to_string();
    let o = m.run(&["spot-interrupt", "back", "--task", &od]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr).contains("runs on FARGATE"),
        "{}",
        text(&o.stderr)
    );
    let o = m.run(&["spot-interrupt", "front"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr).contains("no task on FARGATE_SPOT"),
        "{}",
        text(&o.stderr)
    );

    // The supervisor's event stream, as `pantstack up` shows it.
    let mut events =
        std::os::unix::net::UnixStream::connect(m.root.join(".pantstack/local/test/control.sock"))
            .unwrap();
    events.write_all(b"{\"op\": \"events\"}\n").unwrap();
    let (etx, erx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(events).lines() {
            let Ok(l) = l else { break };
            if etx.send(l).is_err() {
                break;
            }
        }
    });

    let t0 = Instant::now();
    let o = m.run(&["spot-interrupt", "back"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(&format!("task {spot_id} (FARGATE_SPOT)")),
        "{}",
        text(&o.stdout)
    );
    // SIGTERM at once (the task logs it, and ignores it)...
    wait_for("SIGTERM in the task's log", Duration::from_secs(2), || {
        let o = m.run(&[
            "logs",
            "back",
            "--grep",
            "SIGTERM received",
            "--format",
            "json",
        ]);
        text(&o.stdout)
            .lines()
            .any(|l| l.contains(&format!("\"task\":\"{spot_id}\"")))
    });
    let sigterm_after = t0.elapsed();
    assert!(sigterm_after < Duration::from_secs(2), "{sigterm_after:?}");
    // ...SIGKILL after the stop timeout (3 s), not before.
    std::thread::sleep(Duration::from_millis(2000).saturating_sub(t0.elapsed()));
    assert!(alive(spot_pid), "killed before the stop timeout");
    wait_for("SIGKILL", Duration::from_secs(6), || !alive(spot_pid));
    let killed_after = t0.elapsed();
    assert!(
        killed_after >= Duration::from_secs(3) && killed_after < Duration::from_secs(5),
        "{killed_after:?}"
    );
    // The notice is an event of the unit, before the replacement starts.
    let mut seen = Vec::new();
    while let Ok(l) = erx.recv_timeout(Duration::from_secs(5)) {
        seen.push(l);
        if seen.last().unwrap().contains("task-started") {
            break;
        }
    }
    let notice = seen
        .iter()
        .position(|l| {
            l.contains("\"spot-interruption\"")
                && l.contains(&format!("task {spot_id} got SIGTERM"))
        })
        .unwrap_or_else(|| panic!("no spot-interruption event: {seen:#?}"));
    let started = seen.iter().position(|l| l.contains("task-started"));
    assert!(started.is_some_and(|s| s > notice), "{seen:#?}");
    // The scheduler replaced it; the reason is on record.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let u = m.unit("back");
        let ids: Vec<u64> = u["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["phase"] == "running" && t["health"] == "healthy")
            .filter_map(|t| t["id"].as_u64())
            .collect();
        let stopped = u["recently_stopped"].as_array().unwrap();
        let recorded = stopped.iter().any(|s| {
            s["id"] == spot_id
                && s["reason"].as_str().unwrap().contains("SpotInterruption")
                && s["exit"] == "killed by signal 9"
        });
        if ids.len() == 2 && !ids.contains(&spot_id) && recorded {
            break;
        }
        assert!(Instant::now() < deadline, "{u:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The stop timeout named is the service's.
    assert!(Path::new(&m.logs_dir()).join("back").is_dir());
}
