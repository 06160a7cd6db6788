//! Synthesis from the example monorepo, the varied fixture and the broken one: the
//! rules that matter for security, region independence, determinism, snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use pantstack_synth::{Options, Output, skips, synth};
use serde_json::{Value, json};
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
            ..Options::default()
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
        if name.ends_with("-shared.json") {
            // The image replica region is what the user wrote (registry.replicate_to).
            if let Some(r) = t["Resources"].as_object_mut() {
                r.remove("ImageReplication");
            }
            if let Some(c) = t["Conditions"].as_object_mut() {
                c.remove("ReplicateImages");
            }
        }
        let mut text = t.to_string();
        // What the user wrote: certificate and topic ARNs, the replica region.
        for user in [
            "arn:aws:acm:eu-central-1:123456789012:certificate/0f6c1c3e-1111-2222-3333-444455556666",
            "arn:aws:sns:eu-central-1:123456789012:oncall",
            "kms:eu-west-1:",
            "cloudformation:eu-west-1:",
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
            // What other services granted this one (`grants:`): their queue's
            // name, their bucket's export.
            let mut granted: Vec<String> = Vec::new();
            for o in &repo.services {
                for q in &o.service.queues {
                    if q.grants.iter().any(|g| g.to.value == *svc) {
                        granted.push(format!("{project}-{env}-{}-{}", o.service.name, q.name));
                    }
                }
                for x in &o.service.secrets {
                    if x.grants.iter().any(|g| g.to.value == *svc) {
                        granted.push(format!(
                            "parameter/{project}/{env}/{}/{}\"",
                            o.service.name, x.name
                        ));
                    }
                }
                for b in &o.service.buckets {
                    if b.grants.iter().any(|g| g.to.value == *svc) {
                        granted.push(format!("-{}-{}-bucket\"", o.service.name, b.name));
                    }
                }
            }
            let own = |v: &Value| -> bool {
                let s = v.to_string();
                if granted.iter().any(|g| s.contains(g.as_str())) {
                    return true;
                }
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
                                    // PutMetricData has no resource: its own
                                    // namespace is the condition.
                                    if a == "cloudwatch:PutMetricData" {
                                        assert_eq!(
                                            st["Condition"]["StringEquals"]["cloudwatch:namespace"],
                                            format!("{project}/{env}/{svc}"),
                                            "{file} {id}: metrics of another namespace"
                                        );
                                        continue;
                                    }
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
    assert_eq!(subs, ["repo:example/shop:environment:test"]);
    let policy =
        t["Resources"]["CiRole"]["Properties"]["Policies"][0]["PolicyDocument"].to_string();
    assert!(policy.contains("stack/shop-test-*/*"), "{policy}");
    // Long-lived environments are not deleted by CI: it may delete only the
    // Service Connect stack (`deploy` does when no call is left), as the deploy role.
    let statements_ =
        t["Resources"]["CiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements");
    let deleting: Vec<&Value> = statements_
        .iter()
        .filter(|s| s["Action"].to_string().contains("DeleteStack"))
        .collect();
    assert_eq!(deleting.len(), 1, "{policy}");
    assert_eq!(deleting[0]["Action"], "cloudformation:DeleteStack");
    assert_eq!(
        deleting[0]["Resource"]["Fn::Sub"],
        "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/shop-test-service-connect/*"
    );
    assert!(
        deleting[0]["Condition"]["ArnEquals"]["cloudformation:RoleArn"].is_object(),
        "{policy}"
    );
    // `deploy` finds the environment's stacks (removed services, deployed rule
    // priorities) with ListStacks, which takes no resource, and describes them
    // by name: DescribeStacks is never allowed on every stack.
    let statements =
        t["Resources"]["CiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements");
    let allowing = |action: &str| -> Vec<Value> {
        statements
            .iter()
            .filter(|s| as_list(&s["Action"]).iter().any(|a| a == action))
            .map(|s| s["Resource"].clone())
            .collect()
    };
    assert_eq!(allowing("cloudformation:ListStacks"), vec![json!(["*"])]);
    let describe = allowing("cloudformation:DescribeStacks");
    assert!(!describe.is_empty());
    for r in &describe {
        assert!(
            as_list(r).iter().all(|x| x != "*"),
            "DescribeStacks on every stack: {r}"
        );
    }

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
    // The scheduled gc runs as the GitHub environment `preview`.
    assert!(
        trust.contains("repo:example/shop:environment:preview"),
        "{trust}"
    );
    // Teardown and secrets: the previews' own parameters, buckets and key, and the
    // declared preview values; never another environment's.
    for needed in [
        "parameter/shop/preview-*",
        "parameter/shop/preview/*",
        "s3:::shop-preview-*/*",
        "cloudformation:ListStacks",
        "kms:ViaService",
    ] {
        assert!(policy.contains(needed), "{needed} missing from {policy}");
    }
    assert!(!policy.contains("shop/test"), "{policy}");
    // A pull request must not be able to delete (then replace) prod's images.
    assert!(!policy.contains("BatchDeleteImage"), "{policy}");
}

/// The generated workflows assume exactly the roles the foundations create, with
/// the `sub` claims their trust policies admit.
#[test]
fn workflows_match_the_ci_roles() {
    let repo = load("examples");
    let opts = pantstack_synth::workflows::Options {
        install: "cargo install --locked pantstack@0.1.0".into(),
        root: "examples".into(),
    };
    let files = pantstack_synth::workflows::workflows(&repo, &opts).expect("workflows");
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pantstack-checks.yml",
            "pantstack-deploy.yml",
            "pantstack-preview.yml"
        ]
    );
    let deploy = &files[1].contents;
    for env in ["test", "prod"] {
        let o = synth_ok("examples", env);
        let t: Value =
            serde_json::from_str(o.file(&format!("shop-{env}-foundation.json")).expect("f"))
                .expect("json");
        let role = t["Resources"]["CiRole"]["Properties"]["RoleName"]["Fn::Sub"]
            .as_str()
            .expect("role name")
            .replace("${AWS::Region}", "us-east-1");
        assert!(
            deploy.contains(&format!(":role/{role}\n")),
            "{role} not in {deploy}"
        );
        assert!(
            deploy.contains(&format!("    environment: {env}\n")),
            "{deploy}"
        );
        let trust = t["Resources"]["CiRole"]["Properties"]["AssumeRolePolicyDocument"].to_string();
        assert!(trust.contains(&format!("repo:example/shop:environment:{env}")));
    }
    let preview = &files[2].contents;
    assert!(
        preview.contains(":role/shop-preview-ci-us-east-1\n"),
        "{preview}"
    );
    // Event values reach scripts through env:, never inside run:.
    for f in &files {
        let mut in_run = false;
        for line in f.contents.lines() {
            let t = line.trim_start();
            if t.starts_with("run:") {
                in_run = true;
                assert!(!t.contains("${{"), "{}: {line}", f.name);
                continue;
            }
            if in_run
                && (t.starts_with("- ") || t.ends_with(':') && !t.contains(' '))
                && !line.starts_with("          ")
            {
                in_run = false;
            }
            if in_run {
                assert!(!t.contains("${{"), "{}: {line}", f.name);
            }
            if t.starts_with("uses:") || t.starts_with("- uses:") {
                let r = t.split('@').nth(1).expect("pinned");
                assert!(
                    r.len() >= 40 && r[..40].bytes().all(|b| b.is_ascii_hexdigit()),
                    "{line}"
                );
            }
        }
        insta::assert_snapshot!(format!("workflows-{}", f.name), f.contents);
    }
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

/// Templates are written minified; snapshots hold them pretty-printed so a change
/// reads as a diff (`minified_templates_are_the_snapshots_values` ties the two).
fn pretty(text: &str) -> String {
    let v: Value = serde_json::from_str(text).expect("json");
    serde_json::to_string_pretty(&v).expect("json") + "\n"
}

#[test]
fn snapshots_of_the_example() {
    let o = synth_ok("examples", "test");
    for f in &o.files {
        insta::assert_snapshot!(format!("example-test-{}", f.name), pretty(&f.contents));
    }
    let o = synth_ok("tests/fixtures/synth-varied", "test");
    for f in &o.files {
        insta::assert_snapshot!(format!("varied-test-{}", f.name), pretty(&f.contents));
    }
}

#[test]
fn minified_templates_are_the_snapshots_values() {
    for (rel, env) in CASES {
        for f in &synth_ok(rel, env).files {
            if f.name == "stacks.json" {
                continue;
            }
            let v: Value = serde_json::from_str(&f.contents).expect("json");
            assert_eq!(
                f.contents,
                serde_json::to_string(&v).expect("json") + "\n",
                "{rel} {env} {}: not minified",
                f.name
            );
        }
    }
}

const INLINE_MAX: usize = 51_200;

#[test]
fn every_template_fits_cloudformations_inline_limit() {
    let mut checked = 0;
    for (rel, env) in CASES {
        let o = synth_ok(rel, env);
        for f in &o.files {
            if f.name == "stacks.json" {
                continue;
            }
            checked += 1;
            assert!(
                f.contents.len() <= INLINE_MAX,
                "{rel} {env} {}: {} bytes",
                f.name,
                f.contents.len()
            );
        }
        for s in &o.plan.stacks {
            assert!(!s.template_bucket, "{rel} {env} {}", s.name);
        }
    }
    assert!(checked >= 18, "only {checked} templates");
}

/// A copy of the example whose api service has `queues` more queues (with
/// dead-letter queues) and `buckets` more buckets.
fn example_with(queues: usize, buckets: usize) -> pantstack_model::Monorepo {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let e = e.expect("entry");
            let name = e.file_name();
            if name == "target" || name == ".pantstack" {
                continue;
            }
            if e.file_type().expect("type").is_dir() {
                copy(&e.path(), &to.join(&name));
            } else {
                std::fs::copy(e.path(), to.join(&name)).expect("copy");
            }
        }
    }
    let dir = std::env::temp_dir().join(format!(
        "pantstack-synth-{}-{queues}-{buckets}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy(&root("examples"), &dir);
    let manifest = dir.join("modules/api/infrastructure/pantstack.yaml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    let mut q = String::from("queues:\n");
    for i in 0..queues {
        q.push_str(&format!(
            "  extra{i}:\n    visibility_timeout: 60s\n    dead_letter:\n      max_receive_count: 3\n"
        ));
    }
    let mut b = String::from("buckets:\n");
    for i in 0..buckets {
        b.push_str(&format!("  store{i}:\n    versioning: true\n"));
    }
    text = text
        .replacen("queues:\n", &q, 1)
        .replacen("buckets:\n", &b, 1);
    std::fs::write(&manifest, text).expect("write");
    let loaded = pantstack_model::load(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let _ = std::fs::remove_dir_all(&dir);
    loaded.repo
}

#[test]
fn large_services_go_through_a_template_bucket_and_huge_ones_are_refused() {
    // 20 queues and 10 buckets: over the inline limit, under 1 MB and 500
    // resources; stacks.json says the template needs a bucket.
    let repo = example_with(20, 10);
    let o = synth(&repo, "prod", &Options::default()).expect("synthesizes");
    let api = o.file("shop-prod-api.json").expect("api");
    assert!(api.len() > INLINE_MAX, "{} bytes", api.len());
    assert!(api.len() < 1_048_576, "{} bytes", api.len());
    let stack = o
        .plan
        .stacks
        .iter()
        .find(|s| s.name == "shop-prod-api")
        .expect("api stack");
    assert!(stack.template_bucket);
    let plan: Value = serde_json::from_str(o.file("stacks.json").expect("plan")).expect("json");
    assert!(plan.to_string().contains("\"template_bucket\":true"));
    // The shared and foundation templates do not grow with the services.
    for f in ["shop-shared.json", "shop-prod-foundation.json"] {
        assert!(o.file(f).expect(f).len() <= INLINE_MAX, "{f}");
    }

    // Past CloudFormation's limits: a clear error naming the template.
    let repo = example_with(150, 10);
    let Err(diags) = synth(&repo, "prod", &Options::default()) else {
        panic!("150 queues must not synthesize");
    };
    assert!(
        diags.iter().any(
            |d| (d.code == "too-many-resources" || d.code == "template-too-large")
                && d.message.contains("shop-prod-api.json")
                && d.file
                    .ends_with("modules/api/infrastructure/pantstack.yaml")
        ),
        "{diags:?}"
    );
}

/// ECS's `Command` replaces only the image's CMD: the manifest's whole argv must be
/// `EntryPoint` + `Command`, so an image whose ENTRYPOINT is `/api` runs `/api serve`,
/// not `/api /api serve`.
#[test]
fn task_definitions_run_exactly_the_manifest_command() {
    let repo = load("examples");
    let o = synth_ok("examples", "test");
    let t: Value = serde_json::from_str(o.file("shop-test-api.json").expect("api")).expect("json");
    let api = repo
        .services
        .iter()
        .find(|u| u.service.name == "api")
        .expect("api");
    let mut checked = 0;
    for (id, want) in [
        (
            "TaskDefinition",
            api.service.http.as_ref().and_then(|h| h.command.clone()),
        ),
        (
            "TaskDefinitionWorker",
            api.service.worker.as_ref().and_then(|w| w.command.clone()),
        ),
    ] {
        let Some(want) = want else { continue };
        let c = &t["Resources"][id]["Properties"]["ContainerDefinitions"][0];
        let argv: Vec<String> = as_list(&c["EntryPoint"])
            .iter()
            .chain(as_list(&c["Command"]).iter())
            .map(|v| v.as_str().expect("string").to_string())
            .collect();
        assert_eq!(argv, want, "{id}: {c}");
        assert_eq!(as_list(&c["EntryPoint"]).len(), 1, "{id}: {c}");
        checked += 1;
    }
    assert_eq!(checked, 2, "the example's api has a command for both roles");
    assert_eq!(
        t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["EntryPoint"],
        serde_json::json!(["/api"])
    );
}

/// ECR's `tagPatternList` wildcard match (`*` = any run of characters).
fn ecr_glob(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == tag;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !tag.starts_with(first) || tag.len() < first.len() + last.len() || !tag.ends_with(last) {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The rule that decides a tagged image's fate: the first (by priority) whose
/// tag selection matches it. ECR never lets a later rule expire it.
fn deciding_rule<'a>(rules: &'a [Value], tag: &str) -> Option<&'a Value> {
    let mut sorted: Vec<&Value> = rules.iter().collect();
    sorted.sort_by_key(|r| r["rulePriority"].as_i64());
    sorted.into_iter().find(|r| {
        let sel = &r["selection"];
        match sel["tagStatus"].as_str() {
            Some("any") => true,
            Some("tagged") => {
                let pats = as_list(&sel["tagPatternList"]);
                let prefixes = as_list(&sel["tagPrefixList"]);
                (!pats.is_empty() && pats.iter().all(|p| ecr_glob(p.as_str().unwrap_or(""), tag)))
                    || (!prefixes.is_empty()
                        && prefixes
                            .iter()
                            .all(|p| tag.starts_with(p.as_str().unwrap_or(""))))
            }
            _ => false,
        }
    })
}

/// A rule that can only expire images beyond the newest 10,000 of its pattern.
fn keeps(rule: &Value) -> bool {
    rule["selection"]["countType"] == "imageCountMoreThan"
        && rule["selection"]["countNumber"].as_i64().unwrap_or(0) >= 10_000
}

fn lifecycle_rules(o: &Output, project: &str) -> Vec<Value> {
    let shared: Value =
        serde_json::from_str(o.file(&format!("{project}-shared.json")).expect("shared"))
            .expect("json");
    let text =
        shared["Resources"]["Repository"]["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"]
            .as_str()
            .expect("policy text")
            .to_string();
    let v: Value = serde_json::from_str(&text).expect("policy json");
    v["rules"].as_array().expect("rules").clone()
}

#[test]
fn images_an_environment_runs_are_never_expired() {
    use pantstack_model::tag::{branch_tag, version_tag};
    let sha = "0123456789abcdef";
    let mut checked = 0;
    for (rel, project) in [
        ("examples", "shop"),
        ("tests/fixtures/synth-varied", "varied"),
    ] {
        let repo = load(rel);
        let o = synth_ok(rel, "prod");
        let rules = lifecycle_rules(&o, project);
        for unit in &repo.services {
            let svc = &unit.service.name;
            for worker in [false, true] {
                let mut running = vec![
                    version_tag(svc, worker, "1.2.3").expect("tag"),
                    version_tag(svc, worker, "10.0.0-rc.1+build.5").expect("tag"),
                ];
                for e in &repo.foundation.environments {
                    for b in &e.branches {
                        let b = b.replace('*', "2026.1");
                        running.push(branch_tag(svc, worker, &b, sha).expect("tag"));
                    }
                }
                for tag in &running {
                    let rule = deciding_rule(&rules, tag)
                        .unwrap_or_else(|| panic!("{tag}: no rule (kept)"));
                    assert!(keeps(rule), "{rel}: {tag} decided by expiring rule {rule}");
                    checked += 1;
                }
                // Feature branches and pull requests expire by age, not by count.
                for b in [
                    "feature/login",
                    "pull/42/merge",
                    "fix-maintenance",
                    "fix/main-page",
                    "main-menu",
                    "feature/dev-tools",
                ] {
                    let env_branch = repo.foundation.environments.iter().any(|e| {
                        e.branches.iter().any(|p| {
                            p == b || p.strip_suffix('*').is_some_and(|pre| b.starts_with(pre))
                        })
                    });
                    if env_branch {
                        continue;
                    }
                    let tag = branch_tag(svc, worker, b, sha).expect("tag");
                    let rule = deciding_rule(&rules, &tag).expect("a rule");
                    assert_eq!(
                        rule["selection"]["countType"], "sinceImagePushed",
                        "{tag}: {rule}"
                    );
                    assert!(rule["selection"]["countNumber"].as_i64().unwrap_or(0) >= 14);
                }
            }
        }
        // prod's own branch is among the protected ones.
        let prod = repo.foundation.environment("prod").expect("prod");
        assert!(!prod.branches.is_empty());
    }
    assert!(checked >= 20, "only {checked} tags");
}

#[test]
fn the_lifecycle_policy_stays_small_with_200_services() {
    let dir = std::env::temp_dir().join(format!("pantstack-synth-200-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("stack/infra/foundation")).expect("mkdir");
    for f in [
        "pantstack.yaml",
        "Pulumi.yaml",
        "Pulumi.test.yaml",
        "Pulumi.prod.yaml",
    ] {
        std::fs::copy(
            root("examples/stack/infra/foundation").join(f),
            dir.join("stack/infra/foundation").join(f),
        )
        .expect("copy");
    }
    for i in 0..200 {
        let infra = dir.join(format!("modules/service{i:03}/infrastructure"));
        std::fs::create_dir_all(&infra).expect("mkdir");
        std::fs::write(
            infra.join("Pulumi.yaml"),
            format!("name: shop-service{i:03}\nruntime: python\n"),
        )
        .expect("write");
        std::fs::write(
            infra.join("pantstack.yaml"),
            format!(
                "service: service{i:03}\nworker:\n  queue: jobs\n  command: [\"/w\"]\nqueues:\n  jobs: {{}}\n"
            ),
        )
        .expect("write");
    }
    let loaded = pantstack_model::load(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.repo.services.len(), 200);
    let o = synth(&loaded.repo, "prod", &Options::default()).expect("synthesizes");
    let shared: Value =
        serde_json::from_str(o.file("shop-shared.json").expect("shared")).expect("json");
    let text =
        shared["Resources"]["Repository"]["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"]
            .as_str()
            .expect("text");
    assert!(text.len() < 30_720, "{} characters", text.len());
    // The same as with one service: nothing in it grows with the services.
    let one = lifecycle_rules(&synth_ok("examples", "prod"), "shop");
    assert_eq!(lifecycle_rules(&o, "shop"), one);
}

/// A fresh account has no AWSServiceRoleForECS, and a cluster with Fargate capacity
/// providers cannot be created without it; an account that has it must be able to
/// skip it (CloudFormation fails on an existing one).
#[test]
fn the_shared_stack_creates_ecs_service_linked_role_unless_it_exists() {
    for (rel, env) in CASES {
        let o = synth_ok(rel, env);
        let shared = o
            .files
            .iter()
            .find(|f| f.name.ends_with("-shared.json"))
            .expect("shared");
        let t: Value = serde_json::from_str(&shared.contents).expect("json");
        let role = &t["Resources"]["EcsLinkedRole"];
        assert_eq!(role["Type"], "AWS::IAM::ServiceLinkedRole", "{rel} {env}");
        assert_eq!(role["Properties"]["AWSServiceName"], "ecs.amazonaws.com");
        assert_eq!(role["Condition"], "CreateEcsServiceLinkedRole");
        assert_eq!(role["DeletionPolicy"], "Retain");
        assert_eq!(
            t["Conditions"]["CreateEcsServiceLinkedRole"],
            serde_json::json!({ "Fn::Equals": [{ "Ref": "EcsServiceLinkedRole" }, "create"] })
        );
        let p = &t["Parameters"]["EcsServiceLinkedRole"];
        assert_eq!(p["Default"], "create");
        assert_eq!(p["AllowedValues"], serde_json::json!(["create", "exists"]));
        let stack = &o.plan.stacks[0];
        assert!(stack.name.ends_with("-shared"));
        assert!(
            stack
                .parameters
                .iter()
                .any(|p| p.name == "EcsServiceLinkedRole" && p.default.as_deref() == Some("create"))
        );
        // The other service-linked roles are created on demand, by the deploy role.
        let fdn = o
            .files
            .iter()
            .find(|f| f.name.ends_with("-foundation.json"))
            .expect("foundation");
        let f: Value = serde_json::from_str(&fdn.contents).expect("json");
        let deploy = f["Resources"]["DeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Sid"] == "ServiceLinkedRoles")
            .expect("ServiceLinkedRoles")
            .clone();
        let names = deploy["Condition"]["StringEquals"]["iam:AWSServiceName"].to_string();
        for n in [
            "elasticloadbalancing.amazonaws.com",
            "ecs.application-autoscaling.amazonaws.com",
        ] {
            assert!(names.contains(n), "{n}: {names}");
        }
    }
}

/// Handler permissions the deploy role deliberately lacks, each with why no stack
/// of ours needs it (the handlers list every permission any property may need).
const NOT_GRANTED: &[(&str, &str)] = &[
    (
        "iam:DeleteRolePermissionsBoundary",
        "would let a role leave the permissions boundary; no template removes one",
    ),
    (
        "ecs:PutAccountSetting",
        "account-wide ECS settings are the administrator's; clusters set none",
    ),
    (
        "ecs:PutAccountSettingDefault",
        "account-wide ECS settings are the administrator's; clusters set none",
    ),
    (
        "lambda:PutProvisionedConcurrencyConfig",
        "scalable targets here scale ECS services, never Lambda",
    ),
    (
        "lambda:GetProvisionedConcurrencyConfig",
        "scalable targets here scale ECS services, never Lambda",
    ),
    (
        "lambda:DeleteProvisionedConcurrencyConfig",
        "scalable targets here scale ECS services, never Lambda",
    ),
    (
        "cognito-idp:DescribeUserPoolClient",
        "no listener or rule authenticates through Cognito",
    ),
    (
        "elasticloadbalancing:ModifyIpPools",
        "load balancers use no IPAM pool",
    ),
    ("firehose:TagDeliveryStream", "log groups deliver nowhere"),
    ("logs:CreateLogDelivery", "log groups deliver nowhere"),
    (
        "logs:PutBearerTokenAuthentication",
        "log groups take no bearer tokens",
    ),
    (
        "logs:PutResourcePolicy",
        "log groups carry no resource policy",
    ),
    (
        "logs:DeleteResourcePolicy",
        "log groups carry no resource policy",
    ),
    (
        "s3:REST.PUT.OBJECT",
        "not an IAM action (an S3 access-log operation name in the schema)",
    ),
    (
        "s3:PutBucketAcl",
        "ACLs are disabled (BucketOwnerEnforced); no bucket sets AccessControl",
    ),
    (
        "s3:PutObjectAcl",
        "ACLs are disabled (BucketOwnerEnforced); no bucket sets AccessControl",
    ),
    (
        "s3:DeleteObject",
        "objects belong to the services; CloudFormation never deletes them",
    ),
    (
        "s3:CreateBucketMetadataTableConfiguration",
        "no bucket has S3 Metadata tables",
    ),
    (
        "s3:DeleteBucketMetadataTableConfiguration",
        "no bucket has S3 Metadata tables",
    ),
    (
        "s3:UpdateBucketMetadataAnnotationTableConfiguration",
        "no bucket has S3 Metadata tables",
    ),
    (
        "s3:UpdateBucketMetadataInventoryTableConfiguration",
        "no bucket has S3 Metadata tables",
    ),
    (
        "s3:UpdateBucketMetadataJournalTableConfiguration",
        "no bucket has S3 Metadata tables",
    ),
    ("s3tables:*", "no bucket has S3 Metadata tables"),
];

/// Operation names the schemas list that are not IAM actions, and the IAM action
/// S3 authorizes each with.
const AUTHORIZED_AS: &[(&str, &str)] = &[
    ("s3:PutBucketReplication", "s3:PutReplicationConfiguration"),
    (
        "s3:DeleteBucketReplication",
        "s3:PutReplicationConfiguration",
    ),
    ("s3:DeleteBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("s3:DeleteBucketLifecycle", "s3:PutLifecycleConfiguration"),
    ("s3:DeleteBucketCors", "s3:PutBucketCORS"),
    (
        "s3:DeleteBucketAnalyticsConfiguration",
        "s3:PutAnalyticsConfiguration",
    ),
    (
        "s3:DeleteBucketMetricsConfiguration",
        "s3:PutMetricsConfiguration",
    ),
    (
        "s3:PutObjectLockConfiguration",
        "s3:PutBucketObjectLockConfiguration",
    ),
];

/// IAM's action match: case-insensitive, `*` any run, `?` one character.
fn iam_match(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((b'?', rest)) => !a.is_empty() && go(rest, &a[1..]),
            Some((c, rest)) => {
                a.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &a[1..])
            }
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Every Allow statement's actions of a role: inline policies and the managed
/// policies of the same template it attaches.
fn role_actions(t: &Value, role: &str) -> Vec<String> {
    let props = &t["Resources"][role]["Properties"];
    let mut docs: Vec<Value> = as_list(&props["Policies"])
        .iter()
        .map(|p| p["PolicyDocument"].clone())
        .collect();
    for m in as_list(&props["ManagedPolicyArns"]) {
        if let Some(id) = m["Ref"].as_str() {
            docs.push(t["Resources"][id]["Properties"]["PolicyDocument"].clone());
        }
    }
    let mut out = Vec::new();
    for d in docs {
        for st in as_list(&d["Statement"]) {
            if st["Effect"] == "Allow" {
                for a in as_list(&st["Action"]) {
                    out.push(a.as_str().unwrap_or("").to_string());
                }
            }
        }
    }
    out
}

#[test]
fn deploy_role_allows_every_handler_permission() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root("tests/fixtures/cfn-handler-permissions.json"))
            .expect("tests/fixtures/cfn-handler-permissions.json"),
    )
    .expect("json");
    let handlers = &fixture["types"];
    let mut unused: std::collections::BTreeSet<&str> =
        NOT_GRANTED.iter().map(|(p, _)| *p).collect();
    let mut checked = 0;
    for (rel, env) in CASES {
        let o = synth_ok(rel, env);
        let fdn = o
            .files
            .iter()
            .find(|f| f.name.ends_with("-foundation.json"))
            .expect("foundation");
        let fdn: Value = serde_json::from_str(&fdn.contents).expect("json");
        let allowed = role_actions(&fdn, "DeployRole");
        // What the deploy role deploys: service and replica stacks (the shared and
        // foundation stacks are an administrator's).
        for f in &o.files {
            if f.name == "stacks.json"
                || f.name.ends_with("-shared.json")
                || f.name.ends_with("-foundation.json")
            {
                continue;
            }
            let t: Value = serde_json::from_str(&f.contents).expect("json");
            for (id, r) in resources(&t) {
                let ty = r["Type"].as_str().unwrap_or("");
                let hs = handlers[ty].as_object().unwrap_or_else(|| {
                    panic!("{ty} ({} {id}) is not in tests/fixtures/cfn-handler-permissions.json: run tests/cfn-handler-permissions.py", f.name)
                });
                for (h, perms) in hs {
                    for p in as_list(perms) {
                        let p = p.as_str().unwrap_or("");
                        let p = AUTHORIZED_AS
                            .iter()
                            .find(|(op, _)| *op == p)
                            .map_or(p, |(_, iam)| *iam);
                        if let Some((k, _)) = NOT_GRANTED.iter().find(|(k, _)| iam_match(k, p)) {
                            unused.remove(k);
                            assert!(
                                !allowed.iter().any(|a| iam_match(a, p)),
                                "{p} is listed as not granted but the deploy role allows it"
                            );
                            continue;
                        }
                        checked += 1;
                        assert!(
                            allowed.iter().any(|a| iam_match(a, p)),
                            "{rel} {env}: the deploy role cannot {p} ({ty} {h} handler, {} {id})",
                            f.name
                        );
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} permissions checked");
    assert!(unused.is_empty(), "stale NOT_GRANTED entries: {unused:?}");
}

/// IAM allows 10,240 characters (without whitespace) of inline policies per role.
#[test]
fn foundation_role_policies_fit_iams_limits() {
    for (rel, env) in CASES {
        let o = synth_ok(rel, env);
        let fdn = o
            .files
            .iter()
            .find(|f| f.name.ends_with("-foundation.json"))
            .expect("foundation");
        let t: Value = serde_json::from_str(&fdn.contents).expect("json");
        for (id, r) in resources(&t) {
            let props = &r["Properties"];
            let (inline, max) = match r["Type"].as_str() {
                Some("AWS::IAM::Role") => (
                    as_list(&props["Policies"])
                        .iter()
                        .map(|p| p["PolicyDocument"].to_string().len())
                        .sum::<usize>(),
                    10_240,
                ),
                Some("AWS::IAM::ManagedPolicy") => {
                    (props["PolicyDocument"].to_string().len(), 6_144)
                }
                _ => continue,
            };
            assert!(inline <= max, "{rel} {env} {id}: {inline} characters");
        }
    }
}

/// The replica stacks live in another region: the CI role must be able to deploy
/// them there (and only them).
#[test]
fn ci_role_may_deploy_the_replica_stacks_in_their_region() {
    let o = synth_ok("tests/fixtures/synth-varied", "prod");
    let replica = o
        .plan
        .stacks
        .iter()
        .find(|s| s.name.ends_with("-replica"))
        .expect("a replica stack");
    assert_eq!(replica.deployed_by, "ci");
    let t: Value =
        serde_json::from_str(o.file("varied-prod-foundation.json").expect("fdn")).expect("json");
    let statements =
        t["Resources"]["CiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements")
            .clone();
    let want = format!(
        "arn:${{AWS::Partition}}:cloudformation:{}:${{AWS::AccountId}}:stack/varied-prod-*-replica/*",
        replica.region
    );
    for sid in ["ChangeStacksOnlyAsTheDeployRole", "ReadStacks"] {
        let st = statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("{sid}"));
        let resources: Vec<String> = as_list(&st["Resource"])
            .iter()
            .map(|r| r["Fn::Sub"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(resources.contains(&want), "{sid}: {resources:?}");
        assert!(
            resources
                .iter()
                .any(|r| r.contains(":cloudformation:${AWS::Region}:")),
            "{sid}: {resources:?}"
        );
    }
}

/// IAM role and policy names and dashboard names are account-wide: the same
/// environment deployed in a second region must not collide, so they carry the
/// region, and fit their limits with the longest one.
#[test]
fn account_wide_names_carry_the_region() {
    let mut names = 0;
    for (case, file, t) in all_templates() {
        for (id, r) in resources(&t) {
            let (key, max) = match r["Type"].as_str() {
                Some("AWS::IAM::Role") => ("RoleName", 64),
                Some("AWS::IAM::ManagedPolicy") => ("ManagedPolicyName", 128),
                Some("AWS::CloudWatch::Dashboard") => ("DashboardName", 255),
                _ => continue,
            };
            let Some(name) = r["Properties"].get(key) else {
                // Generated by CloudFormation: unique already.
                continue;
            };
            let sub = name["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{case} {file} {id}: {key} {name} names no region"));
            assert!(
                sub.ends_with("-${AWS::Region}"),
                "{case} {file} {id}: {sub}"
            );
            let real = sub.replace("${AWS::Region}", "ap-southeast-3");
            assert!(real.len() <= max, "{case} {file} {id}: {real}");
            names += 1;
        }
    }
    assert!(names > 30, "only {names} names");
}

/// ECS alternates a blue/green service between its two target groups: alarms on
/// targets, request-count scaling and the dashboard must see both, not the first.
#[test]
fn blue_green_monitoring_watches_both_target_groups() {
    let o = synth_ok("tests/fixtures/synth-varied", "test");
    let t: Value =
        serde_json::from_str(o.file("varied-test-web.json").expect("web")).expect("json");
    let r = &t["Resources"];
    assert!(
        r["AlternateTargetGroup"].is_object(),
        "the fixture's web is blue/green"
    );
    let unhealthy = r["UnhealthyHostsAlarm"]["Properties"].to_string();
    assert!(
        unhealthy.contains("\"TargetGroup\",\"TargetGroupFullName\"")
            && unhealthy.contains("\"AlternateTargetGroup\",\"TargetGroupFullName\"")
            && unhealthy.contains("MAX([m0, m1])"),
        "{unhealthy}"
    );
    assert!(r["UnhealthyHostsAlarm"]["Properties"]["MetricName"].is_null());
    let dims = r["Target5xxAlarm"]["Properties"]["Dimensions"].to_string();
    assert!(
        dims.contains("LoadBalancer") && !dims.contains("TargetGroup"),
        "{dims}"
    );
    let scaling = r["RequestScaling"]["Properties"].to_string();
    assert!(
        scaling.contains("CustomizedMetricSpecification")
            && scaling.contains("RequestCount")
            && !scaling.contains("ALBRequestCountPerTarget"),
        "{scaling}"
    );
    let dash = r["Dashboard"]["Properties"].to_string();
    assert!(
        dash.contains("AlternateTargetGroup.TargetGroupFullName"),
        "{dash}"
    );
    // A rolling service keeps the one-group forms.
    let o = synth_ok("examples", "test");
    let t: Value = serde_json::from_str(o.file("shop-test-api.json").expect("api")).expect("json");
    let r = &t["Resources"];
    assert!(r["AlternateTargetGroup"].is_null());
    assert_eq!(
        r["UnhealthyHostsAlarm"]["Properties"]["MetricName"],
        "UnHealthyHostCount"
    );
}

/// `registry.replicate_to`: ECR replicates the repository's images to the
/// disaster-recovery region (not to itself when deployed there).
#[test]
fn images_replicate_to_the_disaster_recovery_region() {
    let o = synth_ok("tests/fixtures/synth-varied", "test");
    let t: Value =
        serde_json::from_str(o.file("varied-shared.json").expect("shared")).expect("json");
    let r = &t["Resources"]["ImageReplication"];
    assert_eq!(r["Type"], "AWS::ECR::ReplicationConfiguration");
    assert_eq!(r["Condition"], "ReplicateImages");
    let rule = &r["Properties"]["ReplicationConfiguration"]["Rules"][0];
    assert_eq!(rule["Destinations"][0]["Region"], "eu-west-1");
    assert_eq!(rule["RepositoryFilters"][0]["Filter"], "varied-images");
    assert_eq!(
        t["Conditions"]["ReplicateImages"].to_string(),
        r#"{"Fn::Not":[{"Fn::Equals":[{"Ref":"AWS::Region"},"eu-west-1"]}]}"#
    );
    let o = synth_ok("examples", "test");
    let t: Value = serde_json::from_str(o.file("shop-shared.json").expect("shared")).expect("json");
    assert!(
        t["Resources"]["ImageReplication"].is_null(),
        "none unless configured"
    );
}

/// A secret's `rotation_days` on AWS: Parameter Store's NoChangeNotification events
/// for the service's parameters reach its alarm topic through EventBridge.
#[test]
fn rotation_notifications_reach_the_alarm_topic() {
    let o = synth_ok("tests/fixtures/synth-varied", "test");
    let t: Value =
        serde_json::from_str(o.file("varied-test-web.json").expect("web")).expect("json");
    let rule = &t["Resources"]["SecretRotationRule"];
    assert_eq!(rule["Type"], "AWS::Events::Rule");
    let p = &rule["Properties"];
    assert_eq!(p["EventPattern"]["source"][0], "aws.ssm");
    assert_eq!(
        p["EventPattern"]["detail-type"][0],
        "Parameter Store Policy Action"
    );
    assert_eq!(
        p["EventPattern"]["detail"]["parameter-name"][0]["prefix"],
        "/varied/test/web/"
    );
    assert_eq!(
        p["Targets"][0]["Arn"],
        "arn:aws:sns:eu-central-1:123456789012:oncall"
    );
    // No alarm topic (the example's api): nothing to notify.
    let o = synth_ok("examples", "test");
    let t: Value = serde_json::from_str(o.file("shop-test-api.json").expect("api")).expect("json");
    assert!(t["Resources"]["SecretRotationRule"].is_null());
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// Calls both ways (web → store, store → web) deploy: no service stack imports
/// another's security group; the environment's Service Connect stack, after every
/// participant, holds each call's ingress on the callee's task group and the
/// matching egress on each of the caller's groups, on the callee's port only.
#[test]
fn calls_both_ways_need_no_import_between_service_stacks() {
    let dir = std::env::temp_dir().join(format!("pantstack-synth-mutual-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_tree(&root("tests/fixtures/synth-varied"), &dir);
    let store = dir.join("modules/store/infrastructure/pantstack.yaml");
    let t = std::fs::read_to_string(&store).expect("store");
    std::fs::write(&store, t.replacen("http:\n", "calls: [web]\nhttp:\n", 1)).expect("write");
    let o = synth_ok(dir.to_str().expect("utf-8"), "test");
    let _ = std::fs::remove_dir_all(&dir);

    let sc = o
        .plan
        .stacks
        .iter()
        .find(|s| s.name == "varied-test-service-connect")
        .expect("the Service Connect stack");
    assert_eq!(
        sc.depends_on,
        ["varied-test-mailer", "varied-test-store", "varied-test-web"]
    );
    assert_eq!(
        o.plan.stacks.last().map(|s| s.name.as_str()),
        Some("varied-test-service-connect"),
        "deployed after every service stack"
    );
    let deps = |name: &str| {
        o.plan
            .stacks
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.depends_on.clone())
            .unwrap_or_default()
    };
    assert!(!deps("varied-test-store").contains(&"varied-test-web".to_string()));
    assert!(!deps("varied-test-web").contains(&"varied-test-store".to_string()));
    for f in &o.files {
        if f.name.contains("-service-connect") || f.name == "stacks.json" {
            continue;
        }
        for part in f.contents.split("\"Fn::ImportValue\":\"").skip(1) {
            let imported = part.split('"').next().unwrap_or_default();
            assert!(
                !imported.ends_with("-task-sg") && !imported.ends_with("-worker-sg"),
                "{} imports {imported}",
                f.name
            );
        }
    }
    let file = o
        .files
        .iter()
        .find(|f| f.name == "varied-test-service-connect.json")
        .expect("template");
    let t: Value = serde_json::from_str(&file.contents).expect("json");
    let mut rules: Vec<(String, String, String, i64)> = resources(&t)
        .iter()
        .map(|(_, r)| {
            let p = &r["Properties"];
            let imp = |k: &str| p[k]["Fn::ImportValue"].as_str().unwrap_or("?").to_string();
            let (group, other) = match r["Type"].as_str() {
                Some("AWS::EC2::SecurityGroupIngress") => ("in", imp("SourceSecurityGroupId")),
                Some("AWS::EC2::SecurityGroupEgress") => ("out", imp("DestinationSecurityGroupId")),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(p["IpProtocol"], "tcp");
            assert_eq!(p["FromPort"], p["ToPort"]);
            (
                group.to_string(),
                imp("GroupId"),
                other,
                p["FromPort"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    rules.sort();
    let want = |d: &str, g: &str, o: &str, p: i64| {
        (
            d.to_string(),
            format!("varied-test-{g}"),
            format!("varied-test-{o}"),
            p,
        )
    };
    let mut expected = vec![
        // mailer's worker calls web (port 3000)
        want("in", "web-task-sg", "mailer-worker-sg", 3000),
        want("out", "mailer-worker-sg", "web-task-sg", 3000),
        // web calls store (8080), store calls web (3000)
        want("in", "store-task-sg", "web-task-sg", 8080),
        want("out", "web-task-sg", "store-task-sg", 8080),
        want("in", "web-task-sg", "store-task-sg", 3000),
        want("out", "store-task-sg", "web-task-sg", 3000),
    ];
    expected.sort();
    assert_eq!(rules, expected);
}

/// The estimate of the example's `test` and `prod` against figures computed by
/// hand from the table's published prices (us-east-1, 730 hours).
#[test]
fn cost_estimate_matches_hand_computed_figures() {
    use pantstack_synth::cost;
    let close = |a: f64, b: f64| (a - b).abs() < 0.005;
    let run = |env: &str| {
        let o = synth_ok("examples", env);
        let p = cost::Prices::for_region(cost::PRICES, "us-east-1").expect("prices");
        let lines = cost::estimate(&o, &p);
        let total = |f: fn(&cost::Line) -> f64| lines.iter().map(f).sum::<f64>();
        (lines.clone(), total(|l| l.min), total(|l| l.max))
    };
    // One on-demand task of 0.25 vCPU / 0.5 GB, and one on FARGATE_SPOT, a month.
    let od = 730.0 * (0.25 * 0.04048 + 0.5 * 0.004445); // 9.010025
    let spot = 730.0 * (0.25 * 0.01334058 + 0.5 * 0.00146489); // 2.9693407
    let alb = 730.0 * (0.0225 + 0.008 + 2.0 * 0.005); // hours + 1 LCU + 2 addresses
    let nat = 730.0 * (0.045 + 0.005);

    let (lines, min, max) = run("test");
    // test: api (1..3, worker 1..4) and reports (1..2), base 1 on FARGATE, then 1:4.
    // Alarms: per metric read, plus two per target-tracking policy (api has three).
    let api_min = alb + od + od + (6.0 + 6.0) * 0.10 + 3.0 + 2.0 * 0.25;
    let reports_min = alb + od + (3.0 + 2.0) * 0.10 + 3.0 + 0.25;
    assert!(close(min, nat + 1.0 + api_min + reports_min), "{min}");
    let api_max = alb + (1.4 * od + 1.6 * spot) + (1.6 * od + 2.4 * spot) + 1.2 + 3.0 + 7.0 * 0.25;
    let reports_max = alb + (1.2 * od + 0.8 * spot) + 0.5 + 3.0 + 2.0 * 0.25;
    assert!(close(max, nat + 1.0 + api_max + reports_max), "{max}");
    assert!(
        lines.iter().any(|l| l.stack == "shop-test-foundation"
            && l.item.contains("NAT")
            && close(l.min, 36.5)),
        "{lines:#?}"
    );

    // prod: two NAT gateways, five interface endpoints in two subnets, tasks of
    // 0.5 vCPU / 1 GB for api (2..10, worker 1..6, base 2).
    let (_, min, _) = run("prod");
    let od1 = 730.0 * (0.5 * 0.04048 + 1.0 * 0.004445);
    let foundation = 2.0 * nat + 5.0 * 2.0 * 730.0 * 0.01 + 1.0;
    let api = alb + 2.0 * od1 + od1 + 1.2 + 3.0 + 3.0 * 0.25;
    let reports = alb + (1.2 * od + 0.8 * spot) + 0.5 + 3.0 + 2.0 * 0.25;
    assert!(
        close(min, foundation + api + reports),
        "{min} vs {}",
        foundation + api + reports
    );

    // A region the table lacks is said, not guessed.
    let err = cost::Prices::for_region(cost::PRICES, "ap-southeast-4").unwrap_err();
    assert!(err.contains("no prices for ap-southeast-4"), "{err}");
}

/// A monorepo of `n` HTTP services (each with a worker) sharing each
/// environment's load balancers, as many as they need.
fn shared_lb_monorepo(n: usize) -> pantstack_model::Monorepo {
    // 100 rules and target groups, and 1,000 targets, an ALB: each service may
    // run 10 tasks, 20 during a rolling deployment.
    shared_lb_monorepo_on(n, n.div_ceil(90).max((n * 20).div_ceil(1000)), "")
}

/// `n` HTTP services on `lbs` shared load balancers, `extra` appended to the
/// first service's manifest.
fn shared_lb_monorepo_on(n: usize, lbs: usize, extra: &str) -> pantstack_model::Monorepo {
    let names: Vec<String> = (0..n).map(|i| format!("svc{i:03}")).collect();
    shared_lb_repo(&names, &format!("  load_balancers: {lbs}\n"), &[], extra)
}

/// A monorepo whose HTTP services (each with a worker) are `names` (`svc000`
/// with a host rule), sharing each environment's load balancer; `network` adds
/// lines under `network:`, `service_lines` lines to every service's `http:`.
fn shared_lb_named(
    names: &[String],
    network: &str,
    service_lines: &[&str],
) -> pantstack_model::Monorepo {
    shared_lb_repo(names, network, service_lines, "")
}

/// [`shared_lb_named`], with `first_extra` appended to `svc000`'s manifest.
fn shared_lb_repo(
    names: &[String],
    network: &str,
    service_lines: &[&str],
    first_extra: &str,
) -> pantstack_model::Monorepo {
    let tag = pantstack_model::physical::short_hash(&format!(
        "{names:?}{network}{service_lines:?}{first_extra}"
    ));
    // Tests run in parallel: each call has its own directory.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "pantstack-synth-shared-{}-{tag}-{call}-{}",
        names.len(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("stack/infra/foundation")).expect("mkdir");
    for f in [
        "Pulumi.yaml",
        "Pulumi.test.yaml",
        "Pulumi.prod.yaml",
        "Pulumi.preview.yaml",
    ] {
        std::fs::copy(
            root("examples/stack/infra/foundation").join(f),
            dir.join("stack/infra/foundation").join(f),
        )
        .expect("copy");
    }
    let m = std::fs::read_to_string(root("examples/stack/infra/foundation/pantstack.yaml"))
        .expect("manifest");
    assert!(m.contains("network:\n"));
    std::fs::write(
        dir.join("stack/infra/foundation/pantstack.yaml"),
        m.replacen(
            "network:\n",
            &format!("network:\n  load_balancer: shared\n{network}"),
            1,
        ),
    )
    .expect("write");
    for name in names {
        let infra = dir.join(format!("modules/{name}/infrastructure"));
        std::fs::create_dir_all(&infra).expect("mkdir");
        std::fs::write(
            infra.join("Pulumi.yaml"),
            format!("name: shop-{name}\nruntime: python\n"),
        )
        .expect("write");
        let (rules, first) = if name == "svc000" {
            ("  rules:\n    - host: admin.example.com\n", first_extra)
        } else {
            ("", "")
        };
        let extra: String = service_lines.iter().map(|l| format!("  {l}\n")).collect();
        std::fs::write(
            infra.join("pantstack.yaml"),
            format!(
                "service: {name}\nhttp:\n  command: [\"/s\"]\n{extra}{rules}worker:\n  queue: jobs\n  command: [\"/w\"]\nqueues:\n  jobs: {{}}\n{first}"
            ),
        )
        .expect("write");
    }
    let loaded = pantstack_model::load(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.repo
}

/// `network.load_balancer: shared`: the environment's load balancers (each
/// preview its own), as few as the per-ALB quotas of 100 rules and 100 target
/// groups allow; services add rules with unique, stable priorities; 200 services
/// stay within the default quota of 50 load balancers a region.
#[test]
fn a_shared_load_balancer_serves_200_services_per_environment() {
    let repo = shared_lb_monorepo(200);
    for env in ["test", "prod", "preview-3"] {
        let o = synth(&repo, env, &Options::default()).expect("synthesizes");
        let lb_stack = format!("shop-{env}-load-balancer");
        let mut lbs = 0;
        let mut priorities = Vec::new();
        for f in &o.files {
            if f.name == "stacks.json" {
                continue;
            }
            let t: Value = serde_json::from_str(&f.contents).expect("json");
            for (id, r) in resources(&t) {
                match r["Type"].as_str().unwrap_or_default() {
                    "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
                        lbs += 1;
                        assert_eq!(f.name, format!("{lb_stack}.json"), "{id}");
                    }
                    "AWS::ElasticLoadBalancingV2::ListenerRule" => {
                        let listener = r["Properties"]["ListenerArn"]["Fn::ImportValue"]
                            .as_str()
                            .expect("an imported listener")
                            .to_string();
                        assert!(listener.starts_with(&format!("shop-{env}-lb-ListenerArn")));
                        priorities.push((
                            listener,
                            r["Properties"]["Priority"].as_u64().expect("priority"),
                        ));
                    }
                    "AWS::EC2::SecurityGroupIngress" if id == "TaskIngressFromLoadBalancer" => {
                        assert_eq!(
                            r["Properties"]["SourceSecurityGroupId"]["Fn::ImportValue"],
                            format!("shop-{env}-lb-SecurityGroupId")
                        );
                    }
                    _ => {}
                }
            }
        }
        // An ALB takes 100 rules, 100 target groups and 1,000 targets: 200
        // services of up to 10 tasks (20 during a rolling deployment) need 4.
        assert_eq!(lbs, 4, "{env}: four load balancers");
        assert_eq!(priorities.len(), 200, "{env}: one rule per service");
        let mut per_listener: std::collections::BTreeMap<String, usize> = Default::default();
        for (l, _) in &priorities {
            *per_listener.entry(l.clone()).or_default() += 1;
        }
        assert_eq!(per_listener.len(), 4);
        assert!(per_listener.values().all(|n| *n <= 100), "{per_listener:?}");
        let n = priorities.len();
        priorities.sort_unstable();
        priorities.dedup();
        assert_eq!(
            priorities.len(),
            n,
            "{env}: priorities are unique on each listener"
        );
        assert!(priorities.iter().all(|(_, p)| (1..=50_000).contains(p)));
        // The load balancer's stack comes before every HTTP service's.
        let plan = o.file("stacks.json").expect("plan");
        let plan: Value = serde_json::from_str(plan).expect("json");
        let svc = plan["stacks"]
            .as_array()
            .expect("stacks")
            .iter()
            .find(|s| s["name"] == format!("shop-{env}-svc007"))
            .expect("svc007");
        assert!(
            as_list(&svc["depends_on"]).contains(&json!(lb_stack)),
            "{svc}"
        );
        // The service's URL is its path on the shared load balancer.
        let t: Value = serde_json::from_str(o.file(&format!("shop-{env}-svc007.json")).expect("t"))
            .expect("json");
        assert!(
            t["Outputs"]["Url"].to_string().contains("/svc007"),
            "{}",
            t["Outputs"]["Url"]
        );
        let rule = &t["Resources"]["ListenerRule1"]["Properties"]["Conditions"][0];
        assert_eq!(
            rule["PathPatternConfig"]["Values"],
            json!(["/svc007", "/svc007/*"])
        );
    }
    // Priorities do not move when a service is added.
    let before = synth(&shared_lb_monorepo(20), "test", &Options::default()).expect("20");
    let after = synth(&shared_lb_monorepo(21), "test", &Options::default()).expect("21");
    let priority = |o: &pantstack_synth::Output, s: &str| -> Value {
        let t: Value =
            serde_json::from_str(o.file(&format!("shop-test-{s}.json")).expect("t")).expect("json");
        t["Resources"]["ListenerRule1"]["Properties"]["Priority"].clone()
    };
    let moved = (0..20)
        .map(|i| format!("svc{i:03}"))
        .filter(|s| priority(&before, s) != priority(&after, s))
        .count();
    assert!(
        moved <= 1,
        "{moved} services' rules moved when one was added"
    );
}

/// The quota pre-flight at 200 services (each with a worker, `scaling.max` 10),
/// test, prod and `previews.max` (5) previews: with the shared load balancers
/// (as many as `synth` asks for) every quota fits: load balancers, rules, target
/// groups and targets per load balancer, and IAM roles (one task role per
/// service per long-lived environment, one shared by every preview of a
/// service, one execution role per environment).
#[test]
fn quotas_at_200_services() {
    let repo = shared_lb_monorepo(200);
    let v = pantstack_synth::quotas::check(&repo).expect("report");
    let q = |name: &str| -> Value {
        v["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .find(|q| q["quota"].as_str().is_some_and(|n| n.starts_with(name)))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v:#}"))
    };
    assert_eq!(v["previews"], 5, "{v:#}");
    let albs = q("Application Load Balancers");
    assert_eq!(albs["fits"], true, "{albs:#}");
    assert!(
        albs["needed"].as_u64().is_some_and(|n| n >= 4 * 2 + 5),
        "{albs:#}"
    );
    for per_lb in [
        "Listener rules per Application Load Balancer",
        "Target groups per Application Load Balancer",
        "Targets per Application Load Balancer",
    ] {
        let x = q(per_lb);
        assert_eq!(x["fits"], true, "{x:#}");
        assert!(x["needed"].as_u64().is_some_and(|n| n > 0), "{x:#}");
    }
    let targets = q("Targets per Application Load Balancer");
    assert!(
        targets["needed"]
            .as_u64()
            .is_some_and(|n| n <= 1000 && n > 900),
        "{targets:#}"
    );
    let roles = q("IAM roles");
    assert_eq!(roles["fits"], true, "{roles:#}");
    // 200 task roles in test, in prod and in the previews' foundation, an
    // execution role per foundation, and the foundations' own roles; nothing
    // per preview.
    let needed = roles["needed"].as_u64().expect("needed");
    assert!((603..650).contains(&needed), "{roles:#}");
    let by_env = roles["by_environment"].as_array().expect("parts");
    assert!(
        by_env.iter().all(|p| !p["environment"]
            .as_str()
            .unwrap_or_default()
            .ends_with("(5)")
            || p["needed"] == 0),
        "previews create no roles: {roles:#}"
    );
    // 200 services × (an HTTP role and a worker) of 0.25 vCPU, each role's
    // first task on FARGATE: 100 vCPUs on demand per environment even at the
    // minimum task counts, far past the default of 6 a new account gets. Every
    // other quota fits; the Fargate ones name the increase to ask for.
    let od = q("Fargate On-Demand vCPUs");
    let spot = q("Fargate Spot vCPUs");
    for f in [&od, &spot] {
        assert_eq!(f["fits"], false, "{f:#}");
        assert_eq!(f["limit"], 6, "{f:#}");
        let needed = f["needed"].as_f64().expect("needed");
        assert!(
            (f["over_by"].as_f64().expect("over") - (needed - 6.0)).abs() < 1e-6,
            "{f:#}"
        );
        let fix = f["fix"].as_str().expect("fix");
        assert!(
            fix.contains(&format!("--desired-value {}", needed.ceil())),
            "{fix}"
        );
    }
    let at_min = |env: &str| -> f64 {
        od["by_environment"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|p| p["environment"] == env)
            .and_then(|p| p["needed_at_min"].as_f64())
            .unwrap_or_else(|| panic!("no {env} in {od:#}"))
    };
    assert_eq!(at_min("test"), 100.0, "{od:#}");
    assert_eq!(at_min("prod"), 100.0, "{od:#}");
    // Previews run at reduced capacity, nothing reserved on demand.
    assert!(
        od["by_environment"]
            .as_array()
            .expect("parts")
            .iter()
            .all(|p| p["environment"] != "preview-* (5)"),
        "{od:#}"
    );
    assert_eq!(od["needed_at_min"], 200.0, "{od:#}");
    assert_eq!(od["fits_at_min"], false, "{od:#}");
    let fix = od["fix"].as_str().expect("fix");
    assert!(fix.contains("even at the minimum task counts"), "{fix}");
    // At 10 tasks a role (1 on FARGATE, then 1:4): 2 on demand and 8 on Spot;
    // a preview's 2 tasks a role both on Spot.
    assert_eq!(od["needed"], 2.0 * 200.0 * 2.0 * 2.0 * 0.25, "{od:#}");
    assert_eq!(
        spot["needed"],
        2.0 * 200.0 * 2.0 * 8.0 * 0.25 + 5.0 * 200.0 * 2.0 * 2.0 * 0.25,
        "{spot:#}"
    );
    assert_eq!(v["exceeded"], 2, "{v:#}");
    assert!(
        v["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .filter(|q| q["fits"] == false)
            .all(|q| q["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("fargate/"))),
        "{v:#}"
    );

    // On 3 shared load balancers (enough for the rules and target groups, not
    // the targets) `synth` refuses, naming the count to set.
    let three = shared_lb_monorepo_on(200, 3, "");
    let diags = synth(&three, "prod", &Options::default()).expect_err("4,000 targets on 3");
    let d = diags
        .iter()
        .find(|d| d.code == "load-balancers-full")
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(d.message.contains("need 4 shared load balancers"), "{d:?}");
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("network.load_balancers: 4")),
        "{d:?}"
    );
    assert!(pantstack_synth::quotas::check(&three).is_err());

    // One service that alone may register more targets than an ALB takes.
    let big = shared_lb_monorepo_on(2, 1, "scaling:\n  max: 600\n");
    let diags = synth(&big, "prod", &Options::default()).expect_err("1,200 targets");
    let d = diags
        .iter()
        .find(|d| d.code == "too-many-targets")
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(
        d.message.contains("svc000") && d.message.contains("1200 targets"),
        "{d:?}"
    );
    assert!(
        d.file.ends_with("svc000/infrastructure/pantstack.yaml"),
        "{d:?}"
    );
    assert!(
        !diags.iter().any(|d| d.code == "load-balancers-full"),
        "{diags:?}"
    );

    // One load balancer per service: the example fits every quota but the
    // default Fargate vCPUs (`quotas_count_fargate_vcpus...`).
    let per_service = example_with(0, 0);
    let v = pantstack_synth::quotas::check(&per_service).expect("report");
    assert!(
        v["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .all(|q| q["fits"] == true
                || q["code"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("fargate/"))),
        "the example fits: {v:#}"
    );
}

/// The Fargate vCPU quotas, figures computed by hand from the example's stack
/// files: each role's tasks placed as its capacity provider strategy places
/// them (the first `on_demand_base` on FARGATE, then 1:4 by weighted round
/// robin, whole tasks), at the minimum and the maximum task counts, summed
/// over the environments that share the region (previews × `previews.max`).
/// Against the default of 6 vCPUs each: over, by how much, and the increase
/// to ask for; against an account that applies 4,000: fits.
#[test]
fn quotas_count_fargate_vcpus_per_region_at_min_and_max() {
    use pantstack_synth::quotas::{Applied, check, check_with};
    let repo = example_with(0, 0);
    let v = check(&repo).expect("report");
    let q = |v: &Value, name: &str| -> Value {
        v["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .find(|q| q["quota"].as_str().is_some_and(|n| n.starts_with(name)))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v:#}"))
    };
    let part = |f: &Value, env: &str| -> (f64, f64) {
        f["by_environment"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|p| p["environment"] == env)
            .map(|p| {
                (
                    p["needed_at_min"].as_f64().expect("min"),
                    p["needed"].as_f64().expect("max"),
                )
            })
            .unwrap_or_else(|| panic!("no {env} in {f:#}"))
    };
    let od = q(&v, "Fargate On-Demand vCPUs");
    let spot = q(&v, "Fargate Spot vCPUs");
    assert_eq!(od["scope"], "us-east-1");
    assert_eq!(od["code"], "fargate/L-3032A538");
    assert_eq!(spot["code"], "fargate/L-36FBB829");
    // test, 0.25 vCPU tasks: api 1..3 → (1, 0) .. (1, 2); its worker 1..4 →
    // (1, 0) .. (1, 3); reports 1..2 → (1, 0) .. (1, 1).
    assert_eq!(part(&od, "test"), (0.75, 0.75), "{od:#}");
    assert_eq!(part(&spot, "test"), (0.0, 1.5), "{spot:#}");
    // prod: api 0.5 vCPU, base 2: 2..10 → (2, 0) .. (3, 7); its worker 1..6 →
    // (1, 0) .. (2, 4); reports 0.25 vCPU, base 1: 2..4 → (1, 1) .. (1, 3).
    assert_eq!(
        part(&od, "prod"),
        (1.0 + 0.5 + 0.25, 1.5 + 1.0 + 0.25),
        "{od:#}"
    );
    assert_eq!(part(&spot, "prod"), (0.25, 3.5 + 2.0 + 0.75), "{spot:#}");
    // A preview runs at reduced capacity (1..2 tasks a role, no On-Demand
    // base; 0.25 vCPU): by the weights 1:4 both tasks go to Spot, × 5.
    let listed = |f: &Value, env: &str| {
        f["by_environment"]
            .as_array()
            .expect("parts")
            .iter()
            .any(|p| p["environment"] == env)
    };
    assert!(!listed(&od, "preview-* (5)"), "none on demand: {od:#}");
    assert_eq!(
        part(&spot, "preview-* (5)"),
        (5.0 * 0.75, 5.0 * 1.5),
        "{spot:#}"
    );
    // The quota is the region's: the environments add up.
    assert_eq!(od["needed_at_min"], 0.75 + 1.75, "{od:#}");
    assert_eq!(od["needed"], 0.75 + 2.75, "{od:#}");
    assert_eq!(spot["needed_at_min"], 0.25 + 3.75, "{spot:#}");
    assert_eq!(spot["needed"], 1.5 + 6.25 + 7.5, "{spot:#}");
    // On demand fits the default of 6; Spot fits at the minimum, and is over
    // by 9.25 at the maximum: the fix names the quota, the value to ask for
    // and the settings that lower the need.
    assert_eq!(
        (od["limit"].clone(), od["fits"].clone()),
        (json!(6), json!(true))
    );
    assert!(od["fix"].is_null(), "{od:#}");
    assert_eq!(
        (spot["limit"].clone(), spot["fits"].clone()),
        (json!(6), json!(false))
    );
    assert_eq!(spot["fits_at_min"], true, "{spot:#}");
    assert_eq!(spot["over_by"], 9.25, "{spot:#}");
    let fix = spot["fix"].as_str().expect("fix");
    for part in [
        "autoscaling would stop short",
        "over by 9.25",
        "--service-code fargate --quota-code L-36FBB829 --desired-value 16 --region us-east-1",
        "scaling.max",
        "previews.max",
    ] {
        assert!(fix.contains(part), "{part}: {fix}");
    }

    // While one environment deploys every service at once, each role runs up
    // to `MaximumPercent` (200) of its count: old tasks, and as many new ones
    // placed by the same strategy. The largest such addition is prod's (on
    // demand: api 2 → +(2, 0) × 0.5, its worker 1 → +(1, 0) × 0.5, reports 2 →
    // +(1, 1) at the minimum; api 10 → +(3, 7) × 0.5, worker 6 → +(2, 4) × 0.5,
    // reports 4 → +(1, 3) at the maximum). On Spot at the minimum it is one
    // preview's (3 roles × 1 task, all on Spot).
    let deploying = |f: &Value| {
        let d = &f["deploying"];
        (
            d["needed_at_min"].as_f64(),
            d["needed"].as_f64(),
            d["over_by_at_min"].as_f64(),
            d["over_by"].as_f64(),
        )
    };
    assert_eq!(
        deploying(&od),
        (
            Some(2.5 + 1.0 + 0.5 + 0.25),
            Some(3.5 + 1.5 + 1.0 + 0.25),
            None,
            Some(0.25)
        ),
        "{od:#}"
    );
    assert_eq!(od["deploying"]["environment"], "prod", "{od:#}");
    assert_eq!(
        spot["deploying"]["environment_at_min"], "a preview, preview-<pr>,",
        "{spot:#}"
    );
    assert_eq!(
        deploying(&spot),
        (
            Some(4.0 + 0.75),
            Some(15.25 + 3.5 + 2.0 + 0.75),
            None,
            Some(15.5)
        ),
        "{spot:#}"
    );

    // The account's applied values (Service Quotas): both fit.
    let applied = Applied {
        values: vec![
            ("us-east-1".into(), "L-3032A538".into(), 4000),
            ("us-east-1".into(), "L-36FBB829".into(), 4000),
        ],
        unanswered: vec![],
    };
    let a = check_with(&repo, Some(&applied), None).expect("report");
    for name in ["Fargate On-Demand vCPUs", "Fargate Spot vCPUs"] {
        let f = q(&a, name);
        assert_eq!(
            (
                f["source"].as_str(),
                f["limit"].as_u64(),
                f["fits"].as_bool()
            ),
            (Some("account"), Some(4000), Some(true)),
            "{f:#}"
        );
        assert!(f["fix"].is_null() && f["over_by"].is_null(), "{f:#}");
    }
    assert_eq!(a["exceeded"], 0, "{a:#}");

    // Environments in another region count against that region's quota.
    let eu = check_with(&repo, None, Some("eu-west-1")).expect("report");
    assert_eq!(q(&eu, "Fargate On-Demand vCPUs")["scope"], "eu-west-1");
}

/// Every listener rule of a service's template: (logical id, priority, listener
/// export it is on).
fn listener_rules(o: &Output, env: &str, service: &str) -> Vec<(String, u64, String)> {
    let t: Value = serde_json::from_str(
        o.file(&format!("shop-{env}-{service}.json"))
            .unwrap_or_else(|| panic!("no template of {service}")),
    )
    .expect("json");
    let mut out: Vec<(String, u64, String)> = resources(&t)
        .into_iter()
        .filter(|(_, r)| r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule")
        .map(|(id, r)| {
            (
                id.clone(),
                r["Properties"]["Priority"].as_u64().expect("priority"),
                r["Properties"]["ListenerArn"]["Fn::ImportValue"]
                    .as_str()
                    .expect("imported listener")
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// What the aws target reads back before deploying: each deployed service
/// stack's priorities on the shared listeners, by service.
fn deployed(o: &Output, env: &str) -> std::collections::BTreeMap<String, Vec<u32>> {
    let names = pantstack_model::physical::Names::new("shop", env);
    let prefix = format!("shop-{env}-");
    o.files
        .iter()
        .filter_map(|f| {
            let service = f.name.strip_prefix(&prefix)?.strip_suffix(".json")?;
            let ps = pantstack_synth::shared_lb::rule_priorities(&f.contents, &names);
            (!ps.is_empty()).then(|| (service.to_string(), ps))
        })
        .collect()
}

/// `k` service names whose priority blocks collide (offline, each alone would
/// take the same block), sorted.
fn colliding(k: usize) -> (Vec<String>, u32) {
    let none = Default::default();
    let mut by_slot: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for i in 0..5000 {
        let name = format!("svc{i:04}");
        let slot = pantstack_synth::shared_lb::slots(&[name.as_str()], &none)[0].1;
        let same = by_slot.entry(slot).or_default();
        same.push(name);
        if same.len() == k {
            return (same.clone(), slot);
        }
    }
    panic!("no {k} names collide");
}

/// Adding services whose names hash to a deployed service's block: offline the
/// deployed one (later in name order) would move, and CloudFormation would
/// refuse the new rule while the old one holds the priority; with the deployed
/// priorities (what `up`, `diff` and `preview up` read first) it keeps every
/// rule, and the two services added in the same run take two other free blocks.
#[test]
fn adding_a_colliding_service_never_moves_a_deployed_services_rules() {
    let (names, slot) = colliding(3);
    let (a, b, c) = (&names[0], &names[1], &names[2]);
    assert!(a < b && b < c);
    // `c` alone is deployed, in its hashed block (and `x`, an unrelated one).
    let first = shared_lb_named(&[c.clone(), "x".into()], "", &[]);
    let before = synth(&first, "test", &Options::default()).expect("one");
    let c_rules = listener_rules(&before, "test", c);
    assert_eq!(c_rules.len(), 1);
    assert_eq!(c_rules[0].1, u64::from(slot) * 100 + 1);
    let held = deployed(&before, "test");
    assert_eq!(held.len(), 2, "{held:?}");

    let grown = shared_lb_named(&[a.clone(), b.clone(), c.clone(), "x".into()], "", &[]);
    // Offline (no deployed priorities): `a` sorts first and takes the block, so
    // the deployed `c` moves; this is what the deployed priorities prevent.
    let offline = synth(&grown, "test", &Options::default()).expect("offline");
    assert_eq!(
        listener_rules(&offline, "test", a)[0].1,
        u64::from(slot) * 100 + 1
    );
    assert_ne!(listener_rules(&offline, "test", c), c_rules);
    // Pinned: `c` and `x` keep every rule as deployed (the templates' rules are
    // identical); `a` and `b` take distinct blocks that no deployed rule uses.
    let opts = Options {
        deployed_priorities: held.clone(),
        ..Options::default()
    };
    let after = synth(&grown, "test", &opts).expect("pinned");
    assert_eq!(listener_rules(&after, "test", c), c_rules);
    assert_eq!(
        listener_rules(&after, "test", "x"),
        listener_rules(&before, "test", "x")
    );
    let pa = listener_rules(&after, "test", a)[0].1;
    let pb = listener_rules(&after, "test", b)[0].1;
    let used: Vec<u64> = held.values().flatten().map(|p| u64::from(*p)).collect();
    for p in [pa, pb] {
        assert!(
            used.iter().all(|u| (u - 1) / 100 != (p - 1) / 100),
            "{p} in a deployed block {used:?}"
        );
    }
    assert_ne!((pa - 1) / 100, (pb - 1) / 100);
    // The same again (everything now deployed) changes nothing: stable.
    let again = Options {
        deployed_priorities: deployed(&after, "test"),
        ..Options::default()
    };
    assert_eq!(
        synth(&grown, "test", &again).expect("again").files,
        after.files
    );

    // Removing `c` (its stack deleted) moves neither `a` nor `b` back into its block.
    let shrunk = shared_lb_named(&[a.clone(), b.clone(), "x".into()], "", &[]);
    let mut held = deployed(&after, "test");
    held.remove(c.as_str());
    let opts = Options {
        deployed_priorities: held,
        ..Options::default()
    };
    let o = synth(&shrunk, "test", &opts).expect("shrunk");
    assert_eq!(listener_rules(&o, "test", a)[0].1, pa);
    assert_eq!(listener_rules(&o, "test", b)[0].1, pb);
    // While `c`'s stack is still deployed (not pruned), a new service never
    // takes its block either.
    let (more, _) = colliding(4);
    let d = &more[3];
    let with_d = shared_lb_named(&[a.clone(), b.clone(), d.clone(), "x".into()], "", &[]);
    let opts = Options {
        deployed_priorities: deployed(&after, "test"),
        ..Options::default()
    };
    let o = synth(&with_d, "test", &opts).expect("orphan");
    assert_ne!(
        (listener_rules(&o, "test", d)[0].1 - 1) / 100,
        u64::from(slot),
        "the orphaned stack's block was given away"
    );
}

/// A deployed service whose rules grow from one to three keeps its block and
/// its first rule's priority; the new rules take the next priorities of the block.
#[test]
fn a_services_rules_changing_count_stay_in_its_block() {
    let one = shared_lb_named(&["y".into(), "api".into()], "", &[]);
    let before = synth(&one, "test", &Options::default()).expect("one");
    let api = listener_rules(&before, "test", "api");
    // `api` now declares three path rules.
    let mut repo = one;
    let http = repo
        .services
        .iter_mut()
        .find(|u| u.service.name == "api")
        .and_then(|u| u.service.http.as_mut())
        .expect("api's http");
    let rule = |p: &str| pantstack_model::service::ListenerRule {
        path: Some(p.to_string()),
        host: None,
    };
    http.rules = vec![rule("/api/v1/*"), rule("/api/v2/*"), rule("/api/v3/*")];
    let opts = Options {
        deployed_priorities: deployed(&before, "test"),
        ..Options::default()
    };
    let after = synth(&repo, "test", &opts).expect("three rules");
    let grown = listener_rules(&after, "test", "api");
    assert_eq!(grown.len(), 3);
    assert_eq!(grown[0].1, api[0].1, "ListenerRule1 kept its priority");
    assert_eq!(grown[1].1, api[0].1 + 1);
    assert_eq!(grown[2].1, api[0].1 + 2);
}

/// `network.load_balancer_certificate`: each shared load balancer gets an
/// HTTPS:443 listener with the certificate and the TLS 1.3/1.2 policy, port 80
/// redirects to it, the group opens 443, and the services' rules (and a
/// service's own certificate, by SNI) are on the HTTPS listener.
#[test]
fn a_shared_load_balancer_serves_https_with_the_environments_certificate() {
    let cert =
        "arn:aws:acm:us-east-1:123456789012:certificate/0f6c1c3e-1111-2222-3333-444455556666";
    let names = ["web".to_string(), "api".to_string()];
    let repo = shared_lb_named(
        &names,
        &format!("  load_balancer_certificate: {cert}\n"),
        &[],
    );
    let o = synth(&repo, "test", &Options::default()).expect("https");
    let text = o.file("shop-test-load-balancer.json").expect("lb");
    insta::assert_snapshot!("shared-https-test-load-balancer", pretty(text));
    let lb: Value = serde_json::from_str(text).expect("json");
    let https = &lb["Resources"]["HttpsListener0"]["Properties"];
    assert_eq!(https["Port"], 443);
    assert_eq!(https["Protocol"], "HTTPS");
    assert_eq!(https["SslPolicy"], pantstack_synth::service::TLS_POLICY);
    assert_eq!(https["Certificates"], json!([{ "CertificateArn": cert }]));
    assert_eq!(
        https["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"],
        "404"
    );
    let http = &lb["Resources"]["HttpListener0"];
    assert_eq!(http["Properties"]["Port"], 80);
    let redirect = &http["Properties"]["DefaultActions"][0];
    assert_eq!(redirect["Type"], "redirect");
    assert_eq!(redirect["RedirectConfig"]["Protocol"], "HTTPS");
    assert_eq!(redirect["RedirectConfig"]["Port"], "443");
    assert!(
        http["Metadata"].is_null(),
        "a redirecting listener skips no TLS check: {http}"
    );
    let ports: Vec<i64> =
        as_list(&lb["Resources"]["SecurityGroup"]["Properties"]["SecurityGroupIngress"])
            .iter()
            .map(|r| r["FromPort"].as_i64().expect("port"))
            .collect();
    assert_eq!(ports, vec![80, 443]);
    assert_eq!(
        lb["Outputs"]["HttpsListenerArn0"]["Export"]["Name"],
        "shop-test-lb-HttpsListenerArn0"
    );
    // The HTTP listener's export stays: services deployed before HTTPS import it.
    assert_eq!(
        lb["Outputs"]["ListenerArn0"]["Export"]["Name"],
        "shop-test-lb-ListenerArn0"
    );
    for s in &names {
        for (_, _, listener) in listener_rules(&o, "test", s) {
            assert_eq!(listener, "shop-test-lb-HttpsListenerArn0");
        }
        let t: Value =
            serde_json::from_str(o.file(&format!("shop-test-{s}.json")).expect("t")).expect("json");
        assert!(
            t["Outputs"]["Url"].to_string().contains("https://"),
            "{}",
            t["Outputs"]["Url"]
        );
    }
    // Without a certificate: HTTP only, and the rules on the HTTP listener.
    let plain = shared_lb_named(&names, "", &[]);
    let o = synth(&plain, "test", &Options::default()).expect("http");
    let plain_lb = o.file("shop-test-load-balancer.json").expect("lb");
    let lb: Value = serde_json::from_str(plain_lb).expect("json");
    assert!(lb["Resources"].get("HttpsListener0").is_none());
    // Turning HTTPS on replaces nothing the services import: the group (its
    // description) and the HTTP listener's export stay.
    let https_lb: Value = serde_json::from_str(text).expect("json");
    assert_eq!(
        lb["Resources"]["SecurityGroup"]["Properties"]["GroupDescription"],
        https_lb["Resources"]["SecurityGroup"]["Properties"]["GroupDescription"]
    );
    assert_eq!(
        lb["Outputs"]["ListenerArn0"],
        https_lb["Outputs"]["ListenerArn0"]
    );
    assert_eq!(
        listener_rules(&o, "test", "api")[0].2,
        "shop-test-lb-ListenerArn0"
    );

    // A service's own certificate: added to the HTTPS listener (SNI); refused
    // when the environment has no HTTPS listener.
    let own = "certificate: arn:aws:acm:us-east-1:123456789012:certificate/aaaa";
    let repo = shared_lb_named(
        &names,
        &format!("  load_balancer_certificate: {cert}\n"),
        &[own],
    );
    let o = synth(&repo, "test", &Options::default()).expect("sni");
    let t: Value = serde_json::from_str(o.file("shop-test-api.json").expect("t")).expect("json");
    let lc = &t["Resources"]["ListenerCertificate"];
    assert_eq!(
        lc["Type"],
        "AWS::ElasticLoadBalancingV2::ListenerCertificate"
    );
    assert_eq!(
        lc["Properties"]["ListenerArn"]["Fn::ImportValue"],
        "shop-test-lb-HttpsListenerArn0"
    );
    let repo = shared_lb_named(&names, "", &[own]);
    let Err(diags) = synth(&repo, "test", &Options::default()) else {
        panic!("a service certificate without the environment's must be refused");
    };
    let d = diags
        .iter()
        .find(|d| d.code == "shared-lb-certificate")
        .expect("shared-lb-certificate");
    assert!(
        d.help
            .as_deref()
            .unwrap_or_default()
            .contains("network.load_balancer_certificate"),
        "{d:?}"
    );
}

/// Previews share one task role per service (in the previews' foundation, so
/// that roles do not grow with the number of previews): each names only its own
/// service's parameters, the previews' key and tracing; each preview's queue and
/// bucket policies allow exactly the owner's role and the roles it granted;
/// every task runs as its own service's role and ECS as the environment's
/// execution role.
#[test]
fn previews_share_per_service_task_roles_scoped_to_their_service() {
    let mut policies = 0;
    for (rel, env) in CASES.iter().filter(|(_, e)| e.starts_with("preview-")) {
        let repo = load(rel);
        let o = synth_ok(rel, env);
        let project = &repo.foundation.project.value;
        let f: Value = serde_json::from_str(
            o.file(&format!("{project}-preview-foundation.json"))
                .expect("foundation"),
        )
        .expect("json");
        let names: Vec<String> = repo
            .services
            .iter()
            .map(|u| u.service.name.clone())
            .collect();
        let mut task_roles = 0;
        for (id, r) in resources(&f) {
            if r["Type"] != "AWS::IAM::Role" || !id.ends_with("TaskRole") {
                continue;
            }
            task_roles += 1;
            let role = r["Properties"]["RoleName"]["Fn::Sub"]
                .as_str()
                .expect("name");
            let svc = names
                .iter()
                .find(|s| role == format!("{project}-preview-{s}-task-${{AWS::Region}}"))
                .unwrap_or_else(|| panic!("{id}: {role} is no service's"));
            assert!(r["Properties"].get("PermissionsBoundary").is_some(), "{id}");
            for p in as_list(&r["Properties"]["Policies"]) {
                for st in as_list(&p["PolicyDocument"]["Statement"]) {
                    let actions = as_list(&st["Action"]);
                    for res in as_list(&st["Resource"]) {
                        let s = res.to_string();
                        if res == "*" && st["Sid"] == "PutOwnMetrics" {
                            // Its own namespace of any preview, nothing else.
                            assert_eq!(
                                st["Condition"],
                                json!({ "StringLike": { "cloudwatch:namespace": format!("{project}/preview-*/{svc}") } }),
                                "{id}: {st}"
                            );
                        } else if res == "*" {
                            assert!(
                                actions
                                    .iter()
                                    .all(|a| a.as_str().is_some_and(|a| a.starts_with("xray:"))),
                                "{id}: {st}"
                            );
                        } else if s.contains(":parameter/") {
                            assert!(
                                s.contains(&format!(":parameter/{project}/preview-*/{svc}\""))
                                    || s.contains(&format!(
                                        ":parameter/{project}/preview-*/{svc}/*\""
                                    )),
                                "{id}: {s} is not {svc}'s"
                            );
                        } else {
                            assert_eq!(res, json!({ "Fn::GetAtt": ["Key", "Arn"] }), "{id}: {st}");
                        }
                    }
                }
            }
        }
        assert_eq!(task_roles, names.len(), "{rel}: one task role per service");
        let exec = &f["Resources"]["ExecutionRole"];
        let exec_text = exec.to_string();
        assert!(
            exec_text.contains(&format!("parameter/{project}/preview-*\"")),
            "{exec}"
        );
        assert!(
            !exec_text.contains(&format!("parameter/{project}/preview/")),
            "{exec}"
        );

        for unit in &repo.services {
            let svc = &unit.service;
            let t: Value = serde_json::from_str(
                o.file(&format!("{project}-{env}-{}.json", svc.name))
                    .expect("service"),
            )
            .expect("json");
            for (id, r) in resources(&t) {
                match r["Type"].as_str().unwrap_or_default() {
                    "AWS::IAM::Role" => assert!(
                        id == "LoadBalancerRole" || id.ends_with("ReplicationRole"),
                        "{}: a preview stack creates no task or execution role ({id})",
                        svc.name
                    ),
                    "AWS::ECS::TaskDefinition" => {
                        assert_eq!(
                            r["Properties"]["ExecutionRoleArn"],
                            json!({ "Fn::ImportValue": format!("{project}-preview-ExecutionRoleArn") })
                        );
                        assert!(
                            r["Properties"]["TaskRoleArn"]
                                .to_string()
                                .contains(&format!(":role/{project}-preview-{}-task-", svc.name)),
                            "{id}: {}",
                            r["Properties"]["TaskRoleArn"]
                        );
                    }
                    "AWS::SQS::QueuePolicy" | "AWS::S3::BucketPolicy" => {
                        // The roles this resource's owner granted it to, and its own.
                        let mut allowed = vec![svc.name.clone()];
                        for q in &svc.queues {
                            allowed.extend(q.grants.iter().map(|g| g.to.value.clone()));
                        }
                        for b in &svc.buckets {
                            allowed.extend(b.grants.iter().map(|g| g.to.value.clone()));
                        }
                        for st in as_list(&r["Properties"]["PolicyDocument"]["Statement"]) {
                            if st["Effect"] != "Allow" {
                                continue;
                            }
                            policies += 1;
                            let principal = st["Principal"]["AWS"].to_string();
                            assert!(
                                st.get("Condition").is_none(),
                                "{id}: the role itself is the principal: {st}"
                            );
                            assert!(
                                allowed.iter().any(|a| principal
                                    .contains(&format!(":role/{project}-preview-{a}-task-"))),
                                "{}/{id}: {principal} was not granted",
                                svc.name
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        policies >= 4,
        "only {policies} resource-policy statements checked"
    );
}

/// `quotas` with the account's applied values: a value Service Quotas gave is
/// the limit (and can make a quota exceeded that the default would not), the
/// others keep their defaults and say why.
#[test]
fn quotas_use_the_accounts_applied_values_and_say_which() {
    use pantstack_synth::quotas::{Applied, check_with};
    let repo = example_with(0, 0);
    let applied = Applied {
        values: vec![
            ("account".into(), "L-FE177D64".into(), 3),
            ("us-east-1".into(), "L-53DA6B97".into(), 200),
            ("us-east-1".into(), "L-3032A538".into(), 4000),
            ("us-east-1".into(), "L-36FBB829".into(), 4000),
        ],
        unanswered: vec![(
            "us-east-1".into(),
            "L-F678F1CE".into(),
            "vpc/L-F678F1CE: AccessDeniedException: no".into(),
        )],
    };
    let v = check_with(&repo, Some(&applied), None).expect("report");
    let q = |name: &str| -> Value {
        v["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .find(|q| q["quota"].as_str().is_some_and(|n| n.starts_with(name)))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v:#}"))
    };
    let roles = q("IAM roles");
    assert_eq!(roles["source"], "account", "{roles:#}");
    assert_eq!(roles["limit"], 3);
    assert_eq!(
        roles["fits"], false,
        "3 roles is fewer than the example needs"
    );
    assert_eq!(roles["default"], 1000);
    let albs = q("Application Load Balancers");
    assert_eq!(
        (albs["source"].clone(), albs["limit"].clone()),
        (json!("account"), json!(200))
    );
    let vpcs = q("VPCs");
    assert_eq!(vpcs["source"], "default");
    assert_eq!(vpcs["limit"], 5);
    assert!(
        vpcs["note"]
            .as_str()
            .is_some_and(|n| n.contains("AccessDeniedException")),
        "{vpcs:#}"
    );
    let per_lb = q("Target groups per Application Load Balancer");
    assert_eq!(per_lb["source"], "default");
    assert!(
        per_lb["note"]
            .as_str()
            .is_some_and(|n| n.contains("no code")),
        "{per_lb:#}"
    );
    assert_eq!(v["exceeded"], 1, "{v:#}");
    assert_eq!(v["from_account"], 4);

    // Without applied values: the defaults, and no reasons.
    let d = pantstack_synth::quotas::check(&repo).expect("report");
    assert!(
        d["quotas"]
            .as_array()
            .expect("q")
            .iter()
            .all(|q| q["source"] == "default" && q["note"].is_null())
    );
    assert_eq!(
        pantstack_synth::quotas::regions(&repo),
        vec!["us-east-1".to_string()]
    );
}

/// The deploy role (which CI's change sets run as) may never change the roles
/// `bootstrap` creates, though their names are in the service stacks' role
/// scope; and the roles of service stacks may use only their environment's
/// keys, known by their tags.
#[test]
fn the_deploy_role_cannot_take_over_the_foundations_roles() {
    for env in ["test", "preview-12"] {
        let o = synth_ok("examples", env);
        let base = if env == "test" { "test" } else { "preview" };
        let t: Value = serde_json::from_str(
            o.file(&format!("shop-{base}-foundation.json"))
                .expect("foundation"),
        )
        .expect("json");
        let r = &t["Resources"];
        let managed = as_list(&r["DeployRole"]["Properties"]["ManagedPolicyArns"]);
        assert!(
            managed.contains(&json!({ "Ref": "DeployRoleGuard" })),
            "{managed:?}"
        );
        let deny = &r["DeployRoleGuard"]["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(deny["Effect"], "Deny");
        let actions = as_list(&deny["Action"]);
        for a in ["iam:Update*", "iam:Put*", "iam:Delete*", "iam:Attach*"] {
            assert!(actions.contains(&json!(a)), "{a}: {actions:?}");
        }
        let resources = deny["Resource"].to_string();
        for role in ["ci", "deploy", "execution"] {
            assert!(
                resources.contains(&format!("role/shop-{base}-{role}-")),
                "{role}: {resources}"
            );
        }
        assert_eq!(
            env == "preview-12",
            resources.contains("role/shop-preview-*-task-*"),
            "{resources}"
        );
        let boundary = &r["RoleBoundary"]["Properties"]["PolicyDocument"]["Statement"];
        let keys = boundary
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Sid"] == "UseKeys")
            .expect("UseKeys");
        assert_eq!(
            keys["Condition"]["StringEquals"]["aws:ResourceTag/pantstack:project"],
            "shop"
        );
        assert_eq!(
            keys["Condition"]["StringLike"]["aws:ResourceTag/pantstack:environment"],
            json!([base, format!("{base}-*")])
        );
    }
}
