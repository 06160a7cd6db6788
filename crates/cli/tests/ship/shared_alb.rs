//! A shared load balancer (`network.load_balancer: shared`) on fakecloud: a
//! service added later never moves the listener-rule priorities of the deployed
//! ones (`up`/`deploy` pin them from the deployed templates), takes a free block,
//! and the ALB's data plane routes to every service before and after.

use crate::common::{fakecloud::FakeCloud, text};
use crate::{Repo, check_ci_role, deployed, stack};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The service added by the second deploy. Its name sorts before `api` and
/// hashes to the same priority block as `api` (`shared_lb::slots`: FNV-1a of
/// the name, mod 500: 67 for both), so recomputing the blocks from the names
/// alone, as offline `synth` does, gives it api's block and moves api's rules on.
const NEW: &str = "admin16";

/// The host name the new service's rule matches (its only rule): on it, the
/// service's own `/healthz` answers, which no path rule of the others reaches.
const NEW_HOST: &str = "admin16.shop.test";

/// The AWS CLI that .ci/run installs, with `--output json`, against the emulator
/// (through the adapter, as pantstack reaches it): its JSON answer.
fn aws(repo: &Repo, args: &[&str]) -> Value {
    let dir = std::env::var_os("PANTSTACK_AWS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            PathBuf::from(home).join(".cache/pantstack-ci/awsclients")
        });
    let cli = dir.join("bin/aws");
    assert!(
        cli.is_file(),
        "the AWS CLI is missing from {}: `bash .ci/run` installs it (or set PANTSTACK_AWS_CLIENTS to a virtualenv with awscli)",
        dir.display()
    );
    // The test's own reads, not CI's.
    if let Some(r) = &repo.recorder {
        r.act_as("admin");
    }
    let mut c = Command::new(&cli);
    c.args(args)
        .args(["--output", "json"])
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null());
    for (k, v) in &repo.vars {
        c.env(k, v);
    }
    // (The CLI reads its region from AWS_DEFAULT_REGION, not AWS_REGION.)
    c.env("AWS_DEFAULT_REGION", "us-east-1");
    let o = c.output().expect("run the AWS CLI");
    assert!(
        o.status.success(),
        "aws {args:?}: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("the AWS CLI's JSON")
}

/// The priorities of the rules on the shared listener, by the service whose
/// stack holds each rule (ELBv2 DescribeRules, each rule's ARN found among the
/// service stacks' resources). Fails if a rule belongs to none of them or two
/// rules share a priority.
fn priorities(repo: &Repo, listener: &str, services: &[&str]) -> BTreeMap<String, Vec<u32>> {
    let rules = aws(
        repo,
        &["elbv2", "describe-rules", "--listener-arn", listener],
    );
    let mut by_arn: BTreeMap<String, String> = BTreeMap::new();
    for s in services {
        let r = aws(
            repo,
            &[
                "cloudformation",
                "describe-stack-resources",
                "--stack-name",
                &format!("shop-test-{s}"),
            ],
        );
        for res in r["StackResources"].as_array().expect("StackResources") {
            if res["ResourceType"] == "AWS::ElasticLoadBalancingV2::ListenerRule" {
                let arn = res["PhysicalResourceId"].as_str().expect("a rule's ARN");
                by_arn.insert(arn.to_string(), s.to_string());
            }
        }
    }
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut seen: BTreeMap<u32, String> = BTreeMap::new();
    for rule in rules["Rules"].as_array().expect("Rules") {
        if rule["IsDefault"] == true {
            continue;
        }
        let arn = rule["RuleArn"].as_str().expect("RuleArn");
        let p: u32 = rule["Priority"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a rule's priority: {rule:#}"));
        let owner = by_arn
            .get(arn)
            .unwrap_or_else(|| panic!("rule {arn} is in none of {services:?}'s stacks: {rules:#}"));
        if let Some(other) = seen.insert(p, owner.clone()) {
            panic!("priority {p} is held by a rule of {other} and one of {owner}: {rules:#}");
        }
        out.entry(owner.clone()).or_default().push(p);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
    }
    out
}

/// GET `path` with the Host header `host` on a loopback port.
fn get(port: u16, host: &str, path: &str) -> Answer {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("write");
    let mut b = String::new();
    s.read_to_string(&mut b).expect("read");
    let code = b
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {b:?}"));
    let (head, body) = b.split_once("\r\n\r\n").unwrap_or((&b, ""));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (code, content_type, body.to_string())
}

/// An answer: status, content type and body.
type Answer = (u16, String, String);

/// What answers through the shared ALB: each service's own path reaches its
/// task, told apart by how the example's binaries answer a path they do not
/// serve (both `not found`, the api as `text/plain; charset=utf-8`, reports as
/// `text/plain`); a path no rule matches gets the ALB's default answer (`no
/// route`); with `new`, the new service's host rule reaches its task's
/// `/healthz`, which without that host reaches no one. Each request with its
/// answer and the one expected.
fn routes(port: u16, new: bool) -> Vec<(String, Answer, Answer)> {
    let api = (404, "text/plain; charset=utf-8", "not found\n");
    let reports = (404, "text/plain", "not found\n");
    let no_route = (404, "text/plain", "no route");
    let want = [
        ("127.0.0.1", "/api/healthz", api),
        ("127.0.0.1", "/reports/healthz", reports),
        ("127.0.0.1", "/healthz", no_route),
        (
            NEW_HOST,
            "/healthz",
            if new {
                (200, "text/plain", "ok\n")
            } else {
                no_route
            },
        ),
    ];
    want.into_iter()
        .map(|(host, path, (code, content_type, body))| {
            (
                format!("{host}{path}"),
                get(port, host, path),
                (code, content_type.to_string(), body.to_string()),
            )
        })
        .collect()
}

/// Waits (bounded) until every route answers as `routes` expects: a task the
/// ALB forwards to may still be starting, or its target registering.
fn assert_routes(port: u16, new: bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = routes(port, new);
        if got.iter().all(|(_, got, want)| got == want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shared ALB's routes (request, answer, expected): {got:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The priority of `ListenerRule1` in a synthesized service template.
fn synthesized_priority(dir: &std::path::Path, service: &str) -> u32 {
    let path = dir.join(format!("shop-test-{service}.json"));
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("template")).expect("json");
    let p = &t["Resources"]["ListenerRule1"]["Properties"]["Priority"];
    p.as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("no ListenerRule1 priority in {}", path.display()))
}

/// Two services on the environment's shared ALB, then a third whose name sorts
/// first and hashes to the api's block: the deployed rules keep their
/// priorities (read from the emulator's ELBv2), the new service's rule takes a
/// free block, and the ALB routes to each service before and after.
#[test]
fn a_new_service_keeps_the_deployed_rule_priorities_on_a_shared_alb_on_fakecloud() {
    let base = std::env::temp_dir().join(format!(
        "pantstack-fakecloud-shared-alb-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&base).expect("mkdir");
    let fc = FakeCloud::start_recording(&base);
    let repo = Repo::new("shared-alb", &fc);
    let manifest = repo.root.join("stack/infra/foundation/pantstack.yaml");
    let t = std::fs::read_to_string(&manifest).expect("foundation manifest");
    assert!(
        t.contains("\nnetwork:\n  cidr: 10.0.0.0/16\n"),
        "the example's network changed"
    );
    std::fs::write(
        &manifest,
        t.replace(
            "\nnetwork:\n  cidr: 10.0.0.0/16\n",
            "\nnetwork:\n  cidr: 10.0.0.0/16\n  load_balancer: shared\n",
        ),
    )
    .expect("write");
    repo.commit("one shared load balancer");

    let v = repo.json(&["bootstrap", "--env", "test"], &fc);
    assert_eq!(
        stack(&v, "shop-test-foundation")["result"],
        "created",
        "{v:#}"
    );
    let foundation = deployed(&fc);
    let o = repo.run_input(
        &[
            "secrets",
            "set",
            "api",
            "API_TOKEN",
            "--target",
            "aws",
            "--env",
            "test",
        ],
        Some("shared-alb-token"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));

    // The first deploy: the load balancer's stack first, then api and reports,
    // each with its default path rule on the shared listener.
    let v = repo.json(&["deploy", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(v["ok"], true, "{v:#}");
    let lb = stack(&v, "shop-test-load-balancer");
    assert_eq!(lb["result"], "created", "{v:#}");
    let listener = lb["outputs"]["ListenerArn0"]
        .as_str()
        .unwrap_or_else(|| panic!("no ListenerArn0 output: {v:#}"))
        .to_string();
    for s in ["shop-test-api", "shop-test-reports"] {
        assert_eq!(stack(&v, s)["result"], "created", "{v:#}");
    }
    let url = stack(&v, "shop-test-api")["outputs"]["Url"]
        .as_str()
        .unwrap_or_else(|| panic!("api printed no Url: {v:#}"))
        .to_string();
    assert!(url.ends_with("/api"), "{url}");
    let port = crate::common::fakecloud::data_plane_port(&fc, &url)
        .unwrap_or_else(|| panic!("the emulator serves no ALB named by {url}"));
    let before = priorities(&repo, &listener, &["api", "reports"]);
    eprintln!("rule priorities after the first deploy: {before:?}");
    assert_eq!(before.len(), 2, "{before:?}");
    assert_routes(port, false);

    // The new service: the reports binary under another name, reached by a
    // host rule.
    let from = repo.root.join("modules/reports");
    let to = repo.root.join("modules").join(NEW);
    crate::common::copy_dir(&from, &to);
    std::fs::create_dir_all(to.join(".build")).expect("mkdir .build");
    std::fs::copy(from.join(".build/reports"), to.join(".build/reports")).expect("copy the binary");
    std::fs::write(
        to.join("infrastructure/pantstack.yaml"),
        format!(
            "service: {NEW}\n\
             description: The reports binary under another name, on its own host.\n\
             image:\n  dockerfile: Dockerfile\n  context: .\n\
             cpu: 256\nmemory: 512\n\
             http:\n  port: 8080\n  command: [\"/reports\", \"serve\"]\n  \
             healthcheck:\n    path: /healthz\n  rules:\n    - host: {NEW_HOST}\n\
             scaling:\n  min: 1\n  max: 2\n  cpu: 70\n\
             variables:\n  API_URL: http://127.0.0.1:9\n  API_RESULTS: none\n"
        ),
    )
    .expect("write the manifest");
    let stackfile = to.join("infrastructure/Pulumi.yaml");
    let t = std::fs::read_to_string(&stackfile).expect("Pulumi.yaml");
    std::fs::write(
        &stackfile,
        t.replace("shop-reports", &format!("shop-{NEW}")),
    )
    .expect("write");
    crate::git(&repo.root, &["add", "-A", "-f"]);
    repo.commit("a new service");

    // Offline, its name takes the api's block and moves the api's rule: what a
    // deploy must not do.
    let offline = repo.base.join("synth-offline");
    let o = repo.run(&[
        "synth",
        "--env",
        "test",
        "--out",
        offline.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_ne!(
        synthesized_priority(&offline, "api"),
        before["api"][0],
        "offline synth no longer moves the api's rule: pick a name for the new service that collides with its block"
    );
    assert_eq!(
        synthesized_priority(&offline, NEW),
        before["api"][0],
        "offline, the new service takes the api's first priority"
    );

    let v = repo.json(&["up", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(
        stack(&v, &format!("shop-test-{NEW}"))["result"],
        "created",
        "{v:#}"
    );
    // (Updated to the new commit's images, or unchanged: either way not moved.)
    for s in ["shop-test-api", "shop-test-reports"] {
        let r = &stack(&v, s)["result"];
        assert!(r == "updated" || r == "unchanged", "{s}: {v:#}");
    }
    let after = priorities(&repo, &listener, &["api", "reports", NEW]);
    eprintln!("rule priorities after the new service: {after:?}");
    // (a) The deployed rules kept their priorities.
    for s in ["api", "reports"] {
        assert_eq!(after[s], before[s], "{s}: {before:?} → {after:?}");
    }
    // (b) The new service's rule is in a block no deployed rule uses.
    let block = |p: &u32| (p - 1) / 100;
    let held: Vec<u32> = before.values().flatten().map(block).collect();
    let new = after
        .get(NEW)
        .unwrap_or_else(|| panic!("no rule of {NEW}: {after:?}"));
    assert_eq!(new.len(), 1, "{after:?}");
    assert!(!held.contains(&block(&new[0])), "{after:?}");
    // (c) Every service is reached through the shared ALB.
    assert_routes(port, true);

    // `diff` pins them too: nothing to change.
    let v = repo.json(&["diff", "--env", "test"], &fc);
    for s in v["stacks"].as_array().expect("stacks") {
        assert_eq!(s["changes"], serde_json::json!([]), "{v:#}");
    }
    // What `deploy` and `up` called (the load-balancer stack, the deployed
    // templates read to pin the priorities), as the test environment's CI role.
    check_ci_role(
        &fc,
        &foundation,
        "ci:test",
        &offline.join("shop-test-foundation.json"),
        &[],
    );
    let _ = std::fs::remove_dir_all(&base);
}
