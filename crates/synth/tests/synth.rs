//! Synthesis from the example monorepo, the varied fixture and the broken one: the
//! rules that matter for security, region independence, determinism, snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use pantstack_synth::{Options, Output, skips, synth};
use serde_json::Value;
use std::path::PathBuf;

fn root(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn load(rel: &str) -> pantstack_model::Monorepo {
    let loaded = pantstack_model::load(&root(rel));
    assert!(
        !loaded.has_errors(),
        "{rel} does not load: {:?}",
        loaded.diagnostics
    );
    loaded.repo
}

fn synth_ok(rel: &str, env: &str) -> Output {
    let repo = load(rel);
    match synth(&repo, env, &Options::default()) {
        Ok(o) => o,
        Err(d) => panic!("synth {rel} {env}: {d:?}"),
    }
}

/// Every (monorepo, environment) the rules are checked on.
const CASES: &[(&str, &str)] = &[
    ("examples", "test"),
    ("examples", "prod"),
    ("examples", "preview-12"),
    ("tests/fixtures/synth-varied", "test"),
    ("tests/fixtures/synth-varied", "prod"),
    ("tests/fixtures/synth-varied", "preview-7"),
];

/// (file name, parsed template) of every template in every case.
fn all_templates() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (rel, env) in CASES {
        let o = synth_ok(rel, env);
        for f in &o.files {
            if f.name == "stacks.json" {
                continue;
            }
            let v: Value = serde_json::from_str(&f.contents).expect("templates are JSON");
            out.push((format!("{rel}:{env}"), f.name.clone(), v));
        }
    }
    out
}

fn resources(t: &Value) -> Vec<(&String, &Value)> {
    t["Resources"]
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

#[test]
fn output_is_deterministic() {
    for (rel, env) in CASES {
        let a = synth_ok(rel, env);
        let b = synth_ok(rel, env);
        assert_eq!(a.files, b.files, "{rel} {env}");
    }
}

#[test]
fn another_region_changes_only_the_plan() {
    let repo = load("examples");
    let a = synth(&repo, "prod", &Options::default()).expect("us-east-1");
    let b = synth(
        &repo,
        "prod",
        &Options {
            region: Some("ap-southeast-3".into()),
        },
    )
    .expect("ap-southeast-3");
    for (fa, fb) in a.files.iter().zip(&b.files) {
        assert_eq!(fa.name, fb.name);
        if fa.name == "stacks.json" {
            assert!(fb.contents.contains("\"region\": \"ap-southeast-3\""));
        } else {
            assert_eq!(fa.contents, fb.contents, "{} names a region", fa.name);
        }
    }
}

const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-northeast-1",
    "ap-northeast-2",
    "ca-central-1",
    "sa-east-1",
    "me-south-1",
];

#[test]
fn templates_name_no_region_or_zone() {
    for (case, name, t) in all_templates() {
        let mut t = t.clone();
        if name.ends_with("-foundation.json") {
            // The ELB log-delivery lookup table is keyed by region (looked up with
            // AWS::Region); nothing else may name one.
            t.as_object_mut().map(|m| {
                m.remove("Mappings");
                m.remove("Conditions")
            });
        }
        let mut text = t.to_string();
        // What the user wrote: certificate and topic ARNs, the replica region.
        for user in [
            "arn:aws:acm:eu-central-1:123456789012:certificate/0f6c1c3e-1111-2222-3333-444455556666",
            "arn:aws:sns:eu-central-1:123456789012:oncall",
            "kms:eu-west-1:",
            "to eu-west-1 as this role",
        ] {
            text = text.replace(user, "");
        }
        for r in REGIONS {
            assert!(!text.contains(r), "{case} {name} names region {r}");
        }
    }
}

#[test]
fn only_the_load_balancer_is_open_to_the_internet_and_only_on_listener_ports() {
    for (case, name, t) in all_templates() {
        let https = t["Resources"].get("HttpsListener").is_some();
        for (id, r) in resources(&t) {
            let props = &r["Properties"];
            match r["Type"].as_str() {
                Some("AWS::EC2::SecurityGroup") => {
                    for rule in as_list(&props["SecurityGroupIngress"]) {
                        let open = rule["CidrIp"] == "0.0.0.0/0" || rule["CidrIpv6"] == "::/0";
                        if !open {
                            continue;
                        }
                        assert_eq!(
                            id, "LoadBalancerSecurityGroup",
                            "{case} {name}: {id} open to the internet"
                        );
                        let (from, to) = (rule["FromPort"].as_i64(), rule["ToPort"].as_i64());
                        assert_eq!(from, to, "{case} {name}: a port range is open");
                        let allowed: &[i64] = if https { &[80, 443] } else { &[80] };
                        assert!(
                            allowed.contains(&from.unwrap_or(-1)),
                            "{case} {name}: port {from:?} open"
                        );
                        assert_eq!(rule["IpProtocol"], "tcp");
                    }
                    // Every egress rule is one TCP port (443 to AWS, or the container
                    // port to the tasks' group), never everything.
                    for rule in as_list(&props["SecurityGroupEgress"]) {
                        assert_ne!(
                            rule["IpProtocol"], "-1",
                            "{case} {name}: {id} allows all egress"
                        );
                        if rule["CidrIp"] == "0.0.0.0/0" {
                            assert_eq!(rule["FromPort"], 443, "{case} {name}: {id}");
                            assert_eq!(rule["ToPort"], 443, "{case} {name}: {id}");
                        }
                    }
                }
                Some("AWS::EC2::SecurityGroupIngress") => {
                    assert_ne!(props["CidrIp"], "0.0.0.0/0", "{case} {name}: {id}");
                    assert!(
                        props.get("SourceSecurityGroupId").is_some(),
                        "{case} {name}: {id} not from a group"
                    );
                }
                _ => {}
            }
        }
    }
}

#[test]
fn tasks_never_get_public_ips_and_run_in_private_subnets() {
    let mut services = 0;
    for (case, name, t) in all_templates() {
        for (id, r) in resources(&t) {
            match r["Type"].as_str() {
                Some("AWS::ECS::Service") => {
                    services += 1;
                    let net = &r["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"];
                    assert_eq!(net["AssignPublicIp"], "DISABLED", "{case} {name} {id}");
                    let subnets = net["Subnets"].to_string();
                    assert!(
                        subnets.contains("-PrivateSubnetIds"),
                        "{case} {name} {id}: {subnets}"
                    );
                }
                Some("AWS::EC2::Subnet") => {
                    assert_eq!(
                        r["Properties"]["MapPublicIpOnLaunch"], false,
                        "{case} {name} {id}"
                    );
                }
                Some("AWS::ElasticLoadBalancingV2::LoadBalancer") => {
                    let subnets = r["Properties"]["Subnets"].to_string();
                    assert!(subnets.contains("-PublicSubnetIds"), "{case} {name} {id}");
                }
                _ => {}
            }
        }
    }
    assert!(services >= 12, "only {services} ECS services checked");
}

/// Actions that exist only on `*` (no resource-level permissions).
const STAR_ONLY: &[&str] = &[
    "ecr:GetAuthorizationToken",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
];

#[test]
fn service_roles_name_only_their_own_resources() {
    let mut statements = 0;
    for (rel, env) in CASES {
        let repo = load(rel);
        let o = synth_ok(rel, env);
        let project = &repo.foundation.project.value;
        let registry = &repo.foundation.registry;
        for unit in &repo.services {
            let svc = &unit.service.name;
            let file = format!("{project}-{env}-{svc}.json");
            let t: Value =
                serde_json::from_str(o.file(&file).expect("service template")).expect("json");
            let ids: Vec<&String> = t["Resources"]
                .as_object()
                .expect("resources")
                .keys()
                .collect();
            let own = |v: &Value| -> bool {
                let s = v.to_string();
                ids.iter().any(|id| {
                    s.contains(&format!("\"Ref\":\"{id}\""))
                        || s.contains(&format!("\"Fn::GetAtt\":[\"{id}\""))
                }) || s.contains("-KeyArn\"}")
                    || s.contains(&format!(":repository/{registry}\""))
                    || s.contains(&format!("parameter/{project}/{env}/{svc}/"))
                    || s.contains(&format!("parameter/{project}/{env}/{svc}\""))
                    || s.contains(&format!("{project}-{env}-{svc}-"))
                    || s.contains(":key/*")
            };
            for (id, r) in resources(&t) {
                let docs: Vec<Value> = match r["Type"].as_str() {
                    Some("AWS::IAM::Role") => {
                        assert!(
                            r["Properties"].get("PermissionsBoundary").is_some(),
                            "{file} {id}: no boundary"
                        );
                        for m in as_list(&r["Properties"]["ManagedPolicyArns"]) {
                            assert!(
                                m.to_string()
                                    .contains("AmazonECSInfrastructureRolePolicyForLoadBalancers"),
                                "{file} {id}: {m}"
                            );
                        }
                        as_list(&r["Properties"]["Policies"])
                            .iter()
                            .map(|p| p["PolicyDocument"].clone())
                            .collect()
                    }
                    Some("AWS::IAM::RolePolicy") | Some("AWS::IAM::Policy") => {
                        vec![r["Properties"]["PolicyDocument"].clone()]
                    }
                    _ => continue,
                };
                for doc in docs {
                    for st in as_list(&doc["Statement"]) {
                        if st["Effect"] != "Allow" {
                            continue;
                        }
                        statements += 1;
                        let actions: Vec<String> = as_list(&st["Action"])
                            .iter()
                            .map(|a| a.as_str().unwrap_or("").to_string())
                            .collect();
                        for a in &actions {
                            assert!(
                                a != "*" && !a.ends_with(":*"),
                                "{file} {id}: wildcard action {a}"
                            );
                        }
                        for res in as_list(&st["Resource"]) {
                            if res == "*" {
                                for a in &actions {
                                    assert!(
                                        STAR_ONLY.contains(&a.as_str()),
                                        "{file} {id}: {a} on *"
                                    );
                                }
                            } else {
                                assert!(own(&res), "{file} {id}: {res} is not this service's");
                            }
                            if res.to_string().contains(":key/*") {
                                assert!(
                                    st.get("Condition").is_some(),
                                    "{file} {id}: any key without a condition"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(statements > 30, "only {statements} statements checked");
}

#[test]
fn ci_role_trusts_only_this_repository() {
    let o = synth_ok("examples", "test");
    let t: Value = serde_json::from_str(o.file("shop-test-foundation.json").expect("foundation"))
        .expect("json");
    let trust = &t["Resources"]["CiRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    let subs =
        as_list(&trust["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"]);
    let subs: Vec<&str> = subs.iter().filter_map(Value::as_str).collect();
    assert_eq!(
        subs,
        [
            "repo:example/shop:ref:refs/heads/dev",
            "repo:example/shop:environment:test"
        ]
    );
    let policy =
        t["Resources"]["CiRole"]["Properties"]["Policies"][0]["PolicyDocument"].to_string();
    assert!(policy.contains("stack/shop-test-*/*"), "{policy}");
    assert!(
        !policy.contains("DeleteStack"),
        "long-lived environments are not deleted by CI"
    );

    let o = synth_ok("examples", "preview-12");
    let t: Value = serde_json::from_str(
        o.file("shop-preview-foundation.json")
            .expect("preview foundation"),
    )
    .expect("json");
    let trust = t["Resources"]["CiRole"]["Properties"]["AssumeRolePolicyDocument"].to_string();
    assert!(trust.contains("repo:example/shop:pull_request"), "{trust}");
    let policy =
        t["Resources"]["CiRole"]["Properties"]["Policies"][0]["PolicyDocument"].to_string();
    assert!(
        policy.contains("DeleteStack") && policy.contains("stack/shop-preview-*/*"),
        "{policy}"
    );
}

#[test]
fn previews_share_one_foundation() {
    let a = synth_ok("examples", "preview-12");
    let b = synth_ok("examples", "preview-13");
    assert_eq!(
        a.file("shop-preview-foundation.json"),
        b.file("shop-preview-foundation.json")
    );
    assert!(a.file("shop-preview-12-api.json").is_some());
    let api: Value =
        serde_json::from_str(a.file("shop-preview-12-api.json").expect("api")).expect("json");
    assert_eq!(
        api["Resources"]["LogGroup"]["Properties"]["LogGroupName"],
        "/pantstack/shop/preview-12/api"
    );
    assert!(
        api.to_string()
            .contains("\"Fn::ImportValue\":\"shop-preview-VpcId\"")
    );
}

#[test]
fn every_skip_is_known_and_documented() {
    let doc = std::fs::read_to_string(root("docs/security.md")).expect("docs/security.md");
    for s in skips::ALL {
        assert!(
            doc.contains(s.id) && doc.contains(s.reason),
            "docs/security.md lacks {} ({})",
            s.id,
            s.reason
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (case, name, t) in all_templates() {
        for (id, r) in resources(&t) {
            for s in as_list(&r["Metadata"]["checkov"]["skip"]) {
                let known = skips::ALL
                    .iter()
                    .any(|k| s["id"] == k.id && s["comment"] == k.reason);
                assert!(known, "{case} {name} {id}: undocumented skip {s}");
                seen.insert(s["id"].as_str().unwrap_or("").to_string());
            }
        }
    }
    // Every documented skip is reachable from the fixtures (no stale entries).
    for s in skips::ALL {
        assert!(seen.contains(s.id), "{} is never emitted", s.id);
    }
}

#[test]
fn secrets_are_referenced_never_valued() {
    let o = synth_ok("examples", "test");
    let api = o.file("shop-test-api.json").expect("api");
    let t: Value = serde_json::from_str(api).expect("json");
    let secrets =
        &t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Secrets"];
    assert_eq!(secrets[0]["Name"], "API_TOKEN");
    assert_eq!(
        secrets[0]["ValueFrom"]["Fn::Sub"],
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/test/api/API_TOKEN"
    );
    assert!(
        !api.contains("AWS::SSM::Parameter"),
        "templates never create parameters"
    );
    assert_eq!(o.plan.secrets.len(), 1);
    assert_eq!(o.plan.secrets[0].path, "/shop/test/api/API_TOKEN");
}

#[test]
fn configuration_reaches_the_templates() {
    let o = synth_ok("examples", "prod");
    let t: Value = serde_json::from_str(o.file("shop-prod-api.json").expect("api")).expect("json");
    let r = &t["Resources"];
    assert_eq!(r["ScalingTarget"]["Properties"]["MinCapacity"], 2);
    assert_eq!(r["ScalingTarget"]["Properties"]["MaxCapacity"], 10);
    assert_eq!(r["ScalingTargetWorker"]["Properties"]["MaxCapacity"], 6);
    assert_eq!(
        r["CpuScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
        70.0
    );
    assert_eq!(r["TaskDefinition"]["Properties"]["Cpu"], "512");
    assert_eq!(
        r["Service"]["Properties"]["CapacityProviderStrategy"][0]["Base"],
        2
    );
    assert_eq!(
        r["Service"]["Properties"]["CapacityProviderStrategy"][1]["CapacityProvider"],
        "FARGATE_SPOT"
    );
    assert_eq!(
        r["Service"]["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"],
        true
    );
    assert_eq!(r["TargetGroup"]["Properties"]["HealthyThresholdCount"], 3);
    assert_eq!(
        r["TargetGroup"]["Properties"]["HealthCheckIntervalSeconds"],
        15
    );
    assert_eq!(
        r["JobsQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"],
        3
    );
    let backlog =
        r["BacklogScalingWorker"]["Properties"]["TargetTrackingScalingPolicyConfiguration"].clone();
    assert_eq!(backlog["TargetValue"], 20.0);
    let f: Value =
        serde_json::from_str(o.file("shop-prod-foundation.json").expect("fdn")).expect("json");
    assert!(
        f["Resources"]["NatGateway1"].is_object(),
        "per_az NAT in prod"
    );
    assert!(
        f["Resources"]["S3Endpoint"].is_object(),
        "endpoints in prod"
    );
    let t: Value = serde_json::from_str(
        synth_ok("examples", "test")
            .file("shop-test-foundation.json")
            .expect("fdn"),
    )
    .expect("json");
    assert!(
        t["Resources"]["NatGateway0"].is_object() && t["Resources"].get("NatGateway1").is_none(),
        "single NAT in test"
    );
}

#[test]
fn undeployable_configurations_are_refused_with_their_place() {
    let repo = load("tests/fixtures/synth-errors");
    let Err(diags) = synth(&repo, "test", &Options::default()) else {
        panic!("synth-errors must not synthesize");
    };
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    for c in [
        "no-egress",
        "tracing-needs-nat",
        "strategy-one-rule",
        "replication-same-region",
        "replication-regions",
    ] {
        assert!(codes.contains(&c), "{c} missing from {codes:?}");
    }
    for d in &diags {
        assert!(d.span.line > 0, "{} has no line", d.code);
    }
    let Err(diags) = synth(&repo, "prod", &Options::default()) else {
        panic!("prod must not synthesize");
    };
    assert!(
        diags.iter().any(|d| d.code == "vpc-too-small"
            && d.file.ends_with("stack/infra/foundation/pantstack.yaml"))
    );
}

#[test]
fn snapshots_of_the_example() {
    let o = synth_ok("examples", "test");
    for f in &o.files {
        insta::assert_snapshot!(format!("example-test-{}", f.name), f.contents);
    }
    let o = synth_ok("tests/fixtures/synth-varied", "test");
    for f in &o.files {
        insta::assert_snapshot!(format!("varied-test-{}", f.name), f.contents);
    }
}
