//! `logs` (the tasks' streams, which outlive the local cloud: filters, follow across
//! tasks, JSON-aware output) and `trace` (one request across the load balancers'
//! access logs and the services' logs). The store's layout is
//! `pantstack_local::logs`'s.
//!
//! Output into a closed pipe ends the command quietly (exit 0), also while
//! `--follow` waits for new lines: standard output is polled for the reader's end.

use super::*;
use crate::args::{ColorChoice, LogsArgs, TraceArgs};
use pantstack_local::logs::{self as store, Follower, Line};
use serde_json::Map;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

/// How often `--follow` looks for new lines and new streams.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The environment whose logs to read: the one running (or named), else the only
/// one with logs.
fn log_paths(global: &Global, named: Option<&str>) -> Result<Paths, Failure> {
    let root = find_root(global)?;
    let env_name = match client::running_env(&root, named) {
        Ok(e) => e,
        Err(e) if named.is_some() => return Err(e.into()),
        Err(_) => client::env_with_logs(&root)
            .ok_or_else(|| Failure::Resolve("no local cloud logs here; pass --env".into()))?,
    };
    Ok(Paths::new(&root, &env_name))
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn bound(flag: &str, v: Option<&str>, now: f64) -> Result<Option<f64>, Failure> {
    v.map(|s| {
        store::parse_bound(s, now).ok_or_else(|| {
            Failure::Usage(format!(
                "{flag} {s}: expected a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 time (2026-12-05T01:00:00Z)"
            ))
        })
    })
    .transpose()
}

/// Colour on standard output: a terminal without NO_COLOR, or `--color always`.
fn stdout_color(global: &Global) -> bool {
    match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

/// The service of a unit (`api-worker` → `api`).
fn service_of(unit: &str) -> &str {
    unit.strip_suffix("-worker").unwrap_or(unit)
}

/// A JSON log line's level, message and other fields.
struct Fields {
    level: Option<String>,
    message: Option<String>,
    all: Map<String, Value>,
}

const LEVEL_KEYS: [&str; 4] = ["level", "lvl", "severity", "levelname"];
const MESSAGE_KEYS: [&str; 3] = ["message", "msg", "text"];

/// The fields of a message that is one JSON object.
fn fields(message: &str) -> Option<Fields> {
    let t = message.trim();
    if !t.starts_with('{') {
        return None;
    }
    let Ok(Value::Object(all)) = serde_json::from_str::<Value>(t) else {
        return None;
    };
    let text = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            all.get(*k).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
    };
    Some(Fields {
        level: text(&LEVEL_KEYS),
        message: text(&MESSAGE_KEYS),
        all: all.clone(),
    })
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// A message for people: a JSON object as `LEVEL message key=value …`.
fn human_message(message: &str, color: bool) -> String {
    let Some(f) = fields(message) else {
        return message.to_string();
    };
    let mut out = String::new();
    if let Some(level) = &f.level {
        let code = match level.to_ascii_lowercase().as_str() {
            "error" | "err" | "fatal" | "critical" | "panic" => "1;31",
            "warn" | "warning" => "1;33",
            "info" | "notice" => "1;32",
            _ => "2",
        };
        out.push_str(&paint(color, code, &level.to_ascii_uppercase()));
        out.push(' ');
    }
    if let Some(m) = &f.message {
        out.push_str(&paint(color, "1", m));
    }
    for (k, v) in &f.all {
        if (f.level.is_some() && LEVEL_KEYS.contains(&k.as_str()))
            || (f.message.is_some() && MESSAGE_KEYS.contains(&k.as_str()))
        {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push(' ');
        out.push_str(&paint(color, "2", &format!("{k}=")));
        out.push_str(&v);
    }
    out.trim_end().to_string()
}

/// One line of one stream.
struct Entry {
    unit: String,
    task: String,
    line: Line,
}

impl Entry {
    fn json(&self) -> Value {
        let f = fields(&self.line.message);
        json!({
            "service": service_of(&self.unit),
            "unit": self.unit,
            "task": self.task,
            "timestamp": self.line.stamp,
            "stream": self.line.stream,
            "level": f.as_ref().and_then(|f| f.level.clone()),
            "message": f.as_ref().and_then(|f| f.message.clone()).unwrap_or_else(|| self.line.message.clone()),
            "fields": f.map(|f| Value::Object(f.all)),
        })
    }

    fn human(&self, color: bool) -> String {
        format!(
            "{} {} {} {}",
            paint(color, "36", &format!("{}/{}", self.unit, self.task)),
            paint(color, "2", &self.line.stamp),
            self.line.stream,
            human_message(&self.line.message, color)
        )
    }
}

/// What `logs` keeps.
struct Filter {
    since: Option<f64>,
    until: Option<f64>,
    grep: Option<String>,
    ignore_case: bool,
}

impl Filter {
    fn keeps(&self, l: &Line) -> bool {
        if self.since.is_some_and(|s| l.time < s) || self.until.is_some_and(|u| l.time >= u) {
            return false;
        }
        match &self.grep {
            None => true,
            Some(p) if self.ignore_case => l.message.to_lowercase().contains(p),
            Some(p) => l.message.contains(p.as_str()),
        }
    }
}

/// Whether the reader of standard output has gone (a pipe closed by `head`).
fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let out = std::io::stdout();
    let mut fds = [PollFd::new(&out, PollFlags::empty())];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).is_ok()
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// Writes lines; `Ok(false)` once the reader has gone.
fn emit(w: &mut impl Write, lines: impl Iterator<Item = String>) -> Result<bool, Failure> {
    let r = (|| {
        for l in lines {
            writeln!(w, "{l}")?;
        }
        w.flush()
    })();
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::Io(format!("cannot write the logs: {e}"))),
    }
}

pub fn logs(global: &Global, out: &Out, a: &LogsArgs) -> Result<(), Failure> {
    let paths = log_paths(global, a.env.as_deref())?;
    let now = now_secs();
    let filter = Filter {
        since: bound("--since", a.since.as_deref(), now)?,
        until: bound("--until", a.until.as_deref(), now)?,
        grep: a.grep.as_ref().map(|g| {
            if a.ignore_case {
                g.to_lowercase()
            } else {
                g.clone()
            }
        }),
        ignore_case: a.ignore_case,
    };
    let wanted = |unit: &str| match &a.service {
        None => true,
        Some(s) => unit == s || unit == pantstack_local::spec::worker_unit(s),
    };
    if !store::groups(&paths.logs()).iter().any(|(u, _)| wanted(u)) {
        let env_name = paths
            .logs()
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(Failure::Resolve(match &a.service {
            Some(s) => format!("no logs for `{s}` in environment `{env_name}`"),
            None => format!("no logs in environment `{env_name}`"),
        }));
    }
    let color = stdout_color(global);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut follower = Follower::default();
    loop {
        let mut batch: Vec<Entry> = Vec::new();
        // Listed afresh each round: tasks started since (replacements, new
        // deployments) are new streams, a unit deployed since a new group.
        for (unit, dir) in store::groups(&paths.logs()) {
            if !wanted(&unit) {
                continue;
            }
            for (task, path) in store::stream_files(&dir) {
                for raw in follower.read_new(&path) {
                    let line = store::parse_line(&raw);
                    if filter.keeps(&line) {
                        batch.push(Entry {
                            unit: unit.clone(),
                            task: task.clone(),
                            line,
                        });
                    }
                }
            }
        }
        batch.sort_by(|x, y| x.line.time.total_cmp(&y.line.time));
        let open = emit(
            &mut w,
            batch.iter().map(|e| {
                if out.json() {
                    e.json().to_string()
                } else {
                    e.human(color)
                }
            }),
        )?;
        if !open || !a.follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
        if stdout_closed() {
            return Ok(());
        }
    }
}

/// One access-log entry, split into its fields (ALB's order; quoted fields
/// unquoted, escapes kept).
fn access_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut field = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            field.push(n);
                        }
                    }
                    '"' => break,
                    c => field.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        out.push(field);
    }
    out
}

/// Indices of the access-log fields `trace` reads (`pantstack_lb::alb`'s line).
const F_TIME: usize = 1;
const F_CLIENT: usize = 3;
const F_TARGET: usize = 4;
const F_ELAPSED: usize = 6;
const F_STATUS: usize = 8;
const F_REQUEST: usize = 12;
const F_TRACE: usize = 17;
const F_REQUEST_ID: usize = 29;

/// The `Root=` value of a trace header (`Root=1-…;Parent=…` → `1-…`).
fn trace_root(trace: &str) -> Option<&str> {
    trace
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Root="))
        .filter(|r| !r.is_empty())
}

/// Whether an access-log entry's ids are `id`'s.
fn carries(request_id: &str, trace: &str, id: &str) -> bool {
    let id_root = trace_root(id).unwrap_or(id);
    request_id == id || trace == id || trace_root(trace) == Some(id_root)
}

pub fn trace(global: &Global, out: &Out, a: &TraceArgs) -> Result<(), Failure> {
    let id = a.id.trim();
    if id.len() < 4 {
        return Err(Failure::Usage(format!(
            "`{id}`: a request id or trace id is longer (an X-Request-Id such as 3f0c…-…, or Root=1-…)"
        )));
    }
    let paths = log_paths(global, a.env.as_deref())?;
    let access_dir = paths
        .access_log("_")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // (time, line for people, JSON)
    let mut found: Vec<(f64, String, Value)> = Vec::new();
    let mut needles: Vec<String> = vec![id.to_string()];
    if let Some(root) = trace_root(id) {
        needles.push(root.to_string());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&access_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let color = stdout_color(global);
    let texts: Vec<(String, String)> = files
        .iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            // `api.log` and its rolled files `api.log.<time>`.
            let (unit, _) = name.split_once(".log")?;
            Some((unit.to_string(), std::fs::read_to_string(path).ok()?))
        })
        .collect();
    // Two passes: the entries that carry the id, then those that carry the other
    // id of one of them (the request id of a trace id asked for, a trace id another
    // balancer gave the same request id).
    let mut matched: BTreeSet<(usize, usize)> = BTreeSet::new();
    for _pass in 0..2 {
        let mut learned: Vec<String> = Vec::new();
        for (fi, (unit, text)) in texts.iter().enumerate() {
            for (li, line) in text.lines().enumerate() {
                if matched.contains(&(fi, li)) || !needles.iter().any(|n| line.contains(n.as_str()))
                {
                    continue;
                }
                let f = access_fields(line);
                let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("-");
                if !needles
                    .iter()
                    .any(|n| carries(get(F_REQUEST_ID), get(F_TRACE), n))
                {
                    continue;
                }
                matched.insert((fi, li));
                for extra in [get(F_REQUEST_ID), trace_root(get(F_TRACE)).unwrap_or("-")] {
                    if extra != "-" && !needles.iter().chain(&learned).any(|n| n == extra) {
                        learned.push(extra.to_string());
                    }
                }
                let time = pantstack_rt::clock::parse_rfc3339(get(F_TIME)).unwrap_or(0.0);
                let human = format!(
                    "{} {} load-balancer {} → {} (client {}, target {}, {} s, request id {}, trace {})",
                    paint(color, "36", unit),
                    paint(color, "2", get(F_TIME)),
                    get(F_REQUEST),
                    paint(color, "1", get(F_STATUS)),
                    get(F_CLIENT),
                    get(F_TARGET),
                    get(F_ELAPSED),
                    get(F_REQUEST_ID),
                    get(F_TRACE),
                );
                let v = json!({
                    "timestamp": get(F_TIME), "source": "load-balancer", "service": service_of(unit),
                    "unit": unit, "request": get(F_REQUEST), "status": get(F_STATUS).parse::<u16>().ok(),
                    "client": get(F_CLIENT), "target": get(F_TARGET),
                    "elapsed_secs": get(F_ELAPSED).parse::<f64>().ok(),
                    "request_id": get(F_REQUEST_ID), "trace_id": get(F_TRACE),
                });
                found.push((time, human, v));
            }
        }
        if learned.is_empty() {
            break;
        }
        needles.extend(learned);
    }
    let mut follower = Follower::default();
    for (unit, dir) in store::groups(&paths.logs()) {
        for (task, path) in store::stream_files(&dir) {
            for raw in follower.read_new(&path) {
                if !needles.iter().any(|n| raw.contains(n.as_str())) {
                    continue;
                }
                let e = Entry {
                    unit: unit.clone(),
                    task: task.clone(),
                    line: store::parse_line(&raw),
                };
                let mut v = e.json();
                v["source"] = json!("task");
                found.push((e.line.time, e.human(color), v));
            }
        }
    }
    if found.is_empty() {
        return Err(Failure::Resolve(format!(
            "no access-log entry and no log line carries `{id}` in {} (load balancers write their access logs every 0.5 s)",
            paths
                .logs()
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )));
    }
    found.sort_by(|x, y| x.0.total_cmp(&y.0));
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    emit(
        &mut w,
        found.into_iter().map(
            |(_, human, v)| {
                if out.json() { v.to_string() } else { human }
            },
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_shown_by_its_fields() {
        assert_eq!(
            human_message(
                r#"{"level":"warn","message":"slow job","job":42,"request_id":"r-1"}"#,
                false
            ),
            "WARN slow job job=42 request_id=r-1"
        );
        assert_eq!(human_message("plain {not json", false), "plain {not json");
        assert_eq!(human_message(r#"{"msg":"m"}"#, false), "m");
        let e = Entry {
            unit: "api-worker".into(),
            task: "3".into(),
            line: store::parse_line(
                r#"2026-12-05T01:02:03.000000Z stdout {"level":"info","msg":"done","id":7}"#,
            ),
        };
        let v = e.json();
        assert_eq!(v["service"], "api");
        assert_eq!(v["task"], "3");
        assert_eq!(v["timestamp"], "2026-12-05T01:02:03.000000Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["message"], "done");
        assert_eq!(v["fields"]["id"], 7);
    }

    #[test]
    fn access_log_fields_are_read_as_the_balancer_writes_them() {
        let line = r#"http 2026-12-05T01:02:03.000001Z app/api/local 127.0.0.1:5000 127.0.0.1:6000 0.000 0.012 0.000 200 200 - - "GET http://127.0.0.1:80/report HTTP/1.1" "curl/8 \"x\"" - - targetgroup/api/local "Root=1-675a0000-0123456789abcdef01234567" "-" "-" 0 2026-12-05T01:02:03.000001Z "forward" "-" "-" "127.0.0.1:6000" "200" "-" "-" req-123"#;
        let f = access_fields(line);
        assert_eq!(f[F_REQUEST], "GET http://127.0.0.1:80/report HTTP/1.1");
        assert_eq!(f[13], "curl/8 \"x\"");
        assert_eq!(f[F_STATUS], "200");
        assert_eq!(f[F_REQUEST_ID], "req-123");
        assert!(carries(&f[F_REQUEST_ID], &f[F_TRACE], "req-123"));
        assert!(carries(
            &f[F_REQUEST_ID],
            &f[F_TRACE],
            "1-675a0000-0123456789abcdef01234567"
        ));
        assert!(carries(
            &f[F_REQUEST_ID],
            &f[F_TRACE],
            "Root=1-675a0000-0123456789abcdef01234567;Parent=1"
        ));
        assert!(!carries(&f[F_REQUEST_ID], &f[F_TRACE], "req-12"));
    }
}
