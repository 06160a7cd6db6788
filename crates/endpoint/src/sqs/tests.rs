//! SQS: message checks, MD5 of attributes, replay, message ids.

use super::input::*;
use super::state::*;
use crate::request::Call;
use md5::{Digest, Md5};
use pantstack_awsproto::sigv4::hex;
use serde_json::{Map, Value, json};

/// The fast path agrees with the character rule on every character class, and
/// the error names the first character refused.
#[test]
fn message_bodies_are_checked_against_the_allowed_characters() {
    let allowed = |c: char| matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
    let samples = [
        '\0',
        '\u{1}',
        '\t',
        '\n',
        '\u{b}',
        '\r',
        '\u{1f}',
        ' ',
        'a',
        '\u{7f}',
        '\u{80}',
        'é',
        '\u{d7ff}',
        '\u{e000}',
        '\u{fffd}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{10000}',
        '😀',
        '\u{10ffff}',
    ];
    for c in samples {
        for body in [
            c.to_string(),
            format!("ok {c} ok"),
            format!("{}{c}", "x".repeat(300)),
        ] {
            let got = check_body(&body);
            assert_eq!(got.is_ok(), allowed(c), "{:X} in {body:?}", c as u32);
            if let Err(e) = got {
                assert_eq!(e.code, "InvalidMessageContents");
                assert!(
                    e.message.contains(&format!("'#x{:X}'", c as u32)),
                    "{}",
                    e.message
                );
            }
        }
    }
}

#[test]
fn md5_of_attributes_matches_aws_example() {
    // A value computed by botocore's algorithm for one string attribute.
    let attrs: Map<String, Value> = serde_json::from_value(json!({
        "Author": {"DataType": "String", "StringValue": "John"}
    }))
    .unwrap();
    // name "Author", type "String", transport 1, value "John".
    let mut h = Md5::new();
    h.update(6u32.to_be_bytes());
    h.update(b"Author");
    h.update(6u32.to_be_bytes());
    h.update(b"String");
    h.update([1u8]);
    h.update(4u32.to_be_bytes());
    h.update(b"John");
    assert_eq!(md5_of_attributes(&attrs), hex(&h.finalize()));
}

#[test]
fn replay_rebuilds_the_same_state() {
    let mut a = Sqs::new("us-east-1", "000000000000");
    let mut ops = Vec::new();
    let (_, o) = a
        .handle(
            &crate::request::Call::parse(
                crate::request::Service::Sqs,
                "CreateQueue",
                json!({"QueueName": "dlq"}),
                None,
            )
            .unwrap(),
            1000,
            "t",
            "http://x",
        )
        .unwrap();
    ops.extend(o);
    let redrive = json!({"deadLetterTargetArn": a.arn("dlq"), "maxReceiveCount": 1}).to_string();
    let (_, o) = a
        .handle(
            &crate::request::Call::parse(crate::request::Service::Sqs, "CreateQueue", json!({"QueueName": "q", "Attributes": {"RedrivePolicy": redrive, "VisibilityTimeout": "0"}}), None).unwrap(),
            1000,
            "t",
            "http://x",
        )
        .unwrap();
    ops.extend(o);
    for i in 0..3 {
        let (_, o) = a
            .handle(
                &crate::request::Call::parse(
                    crate::request::Service::Sqs,
                    "SendMessage",
                    json!({"QueueUrl": "http://x/0/q", "MessageBody": format!("m{i}")}),
                    None,
                )
                .unwrap(),
                2000,
                "t",
                "http://x",
            )
            .unwrap();
        ops.extend(o);
    }
    for now in [3000, 4000] {
        let op = a
            .receive_op(
                "q",
                &crate::request::sqs::ReceiveMessage {
                    max_number_of_messages: Some(10),
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        a.apply(&op).unwrap();
        ops.push(op);
    }
    let text: Vec<String> = ops
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    let mut b = Sqs::new("us-east-1", "000000000000");
    for t in &text {
        let op: Op = serde_json::from_str(t).unwrap();
        b.apply(&op).unwrap();
    }
    for s in [&a, &b] {
        assert_eq!(
            s.queues["dlq"].q.counts(5000),
            (3, 0, 0),
            "all three dead-lettered"
        );
        assert_eq!(s.queues["q"].q.counts(5000), (0, 0, 0));
    }
}

fn call(action: &str, input: Value) -> Call {
    crate::request::Call::parse(crate::request::Service::Sqs, action, input, None).unwrap()
}

/// SQS message ids are UUIDs (AWS SQS API reference, SendMessage: "MessageId
/// ... a UUID"), 36 characters; drawn in the handler, carried in the op, so
/// replay (and an old record without one) gives back the same message ids.
#[test]
fn message_ids_are_uuids_and_replay_keeps_them() {
    let mut a = Sqs::new("us-east-1", "000000000000");
    let mut ops = Vec::new();
    let (_, o) = a
        .handle(
            &call("CreateQueue", json!({"QueueName": "q"})),
            1000,
            "t",
            "http://x",
        )
        .unwrap();
    ops.extend(o);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (out, o) = a
            .handle(
                &call(
                    "SendMessage",
                    json!({"QueueUrl": "http://x/0/q", "MessageBody": format!("m{i}")}),
                ),
                1_754_000_000_000,
                "t",
                "http://x",
            )
            .unwrap();
        ops.extend(o);
        ids.push(out["MessageId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()),
            "{id}"
        );
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert!("89ab".contains(&id[19..20]), "variant: {id}");
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    let mut b = Sqs::new("us-east-1", "000000000000");
    for o in &ops {
        let o: Op = serde_json::from_str(&serde_json::to_string(o).unwrap()).unwrap();
        b.apply(&o).unwrap();
    }
    let got: Vec<String> = b.queues["q"].q.messages().map(|m| m.id.clone()).collect();
    assert_eq!(got, ids);
    // A record written before ids were drawn still replays (no `id`).
    let old = r#"{"op":"send","name":"q","body":"old","extra":"","delay":null,"group":null,"dedup":null,"now":5}"#;
    b.apply(&serde_json::from_str(old).unwrap()).unwrap();
}
