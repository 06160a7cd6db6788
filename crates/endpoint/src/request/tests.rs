//! The typed members: both wire forms give the same typed request, and a
//! malformed member is refused by the parse (before IAM) with the code the
//! endpoint has always answered it with.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use serde_json::json;

fn sqs(action: &str, input: Value) -> Result<SqsRequest, ApiError> {
    Call::parse(Service::Sqs, action, input, Some("q")).map(|c| match c.request {
        Request::Sqs(r) => r,
        Request::Ssm(r) => panic!("{r:?}"),
    })
}

fn ssm(action: &str, input: Value) -> Result<SsmRequest, ApiError> {
    Call::parse(Service::Ssm, action, input, None).map(|c| match c.request {
        Request::Ssm(r) => r,
        Request::Sqs(r) => panic!("{r:?}"),
    })
}

#[test]
fn the_query_protocols_form_parses_as_the_json_protocols_body() {
    let form = crate::query::form_pairs(
        "Action=SendMessage&MessageBody=hi&DelaySeconds=%205&MessageGroupId=g\
         &MessageAttribute.1.Name=n&MessageAttribute.1.Value.DataType=Number\
         &MessageAttribute.1.Value.StringValue=1",
    );
    let json = json!({
        "MessageBody": "hi", "DelaySeconds": 5, "MessageGroupId": "g",
        "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}},
    });
    for input in [crate::query::to_json(&form).unwrap(), json] {
        let SqsRequest::SendMessage(r) = sqs("SendMessage", input).unwrap() else {
            panic!()
        };
        assert_eq!(r.message_body.as_deref(), Some("hi"));
        assert_eq!(r.delay_seconds, Some(5));
        assert_eq!(r.message_group_id.as_deref(), Some("g"));
        let a = &r.message_attributes.unwrap()["n"];
        assert_eq!(a.data_type.as_deref(), Some("Number"));
        assert_eq!(a.string_value.as_deref(), Some("1"));
    }
}

#[test]
fn malformed_members_keep_their_codes_and_messages() {
    let e = sqs(
        "SendMessage",
        json!({"MessageBody": "x", "DelaySeconds": "soon"}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "InvalidParameterValue",
            "Value soon for parameter DelaySeconds is invalid."
        )
    );
    let e = sqs(
        "SendMessage",
        json!({"MessageBody": "x", "MessageAttributes": []}),
    )
    .unwrap_err();
    assert_eq!(e.message, "MessageAttributes must be a map");
    let e = sqs("SetQueueAttributes", json!({"Attributes": {"A": [1]}})).unwrap_err();
    assert_eq!(e.message, "Attributes.A must be a string");
    let e = sqs("CreateQueue", json!({"QueueName": "q", "tags": 1})).unwrap_err();
    assert_eq!(e.message, "tags must be a map");
    let e = sqs("ReceiveMessage", json!({"ReceiveRequestAttemptId": 7})).unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = sqs(
        "AddPermission",
        json!({"Label": "l", "Actions": "SendMessage"}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "InvalidParameterValue",
            "Actions must be a list of strings."
        )
    );
    let e = ssm(
        "GetParameter",
        json!({"Name": "/a", "WithDecryption": "true"}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("SerializationException", "WithDecryption must be a boolean")
    );
    let e = ssm(
        "LabelParameterVersion",
        json!({"Name": "/a", "Labels": ["x"], "ParameterVersion": -1}),
    )
    .unwrap_err();
    assert_eq!(e.message, "ParameterVersion -1 is not a version number");
    let e = ssm("DescribeParameters", json!({"ParameterFilters": {}})).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "ValidationException",
            "ParameterFilters must be a list of filters."
        )
    );
    let e = ssm(
        "DescribeParameters",
        json!({"ParameterFilters": [{"Key": "Name", "Values": [1]}]}),
    )
    .unwrap_err();
    assert_eq!(e.message, "Filter values must be strings.");
    let e = ssm(
        "AddTagsToResource",
        json!({"ResourceType": "Parameter", "ResourceId": "/a", "Tags": {}}),
    )
    .unwrap_err();
    assert_eq!(e.message, "Tags must be a list of tags");
    let e = ssm("DescribeParameters", json!({"MaxResults": "many"})).unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
}

#[test]
fn members_of_the_wrong_type_are_refused_as_malformed() {
    for (action, input) in [
        ("SendMessage", json!({"MessageBody": 1})),
        (
            "SendMessage",
            json!({"MessageBody": "x", "MessageGroupId": ["g"]}),
        ),
        ("ListQueues", json!({"QueueNamePrefix": {"a": 1}})),
        ("GetQueueAttributes", json!({"AttributeNames": "All"})),
        ("UntagQueue", json!({"TagKeys": [1]})),
        ("SendMessageBatch", json!({"Entries": {"Id": "a"}})),
    ] {
        let e = sqs(action, input).unwrap_err();
        assert_eq!(e.code, "SerializationException", "{action}");
        assert_eq!(e.query(), "MalformedQueryString", "{action}");
    }
    for (action, input) in [
        ("PutParameter", json!({"Name": "/a", "Value": 3})),
        (
            "PutParameter",
            json!({"Name": "/a", "Value": "v", "Overwrite": "yes"}),
        ),
        ("GetParametersByPath", json!({"Path": "/", "Recursive": 1})),
        (
            "RemoveTagsFromResource",
            json!({"ResourceType": "Parameter", "ResourceId": "/a", "TagKeys": "k"}),
        ),
    ] {
        assert_eq!(
            ssm(action, input).unwrap_err().code,
            "SerializationException",
            "{action}"
        );
    }
}

#[test]
fn a_malformed_batch_entry_fails_alone() {
    let r = sqs(
        "SendMessageBatch",
        json!({"Entries": [
            {"Id": "a", "MessageBody": "x"},
            {"Id": "b", "MessageBody": "y", "DelaySeconds": "later"},
            {"Id": 3, "MessageBody": "z"},
        ]}),
    )
    .unwrap();
    let SqsRequest::SendMessageBatch(r) = r else {
        panic!()
    };
    let entries = r.entries.unwrap();
    assert_eq!(entries[0].id, "a");
    assert_eq!(
        entries[0].item.as_ref().unwrap().message_body.as_deref(),
        Some("x")
    );
    assert_eq!(
        entries[1].item.as_ref().unwrap_err().code,
        "InvalidParameterValue"
    );
    // Not a string: no id (the batch is refused as InvalidBatchEntryId).
    assert_eq!(entries[2].id, "");
}

#[test]
fn null_is_a_member_not_given() {
    let SqsRequest::ReceiveMessage(r) = sqs(
        "ReceiveMessage",
        json!({"WaitTimeSeconds": null, "MaxNumberOfMessages": "3"}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.wait_time_seconds, None);
    assert_eq!(r.max_number_of_messages, Some(3));
    let SsmRequest::GetParameter(r) = ssm(
        "GetParameter",
        json!({"Name": "/a", "WithDecryption": null}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.with_decryption, None);
}

#[test]
fn every_action_has_its_own_request() {
    let all = SqsAction::ALL
        .iter()
        .map(|a| Action::Sqs(*a))
        .chain(SsmAction::ALL.iter().map(|a| Action::Ssm(*a)));
    for a in all {
        let mut empty = Map::new();
        let r = match a {
            Action::Sqs(s) => Request::Sqs(SqsRequest::parse(Service::Sqs, s, &mut empty).unwrap()),
            Action::Ssm(s) => Request::Ssm(SsmRequest::parse(Service::Ssm, s, &mut empty).unwrap()),
        };
        assert_eq!(r.action(), a);
    }
}
