//! The control socket (`.pantstack/local/<env>/control.sock`): one JSON request line
//! per connection, answered with JSON lines until one says `"done": true`.
//! Operations: status, deploy, rollback, scale, deployments, down, events.

use crate::supervisor::Request;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};

/// Requests larger than this are refused (they are a few dozen bytes).
const MAX_REQUEST: usize = 64 * 1024;

pub async fn serve(
    stream: UnixStream,
    to_supervisor: mpsc::UnboundedSender<Request>,
    mut events: broadcast::Receiver<Value>,
) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r.take(MAX_REQUEST as u64)).lines();
    let Ok(Some(line)) = lines.next_line().await else {
        return;
    };
    let body: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => {
            let _ = w
                .write_all(
                    format!(
                        "{}\n",
                        json!({"done": true, "error": format!("bad request: {e}")})
                    )
                    .as_bytes(),
                )
                .await;
            return;
        }
    };
    let op = body["op"].as_str().unwrap_or("").to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    if op != "events" && to_supervisor.send(Request { body, reply: tx }).is_err() {
        return;
    }
    let stream_events = matches!(op.as_str(), "deploy" | "rollback" | "down" | "events");
    let mut units: Option<BTreeSet<String>> = None;
    let mut finals = BTreeSet::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                if let Some(list) = msg["units"].as_array() && units.is_none() && msg.get("done").is_none() {
                    units = Some(list.iter().filter_map(|u| u.as_str().map(str::to_string)).collect());
                }
                if msg["final"] == true && let Some(u) = msg["unit"].as_str() {
                    finals.insert(u.to_string());
                }
                let done = msg["done"] == true
                    || units.as_ref().is_some_and(|u| !u.is_empty() && finals.len() >= u.len());
                if w.write_all(format!("{msg}\n").as_bytes()).await.is_err() {
                    break;
                }
                if done {
                    if msg["done"] != true {
                        let _ = w.write_all(format!("{}\n", json!({"done": true})).as_bytes()).await;
                    }
                    break;
                }
            }
            ev = events.recv(), if stream_events => {
                match ev {
                    Ok(ev) => {
                        let relevant = op == "events" || op == "down" || units.as_ref().is_some_and(|u| ev["unit"].as_str().is_some_and(|x| u.contains(x)));
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

/// A client of the control socket: sends `request`, calls `each` for every answer
/// line, returns the last one. `Err` when no supervisor answers.
pub async fn call(
    socket: &Path,
    request: &Value,
    mut each: impl FnMut(&Value),
) -> Result<Value, String> {
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        format!(
            "no local cloud answers on {} ({e}); start it with `pantstack up`",
            socket.display()
        )
    })?;
    let (r, mut w) = stream.into_split();
    w.write_all(format!("{request}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(r).lines();
    let mut last = Value::Null;
    while let Ok(Some(line)) = lines.next_line().await {
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        each(&v);
        let done = v["done"] == true;
        last = v;
        if done {
            break;
        }
    }
    Ok(last)
}
