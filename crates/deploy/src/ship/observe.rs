//! What runs in an environment on AWS: `status` (stacks, drift, ECS's verdicts on
//! services) and `logs`.

use super::*;

pub(super) fn verdict_json(v: &Verdict) -> Value {
    json!({
        "service": v.service,
        "deployment": v.rollout,
        "reason": v.reason,
        "running": v.running,
        "desired": v.desired,
        "pending": v.pending,
        "task_definition": v.task_definition,
        "stopped_tasks": v.stopped.iter().map(|t| json!({
            "task": t.task,
            "reason": t.reason,
            "containers": t.containers.iter().map(|(n, c, r)| json!({ "name": n, "exit_code": c, "reason": r })).collect::<Vec<_>>(),
            "last_log_lines": t.last_lines,
        })).collect::<Vec<_>>(),
    })
}

/// ECS's verdict once it has one: while a deployment is in progress (CloudFormation
/// may finish before ECS does), it is asked again until `Clients::timeout`.
pub(super) async fn settled_verdicts(e: &Env<'_>, svc: &str, failed: bool) -> Vec<Verdict> {
    let deadline = std::time::Instant::now() + e.clients.timeout;
    loop {
        let v = service_verdicts(e, svc, failed).await;
        let busy: Vec<&Verdict> = v.iter().filter(|x| x.rollout == "IN_PROGRESS").collect();
        if busy.is_empty() || std::time::Instant::now() > deadline {
            for x in &v {
                e.progress.set(
                    &format!("service {}", x.service),
                    &format!(
                        "{} ({}/{} running)",
                        x.rollout.to_lowercase().replace('_', " "),
                        x.running,
                        x.desired
                    ),
                );
            }
            return v;
        }
        for x in &v {
            e.progress.set(
                &format!("service {}", x.service),
                &format!(
                    "{} ({}/{} running, {} pending)",
                    x.rollout.to_lowercase().replace('_', " "),
                    x.running,
                    x.desired,
                    x.pending
                ),
            );
        }
        tokio::time::sleep(e.clients.poll).await;
    }
}

/// The ECS services of a service's stack and their verdicts.
async fn service_verdicts(e: &Env<'_>, svc: &str, failed: bool) -> Vec<Verdict> {
    let Some(unit) = e.repo.service(svc) else {
        return vec![];
    };
    let mut names = Vec::new();
    if unit.service.http.is_some() {
        names.push(svc.to_string());
    }
    if unit.service.worker.is_some() {
        names.push(format!("{svc}-worker"));
    }
    let cluster = e.names().cluster(svc);
    let log_group = e.names().log_group(svc);
    match verdict::verdict(&e.clients, &cluster, &names, &log_group, failed).await {
        Ok(v) => v,
        Err(m) => vec![Verdict {
            service: svc.to_string(),
            rollout: "UNKNOWN".into(),
            reason: m,
            ..Verdict::default()
        }],
    }
}

/// `status`: every stack of the environment, drift where detected, and each
/// service's tasks and last deployment.
pub async fn status(e: &Env<'_>) -> Result<Value, Failure> {
    let mut stacks = Vec::new();
    let prefix = format!("{}-", e.names().prefix());
    for s in &e.output.plan.stacks {
        let c = e.clients_for(s);
        let d = stack::describe(&c, &s.name).await?;
        let mut v = json!({
            "stack": s.name,
            "region": s.region,
            "status": d.as_ref().map(|d| d.status.clone()).unwrap_or_else(|| "ABSENT".into()),
            "drift": d.as_ref().and_then(|d| d.drift.clone()).filter(|x| x != "NOT_CHECKED"),
        });
        if let Some(d) = &d {
            if let Some(u) = d.output("Url") {
                v["url"] = json!(u);
            }
            let svc = s
                .name
                .strip_prefix(&prefix)
                .filter(|r| e.repo.service(r).is_some());
            if let Some(svc) = svc {
                let verdicts = service_verdicts(e, svc, false).await;
                v["service"] = json!(svc);
                v["ecs"] = json!(verdicts.iter().map(verdict_json).collect::<Vec<_>>());
            }
            v["outputs"] = outputs_map(&d.outputs);
        }
        stacks.push(v);
    }
    // Stacks of services no longer in the monorepo (`deploy --prune` deletes them).
    for n in e.orphans().await? {
        let d = stack::describe(&e.clients, &n).await?;
        stacks.push(json!({
            "stack": n,
            "region": e.clients.region,
            "status": d.map(|d| d.status).unwrap_or_else(|| "ABSENT".into()),
            "orphaned": true,
        }));
    }
    Ok(json!({ "environment": e.env, "region": e.clients.region, "stacks": stacks }))
}

/// One log event.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub ms: i64,
    pub stream: String,
    pub message: String,
}

/// Log events of a service (its worker with `unit` = `svc-worker`) from `since_ms`,
/// across its tasks; the next `since_ms` to follow with.
pub async fn logs(
    e: &Env<'_>,
    service: &str,
    worker: Option<bool>,
    since_ms: i64,
) -> Result<(Vec<LogLine>, i64), Failure> {
    let group = e.names().log_group(service);
    let mut token: Option<String> = None;
    let mut lines = Vec::new();
    let mut next = since_ms;
    for _ in 0..50 {
        let mut req = e
            .clients
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .start_time(since_ms)
            .set_next_token(token.clone());
        if let Some(w) = worker {
            req = req.log_stream_name_prefix(if w { "worker/" } else { "http/" });
        }
        let r = match req.send().await {
            Ok(r) => r,
            Err(err) => match service_error(&err) {
                Some((code, _)) if code == "ResourceNotFoundException" => {
                    return Err(Failure::new(format!(
                        "no log group {group}: `{service}` has not been deployed to `{}`",
                        e.env
                    )));
                }
                _ => return Err(Failure::new(format!("cannot read {group}: {}", why(&err)))),
            },
        };
        for ev in r.events() {
            let ms = ev.timestamp().unwrap_or_default();
            next = next.max(ms + 1);
            lines.push(LogLine {
                ms,
                stream: ev.log_stream_name().unwrap_or_default().to_string(),
                message: ev.message().unwrap_or_default().trim_end().to_string(),
            });
        }
        token = r.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    lines.sort_by_key(|l| l.ms);
    Ok((lines, next))
}
