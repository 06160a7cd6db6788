//! Identity-based policies at the endpoint, through the AWS SDK for Rust: a unit's
//! credentials reach only what its policy allows (its queues and their DLQs, its
//! buckets' objects, its parameter path), each refusal is the AccessDenied error
//! AWS sends, and the `user` credentials reach everything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::ParameterType;
use pantstack_endpoint::iam::Policy;
use pantstack_endpoint::{Config, Core, USER, http};
use pantstack_model::iam;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

const REGION: &str = "eu-west-1";

struct Local {
    _server: http::Server,
    core: Arc<Core>,
    url: String,
    dir: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:000000000000:{name}")
}

/// `api` may use `api-jobs` (and its DLQ), `api-results` and `/p/api`; `idle` has
/// the empty policy.
async fn local() -> Local {
    let dir = std::env::temp_dir().join(format!("pantstack-iam-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let api = Policy::default()
        .allow(
            iam::QUEUE_ACTIONS,
            vec![arn("api-jobs"), arn("api-jobs-dlq")],
        )
        .allow(iam::BUCKET_ACTIONS, vec!["arn:aws:s3:::api-results".into()])
        .allow(
            iam::OBJECT_ACTIONS,
            vec!["arn:aws:s3:::api-results/*".into()],
        )
        .allow(
            iam::PARAMETER_ACTIONS,
            vec![
                format!("arn:aws:ssm:{REGION}:000000000000:parameter/p/api"),
                format!("arn:aws:ssm:{REGION}:000000000000:parameter/p/api/*"),
            ],
        );
    // `reports` owns nothing; the api's queue and bucket policies grant it sending
    // to api-jobs and reading api-results (resource-based: `Policy::granted`).
    let (send, _) = iam::grant_actions(pantstack_model::service::Access::Send);
    let (list, read) = iam::grant_actions(pantstack_model::service::Access::Read);
    let reports = Policy::default()
        .grant(&send, vec![arn("api-jobs"), arn("api-jobs-dlq")])
        .grant(&list, vec!["arn:aws:s3:::api-results".into()])
        .grant(&read, vec!["arn:aws:s3:::api-results/*".into()]);
    let policies = HashMap::from([
        ("api".to_string(), api),
        ("idle".to_string(), Policy::default()),
        ("reports".to_string(), reports),
    ]);
    let core = Arc::new(
        Core::open(&Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: REGION.into(),
            principals: vec!["api".into(), "idle".into(), "reports".into()],
            policies,
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .expect("open"),
    );
    let server = http::serve(core.clone(), 0).await.expect("serve");
    Local {
        url: server.url(),
        _server: server,
        core,
        dir,
    }
}

async fn conf(l: &Local, principal: &str) -> aws_config::SdkConfig {
    common::sdk_config(&l.url, REGION, l.core.credentials(principal)).await
}

/// The error's code and message, which must be a refusal of `action` on `resource`.
fn denied<E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<impl std::fmt::Debug, E>,
    code: &str,
    action: &str,
    resource: &str,
) {
    let e = r.expect_err(&format!("{action} on {resource} must be refused"));
    assert_eq!(e.code(), Some(code), "{e:?}");
    let m = e.message().unwrap_or_default();
    assert!(
        m.contains(&format!(
            "not authorized to perform: {action} on resource: {resource} "
        )),
        "{m}"
    );
}

/// A SendMessageBatch of one message to `url`.
async fn batch(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<
    aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput,
    aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError>,
> {
    let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
        .id("1")
        .message_body("b")
        .build()
        .unwrap();
    sqs.send_message_batch()
        .queue_url(url)
        .entries(entry)
        .send()
        .await
}

/// A SendMessage to `url` that must be refused.
async fn refused_send(sqs: &aws_sdk_sqs::Client, url: &str, arn: &str) {
    denied(
        sqs.send_message()
            .queue_url(url)
            .message_body("x")
            .send()
            .await,
        "AccessDenied",
        "sqs:SendMessage",
        arn,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_reaches_only_what_its_policy_allows() {
    let l = local().await;
    let user = conf(&l, USER).await;
    let api = conf(&l, "api").await;
    let idle = conf(&l, "idle").await;

    // The user (as `pantstack up` and a person's shell) sets everything up.
    let sqs_user = aws_sdk_sqs::Client::new(&user);
    let mut urls = HashMap::new();
    for q in ["api-jobs", "api-jobs-dlq", "other-jobs"] {
        let url = sqs_user.create_queue().queue_name(q).send().await.unwrap();
        urls.insert(q, url.queue_url().unwrap().to_string());
    }
    let s3_user = aws_sdk_s3::Client::new(&user);
    for b in ["api-results", "other-results"] {
        s3_user.create_bucket().bucket(b).send().await.unwrap();
        s3_user
            .put_object()
            .bucket(b)
            .key("seed")
            .body(ByteStream::from_static(b"seed"))
            .send()
            .await
            .unwrap();
    }
    let ssm_user = aws_sdk_ssm::Client::new(&user);
    for p in ["/p/api/TOKEN", "/p/other/TOKEN"] {
        ssm_user
            .put_parameter()
            .name(p)
            .value("v")
            .r#type(ParameterType::String)
            .send()
            .await
            .unwrap();
    }

    // SQS: its own queues in full, batches by their single action; nothing else.
    let sqs = aws_sdk_sqs::Client::new(&api);
    let own = &urls["api-jobs"];
    sqs.send_message()
        .queue_url(own)
        .message_body("a")
        .send()
        .await
        .unwrap();
    batch(&sqs, own).await.unwrap();
    let got = sqs
        .receive_message()
        .queue_url(own)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    for m in got.messages() {
        sqs.delete_message()
            .queue_url(own)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    assert!(!got.messages().is_empty());
    let url = sqs
        .get_queue_url()
        .queue_name("api-jobs-dlq")
        .send()
        .await
        .unwrap();
    assert_eq!(url.queue_url(), Some(urls["api-jobs-dlq"].as_str()));
    refused_send(&sqs, &urls["other-jobs"], &arn("other-jobs")).await;
    denied(
        batch(&sqs, &urls["other-jobs"]).await,
        "AccessDenied",
        "sqs:SendMessage",
        &arn("other-jobs"),
    );
    denied(
        sqs.purge_queue().queue_url(own).send().await,
        "AccessDenied",
        "sqs:PurgeQueue",
        &arn("api-jobs"),
    );
    denied(
        sqs.create_queue().queue_name("new").send().await,
        "AccessDenied",
        "sqs:CreateQueue",
        &arn("new"),
    );
    denied(
        sqs.list_queues().send().await,
        "AccessDenied",
        "sqs:ListQueues",
        "*",
    );
    // Nothing refused was done.
    let other = sqs_user
        .receive_message()
        .queue_url(&urls["other-jobs"])
        .send()
        .await
        .unwrap();
    assert!(other.messages().is_empty());

    // S3: its own bucket's objects; a version needs the version action, which a
    // task role has for reading but not for deleting.
    let s3 = aws_sdk_s3::Client::new(&api);
    s3.put_object()
        .bucket("api-results")
        .key("r/1")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let body = s3
        .get_object()
        .bucket("api-results")
        .key("r/1")
        .send()
        .await
        .unwrap();
    assert_eq!(&body.body.collect().await.unwrap().into_bytes()[..], b"one");
    s3.head_object()
        .bucket("api-results")
        .key("r/1")
        .send()
        .await
        .unwrap();
    let listed = s3
        .list_objects_v2()
        .bucket("api-results")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(2));
    s3.delete_object()
        .bucket("api-results")
        .key("r/1")
        .send()
        .await
        .unwrap();
    denied(
        s3.put_object()
            .bucket("other-results")
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "AccessDenied",
        "s3:PutObject",
        "arn:aws:s3:::other-results/x",
    );
    denied(
        s3.get_object()
            .bucket("other-results")
            .key("seed")
            .send()
            .await,
        "AccessDenied",
        "s3:GetObject",
        "arn:aws:s3:::other-results/seed",
    );
    denied(
        s3.list_objects_v2().bucket("other-results").send().await,
        "AccessDenied",
        "s3:ListBucket",
        "arn:aws:s3:::other-results",
    );
    denied(
        s3.copy_object()
            .bucket("api-results")
            .key("stolen")
            .copy_source("other-results/seed")
            .send()
            .await,
        "AccessDenied",
        "s3:GetObject",
        "arn:aws:s3:::other-results/seed",
    );
    denied(
        s3.delete_object()
            .bucket("api-results")
            .key("seed")
            .version_id("null")
            .send()
            .await,
        "AccessDenied",
        "s3:DeleteObjectVersion",
        "arn:aws:s3:::api-results/seed",
    );
    denied(
        s3.list_buckets().send().await,
        "AccessDenied",
        "s3:ListAllMyBuckets",
        "*",
    );
    denied(
        s3.create_bucket().bucket("mine").send().await,
        "AccessDenied",
        "s3:CreateBucket",
        "arn:aws:s3:::mine",
    );
    let still = s3_user
        .list_objects_v2()
        .bucket("other-results")
        .send()
        .await
        .unwrap();
    assert_eq!(still.key_count(), Some(1), "a refused write wrote nothing");

    // SSM: its own path, one refused name refuses the whole call.
    let ssm = aws_sdk_ssm::Client::new(&api);
    let p = ssm
        .get_parameter()
        .name("/p/api/TOKEN")
        .send()
        .await
        .unwrap();
    assert_eq!(p.parameter().unwrap().value(), Some("v"));
    let under = ssm
        .get_parameters_by_path()
        .path("/p/api")
        .send()
        .await
        .unwrap();
    assert_eq!(under.parameters().len(), 1);
    let param = |n: &str| format!("arn:aws:ssm:{REGION}:000000000000:parameter{n}");
    denied(
        ssm.get_parameter().name("/p/other/TOKEN").send().await,
        "AccessDeniedException",
        "ssm:GetParameter",
        &param("/p/other/TOKEN"),
    );
    denied(
        ssm.get_parameters()
            .names("/p/api/TOKEN")
            .names("/p/other/TOKEN")
            .send()
            .await,
        "AccessDeniedException",
        "ssm:GetParameters",
        &param("/p/other/TOKEN"),
    );
    denied(
        ssm.put_parameter()
            .name("/p/api/TOKEN")
            .value("w")
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await,
        "AccessDeniedException",
        "ssm:PutParameter",
        &param("/p/api/TOKEN"),
    );

    // By ARN: its own parameter, as by name. An ARN of another region or account
    // is authorized as that ARN (refused), never read as this store's parameter;
    // a name without its leading slash is authorized as the parameter it names.
    let p = ssm
        .get_parameter()
        .name(param("/p/api/TOKEN"))
        .send()
        .await
        .unwrap();
    assert_eq!(p.parameter().unwrap().value(), Some("v"));
    for other in [
        "arn:aws:ssm:us-east-1:000000000000:parameter/p/api/TOKEN".to_string(),
        format!("arn:aws:ssm:{REGION}:111111111111:parameter/p/api/TOKEN"),
        param("/p/other/TOKEN"),
    ] {
        denied(
            ssm.get_parameter().name(&other).send().await,
            "AccessDeniedException",
            "ssm:GetParameter",
            &other,
        );
    }
    denied(
        ssm.get_parameter().name("p/other/TOKEN").send().await,
        "AccessDeniedException",
        "ssm:GetParameter",
        &param("/p/other/TOKEN"),
    );
    denied(
        ssm.get_parameters()
            .names(param("/p/api/TOKEN"))
            .names(param("/p/other/TOKEN"))
            .send()
            .await,
        "AccessDeniedException",
        "ssm:GetParameters",
        &param("/p/other/TOKEN"),
    );

    // The empty policy allows nothing; the user may do anything.
    refused_send(
        &aws_sdk_sqs::Client::new(&idle),
        &urls["other-jobs"],
        &arn("other-jobs"),
    )
    .await;
    denied(
        aws_sdk_s3::Client::new(&idle)
            .get_object()
            .bucket("api-results")
            .key("seed")
            .send()
            .await,
        "AccessDenied",
        "s3:GetObject",
        "arn:aws:s3:::api-results/seed",
    );
    sqs_user
        .send_message()
        .queue_url(&urls["other-jobs"])
        .message_body("x")
        .send()
        .await
        .unwrap();
    sqs_user.list_queues().send().await.unwrap();
    s3_user.list_buckets().send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_allows_its_actions_on_its_resource_and_nothing_more() {
    let l = local().await;
    let user = conf(&l, USER).await;
    let reports = conf(&l, "reports").await;
    let sqs_user = aws_sdk_sqs::Client::new(&user);
    let jobs = sqs_user
        .create_queue()
        .queue_name("api-jobs")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let other = sqs_user
        .create_queue()
        .queue_name("other-jobs")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let s3_user = aws_sdk_s3::Client::new(&user);
    s3_user
        .create_bucket()
        .bucket("api-results")
        .send()
        .await
        .unwrap();
    s3_user
        .put_object()
        .bucket("api-results")
        .key("jobs/1.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap();

    let sqs = aws_sdk_sqs::Client::new(&reports);
    let s3 = aws_sdk_s3::Client::new(&reports);
    // Granted: send to the queue, list and read the bucket.
    sqs.send_message()
        .queue_url(&jobs)
        .message_body("from reports")
        .send()
        .await
        .unwrap();
    let listed = s3
        .list_objects_v2()
        .bucket("api-results")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);
    s3.get_object()
        .bucket("api-results")
        .key("jobs/1.json")
        .send()
        .await
        .unwrap();
    // Not granted: another action on the same queue, another queue, writing the bucket.
    denied(
        sqs.receive_message().queue_url(&jobs).send().await,
        "AccessDenied",
        "sqs:ReceiveMessage",
        &arn("api-jobs"),
    );
    refused_send(&sqs, &other, &arn("other-jobs")).await;
    let put = s3
        .put_object()
        .bucket("api-results")
        .key("jobs/forged.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await;
    let e = put.expect_err("writing was not granted");
    assert_eq!(e.code(), Some("AccessDenied"), "{e:?}");
}
