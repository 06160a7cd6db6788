//! The local cloud's live web dashboard: a page on loopback
//! (`http://127.0.0.1:PORT/TOKEN/`) showing the units with their tasks and health,
//! the deployments in progress, charts of the metrics, the alarms, the scaling
//! activity and a live tail of events and task logs. The page (`page.html`,
//! `page.js`, `page.css`, compiled in) polls the JSON under `TOKEN/api/` every two
//! seconds and needs nothing from outside this machine.
//!
//! The server is an in-process client of the supervisor's typed control API: each
//! `api/` request is one [`Request`] sent as a [`Call`] on the channel the
//! control socket uses, its answer relayed as JSON (an answer with an `error`, such
//! as a request not built yet, is relayed as it is: the page shows it in its panel).
//!
//! Invariants:
//! - It listens on 127.0.0.1 only; every request must carry the token as its first
//!   path segment (else `404`) and a `Host` that is a loopback name with this port
//!   (else `421`: DNS rebinding). The token is 128 bits from the OS's CSPRNG, kept
//!   with the port in `dashboard.json` in the environment's private state
//!   directory (0600), so the URL is stable across restarts; it is never logged by
//!   the supervisor.
//! - Only `GET` is served and nothing it serves changes the local cloud: the
//!   requests it sends are reads (status, deployments, metrics, activity, alarms).
//! - At most [`MAX_CONNECTIONS`] connections are served at once; each is one
//!   request, bounded in size and time (`http`).

mod feed;
mod http;

use crate::control::Request;
use crate::supervisor::Call;
use http::{Head, ReadError, Response};
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// Connections served at once (more wait to be accepted).
pub const MAX_CONNECTIONS: usize = 128;
/// How long an `api/` request waits for the supervisor's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How often the task logs are read while the page is open.
const TAIL_EVERY: Duration = Duration::from_secs(1);
/// The page counts as open this long after its last poll of `api/events`.
const VIEWED_FOR_SECS: u64 = 15;
/// The file, in the environment's state directory, holding the port and token.
const FILE: &str = "dashboard.json";

/// The bound dashboard, not yet serving (`serve`).
pub struct Dashboard {
    listener: TcpListener,
    token: String,
    port: u16,
}

impl Dashboard {
    /// Binds 127.0.0.1 on the port recorded in `state_dir`'s `dashboard.json`
    /// (else, or when it is taken, any free one) with its token (else a new one),
    /// and records both.
    pub async fn bind(state_dir: &Path) -> Result<Dashboard, String> {
        let file = state_dir.join(FILE);
        let saved: Value = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let token = match saved["token"].as_str() {
            Some(t) if valid_token(t) => t.to_string(),
            _ => new_token()
                .map_err(|e| format!("cannot read /dev/urandom for the dashboard's token: {e}"))?,
        };
        let port = saved["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => Ok(l),
            Err(_) if port != 0 => TcpListener::bind(("127.0.0.1", 0)).await,
            Err(e) => Err(e),
        }
        .map_err(|e| format!("cannot listen for the dashboard on 127.0.0.1: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("the dashboard's address: {e}"))?
            .port();
        let text = json!({ "port": port, "token": token }).to_string();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(crate::state::FILE_MODE)
            .open(&file)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        written.map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(Dashboard {
            listener,
            token,
            port,
        })
    }

    /// The page's address, token included.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{}/", self.port, self.token)
    }

    /// Serves until the returned task is aborted (or the runtime ends): requests
    /// to the supervisor go on `calls`; `events` and the streams under `logs_dir`
    /// feed the live tail.
    pub fn serve(
        self,
        calls: mpsc::UnboundedSender<Call>,
        events: broadcast::Receiver<crate::supervisor::Event>,
        logs_dir: PathBuf,
    ) -> tokio::task::JoinHandle<()> {
        let shared = Arc::new(Shared {
            token: self.token,
            port: self.port,
            calls,
            feed: Mutex::new(feed::Feed::default()),
            viewed: AtomicU64::new(0),
        });
        let listener = self.listener;
        tokio::spawn(async move {
            tokio::join!(
                accept(listener, shared.clone()),
                follow_events(events, shared.clone()),
                follow_logs(logs_dir, shared),
            );
        })
    }
}

/// What every connection shares.
struct Shared {
    token: String,
    port: u16,
    calls: mpsc::UnboundedSender<Call>,
    feed: Mutex<feed::Feed>,
    /// When the page last polled the tail (seconds since the epoch).
    viewed: AtomicU64,
}

impl Shared {
    fn feed(&self) -> std::sync::MutexGuard<'_, feed::Feed> {
        // A panic while holding it leaves a consistent ring (each push is whole).
        self.feed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 32 lowercase hex digits.
fn valid_token(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 128 bits from the OS's CSPRNG, in hex.
fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(stream, &shared).await;
                    drop(permit);
                });
            }
            // Out of descriptors, or an aborted connection: keep accepting.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One connection: one request, one answer, closed.
async fn connection(mut stream: TcpStream, shared: &Shared) {
    let answer = match tokio::time::timeout(http::HEAD_WITHIN, http::read_head(&mut stream)).await {
        Err(_) => Response::text(408, "the request head did not come in time"),
        Ok(Err(ReadError::Closed)) => return,
        Ok(Err(ReadError::TooLarge)) => Response::text(
            431,
            &format!("the request head is over {} bytes", http::MAX_HEAD),
        ),
        Ok(Ok(raw)) => match http::parse_head(&raw) {
            Err(why) => Response::text(400, why),
            Ok(head) => respond(shared, &head).await,
        },
    };
    let bytes = answer.to_bytes();
    let _ = tokio::time::timeout(http::WRITE_WITHIN, async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The answer to a well-formed request.
async fn respond(shared: &Shared, head: &Head) -> Response {
    if head.method != "GET" {
        return Response::text(405, "only GET is served").with("Allow", "GET".into());
    }
    match &head.host {
        None => return Response::text(400, "no Host header"),
        Some(h) if !http::host_allowed(h, shared.port) => {
            return Response::text(421, "this server answers only to its loopback address");
        }
        Some(_) => {}
    }
    let rest = head.path.strip_prefix('/').unwrap_or_default();
    let (token, route) = match rest.split_once('/') {
        Some((t, r)) => (t, Some(r)),
        None => (rest, None),
    };
    if !http::same_secret(token.as_bytes(), shared.token.as_bytes()) {
        return Response::text(404, "not found");
    }
    let Some(route) = route else {
        return Response::text(308, "the dashboard is one level down")
            .with("Location", format!("/{}/", shared.token));
    };
    match route {
        "" => Response::new(200, "text/html; charset=utf-8", PAGE_HTML),
        "page.js" => Response::new(200, "text/javascript; charset=utf-8", PAGE_JS),
        "page.css" => Response::new(200, "text/css; charset=utf-8", PAGE_CSS),
        "api/status" => relay(shared, Request::Status).await,
        "api/metrics" => {
            let num =
                |k: &str| http::query_value(&head.query, k).and_then(|v| v.parse::<u64>().ok());
            relay(
                shared,
                Request::Metrics {
                    service: None,
                    metric: None,
                    since_s: Some(num("since_s").unwrap_or(900).clamp(60, 86_400)),
                    period_s: num("period_s").map(|p| p.clamp(1, 3600)),
                    stat: None,
                },
            )
            .await
        }
        "api/activity" => relay(shared, Request::Activity { service: None }).await,
        "api/alarms" => relay(shared, Request::Alarms { service: None }).await,
        "api/deployments" => deployments(shared).await,
        "api/events" => {
            shared.viewed.store(epoch_secs(), Ordering::Relaxed);
            let after = http::query_value(&head.query, "after")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let page = shared.feed().after(after);
            Response::json(200, &page)
        }
        _ => Response::text(404, "not found"),
    }
}

/// Why a call got no answer.
enum Unanswered {
    /// The supervisor is gone (its channel closed).
    Gone,
    /// No answer within [`ANSWER_WITHIN`].
    Late,
}

/// Sends `request` to the supervisor; its last (`done`) answer line.
async fn ask(shared: &Shared, request: Request) -> Result<Value, Unanswered> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared
        .calls
        .send(Call { request, reply: tx })
        .map_err(|_| Unanswered::Gone)?;
    tokio::time::timeout(ANSWER_WITHIN, async {
        while let Some(v) = rx.recv().await {
            if v["done"] == true {
                return Ok(v);
            }
        }
        Err(Unanswered::Gone)
    })
    .await
    .unwrap_or(Err(Unanswered::Late))
}

fn unanswered(e: Unanswered) -> Response {
    match e {
        Unanswered::Gone => Response::json(503, &json!({ "error": "the local cloud is stopping" })),
        Unanswered::Late => Response::json(
            504,
            &json!({ "error": format!("the supervisor did not answer within {} s", ANSWER_WITHIN.as_secs()) }),
        ),
    }
}

/// One request, its answer relayed.
async fn relay(shared: &Shared, request: Request) -> Response {
    match ask(shared, request).await {
        Ok(v) => Response::json(200, &v),
        Err(e) => unanswered(e),
    }
}

/// Every unit's deployment history and deployment in progress: one `deployments`
/// request per unit the status names, merged (`{"done": true, "units": […]}`).
async fn deployments(shared: &Shared) -> Response {
    let status = match ask(shared, Request::Status).await {
        Ok(v) => v,
        Err(e) => return unanswered(e),
    };
    let names: Vec<String> = status["status"]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str().map(str::to_string))
        .collect();
    let mut units: Vec<Value> = Vec::new();
    for name in names {
        if units.iter().any(|u| u["unit"] == name.as_str()) {
            continue;
        }
        match ask(shared, Request::Deployments { service: name }).await {
            Ok(v) => {
                if let Some(e) = v["error"].as_str() {
                    return Response::json(200, &json!({ "done": true, "error": e }));
                }
                for u in v["units"].as_array().into_iter().flatten() {
                    if !units.iter().any(|x| x["unit"] == u["unit"]) {
                        units.push(u.clone());
                    }
                }
            }
            Err(e) => return unanswered(e),
        }
    }
    Response::json(200, &json!({ "done": true, "units": units }))
}

/// Feeds the supervisor's events to the tail.
async fn follow_events(
    mut events: broadcast::Receiver<crate::supervisor::Event>,
    shared: Arc<Shared>,
) {
    loop {
        match events.recv().await {
            Ok(ev) => shared.feed().push_event(&ev.to_json()),
            Err(broadcast::error::RecvError::Lagged(n)) => shared.feed().push(
                "-",
                "event",
                "skipped",
                &pantstack_rt::clock::rfc3339_micros(SystemTime::now()),
                &format!("{n} events came too fast for the dashboard and are not shown"),
            ),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Feeds the task and build streams' new lines to the tail while the page is
/// open (read off the async threads).
async fn follow_logs(logs_dir: PathBuf, shared: Arc<Shared>) {
    let mut tail = Some(feed::Tail::default());
    let mut every = tokio::time::interval(TAIL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let viewed = shared.viewed.load(Ordering::Relaxed);
        if viewed == 0 || epoch_secs().saturating_sub(viewed) > VIEWED_FOR_SECS {
            continue;
        }
        let Some(mut t) = tail.take() else { return };
        let dir = logs_dir.clone();
        let Ok((t, lines)) = tokio::task::spawn_blocking(move || {
            let lines = t.poll(&dir);
            (t, lines)
        })
        .await
        else {
            return;
        };
        tail = Some(t);
        let mut feed = shared.feed();
        for l in lines {
            feed.push(
                &l.unit,
                &l.source,
                &l.line.stream,
                &l.line.stamp,
                &l.line.message,
            );
        }
    }
}

#[cfg(test)]
mod tests;
