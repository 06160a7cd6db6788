//! fakecloud (a local AWS emulator; AGPL-3.0, a test tool only: installed by
//! .ci/run, never a dependency) on a loopback port of its own, for the aws target's
//! end-to-end tests. Where it deviates from AWS, the adaptation is here, in
//! `DEVIATIONS`, with the evidence — never in the templates or in pantstack.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Each way fakecloud 0.51.0 differs from AWS that these tests meet, and what the
/// harness does about it.
pub const DEVIATIONS: &[(&str, &str)] = &[
    (
        "AWS::ApplicationAutoScaling::ScalingPolicy with ScalingTargetId is refused",
        "fakecloud answers ExecuteChangeSet with `ValidationError: Failed to create resource \
         CpuScaling: ServiceNamespace is required`; AWS documents ScalingTargetId as the \
         alternative to ResourceId + ScalableDimension + ServiceNamespace and accepts it. \
         The proxy (`Proxy`) copies the three from the referenced ScalableTarget into \
         each policy of a CreateChangeSet's TemplateBody (or of the object its TemplateURL \
         names, rewritten in place in the emulator's S3), with a DependsOn on the target, \
         and answers GetTemplate with the body pantstack submitted (it compares it).",
    ),
    (
        "an ECS deployment's rolloutState never leaves IN_PROGRESS",
        "fakecloud-ecs 0.51.0 sets COMPLETED only in ContinueServiceDeployment (a lifecycle \
         hook), never when a deployment's tasks reach the desired count, and implements no \
         deployment circuit breaker. The proxy answers DescribeServices with COMPLETED for \
         a PRIMARY deployment whose service's running count equals its desired count \
         with none pending (fakecloud keeps the counts on the service only); a failing deployment is not rolled back there, so the circuit breaker's \
         report is tested with recorded AWS responses (crates/deploy/tests/replay.rs).",
    ),
    (
        "ECS tasks cannot reach the emulator's APIs, so the job flow cannot run in it",
        "fakecloud injects no AWS_ENDPOINT_URL into task containers and listens on loopback \
         only (tests never bind other addresses), so the example's tasks, in their own \
         Docker networks, cannot reach its SQS or S3: a job posted through the ALB cannot \
         be done by the worker there. The job flow through SQS and S3 is tested on the \
         local cloud (tests/local.rs); here the tasks are checked through ECS (RUNNING, \
         running = desired) and the ALB data plane (GET /healthz on its loopback port).",
    ),
    (
        "running tasks' output is not in CloudWatch Logs",
        "fakecloud-ecs forwards a container's captured output to the awslogs group when \
         the task ends (runtime/monitoring.rs); the running tasks of these tests have none \
         there yet, so `logs --target aws` is checked to read the group (exit 0), not for \
         lines. Reading lines is tested with recorded answers (the stopped task's last \
         lines in crates/deploy/tests/replay.rs).",
    ),
];

pub struct FakeCloud {
    child: Child,
    /// fakecloud's own port (its ECR registry and ALB data planes are reached here).
    pub port: u16,
    /// The rewriting proxy's port: every AWS API call of pantstack goes here.
    pub api_port: u16,
    pub log: PathBuf,
}

/// The installed binary: `PANTSTACK_FAKECLOUD`, else where .ci/run installs it.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("PANTSTACK_FAKECLOUD") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache = std::env::var("PANTSTACK_CI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(home).join(".cache/pantstack-ci"));
    cache.join("fakecloud-0.51.0/bin/fakecloud")
}

fn free_port() -> u16 {
    // The emulator takes an address, not a listener: a port the kernel just chose.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

impl FakeCloud {
    pub fn start(dir: &std::path::Path) -> FakeCloud {
        let bin = binary();
        assert!(
            bin.is_file(),
            "fakecloud is not installed at {} (.ci/run installs it: cargo install fakecloud --locked --version 0.51.0 --debug --root ~/.cache/pantstack-ci/fakecloud-0.51.0); PANTSTACK_FAKECLOUD names another",
            bin.display()
        );
        let port = free_port();
        let log = dir.join("fakecloud.log");
        let file = std::fs::File::create(&log).expect("fakecloud log");
        let child = Command::new(&bin)
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--storage-mode",
                "memory",
            ])
            .env("FAKECLOUD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start fakecloud");
        let api_port = proxy(port);
        let fc = FakeCloud {
            child,
            port,
            api_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(
                    b"GET /_fakecloud/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                );
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return fc;
                }
            }
            assert!(
                Instant::now() < deadline,
                "fakecloud did not answer its health check within 60 s (log: {})",
                fc.log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The AWS endpoint pantstack uses (through the proxy).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The environment a command needs to reach it (and nothing else).
    pub fn vars(&self, docker_config: &std::path::Path) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.url()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("PANTSTACK_AWS_POLL_MS".into(), "250".into()),
            ("PANTSTACK_AWS_TIMEOUT_S".into(), "120".into()),
            ("DOCKER_CONFIG".into(), docker_config.display().to_string()),
        ]
    }

    pub fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        let label = format!("label=fakecloud-instance=fakecloud-{}", self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its ECS tasks' containers and networks outlive it: remove them.
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default()
        };
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut nets = Vec::new();
            for id in &ids {
                let t = docker(&[
                    "inspect",
                    "--format",
                    "{{index .Config.Labels \"fakecloud-ecs-task\"}}",
                    id,
                ]);
                if !t.trim().is_empty() {
                    nets.push(format!("fakecloud-ecs-{}", t.trim()));
                }
            }
            let mut rm = vec!["rm", "-f"];
            rm.extend(ids.iter().copied());
            docker(&rm);
            nets.sort();
            nets.dedup();
            for n in &nets {
                docker(&["network", "rm", n]);
            }
        }
    }
}

/// A loopback HTTP proxy in front of fakecloud that applies `DEVIATIONS` to the
/// requests; one request per connection. Its port.
fn proxy(upstream: u16) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = relay(conn, upstream);
            });
        }
    });
    port
}

fn relay(mut client: std::net::TcpStream, upstream: u16) -> std::io::Result<()> {
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
    if let Some((b, original, rewritten)) = rewrite(&body, upstream) {
        body = b;
        if let Ok(mut m) = SUBMITTED.lock() {
            m.insert(rewritten, original);
        }
    }
    let get_template = std::str::from_utf8(&body).is_ok_and(|b| b.contains("Action=GetTemplate"));
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
            complete_rollouts(&rest)
        } else if get_template && !chunked {
            submitted_template(&rest)
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
/// properties it stands for (deviation 1), or None when it has none.
fn adapt(original: &str) -> Option<String> {
    let mut t = serde_json::from_str::<serde_json::Value>(original).ok()?;
    let resources = t["Resources"].clone();
    let map = t["Resources"].as_object_mut()?;
    let mut changed = false;
    for (_, r) in map.iter_mut() {
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

/// A CloudFormation query-protocol body with a TemplateBody, rewritten (deviation
/// 1): the new body, and the template before and after. A template passed by
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
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.unwrap_or("");
    // The emulator routes a request by its signature's scope (and checks no
    // signature): S3 for objects; its own paths need none.
    let auth = if path.starts_with("/_fakecloud/") {
        String::new()
    } else {
        "authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nx-amz-date: 20260101T000000Z\r\n".to_string()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let i = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..i]).to_string();
    if !head.starts_with("HTTP/1.1 200") {
        eprintln!("fakecloud S3 {method} {path}: {head}");
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return None; // not what it answers for an object this size
    }
    Some(String::from_utf8_lossy(&answer[i + 4..]).to_string())
}

/// A DescribeServices answer with steady PRIMARY deployments COMPLETED (deviation 2).
fn complete_rollouts(body: &[u8]) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    for s in v["services"].as_array_mut()? {
        // fakecloud keeps the counts on the service, not on its deployment.
        let steady = s["runningCount"] == s["desiredCount"] && s["pendingCount"] == 0;
        for d in s["deployments"].as_array_mut().into_iter().flatten() {
            if steady && d["status"] == "PRIMARY" && d["rolloutState"] == "IN_PROGRESS" {
                d["rolloutState"] = "COMPLETED".into();
                d["rolloutStateReason"] =
                    "ECS deployment completed (test harness: fakecloud deviation 2).".into();
            }
        }
    }
    serde_json::to_vec(&v).ok()
}

/// The loopback port of the ALB data plane serving `url` (what `deploy` prints,
/// `http://<DNS name>`), from the emulator's own listing of its load balancers
/// (`GET /_fakecloud/elbv2/load-balancers`: `dnsName`, `boundPort`) — the lookup
/// docs/aws.md gives users.
pub fn data_plane_port(fc: &FakeCloud, url: &str) -> Option<u16> {
    let host = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()?;
    let body = s3_object(fc.port, "GET", "/_fakecloud/elbv2/load-balancers", None)?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["loadBalancers"].as_array()?.iter().find(|lb| {
        lb["dnsName"]
            .as_str()
            .is_some_and(|d| d.eq_ignore_ascii_case(host))
    })?["boundPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
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
