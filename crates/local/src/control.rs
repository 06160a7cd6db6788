//! The control socket (`.pantstack/local/<env>/control.sock`): one JSON request line
//! per connection, answered with JSON lines until one says `"done": true`.
//! Operations: the variants of [`Request`].
//!
//! Invariants:
//! - A request is parsed once, here, into a [`Request`]; the supervisor gets the
//!   typed value. A line that is not one (not JSON, an operation with a field
//!   missing or of the wrong type, such as `scale` without its `count`) is answered
//!   with one `bad request` line naming what is wrong, and never reaches it.
//! - The wire format is the variants' field names with the operation in `op`.

use crate::supervisor::Call;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};

/// Requests larger than this are refused (they are a few dozen bytes).
const MAX_REQUEST: usize = 64 * 1024;

/// One request on the control socket. `service` names a service (every role of
/// it) or one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The environment, its units and tasks (`{"done": true, "status": …}`).
    Status,
    /// A new revision of the units from the manifests as they are now; answers
    /// the units, streams their events and ends with one `final` line per unit.
    Deploy { service: String },
    /// Back to the last completed revision before the current one; answers as
    /// `deploy`.
    Rollback { service: String },
    /// A new desired count (at most 64).
    Scale { service: String, count: u32 },
    /// Each unit's deployment history and the deployment in progress.
    Deployments { service: String },
    /// Stops every task, then the supervisor; streams every event until then.
    Down,
    /// Every event, as they happen (answered by the connection, not the
    /// supervisor).
    Events,
    /// One SSM action as the `user` principal (`pantstack secrets`).
    Ssm {
        action: String,
        /// The action's input (`null` when left out).
        #[serde(default)]
        input: Value,
    },
    /// Re-encrypts every secret value under a new master key.
    RotateKey,
    /// What `pantstack exec` needs of a running task (the newest, or `task`).
    Exec { service: String, task: Option<u64> },
    /// Fargate Spot's two-minute warning to a FARGATE_SPOT task of the service:
    /// the newest, task `task`, or with `all` every one (`supervisor::spot`).
    SpotInterrupt {
        service: String,
        #[serde(default)]
        task: Option<u64>,
        #[serde(default)]
        all: bool,
    },
    /// A backup of the environment's state into the new directory `dir` (an
    /// absolute path); answers its manifest (`crate::backup`).
    Backup { dir: std::path::PathBuf },
    /// Built-in and custom metrics as series of one statistic per period
    /// (`crate::metrics`): of one service (or unit) or all, one metric name or
    /// all, over the last `since_s` seconds (default 900) in periods of
    /// `period_s` (default: the unit's `local.metrics.period`).
    Metrics {
        #[serde(default)]
        service: Option<String>,
        #[serde(default)]
        metric: Option<String>,
        #[serde(default)]
        since_s: Option<u64>,
        #[serde(default)]
        period_s: Option<u64>,
        #[serde(default)]
        stat: Option<String>,
    },
    /// The scaling activities (target tracking, min/max), newest last.
    Activity {
        #[serde(default)]
        service: Option<String>,
    },
    /// The alarms, their states and histories.
    Alarms {
        #[serde(default)]
        service: Option<String>,
    },
}

impl Request {
    /// The operation names, as `op` spells them.
    const OPS: [&str; 15] = [
        "status",
        "deploy",
        "rollback",
        "scale",
        "deployments",
        "down",
        "events",
        "ssm",
        "rotate-key",
        "exec",
        "spot-interrupt",
        "backup",
        "metrics",
        "activity",
        "alarms",
    ];

    /// Parses one request line. `Err` is the answer's error text.
    pub fn parse(line: &str) -> Result<Request, String> {
        let body: Value = serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))?;
        let op = body["op"].as_str().unwrap_or("");
        if !Request::OPS.contains(&op) {
            return Err(format!("unknown operation `{op}`"));
        }
        serde_json::from_value(body).map_err(|e| format!("bad request: {e}"))
    }
}

/// What decides the course of an answer in one answer line: whether it is the
/// last line (`done`), the last one for a unit (`final`, `unit`), what failed
/// (`error`) and which units a `deploy` or `rollback` answers for (`units`). The
/// rest of a line is the operation's output, free-form JSON.
///
/// Reading is lenient, as for any free-form line: a field that is missing or of
/// another type (`deployments` answers `units` as objects) reads as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Reply {
    #[serde(deserialize_with = "lenient")]
    pub done: Option<bool>,
    #[serde(rename = "final", deserialize_with = "lenient")]
    pub last: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub unit: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub error: Option<String>,
    /// The unit names in `units` (other entries left out).
    #[serde(deserialize_with = "names")]
    pub units: Option<Vec<String>>,
}

impl Reply {
    /// The deciding fields of answer line `v`.
    pub fn of(v: &Value) -> Reply {
        Reply::deserialize(v).unwrap_or_default()
    }
    /// The answer's last line.
    pub fn done(&self) -> bool {
        self.done == Some(true)
    }
    /// The last line for `unit`.
    pub fn is_final(&self) -> bool {
        self.last == Some(true)
    }
}

/// A field of the type wanted, else absent.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()))
}

/// The strings of a list, else absent.
fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(list)) => Some(
            list.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    })
}

pub async fn serve(
    stream: UnixStream,
    to_supervisor: mpsc::UnboundedSender<Call>,
    mut events: broadcast::Receiver<crate::supervisor::Event>,
) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r.take(MAX_REQUEST as u64)).lines();
    let Ok(Some(line)) = lines.next_line().await else {
        return;
    };
    let request = match Request::parse(&line) {
        Ok(r) => r,
        Err(error) => {
            let _ = w
                .write_all(format!("{}\n", json!({"done": true, "error": error})).as_bytes())
                .await;
            return;
        }
    };
    // Every event (`events`, `down`), those of the units answered (`deploy`,
    // `rollback`), or none.
    let every_event = matches!(request, Request::Events | Request::Down);
    let stream_events =
        every_event || matches!(request, Request::Deploy { .. } | Request::Rollback { .. });
    let (tx, mut rx) = mpsc::unbounded_channel();
    if request != Request::Events && to_supervisor.send(Call { request, reply: tx }).is_err() {
        return;
    }
    let mut units: Option<BTreeSet<String>> = None;
    let mut finals = BTreeSet::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let reply = Reply::of(&msg);
                if let Some(list) = reply.units.clone() && units.is_none() && reply.done.is_none() {
                    units = Some(list.into_iter().collect());
                }
                if reply.is_final() && let Some(u) = reply.unit.clone() {
                    finals.insert(u);
                }
                let done = reply.done()
                    || units.as_ref().is_some_and(|u| !u.is_empty() && finals.len() >= u.len());
                if w.write_all(format!("{msg}\n").as_bytes()).await.is_err() {
                    break;
                }
                if done {
                    if !reply.done() {
                        let _ = w.write_all(format!("{}\n", json!({"done": true})).as_bytes()).await;
                    }
                    break;
                }
            }
            ev = events.recv(), if stream_events => {
                match ev {
                    Ok(ev) => {
                        let relevant = every_event || units.as_ref().is_some_and(|u| u.contains(&ev.unit));
                        if relevant && w.write_all(format!("{}\n", json!({"event": ev})).as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => {
                        let _ = w.write_all(format!("{}\n", json!({"done": true, "message": "the local cloud stopped"})).as_bytes()).await;
                        break;
                    }
                }
            }
        }
    }
    let _ = w.flush().await;
}

/// Why a control call failed.
#[derive(Debug)]
pub enum CallError {
    /// Nothing answers on the socket (no local cloud, or it does not accept).
    Connect(String),
    /// The connection ended before the supervisor's last (`done`) line: it exited,
    /// was killed, or refused us. What was asked may be half done.
    Dropped(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(m) | CallError::Dropped(m) => f.write_str(m),
        }
    }
}

impl From<CallError> for String {
    fn from(e: CallError) -> String {
        e.to_string()
    }
}

/// A client of the control socket: sends `request`, calls `each` for every answer
/// line, returns the last one, which says `"done": true`. `Err` when no supervisor
/// answers, or when the connection ends before that line.
pub async fn call(
    socket: &Path,
    request: &Request,
    mut each: impl FnMut(&Value),
) -> Result<Value, CallError> {
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        CallError::Connect(format!(
            "no local cloud answers on {} ({e}); start it with `pantstack up`",
            socket.display()
        ))
    })?;
    let (r, mut w) = stream.into_split();
    let line = serde_json::to_string(request).map_err(|e| CallError::Connect(e.to_string()))?;
    w.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|e| CallError::Connect(e.to_string()))?;
    let mut lines = BufReader::new(r).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                return Err(CallError::Dropped(format!(
                    "the connection to the local cloud's supervisor failed ({e}) before it answered"
                )));
            }
        };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        each(&v);
        if Reply::of(&v).done() {
            return Ok(v);
        }
    }
    Err(CallError::Dropped(
        "the local cloud's supervisor closed the connection before it answered (it stopped or was killed; see supervisor.log)".into(),
    ))
}

/// Whether a peer of the control socket may use it: only the user the supervisor
/// runs as (the socket hands out secrets and accepts `down` and `deploy`).
pub fn peer_allowed(peer_uid: Option<u32>, own_uid: u32) -> bool {
    peer_uid == Some(own_uid)
}

/// The uid this process runs as.
pub fn own_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Answers a refused peer with one error line and closes.
pub async fn refuse(mut stream: UnixStream, peer_uid: Option<u32>) {
    let who = peer_uid.map_or_else(|| "an unknown user".to_string(), |u| format!("uid {u}"));
    let _ = stream
        .write_all(
            format!(
                "{}\n",
                json!({"done": true, "error": format!("refused: {who} is not the user this local cloud runs as")})
            )
            .as_bytes(),
        )
        .await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every request, and its line on the wire.
    fn every_request() -> Vec<(Request, Value)> {
        let service = || "api".to_string();
        vec![
            (Request::Status, json!({"op": "status"})),
            (
                Request::Deploy { service: service() },
                json!({"op": "deploy", "service": "api"}),
            ),
            (
                Request::Rollback { service: service() },
                json!({"op": "rollback", "service": "api"}),
            ),
            (
                Request::Scale {
                    service: service(),
                    count: 3,
                },
                json!({"op": "scale", "service": "api", "count": 3}),
            ),
            (
                Request::Deployments { service: service() },
                json!({"op": "deployments", "service": "api"}),
            ),
            (Request::Down, json!({"op": "down"})),
            (Request::Events, json!({"op": "events"})),
            (
                Request::Ssm {
                    action: "GetParameter".into(),
                    input: json!({"Name": "/x"}),
                },
                json!({"op": "ssm", "action": "GetParameter", "input": {"Name": "/x"}}),
            ),
            (Request::RotateKey, json!({"op": "rotate-key"})),
            (
                Request::Exec {
                    service: service(),
                    task: None,
                },
                json!({"op": "exec", "service": "api", "task": null}),
            ),
            (
                Request::Exec {
                    service: service(),
                    task: Some(7),
                },
                json!({"op": "exec", "service": "api", "task": 7}),
            ),
            (
                Request::SpotInterrupt {
                    service: service(),
                    task: Some(3),
                    all: false,
                },
                json!({"op": "spot-interrupt", "service": "api", "task": 3, "all": false}),
            ),
        ]
    }

    #[test]
    fn every_request_has_its_wire_shape() {
        for (request, wire) in every_request() {
            assert_eq!(serde_json::to_value(&request).unwrap(), wire);
            assert_eq!(Request::parse(&wire.to_string()), Ok(request));
            let op = wire["op"].as_str().unwrap();
            assert!(Request::OPS.contains(&op), "{op}");
        }
    }

    #[test]
    fn a_request_missing_a_field_is_refused_naming_it() {
        let e = Request::parse(r#"{"op": "scale", "service": "api"}"#).unwrap_err();
        assert_eq!(e, "bad request: missing field `count`");
        let e = Request::parse(r#"{"op": "scale", "service": "api", "count": -1}"#).unwrap_err();
        assert!(e.starts_with("bad request: invalid value"), "{e}");
        let e = Request::parse(r#"{"op": "deploy"}"#).unwrap_err();
        assert_eq!(e, "bad request: missing field `service`");
        // `task` and `all` may be left out of a spot interruption.
        assert_eq!(
            Request::parse(r#"{"op": "spot-interrupt", "service": "api"}"#),
            Ok(Request::SpotInterrupt {
                service: "api".into(),
                task: None,
                all: false
            })
        );
        let e = Request::parse(r#"{"op": "launch"}"#).unwrap_err();
        assert_eq!(e, "unknown operation `launch`");
        let e = Request::parse(r#"{"service": "api"}"#).unwrap_err();
        assert_eq!(e, "unknown operation ``");
        let e = Request::parse("status").unwrap_err();
        assert!(e.starts_with("bad request: expected value"), "{e}");
    }

    #[test]
    fn only_the_supervisors_own_uid_may_use_the_socket() {
        assert!(peer_allowed(Some(1000), 1000));
        assert!(!peer_allowed(Some(1001), 1000));
        assert!(!peer_allowed(Some(0), 1000), "not even root's processes");
        assert!(!peer_allowed(None, 1000), "no credentials, no access");
        assert!(peer_allowed(Some(own_uid()), own_uid()));
    }
}
