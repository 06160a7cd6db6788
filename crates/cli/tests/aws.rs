//! The local cloud's AWS endpoint through real clients: boto3 and the AWS CLI run
//! tests/aws/conformance.py against `pantstack up`; tasks get the endpoint, their
//! credentials and their secrets; acknowledged writes survive `kill -9`. Loopback
//! only; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::{Cloud, repo_root, text};

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The Python with boto3 and the AWS CLI that .ci/run installs.
fn clients() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("PANTSTACK_AWS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            PathBuf::from(home).join(".cache/pantstack-ci/awsclients")
        });
    let py = dir.join("bin/python");
    let aws = dir.join("bin/aws");
    assert!(
        py.is_file() && aws.is_file(),
        "boto3 and the AWS CLI are missing from {}: `bash .ci/run` installs them (or set PANTSTACK_AWS_CLIENTS to a virtualenv with boto3 and awscli)",
        dir.display()
    );
    (py, aws)
}

/// What `pantstack aws-env` prints, as (name, value) pairs.
fn aws_env(c: &Cloud) -> Vec<(String, String)> {
    let o = c.run(&["aws-env", "--env", c.env]);
    assert!(o.status.success(), "aws-env: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("unset AWS_SESSION_TOKEN"), "{out}");
    out.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The clients' Python with what `pantstack aws-env` prints in its environment.
fn python_cmd(c: &Cloud, args: &[&str]) -> Command {
    let (py, aws) = clients();
    let mut cmd = Command::new(py);
    cmd.args(args)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("PANTSTACK_AWS_CLI", aws)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in aws_env(c) {
        cmd.env(k, v);
    }
    cmd
}

fn python(c: &Cloud, args: &[&str]) -> std::process::Output {
    python_cmd(c, args).output().expect("python")
}

fn supervisor_pid(c: &Cloud) -> i32 {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.root.join(".pantstack/local/test/state.json")).unwrap(),
    )
    .unwrap();
    state["pid"].as_i64().unwrap() as i32
}

#[test]
fn boto3_and_the_aws_cli_conform_for_sqs_s3_and_ssm() {
    let c = Cloud::new("aws-conformance", "");
    c.up();
    let script = repo_root().join("tests/aws/conformance.py");
    let o = python(&c, &[script.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "conformance failed:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("checks passed"),
        "{}",
        text(&o.stdout)
    );
    // SecureString plaintexts never reach the disk: not the journal, not state.
    for file in walk(&c.root.join(".pantstack")) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for secret in [
            &b"conformance-secret-value"[..],
            b"conformance-keyed-value",
            b"test-token",
            b"cli-secret",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds a plaintext secret",
                file.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn tasks_get_the_endpoint_their_credentials_queue_urls_and_secrets() {
    let c = Cloud::new("aws-task-env", "");
    c.up();
    let u = c.wait_healthy("api", 1, Duration::from_secs(60));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.root.join(".pantstack/local/test/state.json")).unwrap(),
    )
    .unwrap();
    let state_text = state.to_string();
    assert!(!state_text.contains("test-token"), "a secret in state.json");
    let pgid = state["units"]["api"]["tasks"][0]["pgid"]
        .as_u64()
        .expect("pgid");
    let environ = std::fs::read(format!("/proc/{pgid}/environ")).expect("task environ");
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let get = |k: &str| {
        vars.iter()
            .find_map(|v| v.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("{k} missing from the task's environment"))
    };
    let endpoint = get("AWS_ENDPOINT_URL");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert_eq!(get("API_TOKEN"), "test-token", "the declared secret");
    assert_eq!(get("AWS_REGION"), "us-east-1");
    assert_eq!(
        get("JOBS_QUEUE_URL"),
        format!("{endpoint}/000000000000/shop-test-api-jobs")
    );
    assert_eq!(get("RESULTS_BUCKET"), "shop-test-api-results");
    let key = get("AWS_ACCESS_KEY_ID");
    let user = aws_env(&c);
    let user_key = &user
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .unwrap()
        .1;
    assert_ne!(&key, user_key, "each unit has its own credentials");
    assert!(!state_text.contains(&get("AWS_SECRET_ACCESS_KEY")));
    // `aws-env --as api` hands a person the unit's own credentials.
    let o = c.run(&["aws-env", "--env", c.env, "--as", "api"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let printed = text(&o.stdout);
    assert!(
        printed.contains(&format!("export AWS_ACCESS_KEY_ID={key}\n")),
        "{printed}"
    );
    assert!(printed.contains(&format!(
        "export AWS_SECRET_ACCESS_KEY={}\n",
        get("AWS_SECRET_ACCESS_KEY")
    )));
    let o = c.run(&["aws-env", "--env", c.env, "--as", "nope"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr).contains("--as nope: no such unit; the units are api, api-worker"),
        "{}",
        text(&o.stderr)
    );
    // The task's credentials work, as its task role on AWS: boto3 with them reaches
    // the service's own queues and bucket, and is refused anything else.
    let (py, _) = clients();
    let script = r#"
import boto3, botocore
def code(call):
    try:
        call()
        return "allowed"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
sqs, s3 = boto3.client("sqs"), boto3.client("s3")
url = sqs.get_queue_url(QueueName="shop-test-api-jobs-dlq")["QueueUrl"]
print(url)
print(code(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])))
print(code(lambda: sqs.list_queues()))
print(code(lambda: sqs.purge_queue(QueueUrl=url)))
print(code(lambda: s3.put_object(Bucket="shop-test-api-results", Key="iam-check", Body=b"x")))
print(code(lambda: s3.list_objects_v2(Bucket="someone-elses-bucket")))
print(code(lambda: s3.list_buckets()))
"#;
    let o = Command::new(py)
        .args(["-c", script])
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", get("AWS_SECRET_ACCESS_KEY"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{endpoint}/000000000000/shop-test-api-jobs-dlq").as_str(),
            "allowed",
            "AccessDenied",
            "AccessDenied",
            "allowed",
            "AccessDenied",
            "AccessDenied",
        ],
        "{}",
        text(&o.stderr)
    );
    let _ = u;
}

#[test]
fn a_task_whose_secret_is_missing_does_not_start_and_says_why() {
    let c = Cloud::new("aws-missing-secret", "");
    // No `secrets set`: the API's task cannot start (ECS ResourceInitializationError).
    // `up --detach` waits for the start deployment, says why it failed and exits
    // non-zero (it used to exit 0 with the reason only in the supervisor's log).
    let o = c.run(&["up", "--env", "test", "--detach"]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("could not start"), "{out}");
    assert!(
        out.contains("ResourceInitializationError")
            && out.contains("pantstack secrets set api API_TOKEN"),
        "{out}"
    );
    // `status` shows the failed deployment and its reason.
    let o = c.run(&["status", "--env", "test"]);
    let st = text(&o.stdout);
    assert!(st.contains("last deployment"), "{st}");
    assert!(st.contains("ResourceInitializationError"), "{st}");
}

#[test]
fn acknowledged_writes_survive_kill_9_of_the_local_cloud() {
    crash_test("aws-crash", &[], 0);
}

/// The same with the journal compacted in the background (from 64 KiB on) during
/// the load and again while the writer that is killed sends.
#[test]
fn acknowledged_writes_survive_kill_9_with_journal_compaction() {
    crash_test(
        "aws-crash-compact",
        &[("PANTSTACK_COMPACT_MIN_BYTES", "65536")],
        2,
    );
}

/// The supervisor's log (`.pantstack/local/ENV/supervisor.log`).
fn supervisor_log(c: &Cloud) -> String {
    walk(&c.root.join(".pantstack"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "supervisor.log"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// Loads the local cloud, kills it with SIGKILL while a writer sends (once
/// `compactions` background compactions have finished, if any are asked for),
/// restarts it and checks everything acknowledged.
fn crash_test(name: &str, vars: &[(&str, &str)], compactions: usize) {
    let c = Cloud::new(name, "");
    c.up_with(vars);
    let script = repo_root().join("tests/aws/crash.py");
    let ack = c.root.parent().unwrap().join("acknowledged.json");
    let o = python(
        &c,
        &[script.to_str().unwrap(), "load", ack.to_str().unwrap()],
    );
    assert!(
        o.status.success(),
        "load: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let pid = supervisor_pid(&c);
    // kill -9 while a writer is still sending: whatever it was told is kept.
    let mut child = python_cmd(
        &c,
        &[script.to_str().unwrap(), "busy", ack.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ack.with_extension("busy").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while supervisor_log(&c).matches("requests paused").count() < compactions {
        assert!(
            Instant::now() < deadline,
            "{compactions} background compactions did not happen: {}",
            supervisor_log(&c)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.wait();
    c.up_with(vars);
    let o = python(
        &c,
        &[script.to_str().unwrap(), "verify", ack.to_str().unwrap()],
    );
    assert!(
        o.status.success(),
        "verify after kill -9: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("all acknowledged"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn secrets_commands_work_with_and_without_a_running_local_cloud() {
    let c = Cloud::new("aws-secrets", "");
    let run = |args: &[&str]| {
        let o = c.run(args);
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout),
            text(&o.stderr),
        )
    };
    // Not running: the state is opened in-process.
    let (code, out, _) = run(&["secrets", "list", "--env", "test"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("API_TOKEN") && out.contains("not set"),
        "{out}"
    );
    c.set_secret("test", "api", "API_TOKEN", "first-value");
    let (_, out, _) = run(&["secrets", "get", "--env", "test", "api", "API_TOKEN"]);
    assert!(
        out.contains("version 1") && !out.contains("first-value"),
        "hidden: {out}"
    );
    let (_, out, _) = run(&[
        "secrets",
        "get",
        "--env",
        "test",
        "--reveal",
        "api",
        "API_TOKEN",
    ]);
    assert_eq!(out.trim(), "first-value");
    let (code, _, err) = run(&["secrets", "get", "--env", "test", "api", "NOPE"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("declares no secret `NOPE`") && err.contains("API_TOKEN"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "secrets",
        "set",
        "--env",
        "test",
        "api",
        "API_TOKEN",
        "argv-value",
    ]);
    assert_eq!(code, 2, "a value on the command line is refused: {err}");

    // Running: the same commands go through the supervisor.
    c.up(); // sets API_TOKEN = test-token (version 2)
    let (_, out, _) = run(&["secrets", "list", "--env", "test"]);
    assert!(
        out.contains("v2") && out.contains("ok (rotation every 90 days)"),
        "{out}"
    );
    let key_file = std::fs::read_dir(c.key_dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = std::fs::read_to_string(&key_file).unwrap();
    let (code, out, err) = run(&["secrets", "rotate-key", "--env", "test"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("re-encrypted 2 secret value(s)"), "{out}");
    assert_ne!(
        std::fs::read_to_string(&key_file).unwrap(),
        before,
        "a new key"
    );
    let (_, out, _) = run(&[
        "secrets",
        "get",
        "--env",
        "test",
        "--reveal",
        "api",
        "API_TOKEN",
    ]);
    assert_eq!(out.trim(), "test-token", "still readable under the new key");
    let (code, _, err) = run(&["secrets", "rm", "--env", "test", "api", "API_TOKEN"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["secrets", "list", "--env", "test", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["status"], "not set", "{out}");
    // After a restart the old versions are gone with the key, the delete kept.
    assert!(c.run(&["down", "--env", "test"]).status.success());
    let (code, out, _) = run(&["secrets", "get", "--env", "test", "api", "API_TOKEN"]);
    assert_ne!(code, 0, "deleted for good: {out}");
}

#[test]
fn production_secrets_change_only_with_an_explicit_env() {
    let c = Cloud::new("aws-prod-guard", "");
    c.set_secret("prod", "api", "API_TOKEN", "keep-me");
    // On branch main (→ prod), with nothing running: `secrets rm` without --env
    // used to delete prod's secret.
    let o = c
        .command(&["secrets", "rm", "api", "API_TOKEN"])
        .env("GITHUB_REF_NAME", "main")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--env prod"),
        "{}",
        text(&o.stderr)
    );
    let o = c
        .command(&["secrets", "get", "api", "API_TOKEN"])
        .env("GITHUB_REF_NAME", "main")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "reading needs no --env: {}",
        text(&o.stderr)
    );
    let o = c
        .command(&["secrets", "rm", "--env", "prod", "api", "API_TOKEN"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn the_aws_cli_v1_reaches_the_local_sqs_after_eval_aws_env() {
    // Word for word what README.md says: `eval "$(pantstack aws-env)"`, then `aws sqs ...`
    // with the AWS CLI v1 (which pins SQS to its public endpoint unless told).
    let c = Cloud::new("aws-cli-v1", "");
    c.up();
    let (_, aws) = clients();
    let bin = aws.parent().unwrap().display().to_string();
    let script = format!(
        "set -e; export PATH={bin}:$PATH; eval \"$({} --root {} aws-env --env {})\"; aws --version; aws sqs list-queues --output json; bash -c 'aws ssm get-parameters-by-path --path / --recursive --output json' >/dev/null",
        env!("CARGO_BIN_EXE_pantstack"),
        c.root.display(),
        c.env
    );
    let o = Command::new("timeout")
        .args(["90", "bash", "-c", &script])
        .env_remove("AWS_ENDPOINT_URL")
        .env("PANTSTACK_KEY_DIR", c.key_dir())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("aws-cli/1."), "the v1 CLI ran: {out}");
    assert!(
        out.contains("shop-test-api-jobs"),
        "the local queues: {out}"
    );
    // In a POSIX sh with `set -e` too (no bash there): the eval succeeds.
    let script = format!(
        "eval \"$({} --root {} aws-env --env {})\"; echo after",
        env!("CARGO_BIN_EXE_pantstack"),
        c.root.display(),
        c.env
    );
    let o = Command::new("sh")
        .args(["-ec", &script])
        .env("PANTSTACK_KEY_DIR", c.key_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "after");
}

/// A copy of the example's api named `name`, declared by `manifest_edit` changes.
fn add_service_copy(c: &Cloud, name: &str, edits: &[(&str, &str)]) {
    let dir = c.root.join("modules").join(name);
    common::copy_dir(&c.root.join("modules/api"), &dir);
    let mut edits: Vec<(&str, String)> = edits.iter().map(|(a, b)| (*a, b.to_string())).collect();
    edits.push(("service: api\n", format!("service: {name}\n")));
    let p = dir.join("infrastructure/pantstack.yaml");
    let mut t = std::fs::read_to_string(&p).unwrap();
    for (from, to) in edits {
        assert!(t.contains(from), "{from} not in the manifest");
        t = t.replacen(from, &to, 1);
    }
    std::fs::write(&p, t).unwrap();
    let p = dir.join("infrastructure/Pulumi.yaml");
    let t = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, t.replace("shop-api", &format!("shop-{name}"))).unwrap();
}

#[test]
fn a_grant_lets_another_service_use_a_queue_and_a_bucket_and_nothing_more() {
    let c = Cloud::new("aws-grants", "");
    add_service_copy(
        &c,
        "reports",
        &[
            (
                "  RESULTS_BUCKET: ${bucket:results}\n",
                "  RESULTS_BUCKET: ${bucket:results}\n  API_JOBS: ${queue:api.jobs}\n  API_RESULTS: ${bucket:api.results}\n",
            ),
            // It calls api over HTTP.
            ("cpu: 256\n", "cpu: 256\ncalls: [api]\n"),
            // It takes api's token rather than having its own.
            (
                "  API_TOKEN:\n    rotation_days: 90\n    description: Token clients present to submit jobs\n",
                "  API_TOKEN:\n    from: api\n",
            ),
        ],
    );
    c.edit_manifest(
        "  API_TOKEN:\n    rotation_days: 90\n",
        "  API_TOKEN:\n    grants: { reports: read }\n    rotation_days: 90\n",
    );
    // api grants `reports` sending to its queue and reading its bucket.
    c.edit_manifest(
        "    visibility_timeout: 60s\n",
        "    visibility_timeout: 60s\n    grants:\n      reports: send\n",
    );
    c.edit_manifest(
        "    versioning: true\n",
        "    versioning: true\n    grants:\n      reports: read\n",
    );
    // And api calls reports back: calls may go both ways.
    c.edit_manifest("cpu: 256\n", "cpu: 256\ncalls: [reports]\n");
    let o = c.run(&["check"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("0 error(s), 0 warning(s)"),
        "{}",
        text(&o.stdout)
    );
    // The secret is api's: reports cannot set it.
    let o = c.run(&["secrets", "get", "reports", "API_TOKEN", "--env", c.env]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("is api's secret"),
        "{}",
        text(&o.stderr)
    );
    c.up();
    // reports' tasks get api's value (read by the execution role at task start).
    let o = c.run(&["exec", "reports", "--", "sh", "-c", "echo $API_TOKEN"]);
    assert_eq!(text(&o.stdout).trim(), "test-token", "{}", text(&o.stderr));
    // api writes an object the reports worker may then read.
    let (py, _) = clients();
    let script = r#"
import boto3, os, botocore, json
sqs, s3, ssm = boto3.client("sqs"), boto3.client("s3"), boto3.client("ssm")
out = {}
def attempt(name, f):
    try:
        f(); out[name] = "ok"
    except botocore.exceptions.ClientError as e:
        out[name] = e.response["Error"]["Code"]
attempt("send", lambda: sqs.send_message(QueueUrl=os.environ["API_JOBS"], MessageBody='{"id":"x","input":"from reports"}'))
attempt("receive", lambda: sqs.receive_message(QueueUrl=os.environ["API_JOBS"]))
attempt("list", lambda: s3.list_objects_v2(Bucket=os.environ["API_RESULTS"]))
attempt("put", lambda: s3.put_object(Bucket=os.environ["API_RESULTS"], Key="jobs/forged.json", Body=b"{}"))
attempt("secret", lambda: ssm.get_parameter(Name="/shop/test/api/API_TOKEN", WithDecryption=True))
attempt("own", lambda: sqs.send_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody="mine"))
print(json.dumps(out))
"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let o = c.run(&[
            "exec",
            "reports-worker",
            "--",
            py.to_str().unwrap(),
            "-c",
            script,
        ]);
        if o.status.success() {
            break text(&o.stdout);
        }
        assert!(Instant::now() < deadline, "{}", text(&o.stderr));
        std::thread::sleep(Duration::from_millis(300));
    };
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["send"], "ok", "{v}");
    assert_eq!(v["list"], "ok", "{v}");
    assert_eq!(v["own"], "ok", "{v}");
    assert_eq!(
        v["receive"], "AccessDenied",
        "send was granted, not consume: {v}"
    );
    assert_eq!(v["put"], "AccessDenied", "read was granted, not write: {v}");
    assert_eq!(
        v["secret"], "AccessDeniedException",
        "nothing else of api: {v}"
    );

    // A grant changed by a deploy applies at once: send becomes consume.
    c.edit_manifest("      reports: send\n", "      reports: consume\n");
    let o = c.run(&["deploy", "api"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = c.run(&[
        "exec",
        "reports-worker",
        "--",
        py.to_str().unwrap(),
        "-c",
        script,
    ]);
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["send"], "AccessDenied", "the old grant is gone: {v}");
    assert_eq!(v["receive"], "ok", "the new one holds: {v}");

    // calls: [api] — api's address in API_URL; a request id sent along is the one
    // api's load balancer logs, so one request is seen through both services.
    let api_url = c.unit("api")["url"].as_str().unwrap().to_string();
    let o = c.run(&["exec", "reports", "--", "sh", "-c", "echo $API_URL"]);
    assert_eq!(text(&o.stdout).trim(), api_url, "{}", text(&o.stderr));
    let reports_url = c.unit("reports")["url"].as_str().unwrap().to_string();
    let o = c.run(&["exec", "api", "--", "sh", "-c", "echo $REPORTS_URL"]);
    assert_eq!(text(&o.stdout).trim(), reports_url, "{}", text(&o.stderr));
    let call = r#"
import os, urllib.request
req = urllib.request.Request(os.environ["API_URL"] + "/healthz", headers={"X-Request-Id": "hop-4242"})
print(urllib.request.urlopen(req, timeout=10).read().decode().strip())
"#;
    let o = c.run(&["exec", "reports", "--", py.to_str().unwrap(), "-c", call]);
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(c.root.join(".pantstack/local/test/access/api.log"))
            .unwrap_or_default();
        if log.contains("hop-4242") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "api's access log has no hop-4242:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
