//! The aws target without the emulator: a silent endpoint, and which commands an
//! environment's `target: aws` sends to AWS.

use crate::common::{copy_dir, repo_root, text};
use std::process::{Command, Stdio};

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
