//! The CI role check (`common::iam_check`) on its own, without the emulator.

use crate::common::{iam_check, repo_root, text};
use pantstack_fakecloud_adapter::record::Call;
use serde_json::Value;
use std::process::Command;

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
