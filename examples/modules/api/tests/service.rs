//! The example service as real processes: the API on an ephemeral loopback port,
//! its worker consuming jobs from it, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `api MODE` on port 0 and returns it with the address it printed.
fn start(mode: &str, extra: &[(&str, &str)]) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_api"));
    cmd.arg(mode)
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn api");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line").expect("utf8");
    let addr = first.rsplit(' ').next().expect("address").to_string();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Proc(child), addr)
}

fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

fn wait_for_status(addr: &str, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = request(addr, "GET", &format!("/jobs/{id}"), "");
        assert_eq!(status, 200, "{body}");
        if body.contains(&format!("\"status\":\"{want}\"")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {want}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn id_of(body: &str) -> String {
    let start = body.find("\"id\":\"").expect("id") + 6;
    body[start..].split('"').next().expect("id").to_string()
}

#[test]
fn api_accepts_jobs_and_the_worker_processes_them() {
    let (_api, api_addr) = start("serve", &[]);
    let (status, body) = request(&api_addr, "GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, body) = request(&api_addr, "POST", "/jobs", "hello pantstack world");
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"status\":\"queued\""), "{body}");
    let good = id_of(&body);
    let (_, body) = request(&api_addr, "POST", "/jobs", "a poison pill");
    let poison = id_of(&body);

    let url = format!("http://{api_addr}");
    let (_worker, worker_addr) = start("work", &[("JOBS_API_URL", &url)]);
    let (status, _) = request(&worker_addr, "GET", "/healthz", "");
    assert_eq!(status, 200);

    let done = wait_for_status(&api_addr, &good, "done");
    assert!(done.contains("3 words: HELLO PANTSTACK WORLD"), "{done}");
    let failed = wait_for_status(&api_addr, &poison, "failed");
    assert!(failed.contains("input is poisoned"), "{failed}");

    let (status, _) = request(&api_addr, "GET", "/jobs/999", "");
    assert_eq!(status, 404);
    let (status, _) = request(&api_addr, "DELETE", "/jobs", "");
    assert_eq!(status, 405);
    let (status, all) = request(&api_addr, "GET", "/jobs", "");
    assert_eq!(status, 200);
    assert_eq!(all.matches("\"id\"").count(), 2, "{all}");
}

#[test]
fn oversized_bodies_are_refused() {
    let (_api, addr) = start("serve", &[]);
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
}
