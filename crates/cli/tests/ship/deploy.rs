//! The example deployed, changed, diffed and destroyed on fakecloud.

use crate::common::{self, fakecloud::FakeCloud, text};
use crate::{Repo, check_ci_role, deployed, epoch, forged_lock, http_get, stack, strs};
use serde_json::Value;

#[test]
fn bootstrap_deploy_diff_and_destroy_on_fakecloud() {
    let base = std::env::temp_dir().join(format!("pantstack-fakecloud-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("mkdir");
    let fc = FakeCloud::start_recording(&base);
    let repo = Repo::new("main", &fc);

    // Before bootstrap: a deploy says what to do.
    let o = repo.run(&["deploy", "--target", "aws", "--env", "test"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("pantstack bootstrap --env test"),
        "{}",
        text(&o.stderr)
    );

    // Bootstrap: shared + foundation created; again: unchanged.
    let v = repo.json(&["bootstrap", "--env", "test"], &fc);
    assert_eq!(stack(&v, "shop-shared")["result"], "created", "{v:#}");
    assert_eq!(
        stack(&v, "shop-test-foundation")["result"],
        "created",
        "{v:#}"
    );
    assert!(
        v["ci_role_arn"]
            .as_str()
            .is_some_and(|a| a.contains("shop-test-ci")),
        "{v:#}"
    );
    let template_bucket = v["template_bucket"]
        .as_str()
        .unwrap_or_else(|| panic!("no template bucket: {v:#}"))
        .to_string();
    let foundation = deployed(&fc);
    let v = repo.json(&["bootstrap", "--env", "test"], &fc);
    assert_eq!(stack(&v, "shop-shared")["result"], "unchanged", "{v:#}");
    assert_eq!(
        stack(&v, "shop-test-foundation")["result"],
        "unchanged",
        "{v:#}"
    );

    // Rotating a secret that was never set is refused (as locally).
    let o = repo.run_input(
        &[
            "secrets",
            "rotate",
            "api",
            "API_TOKEN",
            "--target",
            "aws",
            "--env",
            "test",
        ],
        Some("x"),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("is not set yet"),
        "{}",
        text(&o.stderr)
    );

    // A secret the task definition references must exist first.
    let o = repo.run(&["deploy", "--target", "aws", "--env", "test"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("/shop/test/api/API_TOKEN")
            && err.contains("pantstack secrets set api API_TOKEN --target aws --env test"),
        "{err}"
    );
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
        Some("s3cret-token-value"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("s3cret") && !text(&o.stderr).contains("s3cret"));
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "test"],
        &fc,
    );
    assert_eq!(v[0]["set"], true, "{v:#}");
    assert_eq!(v[0]["rotation_days"], 90, "{v:#}");

    // The deploy lock: while another run holds it, a deploy is refused naming
    // the holder; `unlock` needs --yes without a terminal and removes it.
    let lock = format!("/{template_bucket}/shop-test-deploy-lock.json");
    let other = |expires: u64| forged_lock("ci-run-41", "deploy", expires);
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &lock,
        &other(epoch() + 3600)
    ));
    let o = repo.run(&["deploy", "--target", "aws", "--env", "test"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("locked by ci-run-41 (deploy) since")
            && err.contains("--lock-wait")
            && err.contains("pantstack unlock --target aws --env test"),
        "{err}"
    );
    let o = repo.run(&["unlock", "--target", "aws", "--env", "test"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("ci-run-41"), "{}", text(&o.stderr));
    let v = repo.json(
        &["unlock", "--target", "aws", "--env", "test", "--yes"],
        &fc,
    );
    assert_eq!(v["removed"]["owner"], "ci-run-41", "{v:#}");
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &lock).is_none());
    // A lock that expires while a deploy waits for it (--lock-wait) is taken
    // over (its holder died), and the deploy's own lock is gone afterwards.
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &lock,
        &other(epoch() + 3)
    ));

    // Deploy: images built and pushed, stacks created, ECS's verdict. A lock
    // of 3 s is renewed every second while the deploy goes on, and kept.
    let v = repo.json_with(
        &[
            "deploy",
            "--target",
            "aws",
            "--env",
            "test",
            "--lock-wait",
            "2m",
        ],
        &[("PANTSTACK_LOCK_TTL_S", "3")],
        &fc,
    );
    assert!(
        v["lock_taken_over"]
            .as_str()
            .is_some_and(|h| h.starts_with("ci-run-41 (deploy)")),
        "{v:#}"
    );
    assert!(
        v["lock_lost"].is_null() && v["lock_renew_error"].is_null(),
        "{v:#}"
    );
    assert!(
        pantstack_fakecloud_adapter::s3_get(fc.port, &lock).is_none(),
        "the deploy released its lock"
    );
    eprintln!("{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
    let api = stack(&v, "shop-test-api");
    assert_eq!(api["result"], "created", "{v:#}");
    assert!(api["outputs"]["Url"].as_str().is_some(), "{v:#}");
    assert_eq!(stack(&v, "shop-test-reports")["result"], "created", "{v:#}");
    // api grants reports read on its bucket: the policy the emulator stores holds
    // the synthesized statements (intrinsics resolved), the grant among them.
    let bucket = api["outputs"]["ResultsBucketName"]
        .as_str()
        .expect("ResultsBucketName")
        .to_string();
    let stored = pantstack_fakecloud_adapter::s3_get(fc.port, &format!("/{bucket}?policy"))
        .unwrap_or_else(|| panic!("no policy on {bucket}"));
    let stored: Value = serde_json::from_str(&stored).expect("policy JSON");
    let synth_dir = repo.base.join("synth");
    let o = repo.run(&[
        "synth",
        "--env",
        "test",
        "--out",
        synth_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t: Value = serde_json::from_str(
        &std::fs::read_to_string(synth_dir.join("shop-test-api.json")).expect("template"),
    )
    .expect("json");
    let resolve = |v: &Value| -> Value {
        let text = v.to_string();
        let text = text
            .replace("${AWS::Partition}", "aws")
            .replace("${AWS::AccountId}", "123456789012")
            .replace("${AWS::Region}", "us-east-1");
        let mut v: Value = serde_json::from_str(&text).expect("json");
        // {"Fn::Sub": "..."} → "..." (no other intrinsic in these fields).
        fn subs(v: &mut Value) {
            if let Some(s) = v.get("Fn::Sub").and_then(Value::as_str) {
                *v = Value::String(s.to_string());
                return;
            }
            match v {
                Value::Array(a) => a.iter_mut().for_each(subs),
                Value::Object(o) => o.values_mut().for_each(subs),
                _ => {}
            }
        }
        subs(&mut v);
        v
    };
    let statements = |doc: &Value| -> Vec<Value> {
        let mut out: Vec<Value> = doc["Statement"]
            .as_array()
            .expect("Statement")
            .iter()
            .map(|s| {
                serde_json::json!({
                    "Sid": s["Sid"], "Effect": s["Effect"], "Action": s["Action"],
                    "Principal": s["Principal"], "Condition": s["Condition"],
                })
            })
            .collect();
        out.sort_by_key(|s| s["Sid"].to_string());
        out
    };
    let synthesized =
        resolve(&t["Resources"]["ResultsBucketPolicy"]["Properties"]["PolicyDocument"]);
    assert_eq!(statements(&stored), statements(&synthesized), "{stored:#}");
    assert!(
        stored
            .to_string()
            .contains("role/shop-test-reports-task-us-east-1"),
        "{stored:#}"
    );

    // reports calls api: the rules are in the environment's Service Connect stack.
    assert_eq!(
        stack(&v, "shop-test-service-connect")["result"],
        "created",
        "{v:#}"
    );
    // Over 51,200 bytes: passed by TemplateURL from the template bucket (which the
    // emulator's CloudFormation read); the others inline.
    let by_url = pantstack_fakecloud_adapter::BY_URL
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(by_url, ["shop-test-reports"], "{v:#}");
    let tags: Vec<&str> = v["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["tag"].as_str())
        .collect();
    assert!(tags.iter().any(|t| t.starts_with("api-dev-")), "{tags:?}");
    assert!(
        tags.iter().any(|t| t.starts_with("api-worker-dev-")),
        "{tags:?}"
    );

    for x in api["ecs"].as_array().expect("ecs") {
        assert_eq!(x["deployment"], "COMPLETED", "{v:#}");
        assert_eq!(x["running"], 1, "{v:#}");
    }
    // The URLs deploy printed work: the emulator serves each ALB on a loopback port
    // of its own, which it lists by DNS name (docs/aws.md shows users the lookup).
    let mut answers = Vec::new();
    for name in ["shop-test-api", "shop-test-reports"] {
        let url = stack(&v, name)["outputs"]["Url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} printed no Url: {v:#}"))
            .to_string();
        let port = common::fakecloud::data_plane_port(&fc, &url)
            .unwrap_or_else(|| panic!("the emulator serves no ALB named by {url}"));
        answers.push((url, http_get(port, "/healthz")));
    }
    eprintln!("ALB data planes: {answers:?}");
    for (url, a) in &answers {
        assert!(
            matches!(a, Ok((200, b)) if b.trim() == "ok"),
            "{url}/healthz is answered by the service's task: {answers:?}"
        );
    }

    // Deploying the same commit again changes nothing and pushes nothing.
    let v = repo.json(&["deploy", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(stack(&v, "shop-test-api")["result"], "unchanged", "{v:#}");
    assert_eq!(
        stack(&v, "shop-test-reports")["result"],
        "unchanged",
        "{v:#}"
    );

    // A new commit: new images, the stacks updated (`up --target aws` deploys too).
    let manifest = repo.root.join("modules/api/infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, t.replace("LOG_LEVEL: info", "LOG_LEVEL: debug")).expect("write");
    repo.commit("debug logging");
    let v = repo.json(&["up", "--target", "aws", "--env", "test", "api"], &fc);
    assert_eq!(stack(&v, "shop-test-api")["result"], "updated", "{v:#}");
    // The api's stack, and the Service Connect stack (api is called) as it was.
    let ran: Vec<&str> = v["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .filter_map(|s| s["stack"].as_str())
        .collect();
    assert_eq!(ran.len(), 2, "{v:#}");
    assert_eq!(
        stack(&v, "shop-test-service-connect")["result"],
        "unchanged",
        "{v:#}"
    );
    let new_tags: Vec<&str> = v["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["tag"].as_str())
        .collect();
    assert!(
        new_tags.iter().all(|t| !tags.contains(t)),
        "{new_tags:?} vs {tags:?}"
    );
    for x in stack(&v, "shop-test-api")["ecs"].as_array().expect("ecs") {
        assert_eq!(x["deployment"], "COMPLETED", "{v:#}");
    }
    // COMPLETED means the new images run: the api's containers are the new tags'.
    let running = common::fakecloud::running_images(&fc);
    for t in &new_tags {
        assert!(
            running.iter().any(|i| i.ends_with(&format!(":{t}"))),
            "{t} is not running: {running:?}"
        );
    }
    // The old ones stop (their containers may take a moment after ECS says so).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let running = common::fakecloud::running_images(&fc);
        let old: Vec<&&str> = tags
            .iter()
            .filter(|t| t.starts_with("api-"))
            .filter(|t| running.iter().any(|i| i.ends_with(&format!(":{t}"))))
            .collect();
        if old.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{old:?} still run: {running:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // diff: only the reports service is behind the new commit (its image tag).
    let v = repo.json(&["diff", "--env", "test"], &fc);
    for s in ["shop-shared", "shop-test-foundation", "shop-test-api"] {
        assert_eq!(stack(&v, s)["changes"], serde_json::json!([]), "{s}: {v:#}");
    }
    assert!(
        stack(&v, "shop-test-reports")["changes"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{v:#}"
    );
    // diff executed nothing: deploying now still updates reports.
    let v = repo.json(
        &["deploy", "reports", "--target", "aws", "--env", "test"],
        &fc,
    );
    assert_eq!(stack(&v, "shop-test-reports")["result"], "updated", "{v:#}");
    let v = repo.json(&["diff", "--env", "test"], &fc);
    for s in v["stacks"].as_array().expect("stacks") {
        assert_eq!(s["changes"], serde_json::json!([]), "{v:#}");
    }
    // The bill: the deployed templates priced as this checkout's, no change.
    let bill = &v["cost"];
    assert!(
        bill["deployed"]["min"].as_f64().is_some_and(|b| b > 50.0),
        "{v:#}"
    );
    assert_eq!(bill["deployed"], bill["after"], "{v:#}");
    assert_eq!(bill["change"]["min"], 0.0, "{v:#}");
    // One more reports task at the minimum (base 1 on FARGATE, then 1:4 with
    // FARGATE_SPOT): 0.2 × 9.010025 + 0.8 × 2.9693407 + 0.25 of logs = +4.43.
    let stackfile = repo
        .root
        .join("modules/reports/infrastructure/Pulumi.test.yaml");
    let before = std::fs::read_to_string(&stackfile).expect("stack file");
    assert!(before.contains("pantstack:minCapacity: 1\n"), "{before}");
    std::fs::write(
        &stackfile,
        before.replace("pantstack:minCapacity: 1\n", "pantstack:minCapacity: 2\n"),
    )
    .expect("write");
    repo.commit("reports: two tasks at least");
    let v = repo.json(&["diff", "--env", "test"], &fc);
    let change = v["cost"]["change"]["min"].as_f64().expect("change");
    assert!((change - 4.43).abs() < 0.015, "{change}: {v:#}");
    std::fs::write(&stackfile, before).expect("write");
    repo.commit("reports: back to one");

    // The tasks' logs, from CloudWatch Logs.
    let o = repo.run(&[
        "logs", "api", "--target", "aws", "--env", "test", "--since", "1h",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    eprintln!("logs:\n{}", text(&o.stdout));

    // Status: every stack and the services' tasks.
    let v = repo.json(&["status", "--target", "aws", "--env", "test"], &fc);
    let api = stack(&v, "shop-test-api");
    for x in api["ecs"].as_array().expect("ecs") {
        assert_eq!(
            (x["running"].as_i64(), x["desired"].as_i64()),
            (Some(1), Some(1)),
            "{v:#}"
        );
    }
    assert!(api["url"].as_str().is_some(), "{v:#}");
    assert_eq!(
        stack(&v, "shop-test-api")["status"],
        "UPDATE_COMPLETE",
        "{v:#}"
    );

    // No call left: the Service Connect stack goes; the services keep their exports.
    let manifest = repo
        .root
        .join("modules/reports/infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&manifest).expect("manifest");
    assert!(t.contains("\ncalls: [api]\n"), "the example's call changed");
    std::fs::write(&manifest, t.replace("\ncalls: [api]\n", "\n")).expect("write");
    repo.commit("reports no longer calls api");
    let v = repo.json(&["deploy", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(
        stack(&v, "shop-test-service-connect")["result"],
        "deleted",
        "{v:#}"
    );
    assert_eq!(stack(&v, "shop-test-reports")["result"], "updated", "{v:#}");
    // The call back, deploying reports alone: the Service Connect stack comes along
    // (api's stack exists).
    std::fs::write(&manifest, &t).expect("write");
    repo.commit("reports calls api again");
    let v = repo.json(
        &["deploy", "reports", "--target", "aws", "--env", "test"],
        &fc,
    );
    assert_eq!(
        stack(&v, "shop-test-service-connect")["result"],
        "created",
        "{v:#}"
    );

    // A service removed from the monorepo: its stack is said to be orphaned (by
    // deploy and status), never silently kept, and destroy takes it along.
    std::fs::remove_dir_all(repo.root.join("modules/reports")).expect("rm reports");
    let api_manifest = repo.root.join("modules/api/infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&api_manifest).expect("manifest");
    let grant = "    grants: { reports: read }\n";
    assert!(t.contains(grant), "the example's grant changed");
    std::fs::write(&api_manifest, t.replace(grant, "")).expect("write");
    repo.commit("reports is gone");
    let v = repo.json(&["deploy", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(
        v["orphaned"],
        serde_json::json!(["shop-test-reports"]),
        "{v:#}"
    );
    // (reports called api: no call is left, so the Service Connect stack went.)
    assert_eq!(
        stack(&v, "shop-test-service-connect")["result"],
        "deleted",
        "{v:#}"
    );
    let v = repo.json(&["status", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(stack(&v, "shop-test-reports")["orphaned"], true, "{v:#}");

    // Destroy: the orphan and the services, then the foundation (the deploy DAG
    // reversed); the shared stack stays. Retained buckets are listed.
    let o = repo.run(&["down", "--target", "aws", "--env", "test"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "no terminal, no --yes: {}",
        text(&o.stderr)
    );
    let v = repo.json(
        &[
            "down",
            "--target",
            "aws",
            "--env",
            "test",
            "--yes",
            "--parameters",
        ],
        &fc,
    );
    for s in ["shop-test-reports", "shop-test-api", "shop-test-foundation"] {
        assert_eq!(stack(&v, s)["result"], "deleted", "{v:#}");
    }
    assert!(
        v["parameters_deleted"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{v:#}"
    );
    let retained: Vec<&str> = v["retained"]
        .as_array()
        .expect("retained")
        .iter()
        .filter(|r| r["type"] == "AWS::S3::Bucket")
        .filter_map(|r| r["physical_id"].as_str())
        .collect();
    assert!(retained.contains(&bucket.as_str()), "{v:#}");
    // A second down finds what the first left: the retained buckets (by the names
    // CloudFormation gave them) and the branch's images, and deletes them on request.
    let v = repo.json(
        &[
            "down",
            "--target",
            "aws",
            "--env",
            "test",
            "--yes",
            "--images",
            "--buckets",
        ],
        &fc,
    );
    let deleted: Vec<&str> = strs(&v, "buckets_deleted");
    for b in &retained {
        assert!(deleted.contains(b), "{b} not deleted: {v:#}");
        assert!(
            pantstack_fakecloud_adapter::s3_get(fc.port, &format!("/{b}?versioning")).is_none(),
            "{b} still exists"
        );
    }
    assert!(
        !v["retained"]
            .as_array()
            .expect("retained")
            .iter()
            .any(|r| r["type"] == "AWS::S3::Bucket"),
        "{v:#}"
    );
    let images: Vec<&str> = strs(&v, "images_deleted");
    for t in tags
        .iter()
        .chain(new_tags.iter())
        .filter(|t| t.starts_with("api-"))
    {
        assert!(images.contains(t), "{t} not deleted: {images:?}");
    }
    let v = repo.json(&["status", "--target", "aws", "--env", "test"], &fc);
    assert_eq!(stack(&v, "shop-test-api")["status"], "ABSENT", "{v:#}");
    assert_eq!(
        stack(&v, "shop-shared")["status"],
        "CREATE_COMPLETE",
        "{v:#}"
    );
    // Every call `deploy` and `up` made, as the test environment's CI role.
    check_ci_role(
        &fc,
        &foundation,
        "ci:test",
        &synth_dir.join("shop-test-foundation.json"),
        &[],
    );
    let _ = std::fs::remove_dir_all(&base);
}
