//! Helpers shared by the end-to-end test files.

#![allow(dead_code)] // each test file uses some of them

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Copies a directory tree, leaving out build output and local-cloud state.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        let target = to.join(&name);
        if e.file_type().expect("type").is_dir() {
            if name == "target" || name == ".build" || name == ".pantstack" {
                continue;
            }
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The example's `api` binary, built with the workspace.
pub fn api_binary() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_pantstack")).with_file_name("api");
    assert!(
        p.is_file(),
        "{} missing: build the workspace first",
        p.display()
    );
    p
}

/// A copy of the example monorepo whose local commands run the prebuilt binary, with
/// `extra` appended to the api manifest (local settings for fast tests).
pub struct Cloud {
    pub root: PathBuf,
    pub env: &'static str,
    /// The master key directory (outside the project tree, as for users).
    pub keys: PathBuf,
    /// A temporary copy (removed on drop), or a directory of this repository.
    pub owned: bool,
}

impl Cloud {
    pub fn new(name: &str, extra: &str) -> Cloud {
        let base =
            std::env::temp_dir().join(format!("pantstack-local-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("repo");
        copy_dir(&repo_root().join("examples"), &root);
        // The api alone (the reports service is run by the in-place tests): without
        // it, and without api's grant to it.
        std::fs::remove_dir_all(root.join("modules/reports")).expect("the example's reports");
        let manifest = root.join("modules/api/infrastructure/pantstack.yaml");
        let api = api_binary();
        let text = std::fs::read_to_string(&manifest)
            .expect("manifest")
            // The build phase is tested on its own (tests/local.rs); here the
            // tasks run the workspace's binary, built already.
            .replace("local:\n  build: ./build.sh --local\n", "")
            .replace(
                "    # The reports service may read the job records (modules/reports).\n    grants: { reports: read }\n",
                "",
            )
            .replace(
                "local: $PANTSTACK_ARTIFACTS/api serve",
                &format!("local: [\"{}\", \"serve\"]", api.display()),
            )
            .replace(
                "local: $PANTSTACK_ARTIFACTS/api work",
                &format!("local: [\"{}\", \"work\"]", api.display()),
            );
        assert!(
            !text.contains("PANTSTACK_ARTIFACTS")
                && !text.contains("build: ./build.sh --local")
                && !text.contains("grants: { reports"),
            "the example's manifest changed: update tests/common/mod.rs"
        );
        let text = format!("{text}{extra}\n");
        std::fs::write(&manifest, text).expect("write manifest");
        Cloud {
            keys: base.join("keys"),
            root,
            env: "test",
            owned: true,
        }
    }

    pub fn key_dir(&self) -> PathBuf {
        self.keys.clone()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pantstack"));
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .env("NO_COLOR", "1")
            .env("PANTSTACK_KEY_DIR", self.key_dir())
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME");
        c
    }

    /// Sets a secret through `pantstack secrets set` (value on standard input).
    pub fn set_secret(&self, env: &str, service: &str, name: &str, value: &str) {
        use std::io::Write;
        let mut child = self
            .command(&["secrets", "set", "--env", env, service, name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("secrets set");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(value.as_bytes())
            .expect("write value");
        let o = child.wait_with_output().expect("secrets set");
        assert!(o.status.success(), "secrets set: {}", text(&o.stderr));
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// `run` with more environment variables.
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pantstack"))
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .envs(vars.iter().copied())
            .env("NO_COLOR", "1")
            .env("PANTSTACK_KEY_DIR", self.key_dir())
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME")
            .output()
            .expect("run pantstack")
    }

    pub fn up(&self) {
        self.up_with(&[]);
    }

    /// `up`, the supervisor started with more environment variables.
    pub fn up_with(&self, vars: &[(&str, &str)]) {
        self.set_secret(self.env, "api", "API_TOKEN", "test-token");
        let o = self.run_with(&["up", "--env", self.env, "--detach"], vars);
        assert!(
            o.status.success(),
            "up failed:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }

    pub fn status(&self) -> Value {
        let o = self.run(&["status", "--env", self.env, "--format", "json"]);
        assert!(o.status.success(), "status: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("status json")
    }

    pub fn unit(&self, name: &str) -> Value {
        self.status()["units"]
            .as_array()
            .expect("units")
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .expect("unit")
    }

    pub fn port(&self) -> u16 {
        let url = self.unit("api")["url"].as_str().expect("url").to_string();
        url.rsplit(':')
            .next()
            .expect("port")
            .parse()
            .expect("port number")
    }

    /// Waits until `unit` has `n` healthy running tasks of one revision.
    pub fn wait_healthy(&self, unit: &str, n: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let u = self.unit(unit);
            let healthy = u["tasks"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter(|t| t["phase"] == "running" && t["health"] == "healthy")
                        .count()
                })
                .unwrap_or(0);
            if healthy >= n && u["deployment"].is_null() {
                return u;
            }
            assert!(
                Instant::now() < deadline,
                "{unit} not healthy in time: {u:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn edit_manifest(&self, from: &str, to: &str) {
        let p = self.root.join("modules/api/infrastructure/pantstack.yaml");
        let t = std::fs::read_to_string(&p).expect("read");
        assert!(t.contains(from), "{from} not in manifest");
        std::fs::write(&p, t.replacen(from, to, 1)).expect("write");
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--env", self.env]);
        if self.owned
            && let Some(base) = self.root.parent()
        {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
pub mod fakecloud;
pub mod iam_check;
