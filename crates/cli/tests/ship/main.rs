//! The aws target end to end, with the real `pantstack` binary against fakecloud
//! (a local AWS emulator: CloudFormation, ECR as an OCI registry, ECS running the
//! tasks as Docker containers) on loopback: bootstrap, deploy the example (images
//! built FROM scratch and pushed to its ECR), diff, a new image, a failing image,
//! destroy. Deviations of the emulator are adapted in `common/fakecloud.rs` only.
//!
//! This file is the harness the tests share (a copy of the example in git, the
//! `pantstack` runner, report helpers, the CI role check); the tests are in the
//! submodules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

#[path = "../common/mod.rs"]
mod common;

mod ci_role;
mod deploy;
mod previews;
mod shared_alb;
mod targets;

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

/// Seconds since the epoch, by this machine's clock.
fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The body of a deploy lock another run holds until `expires` (a lock expires
/// by S3's clock: its Last-Modified plus the TTL it says).
fn forged_lock(owner: &str, verb: &str, expires: u64) -> String {
    serde_json::json!({ "owner": owner, "verb": verb, "since": epoch(), "expires": expires, "ttl_s": expires.saturating_sub(epoch()) })
        .to_string()
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
