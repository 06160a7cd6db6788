//! `ReceiveRequestAttemptId` and `AddPermission` / `RemovePermission` through the
//! AWS SDK for Rust, as the SQS API reference describes them: a FIFO receive
//! retried with the same attempt id gets the same messages and receipt handles
//! (also after the endpoint restarted from its journal), another id gets the next
//! messages; permissions edit the queue's `Policy` (a statement per label), a
//! label is unique, an unknown label cannot be removed, a `Policy` that is not a
//! policy document is refused, and a service's credentials may not change a
//! queue's permissions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use pantstack_endpoint::iam::Policy;
use pantstack_endpoint::{Config, Core, USER, http};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_string()
}

fn arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:000000000000:{name}")
}

/// (body, receipt handle, receive count) of each message received.
fn deliveries(
    out: &aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput,
) -> Vec<(String, String, String)> {
    out.messages()
        .iter()
        .map(|m| {
            (
                m.body().unwrap().to_string(),
                m.receipt_handle().unwrap().to_string(),
                m.attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    })
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

async fn fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str, groups: &[&str]) -> String {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    for g in groups {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("{g}-1"))
            .message_group_id(*g)
            .send()
            .await
            .unwrap();
    }
    url
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    attempt: &str,
    max: i32,
) -> aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .visibility_timeout(300)
        .receive_request_attempt_id(attempt)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
}

async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (String, String) {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = a.attributes().unwrap();
    (
        a[&QueueAttributeName::ApproximateNumberOfMessages].clone(),
        a[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_receive_attempt_returns_the_same_messages_and_handles() {
    let l = common::local("attempts").await;
    let sqs = aws_sdk_sqs::Client::new(&l.conf);
    let url = fifo_queue(&sqs, "orders.fifo", &["a", "b", "c", "d"]).await;

    let first = receive(&sqs, &url, "attempt-1", 2).await;
    let first = deliveries(&first);
    assert_eq!(first.len(), 2);
    // The retry (as after a lost response): same messages, same handles, still
    // their first receive.
    let again = deliveries(&receive(&sqs, &url, "attempt-1", 2).await);
    assert_eq!(again, first);
    assert!(again.iter().all(|(_, _, count)| count == "1"), "{again:?}");
    assert_eq!(counts(&sqs, &url).await, ("2".into(), "2".into()));
    // Another attempt id is another receive: the next messages.
    let other = deliveries(&receive(&sqs, &url, "attempt-2", 2).await);
    let bodies: Vec<&str> = other.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(bodies, ["c-1", "d-1"]);
    assert!(other.iter().all(|o| first.iter().all(|f| f.1 != o.1)));
    // The handles of the replayed receive are the messages' current ones.
    for (_, handle, _) in &again {
        sqs.delete_message()
            .queue_url(&url)
            .receipt_handle(handle)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(counts(&sqs, &url).await, ("0".into(), "2".into()));
    // Once a message of the attempt is gone, the id no longer replays it.
    let after = receive(&sqs, &url, "attempt-1", 2).await;
    assert!(after.messages().is_empty(), "{after:?}");

    // Not 1..128 alphanumeric or punctuation characters: refused.
    for bad in ["has space", &"x".repeat(129)] {
        let e = sqs
            .receive_message()
            .queue_url(&url)
            .receive_request_attempt_id(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidParameterValue", "{bad}");
    }
    // A standard queue ignores the id: each call is a receive of its own.
    let std_url = sqs
        .create_queue()
        .queue_name("plain")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    for i in 0..2 {
        sqs.send_message()
            .queue_url(&std_url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    let one = deliveries(&receive(&sqs, &std_url, "same id", 1).await);
    let two = deliveries(&receive(&sqs, &std_url, "same id", 1).await);
    assert_eq!(one.len(), 1);
    assert_eq!(two.len(), 1);
    assert_ne!(one[0].0, two[0].0);
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running {
    core: Arc<Core>,
    server: http::Server,
}

/// An endpoint on `dir`, whose `api` unit holds its task role's policy on the
/// queue `api-jobs.fifo` (`pantstack_model::iam::QUEUE_ACTIONS`).
async fn start(dir: &Path) -> Running {
    let api = Policy::default().allow(
        pantstack_model::iam::QUEUE_ACTIONS,
        vec![arn("api-jobs.fifo")],
    );
    let cfg = Config {
        dir: dir.join("aws"),
        key_file: dir.join("keys/test.key"),
        region: REGION.into(),
        principals: vec!["api".into()],
        policies: HashMap::from([("api".to_string(), api)]),
        compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
    };
    // The previous endpoint's thread lets go of the state's lock as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let core = loop {
        match Core::open(&cfg) {
            Ok(c) => break Arc::new(c),
            Err(e) if Instant::now() < deadline && e.contains("in use") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    };
    let server = http::serve(core.clone(), 0).await.expect("serve");
    Running { core, server }
}

async fn client(r: &Running, principal: &str) -> aws_sdk_sqs::Client {
    let conf = common::sdk_config(&r.server.url(), REGION, r.core.credentials(principal)).await;
    aws_sdk_sqs::Client::new(&conf)
}

/// The retried attempt is answered from the journal after a restart, and a
/// service's credentials may receive with an attempt id but not change the
/// queue's permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_answers_the_same_after_a_restart() {
    let dir = TempDir(
        std::env::temp_dir().join(format!("pantstack-attempts-restart-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    let r = start(&dir.0).await;
    let user = client(&r, USER).await;
    let url = fifo_queue(&user, "api-jobs.fifo", &["a", "b", "c"]).await;
    let api = client(&r, "api").await;
    let first = deliveries(&receive(&api, &url, "retry-me", 2).await);
    assert_eq!(first.len(), 2);

    // sqs:AddPermission / sqs:RemovePermission on the queue: not the task role's.
    for e in [
        api.add_permission()
            .queue_url(&url)
            .label("Share")
            .aws_account_ids("111122223333")
            .actions("SendMessage")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .meta()
            .clone(),
        api.remove_permission()
            .queue_url(&url)
            .label("Share")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .meta()
            .clone(),
    ] {
        assert_eq!(e.code(), Some("AccessDenied"), "{e:?}");
        let m = e.message().unwrap_or_default();
        assert!(
            m.contains(
                "sqs:AddPermission on resource: arn:aws:sqs:eu-west-1:000000000000:api-jobs.fifo"
            ) || m.contains(
                "sqs:RemovePermission on resource: arn:aws:sqs:eu-west-1:000000000000:api-jobs.fifo"
            ),
            "{m}"
        );
    }
    user.add_permission()
        .queue_url(&url)
        .label("Share")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();

    r.server.shutdown();
    drop((api, user));
    drop(r);
    let r = start(&dir.0).await;
    let api = client(&r, "api").await;
    let again = deliveries(&receive(&api, &url, "retry-me", 2).await);
    assert_eq!(again, first, "the journal answers the retried attempt");
    let next = deliveries(&receive(&api, &url, "next", 2).await);
    let bodies: Vec<&str> = next.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(bodies, ["c-1"]);
    assert!(
        r.core
            .sqs_policy_of("api-jobs.fifo")
            .is_some_and(|p| p.contains("\"Sid\":\"Share\"")),
        "the permission survived the restart"
    );
    r.server.shutdown();
}

async fn policy(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<Value> {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .unwrap();
    a.attributes()
        .and_then(|a| a.get(&QueueAttributeName::Policy))
        .map(|p| serde_json::from_str(p).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_permission_edit_the_queue_policy() {
    let l = common::local("permissions").await;
    let sqs = aws_sdk_sqs::Client::new(&l.conf);
    let url = sqs
        .create_queue()
        .queue_name("shared")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    assert_eq!(policy(&sqs, &url).await, None);
    sqs.add_permission()
        .queue_url(&url)
        .label("AliceSendMessage")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    sqs.add_permission()
        .queue_url(&url)
        .label("Everything")
        .aws_account_ids("111122223333")
        .aws_account_ids("444455556666")
        .actions("*")
        .actions("ReceiveMessage")
        .send()
        .await
        .unwrap();
    let p = policy(&sqs, &url).await.expect("a Policy");
    assert_eq!(p["Version"], "2012-10-17");
    assert_eq!(p["Id"], format!("{}/SQSDefaultPolicy", arn("shared")));
    assert_eq!(
        p["Statement"],
        json!([
            {
                "Sid": "AliceSendMessage",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "SQS:SendMessage",
                "Resource": arn("shared"),
            },
            {
                "Sid": "Everything",
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:root"]},
                "Action": ["SQS:*", "SQS:ReceiveMessage"],
                "Resource": arn("shared"),
            }
        ])
    );
    assert_eq!(
        l.core
            .sqs_policy_of("shared")
            .map(|s| serde_json::from_str::<Value>(&s).unwrap()),
        Some(p.clone()),
        "the accessor returns the stored document"
    );

    // A label is unique.
    let e = sqs
        .add_permission()
        .queue_url(&url)
        .label("Everything")
        .aws_account_ids("111122223333")
        .actions("GetQueueUrl")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert_eq!(
        e.message(),
        Some("Value Everything for parameter Label is invalid. Reason: Already exists.")
    );
    // At most 7 actions per statement; only shareable actions; accounts by id.
    let mut eight = sqs
        .add_permission()
        .queue_url(&url)
        .label("Eight")
        .aws_account_ids("111122223333");
    for a in [
        "SendMessage",
        "ReceiveMessage",
        "DeleteMessage",
        "ChangeMessageVisibility",
        "GetQueueAttributes",
        "GetQueueUrl",
        "PurgeQueue",
        "ListDeadLetterSourceQueues",
    ] {
        eight = eight.actions(a);
    }
    let e = eight.send().await.unwrap_err();
    assert_eq!(code(&e), "OverLimit");
    assert_eq!(
        e.message(),
        Some("8 Actions were found, maximum allowed is 7.")
    );
    let e = sqs
        .add_permission()
        .queue_url(&url)
        .label("Owner")
        .aws_account_ids("111122223333")
        .actions("DeleteQueue")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    let e = sqs
        .add_permission()
        .queue_url(&url)
        .label("bad label!")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert_eq!(
        policy(&sqs, &url).await.unwrap()["Statement"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "refused calls changed nothing"
    );

    // RemovePermission: by label; an unknown label is refused.
    sqs.remove_permission()
        .queue_url(&url)
        .label("AliceSendMessage")
        .send()
        .await
        .unwrap();
    let p = policy(&sqs, &url).await.unwrap();
    let sids: Vec<&str> = p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["Everything"]);
    let e = sqs
        .remove_permission()
        .queue_url(&url)
        .label("AliceSendMessage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert_eq!(
        e.message(),
        Some(
            "Value AliceSendMessage for parameter Label is invalid. Reason: can't find label on existing policy."
        )
    );
    // The last statement removed: no Policy left.
    sqs.remove_permission()
        .queue_url(&url)
        .label("Everything")
        .send()
        .await
        .unwrap();
    assert_eq!(policy(&sqs, &url).await, None);
    assert_eq!(l.core.sqs_policy_of("shared"), None);

    // A Policy that is not a policy document is refused; a real one is kept as given.
    for bad in [
        "not json",
        "[]",
        r#"{"Version":"2012-10-17"}"#,
        r#"{"Statement":"x"}"#,
    ] {
        let e = sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::Policy, bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidAttributeValue", "{bad}");
        // AWS's sentence, then why.
        assert!(
            e.message()
                .unwrap_or("")
                .starts_with("Invalid value for the parameter Policy."),
            "{bad}: {:?}",
            e.message()
        );
        let e = sqs
            .create_queue()
            .queue_name("with-policy")
            .attributes(QueueAttributeName::Policy, bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidAttributeValue", "{bad}");
    }
    assert_eq!(policy(&sqs, &url).await, None);
    let own = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Mine", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn("shared")}]});
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, own.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(policy(&sqs, &url).await, Some(own));
    // AddPermission adds to a policy set by SetQueueAttributes.
    sqs.add_permission()
        .queue_url(&url)
        .label("Bob")
        .aws_account_ids("444455556666")
        .actions("ReceiveMessage")
        .send()
        .await
        .unwrap();
    let p = policy(&sqs, &url).await.unwrap();
    let sids: Vec<&str> = p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["Mine", "Bob"]);

    // A queue that does not exist: AWS's words.
    let e = sqs
        .remove_permission()
        .queue_url(url.replace("shared", "nope"))
        .label("Bob")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_queue_does_not_exist(), "{e:?}");
    assert_eq!(e.message(), Some("The specified queue does not exist."));
}

/// Queue policies are evaluated beside the identity policy (IAM's evaluation
/// logic for one account): a permission AddPermission gave the account lets a
/// service send to a queue its task role does not name, and nothing more; an
/// explicit Deny refuses even the unrestricted person, who can still remove the
/// policy (as the account's root user can on AWS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_policies_allow_and_deny_at_request_time() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("pantstack-sqs-qpolicy-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let r = start(&dir.0).await;
    let user = client(&r, USER).await;
    let api = client(&r, "api").await;
    let shared = user
        .create_queue()
        .queue_name("shared")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let send = |c: &aws_sdk_sqs::Client, url: &str| {
        c.send_message().queue_url(url).message_body("hi").send()
    };
    let e = send(&api, &shared).await.unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessDenied",
        "no policy allows it yet"
    );
    user.add_permission()
        .queue_url(&shared)
        .label("account-send")
        .aws_account_ids("000000000000")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    send(&api, &shared).await.unwrap();
    let e = api
        .receive_message()
        .queue_url(&shared)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessDenied",
        "only SendMessage was shared"
    );

    let own = fifo_queue(&user, "api-jobs.fifo", &[]).await;
    let deny = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn("api-jobs.fifo")
    }]});
    user.set_queue_attributes()
        .queue_url(&own)
        .attributes(QueueAttributeName::Policy, deny.to_string())
        .send()
        .await
        .unwrap();
    for (who, c) in [("api", &api), ("user", &user)] {
        let e = c
            .send_message()
            .queue_url(&own)
            .message_body("x")
            .message_group_id("g")
            .message_deduplication_id(who)
            .send()
            .await
            .unwrap_err();
        let e = e.into_service_error();
        assert_eq!(code(&e), "AccessDenied", "{who}");
        assert!(
            e.message().unwrap_or("").contains("explicit deny"),
            "{who}: {e:?}"
        );
    }
    // Conditions: requests come from loopback, so a Deny outside 10/8 applies;
    // an operator the local cloud cannot evaluate is refused, not ignored.
    let from_vpn = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn("api-jobs.fifo"),
        "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    }]});
    user.set_queue_attributes()
        .queue_url(&own)
        .attributes(QueueAttributeName::Policy, from_vpn.to_string())
        .send()
        .await
        .unwrap();
    let e = api
        .send_message()
        .queue_url(&own)
        .message_body("x")
        .message_group_id("g")
        .message_deduplication_id("vpn")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    let dated = json!({"Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn("api-jobs.fifo"),
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}
    }]});
    let e = user
        .set_queue_attributes()
        .queue_url(&own)
        .attributes(QueueAttributeName::Policy, dated.to_string())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidAttributeValue");
    user.set_queue_attributes()
        .queue_url(&own)
        .attributes(QueueAttributeName::Policy, "")
        .send()
        .await
        .unwrap();
    api.send_message()
        .queue_url(&own)
        .message_body("x")
        .message_group_id("g")
        .message_deduplication_id("after")
        .send()
        .await
        .unwrap();
}
