//! `pantstack_deploy::quotas::applied` against a real HTTP server on loopback
//! that answers Service Quotas' JSON protocol (awsJson1.1, `X-Amz-Target:
//! ServiceQuotasV20190624.GetServiceQuota`), the SDK pointed at it by endpoint
//! URL: applied values are taken, a quota the account does not have
//! (`NoSuchResourceException`) or may not read (`AccessDeniedException`) keeps
//! its default with the reason, and an unreachable endpoint fails nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use aws_sdk_cloudformation::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use pantstack_deploy::Clients;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The account's applied values this server answers (service, code, value);
/// `ec2` answers NoSuchResource, `s3` AccessDenied, anything else NoSuchResource.
const APPLIED: &[(&str, &str, f64)] = &[
    ("iam", "L-FE177D64", 5000.0),
    ("elasticloadbalancing", "L-53DA6B97", 100.0),
    ("elasticloadbalancing", "L-7E6692B2", 2000.0),
    ("cloudformation", "L-0485CB21", 2500.0),
    ("fargate", "L-3032A538", 4000.0),
];

/// One request: its headers (lowercased names) and body, or `None` at EOF.
async fn read_request(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((headers, body));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves Service Quotas on 127.0.0.1; returns its URL and the requests'
/// (target, body) as received.
async fn serve() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((headers, body)) = read_request(&mut s, &mut buf).await {
                    let target = headers
                        .iter()
                        .find(|(k, _)| k == "x-amz-target")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    log.lock()
                        .expect("lock")
                        .push((target.clone(), input.clone()));
                    let service = input["ServiceCode"].as_str().unwrap_or_default();
                    let code = input["QuotaCode"].as_str().unwrap_or_default();
                    let (status, answer) = if target != "ServiceQuotasV20190624.GetServiceQuota" {
                        (400, json!({ "__type": "UnknownOperationException" }))
                    } else if let Some((_, _, v)) =
                        APPLIED.iter().find(|(s, c, _)| *s == service && *c == code)
                    {
                        (
                            200,
                            json!({ "Quota": {
                            "ServiceCode": service, "QuotaCode": code, "Value": v,
                            "Adjustable": true, "GlobalQuota": service == "iam",
                            "QuotaArn": format!("arn:aws:servicequotas:us-east-1:123456789012:{service}/{code}"),
                        } }),
                        )
                    } else if service == "s3" {
                        (
                            400,
                            json!({ "__type": "AccessDeniedException", "Message": "not authorized to perform servicequotas:GetServiceQuota" }),
                        )
                    } else {
                        (
                            400,
                            json!({ "__type": "NoSuchResourceException", "Message": format!("the quota {code} of {service} was not found") }),
                        )
                    };
                    let body = answer.to_string();
                    let reply = format!(
                        "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: r\r\ncontent-length: {}\r\n\r\n{body}",
                        if status == 200 { "OK" } else { "Bad Request" },
                        body.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

fn clients(endpoint: &str) -> Clients {
    let config = aws_types::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(10))
                .build(),
        )
        .build();
    Clients::from_config(config, "us-east-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_quotas_come_from_service_quotas_and_unanswered_ones_say_why() {
    let (url, seen) = serve().await;
    let c = clients(&url);
    let a = pantstack_deploy::quotas::applied(&c, &["us-east-1".into(), "eu-west-1".into()]).await;

    let value = |scope: &str, code: &str| {
        a.values
            .iter()
            .find(|(s, c, _)| s == scope && c == code)
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value("account", "L-FE177D64"), Some(5000), "{a:?}");
    assert_eq!(value("us-east-1", "L-53DA6B97"), Some(100), "{a:?}");
    assert_eq!(value("eu-west-1", "L-53DA6B97"), Some(100), "{a:?}");
    assert_eq!(value("us-east-1", "L-7E6692B2"), Some(2000), "{a:?}");
    assert_eq!(value("us-east-1", "L-0485CB21"), Some(2500), "{a:?}");
    // Fargate's vCPU quotas are regional: asked in each region.
    assert_eq!(value("us-east-1", "L-3032A538"), Some(4000), "{a:?}");
    assert_eq!(value("eu-west-1", "L-3032A538"), Some(4000), "{a:?}");
    let why = |scope: &str, code: &str| {
        a.unanswered
            .iter()
            .find(|(s, c, _)| s == scope && c == code)
            .map(|(_, _, w)| w.clone())
            .unwrap_or_default()
    };
    assert!(
        why("us-east-1", "L-0263D0A3").contains("NoSuchResourceException"),
        "{a:?}"
    );
    assert!(
        why("account", "L-DC2B2D3D").contains("AccessDeniedException"),
        "{a:?}"
    );

    // Each quota with a code asked once per region (account-wide ones once),
    // as GetServiceQuota with its service and quota code.
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .all(|(t, _)| t == "ServiceQuotasV20190624.GetServiceQuota")
    );
    let asked = |service: &str, code: &str| {
        seen.iter()
            .filter(|(_, b)| b["ServiceCode"] == service && b["QuotaCode"] == code)
            .count()
    };
    assert_eq!(asked("iam", "L-FE177D64"), 1);
    assert_eq!(asked("s3", "L-DC2B2D3D"), 1);
    assert_eq!(asked("elasticloadbalancing", "L-53DA6B97"), 2);
    assert_eq!(asked("vpc", "L-F678F1CE"), 2);
    assert_eq!(asked("fargate", "L-3032A538"), 2);
    assert_eq!(asked("fargate", "L-36FBB829"), 2);
    assert!(
        why("eu-west-1", "L-36FBB829").contains("NoSuchResourceException"),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_keeps_every_default_and_says_so() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = clients(&format!("http://127.0.0.1:{port}"));
    let a = pantstack_deploy::quotas::applied(&c, &["us-east-1".into()]).await;
    assert!(a.values.is_empty(), "{a:?}");
    let codes = pantstack_synth::quotas::QUOTAS
        .iter()
        .filter(|q| q.code.is_some())
        .count();
    assert_eq!(a.unanswered.len(), codes, "{a:?}");
    assert!(
        a.unanswered
            .iter()
            .all(|(_, _, w)| w.starts_with("Service Quotas unreachable in us-east-1")),
        "{a:?}"
    );
}
