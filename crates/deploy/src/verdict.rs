//! ECS's verdict on a service after its stack deployed (or failed): the state of
//! its primary deployment (completed, failed and rolled back by the circuit
//! breaker, in progress), the task counts, and for stopped tasks their reasons and
//! last log lines from CloudWatch Logs.

use crate::{Clients, why};
use aws_sdk_ecs::types::DesiredStatus;

#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// The ECS service (`api`, `api-worker`).
    pub service: String,
    /// `COMPLETED`, `FAILED`, `IN_PROGRESS`, or `MISSING`.
    pub rollout: String,
    pub reason: String,
    pub running: i32,
    pub desired: i32,
    pub pending: i32,
    pub task_definition: String,
    pub stopped: Vec<Stopped>,
}

#[derive(Clone, Debug, Default)]
pub struct Stopped {
    pub task: String,
    pub reason: String,
    /// (container, exit code, reason)
    pub containers: Vec<(String, Option<i32>, String)>,
    pub last_lines: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.rollout == "COMPLETED"
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "{}: deployment {}{} — {} running, {} desired, {} pending",
            self.service,
            self.rollout.to_lowercase().replace('_', " "),
            if self.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.reason)
            },
            self.running,
            self.desired,
            self.pending
        );
        for t in &self.stopped {
            s.push_str(&format!("\n    stopped task {}: {}", t.task, t.reason));
            for (name, code, reason) in &t.containers {
                s.push_str(&format!(
                    "\n      container {name}: exit {}{}",
                    code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(", {reason}")
                    }
                ));
            }
            for l in &t.last_lines {
                s.push_str(&format!("\n      | {l}"));
            }
        }
        s
    }
}

/// The verdict on `services` of `cluster`; stopped tasks (at most 3 per service)
/// are read when the deployment did not complete or `always_stopped` is set.
pub async fn verdict(
    c: &Clients,
    cluster: &str,
    services: &[String],
    log_group: &str,
    always_stopped: bool,
) -> Result<Vec<Verdict>, String> {
    let out = c
        .ecs
        .describe_services()
        .cluster(cluster)
        .set_services(Some(services.to_vec()))
        .send()
        .await
        .map_err(|e| format!("cannot describe the ECS services of {cluster}: {}", why(&e)))?;
    let mut verdicts = Vec::new();
    for name in services {
        let Some(s) = out
            .services()
            .iter()
            .find(|s| s.service_name() == Some(name))
        else {
            verdicts.push(Verdict {
                service: name.clone(),
                rollout: "MISSING".into(),
                ..Verdict::default()
            });
            continue;
        };
        let primary = s
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"));
        let mut v = Verdict {
            service: name.clone(),
            rollout: primary
                .and_then(|d| d.rollout_state())
                .map(|r| r.as_str().to_string())
                .unwrap_or_else(|| "COMPLETED".into()),
            reason: primary
                .and_then(|d| d.rollout_state_reason())
                .unwrap_or_default()
                .to_string(),
            running: s.running_count(),
            desired: s.desired_count(),
            pending: s.pending_count(),
            task_definition: s.task_definition().unwrap_or_default().to_string(),
            stopped: Vec::new(),
        };
        // Rolled back: the circuit breaker put the previous task definition back.
        if s.deployments().len() == 1
            && v.rollout == "COMPLETED"
            && v.reason.to_lowercase().contains("rollback")
        {
            v.rollout = "ROLLED_BACK".into();
        }
        if always_stopped || !v.ok() {
            v.stopped = stopped(c, cluster, name, log_group).await;
        }
        verdicts.push(v);
    }
    Ok(verdicts)
}

/// The newest stopped tasks of a service with their last log lines.
async fn stopped(c: &Clients, cluster: &str, service: &str, log_group: &str) -> Vec<Stopped> {
    let Ok(list) = c
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
    else {
        return Vec::new();
    };
    let arns: Vec<String> = list.task_arns().to_vec();
    if arns.is_empty() {
        return Vec::new();
    }
    let Ok(d) = c
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut tasks: Vec<_> = d.tasks().to_vec();
    tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at().map(|s| s.secs()).unwrap_or(0)));
    let prefix = if service.ends_with("-worker") {
        "worker"
    } else {
        "http"
    };
    let mut out = Vec::new();
    for t in tasks.into_iter().take(3) {
        let id = t
            .task_arn()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        let containers: Vec<(String, Option<i32>, String)> = t
            .containers()
            .iter()
            .map(|k| {
                (
                    k.name().unwrap_or_default().to_string(),
                    k.exit_code(),
                    k.reason().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let mut last_lines = Vec::new();
        if let Some((name, _, _)) = containers
            .iter()
            .find(|(n, _, _)| n != "adot" && n != "service-connect")
        {
            let stream = format!("{prefix}/{name}/{id}");
            if let Ok(ev) = c
                .logs
                .get_log_events()
                .log_group_name(log_group)
                .log_stream_name(&stream)
                .start_from_head(false)
                .limit(10)
                .send()
                .await
            {
                last_lines = ev
                    .events()
                    .iter()
                    .filter_map(|e| e.message().map(|m| m.trim_end().to_string()))
                    .collect();
            }
        }
        out.push(Stopped {
            task: id,
            reason: t.stopped_reason().unwrap_or_default().to_string(),
            containers,
            last_lines,
        });
    }
    out
}
