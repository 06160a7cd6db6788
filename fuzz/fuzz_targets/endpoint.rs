//! The local AWS endpoint's request handling on arbitrary input: SQS JSON and query
//! protocol requests and SSM requests, parsed into typed calls (duplicate keys and
//! unknown members refused), authorized, and applied to real (in-memory) state;
//! never panics, and any error is an AWS error with a code. What IAM is asked
//! about is always the resource the call names.
//! Input: one selector byte, then `Action\nbody`; with a selector of 0xF0 or more,
//! the rest is a request head for the HTTP/1.1 fast path's parser.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pantstack_endpoint::keys::Keyring;
use pantstack_endpoint::request::{Call, Request, Resource, Service, SqsRequest, parse_json};
use pantstack_endpoint::{iam, query, sqs, ssm};
use serde_json::{Value, json};
use std::sync::OnceLock;

fn keys() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    K.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pantstack-fuzz-{}", std::process::id()));
        Keyring::open_or_create(&dir.join("k.key")).expect("key file")
    })
}

fn call(service: Service, action: &str, input: Value) -> Call {
    Call::parse(service, action, input, None).expect("a valid call")
}

fn queues() -> sqs::Sqs {
    let mut s = sqs::Sqs::new("us-east-1", "000000000000");
    let _ = s.handle(&call(Service::Sqs, "CreateQueue", json!({"QueueName": "q"})), 0, "f", "http://x");
    let _ = s.handle(&call(Service::Sqs, "CreateQueue", json!({"QueueName": "q.fifo", "Attributes": {"FifoQueue": "true"}})), 0, "f", "http://x");
    let _ = s.handle(&call(Service::Sqs, "SendMessage", json!({"QueueUrl": "http://x/0/q", "MessageBody": "m"})), 0, "f", "http://x");
    s
}

/// The call's resources are what IAM is asked about, one pair each.
fn check_authorization(c: &Call) {
    let asked = iam::call_request(c, "us-east-1", "000000000000");
    assert!(!asked.is_empty());
    if let Resource::Parameters(names) = &c.resource
        && !names.is_empty()
    {
        assert_eq!(asked.len(), names.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    if sel >= 0xF0 {
        pantstack_endpoint::fuzzing::request_head(rest);
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let (action, body) = text.split_once('\n').unwrap_or((&text, ""));
    match sel % 3 {
        0 | 1 => {
            let input: Value = if sel % 3 == 0 {
                match parse_json(body.as_bytes()) {
                    Ok(v) => v,
                    Err(e) => {
                        assert!(!e.code.is_empty());
                        return;
                    }
                }
            } else {
                match query::to_json(&query::form_pairs(body)) {
                    Ok(v) => v,
                    Err(e) => {
                        assert!(!e.code.is_empty());
                        return;
                    }
                }
            };
            let c = match Call::parse(Service::Sqs, action, input, None) {
                Ok(c) => c,
                Err(e) => {
                    assert!(!e.code.is_empty() && e.status >= 400);
                    return;
                }
            };
            check_authorization(&c);
            let receive = match &c.request {
                Request::Sqs(SqsRequest::ReceiveMessage(r)) => Some(r.clone()),
                _ => None,
            };
            let mut s = queues();
            for now in [1_000, 40_000] {
                match s.handle(&c, now, "f", "http://x") {
                    Ok((_, ops)) => {
                        for op in ops {
                            // Journal records round-trip and replay.
                            let text = serde_json::to_string(&op).expect("op serializes");
                            let back: sqs::Op = serde_json::from_str(&text).expect("op parses");
                            let mut fresh = queues();
                            let _ = fresh.apply(&back);
                        }
                    }
                    Err(e) => assert!(!e.code.is_empty() && e.status >= 400),
                }
                if let Some(r) = &receive
                    && let Ok(op) = s.receive_op("q", r, now)
                {
                    let _ = s.apply(&op);
                }
            }
        }
        _ => {
            let input = match parse_json(body.as_bytes()) {
                Ok(v) => v,
                Err(e) => {
                    assert!(!e.code.is_empty());
                    return;
                }
            };
            let c = match Call::parse(Service::Ssm, action, input, None) {
                Ok(c) => c,
                Err(e) => {
                    assert!(!e.code.is_empty() && e.status >= 400);
                    return;
                }
            };
            check_authorization(&c);
            let mut p = ssm::Params::new("us-east-1", "000000000000");
            let _ = p.handle(keys(), &call(Service::Ssm, "PutParameter", json!({"Name": "/a/b", "Value": "v", "Type": "SecureString"})), 0, "f");
            match p.handle(keys(), &c, 1, "f") {
                Ok(_) => {}
                Err(e) => assert!(!e.code.is_empty()),
            }
        }
    }
});
