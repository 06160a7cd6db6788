//! The local cloud's web dashboard in a real browser: `pantstack up` starts the
//! example's services, headless Chromium (Debian's `chromium-headless-shell`) loads
//! the page the supervisor serves, runs its JavaScript and hands back the DOM and a
//! screenshot (kept as `target/test-artifacts/dashboard.png`). Loopback only; every
//! wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::{Cloud, text};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FAST: &str = "local:
  count: 1
  stop_timeout: 5s
  healthy_after: 1s
  deregistration_delay: 1s
  healthcheck: { interval: 1s, timeout: 1s, grace_period: 3s }";

/// Debian's headless Chromium, or (off CI only) None: the test is skipped.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but headless Chromium is missing: `apt-get install chromium-headless-shell` (.ci/run does)"
        );
    }
    found
}

/// The target directory (`target/`), from where cargo put the binary under test.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_pantstack"));
    bin.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/pantstack")
        .to_path_buf()
}

/// Runs `cmd`, killing it after `within`.
fn run_bounded(mut cmd: Command, within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let s = child.wait().expect("wait");
            panic!(
                "chromium did not finish within {} s ({s}): {}",
                within.as_secs(),
                text(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Chromium on `url` with `args`, its profile in a fresh directory, the page's
/// scripts given 10 s of (virtual) time: five polls.
fn browse(chromium: &Path, profile: &Path, url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(chromium);
    cmd.arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--virtual-time-budget=10000")
        .args(args)
        .arg(url);
    let o = run_bounded(cmd, Duration::from_secs(120));
    assert!(o.status.success(), "chromium failed: {}", text(&o.stderr));
    o
}

/// One GET with a chosen Host header: (status, body).
fn get(port: u16, path: &str, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let resp = text(&buf);
    let (head, body) = resp.split_once("\r\n\r\n").expect("an answer");
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

/// The `d` of every chart line in `dom`: `<path class="line …" d="…">`.
fn chart_paths(dom: &str) -> Vec<String> {
    dom.split("<path class=\"line")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            let d = tag.split(" d=\"").nth(1)?;
            Some(d[..d.find('"')?].to_string())
        })
        .collect()
}

#[test]
fn the_dashboard_shows_the_services_and_charts_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: no headless Chromium (apt-get install chromium-headless-shell)");
        return;
    };
    let c = Cloud::new("dashboard", FAST);
    c.set_secret(c.env, "api", "API_TOKEN", "test-token");
    let up = c.run(&["up", "--env", c.env, "--detach"]);
    let up_out = text(&up.stdout);
    assert!(up.status.success(), "up: {up_out}\n{}", text(&up.stderr));
    c.wait_healthy("api", 1, Duration::from_secs(60));
    c.wait_healthy("api-worker", 1, Duration::from_secs(60));

    // The address: in `status`, printed by `up` and `status`.
    let st = c.status();
    let url = st["dashboard"]
        .as_str()
        .expect("status names the dashboard")
        .to_string();
    let rest = url.strip_prefix("http://127.0.0.1:").expect("loopback");
    let (port, token) = rest
        .trim_end_matches('/')
        .split_once('/')
        .expect("PORT/TOKEN/");
    let port: u16 = port.parse().unwrap();
    assert_eq!(token.len(), 32, "{url}");
    assert!(up_out.contains(&format!("dashboard: {url}")), "{up_out}");
    let status_text = text(&c.run(&["status", "--env", c.env]).stdout);
    assert!(
        status_text.contains(&format!("dashboard: {url}")),
        "{status_text}"
    );

    // Without the token, or through another name: nothing.
    let host = format!("127.0.0.1:{port}");
    assert_eq!(get(port, "/", &host).0, 404);
    assert_eq!(get(port, "/api/status", &host).0, 404);
    assert_eq!(
        get(
            port,
            &format!("/{token}/api/status"),
            &format!("attacker.example:{port}")
        )
        .0,
        421
    );
    let (code, body) = get(port, &format!("/{token}/api/metrics"), &host);
    assert_eq!(code, 200, "{body}");
    let metrics: serde_json::Value = serde_json::from_str(&body).unwrap();
    let has_series = metrics["series"].as_array().is_some_and(|s| {
        s.iter()
            .any(|x| x["points"].as_array().is_some_and(|p| !p.is_empty()))
    });

    let profile = c.root.parent().unwrap().join("chromium");
    let dom = text(&browse(&chromium, &profile, &url, &["--dump-dom"]).stdout);
    for unit in ["api", "api-worker"] {
        assert!(
            dom.contains(&format!("data-unit=\"{unit}\"")),
            "{unit} is not on the page:\n{dom}"
        );
    }
    assert!(dom.contains("<svg class=\"chart\""), "no chart:\n{dom}");
    let paths = chart_paths(&dom);
    assert!(
        paths
            .iter()
            .any(|d| d.starts_with('M') && d.matches(" L").count() >= 1),
        "no chart line with data points: {paths:?}\n{dom}"
    );
    assert!(
        dom.contains("class=\"badge ok\">live<"),
        "the page did not reach the API:\n{dom}"
    );
    if has_series {
        assert!(
            dom.contains("data-source=\"metrics\""),
            "the metrics answered series, but no metric chart is drawn:\n{dom}"
        );
    } else {
        // Not answered yet (or no series): the panel says why, the rest renders.
        let why = metrics["error"].as_str().unwrap_or("no metric series yet");
        assert!(
            dom.contains(why),
            "the metrics panel does not say `{why}`:\n{dom}"
        );
    }

    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &chromium,
        &profile,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1366,900",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
