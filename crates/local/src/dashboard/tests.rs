//! The dashboard's server over real sockets (127.0.0.1, port 0), with a stand-in
//! supervisor answering the calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use tokio::io::AsyncReadExt;

/// A fresh private state directory.
fn state_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pantstack-dash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Answers calls as a supervisor with one unit would; `metrics` is not built.
fn stand_in() -> mpsc::UnboundedSender<Call> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Call>();
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            let answer = match call.request {
                Request::Status => {
                    json!({"done": true, "status": {"units": [{"name": "api"}, {"name": "api-worker"}]}})
                }
                Request::Deployments { service } => {
                    json!({"done": true, "units": [{"unit": service, "history": [], "in_progress": null}]})
                }
                Request::Alarms { .. } => {
                    let _ = call.reply.send(json!({"partial": true}));
                    json!({"done": true, "alarms": [{"name": "high-cpu", "state": "OK"}]})
                }
                _ => json!({"done": true, "error": "not built yet"}),
            };
            let _ = call.reply.send(answer);
        }
    });
    tx
}

struct Served {
    port: u16,
    url: String,
    events: broadcast::Sender<crate::supervisor::Event>,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

async fn serve(name: &str, calls: mpsc::UnboundedSender<Call>) -> Served {
    let dir = state_dir(name);
    let d = Dashboard::bind(&dir).await.unwrap();
    let url = d.url();
    let port = d.port;
    let (events, rx) = broadcast::channel(16);
    let task = d.serve(calls, rx, dir.join("logs"));
    Served {
        port,
        url,
        events,
        task,
        dir,
    }
}

impl Served {
    fn token(&self) -> String {
        self.url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }
    async fn get(&self, path: &str) -> (u16, String, String) {
        let host = format!("127.0.0.1:{}", self.port);
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
    }
    /// Sends `bytes`, reads the whole answer: (status, head, body).
    async fn raw(&self, bytes: &[u8]) -> (u16, String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an answer");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_page_and_its_files_are_served_only_under_the_token() {
    let s = serve("token", stand_in()).await;
    let t = s.token();
    assert!(valid_token(&t), "{}", s.url);
    assert_eq!(s.url, format!("http://127.0.0.1:{}/{t}/", s.port));

    let (code, head, body) = s.get(&format!("/{t}/")).await;
    assert_eq!(code, 200);
    assert!(head.contains("Content-Type: text/html"));
    assert!(head.contains("Content-Security-Policy: default-src 'self'"));
    assert!(head.contains("X-Content-Type-Options: nosniff"));
    assert!(head.contains("Cache-Control: no-store"));
    assert!(head.contains("Connection: close"));
    assert!(
        body.contains("<script src=\"page.js\""),
        "the script is a file"
    );
    assert!(!body.contains("<script>"), "no inline script");
    let (code, head, body) = s.get(&format!("/{t}/page.js")).await;
    assert_eq!(code, 200);
    assert!(head.contains("text/javascript"));
    assert!(body.contains("api/status"));
    assert_eq!(s.get(&format!("/{t}/page.css")).await.0, 200);

    // Without the token, or with another: nothing is there.
    for path in [
        "/".to_string(),
        "/page.js".into(),
        "/api/status".into(),
        format!("/{}/", "0".repeat(32)),
        format!("/{}/", &t[..31]),
        format!("/{t}x/"),
        format!("/{t}/nothing"),
    ] {
        let (code, _, body) = s.get(&path).await;
        assert_eq!(code, 404, "{path}");
        assert!(!body.contains(&t), "{path}");
    }
    let (code, head, _) = s.get(&format!("/{t}")).await;
    assert_eq!(code, 308);
    assert!(
        head.lines().any(|l| l == format!("Location: /{t}/")),
        "{head}"
    );
}

#[tokio::test]
async fn a_host_other_than_loopback_with_this_port_is_refused() {
    let s = serve("host", stand_in()).await;
    let t = s.token();
    let req = |host: &str| format!("GET /{t}/api/status HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let ok = s
        .raw(req(&format!("localhost:{}", s.port)).as_bytes())
        .await;
    assert_eq!(ok.0, 200);
    for host in [
        format!("evil.example:{}", s.port),
        format!("127.0.0.1:{}", s.port.wrapping_add(1)),
        "127.0.0.1".to_string(),
    ] {
        let (code, _, body) = s.raw(req(&host).as_bytes()).await;
        assert_eq!(code, 421, "{host}");
        assert!(!body.contains("units"), "{host}: {body}");
    }
    let (code, _, _) = s
        .raw(format!("GET /{t}/ HTTP/1.1\r\nAccept: */*\r\n\r\n").as_bytes())
        .await;
    assert_eq!(code, 400, "no Host");
}

#[tokio::test]
async fn bad_requests_other_methods_and_oversized_heads_are_refused() {
    let s = serve("bad", stand_in()).await;
    let t = s.token();
    let host = format!("127.0.0.1:{}", s.port);
    let (code, _, body) = s.raw(b"HELLO\r\n\r\n").await;
    assert_eq!(code, 400);
    assert!(body.contains("METHOD TARGET VERSION"), "{body}");
    let (code, head, _) = s
        .raw(
            format!("POST /{t}/api/status HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await;
    assert_eq!(code, 405);
    assert!(head.contains("Allow: GET"));
    // A head of the limit's size without its end: refused, nothing more read.
    let mut big = format!("GET /{t}/ HTTP/1.1\r\nHost: {host}\r\nX: ").into_bytes();
    big.resize(http::MAX_HEAD, b'a');
    let (code, _, _) = s.raw(&big).await;
    assert_eq!(code, 431);
    // The server still answers afterwards.
    assert_eq!(s.get(&format!("/{t}/")).await.0, 200);
}

#[tokio::test]
async fn api_requests_relay_the_supervisors_answers_and_its_errors() {
    let s = serve("api", stand_in()).await;
    let t = s.token();
    let get = |p: &str| format!("/{t}/api/{p}");
    let json_of = |body: &str| serde_json::from_str::<Value>(body).unwrap();

    let (code, head, body) = s.get(&get("status")).await;
    assert_eq!(code, 200);
    assert!(head.contains("application/json"));
    assert_eq!(json_of(&body)["status"]["units"][0]["name"], "api");
    // Not built yet: relayed as an error for the page to show.
    let (code, _, body) = s.get(&get("metrics?since_s=300")).await;
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)["error"], "not built yet");
    assert_eq!(
        json_of(&s.get(&get("activity")).await.2)["error"],
        "not built yet"
    );
    // The answer is the `done` line, not the first one.
    assert_eq!(
        json_of(&s.get(&get("alarms")).await.2)["alarms"][0]["name"],
        "high-cpu"
    );
    let d = json_of(&s.get(&get("deployments")).await.2);
    let units: Vec<&str> = d["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["api", "api-worker"]);
}

#[tokio::test]
async fn events_are_tailed_after_a_number() {
    let s = serve("events", stand_in()).await;
    let t = s.token();
    for i in 0..3 {
        s.events
            .send(crate::supervisor::Event {
                time: "2026-01-01T00:00:00Z".into(),
                unit: "api".into(),
                kind: "scale".into(),
                message: format!("desired count {i}"),
            })
            .unwrap();
    }
    // The feed takes them in its own time: poll (bounded) until all three are in.
    let mut all = Value::Null;
    for _ in 0..200 {
        all = serde_json::from_str(&s.get(&format!("/{t}/api/events?after=0")).await.2).unwrap();
        if all["entries"].as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(all["entries"][2]["message"], "desired count 2", "{all}");
    assert_eq!(all["entries"][0]["source"], "event");
    assert_eq!(all["next"], 3);
    let later: Value =
        serde_json::from_str(&s.get(&format!("/{t}/api/events?after=2")).await.2).unwrap();
    assert_eq!(later["entries"].as_array().unwrap().len(), 1);
    assert_eq!(later["entries"][0]["seq"], 3);
}

#[tokio::test]
async fn without_a_supervisor_the_api_says_so() {
    let (tx, rx) = mpsc::unbounded_channel::<Call>();
    drop(rx);
    let s = serve("gone", tx).await;
    let (code, _, body) = s.get(&format!("/{}/api/status", s.token())).await;
    assert_eq!(code, 503);
    assert!(body.contains("stopping"), "{body}");
}

#[tokio::test]
async fn the_token_and_port_are_kept_private_and_stable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_dir("stable");
    let first = Dashboard::bind(&dir).await.unwrap();
    let url = first.url();
    let mode = std::fs::metadata(dir.join(FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(first);
    let again = Dashboard::bind(&dir).await.unwrap();
    assert_eq!(again.url(), url, "the same URL after a restart");
    // Its port taken meanwhile: another port, the same token.
    let other = Dashboard::bind(&dir).await.unwrap();
    assert_ne!(other.port, again.port);
    assert_eq!(other.token, again.token);
    // A damaged file: a new token.
    std::fs::write(dir.join(FILE), "{\"token\": \"short\"}").unwrap();
    let fresh = Dashboard::bind(&dir).await.unwrap();
    assert!(valid_token(&fresh.token));
    assert_ne!(fresh.token, again.token);
    std::fs::remove_dir_all(&dir).unwrap();
}
