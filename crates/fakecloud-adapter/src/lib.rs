//! An adapter in front of fakecloud 0.51.0 (a local AWS emulator; AGPL-3.0, run as
//! a separate program, never linked): a loopback HTTP proxy that makes the
//! emulator answer the way AWS does where the aws target meets its deviations,
//! each listed in `DEVIATIONS` with the evidence. The templates and pantstack
//! itself are never bent to the emulator; this adapter is. The aws target's
//! end-to-end tests run it in-process; users trying the aws target without an
//! AWS account run its binary, `fakecloud-adapter` (docs/aws.md).
//!
//! One request per connection, loopback only; a development tool, not a server.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

pub mod authz;
pub mod record;

/// Each way fakecloud 0.51.0 differs from AWS that the aws target meets, and what
/// the adapter (or, where nothing can be adapted, the tests) does about it.
pub const DEVIATIONS: &[(&str, &str)] = &[
    (
        "AWS::ApplicationAutoScaling::ScalingPolicy with ScalingTargetId is refused",
        "fakecloud answers ExecuteChangeSet with `ValidationError: Failed to create resource \
         CpuScaling: ServiceNamespace is required`; AWS documents ScalingTargetId as the \
         alternative to ResourceId + ScalableDimension + ServiceNamespace and accepts it. \
         The adapter copies the three from the referenced ScalableTarget into \
         each policy of a CreateChangeSet's TemplateBody (or of the object its TemplateURL \
         names, rewritten in place in the emulator's S3), with a DependsOn on the target, \
         and answers GetTemplate with the body pantstack submitted (it compares it).",
    ),
    (
        "an ECS deployment's rolloutState never leaves IN_PROGRESS",
        "fakecloud-ecs 0.51.0 sets COMPLETED only in ContinueServiceDeployment (a lifecycle \
         hook), never when a deployment's tasks reach the desired count; its CloudFormation \
         records a service's new task definition as a new PRIMARY deployment but never \
         replaces the running tasks (resource_provisioner/ecs.rs update_ecs_service); and it \
         implements no deployment circuit breaker. The adapter asks its ECS to roll the new \
         task definition out (UpdateService with forceNewDeployment, once, as ECS does on \
         AWS), and answers DescribeServices with COMPLETED only once the service runs its \
         desired count of tasks, every one of the PRIMARY's task definition, none pending \
         (from ListTasks/DescribeTasks: fakecloud keeps the counts on the service only). A failing \
         deployment is not rolled back there, so the circuit breaker's report is tested with recorded AWS responses (crates/deploy/tests/replay.rs).",
    ),
    (
        "ECS tasks cannot reach the emulator's APIs, so the job flow cannot run in it",
        "fakecloud injects no AWS_ENDPOINT_URL into task containers and listens on loopback \
         only (never bound to other addresses here), so the example's tasks, in their own \
         Docker networks, cannot reach its SQS or S3: a job posted through the ALB cannot \
         be done by the worker there. The job flow through SQS and S3 is tested on the \
         local cloud (crates/cli/tests/local.rs); on the emulator the tasks are checked through ECS (RUNNING, \
         running = desired) and the ALB data plane (GET /healthz on its loopback port).",
    ),
    (
        "DescribeStacks omits a stack's RoleARN",
        "fakecloud 0.51.0 keeps no RoleARN of a stack created or updated through a change set \
         with one, so pantstack, which deletes a stack as the role it was created with \
         (`DeleteStack` with the `RoleARN` DescribeStacks gives, as on AWS), would delete it \
         as the caller; the CI roles may delete stacks only with the deploy role \
         (`cloudformation:RoleArn`), which the tests check on the recorded calls. The \
         adapter notes the RoleARN of each CreateChangeSet, CreateStack and UpdateStack \
         and adds it to DescribeStacks answers that lack it.",
    ),
    (
        "running tasks' output is not in CloudWatch Logs",
        "fakecloud-ecs forwards a container's captured output to the awslogs group when \
         the task ends (runtime/monitoring.rs); running tasks have none there yet, so the \
         tests check that `logs --target aws` reads the group (exit 0), not for \
         lines. Reading lines is tested with recorded answers (the stopped task's last \
         lines in crates/deploy/tests/replay.rs).",
    ),
    (
        "CloudFormation ignores a listener rule's PathPatternConfig",
        "fakecloud-cloudformation 0.51.0 reads a ListenerRule condition's values from \
         `Values` or `HostHeaderConfig` only (resource_provisioner/mod.rs \
         parse_elb_rule_conditions), so a `path-pattern` condition given as \
         `PathPatternConfig`, as pantstack writes it (AWS documents both; `Values` is the \
         legacy form), has no pattern and the rule never matches: a shared load \
         balancer answered every service's path with its default 404. The adapter \
         copies each path-pattern condition's `PathPatternConfig.Values` into `Values` \
         in the template it passes on (inline or by TemplateURL, as for deviation 1), \
         and GetTemplate answers with the template pantstack submitted.",
    ),
    (
        "CloudFormation gives a listener rule a priority another rule of its listener holds",
        "fakecloud-cloudformation 0.51.0 creates an AWS::ElasticLoadBalancingV2::ListenerRule \
         without the check its own ELBv2 CreateRule makes (`PriorityInUse`: \
         resource_provisioner/elbv2.rs create_elbv2_listener_rule against fakecloud-elbv2's \
         service.rs); AWS refuses the rule and the stack fails. Nothing is adapted: the \
         shared load balancer's test (crates/cli/tests/ship/shared_alb.rs) lists the \
         listener's rules (DescribeRules) and fails when two share a priority or a \
         deployed service's rule moved.",
    ),
];

/// Serves the adapter on `listener`, forwarding to fakecloud's port `upstream`
/// on 127.0.0.1; returns at once (a thread per connection).
pub fn serve(listener: TcpListener, upstream: u16) {
    serve_recording(listener, upstream, None);
}

/// As `serve`, recording every AWS API request in `recorder` when given
/// (`record::Recorder`: for tests that check what the calls need from IAM).
pub fn serve_recording(
    listener: TcpListener,
    upstream: u16,
    recorder: Option<Arc<record::Recorder>>,
) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let recorder = recorder.clone();
            std::thread::spawn(move || {
                let _ = relay(conn, upstream, recorder.as_deref());
            });
        }
    });
}

fn relay(
    mut client: std::net::TcpStream,
    upstream: u16,
    recorder: Option<&record::Recorder>,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut body = buf[head_end..].to_vec();
    if let Some(r) = recorder {
        r.record(&head, &body);
    }
    if let Some((b, original, rewritten)) = rewrite(&body, upstream) {
        body = b;
        if let Ok(mut m) = SUBMITTED.lock() {
            m.insert(rewritten, original);
        }
    }
    let get_template = std::str::from_utf8(&body).is_ok_and(|b| b.contains("Action=GetTemplate"));
    let describe_stacks =
        std::str::from_utf8(&body).is_ok_and(|b| b.contains("Action=DescribeStacks"));
    note_stack_role(&body);
    let describe_services = head
        .to_ascii_lowercase()
        .contains("x-amz-target: amazonec2containerservicev20141113.describeservices");
    let mut out = String::new();
    for line in head.trim_end().lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-length:") || lower.starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    // The answer keeps its framing; the client is told the connection closes.
    if let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&answer[..i]).to_string();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut rest = answer[i + 4..].to_vec();
        let rewritten = if describe_services && !chunked {
            complete_rollouts(&rest, upstream)
        } else if get_template && !chunked {
            submitted_template(&rest)
        } else if describe_stacks && !chunked {
            with_stack_roles(&rest)
        } else {
            None
        };
        let mut h = String::new();
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("connection:")
                || (rewritten.is_some() && lower.starts_with("content-length:"))
            {
                continue;
            }
            h.push_str(line);
            h.push_str("\r\n");
        }
        if let Some(r) = rewritten {
            h.push_str(&format!("content-length: {}\r\n", r.len()));
            rest = r;
        }
        h.push_str("connection: close\r\n\r\n");
        client.write_all(h.as_bytes())?;
        client.write_all(&rest)?;
    } else {
        client.write_all(&answer)?;
    }
    Ok(())
}

/// The RoleARN each stack was last created or updated with (deviation 3).
static STACK_ROLES: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn note_stack_role(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let f = record::form(text);
    let action = f.get("Action").and_then(|v| v.as_str()).unwrap_or_default();
    if !matches!(action, "CreateChangeSet" | "CreateStack" | "UpdateStack") {
        return;
    }
    if let (Some(stack), Some(role)) = (
        f.get("StackName").and_then(|v| v.as_str()),
        f.get("RoleARN").and_then(|v| v.as_str()),
    ) && let Ok(mut m) = STACK_ROLES.lock()
    {
        m.insert(stack.to_string(), role.to_string());
    }
}

/// A DescribeStacks answer with each stack's RoleARN where fakecloud left it out
/// (deviation 3).
fn with_stack_roles(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let roles = STACK_ROLES.lock().ok()?.clone();
    let mut out = String::new();
    let mut changed = false;
    for (i, part) in text.split("<member>").enumerate() {
        if i > 0 {
            out.push_str("<member>");
        }
        let name = part
            .split_once("<StackName>")
            .and_then(|(_, r)| r.split_once("</StackName>"))
            .map(|(n, _)| n);
        match name.and_then(|n| roles.get(n).map(|r| (n, r))) {
            Some((n, role)) if !part.contains("<RoleARN>") => {
                let at = format!("<StackName>{n}</StackName>");
                out.push_str(&part.replacen(
                    &at,
                    &format!("{at}<RoleARN>{}</RoleARN>", xml_escape(role)),
                    1,
                ));
                changed = true;
            }
            _ => out.push_str(part),
        }
    }
    changed.then(|| out.into_bytes())
}

/// Templates as pantstack submitted them, by the body fakecloud got instead.
static SUBMITTED: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A GetTemplate answer with the template as submitted (deviation 1).
fn submitted_template(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<TemplateBody>")? + "<TemplateBody>".len();
    let end = start + text[start..].find("</TemplateBody>")?;
    let got = xml_unescape(&text[start..end]);
    let original = SUBMITTED.lock().ok()?.get(&got)?.clone();
    Some(
        format!(
            "{}{}{}",
            &text[..start],
            xml_escape(&original),
            &text[end..]
        )
        .into_bytes(),
    )
}

/// A template with each ScalingPolicy's `ScalingTargetId` spelt out as the three
/// properties it stands for (deviation 1) and each listener rule's path patterns
/// also in the condition's `Values` (deviation 5), or None when it has neither.
fn adapt(original: &str) -> Option<String> {
    let mut t = serde_json::from_str::<serde_json::Value>(original).ok()?;
    let resources = t["Resources"].clone();
    let map = t["Resources"].as_object_mut()?;
    let mut changed = false;
    for (_, r) in map.iter_mut() {
        if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule" {
            changed |= path_patterns_as_values(r);
            continue;
        }
        if r["Type"] != "AWS::ApplicationAutoScaling::ScalingPolicy" {
            continue;
        }
        let Some(target) = r["Properties"]["ScalingTargetId"]["Ref"]
            .as_str()
            .map(str::to_string)
        else {
            continue;
        };
        let tp = &resources[&target]["Properties"];
        let props = &mut r["Properties"];
        for k in ["ServiceNamespace", "ScalableDimension", "ResourceId"] {
            props[k] = tp[k].clone();
        }
        if let Some(o) = props.as_object_mut() {
            o.remove("ScalingTargetId");
        }
        r["DependsOn"] = serde_json::json!([target]);
        changed = true;
    }
    changed.then(|| t.to_string())
}

/// A listener rule's `path-pattern` conditions given `Values` beside their
/// `PathPatternConfig` (deviation 5: the emulator's CloudFormation reads `Values`
/// only, so a rule with `PathPatternConfig` alone never matches); whether any was.
fn path_patterns_as_values(rule: &mut serde_json::Value) -> bool {
    let mut changed = false;
    let conditions = rule["Properties"]["Conditions"].as_array_mut();
    for c in conditions.into_iter().flatten() {
        if c["Field"] != "path-pattern" || c.get("Values").is_some() {
            continue;
        }
        let Some(values) = c["PathPatternConfig"].get("Values").cloned() else {
            continue;
        };
        c["Values"] = values;
        changed = true;
    }
    changed
}

/// A CloudFormation query-protocol body with a TemplateBody, rewritten (deviations
/// 1 and 5): the new body, and the template before and after. A template passed by
/// `TemplateURL` (over 51,200 bytes) is rewritten where it lies, in the emulator's
/// S3, and its stack noted in `BY_URL`.
fn rewrite(body: &[u8], upstream: u16) -> Option<(Vec<u8>, String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("Action=CreateChangeSet") && !text.contains("Action=CreateStack") {
        return None;
    }
    let param = |name: &str| {
        text.split('&')
            .find_map(|p| p.strip_prefix(name).map(decode))
    };
    if let Some(url) = param("TemplateURL=") {
        if let Ok(mut m) = BY_URL.lock() {
            m.push(param("StackName=").unwrap_or_default());
        }
        // `http://127.0.0.1:PORT/bucket/key`: the same path on the emulator.
        let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}"))?;
        let original = s3_object(upstream, "GET", &path, None)?;
        let after = adapt(&original)?;
        s3_object(upstream, "PUT", &path, Some(&after))?;
        return Some((body.to_vec(), original, after));
    }
    let mut before_after = None;
    let pairs: Vec<String> = text
        .split('&')
        .map(|pair| {
            let Some(v) = pair.strip_prefix("TemplateBody=") else {
                return pair.to_string();
            };
            let original = decode(v);
            match adapt(&original) {
                Some(after) => {
                    let pair = format!("TemplateBody={}", encode(&after));
                    before_after = Some((original, after));
                    pair
                }
                None => pair.to_string(),
            }
        })
        .collect();
    let (before, after) = before_after?;
    Some((pairs.join("&").into_bytes(), before, after))
}

/// Stacks whose template pantstack passed by `TemplateURL`, in order.
pub static BY_URL: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// One plain request to the emulator (its S3 checks no signature): the body of a
/// GET, or Some("") after a PUT it accepted.
fn s3_object(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<String> {
    // The emulator routes a request by its signature's scope (and checks no
    // signature): S3 for objects; its own paths need none.
    let headers = if path.starts_with("/_fakecloud/") {
        String::new()
    } else {
        format!("{}x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n", scope("s3"))
    };
    let answer = call(
        port,
        method,
        path,
        &headers,
        "application/json",
        body.unwrap_or(""),
    );
    if answer.is_none() {
        eprintln!("fakecloud S3 {method} {path}: no 200 answer");
    }
    answer.map(|b| String::from_utf8_lossy(&b).to_string())
}

/// Headers of a request the emulator routes to `service` (it checks no signature).
fn scope(service: &str) -> String {
    format!(
        "authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=0\r\nx-amz-date: 20260101T000000Z\r\n"
    )
}

/// One request to the emulator on its own connection: the body of a 200 answer
/// (or a DELETE's 204) with a length (not chunked: not what it answers for
/// these requests).
fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    content_type: &str,
    body: &str,
) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}content-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let i = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..i]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 200")
        || (method == "DELETE" && head.starts_with("http/1.1 204"));
    if !ok || head.contains("transfer-encoding: chunked") {
        return None;
    }
    Some(answer[i + 4..].to_vec())
}

/// Services whose new task definition the adapter has asked fakecloud's ECS to
/// roll out (deviation 2), by `service ARN|task definition`: once each.
static ROLLED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A DescribeServices answer as ECS gives it (deviation 2): a PRIMARY deployment
/// is COMPLETED once the service runs its desired count of tasks, all of the
/// PRIMARY's task definition, none pending. A PRIMARY whose task definition no
/// task runs while older tasks do (fakecloud's CloudFormation never replaces a
/// service's tasks) is rolled out through fakecloud's own UpdateService.
fn complete_rollouts(body: &[u8], upstream: u16) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    for s in v["services"].as_array_mut()? {
        let cluster = s["clusterArn"].as_str().unwrap_or_default().to_string();
        let name = s["serviceName"].as_str().unwrap_or_default().to_string();
        let arn = s["serviceArn"].as_str().unwrap_or_default().to_string();
        let desired = s["desiredCount"].as_i64().unwrap_or(0);
        let pending = s["pendingCount"].as_i64().unwrap_or(0);
        let Some(td) = s["deployments"]
            .as_array()
            .and_then(|ds| ds.iter().find(|d| d["status"] == "PRIMARY"))
            .and_then(|d| d["taskDefinition"].as_str())
            .map(str::to_string)
        else {
            continue;
        };
        let running = running_task_definitions(upstream, &cluster, &name);
        let on_primary = running.iter().filter(|t| **t == td).count() as i64;
        let others = running.len() as i64 - on_primary;
        if on_primary == 0 && others > 0 {
            let first = ROLLED
                .lock()
                .map(|mut r| r.insert(format!("{arn}|{td}")))
                .unwrap_or(false);
            if first {
                ecs_call(
                    upstream,
                    "UpdateService",
                    &serde_json::json!({
                        "cluster": cluster, "service": name,
                        "taskDefinition": td, "forceNewDeployment": true,
                    }),
                );
            }
        }
        let done = on_primary >= desired && others == 0 && pending == 0;
        for d in s["deployments"].as_array_mut().into_iter().flatten() {
            if done && d["status"] == "PRIMARY" && d["rolloutState"] == "IN_PROGRESS" {
                d["rolloutState"] = "COMPLETED".into();
                d["rolloutStateReason"] =
                    "ECS deployment completed (fakecloud-adapter: its desired count runs this task definition; deviation 2).".into();
                d["runningCount"] = on_primary.into();
            }
        }
    }
    serde_json::to_vec(&v).ok()
}

/// The task definitions of a service's RUNNING tasks, one entry per task.
fn running_task_definitions(upstream: u16, cluster: &str, service: &str) -> Vec<String> {
    let Some(list) = ecs_call(
        upstream,
        "ListTasks",
        &serde_json::json!({ "cluster": cluster, "serviceName": service, "desiredStatus": "RUNNING" }),
    ) else {
        return Vec::new();
    };
    let arns: Vec<serde_json::Value> = list["taskArns"].as_array().cloned().unwrap_or_default();
    if arns.is_empty() {
        return Vec::new();
    }
    let Some(tasks) = ecs_call(
        upstream,
        "DescribeTasks",
        &serde_json::json!({ "cluster": cluster, "tasks": arns }),
    ) else {
        return Vec::new();
    };
    tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .filter_map(|t| t["taskDefinitionArn"].as_str().map(str::to_string))
        .collect()
}

/// One ECS call (JSON protocol) to the emulator, which checks no signature.
fn ecs_call(port: u16, action: &str, body: &serde_json::Value) -> Option<serde_json::Value> {
    let headers = format!(
        "{}x-amz-target: AmazonEC2ContainerServiceV20141113.{action}\r\n",
        scope("ecs")
    );
    let answer = call(
        port,
        "POST",
        "/",
        &headers,
        "application/x-amz-json-1.1",
        &body.to_string(),
    )?;
    serde_json::from_slice(&answer).ok()
}

/// GET `path` (`/bucket?policy`, `/bucket/key`) from the emulator's S3: the body of
/// a 200 answer.
pub fn s3_get(upstream: u16, path: &str) -> Option<String> {
    s3_object(upstream, "GET", path, None)
}

/// PUT `body` at `path` (`/bucket/key`) in the emulator's S3: whether it
/// answered 200.
pub fn s3_put(upstream: u16, path: &str, body: &str) -> bool {
    s3_object(upstream, "PUT", path, Some(body)).is_some()
}

/// DELETE `path` (`/bucket/key`) in the emulator's S3: whether it answered
/// 200 or 204.
pub fn s3_delete(upstream: u16, path: &str) -> bool {
    s3_object(upstream, "DELETE", path, None).is_some()
}

/// Every ALB of the emulator: (DNS name, the loopback port serving it), from its
/// own listing (`GET /_fakecloud/elbv2/load-balancers`: `dnsName`, `boundPort`).
pub fn load_balancers(upstream: u16) -> Vec<(String, u16)> {
    let Some(body) = s3_object(upstream, "GET", "/_fakecloud/elbv2/load-balancers", None) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["loadBalancers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|lb| {
            let dns = lb["dnsName"].as_str()?.to_string();
            let port = u16::try_from(lb["boundPort"].as_u64()?).ok()?;
            Some((dns, port))
        })
        .collect()
}

/// The emulator's CloudFormation exports (name → value): what the foundation's
/// `Fn::ImportValue`s and outputs resolve to.
pub fn exports(upstream: u16) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(body) = call(
        upstream,
        "POST",
        "/",
        &scope("cloudformation"),
        "application/x-www-form-urlencoded",
        "Action=ListExports&Version=2010-05-15",
    ) else {
        return out;
    };
    let text = String::from_utf8_lossy(&body);
    for e in text.split("<member>").skip(1) {
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let s = e.find(&open)? + open.len();
            let end = s + e[s..].find(&format!("</{t}>"))?;
            Some(xml_unescape(&e[s..end]))
        };
        if let (Some(n), Some(v)) = (tag("Name"), tag("Value")) {
            out.insert(n, v);
        }
    }
    out
}

/// The emulator's KMS aliases (`alias/…`) → the ARN of the key each names, in
/// `region` of `account`.
pub fn kms_aliases(
    upstream: u16,
    region: &str,
    account: &str,
) -> std::collections::BTreeMap<String, String> {
    let headers = format!("{}x-amz-target: TrentService.ListAliases\r\n", scope("kms"));
    call(
        upstream,
        "POST",
        "/",
        &headers,
        "application/x-amz-json-1.1",
        "{}",
    )
    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    .and_then(|v| v["Aliases"].as_array().cloned())
    .into_iter()
    .flatten()
    .filter_map(|a| {
        let name = a["AliasName"].as_str()?.to_string();
        let key = a["TargetKeyId"].as_str()?;
        Some((name, format!("arn:aws:kms:{region}:{account}:key/{key}")))
    })
    .collect()
}

/// The loopback port of the ALB data plane serving `url` (what `deploy` prints,
/// `http://<DNS name>`).
pub fn data_plane_port(upstream: u16, url: &str) -> Option<u16> {
    let host = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()?;
    load_balancers(upstream)
        .into_iter()
        .find(|(dns, _)| dns.eq_ignore_ascii_case(host))
        .map(|(_, port)| port)
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    #[test]
    fn a_policy_naming_its_target_gets_the_three_properties_it_stands_for() {
        let t = r#"{"Resources":{"T":{"Type":"AWS::ApplicationAutoScaling::ScalableTarget","Properties":{"ServiceNamespace":"ecs","ScalableDimension":"ecs:service:DesiredCount","ResourceId":"service/c/s"}},"P":{"Type":"AWS::ApplicationAutoScaling::ScalingPolicy","Properties":{"PolicyName":"cpu","ScalingTargetId":{"Ref":"T"}}}}}"#;
        let after: serde_json::Value = serde_json::from_str(&super::adapt(t).unwrap()).unwrap();
        let p = &after["Resources"]["P"];
        assert_eq!(p["Properties"]["ServiceNamespace"], "ecs");
        assert_eq!(p["Properties"]["ResourceId"], "service/c/s");
        assert_eq!(
            p["Properties"]["ScalableDimension"],
            "ecs:service:DesiredCount"
        );
        assert!(p["Properties"].get("ScalingTargetId").is_none());
        assert_eq!(p["DependsOn"], serde_json::json!(["T"]));
        // Nothing to adapt: None (the request goes through untouched).
        assert!(super::adapt(r#"{"Resources":{}}"#).is_none());
    }

    #[test]
    fn a_listener_rules_path_patterns_are_also_given_as_values() {
        let t = r#"{"Resources":{"R":{"Type":"AWS::ElasticLoadBalancingV2::ListenerRule","Properties":{"Priority":6701,"Conditions":[{"Field":"path-pattern","PathPatternConfig":{"Values":["/api","/api/*"]}},{"Field":"host-header","HostHeaderConfig":{"Values":["a.example.com"]}}]}}}}"#;
        let after: serde_json::Value = serde_json::from_str(&super::adapt(t).unwrap()).unwrap();
        let c = &after["Resources"]["R"]["Properties"]["Conditions"];
        assert_eq!(c[0]["Values"], serde_json::json!(["/api", "/api/*"]));
        assert_eq!(
            c[0]["PathPatternConfig"]["Values"],
            serde_json::json!(["/api", "/api/*"])
        );
        // Host headers the emulator reads from HostHeaderConfig: left alone.
        assert!(c[1].get("Values").is_none());
        // A rule with host headers only: nothing to adapt.
        let host = r#"{"Resources":{"R":{"Type":"AWS::ElasticLoadBalancingV2::ListenerRule","Properties":{"Conditions":[{"Field":"host-header","HostHeaderConfig":{"Values":["a.example.com"]}}]}}}}"#;
        assert!(super::adapt(host).is_none());
    }
}
