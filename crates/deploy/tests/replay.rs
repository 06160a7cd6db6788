//! The deploy state machine against recorded CloudFormation and ECS answers, given
//! to the real SDK clients through a replaying `HttpClient` (the SDK's own
//! `test-util` replay client would turn on serde_json's `preserve_order` for the
//! whole workspace's test build, changing every map's order): a change set without changes, an update
//! rolled back with the failed resource's reason, a stack stuck in
//! UPDATE_ROLLBACK_FAILED with its recovery command, a failed creation that only
//! `deploy` may delete, a circuit breaker's rollback with the stopped task, and
//! the shared load balancers' listener-rule priorities read from the deployed
//! templates and pinned.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use aws_sdk_cloudformation::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use pantstack_deploy::Clients;
use pantstack_deploy::progress::Progress;
use pantstack_deploy::stack::{self, Param, Spec, Template};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

fn xml(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
    )
}

fn stack_xml(status: &str) -> String {
    xml(
        "DescribeStacks",
        &format!(
            "<Stacks><member><StackName>shop-test-api</StackName><StackId>arn:aws:cloudformation:us-east-1:1:stack/shop-test-api/x</StackId><StackStatus>{status}</StackStatus><StackStatusReason>The following resource(s) failed to update: [Service]</StackStatusReason><CreationTime>2026-01-01T00:00:00Z</CreationTime></member></Stacks>"
        ),
    )
}

/// A recorded answer: content type and body (status 200).
struct ReplayEvent(&'static str, String);

fn ok(body: String) -> ReplayEvent {
    ReplayEvent("text/xml", body)
}

fn json_ok(body: &str) -> ReplayEvent {
    ReplayEvent("application/x-amz-json-1.1", body.to_string())
}

/// Answers each request with the next recorded answer and keeps the requests'
/// bodies.
#[derive(Clone, Debug, Default)]
struct Replay {
    answers: Arc<Mutex<VecDeque<(&'static str, String)>>>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Replay {
    fn new(events: Vec<ReplayEvent>) -> Replay {
        Replay {
            answers: Arc::new(Mutex::new(events.into_iter().map(|e| (e.0, e.1)).collect())),
            sent: Arc::default(),
        }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().expect("lock").clone()
    }
}

impl HttpConnector for Replay {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default();
        self.sent.lock().expect("lock").push(body);
        let (ct, answer) = self
            .answers
            .lock()
            .expect("lock")
            .pop_front()
            .expect("a recorded answer for every request");
        let mut r = Response::new(
            StatusCode::try_from(200).expect("200"),
            SdkBody::from(answer),
        );
        r.headers_mut().insert("content-type", ct);
        HttpConnectorFuture::ready(Ok(r))
    }
}

impl HttpClient for Replay {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn clients(events: Vec<ReplayEvent>) -> (Clients, Replay) {
    let http = Replay::new(events);
    let config = aws_types::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .http_client(http.clone())
        .build();
    let mut c = Clients::from_config(config, "us-east-1");
    c.poll = Duration::from_millis(1);
    c.timeout = Duration::from_secs(5);
    (c, http)
}

fn spec() -> Spec {
    Spec {
        name: "shop-test-api".into(),
        template: Template::Body("{\"Resources\":{}}".into()),
        parameters: vec![
            Param::Value("ImageTag".into(), "api-dev-abc1234".into()),
            Param::Previous("WorkerImageTag".into()),
        ],
        capabilities: vec!["CAPABILITY_NAMED_IAM".into()],
        role_arn: None,
        tags: vec![],
    }
}

fn quiet() -> Progress {
    Progress::with_tty(false)
}

#[tokio::test]
async fn a_change_set_without_changes_is_unchanged_and_deleted() {
    let (c, http) = clients(vec![
        ok(stack_xml("UPDATE_COMPLETE")),
        ok(xml("CreateChangeSet", "<Id>cs</Id><StackId>s</StackId>")),
        ok(xml(
            "DescribeChangeSet",
            "<Status>FAILED</Status><StatusReason>The submitted information didn't contain changes. Submit different information to create a change set.</StatusReason><ExecutionStatus>UNAVAILABLE</ExecutionStatus>",
        )),
        ok(xml("DeleteChangeSet", "")),
    ]);
    let cs = stack::create_change_set(&c, &spec(), &quiet(), true)
        .await
        .expect("a change set");
    assert!(cs.changes.is_none(), "{cs:?}");
    let sent = http.sent();
    assert_eq!(sent.len(), 4, "the empty change set is deleted");
    assert!(sent[1].contains("ChangeSetType=UPDATE"), "{}", sent[1]);
    assert!(sent[1].contains("UsePreviousValue=true"), "{}", sent[1]);
    assert!(sent[3].contains("Action=DeleteChangeSet"), "{}", sent[3]);
}

#[tokio::test]
async fn an_update_rolled_back_names_the_failed_resource() {
    let (c, _http) = clients(vec![
        ok(stack_xml("UPDATE_COMPLETE")),
        ok(xml("CreateChangeSet", "<Id>cs</Id><StackId>s</StackId>")),
        ok(xml(
            "DescribeChangeSet",
            "<Status>CREATE_COMPLETE</Status><ExecutionStatus>AVAILABLE</ExecutionStatus><Changes><member><Type>Resource</Type><ResourceChange><Action>Modify</Action><LogicalResourceId>TaskDefinition</LogicalResourceId><ResourceType>AWS::ECS::TaskDefinition</ResourceType><Replacement>True</Replacement></ResourceChange></member></Changes>",
        )),
        ok(xml("ExecuteChangeSet", "")),
        ok(stack_xml("UPDATE_ROLLBACK_COMPLETE")),
        ok(xml(
            "DescribeStackEvents",
            "<StackEvents>\
             <member><EventId>3</EventId><StackName>shop-test-api</StackName><LogicalResourceId>shop-test-api</LogicalResourceId><ResourceType>AWS::CloudFormation::Stack</ResourceType><Timestamp>2099-01-01T00:00:03Z</Timestamp><ResourceStatus>UPDATE_ROLLBACK_COMPLETE</ResourceStatus></member>\
             <member><EventId>2</EventId><StackName>shop-test-api</StackName><LogicalResourceId>Service</LogicalResourceId><ResourceType>AWS::ECS::Service</ResourceType><Timestamp>2099-01-01T00:00:02Z</Timestamp><ResourceStatus>UPDATE_FAILED</ResourceStatus><ResourceStatusReason>ECS Deployment Circuit Breaker was triggered</ResourceStatusReason></member>\
             <member><EventId>1</EventId><StackName>shop-test-api</StackName><LogicalResourceId>Worker</LogicalResourceId><ResourceType>AWS::ECS::Service</ResourceType><Timestamp>2099-01-01T00:00:01Z</Timestamp><ResourceStatus>UPDATE_FAILED</ResourceStatus><ResourceStatusReason>Resource update cancelled</ResourceStatusReason></member>\
             </StackEvents>",
        )),
    ]);
    let cs = stack::create_change_set(&c, &spec(), &quiet(), true)
        .await
        .expect("a change set");
    let ch = cs.changes.clone().expect("changes");
    assert_eq!(ch[0].action, "modify");
    assert_eq!(ch[0].replacement.as_deref(), Some("True"));
    let f = stack::execute(&c, &cs, &quiet())
        .await
        .expect_err("rolled back");
    assert_eq!(f.status.as_deref(), Some("UPDATE_ROLLBACK_COMPLETE"));
    assert_eq!(
        f.resources.len(),
        1,
        "the cancelled one is not a cause: {f:?}"
    );
    assert_eq!(f.resources[0].logical_id, "Service");
    assert!(
        f.render()
            .contains("ECS Deployment Circuit Breaker was triggered"),
        "{}",
        f.render()
    );
    assert!(f.recovery.is_none());
}

#[tokio::test]
async fn update_rollback_failed_gives_the_recovery_command() {
    let (c, _http) = clients(vec![
        ok(stack_xml("UPDATE_ROLLBACK_FAILED")),
        ok(xml("DescribeStackEvents", "<StackEvents></StackEvents>")),
    ]);
    let f = stack::create_change_set(&c, &spec(), &quiet(), true)
        .await
        .expect_err("stuck");
    let r = f.recovery.clone().expect("a recovery command");
    assert!(
        r.contains("aws cloudformation continue-update-rollback --region us-east-1 --stack-name shop-test-api"),
        "{r}"
    );
}

#[tokio::test]
async fn diff_never_deletes_a_failed_creation() {
    let (c, http) = clients(vec![ok(stack_xml("ROLLBACK_COMPLETE"))]);
    let f = stack::create_change_set(&c, &spec(), &quiet(), false)
        .await
        .expect_err("not for diff");
    assert!(f.reason.contains("deploy deletes it"), "{f:?}");
    assert_eq!(http.sent().len(), 1, "no DeleteStack");
}

#[tokio::test]
async fn a_waiting_stack_times_out_with_its_state() {
    let mut events = Vec::new();
    for _ in 0..200 {
        events.push(ok(stack_xml("UPDATE_IN_PROGRESS")));
    }
    let (mut c, _http) = clients(events);
    c.poll = Duration::from_millis(20);
    c.timeout = Duration::from_millis(100);
    let f = stack::create_change_set(&c, &spec(), &quiet(), true)
        .await
        .expect_err("timed out");
    assert!(f.reason.contains("still UPDATE_IN_PROGRESS"), "{f:?}");
}

#[tokio::test]
async fn the_circuit_breakers_rollback_is_reported_with_the_stopped_task() {
    let (c, _http) = clients(vec![
        json_ok(
            r#"{"services":[{"serviceName":"api","runningCount":2,"desiredCount":2,"pendingCount":0,
                "taskDefinition":"arn:aws:ecs:us-east-1:1:task-definition/shop-test-api-http:3",
                "deployments":[{"id":"d2","status":"PRIMARY","rolloutState":"FAILED",
                "rolloutStateReason":"ECS deployment circuit breaker: tasks failed to start.","desiredCount":2,"runningCount":0,"pendingCount":0}]}],"failures":[]}"#,
        ),
        json_ok(r#"{"taskArns":["arn:aws:ecs:us-east-1:1:task/shop-test-api/abc123"]}"#),
        json_ok(
            r#"{"tasks":[{"taskArn":"arn:aws:ecs:us-east-1:1:task/shop-test-api/abc123","stoppedReason":"Essential container in task exited",
                "stoppedAt":1767225600,"containers":[{"name":"api","exitCode":1,"reason":""}]}],"failures":[]}"#,
        ),
        json_ok(
            r#"{"events":[{"timestamp":1,"message":"error: unknown mode `crash`\n","ingestionTime":2}]}"#,
        ),
    ]);
    let v = pantstack_deploy::verdict::verdict(
        &c,
        "shop-test-api",
        &["api".to_string()],
        "/pantstack/shop/test/api",
        false,
    )
    .await
    .expect("verdict");
    assert!(!v[0].ok());
    let text = v[0].render();
    assert!(
        text.contains("deployment failed (ECS deployment circuit breaker"),
        "{text}"
    );
    assert!(
        text.contains("stopped task abc123: Essential container in task exited"),
        "{text}"
    );
    assert!(text.contains("container api: exit 1"), "{text}");
    assert!(text.contains("| error: unknown mode `crash`"), "{text}");
}

#[test]
fn states_sort_as_cloudformation_defines_them() {
    use stack::{State, classify};
    assert_eq!(classify("REVIEW_IN_PROGRESS"), State::Review);
    assert_eq!(classify("ROLLBACK_COMPLETE"), State::RolledBackCreate);
    assert_eq!(
        classify("UPDATE_ROLLBACK_FAILED"),
        State::Stuck("UPDATE_ROLLBACK_FAILED".into())
    );
    assert_eq!(
        classify("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
        State::Busy("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS".into())
    );
    assert_eq!(
        classify("UPDATE_ROLLBACK_COMPLETE"),
        State::Ready("UPDATE_ROLLBACK_COMPLETE".into())
    );
    assert!(stack::is_success("UPDATE_COMPLETE"));
    assert!(!stack::is_success("UPDATE_ROLLBACK_COMPLETE"));
    assert!(stack::no_changes("No updates are to be performed."));
}

/// Answers CloudFormation by what is asked: `ListStacks` lists `stacks` (name,
/// status), `GetTemplate` gives `templates[StackName]`, `DescribeStacks` of a
/// name gives its status and `tags[StackName]` (an unnamed one panics: a CI role
/// may not list every stack that way); keeps the requests' bodies. Requests may
/// come in any order (reads run at once).
#[derive(Clone, Debug, Default)]
struct Routed {
    stacks: Vec<(String, String)>,
    templates: std::collections::BTreeMap<String, String>,
    tags: std::collections::BTreeMap<String, Vec<(String, String)>>,
    sent: Arc<Mutex<Vec<String>>>,
}

/// Clients whose every request `http` answers.
fn routed_clients(http: &Routed) -> Clients {
    let config = aws_types::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .http_client(http.clone())
        .build();
    Clients::from_config(config, "us-east-1")
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl HttpConnector for Routed {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default();
        self.sent.lock().expect("lock").push(body.clone());
        let answer = if body.contains("Action=ListStacks") {
            let members: String = self
                .stacks
                .iter()
                .map(|(name, status)| {
                    format!(
                        "<member><StackName>{name}</StackName><StackId>arn:aws:cloudformation:us-east-1:1:stack/{name}/x</StackId><StackStatus>{status}</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime></member>"
                    )
                })
                .collect();
            xml(
                "ListStacks",
                &format!("<StackSummaries>{members}</StackSummaries>"),
            )
        } else if body.contains("Action=DescribeStacks") {
            let name = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("StackName="))
                .unwrap_or_else(|| panic!("an unnamed DescribeStacks: {body}"))
                .to_string();
            let (_, status) = self
                .stacks
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("DescribeStacks of {name}, which is not listed"));
            let tags: String = self
                .tags
                .get(&name)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("<member><Key>{k}</Key><Value>{v}</Value></member>"))
                .collect();
            xml(
                "DescribeStacks",
                &format!(
                    "<Stacks><member><StackName>{name}</StackName><StackId>arn:aws:cloudformation:us-east-1:1:stack/{name}/x</StackId><StackStatus>{status}</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime><Tags>{tags}</Tags></member></Stacks>"
                ),
            )
        } else if body.contains("Action=GetTemplate") {
            let name = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("StackName="))
                .expect("a stack name")
                .to_string();
            let t = self
                .templates
                .get(&name)
                .unwrap_or_else(|| panic!("GetTemplate of {name}, which holds no template here"));
            xml(
                "GetTemplate",
                &format!("<TemplateBody>{}</TemplateBody>", xml_text(t)),
            )
        } else {
            panic!("unexpected request {body}");
        };
        let mut r = Response::new(
            StatusCode::try_from(200).expect("200"),
            SdkBody::from(answer),
        );
        r.headers_mut().insert("content-type", "text/xml");
        HttpConnectorFuture::ready(Ok(r))
    }
}

impl HttpClient for Routed {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A monorepo (the example's foundation, shared load balancers) whose HTTP
/// services are `names`.
fn shared_repo(names: &[&str]) -> pantstack_model::Monorepo {
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = std::env::temp_dir().join(format!(
        "pantstack-deploy-pins-{}-{}",
        names.join("-"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let f = dir.join("stack/infra/foundation");
    std::fs::create_dir_all(&f).expect("mkdir");
    for n in [
        "Pulumi.yaml",
        "Pulumi.test.yaml",
        "Pulumi.prod.yaml",
        "Pulumi.preview.yaml",
    ] {
        std::fs::copy(examples.join("stack/infra/foundation").join(n), f.join(n)).expect("copy");
    }
    let m = std::fs::read_to_string(examples.join("stack/infra/foundation/pantstack.yaml"))
        .expect("manifest");
    std::fs::write(
        f.join("pantstack.yaml"),
        m.replacen("network:\n", "network:\n  load_balancer: shared\n", 1),
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
        std::fs::write(
            infra.join("pantstack.yaml"),
            format!("service: {name}\nhttp:\n  command: [\"/s\"]\n"),
        )
        .expect("write");
    }
    let loaded = pantstack_model::load(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.repo
}

fn priorities(o: &pantstack_synth::Output, service: &str) -> Vec<u32> {
    let names = pantstack_model::physical::Names::new("shop", "test");
    pantstack_synth::shared_lb::rule_priorities(
        o.file(&format!("shop-test-{service}.json"))
            .expect("a template"),
        &names,
    )
}

/// Before deploying, the aws target reads the templates of the environment's
/// deployed stacks (not another environment's, nor the load balancer's or
/// foundation's) and synthesizes again with their listener-rule
/// priorities pinned: a deployed service whose block two new services' names
/// hash to keeps it, and the new ones take two other blocks.
#[tokio::test]
async fn deploy_pins_the_listener_rule_priorities_deployed_stacks_hold() {
    let none = Default::default();
    let mut by_slot: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    let names = (0..5000)
        .find_map(|i| {
            let n = format!("svc{i:04}");
            let slot = pantstack_synth::shared_lb::slots(&[n.as_str()], &none)[0].1;
            let same = by_slot.entry(slot).or_default();
            same.push(n);
            (same.len() == 3).then(|| same.clone())
        })
        .expect("three colliding names");
    let (a, b, c) = (names[0].as_str(), names[1].as_str(), names[2].as_str());
    let opts = pantstack_synth::Options::default();
    // Deployed: `c` alone (in prod too, under another environment's tags).
    let deployed = pantstack_synth::synth(&shared_repo(&[c]), "test", &opts).expect("c");
    let c_template = deployed
        .file(&format!("shop-test-{c}.json"))
        .expect("c")
        .to_string();
    let held = priorities(&deployed, c);
    // This checkout: `a` and `b` added; offline `a` would take `c`'s block.
    let repo = shared_repo(&[a, b, c]);
    let output = pantstack_synth::synth(&repo, "test", &opts).expect("a b c");
    assert_eq!(
        priorities(&output, a),
        held,
        "offline, `a` takes `c`'s block"
    );

    // Listed besides: the environment's other stacks, another environment's, a
    // stack only awaiting a change set (`diff`), one deleted, and the stack of
    // an environment whose name extends this one's (`test-eu`: its rules import
    // its own listeners).
    let other_env = c_template.replace("shop-test-", "shop-test-eu-");
    let http = Routed {
        stacks: vec![
            (format!("shop-test-{c}"), "UPDATE_COMPLETE".into()),
            ("shop-test-load-balancer".into(), "CREATE_COMPLETE".into()),
            ("shop-test-foundation".into(), "CREATE_COMPLETE".into()),
            (format!("shop-prod-{a}"), "CREATE_COMPLETE".into()),
            (format!("shop-test-{b}"), "REVIEW_IN_PROGRESS".into()),
            (format!("shop-test-{a}"), "DELETE_COMPLETE".into()),
            (format!("shop-test-eu-{a}"), "CREATE_COMPLETE".into()),
        ],
        templates: [
            (format!("shop-test-{c}"), c_template),
            (format!("shop-test-eu-{a}"), other_env),
        ]
        .into_iter()
        .collect(),
        ..Routed::default()
    };
    let clients = routed_clients(&http);
    let names = pantstack_model::physical::Names::new("shop", "test");
    let read = pantstack_deploy::ship::deployed_priorities(&clients, &names)
        .await
        .expect("read");
    assert_eq!(read, [(c.to_string(), held.clone())].into_iter().collect());
    let gets: Vec<String> = http
        .sent
        .lock()
        .expect("lock")
        .iter()
        .filter(|b| b.contains("Action=GetTemplate"))
        .cloned()
        .collect();
    assert_eq!(
        gets.len(),
        2,
        "only the service stacks' templates: {gets:?}"
    );

    let e = pantstack_deploy::ship::Env {
        repo: &repo,
        env: "test".into(),
        output,
        clients,
        progress: Arc::new(quiet()),
        dir: std::env::temp_dir(),
    };
    let pinned = e
        .pinned()
        .await
        .expect("pinned")
        .expect("the output changes");
    assert_eq!(priorities(&pinned.output, c), held, "`c` keeps its rules");
    let pa = priorities(&pinned.output, a);
    let pb = priorities(&pinned.output, b);
    let block = |p: &[u32]| pantstack_synth::shared_lb::block_of(p[0]);
    assert_ne!(block(&pa), block(&held));
    assert_ne!(block(&pb), block(&held));
    assert_ne!(block(&pa), block(&pb));
    // Templates other than the rules' are as synthesized offline.
    assert_eq!(
        pinned.output.file("shop-test-load-balancer.json"),
        e.output.file("shop-test-load-balancer.json")
    );
}

/// The stacks of an environment that carry its tags are found by listing names
/// (ListStacks) and describing each of the environment's by name: never by an
/// unnamed DescribeStacks, which a CI role scoped to its environment's stacks
/// may not call.
#[tokio::test]
async fn tagged_stacks_are_listed_then_described_by_name() {
    let env_tags = |env: &str| {
        vec![
            ("pantstack:project".to_string(), "shop".to_string()),
            ("pantstack:environment".to_string(), env.to_string()),
        ]
    };
    let http = Routed {
        stacks: vec![
            ("shop-test-api".into(), "UPDATE_COMPLETE".into()),
            ("shop-test-old".into(), "CREATE_COMPLETE".into()),
            ("shop-test-gone".into(), "DELETE_COMPLETE".into()),
            ("shop-test-untagged".into(), "CREATE_COMPLETE".into()),
            ("shop-prod-api".into(), "CREATE_COMPLETE".into()),
            ("other-stack".into(), "CREATE_COMPLETE".into()),
        ],
        tags: [
            ("shop-test-api".to_string(), env_tags("test")),
            ("shop-test-old".to_string(), env_tags("test")),
            ("shop-test-gone".to_string(), env_tags("test")),
            ("shop-prod-api".to_string(), env_tags("prod")),
        ]
        .into_iter()
        .collect(),
        ..Routed::default()
    };
    let clients = routed_clients(&http);
    let found = stack::tagged(&clients, "shop-test-", &env_tags("test"))
        .await
        .expect("tagged");
    assert_eq!(found, vec!["shop-test-api", "shop-test-old"]);
    let sent = http.sent.lock().expect("lock").clone();
    let described: Vec<&String> = sent
        .iter()
        .filter(|b| b.contains("Action=DescribeStacks"))
        .collect();
    // The deleted stack and the other environments' are never described.
    assert_eq!(described.len(), 3, "{described:?}");
    assert!(
        described
            .iter()
            .all(|b| b.contains("StackName=shop-test-") && !b.contains("shop-test-gone")),
        "{described:?}"
    );
}

/// A stack is deleted through the service role it was deployed with (the CI
/// roles may delete a stack only as their environment's deploy role:
/// `cloudformation:RoleArn`); a stack already gone is not deleted again.
#[tokio::test]
async fn a_stack_is_deleted_as_the_role_it_was_deployed_with() {
    let role = "arn:aws:iam::1:role/shop-test-deploy-us-east-1";
    let with_role = |status: &str| {
        xml(
            "DescribeStacks",
            &format!(
                "<Stacks><member><StackName>shop-test-api</StackName><StackId>arn:aws:cloudformation:us-east-1:1:stack/shop-test-api/x</StackId><StackStatus>{status}</StackStatus><RoleARN>{role}</RoleARN><CreationTime>2026-01-01T00:00:00Z</CreationTime></member></Stacks>"
            ),
        )
    };
    let (c, http) = clients(vec![
        ok(with_role("UPDATE_COMPLETE")),
        ok(xml("DeleteStack", "")),
        ok(with_role("DELETE_COMPLETE")),
    ]);
    stack::delete_and_wait(&c, "shop-test-api", &quiet())
        .await
        .expect("deleted");
    let sent = http.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[1].contains("Action=DeleteStack"), "{}", sent[1]);
    assert!(
        sent[1].contains("RoleARN=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fshop-test-deploy-us-east-1"),
        "{}",
        sent[1]
    );

    let (c, http) = clients(vec![ok(with_role("DELETE_COMPLETE"))]);
    stack::delete_and_wait(&c, "shop-test-api", &quiet())
        .await
        .expect("gone already");
    assert_eq!(http.sent().len(), 1, "no DeleteStack of a deleted stack");
}
