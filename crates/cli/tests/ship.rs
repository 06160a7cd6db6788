//! The aws target end to end, with the real `pantstack` binary against fakecloud
//! (a local AWS emulator: CloudFormation, ECR as an OCI registry, ECS running the
//! tasks as Docker containers) on loopback: bootstrap, deploy the example (images
//! built FROM scratch and pushed to its ECR), diff, a new image, a failing image,
//! destroy. Deviations of the emulator are adapted in `common/fakecloud.rs` only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::fakecloud::FakeCloud;
use common::iam_check;
use common::{copy_dir, repo_root, text};
use pantstack_fakecloud_adapter::record::Call;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A copy of the example monorepo in git (branch `dev` → environment `test`),
/// whose images are built from the statically linked binaries the example's
/// build scripts write (built once, in the repository, when missing).
struct Repo {
    base: PathBuf,
    root: PathBuf,
    vars: Vec<(String, String)>,
    /// The emulator's recording, when on: each command labels its calls with
    /// the principal CI would run it as (`iam_check::principal_for`).
    recorder: Option<std::sync::Arc<pantstack_fakecloud_adapter::record::Recorder>>,
}

fn static_binary(service: &str) -> PathBuf {
    let dir = repo_root().join("examples/modules").join(service);
    let bin = dir.join(".build").join(service);
    if !bin.is_file() {
        let st = Command::new("sh")
            .arg(dir.join("build.sh"))
            .status()
            .expect("run the example's build.sh");
        assert!(st.success(), "{}/build.sh failed", dir.display());
    }
    bin
}

fn git(root: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("git");
    assert!(st.success(), "git {args:?}");
}

impl Repo {
    fn new(name: &str, fc: &FakeCloud) -> Repo {
        let base =
            std::env::temp_dir().join(format!("pantstack-ship-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("repo");
        copy_dir(&repo_root().join("examples"), &root);
        for svc in ["api", "reports"] {
            let bin = static_binary(svc);
            let build = root.join("modules").join(svc).join(".build");
            std::fs::create_dir_all(&build).expect("mkdir .build");
            std::fs::copy(&bin, build.join(svc)).expect("copy the static binary");
            // The image's own build step (`image.build: ./build.sh`) compiled it.
            let manifest = root
                .join("modules")
                .join(svc)
                .join("infrastructure/pantstack.yaml");
            let t = std::fs::read_to_string(&manifest).expect("manifest");
            assert!(
                t.contains("\n  build: ./build.sh\n"),
                "the example's image.build changed"
            );
            let mut t = t.replace("\n  build: ./build.sh\n", "\n");
            if svc == "reports" {
                // Queues enough to take its template over CloudFormation's 51,200
                // bytes inline: deploy must pass it by TemplateURL.
                t.push_str("queues:\n");
                for i in 0..16 {
                    t.push_str(&format!(
                        "  extra{i:02}:\n    dead_letter:\n      max_receive_count: 3\n"
                    ));
                }
            }
            std::fs::write(&manifest, t).expect("write");
        }
        std::fs::write(root.join(".gitignore"), ".pantstack/\n").expect("gitignore");
        git(&root, &["init", "-q", "-b", "dev"]);
        git(&root, &["add", "-A", "-f"]);
        git(&root, &["commit", "-qm", "example"]);
        let docker = base.join("docker-config");
        std::fs::create_dir_all(&docker).expect("docker config dir");
        Repo {
            vars: fc.vars(&docker),
            base,
            root,
            recorder: fc.recorder.clone(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_input(args, None)
    }

    fn run_input(&self, args: &[&str], input: Option<&str>) -> Output {
        self.run_with(args, input, &[])
    }

    fn run_with(&self, args: &[&str], input: Option<&str>, envs: &[(&str, &str)]) -> Output {
        let mut child = self.spawn(args, input.is_some(), envs);
        if let Some(i) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(i.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait pantstack")
    }

    /// pantstack started with `args`, its output piped.
    fn spawn(&self, args: &[&str], input: bool, envs: &[(&str, &str)]) -> std::process::Child {
        if let Some(r) = &self.recorder {
            r.act_as(&iam_check::principal_for(args));
        }
        let mut c = Command::new(env!("CARGO_BIN_EXE_pantstack"));
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .env("NO_COLOR", "1");
        for v in [
            "GITHUB_REF",
            "GITHUB_HEAD_REF",
            "GITHUB_REF_NAME",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "PANTSTACK_TARGET",
        ] {
            c.env_remove(v);
        }
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        for (k, v) in envs {
            c.env(k, v);
        }
        c.stdin(if input { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("run pantstack")
    }

    fn json(&self, args: &[&str], fc: &FakeCloud) -> Value {
        self.json_with(args, &[], fc)
    }

    fn json_with(&self, args: &[&str], envs: &[(&str, &str)], fc: &FakeCloud) -> Value {
        let mut a = vec!["--format", "json"];
        a.extend_from_slice(args);
        let o = self.run_with(&a, None, envs);
        assert!(
            o.status.success(),
            "pantstack {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}\nfakecloud:\n{}",
            o.status.code(),
            text(&o.stdout),
            text(&o.stderr),
            fc.log_tail()
        );
        serde_json::from_slice(&o.stdout).expect("JSON on stdout")
    }

    /// A workflow step's script, as its job runs it (`bash -e`), with `pantstack`
    /// on the PATH, in the monorepo.
    fn script(&self, script: &str, envs: &[(&str, &str)]) -> Output {
        // The preview workflow's jobs run as the previews' CI role.
        if let Some(r) = &self.recorder {
            r.act_as("ci:preview");
        }
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_pantstack"));
        let path = format!(
            "{}:{}",
            bin.parent().expect("bin dir").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.args(["-e", "-c", script])
            .current_dir(&self.root)
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for v in [
            "GITHUB_REF",
            "GITHUB_HEAD_REF",
            "GITHUB_REF_NAME",
            "PANTSTACK_TARGET",
        ] {
            c.env_remove(v);
        }
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().expect("bash")
    }

    fn commit(&self, msg: &str) {
        git(&self.root, &["commit", "-qam", msg]);
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn stack<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["stacks"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["stack"] == name))
        .unwrap_or_else(|| panic!("no stack {name} in {v:#}"))
}

/// The strings of a report's array field.
fn strs<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// GET on a loopback port: (status, body), or the error.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut b = String::new();
    s.read_to_string(&mut b).map_err(|e| e.to_string())?;
    let code = b
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {b:?}"))?;
    Ok((
        code,
        b.split("\r\n\r\n").nth(1).unwrap_or_default().to_string(),
    ))
}

/// What the CI role check needs of the emulator while the foundation exists:
/// its exports, its account and its KMS aliases.
struct Deployed {
    exports: std::collections::BTreeMap<String, String>,
    account: String,
    aliases: std::collections::BTreeMap<String, String>,
}

fn deployed(fc: &FakeCloud) -> Deployed {
    let exports = pantstack_fakecloud_adapter::exports(fc.port);
    let account = exports
        .values()
        .find_map(|v| {
            v.strip_prefix("arn:aws:iam::")
                .and_then(|r| r.split(':').next())
        })
        .unwrap_or_else(|| panic!("no role ARN among the exports: {exports:#?}"))
        .to_string();
    let aliases = pantstack_fakecloud_adapter::kms_aliases(fc.port, "us-east-1", &account);
    Deployed {
        exports,
        account,
        aliases,
    }
}

/// Every call the run made as `principal`, evaluated against the CI role of
/// `foundation` (a synthesized template): fails naming each denied call.
fn check_ci_role(
    fc: &FakeCloud,
    d: &Deployed,
    principal: &str,
    foundation: &Path,
    administrators: &[&str],
) {
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(foundation).expect("foundation template"))
            .expect("template JSON");
    let resolver = iam_check::Resolver {
        account: d.account.clone(),
        region: "us-east-1".into(),
        exports: &d.exports,
        template: &template,
    };
    let role = resolver
        .ci_role()
        .unwrap_or_else(|e| panic!("{}: {e}", foundation.display()));
    let calls = fc.recorder.as_ref().expect("recording").calls();
    let repository = calls
        .iter()
        .find_map(|c| c.params["repositoryName"].as_str())
        .unwrap_or("shop")
        .to_string();
    let ours = |c: &Call| c.principal.split('/').next() == Some(principal);
    let mine = calls.iter().filter(|c| ours(c)).count();
    assert!(
        mine > 20,
        "only {mine} calls as {principal}: is the recording on?"
    );
    let mut authorizer =
        pantstack_fakecloud_adapter::authz::Authorizer::new(&d.account, d.aliases.clone());
    let roles = [(principal.to_string(), role)].into();
    let others: Vec<Call> = calls
        .into_iter()
        .filter(|c| ours(c) || c.principal == "admin")
        .collect();
    match iam_check::check(
        &others,
        &roles,
        &mut authorizer,
        &repository,
        administrators,
    ) {
        Ok((n, t)) => eprintln!(
            "{principal}: {mine} calls, {n} authorizations, all allowed but {t} that diff expects (not compared)"
        ),
        Err(e) => panic!(
            "calls the CI role ({principal}) of {} would be denied on AWS:\n\n{e}",
            foundation.display()
        ),
    }
}

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
    let epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let other = |expires: u64| {
        serde_json::json!({ "owner": "ci-run-41", "verb": "deploy", "since": epoch(), "expires": expires, "ttl_s": expires.saturating_sub(epoch()) })
            .to_string()
    };
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

/// An endpoint that accepts connections and never answers: every AWS verb ends
/// with an error in bounded time instead of waiting forever.
#[test]
fn a_silent_endpoint_is_an_error_not_a_hang() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            h.lock().expect("lock").push(c);
        }
    });
    let root = repo_root().join("examples");
    for args in [
        &["status", "--target", "aws", "--env", "test"][..],
        &["secrets", "list", "--target", "aws", "--env", "test"][..],
    ] {
        let started = std::time::Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_pantstack"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PANTSTACK_AWS_CALL_TIMEOUT_S", "1")
            .env_remove("PANTSTACK_TARGET")
            .stdin(Stdio::null())
            .output()
            .expect("run pantstack");
        let took = started.elapsed();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("error:"), "{}", text(&o.stderr));
        assert!(
            took < std::time::Duration::from_secs(30),
            "{args:?} took {took:?}"
        );
        assert!(
            text(&o.stdout).trim().is_empty(),
            "nothing on stdout: {}",
            text(&o.stdout)
        );
    }
}

/// `environments.<env>.target: aws` sends the commands that name the environment to
/// AWS; `--target local`, `PANTSTACK_TARGET=local` and commands that do not name it
/// (the branch's environment) stay local; a target that does not exist is a
/// manifest error with its file and line.
#[test]
fn an_environment_configured_for_aws_is_deployed_there_when_named() {
    // An endpoint that counts the connections it gets and never answers.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            h.lock().expect("lock").push(c);
        }
    });
    let base = std::env::temp_dir().join(format!("pantstack-target-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("repo");
    copy_dir(&repo_root().join("examples"), &root);
    let foundation = root.join("stack/infra/foundation/pantstack.yaml");
    let t = std::fs::read_to_string(&foundation).expect("foundation");
    assert!(
        t.contains("  test:\n    branch: dev\n"),
        "the example's environments changed"
    );
    let aws = t.replace(
        "  test:\n    branch: dev\n",
        "  test:\n    branch: dev\n    target: aws\n",
    );
    std::fs::write(&foundation, &aws).expect("write");
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pantstack"));
        c.arg("--root")
            .arg(&root)
            .args(args)
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PANTSTACK_AWS_CALL_TIMEOUT_S", "1")
            .env_remove("PANTSTACK_TARGET")
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME")
            .stdin(Stdio::null());
        for (k, v) in vars {
            c.env(k, v);
        }
        let before = held.lock().expect("lock").len();
        let o = c.output().expect("run pantstack");
        let contacted = held.lock().expect("lock").len() > before;
        (o, contacted)
    };
    // Named: AWS (the silent endpoint is reached, and the command fails on it).
    for args in [
        &["status", "--env", "test"][..],
        &["secrets", "list", "--env", "test"][..],
    ] {
        let (o, contacted) = run(args, &[]);
        assert!(contacted, "{args:?} did not go to AWS: {}", text(&o.stderr));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stderr));
    }
    // Overridden, or not named: local, and AWS is never contacted.
    for (args, vars) in [
        (
            &["status", "--env", "test", "--target", "local"][..],
            &[][..],
        ),
        (
            &["status", "--env", "test"][..],
            &[("PANTSTACK_TARGET", "local")][..],
        ),
        (&["status", "--env", "prod"][..], &[][..]),
        (&["status"][..], &[][..]),
    ] {
        let (o, contacted) = run(args, vars);
        assert!(
            !contacted,
            "{args:?} {vars:?} went to AWS: {}",
            text(&o.stderr)
        );
        assert_ne!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stderr));
    }
    // `up --detach` re-executes itself as the local cloud's supervisor: local too,
    // whether the environment came from the branch or was named with
    // --target local. (Builds that fail at once keep it short: exit 4.)
    for svc in ["api", "reports"] {
        let m = root.join(format!("modules/{svc}/infrastructure/pantstack.yaml"));
        let t = std::fs::read_to_string(&m).expect("manifest");
        assert!(
            t.contains("  build: ./build.sh --local\n"),
            "{svc}'s local build changed"
        );
        std::fs::write(
            &m,
            t.replace("  build: ./build.sh --local\n", "  build: \"false\"\n"),
        )
        .expect("write");
    }
    let keys = base.join("keys");
    let keys_s = keys.to_str().expect("utf-8").to_string();
    for args in [
        &["up", "--detach"][..],
        &["up", "--detach", "--env", "test", "--target", "local"][..],
    ] {
        let (o, contacted) = run(args, &[("PANTSTACK_KEY_DIR", keys_s.as_str())]);
        assert!(!contacted, "{args:?} went to AWS: {}", text(&o.stderr));
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("build `false`"),
            "{}",
            text(&o.stderr)
        );
        let (o, contacted) = run(
            &["down", "--env", "test", "--target", "local"],
            &[("PANTSTACK_KEY_DIR", keys_s.as_str())],
        );
        assert!(!contacted && o.status.success(), "{}", text(&o.stderr));
    }
    // A target that does not exist: the file, the line, the choices.
    std::fs::write(
        &foundation,
        t.replace(
            "  test:\n    branch: dev\n",
            "  test:\n    branch: dev\n    target: gcp\n",
        ),
    )
    .expect("write");
    let (o, contacted) = run(&["check"], &[]);
    assert!(!contacted);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr) + &text(&o.stdout);
    assert!(
        err.contains("stack/infra/foundation/pantstack.yaml:14")
            && err.contains("environments.test.target")
            && err.contains("aws"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Previews end to end: their secrets come from the declared preview values, the
/// cap refuses one more (naming the oldest) unless asked to replace it, the TTL
/// (judged by a controllable clock) destroys an idle one, and a teardown leaves
/// nothing: no stack, no bucket or its data, no parameter, no image.
#[test]
fn previews_secrets_cap_ttl_and_teardown_on_fakecloud() {
    let base = std::env::temp_dir().join(format!(
        "pantstack-fakecloud-previews-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&base).expect("mkdir");
    let fc = FakeCloud::start_recording(&base);
    let repo = Repo::new("previews", &fc);
    let m = repo.root.join("stack/infra/foundation/pantstack.yaml");
    let t = std::fs::read_to_string(&m).expect("foundation manifest");
    assert!(
        t.contains("\n  max: 5\n"),
        "the example's previews.max changed"
    );
    std::fs::write(&m, t.replace("\n  max: 5\n", "\n  max: 1\n")).expect("write");
    repo.commit("one preview at a time");

    let v = repo.json(&["bootstrap", "--pr", "1"], &fc);
    assert_eq!(
        stack(&v, "shop-preview-foundation")["result"],
        "created",
        "{v:#}"
    );
    let template_bucket = v["template_bucket"]
        .as_str()
        .unwrap_or_else(|| panic!("no template bucket: {v:#}"))
        .to_string();
    let foundation = deployed(&fc);
    let epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };

    // A secret with no preview value: refused, naming the command that sets it.
    let o = repo.run(&["preview", "up", "--pr", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("pantstack secrets set --target aws --env preview api API_TOKEN"),
        "{}",
        text(&o.stderr)
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
            "preview",
        ],
        Some("preview-token-value"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("/shop/preview/api/API_TOKEN"),
        "{}",
        text(&o.stdout)
    );

    // The cap counts the slots other `preview up` runs claimed (under the
    // previews' lock, before any stack of theirs exists), not only stacks: at
    // max 1, 7 is refused naming preview-99, which has no stack yet.
    let claim = format!("/{template_bucket}/shop-preview-activity-99.json");
    let stamp = serde_json::json!({ "pr": 99, "at": epoch(), "by": "ci-run-77", "verb": "claim" });
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &claim,
        &stamp.to_string()
    ));
    let o = repo.run(&["preview", "up", "--pr", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("preview-99") && err.contains("--replace-oldest"),
        "{err}"
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"][0]["pr"], 99, "{v:#}");
    assert_eq!(v["previews"][0]["stacks"], serde_json::json!([]), "{v:#}");
    // Its teardown gives the slot back.
    let o = repo.run(&["preview", "down", "--pr", "99", "--yes"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &claim).is_none());

    // While another run holds the previews' lock (counting and claiming), `up`
    // is refused naming it; an expired one is taken over, and released after.
    // (A lock expires by S3's clock: its Last-Modified plus the TTL it says.)
    let slots = format!("/{template_bucket}/shop-preview-slots-deploy-lock.json");
    let other = |expires: u64| {
        serde_json::json!({ "owner": "ci-run-78", "verb": "preview up", "since": epoch(), "expires": expires, "ttl_s": expires.saturating_sub(epoch()) })
            .to_string()
    };
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &slots,
        &other(epoch() + 3600)
    ));
    let o = repo.run(&["preview", "up", "--pr", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("previews of `shop` are locked by ci-run-78 (preview up) since")
            && err.contains("--lock-wait"),
        "{err}"
    );
    assert!(
        err.contains("pantstack unlock --previews"),
        "the refusal names the way out: {err}"
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &claim.replace("-99", "-7")).is_none());
    // `unlock --previews` shows the holder and asks (--yes without a
    // terminal), then removes exactly that lock.
    let o = repo.run(&["unlock", "--previews"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("the previews of `shop` are locked by ci-run-78 (preview up)"),
        "{}",
        text(&o.stderr)
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &slots).is_some());
    let v = repo.json(&["unlock", "--previews", "--yes"], &fc);
    assert_eq!(v["removed"]["owner"], "ci-run-78", "{v:#}");
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &slots).is_none());
    let o = repo.run(&["unlock", "--previews", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("the previews of `shop` are not locked"),
        "{}",
        text(&o.stdout)
    );
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &slots,
        &other(epoch() - 1)
    ));

    // Up: every service, the secret copied to the preview's own parameter.
    let v = repo.json(&["preview", "up", "--pr", "7"], &fc);
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &slots).is_none());
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(
        stack(&v, "shop-preview-7-api")["result"],
        "created",
        "{v:#}"
    );
    assert_eq!(
        stack(&v, "shop-preview-7-reports")["result"],
        "created",
        "{v:#}"
    );
    let bucket = stack(&v, "shop-preview-7-api")["outputs"]["ResultsBucketName"]
        .as_str()
        .expect("ResultsBucketName")
        .to_string();
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview-7"],
        &fc,
    );
    assert_eq!(v[0]["parameter"], "/shop/preview-7/api/API_TOKEN", "{v:#}");
    assert_eq!(v[0]["set"], true, "{v:#}");
    // What the preview runs is HEAD: nothing to deploy; a commit to reports
    // makes reports differ from what it runs.
    let first = git_out(&repo.root, &["rev-list", "--max-parents=0", "HEAD"]);
    let o = repo.run(&["changed", "--deployed", "--env", "preview-7"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "", "{}", text(&o.stderr));
    let main_rs = repo.root.join("modules/reports/src/main.rs");
    let mut code = std::fs::read_to_string(&main_rs).expect("reports source");
    code.push_str("\n// a change\n");
    std::fs::write(&main_rs, code).expect("write");
    repo.commit("change reports");
    let o = repo.run(&["changed", "--deployed", "--env", "preview-7"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "reports\n", "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("changed since"),
        "{}",
        text(&o.stderr)
    );
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &format!("/{bucket}/results/1.json"),
        "{\"ok\":1}"
    ));

    let v = repo.json(&["preview", "list"], &fc);
    let previews = v["previews"].as_array().expect("previews");
    assert_eq!(previews.len(), 1, "{v:#}");
    assert_eq!(previews[0]["pr"], 7, "{v:#}");
    assert_eq!(previews[0]["expired"], false, "{v:#}");
    assert_eq!(v["max"], 1, "{v:#}");

    // The cap: one more is refused, naming the oldest and both ways out.
    let o = repo.run(&["preview", "up", "--pr", "8"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("preview-7")
            && err.contains("--replace-oldest")
            && err.contains("preview down --pr 7"),
        "{err}"
    );
    // Chosen: the oldest goes (with its data, parameters and images), 8 comes.
    let o = repo.run(&["preview", "up", "--pr", "8", "--replace-oldest"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    assert!(
        out.contains("shop-preview-7-api") && out.contains("deleted"),
        "{out}"
    );
    assert!(out.contains("shop-preview-8-api"), "{out}");
    // What the checks workflow runs on a pull request (as the previews' CI role).
    let v = repo.json(&["diff", "--pr", "8"], &fc);
    assert!(
        v["stacks"].as_array().is_some_and(|s| !s.is_empty()),
        "{v:#}"
    );
    assert!(
        pantstack_fakecloud_adapter::s3_get(fc.port, &format!("/{bucket}/results/1.json"))
            .is_none(),
        "preview-7's bucket and its data are gone"
    );
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview-7"],
        &fc,
    );
    assert_eq!(v[0]["set"], false, "preview-7's parameter is gone: {v:#}");

    // A push that changes nothing is activity all the same: `up` eight days on
    // (past the 7d TTL; nothing to deploy, 8 runs HEAD) marks 8 active then, so
    // gc then leaves it although its stacks last changed eight days before.
    let later = (epoch() + 8 * 86_400).to_string();
    let at_later = [("PANTSTACK_NOW", later.as_str())];
    let v = repo.json_with(&["preview", "up", "--pr", "8"], &at_later, &fc);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(
        stack(&v, "shop-preview-8-api")["result"],
        "unchanged",
        "{v:#}"
    );
    let v = repo.json_with(&["preview", "list"], &at_later, &fc);
    assert_eq!(v["previews"][0]["idle_seconds"], 0, "{v:#}");
    assert_eq!(v["previews"][0]["expired"], false, "{v:#}");
    let o = repo.run_with(&["preview", "gc", "--dry-run"], None, &at_later);
    assert!(
        text(&o.stdout).contains("no preview has been idle"),
        "{}",
        text(&o.stdout)
    );

    // The TTL, judged at a later time: dry run, refusal without --yes, then gc.
    let later = (epoch() + 16 * 86_400).to_string();
    let clock = [("PANTSTACK_NOW", later.as_str())];
    let o = repo.run_with(&["preview", "gc"], None, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no preview has been idle"),
        "{}",
        text(&o.stdout)
    );
    let o = repo.run_with(&["preview", "gc", "--dry-run"], None, &clock);
    assert!(
        text(&o.stdout).contains("would destroy preview-8"),
        "{}",
        text(&o.stdout)
    );
    let o = repo.run_with(&["preview", "gc"], None, &clock);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // gc judges an idle preview again holding its deploy lock. One whose lock
    // a run holds (a push's deploy of it) is kept at once, and said.
    let own_lock = format!("/{template_bucket}/shop-preview-8-deploy-lock.json");
    let deploying = |expires: u64| {
        serde_json::json!({ "owner": "ci-run-80", "verb": "deploy", "since": epoch(), "expires": expires, "ttl_s": expires.saturating_sub(epoch()) })
            .to_string()
    };
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &own_lock,
        &deploying(epoch() + 3600)
    ));
    let o = repo.run_with(&["preview", "gc", "--yes"], None, &clock);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("preview-8 kept: locked by ci-run-80 (deploy)"),
        "{}",
        text(&o.stdout)
    );
    // A push that lands while gc waits for the lock: gc listed preview-8 idle,
    // the push's deploy marks it active and ends; gc then takes the lock, reads
    // the stamp again, and keeps it.
    let mut gc = repo.spawn(
        &["preview", "gc", "--yes", "--lock-wait", "2m"],
        false,
        &clock,
    );
    let mut stderr = std::io::BufReader::new(gc.stderr.take().expect("stderr"));
    let mut seen = String::new();
    while !seen.contains("destroying preview-8") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).expect("gc's stderr");
        assert!(n > 0, "gc ended before deciding: {seen}");
        seen.push_str(&line);
    }
    let pushed = serde_json::json!({ "pr": 8, "at": later.parse::<u64>().expect("later"), "by": "ci-run-80", "verb": "deploy" });
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &format!("/{template_bucket}/shop-preview-activity-8.json"),
        &pushed.to_string()
    ));
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &own_lock,
        &deploying(epoch() - 1)
    ));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("gc's stderr");
    let o = gc.wait_with_output().expect("gc");
    assert!(o.status.success(), "{seen}{rest}");
    assert!(
        text(&o.stdout).contains("preview-8 kept: active again"),
        "{}\n{seen}{rest}",
        text(&o.stdout)
    );
    assert!(
        pantstack_fakecloud_adapter::s3_get(fc.port, &own_lock).is_none(),
        "gc released the preview's lock"
    );
    let v = repo.json_with(&["preview", "list"], &clock, &fc);
    assert_eq!(v["previews"][0]["pr"], 8, "{v:#}");
    assert_eq!(v["previews"][0]["expired"], false, "{v:#}");

    // Idle for the TTL after that push: destroyed.
    let later = (epoch() + 24 * 86_400).to_string();
    let clock = [("PANTSTACK_NOW", later.as_str())];
    let o = repo.run_with(&["preview", "gc", "--yes"], None, &clock);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("image(s)"), "{}", text(&o.stdout));

    // Nothing is left of either preview.
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"], serde_json::json!([]), "{v:#}");
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview-8"],
        &fc,
    );
    assert_eq!(v[0]["set"], false, "{v:#}");
    // The declared preview value stays for the next preview.
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview"],
        &fc,
    );
    assert_eq!(v[0]["set"], true, "{v:#}");

    // Two pull requests opened at once, one slot (max 1): exactly one passes the
    // cap; the other is refused by the cap or by the previews' lock, never both
    // created.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| repo.run(&["preview", "up", "--pr", "10"]));
        let b = s.spawn(|| repo.run(&["preview", "up", "--pr", "11"]));
        (a.join().expect("up 10"), b.join().expect("up 11"))
    });
    let (won, lost) = match (a.status.success(), b.status.success()) {
        (true, false) => (10, &b),
        (false, true) => (11, &a),
        _ => panic!(
            "exactly one of two previews fits one slot:\n10: {}\n11: {}",
            text(&a.stderr),
            text(&b.stderr)
        ),
    };
    let err = text(&lost.stderr);
    assert!(
        err.contains("previews.max is 1") || err.contains("previews of `shop` are locked by"),
        "{err}"
    );
    let v = repo.json(&["preview", "list"], &fc);
    let previews = v["previews"].as_array().expect("previews");
    assert_eq!(previews.len(), 1, "{v:#}");
    assert_eq!(previews[0]["pr"], won, "{v:#}");
    let o = repo.run(&["preview", "down", "--pr", &won.to_string(), "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // The generated workflow's own scripts, run as its jobs would (the AWS
    // credentials step aside): a pull request opened → its preview; closed → gone.
    let dir = repo.base.join("workflows");
    let o = repo.run(&["workflows", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let wf = std::fs::read_to_string(dir.join("pantstack-preview.yml")).expect("preview workflow");
    let pr = [("PR", "9"), ("BASE", first.as_str())];
    let o = repo.script(&step_script(&wf, "Deploy the preview"), &pr);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("shop-preview-9-api"),
        "{}",
        text(&o.stdout)
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"][0]["pr"], 9, "{v:#}");
    // Pushed again with nothing new: the preview runs this commit already, and
    // is marked active (here at a clock a day on).
    let day_on = (epoch() + 86_400).to_string();
    let pushed = [
        ("PR", "9"),
        ("BASE", first.as_str()),
        ("PANTSTACK_NOW", day_on.as_str()),
    ];
    let o = repo.script(&step_script(&wf, "Deploy the preview"), &pushed);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("runs this commit already")
            && text(&o.stdout).contains("preview-9 marked active"),
        "{}",
        text(&o.stdout)
    );
    let v = repo.json_with(
        &["preview", "list"],
        &[("PANTSTACK_NOW", day_on.as_str())],
        &fc,
    );
    assert_eq!(v["previews"][0]["idle_seconds"], 0, "{v:#}");
    let o = repo.script(&step_script(&wf, "Destroy the preview"), &pr);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"], serde_json::json!([]), "{v:#}");

    // Every call of `preview up/down/gc/touch/list`, `diff --pr` and the
    // workflow's scripts, as the previews' CI role.
    let synth = repo.base.join("synth-preview");
    let o = repo.run(&["synth", "--pr", "1", "--out", synth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    check_ci_role(
        &fc,
        &foundation,
        "ci:preview",
        &synth.join("shop-preview-foundation.json"),
        &["shop-shared", "shop-preview-foundation"],
    );
}

fn git_out(root: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}");
    text(&o.stdout).trim().to_string()
}

/// The `run:` script of the step named `name…` in a generated workflow.
fn step_script(workflow: &str, name: &str) -> String {
    let mut lines = workflow
        .lines()
        .skip_while(|l| !l.contains(&format!("- name: {name}")));
    lines.next().unwrap_or_else(|| panic!("no step {name}"));
    for l in lines.by_ref() {
        if let Some(one) = l.trim_start().strip_prefix("run: ") {
            if one != "|" {
                return one.to_string();
            }
            break;
        }
    }
    let mut script = String::new();
    for l in lines {
        if !l.starts_with("          ") && !l.trim().is_empty() {
            break;
        }
        script.push_str(l.strip_prefix("          ").unwrap_or(l));
        script.push('\n');
    }
    script
}

/// The CI role check itself, without the emulator: on the example's synthesized
/// test foundation, a change set passing the deploy role is allowed; one without
/// the role (what real IAM refused before: the `cloudformation:RoleArn`
/// condition), on another environment's stack, or a call the check has no
/// mapping for fail, each naming the call, the role and what is missing.
#[test]
fn the_ci_role_check_refuses_what_iam_would() {
    let out = std::env::temp_dir().join(format!("pantstack-iamcheck-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .arg("--root")
        .arg(repo_root().join("examples"))
        .args(["synth", "--env", "test", "--out", out.to_str().unwrap()])
        .output()
        .expect("synth");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("shop-test-foundation.json")).expect("template"),
    )
    .expect("json");
    // The shared stack's exports the CI role imports, with made-up values.
    fn imports(v: &Value, out: &mut std::collections::BTreeMap<String, String>) {
        if let Some(n) = v.get("Fn::ImportValue").and_then(Value::as_str) {
            out.insert(n.to_string(), "shop-templates-123".to_string());
        }
        match v {
            Value::Array(a) => a.iter().for_each(|x| imports(x, out)),
            Value::Object(o) => o.values().for_each(|x| imports(x, out)),
            _ => {}
        }
    }
    let mut exports = std::collections::BTreeMap::new();
    imports(&template["Resources"]["CiRole"], &mut exports);
    let resolver = iam_check::Resolver {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        exports: &exports,
        template: &template,
    };
    let deploy_role = format!(
        "arn:aws:iam::123456789012:role/{}",
        resolver
            .resolve(&template["Resources"]["DeployRole"]["Properties"]["RoleName"])
            .expect("deploy role name")
            .as_str()
            .expect("a name")
    );
    let roles = [(
        "ci:test".to_string(),
        resolver.ci_role().expect("the CI role"),
    )]
    .into();
    let call = |principal: &str, service: &str, operation: &str, params: Value| Call {
        principal: principal.into(),
        key: "k".into(),
        service: service.into(),
        region: "us-east-1".into(),
        operation: operation.into(),
        params,
    };
    let change = |stack: &str, role: Option<&str>| {
        let mut p = serde_json::json!({ "StackName": stack, "ChangeSetName": "c1" });
        if let Some(r) = role {
            p["RoleARN"] = r.into();
        }
        call("ci:test", "cloudformation", "CreateChangeSet", p)
    };
    let check = |calls: &[Call]| {
        let mut a =
            pantstack_fakecloud_adapter::authz::Authorizer::new("123456789012", Default::default());
        iam_check::check(calls, &roles, &mut a, "shop", &["shop-shared"])
    };
    // Allowed: the change set and passing the deploy role to CloudFormation;
    // the administrator's calls are not the CI role's.
    let ok = [
        change("shop-test-api", Some(&deploy_role)),
        call("admin", "ecs", "RunTask", serde_json::json!({})),
    ];
    assert_eq!(check(&ok), Ok((2, 0)));
    // A diff may be refused on the administrator's stacks (it says "not
    // compared"); anything else may not.
    let mut diff_shared = change("shop-shared", Some(&deploy_role));
    diff_shared.principal = "ci:test/diff".into();
    assert_eq!(check(&[diff_shared.clone()]), Ok((2, 1)));
    diff_shared.principal = "ci:test".into();
    assert!(check(&[diff_shared]).is_err());
    let e = check(&[change("shop-test-api", None)]).unwrap_err();
    assert!(
        e.contains("cloudformation:CreateChangeSet")
            && e.contains("ChangeStacksOnlyAsTheDeployRole")
            && e.contains("cloudformation:rolearn")
            && e.contains("role/shop-test-ci"),
        "{e}"
    );
    let e = check(&[change("shop-prod-api", Some(&deploy_role))]).unwrap_err();
    assert!(
        e.contains("stack/shop-prod-api") && e.contains("only on"),
        "{e}"
    );
    let e = check(&[call("ci:test", "ecs", "RunTask", serde_json::json!({}))]).unwrap_err();
    assert!(e.contains("no IAM mapping for ecs:RunTask"), "{e}");
    let e = check(&[call("ci:prod", "ecs", "ListTasks", serde_json::json!({}))]).unwrap_err();
    assert!(e.contains("no CI role"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}
