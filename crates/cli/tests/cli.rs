//! End-to-end tests: the real `pantstack` binary on the example monorepo, on
//! `init`'s scaffold and on broken fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::{copy_dir, repo_root};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    repo_root().join("examples")
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

fn pantstack(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_REF")
        .env_remove("GITHUB_HEAD_REF")
        .env_remove("GITHUB_REF_NAME")
        .output()
        .expect("run pantstack")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// A per-test directory, removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("pantstack-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

#[test]
fn example_monorepo_checks_clean() {
    let o = pantstack(&examples(), &["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    insta::assert_snapshot!(stdout(&o));
}

#[test]
fn check_finds_the_root_from_a_subdirectory() {
    let o = pantstack(&examples().join("modules/api/src"), &["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn outside_a_monorepo_says_so() {
    let dir = tempdir("outside");
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("no Pantstack monorepo"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn broken_manifest_reports_every_error() {
    let o = pantstack(&fixture("manifest-errors"), &["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(stderr(&o));
}

#[test]
fn broken_layout_reports_cross_file_errors() {
    let o = pantstack(&fixture("layout-errors"), &["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(stderr(&o));
}

#[test]
fn broken_foundation_reports_every_error() {
    let o = pantstack(&fixture("foundation-errors"), &["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(stderr(&o));
}

#[test]
fn yaml_bomb_is_refused() {
    let o = pantstack(&fixture("yaml-bomb"), &["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(stderr(&o));
}

#[test]
fn yaml_syntax_errors_and_duplicate_keys() {
    let o = pantstack(&fixture("yaml-syntax"), &["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(stderr(&o));
}

#[test]
fn huge_manifest_is_refused_without_reading_it() {
    let dir = tempdir("huge");
    copy_dir(&examples(), &dir);
    let manifest = dir.join("modules/api/infrastructure/pantstack.yaml");
    let mut text = std::fs::read_to_string(&manifest).expect("read");
    text.push_str(&format!("# {}\n", "x".repeat(600 * 1024)));
    std::fs::write(&manifest, text).expect("write");
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("error[file-too-large]"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("modules/api/infrastructure/pantstack.yaml"));
}

#[test]
fn check_json_lists_diagnostics_with_positions() {
    let o = pantstack(&fixture("manifest-errors"), &["check", "--format", "json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    let diags = v["diagnostics"].as_array().expect("array");
    assert_eq!(
        v["errors"].as_u64().expect("n") as usize,
        diags.iter().filter(|d| d["severity"] == "error").count()
    );
    let prot = diags
        .iter()
        .find(|d| d["field"] == "http.prot")
        .expect("http.prot diagnostic");
    assert_eq!(prot["code"], "unknown-key");
    assert_eq!(prot["file"], "modules/api/infrastructure/pantstack.yaml");
    assert_eq!(prot["line"], 5);
    assert_eq!(prot["column"], 3);
    assert_eq!(prot["help"], "did you mean `port`?");
}

#[test]
fn env_follows_the_seed_mapping() {
    let o = pantstack(&examples(), &["env", "--branch", "dev"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!("env_dev", stdout(&o));
    let o = pantstack(
        &examples(),
        &["env", "--branch", "main", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["environment"], "prod");
    assert_eq!(v["services"][0]["min_capacity"], 2);
    assert_eq!(v["services"][0]["max_capacity"], 10);
    let o = pantstack(&examples(), &["env", "--pr", "42", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["environment"], "preview-42");
    assert_eq!(v["stack"], "preview");
    assert_eq!(v["reason"]["number"], 42);
}

#[test]
fn env_refuses_to_guess_for_other_branches() {
    let o = pantstack(&examples(), &["env", "--branch", "feature/login"]);
    assert_eq!(code(&o), 3);
    assert_eq!(stdout(&o), "");
    insta::assert_snapshot!(stderr(&o));
}

#[test]
fn env_reads_the_branch_from_git_and_ci() {
    let dir = tempdir("git");
    copy_dir(&examples(), &dir);
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .current_dir(&dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git");
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        String::from_utf8_lossy(&st.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);
    let o = pantstack(&dir, &["env", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["environment"], "prod");
    git(&["checkout", "-qb", "dev"]);
    let o = pantstack(&dir, &["env"]);
    assert!(stdout(&o).contains("environment  test"), "{}", stdout(&o));
    // In CI for a pull request, GITHUB_REF names it.
    let o = Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .current_dir(&dir)
        .args(["env", "--format", "json"])
        .env("GITHUB_REF", "refs/pull/7/merge")
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["environment"], "preview-7");
    // Tags from git: branch and HEAD.
    let sha = git(&["rev-parse", "HEAD"]);
    let o = pantstack(&dir, &["tag", "api", "--worker"]);
    assert_eq!(stdout(&o).trim(), format!("api-worker-dev-{}", &sha[..7]));
}

#[test]
fn config_shows_values_and_their_sources() {
    let o = pantstack(&examples(), &["config", "api", "--env", "test"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!(stdout(&o));
}

#[test]
fn a_preview_runs_at_reduced_capacity_shown_as_preview_default() {
    let setting = |v: &serde_json::Value, key: &str| -> serde_json::Value {
        v["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|s| s["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} in {v}"))
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let o = pantstack(&examples(), args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    // `api` has no Pulumi.preview.yaml: a preview lowers what its manifest and
    // the defaults give (scaling.max 10, worker.scaling.max 4, on_demand_base 1).
    let v = json(&["config", "api", "--env", "preview-42", "--format", "json"]);
    for (key, value, layer) in [
        ("maxCapacity", 2, "preview"),
        ("workerMaxCapacity", 2, "preview"),
        ("onDemandBase", 0, "preview"),
        ("minCapacity", 1, "manifest"),
    ] {
        let s = setting(&v, key);
        assert_eq!(
            (s["value"].as_i64(), s["source"]["layer"].as_str()),
            (Some(value), Some(layer)),
            "{key}: {s}"
        );
    }
    // The same service in test keeps its stack file's and the defaults' capacity.
    let v = json(&["config", "api", "--env", "test", "--format", "json"]);
    assert_eq!(setting(&v, "maxCapacity")["value"], 3);
    assert_eq!(setting(&v, "onDemandBase")["value"], 1);
    // --set wins over the preview default, and the text output says where it came from.
    let v = json(&[
        "config",
        "api",
        "--env",
        "preview-42",
        "--set",
        "maxCapacity=5",
        "--format",
        "json",
    ]);
    assert_eq!(setting(&v, "maxCapacity")["value"], 5);
    let o = pantstack(&examples(), &["config", "api", "--env", "preview-42"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("maxCapacity "))
        .map(str::to_string)
        .expect("maxCapacity line");
    assert!(
        line.contains(" 2 ") && line.ends_with("preview default"),
        "{line}"
    );
}

/// ECS rounds `maxPercent` down: with 150 % a service at 1 task may never run
/// a second, and with `minHealthyPercent` 100 cannot stop its only one. `check`
/// refuses that in the environment where it happens, and a preview is never
/// lowered into it (it keeps 2 tasks).
#[test]
fn a_deployment_without_room_at_the_fewest_tasks_is_refused_and_previews_avoid_it() {
    let dir = tempdir("deploy-room");
    copy_dir(&examples(), &dir);
    let infra = &dir.join("modules/reports/infrastructure");
    let manifest = infra.join("pantstack.yaml");
    let text = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace(
            "scaling:\n  min: 1\n  max: 2\n",
            "deployment:\n  max_percent: 150\nscaling:\n  min: 3\n  max: 6\n",
        );
    assert!(text.contains("max_percent: 150"), "{text}");
    std::fs::write(&manifest, text).expect("write");
    let test_stack = |min: u32| {
        std::fs::write(
            infra.join("Pulumi.test.yaml"),
            format!("config:\n  aws:region: us-east-1\n  pantstack:environment: test\n  pantstack:minCapacity: {min}\n  pantstack:maxCapacity: 2\n"),
        )
        .expect("write");
    };
    test_stack(2);
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = pantstack(
        &dir,
        &[
            "config",
            "reports",
            "--env",
            "preview-4",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let get = |key: &str| {
        v["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|s| s["key"] == key)
            .map(|s| (s["value"].clone(), s["source"]["layer"].clone()))
            .expect("setting")
    };
    assert_eq!(get("minCapacity"), (2.into(), "preview".into()));
    assert_eq!(get("maxCapacity"), (2.into(), "preview".into()));

    test_stack(1);
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("deployment-stuck")
            && err.contains("at 1 task(s) (`scaling.min` in environment `test`), minHealthyPercent 100 and maxPercent 150 leave ECS no room to replace a task")
            && err.contains("or `scaling.min` at least 2"),
        "{err}"
    );
    assert!(!err.contains("environment `prod`"), "prod runs 2: {err}");
}

/// A stack file named for one pull request's preview is refused, pointing to
/// the one file every preview reads.
#[test]
fn a_stack_file_for_one_preview_points_to_pulumi_preview_yaml() {
    let dir = tempdir("preview-stack");
    copy_dir(&examples(), &dir);
    let infra = dir.join("modules/reports/infrastructure");
    let body = |env: &str| {
        format!(
            "config:\n  aws:region: us-east-1\n  pantstack:environment: {env}\n  pantstack:maxCapacity: 3\n"
        )
    };
    std::fs::write(infra.join("Pulumi.preview-42.yaml"), body("preview-42")).expect("write");
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("every preview reads `Pulumi.preview.yaml` (with `pantstack:environment: preview`): rename the file"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(infra.join("Pulumi.preview-42.yaml")).expect("rm");
    std::fs::write(infra.join("Pulumi.preview.yaml"), body("preview-42")).expect("write");
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("write `pantstack:environment: preview`: every preview reads this file")
            && !err.contains("rename the file to `Pulumi.preview-42.yaml`"),
        "{err}"
    );
    std::fs::write(infra.join("Pulumi.preview.yaml"), body("preview")).expect("write");
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn config_cli_overrides_win_and_are_validated() {
    let o = pantstack(
        &examples(),
        &[
            "config",
            "api",
            "--env",
            "test",
            "--set",
            "maxCapacity=7",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let max = v["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["key"] == "maxCapacity")
        .expect("max");
    assert_eq!(max["value"], 7);
    assert_eq!(max["source"]["layer"], "cli");
    let min = v["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["key"] == "minCapacity")
        .expect("min");
    assert_eq!(min["source"]["layer"], "stack");
    assert_eq!(
        min["source"]["file"],
        "modules/api/infrastructure/Pulumi.test.yaml"
    );
    assert_eq!(min["source"]["line"], 4);

    let o = pantstack(
        &examples(),
        &["config", "api", "--env", "test", "--set", "maxCapacty=7"],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("did you mean `maxCapacity`?"),
        "{}",
        stderr(&o)
    );
    let o = pantstack(
        &examples(),
        &["config", "api", "--env", "test", "--set", "port=99999"],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("between 1 and 65535"), "{}", stderr(&o));
    let o = pantstack(
        &examples(),
        &["config", "api", "--env", "test", "--set", "minCapacity=20"],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("minCapacity (20) is greater than maxCapacity (3)"),
        "{}",
        stderr(&o)
    );
    let o = pantstack(&examples(), &["config", "apx", "--env", "test"]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("did you mean `api`?"), "{}", stderr(&o));
    let o = pantstack(&examples(), &["config", "api", "--env", "prd"]);
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("did you mean `prod`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_of_the_foundation() {
    let o = pantstack(
        &examples(),
        &["config", "foundation", "--env", "prod", "--format", "json"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let nat = v["settings"]
        .as_array()
        .expect("s")
        .iter()
        .find(|s| s["key"] == "natGateways")
        .expect("nat");
    assert_eq!(nat["value"], "per_az");
    assert_eq!(v["region"], "us-east-1");
}

#[test]
fn tags_follow_the_seed_strategy() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["tag", "api", "--branch", "dev", "--sha", "abc1234def5678"],
            "api-dev-abc1234",
        ),
        (
            &[
                "tag",
                "api",
                "--branch",
                "feature/Login",
                "--sha",
                "0123456789abcdef",
            ],
            "api-feature-login-0123456",
        ),
        (
            &[
                "tag", "api", "--worker", "--branch", "dev", "--sha", "ABC1234",
            ],
            "api-worker-dev-abc1234",
        ),
        (&["tag", "api", "--version", "1.2.3"], "api-v1.2.3"),
        (
            &["tag", "api", "--version", "v2.0.0-rc.1"],
            "api-v2.0.0-rc.1",
        ),
    ];
    for (args, want) in cases {
        let o = pantstack(&examples(), args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o).trim(), *want, "{args:?}");
    }
    let long = format!("feature/{}", "x".repeat(200));
    let o = pantstack(
        &examples(),
        &[
            "tag",
            "api",
            "--worker",
            "--branch",
            &long,
            "--sha",
            "0123456789",
        ],
    );
    let t = stdout(&o);
    assert_eq!(t.trim().len(), 128);
    let bad: &[(&[&str], i32, &str)] = &[
        (
            &["tag", "api", "--version", "1.2"],
            2,
            "not a semantic version",
        ),
        (
            &["tag", "api", "--branch", "dev", "--sha", "xyz"],
            2,
            "not a commit hash",
        ),
        (&["tag", "Api", "--version", "1.0.0"], 2, "lowercase"),
        (&["tag", "web", "--version", "1.0.0"], 3, "no service `web`"),
    ];
    for (args, want_code, want) in bad {
        let o = pantstack(&examples(), args);
        assert_eq!(code(&o), *want_code, "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = pantstack(
        &examples(),
        &["tag", "api", "--version", "1.2.3", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["image"], "shop:api-v1.2.3");
}

#[test]
fn init_then_check_then_env_is_the_quick_start() {
    let dir = tempdir("init");
    let o = pantstack(&dir, &["init", "demo"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let demo = dir.join("demo");
    let o = pantstack(&demo, &["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "no warnings either");
    let o = pantstack(&demo, &["env", "--branch", "dev"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("environment  test"), "{out}");
    assert!(out.contains("region       us-east-1"), "{out}");
    assert!(out.contains("capacity 1..3"), "{out}");
    // The seed's stack file, exactly.
    let stack = std::fs::read_to_string(demo.join("modules/api/infrastructure/Pulumi.test.yaml"))
        .expect("read");
    assert_eq!(
        stack,
        "config:\n  aws:region: us-east-1\n  pantstack:environment: test\n  pantstack:minCapacity: 1\n  pantstack:maxCapacity: 3\n"
    );
    // Adding services keeps the monorepo valid.
    for (name, kind) in [("billing", "http"), ("mailer", "worker")] {
        let o = pantstack(&demo, &["new", name, "--kind", kind]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = pantstack(&demo, &["check", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["services"],
        serde_json::json!(["api", "billing", "mailer"])
    );
    assert_eq!(v["warnings"], 0);
    // Bad names and existing directories are refused.
    let o = pantstack(&demo, &["new", "Billing_API", "--kind", "http"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("try `billing-api`"), "{}", stderr(&o));
    let o = pantstack(&demo, &["new", "billing", "--kind", "http"]);
    assert_eq!(code(&o), 2);
    let o = pantstack(&dir, &["init", "demo"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not empty"));
}

#[test]
fn init_writes_the_scaffold_service_code() {
    let dir = tempdir("init-code");
    let o = pantstack(&dir, &["init", "shop", "--github", "acme/shop"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let manifest = std::fs::read_to_string(dir.join("shop/stack/infra/foundation/pantstack.yaml"))
        .expect("read");
    assert!(manifest.contains("owner: acme") && manifest.contains("repo: shop"));
    let code_written =
        std::fs::read_to_string(dir.join("shop/modules/api/src/main.rs")).expect("read");
    // init's service is `api`: exactly the example's code, which CI builds, tests
    // and runs end to end (tests/scaffold.rs runs the scaffold itself).
    let example =
        std::fs::read_to_string(examples().join("modules/api/src/main.rs")).expect("read");
    assert_eq!(code_written, example);
    let cargo = std::fs::read_to_string(dir.join("shop/modules/api/Cargo.toml")).expect("read");
    for dep in ["aws-sdk-sqs", "aws-sdk-s3", "aws-config", "tokio"] {
        assert!(cargo.contains(dep), "{cargo}");
    }
}

#[test]
fn every_command_has_help_with_examples() {
    for cmd in [
        "check",
        "env",
        "config",
        "tag",
        "synth",
        "init",
        "new",
        "completions",
    ] {
        let o = pantstack(&examples(), &[cmd, "--help"]);
        assert_eq!(code(&o), 0, "{cmd}");
        assert!(
            stdout(&o).contains("Examples:"),
            "{cmd} --help has no examples"
        );
    }
    let o = pantstack(&examples(), &["--help"]);
    assert!(stdout(&o).contains("Exit codes:"));
}

#[test]
fn bad_arguments_exit_2() {
    let o = pantstack(&examples(), &["env", "--branch", "dev", "--pr", "3"]);
    assert_eq!(code(&o), 2);
    let o = pantstack(&examples(), &["frobnicate"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let o = pantstack(&examples(), &["completions", shell]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("pantstack"), "{shell}");
        assert!(stdout(&o).contains("config"), "{shell}");
    }
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let o = pantstack(&fixture("yaml-bomb"), &["check"]);
    assert!(!stderr(&o).contains('\x1b'));
    let o = pantstack(&fixture("yaml-bomb"), &["check", "--color", "always"]);
    assert!(stderr(&o).contains("\x1b[1;31merror"));
}

/// The seed's own example files, verbatim, in a minimal monorepo.
#[test]
fn the_seeds_files_parse_exactly_as_written() {
    let dir = tempdir("seed");
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "stack/infra/foundation/pantstack.yaml",
        "project: pantstack\nregion: us-east-1\nenvironments:\n  test:\n    branch: dev\n  prod:\n    branch: main\n",
    );
    w(
        "stack/infra/foundation/Pulumi.yaml",
        "name: pantstack-foundation\nruntime: python\ndescription: Foundation\n",
    );
    w(
        "modules/api/infrastructure/Pulumi.yaml",
        "# Pulumi.yaml\nname: pantstack-api\nruntime: python\ndescription: API service infrastructure\n",
    );
    w(
        "modules/api/infrastructure/Pulumi.test.yaml",
        "# Pulumi.test.yaml\nconfig:\n  aws:region: us-east-1\n  pantstack:environment: test\n  pantstack:minCapacity: 1\n  pantstack:maxCapacity: 3\n",
    );
    w(
        "modules/api/infrastructure/pantstack.yaml",
        "http:\n  port: 8080\n",
    );
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "no warnings");
    let o = pantstack(
        &dir,
        &["config", "api", "--env", "test", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["region"], "us-east-1");
    assert_eq!(v["environment"], "test");
    let get = |k: &str| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(get("minCapacity")["value"], 1);
    assert_eq!(get("maxCapacity")["value"], 3);
    assert_eq!(get("maxCapacity")["source"]["line"], 6);
}

#[test]
fn tag_outputs() {
    let mut out = String::new();
    for args in [
        vec!["tag", "api", "--branch", "dev", "--sha", "abc1234def"],
        vec!["tag", "api", "--branch", "main", "--sha", "DEF4567890"],
        vec![
            "tag",
            "api",
            "--worker",
            "--branch",
            "dev",
            "--sha",
            "0a1b2c3d4e",
        ],
        vec![
            "tag",
            "api",
            "--branch",
            "feature/Login",
            "--sha",
            "0123456789abcdef",
        ],
        vec![
            "tag",
            "api",
            "--branch",
            "Fix/#42 über-bug!",
            "--sha",
            "0123456789abcdef",
        ],
        vec!["tag", "api", "--version", "1.2.3"],
        vec!["tag", "api", "--worker", "--version", "1.0.0-rc.1+build.5"],
        vec!["tag", "api", "--version", "1.2"],
        vec!["tag", "api", "--branch", "dev", "--sha", "12345"],
    ] {
        let o = pantstack(&examples(), &args);
        out.push_str(&format!(
            "$ pantstack {}\n[exit {}] {}{}\n",
            args.join(" "),
            code(&o),
            stdout(&o),
            stderr(&o)
        ));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn synth_writes_templates_and_the_plan() {
    let dir = tempdir("synth");
    let out = dir.join("cfn");
    let out_s = out.to_str().expect("utf-8");
    let o = pantstack(&examples(), &["synth", "--env", "test", "--out", out_s]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("1. shop-shared"), "{text}");
    assert!(text.contains("3. shop-test-api"), "{text}");
    assert!(
        text.contains("parameters: ImageTag, WorkerImageTag"),
        "{text}"
    );
    assert!(text.contains("/shop/test/api/API_TOKEN"), "{text}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "shop-shared.json",
            "shop-test-api.json",
            "shop-test-foundation.json",
            "shop-test-reports.json",
            "shop-test-service-connect.json",
            "stacks.json"
        ]
    );
    let first: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(out.join(n)).expect("read"))
        .collect();
    for bytes in &first {
        serde_json::from_slice::<serde_json::Value>(bytes).expect("valid JSON");
    }
    // A template left from an earlier run (a deleted service) is removed; the rest
    // is rewritten byte for byte.
    std::fs::write(out.join("shop-test-gone.json"), "{}").expect("write");
    let o = pantstack(&examples(), &["synth", "--env", "test", "--out", out_s]);
    assert_eq!(code(&o), 0);
    assert!(!out.join("shop-test-gone.json").exists());
    for (n, bytes) in names.iter().zip(&first) {
        assert_eq!(
            &std::fs::read(out.join(n)).expect("read"),
            bytes,
            "{n} changed"
        );
    }
}

#[test]
fn synth_defaults_to_the_project_directory_and_resolves_previews() {
    let dir = tempdir("synth-default");
    copy_dir(&examples(), &dir.join("repo"));
    let repo = dir.join("repo");
    let o = pantstack(&repo, &["synth", "--pr", "42", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["environment"], "preview-42");
    let stacks: Vec<&str> = v["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        stacks,
        [
            "shop-shared",
            "shop-preview-foundation",
            "shop-preview-42-api",
            "shop-preview-42-reports",
            "shop-preview-42-service-connect"
        ]
    );
    assert!(
        repo.join(".pantstack/synth/preview-42/shop-preview-42-api.json")
            .is_file()
    );
}

#[test]
fn synth_refuses_what_aws_cannot_run() {
    let o = pantstack(
        &fixture("synth-errors"),
        &[
            "synth",
            "--env",
            "test",
            "--out",
            "/nonexistent/never-written",
        ],
    );
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(stderr(&o));
    assert!(!Path::new("/nonexistent/never-written").exists());
}

#[test]
fn synth_argument_errors() {
    let o = pantstack(&examples(), &["synth", "--env", "staging"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("staging"), "{}", stderr(&o));
    let o = pantstack(&examples(), &["synth", "--env", "test", "--region", "mars"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("--region mars"), "{}", stderr(&o));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `pantstack completions bash | head -0`: the reader is gone before the
    // first write; the command must end without a panic (exit 101 before).
    for args in [
        &["completions", "bash"][..],
        &["check", "--format", "json"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pantstack"))
            .args(args)
            .current_dir(examples())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn from_a_repository_that_holds_one_monorepo_below_it_commands_find_it() {
    // This repository's root: the example is in ./examples.
    let o = pantstack(&repo_root(), &["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("using the monorepo in ./examples"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        stderr(&o).matches("note:").count(),
        1,
        "said once: {}",
        stderr(&o)
    );
    // Two below: no guess.
    let dir = tempdir("two-below");
    copy_dir(&examples(), &dir.join("a"));
    copy_dir(&examples(), &dir.join("b"));
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("a, b") && stderr(&o).contains("--root"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn per_environment_variables_apply_on_both_targets_and_are_checked() {
    let dir = tempdir("env-vars");
    copy_dir(&examples(), &dir);
    let manifest = dir.join("modules/api/infrastructure/pantstack.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!(
            "{text}environments:\n  prod:\n    variables:\n      LOG_LEVEL: warn\n      SENTRY_SAMPLE: \"0.1\"\n  preview:\n    variables:\n      LOG_LEVEL: debug\n"
        ),
    )
    .unwrap();
    let var = |env: &str, name: &str| -> Option<String> {
        let o = pantstack(&dir, &["config", "api", "--env", env, "--format", "json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .and_then(|x| x["value"].as_str().map(str::to_string))
    };
    assert_eq!(var("test", "LOG_LEVEL").as_deref(), Some("info"));
    assert_eq!(var("prod", "LOG_LEVEL").as_deref(), Some("warn"));
    assert_eq!(var("prod", "SENTRY_SAMPLE").as_deref(), Some("0.1"));
    assert_eq!(var("test", "SENTRY_SAMPLE"), None);
    assert_eq!(var("preview-12", "LOG_LEVEL").as_deref(), Some("debug"));
    // The task definition of prod carries the same values.
    let out = dir.join("out");
    let o = pantstack(
        &dir,
        &["synth", "--env", "prod", "--out", out.to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let template = std::fs::read_to_string(out.join("shop-prod-api.json")).expect("api's template");
    assert!(
        template.contains(r#"{"Name":"LOG_LEVEL","Value":"warn"}"#),
        "prod's task definition gets prod's value"
    );
    // An environment the foundation does not declare is an error at its line.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("  prod:\n    variables", "  prdo:\n    variables"),
    )
    .unwrap();
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 1);
    let err = stdout(&o) + &stderr(&o);
    assert!(err.contains("no environment `prdo`"), "{err}");
    assert!(err.contains("did you mean `prod`"), "{err}");
    assert!(err.contains("pantstack.yaml:"), "file and line: {err}");
}

#[test]
fn up_on_the_production_branch_needs_the_environment_named() {
    let dir = tempdir("up-prod");
    copy_dir(&examples(), &dir);
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .current_dir(&*dir)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "-c",
        "user.email=t@example.com",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "start",
    ]);
    let o = pantstack(&dir, &["up", "--detach"]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("--env prod"), "{}", stderr(&o));
    assert!(
        !dir.join(".pantstack/local/prod/state.json").exists(),
        "nothing started"
    );
}

#[test]
fn grants_are_checked_against_services_and_references() {
    let dir = tempdir("grants");
    copy_dir(&examples(), &dir);
    // The api alone: this test writes its own `reports`.
    std::fs::remove_dir_all(dir.join("modules/reports")).unwrap();
    let api = dir.join("modules/api/infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&api).unwrap();
    std::fs::write(
        &api,
        t.replace(
            "    # The reports service may read the job records (modules/reports).\n    grants: { reports: read }\n",
            "",
        ),
    )
    .unwrap();
    // A second service that refers to api's queue and bucket.
    let reports = dir.join("modules/reports");
    copy_dir(&dir.join("modules/api"), &reports);
    let manifest = reports.join("infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&manifest).unwrap();
    let t = t.replace("service: api\n", "service: reports\n").replace(
        "  RESULTS_BUCKET: ${bucket:results}\n",
        "  RESULTS_BUCKET: ${bucket:results}\n  API_JOBS: ${queue:api.jobs}\n  API_FILES: ${bucket:api.results}\n  NOPE: ${bucket:api.nothing}\n",
    );
    std::fs::write(&manifest, t).unwrap();
    // (api: its manifest, above)
    let t = std::fs::read_to_string(&api).unwrap();
    // The queue grants a service that does not exist and an unknown access level;
    // the bucket grants nothing yet.
    std::fs::write(
        &api,
        t.replace(
            "    visibility_timeout: 60s\n",
            "    visibility_timeout: 60s\n    grants:\n      reprts: send\n      reports: sned\n",
        ),
    )
    .unwrap();
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("no service `reprts`") && out.contains("did you mean `reports`?"),
        "{out}"
    );
    assert!(
        out.contains("unknown access `sned`") && out.contains("did you mean `send`?"),
        "{out}"
    );
    assert!(
        out.contains("`api` does not grant `reports` its queue `jobs`"),
        "{out}"
    );
    assert!(
        out.contains("grants: { reports: read }"),
        "the grant to add: {out}"
    );
    assert!(out.contains("`api` declares no such bucket"), "{out}");
    assert!(
        out.contains("modules/reports/infrastructure/pantstack.yaml:"),
        "file:line: {out}"
    );
    // A secret taken from api without api's grant.
    let t = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        t.replace(
            "  API_TOKEN:\n    rotation_days: 90\n    description: Token clients present to submit jobs\n",
            "  API_TOKEN:\n    from: api\n",
        ),
    )
    .unwrap();
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("`api` does not grant `reports` its secret `API_TOKEN`"),
        "{out}"
    );
    assert!(out.contains("grants: { reports: read }"), "{out}");
    let t = std::fs::read_to_string(&api).unwrap();
    std::fs::write(
        &api,
        t.replace(
            "  API_TOKEN:\n    rotation_days: 90\n",
            "  API_TOKEN:\n    grants: { reports: read }\n    rotation_days: 90\n",
        ),
    )
    .unwrap();
    // Fixed: clean, and a grant nobody uses is a warning.
    let t = std::fs::read_to_string(&api).unwrap();
    let t = t
        .replace(
            "      reprts: send\n      reports: sned\n",
            "      reports: send-consume\n",
        )
        .replace(
            "    versioning: true\n",
            "    versioning: true\n    grants:\n      reports: read\n",
        );
    std::fs::write(&api, t).unwrap();
    let t = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, t.replace("  NOPE: ${bucket:api.nothing}\n", "")).unwrap();
    let o = pantstack(&dir, &["check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let t = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, t.replace("  API_JOBS: ${queue:api.jobs}\n", "")).unwrap();
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 0, "{out}");
    assert!(
        out.contains("`reports` is granted queues.jobs but never refers to it"),
        "{out}"
    );
}

#[test]
fn calls_name_services_that_serve_http() {
    let dir = tempdir("calls");
    copy_dir(&fixture("synth-varied"), &dir);
    let web = dir.join("modules/web/infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&web).unwrap();
    std::fs::write(
        &web,
        t.replace("calls: [store]", "calls: [stroe, mailer, web]")
            .replace("variables:\n", "variables:\n  STORE_URL: x\n"),
    )
    .unwrap();
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("no service `stroe`") && out.contains("did you mean `store`?"),
        "{out}"
    );
    assert!(out.contains("`mailer` serves no HTTP"), "{out}");
    assert!(out.contains("`web` calls itself"), "{out}");
    let t = std::fs::read_to_string(&web).unwrap();
    std::fs::write(
        &web,
        t.replace("calls: [stroe, mailer, web]", "calls: [store]"),
    )
    .unwrap();
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("`STORE_URL` is set by `calls: [store]`"),
        "{out}"
    );
}

#[test]
fn calls_and_grants_that_cannot_deploy_are_refused_by_check() {
    let dir = tempdir("import-cycles");
    copy_dir(&fixture("synth-varied"), &dir);
    let edit = |service: &str, from: &str, to: &str| {
        let p = dir.join(format!("modules/{service}/infrastructure/pantstack.yaml"));
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(from), "{from} not in {service}");
        std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
    };
    // web calls store; store calling web back is fine (on AWS the rules of both
    // are in the Service Connect stack, after both service stacks).
    edit("store", "http:\n", "calls: [web]\nhttp:\n");
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 0, "{out}");
    let o = pantstack(&dir, &["synth", "--env", "test"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Buckets taken both ways (mailer reads store's, store mailer's) cannot deploy.
    edit(
        "mailer",
        "queues:\n",
        "buckets:\n  drafts:\n    grants: { store: read }\nqueues:\n",
    );
    edit(
        "store",
        "  DOCUMENTS_BUCKET: ${bucket:documents}",
        "  DOCUMENTS_BUCKET: ${bucket:documents}\n  DRAFTS_BUCKET: ${bucket:mailer.drafts}",
    );
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("form a cycle of bucket grants"), "{out}");
    assert!(out.contains("pantstack.yaml:"), "with file:line: {out}");
    edit("store", "\n  DRAFTS_BUCKET: ${bucket:mailer.drafts}", "");
    edit(
        "mailer",
        "buckets:\n  drafts:\n    grants: { store: read }\n",
        "",
    );
    edit("store", "calls: [web]\n", "calls: [web, web]\n");
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert!(out.contains("`web` is listed twice in `calls`"), "{out}");
    edit("store", "calls: [web, web]\n", "");
    // A secret named as a call's variable; a self-qualified reference is one's own.
    edit("web", "secrets:\n", "secrets:\n  STORE_URL: {}\n");
    edit(
        "store",
        "  DOCUMENTS_BUCKET: ${bucket:documents}",
        "  DOCUMENTS_BUCKET: ${bucket:store.documents}",
    );
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("`STORE_URL` is set by `calls: [store]`"),
        "{out}"
    );
    assert!(
        !out.contains("store.documents"),
        "a service's own resource by its full name: {out}"
    );
    // Names that would collide across services.
    edit("web", "  STORE_URL: {}\n", "");
    edit("mailer", "  bounces:\n", "  x-bounces:\n");
    std::fs::create_dir_all(dir.join("modules/mailer-x/infrastructure")).unwrap();
    std::fs::write(
        dir.join("modules/mailer-x/infrastructure/pantstack.yaml"),
        "service: mailer-x\nworker:\n  queue: bounces\nqueues:\n  bounces: {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("modules/mailer-x/infrastructure/Pulumi.yaml"),
        "name: varied-mailer-x\nruntime: python\n",
    )
    .unwrap();
    let o = pantstack(&dir, &["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("gets the same name as a queue of `mailer`"),
        "{out}"
    );
}

#[test]
fn each_preview_exports_its_own_names() {
    let dir = tempdir("preview-exports");
    copy_dir(&fixture("synth-varied"), &dir);
    let mut exports = Vec::new();
    for pr in ["7", "8"] {
        let out = dir.join(format!("out-{pr}"));
        let o = pantstack(&dir, &["synth", "--pr", pr, "--out", out.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let web =
            std::fs::read_to_string(out.join(format!("varied-preview-{pr}-store.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&web).unwrap();
        let names: Vec<String> = v["Outputs"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|o| o["Export"]["Name"].as_str().map(str::to_string))
            .collect();
        assert!(!names.is_empty());
        assert!(
            names.iter().all(|n| n.contains(&format!("preview-{pr}-"))),
            "{names:?}"
        );
        exports.push(names);
    }
    assert!(
        exports[0].iter().all(|n| !exports[1].contains(n)),
        "{exports:?}"
    );
}

/// The aws target's flags and variable are refused where they mean nothing, before
/// anything is contacted.
#[test]
fn aws_only_flags_need_the_aws_target() {
    for args in [
        &["down", "--env", "test", "--images"][..],
        &["down", "--env", "test", "--yes"][..],
        &["down", "--env", "test", "--allow-prod"][..],
        &["down", "--env", "test", "--buckets"][..],
        &["deploy", "--env", "test", "--prune"][..],
        &["status", "--env", "test", "--profile", "admin"][..],
        &["deploy", "api", "--region", "eu-west-1"][..],
        &["secrets", "list", "--region", "eu-west-1"][..],
    ] {
        let o = pantstack(&examples(), args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--target aws"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // --prune is for a whole environment.
    let o = pantstack(
        &examples(),
        &[
            "deploy", "api", "--prune", "--target", "aws", "--env", "test",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("whole environment"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .arg("--root")
        .arg(examples())
        .args(["status", "--env", "test"])
        .env("PANTSTACK_TARGET", "bogus")
        .output()
        .expect("run");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("`local` and `aws`"), "{}", stderr(&o));
    // The local deploy still needs its service.
    let o = pantstack(&examples(), &["deploy", "--env", "test"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

/// `reports-worker` names no unit when `reports` has no worker: exit 3 on the aws
/// target as on the local one, before anything is contacted.
#[test]
fn a_worker_of_a_service_without_one_is_unknown() {
    let o = Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .arg("--root")
        .arg(examples())
        .args(["logs", "reports-worker", "--target", "aws", "--env", "test"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run");
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`reports` has no worker"),
        "{}",
        stderr(&o)
    );
}

/// A value typed on the command line after a secret's name is refused without
/// being repeated (terminal scrollback, CI logs), on both targets and for every
/// kind of stray argument; help and missing arguments still read as usual.
#[test]
fn a_secret_typed_on_the_command_line_is_never_echoed() {
    let leak = "hunter2-s3cr3t-value";
    for args in [
        vec!["secrets", "set", "api", "API_TOKEN", leak],
        vec![
            "secrets",
            "set",
            "api",
            "API_TOKEN",
            "--target",
            "aws",
            leak,
        ],
        vec!["secrets", "rotate", "api", "API_TOKEN", leak],
        vec![
            "secrets",
            "set",
            "api",
            "API_TOKEN",
            &format!("--value={leak}"),
        ],
        vec!["secrets", "set", "api", "API_TOKEN", "--target", leak],
    ] {
        let o = pantstack(&examples(), &args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(
            !out.contains(leak) && !err.contains("s3cr3t"),
            "{args:?} echoed the value: {err}"
        );
        assert!(err.contains("standard input"), "{args:?}: {err}");
    }
    // Parsed, but a value where a name belongs: refused without repeating it.
    let nv = format!("API_TOKEN={leak}");
    for args in [
        vec!["secrets", "set", "api", nv.as_str(), "--env", "test"],
        vec!["secrets", "get", "api", nv.as_str(), "--env", "test"],
        vec!["secrets", "set", leak, "API_TOKEN", "--env", "test"],
        vec![
            "secrets",
            "rm",
            leak,
            "API_TOKEN",
            "--target",
            "aws",
            "--env",
            "test",
        ],
    ] {
        let o = pantstack(&examples(), &args);
        assert_ne!(code(&o), 0, "{args:?}");
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(
            !out.contains("s3cr3t") && !err.contains("s3cr3t"),
            "{args:?} echoed the value: {err}"
        );
        assert!(err.contains("standard input"), "{args:?}: {err}");
    }
    // An environment name is never a path (it names directories and key files).
    let dir = tempdir("secrets-env-path");
    copy_dir(&examples(), &dir.join("repo"));
    for env in ["../../escaped", "nope"] {
        let o = pantstack(&dir.join("repo"), &["secrets", "list", "--env", env]);
        assert_ne!(code(&o), 0, "--env {env}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("test, prod") || stderr(&o).contains("environment"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!dir.join("escaped").exists() && !dir.join("repo/.pantstack/local/nope").exists());
    // Help and a missing name still say what clap says.
    let o = pantstack(&examples(), &["secrets", "set", "api"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("<NAME>"), "{}", stderr(&o));
    let o = pantstack(&examples(), &["secrets", "set", "--help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("standard input"), "{}", stdout(&o));
}

/// `changed` names the services whose inputs a range of commits touched: their
/// module, their image context, the foundation (every service); nothing else.
#[test]
fn changed_names_the_services_a_commit_range_touches() {
    let top = tempdir("changed");
    // The monorepo in a subdirectory of the git repository, as in this one.
    let dir = top.join("mono");
    copy_dir(&examples(), &dir);
    let _ = std::fs::remove_dir_all(dir.join(".pantstack"));
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .current_dir(&*top)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git");
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        String::from_utf8_lossy(&st.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "dev"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);
    let first = git(&["rev-parse", "HEAD"]);
    let commit = |path: &str, msg: &str| {
        let p = top.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(&p).unwrap_or_default();
        text.push_str(if path.ends_with(".rs") {
            "\n// changed\n"
        } else {
            "\n# changed\n"
        });
        std::fs::write(&p, text).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", msg]);
        git(&["rev-parse", "HEAD"])
    };
    let changed = |base: &str| {
        let o = pantstack(&dir, &["changed", "--base", base]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        (stdout(&o), stderr(&o))
    };
    let c1 = commit("mono/modules/reports/src/main.rs", "reports");
    assert_eq!(changed(&first).0, "reports\n");
    // api's manifest grants reports its bucket: its infrastructure touches both;
    // its code only itself.
    let ca = commit(
        "mono/modules/api/infrastructure/pantstack.yaml",
        "api infra",
    );
    assert_eq!(
        changed(&c1).0,
        "api\nreports\n",
        "a grant's grantee is redeployed too"
    );
    let c1 = commit("mono/modules/api/src/main.rs", "api code");
    assert_eq!(changed(&ca).0, "api\n");
    let c2 = commit("mono/README.md", "docs");
    assert_eq!(changed(&c1).0, "", "a README touches no service");
    let c3 = commit("README.top.md", "outside the monorepo");
    assert_eq!(changed(&c2).0, "");
    commit("mono/stack/infra/foundation/pantstack.yaml", "foundation");
    assert_eq!(
        changed(&c3).0,
        "api\nreports\n",
        "the foundation touches every service"
    );
    assert_eq!(changed(&first).0, "api\nreports\n");
    // A new branch's `before` and a commit this clone lacks: every service, said why.
    let (all, why) = changed("0000000000000000000000000000000000000000");
    assert_eq!(all, "api\nreports\n");
    assert!(why.contains("new branch"), "{why}");
    let (all, why) = changed("1234567890abcdef1234567890abcdef12345678");
    assert_eq!(all, "api\nreports\n");
    assert!(why.contains("not in this clone"), "{why}");
    let o = pantstack(&dir, &["changed", "--base", &c1, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["services"], serde_json::json!(["api", "reports"]));
    assert_eq!(v["files"], 2, "files outside the monorepo are not counted");
    // An option smuggled in as a revision is refused.
    let o = pantstack(&dir, &["changed", "--base=--output=/tmp/x"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));

    // `workflows` writes into the git root's .github/workflows, paths relative to it.
    let o = pantstack(&dir, &["workflows"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let deploy = std::fs::read_to_string(top.join(".github/workflows/pantstack-deploy.yml"))
        .expect("deploy");
    assert!(
        deploy.contains("      - 'mono/modules/api/**'\n"),
        "{deploy}"
    );
    assert!(
        deploy.contains("        working-directory: 'mono'\n"),
        "{deploy}"
    );
    let o = pantstack(&dir, &["workflows", "--check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::remove_file(top.join(".github/workflows/pantstack-preview.yml")).unwrap();
    let o = pantstack(&dir, &["workflows", "--check"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("pantstack-preview.yml (missing)"),
        "{}",
        stderr(&o)
    );
    // No GitHub repository: no CI role to assume, said with the fix.
    let m = dir.join("stack/infra/foundation/pantstack.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    let without: String = text
        .lines()
        .filter(|l| {
            !l.starts_with("github:") && !l.starts_with("  owner:") && !l.starts_with("  repo:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&m, without).unwrap();
    let o = pantstack(&dir, &["workflows"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("github:"), "{}", stderr(&o));
}

/// Answers Service Quotas' GetServiceQuota on 127.0.0.1 (one request per
/// connection): the IAM roles quota is 2 in this account and both Fargate
/// vCPU quotas 4,000, every other quota unknown (`NoSuchResourceException`).
/// Returns its URL.
fn service_quotas_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut s) = stream else { return };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let input: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = input["QuotaCode"].as_str().unwrap_or_default();
            let (status, answer) = if code == "L-FE177D64" {
                (
                    "200 OK",
                    serde_json::json!({ "Quota": { "ServiceCode": "iam", "QuotaCode": "L-FE177D64", "Value": 2.0 } }),
                )
            } else if input["ServiceCode"] == "fargate"
                && ["L-3032A538", "L-36FBB829"].contains(&code)
            {
                (
                    "200 OK",
                    serde_json::json!({ "Quota": { "ServiceCode": "fargate", "QuotaCode": code, "Value": 4000.0 } }),
                )
            } else {
                (
                    "400 Bad Request",
                    serde_json::json!({ "__type": "NoSuchResourceException", "Message": "unknown quota" }),
                )
            };
            let body = answer.to_string();
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn quotas_on_aws(endpoint: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .current_dir(examples())
        .args(["quotas", "--target", "aws", "--format", "json"])
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("PANTSTACK_AWS_CALL_TIMEOUT_S", "5")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run pantstack")
}

/// `quotas --target aws` takes the account's applied quotas from Service
/// Quotas (here a loopback server where the account has 2 IAM roles: exceeded,
/// exit 1; and 4,000 Fargate vCPUs: they fit), keeps the defaults of the
/// quotas it does not answer with the reason, and fails nothing when Service
/// Quotas cannot be reached (the defaults then apply: the example's Fargate
/// vCPUs exceed the 6 a new account gets, and the text says by how much).
#[test]
fn quotas_read_the_accounts_applied_values_where_reachable() {
    let o = quotas_on_aws(&service_quotas_server());
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let roles = v["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|q| q["quota"] == "IAM roles")
        .expect("roles")
        .clone();
    assert_eq!(roles["source"], "account", "{roles:#}");
    assert_eq!(roles["limit"], 2);
    assert_eq!(roles["fits"], false);
    assert_eq!(v["exceeded"], 1, "{v:#}");
    assert_eq!(v["from_account"], 3, "{v:#}");
    for code in ["fargate/L-3032A538", "fargate/L-36FBB829"] {
        let f = v["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .find(|q| q["code"] == code)
            .expect("fargate")
            .clone();
        assert_eq!(
            (
                f["source"].as_str(),
                f["limit"].as_u64(),
                f["fits"].as_bool()
            ),
            (Some("account"), Some(4000), Some(true)),
            "{f:#}"
        );
    }
    let vpcs = v["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|q| q["quota"] == "VPCs")
        .expect("vpcs")
        .clone();
    assert_eq!(
        (vpcs["source"].as_str(), vpcs["limit"].as_u64()),
        (Some("default"), Some(5))
    );
    assert!(
        vpcs["note"]
            .as_str()
            .is_some_and(|n| n.contains("NoSuchResourceException")),
        "{vpcs:#}"
    );
    assert!(
        stderr(&o).contains("1 quota(s) would be exceeded"),
        "{}",
        stderr(&o)
    );

    // Nothing listens: every quota keeps its default (saying why); the
    // example fits all but the Fargate vCPUs, which 6 do not cover.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let o = quotas_on_aws(&format!("http://127.0.0.1:{port}"));
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["from_account"], 0);
    assert_eq!(v["exceeded"], 1, "{v:#}");
    for q in v["quotas"].as_array().expect("quotas") {
        assert_eq!(q["source"], "default", "{q:#}");
        assert!(
            q["note"].as_str().is_some(),
            "every default says why: {q:#}"
        );
        assert_eq!(
            q["fits"] == false,
            q["code"] == "fargate/L-36FBB829",
            "{q:#}"
        );
    }

    // The text report: which quota, by how much at the minimum and the
    // maximum task counts, and the fix. (Previews run at reduced capacity,
    // all on Spot: on demand fits.)
    let o = Command::new(env!("CARGO_BIN_EXE_pantstack"))
        .current_dir(examples())
        .args(["quotas"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run pantstack");
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("OVER") && l.contains("Fargate Spot vCPUs"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("15.25") && line.contains("us-east-1"),
        "{line}"
    );
    assert!(
        out.contains("vCPUs at the minimum task counts 4, at the maximum 15.25 (over by 9.25)"),
        "{out}"
    );
    assert!(
        out.contains("--quota-code L-36FBB829 --desired-value 16"),
        "{out}"
    );
    // The deployment surge: on demand fits at rest, not while prod deploys.
    assert!(
        out.contains("while one environment deploys every service at once (old and new tasks side by side): 4.25 (prod deploying) at the minimum, 6.25 (prod deploying) (over by 0.25) at the maximum: new tasks past the quota fail to start"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("1 quota(s) would be exceeded"),
        "{}",
        stderr(&o)
    );
}
