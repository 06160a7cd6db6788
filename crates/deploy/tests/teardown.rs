//! A preview's teardown retried after its replica stack is gone, against
//! recorded AWS answers given to the real SDK clients (the emulator runs no
//! second region for a replica stack, nor IAM): the buckets that stack retained
//! are found from CloudFormation's record of the deleted stack (ListStacks,
//! then ListStackResources by the deleted stack's id, in its region) and
//! deleted, without `s3:ListAllMyBuckets`, which the preview CI role lacks
//! (ListBuckets is answered AccessDenied here, as AWS answers that role).

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
use serde_json::Value;
use std::sync::{Arc, Mutex};

const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";
const REPLICA: &str = "shop-preview-7-api-replica";
const REPLICA_ID: &str =
    "arn:aws:cloudformation:eu-west-1:111122223333:stack/shop-preview-7-api-replica/5e1f";

/// One request: method, region (of its signature), path and query, body.
#[derive(Clone, Debug)]
struct Sent {
    method: String,
    region: String,
    uri: String,
    body: String,
}

/// Answers as AWS answers the preview CI role when every stack of preview-7 is
/// deleted and the replica stack retained `left` buckets (logical id, physical
/// name), of which those in `existing` still exist.
#[derive(Clone, Debug, Default)]
struct Aws {
    left: Vec<(String, String)>,
    existing: Vec<String>,
    sent: Arc<Mutex<Vec<Sent>>>,
}

fn cfn(action: &str, result: &str) -> (u16, String) {
    (
        200,
        format!(
            "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

impl Aws {
    fn answer(&self, s: &Sent) -> (u16, String) {
        let param = |k: &str| {
            s.body
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(|v| v.replace("%3A", ":").replace("%2F", "/"))
        };
        if s.body.contains("Action=DescribeStacks") {
            let name = param("StackName").expect("a named DescribeStacks");
            return (
                400,
                format!(
                    "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id {name} does not exist</Message></Error><RequestId>r</RequestId></ErrorResponse>"
                ),
            );
        }
        if s.body.contains("Action=ListStacks") {
            // Only the replica stack's region knows it.
            let member = if s.region == "eu-west-1" {
                format!(
                    "<member><StackName>{REPLICA}</StackName><StackId>{REPLICA_ID}</StackId><StackStatus>DELETE_COMPLETE</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime><DeletionTime>2026-01-02T00:00:00Z</DeletionTime></member>"
                )
            } else {
                String::new()
            };
            return cfn(
                "ListStacks",
                &format!("<StackSummaries>{member}</StackSummaries>"),
            );
        }
        if s.body.contains("Action=ListStackResources") {
            assert_eq!(
                param("StackName").as_deref(),
                Some(REPLICA_ID),
                "a deleted stack is asked by its id: {}",
                s.body
            );
            let mut members: String = self
                .left
                .iter()
                .map(|(id, physical)| {
                    format!(
                        "<member><LogicalResourceId>{id}</LogicalResourceId><PhysicalResourceId>{physical}</PhysicalResourceId><ResourceType>AWS::S3::Bucket</ResourceType><ResourceStatus>DELETE_SKIPPED</ResourceStatus><LastUpdatedTimestamp>2026-01-02T00:00:00Z</LastUpdatedTimestamp></member>"
                    )
                })
                .collect();
            members.push_str("<member><LogicalResourceId>ReplicaKey</LogicalResourceId><PhysicalResourceId>k-1</PhysicalResourceId><ResourceType>AWS::KMS::Key</ResourceType><ResourceStatus>DELETE_SKIPPED</ResourceStatus><LastUpdatedTimestamp>2026-01-02T00:00:00Z</LastUpdatedTimestamp></member>");
            return cfn(
                "ListStackResources",
                &format!("<StackResourceSummaries>{members}</StackResourceSummaries>"),
            );
        }
        // S3, by path (an endpoint is configured: path-style).
        let path = s.uri.split('?').next().unwrap_or_default();
        let bucket = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let denied = (
            403,
            "<Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::111122223333:assumed-role/shop-preview-ci/gh is not authorized to perform: s3:ListAllMyBuckets</Message></Error>".to_string(),
        );
        let exists = self.existing.iter().any(|b| b == bucket);
        let no_bucket = (
            404,
            format!(
                "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>{bucket}</BucketName></Error>"
            ),
        );
        match (s.method.as_str(), bucket.is_empty()) {
            ("GET", true) => denied,
            ("HEAD", false) if exists => (200, String::new()),
            ("HEAD", false) => (404, String::new()),
            ("GET", false) if s.uri.contains("versions") && exists => (
                200,
                format!(
                    "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{bucket}</Name><IsTruncated>false</IsTruncated></ListVersionsResult>"
                ),
            ),
            ("DELETE", false) if exists => (204, String::new()),
            (_, false) => no_bucket,
            _ => panic!("unexpected request {s:?}"),
        }
    }
}

impl HttpConnector for Aws {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let uri = request.uri().to_string();
        // `Credential=AKID/20260101/eu-west-1/s3/aws4_request`
        let region = request
            .headers()
            .get("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(2))
            .unwrap_or_default()
            .to_string();
        let s = Sent {
            method: request.method().to_string(),
            uri: uri
                .split("://")
                .nth(1)
                .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
                .unwrap_or_else(|| "/".into()),
            region,
            body: request
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default(),
        };
        self.sent.lock().expect("lock").push(s.clone());
        let (status, body) = self.answer(&s);
        let mut r = Response::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(body),
        );
        r.headers_mut().insert("content-type", "text/xml");
        HttpConnectorFuture::ready(Ok(r))
    }
}

impl HttpClient for Aws {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The example's foundation and one service, `api`, whose bucket `results`
/// replicates to eu-west-1 (its replica stack retains the replica and the
/// replica's access-log bucket).
fn replicating_repo() -> pantstack_model::Monorepo {
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = std::env::temp_dir().join(format!("pantstack-teardown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let f = dir.join("stack/infra/foundation");
    std::fs::create_dir_all(&f).expect("mkdir");
    for n in [
        "pantstack.yaml",
        "Pulumi.yaml",
        "Pulumi.test.yaml",
        "Pulumi.prod.yaml",
        "Pulumi.preview.yaml",
    ] {
        std::fs::copy(examples.join("stack/infra/foundation").join(n), f.join(n)).expect("copy");
    }
    let infra = dir.join("modules/api/infrastructure");
    std::fs::create_dir_all(&infra).expect("mkdir");
    std::fs::write(
        infra.join("Pulumi.yaml"),
        "name: shop-api\nruntime: python\n",
    )
    .expect("write");
    std::fs::write(
        infra.join("pantstack.yaml"),
        "service: api\nhttp:\n  command: [\"/s\"]\nbuckets:\n  results:\n    replication: { region: eu-west-1 }\n",
    )
    .expect("write");
    let loaded = pantstack_model::load(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.repo
}

#[tokio::test]
async fn a_retried_preview_teardown_finds_the_replica_stacks_buckets_without_listing_buckets() {
    let repo = replicating_repo();
    let output = pantstack_synth::synth(&repo, "preview-7", &Default::default()).expect("synth");
    // The buckets the replica stack retains, by its template.
    let t: Value = serde_json::from_str(
        output
            .file(&format!("{REPLICA}.json"))
            .expect("a replica stack"),
    )
    .expect("json");
    let mut retained: Vec<String> = t["Resources"]
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::S3::Bucket" && r["DeletionPolicy"] == "Retain")
        .map(|(id, _)| id.clone())
        .collect();
    retained.sort();
    assert_eq!(retained, ["ReplicaAccessLogs", "ResultsReplica"]);

    // The first teardown deleted the stacks and the replica, then failed
    // before the access-log bucket went.
    let logs = "shop-preview-7-api-replica-replicaaccesslogs-1x2y3z".to_string();
    let replica = "shop-preview-7-api-results-dr-111122223333".to_string();
    let http = Aws {
        left: vec![
            ("ReplicaAccessLogs".into(), logs.clone()),
            ("ResultsReplica".into(), replica.clone()),
        ],
        existing: vec![logs.clone()],
        ..Aws::default()
    };
    let config = aws_types::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .http_client(http.clone())
        .build();
    let e = pantstack_deploy::ship::Env {
        repo: &repo,
        env: "preview-7".into(),
        output,
        clients: Clients::from_config(config, "us-east-1"),
        progress: Arc::new(Progress::with_tty(false)),
        dir: std::env::temp_dir(),
    };
    let opts = pantstack_deploy::ship::DestroyOpts {
        buckets: true,
        ..Default::default()
    };
    let v = pantstack_deploy::ship::destroy(&e, &opts)
        .await
        .unwrap_or_else(|f| panic!("{}: {:#}", f.message, f.report));
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["buckets_deleted"], serde_json::json!([logs]), "{v:#}");
    assert_eq!(v["retained"], serde_json::json!([]), "{v:#}");

    let sent = http.sent.lock().expect("lock").clone();
    assert!(
        !sent
            .iter()
            .any(|s| s.method == "GET" && s.uri.split('?').next() == Some("/")),
        "no ListBuckets (s3:ListAllMyBuckets): {sent:#?}"
    );
    // Asked in the replica stack's region; the bucket deleted there too.
    assert!(
        sent.iter()
            .any(|s| s.body.contains("Action=ListStackResources") && s.region == "eu-west-1"),
        "{sent:#?}"
    );
    assert!(
        sent.iter().any(|s| s.method == "DELETE"
            && s.uri.starts_with(&format!("/{logs}"))
            && s.region == "eu-west-1"),
        "{sent:#?}"
    );
    assert!(
        !sent
            .iter()
            .any(|s| s.method == "DELETE" && s.uri.starts_with(&format!("/{replica}"))),
        "the replica deleted by the first teardown is not deleted again: {sent:#?}"
    );
}
