//! Target tracking and alarms, at the end of each unit's metrics period
//! (`super::metrics`): the period's values go to the unit's
//! `core::scaling::TargetTracking` and to each of its `core::alarms::Alarm`s
//! (the ones the aws target synthesizes, `crate::monitor`); what they decide is
//! carried out here.
//!
//! - A scaling activity sets the unit's desired count (as `scale` does, so it
//!   outlives a restart), is an event, and is appended to `activity.jsonl` in
//!   the environment's state directory (the last [`KEEP`] are kept, and loaded
//!   again at start).
//! - An alarm's state change is an event, appended to `alarms.jsonl`, and runs
//!   the unit's actions as background jobs (the loop never waits for them):
//!   `local.alarms.command` (`sh -c`, killed after [`ACTION_TIMEOUT`]) and a POST
//!   of the change as JSON to `local.alarms.url` (loopback only, by the setting's
//!   rule). With `deployment.rollback_alarms`, the target-5xx or
//!   unhealthy-hosts alarm going to ALARM during a deployment fails it, and it
//!   rolls back as a circuit-breaker failure does.
//!
//! Streaks, cooldowns and alarm states start afresh when the supervisor starts
//! (alarms in INSUFFICIENT_DATA, as a new CloudWatch alarm).

use super::*;
use crate::core::alarms::{self, Alarm, State};
use crate::core::scaling::{self, Metric, Policy, Readings, TargetTracking};
use crate::monitor::{AlarmMetric, AlarmSpec, Monitor};
use std::collections::{HashMap, VecDeque};
use std::io::Write;

/// Activities and alarm changes kept (in memory and on disk).
pub(super) const KEEP: usize = 500;
/// How long an alarm action may run.
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// One scaling activity as recorded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ActivityRecord {
    pub time: String,
    pub unit: String,
    pub from: u32,
    pub to: u32,
    /// `scale-out`, `scale-in`, `minimum`, `maximum`, or `suppressed`.
    pub kind: String,
    pub status: String,
    pub cause: String,
}

/// One alarm state change as recorded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct AlarmRecord {
    pub time: String,
    pub unit: String,
    pub alarm: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Default)]
pub(super) struct WatchRt {
    scalers: HashMap<String, TargetTracking>,
    /// Per unit, its alarms and what each watches.
    alarms: HashMap<String, Vec<(AlarmSpec, Alarm)>>,
    pub(super) activities: VecDeque<ActivityRecord>,
    pub(super) changes: VecDeque<AlarmRecord>,
    loaded: bool,
}

fn params(s: &crate::monitor::Scaling) -> scaling::Params {
    let mut policies = vec![Policy {
        metric: Metric::Cpu,
        target: s.cpu as f64,
    }];
    if let Some(m) = s.memory {
        policies.push(Policy {
            metric: Metric::Memory,
            target: m as f64,
        });
    }
    if let Some(r) = s.requests {
        policies.push(Policy {
            metric: Metric::RequestsPerTarget,
            target: r as f64,
        });
    }
    if let Some((_, b)) = &s.backlog {
        policies.push(Policy {
            metric: Metric::BacklogPerTask,
            target: *b as f64,
        });
    }
    let mut p = scaling::Params::new(s.min, s.max, policies);
    p.cooldown_out = s.cooldown_out_ms;
    p.cooldown_in = s.cooldown_in_ms;
    p
}

fn alarm_spec(a: &AlarmSpec) -> alarms::Spec {
    let stat = match a.metric {
        AlarmMetric::Target5xx => "Sum, per minute",
        AlarmMetric::Cpu => "Average",
        _ => "Maximum",
    };
    alarms::Spec::new(
        a.name.clone(),
        format!("{} ({stat})", a.metric.name()),
        a.threshold as f64,
        a.periods,
    )
}

/// Appends `line` to `path`, keeping the file to about [`KEEP`] lines.
fn append(path: &std::path::Path, line: &str) {
    let big = std::fs::metadata(path).is_ok_and(|m| m.len() > 512 * 1024);
    if big && let Ok(text) = std::fs::read_to_string(path) {
        let lines: Vec<&str> = text.lines().collect();
        let keep = lines[lines.len().saturating_sub(KEEP)..].join("\n");
        let tmp = path.with_extension("jsonl.tmp");
        if std::fs::write(&tmp, format!("{keep}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
    if let Ok(mut f) = pantstack_rt::private::append_private(path) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
        let _ = f.sync_data();
    }
}

fn load<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> VecDeque<T> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: VecDeque<T> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    while out.len() > KEEP {
        out.pop_front();
    }
    out
}

impl Supervisor {
    fn activity_path(&self) -> PathBuf {
        self.paths.dir.join("activity.jsonl")
    }
    fn alarms_path(&self) -> PathBuf {
        self.paths.dir.join("alarms.jsonl")
    }

    /// The wall-clock time of supervisor-clock instant `at`.
    fn wall(&self, at: Millis) -> String {
        let ago = Duration::from_millis(self.now().saturating_sub(at));
        pantstack_rt::clock::rfc3339_micros(SystemTime::now() - ago)
    }

    /// What a unit's ended period changes: target tracking and alarms.
    pub(super) async fn after_period(&mut self, name: &str, now: Millis) {
        self.load_records();
        let Some(monitor) = self.monitor_of(name).cloned() else {
            return;
        };
        let values = self.metrics.latest.get(name).cloned().unwrap_or_default();
        self.scale(name, now, &monitor, &values);
        self.evaluate_alarms(name, now, &monitor, &values);
    }

    fn scale(&mut self, name: &str, now: Millis, m: &Monitor, v: &crate::metrics::Values) {
        let Some(s) = &m.scaling else {
            self.watch.scalers.remove(name);
            return;
        };
        let p = params(s);
        let tt = self
            .watch
            .scalers
            .entry(name.to_string())
            .or_insert_with(|| TargetTracking::new(p.clone()));
        tt.update(p);
        let backlog = s.backlog.as_ref().and_then(|(q, _)| {
            let visible = self.metrics.queues.get(q)?.visible as f64;
            Some(if v.running > 0 {
                visible / f64::from(v.running)
            } else {
                visible
            })
        });
        let Some(rt) = self.units.get(name) else {
            return;
        };
        let period = scaling::Period {
            now,
            readings: Readings {
                cpu: v.cpu,
                memory: v.memory,
                requests_per_target: v.requests_per_target_per_minute,
                backlog_per_task: backlog,
            },
            desired: rt.desired,
            deploying: rt.deploy.is_some(),
        };
        let Some(tt) = self.watch.scalers.get_mut(name) else {
            return;
        };
        let decision = tt.evaluate(&period);
        if let Some(a) = decision.activity {
            let kind = serde_json::to_value(a.kind)
                .ok()
                .and_then(|k| k.as_str().map(str::to_string))
                .unwrap_or_default();
            if let Some(rt) = self.units.get_mut(name) {
                rt.desired = a.to;
            }
            self.emit(
                name,
                "scale",
                format!("desired count {} → {}: {}", a.from, a.to, a.cause),
            );
            self.save();
            self.record_activity(ActivityRecord {
                time: self.wall(a.at),
                unit: name.to_string(),
                from: a.from,
                to: a.to,
                kind,
                status: "Successful".into(),
                cause: a.cause,
            });
        } else if let Some(s) = decision.suppressed {
            self.emit(name, "scale-suspended", s.cause.clone());
            self.record_activity(ActivityRecord {
                time: self.wall(s.at),
                unit: name.to_string(),
                from: s.from,
                to: s.to,
                kind: "suppressed".into(),
                status: "Suppressed".into(),
                cause: s.cause,
            });
        }
    }

    fn record_activity(&mut self, a: ActivityRecord) {
        if let Ok(line) = serde_json::to_string(&a) {
            append(&self.activity_path(), &line);
        }
        self.watch.activities.push_back(a);
        while self.watch.activities.len() > KEEP {
            self.watch.activities.pop_front();
        }
    }

    fn alarm_value(
        &self,
        m: &Monitor,
        metric: &AlarmMetric,
        v: &crate::metrics::Values,
    ) -> Option<f64> {
        match metric {
            // Per minute, over the period's real length.
            AlarmMetric::Target5xx => v.target_5xx.map(|n| {
                let secs = v
                    .elapsed_s
                    .unwrap_or(m.period_ms as f64 / 1000.0)
                    .max(0.001);
                n * 60.0 / secs
            }),
            AlarmMetric::UnhealthyHosts => v.unhealthy,
            AlarmMetric::Cpu => v.cpu,
            AlarmMetric::QueueVisible(q) => self.metrics.queues.get(q).map(|x| x.visible as f64),
            AlarmMetric::QueueAge(q) => self.metrics.queues.get(q).map(|x| x.oldest_age_s as f64),
        }
    }

    fn evaluate_alarms(
        &mut self,
        name: &str,
        now: Millis,
        m: &Monitor,
        v: &crate::metrics::Values,
    ) {
        // The unit's alarms as its revision says now: new ones start, gone ones go.
        let mut list = self.watch.alarms.remove(name).unwrap_or_default();
        list.retain(|(spec, _)| m.alarms.iter().any(|a| a.name == spec.name));
        for a in &m.alarms {
            match list.iter_mut().find(|(s, _)| s.name == a.name) {
                Some((s, alarm)) => {
                    *s = a.clone();
                    alarm.update(alarm_spec(a));
                }
                None => list.push((a.clone(), Alarm::new(alarm_spec(a), now))),
            }
        }
        let mut changes = Vec::new();
        for (spec, alarm) in &mut list {
            let value = self.alarm_value(m, &spec.metric, v);
            if let Some(t) = alarm.evaluate(now, value) {
                changes.push((spec.clone(), t));
            }
        }
        self.watch.alarms.insert(name.to_string(), list);
        for (spec, t) in changes {
            self.alarm_changed(name, m, &spec, t);
        }
    }

    fn alarm_changed(&mut self, name: &str, m: &Monitor, spec: &AlarmSpec, t: alarms::Transition) {
        let record = AlarmRecord {
            time: self.wall(t.at),
            unit: name.to_string(),
            alarm: t.alarm.clone(),
            from: t.from.as_str().to_string(),
            to: t.to.as_str().to_string(),
            reason: t.reason.clone(),
        };
        self.emit(
            name,
            "alarm",
            format!("{}: {} → {}: {}", t.alarm, record.from, record.to, t.reason),
        );
        if let Ok(line) = serde_json::to_string(&record) {
            append(&self.alarms_path(), &line);
        }
        let body = json!({
            "AlarmName": spec.name,
            "AlarmDescription": spec.description,
            "NewStateValue": record.to,
            "OldStateValue": record.from,
            "NewStateReason": record.reason,
            "StateChangeTime": record.time,
            "Trigger": {
                "MetricName": spec.metric.name(),
                "Threshold": spec.threshold,
                "EvaluationPeriods": spec.periods,
                "Period": m.period_ms / 1000,
                "ComparisonOperator": "GreaterThanThreshold",
            },
        });
        self.watch.changes.push_back(record.clone());
        while self.watch.changes.len() > KEEP {
            self.watch.changes.pop_front();
        }
        if let Some(cmd) = &m.alarm_command {
            tokio::spawn(run_command(
                cmd.clone(),
                record.clone(),
                self.events.clone(),
            ));
        }
        if let Some(url) = &m.alarm_url {
            tokio::spawn(post(
                url.clone(),
                body,
                name.to_string(),
                self.events.clone(),
            ));
        }
        let rollback_alarm = matches!(
            spec.metric,
            AlarmMetric::Target5xx | AlarmMetric::UnhealthyHosts
        );
        if m.rollback_alarms && rollback_alarm && t.to == State::Alarm {
            let Some(rt) = self.units.get_mut(name) else {
                return;
            };
            if rt.deploy.as_ref().is_some_and(|d| d.kind != "rollback")
                && let Some(d) = rt.deploy.take()
            {
                let reason = format!("rollback alarm {} went to ALARM: {}", spec.name, t.reason);
                self.finish(name, Outcome::Failed(reason), d);
            }
        }
    }

    /// The recorded activities and alarm changes, read from disk once.
    fn load_records(&mut self) {
        if !self.watch.loaded {
            self.watch.loaded = true;
            self.watch.activities = load(&self.activity_path());
            self.watch.changes = load(&self.alarms_path());
        }
    }

    /// The units of `service` (every unit without one), or the answer saying
    /// there is no such service.
    fn watched_units(&self, service: Option<&str>) -> Result<Vec<String>, Value> {
        let units = match service {
            Some(s) => self.units_of_service(s),
            None => self.units.keys().cloned().collect(),
        };
        if units.is_empty() {
            return Err(
                json!({ "done": true, "error": format!("no service or unit `{}`", service.unwrap_or("")) }),
            );
        }
        Ok(units)
    }

    /// The answer to `activity`.
    pub(super) fn activity_answer(&mut self, service: Option<&str>) -> Value {
        self.load_records();
        let units = match self.watched_units(service) {
            Ok(u) => u,
            Err(answer) => return answer,
        };
        let list: Vec<&ActivityRecord> = self
            .watch
            .activities
            .iter()
            .filter(|a| units.contains(&a.unit))
            .collect();
        json!({ "done": true, "activities": list })
    }

    /// The answer to `alarms`.
    pub(super) fn alarms_answer(&mut self, service: Option<&str>) -> Value {
        self.load_records();
        let units = match self.watched_units(service) {
            Ok(u) => u,
            Err(answer) => return answer,
        };
        let mut out = Vec::new();
        for u in &units {
            // Alarms not evaluated yet (the first period has not ended) show as
            // INSUFFICIENT_DATA.
            let specs = self
                .monitor_of(u)
                .map(|m| m.alarms.clone())
                .unwrap_or_default();
            for spec in specs {
                let live = self
                    .watch
                    .alarms
                    .get(u)
                    .and_then(|l| l.iter().find(|(s, _)| s.name == spec.name));
                let history: Vec<&AlarmRecord> = self
                    .watch
                    .changes
                    .iter()
                    .filter(|c| c.alarm == spec.name)
                    .collect();
                let (state, reason, updated, value) = match live {
                    Some((_, a)) => {
                        let v = a.view();
                        (
                            v.state.as_str(),
                            v.reason.to_string(),
                            self.wall(v.since),
                            v.last_value,
                        )
                    }
                    None => (
                        "INSUFFICIENT_DATA",
                        "not evaluated yet".to_string(),
                        String::new(),
                        None,
                    ),
                };
                out.push(json!({
                    "name": spec.name, "unit": u, "description": spec.description,
                    "metric": spec.metric.name(), "threshold": spec.threshold,
                    "periods": spec.periods, "state": state, "reason": reason,
                    "updated": updated, "value": value, "history": history,
                }));
            }
        }
        json!({ "done": true, "alarms": out })
    }
}

/// Runs an alarm's command with the change in its environment; its end is an
/// event.
async fn run_command(cmd: String, r: AlarmRecord, events: broadcast::Sender<Event>) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .env("PANTSTACK_ALARM_NAME", &r.alarm)
        .env("PANTSTACK_ALARM_STATE", &r.to)
        .env("PANTSTACK_ALARM_PREVIOUS_STATE", &r.from)
        .env("PANTSTACK_ALARM_REASON", &r.reason)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let message = match child {
        Err(e) => format!("{}: local.alarms.command could not start: {e}", r.alarm),
        Ok(mut c) => match tokio::time::timeout(ACTION_TIMEOUT, c.wait()).await {
            Ok(Ok(s)) => format!("{}: local.alarms.command ended ({s})", r.alarm),
            Ok(Err(e)) => format!("{}: local.alarms.command: {e}", r.alarm),
            Err(_) => {
                let _ = c.kill().await;
                format!(
                    "{}: local.alarms.command killed after {} s",
                    r.alarm,
                    ACTION_TIMEOUT.as_secs()
                )
            }
        },
    };
    let _ = events.send(Event {
        time: now_text(),
        unit: r.unit,
        kind: "alarm-action".into(),
        message,
    });
}

/// POSTs an alarm change to a loopback URL (`http://HOST:PORT/PATH`, checked by
/// the setting's rule); its answer's status line is an event.
async fn post(url: String, body: Value, unit: String, events: broadcast::Sender<Event>) {
    let alarm = body["AlarmName"].as_str().unwrap_or("").to_string();
    let message = match tokio::time::timeout(Duration::from_secs(5), post_once(&url, &body)).await {
        Ok(Ok(status)) => format!("{alarm}: POST {url}: {status}"),
        Ok(Err(e)) => format!("{alarm}: POST {url} failed: {e}"),
        Err(_) => format!("{alarm}: POST {url}: no answer within 5 s"),
    };
    let _ = events.send(Event {
        time: now_text(),
        unit,
        kind: "alarm-action".into(),
        message,
    });
}

async fn post_once(url: &str, body: &Value) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let host = authority
        .to_ascii_lowercase()
        .replace("localhost", "127.0.0.1");
    let addr = host.trim_start_matches('[').replace("]:", ":");
    let addr: std::net::SocketAddr = match addr.rsplit_once(':') {
        Some((h, p)) if h.contains(':') => format!("[{h}]:{p}").parse(),
        _ => addr.parse(),
    }
    .map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{authority}: {e}"),
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a loopback address",
        ));
    }
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: pantstack-alarms\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text.lines().next().unwrap_or("no answer").to_string())
}
