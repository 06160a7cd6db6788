//! The `fakecloud-adapter` binary's own surface (its proxying is exercised end to
//! end by crates/cli/tests/ship/ against a real fakecloud).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_fakecloud-adapter"))
        .args(args)
        .output()
        .expect("run fakecloud-adapter");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn it_listens_on_loopback_only_and_says_what_it_adapts() {
    for addr in ["0.0.0.0:4567", "10.0.0.1:4567", "localhost"] {
        let (code, _, err) = run(&["--listen", addr]);
        assert_eq!(code, 2, "{addr}: {err}");
        assert!(err.contains("loopback"), "{err}");
    }
    let (code, out, _) = run(&["deviations"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.matches("\n- ").count() + usize::from(out.starts_with("- ")),
        pantstack_fakecloud_adapter::DEVIATIONS.len()
    );
    assert!(out.contains("ScalingTargetId"), "{out}");
    // Nothing listening there: said, exit 1.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    drop(l);
    let (code, out, err) = run(&["urls", "--upstream", &port]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no load balancer"), "{err}");
    let (code, _, err) = run(&["surprise"]);
    assert_eq!(code, 2);
    assert!(err.contains("unexpected argument"), "{err}");
}
