//! SQS and SSM requests parsed once into a typed [`Call`]: the action (one of a
//! fixed table), the resource it names ([`Resource`]), and the remaining input.
//!
//! The same value is authorized (`iam::call_request`) and handed to the handler.
//! The members that name a resource (`QueueUrl`, `QueueName`, `SourceArn`,
//! `DestinationArn`, `Name`, `Names`, `Path`, `ResourceId`) are *moved out* of the input into
//! `Resource`, so a handler cannot read a resource from the raw input: what IAM
//! checked is what the handler acts on. Members an action does not have, members
//! given twice (JSON keys or form parameters), and resource members of the wrong
//! type are refused before anything is authorized or read.

use crate::error::ApiError;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The service a call is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Sqs,
    Ssm,
}

/// What a call acts on, taken out of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Account-wide (`ListQueues`, `DescribeParameters`).
    None,
    /// A queue, by name (from `QueueUrl`'s last segment or `QueueName`).
    Queue(String),
    /// A message move task: its source queue and optional destination queue, by
    /// name, with the ARNs as given (for messages).
    Move {
        source: String,
        source_arn: String,
        dest: Option<(String, String)>,
    },
    /// A move task by handle (`CancelMessageMoveTask`).
    Task(String),
    /// One parameter (`Name`, possibly with a `:version` selector, or an ARN).
    Parameter(String),
    /// Several parameters (`Names`).
    Parameters(Vec<String>),
    /// A parameter path (`GetParametersByPath`).
    Path(String),
}

/// A parsed, not yet authorized request.
#[derive(Clone, Debug)]
pub struct Call {
    pub service: Service,
    pub action: Action,
    pub resource: Resource,
    /// The input without the resource members: a JSON object.
    pub input: Value,
}

/// Where an action's resource comes from.
#[derive(Clone, Copy)]
enum From {
    Nothing,
    QueueUrl,
    QueueName,
    Move,
    TaskHandle,
    Name,
    Names,
    Path,
    /// SSM tagging: `ResourceId`, a parameter when `ResourceType` is `Parameter`.
    TagResource,
}

/// The actions of one service: where each one's resource comes from and its other
/// members, in one list. A request's action is parsed once into an [`Action`];
/// each service's handler matches its own enum exhaustively, so an action listed
/// here without a handler does not compile.
macro_rules! actions {
    ($name:ident { $($action:ident $from:ident [$($member:literal),*];)* }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($action,)*
        }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$action,)*];

            /// The action's name as AWS spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$action => stringify!($action),)*
                }
            }

            fn from(self) -> From {
                match self {
                    $($name::$action => From::$from,)*
                }
            }

            /// The members besides the resource's.
            fn members(self) -> &'static [&'static str] {
                match self {
                    $($name::$action => &[$($member),*],)*
                }
            }
        }
    };
}

actions! {
    SqsAction {
        CreateQueue QueueName ["Attributes", "tags", "Tags"];
        GetQueueUrl QueueName ["QueueOwnerAWSAccountId"];
        ListQueues Nothing ["QueueNamePrefix", "NextToken", "MaxResults"];
        DeleteQueue QueueUrl [];
        PurgeQueue QueueUrl [];
        GetQueueAttributes QueueUrl ["AttributeNames"];
        SetQueueAttributes QueueUrl ["Attributes"];
        TagQueue QueueUrl ["Tags"];
        UntagQueue QueueUrl ["TagKeys"];
        ListQueueTags QueueUrl [];
        SendMessage QueueUrl ["MessageBody", "DelaySeconds", "MessageAttributes", "MessageSystemAttributes", "MessageDeduplicationId", "MessageGroupId"];
        SendMessageBatch QueueUrl ["Entries"];
        ReceiveMessage QueueUrl ["AttributeNames", "MessageSystemAttributeNames", "MessageAttributeNames", "MaxNumberOfMessages", "VisibilityTimeout", "WaitTimeSeconds", "ReceiveRequestAttemptId"];
        DeleteMessage QueueUrl ["ReceiptHandle"];
        DeleteMessageBatch QueueUrl ["Entries"];
        ChangeMessageVisibility QueueUrl ["ReceiptHandle", "VisibilityTimeout"];
        ChangeMessageVisibilityBatch QueueUrl ["Entries"];
        ListDeadLetterSourceQueues QueueUrl ["NextToken", "MaxResults"];
        StartMessageMoveTask Move ["MaxNumberOfMessagesPerSecond"];
        ListMessageMoveTasks Move ["MaxResults"];
        CancelMessageMoveTask TaskHandle [];
        AddPermission QueueUrl ["Label", "AWSAccountIds", "Actions"];
        RemovePermission QueueUrl ["Label"];
    }
}

actions! {
    SsmAction {
        PutParameter Name ["Description", "Value", "Type", "KeyId", "Overwrite", "AllowedPattern", "Tags", "Tier", "Policies", "DataType"];
        GetParameter Name ["WithDecryption"];
        GetParameters Names ["WithDecryption"];
        GetParametersByPath Path ["Recursive", "ParameterFilters", "WithDecryption", "MaxResults", "NextToken"];
        DeleteParameter Name [];
        DeleteParameters Names [];
        DescribeParameters Nothing ["Filters", "ParameterFilters", "MaxResults", "NextToken", "Shared"];
        GetParameterHistory Name ["WithDecryption", "MaxResults", "NextToken"];
        LabelParameterVersion Name ["ParameterVersion", "Labels"];
        UnlabelParameterVersion Name ["ParameterVersion", "Labels"];
        AddTagsToResource TagResource ["ResourceType", "Tags"];
        RemoveTagsFromResource TagResource ["ResourceType", "TagKeys"];
        ListTagsForResource TagResource ["ResourceType"];
    }
}

/// An SQS or SSM action, as AWS spells it ([`Action::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Sqs(SqsAction),
    Ssm(SsmAction),
}

impl Action {
    /// `service`'s action named `name`, if the endpoint answers it.
    pub fn parse(service: Service, name: &str) -> Option<Action> {
        match service {
            Service::Sqs => SqsAction::ALL
                .iter()
                .find(|a| a.name() == name)
                .map(|a| Action::Sqs(*a)),
            Service::Ssm => SsmAction::ALL
                .iter()
                .find(|a| a.name() == name)
                .map(|a| Action::Ssm(*a)),
        }
    }

    /// The action's name as AWS spells it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Sqs(a) => a.name(),
            Action::Ssm(a) => a.name(),
        }
    }

    pub fn service(self) -> Service {
        match self {
            Action::Sqs(_) => Service::Sqs,
            Action::Ssm(_) => Service::Ssm,
        }
    }

    fn from(self) -> From {
        match self {
            Action::Sqs(a) => a.from(),
            Action::Ssm(a) => a.from(),
        }
    }

    fn members(self) -> &'static [&'static str] {
        match self {
            Action::Sqs(a) => a.members(),
            Action::Ssm(a) => a.members(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn serialization(msg: impl Into<String>) -> ApiError {
    ApiError::bad("SerializationException", msg).with_query_code("MalformedQueryString")
}

fn missing(service: Service, member: &str) -> ApiError {
    match service {
        Service::Sqs => ApiError::bad(
            "MissingParameter",
            format!("The request must contain the parameter {member}."),
        )
        .with_query_code("MissingParameter"),
        Service::Ssm => ApiError::bad(
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(member)
            ),
        ),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn invalid_address(url: &str) -> ApiError {
    ApiError::bad(
        "InvalidAddress",
        format!("The address {url} is not valid for this endpoint."),
    )
    .with_query_code("InvalidAddress")
}

/// The queue name of an SQS ARN (`arn:aws:sqs:region:account:name`).
pub use pantstack_sqs::name_of_arn;

impl Call {
    /// Parses `input` (a JSON object, already free of duplicate keys) as
    /// `service`'s `action`. `path_queue` is the queue a query-protocol request
    /// names by its path (`/<account>/<name>`), if any.
    pub fn parse(
        service: Service,
        action: &str,
        input: Value,
        path_queue: Option<&str>,
    ) -> Result<Call, ApiError> {
        let Some(parsed) = Action::parse(service, action) else {
            return Err(match service {
                Service::Sqs => ApiError::bad(
                    "InvalidAction",
                    format!("The action {action} is not valid for this endpoint."),
                )
                .with_query_code("InvalidAction"),
                Service::Ssm => ApiError::bad(
                    "UnknownOperationException",
                    format!("The action {action} is not supported by the local cloud's SSM."),
                ),
            });
        };
        let (name, from, members) = (parsed.name(), parsed.from(), parsed.members());
        let mut map = match input {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err(serialization("the request body must be a JSON object")),
        };
        let mut string = |member: &str| -> Result<Option<String>, ApiError> {
            match map.remove(member) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(serialization(format!(
                    "{name}: member {member} must be a string"
                ))),
            }
        };
        let resource = match from {
            From::Nothing => Resource::None,
            From::QueueName => {
                Resource::Queue(string("QueueName")?.ok_or_else(|| missing(service, "QueueName"))?)
            }
            From::QueueUrl => {
                let url = string("QueueUrl")?;
                let from_url = match url.as_deref() {
                    Some(u) => Some(
                        pantstack_model::physical::queue_of_url(u)
                            .ok_or_else(|| invalid_address(u))?,
                    ),
                    None => None,
                };
                let name = match (from_url, path_queue) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(ApiError::bad(
                            "InvalidAddress",
                            format!(
                                "The request names two queues: `{a}` in QueueUrl and `{b}` in its path."
                            ),
                        )
                        .with_query_code("InvalidAddress"));
                    }
                    (Some(a), _) => a.to_string(),
                    (None, Some(b)) => b.to_string(),
                    (None, None) => return Err(missing(service, "QueueUrl")),
                };
                Resource::Queue(name)
            }
            From::Move => {
                let source_arn =
                    string("SourceArn")?.ok_or_else(|| missing(service, "SourceArn"))?;
                let dest_arn = if parsed == Action::Sqs(SqsAction::StartMessageMoveTask) {
                    string("DestinationArn")?
                } else {
                    None
                };
                let queue_of = |arn: &str, member: &str| {
                    name_of_arn(arn).map(str::to_string).ok_or_else(|| {
                        ApiError::bad(
                            "ResourceNotFoundException",
                            format!(
                                "The resource that you specified for the {member} parameter doesn't exist: {arn}"
                            ),
                        )
                    })
                };
                Resource::Move {
                    source: queue_of(&source_arn, "SourceArn")?,
                    dest: match dest_arn {
                        Some(a) => Some((queue_of(&a, "DestinationArn")?, a)),
                        None => None,
                    },
                    source_arn,
                }
            }
            From::TaskHandle => {
                Resource::Task(string("TaskHandle")?.ok_or_else(|| missing(service, "TaskHandle"))?)
            }
            From::Name => {
                Resource::Parameter(string("Name")?.ok_or_else(|| missing(service, "Name"))?)
            }
            From::Path => Resource::Path(string("Path")?.ok_or_else(|| missing(service, "Path"))?),
            From::TagResource => {
                // Only a parameter is a resource here; for another type the
                // handler answers InvalidResourceType, and IAM asks for `*`.
                let id = string("ResourceId")?.ok_or_else(|| missing(service, "ResourceId"))?;
                match map.get("ResourceType") {
                    Some(Value::String(t)) if t == "Parameter" => Resource::Parameter(id),
                    _ => Resource::None,
                }
            }
            From::Names => {
                let names = match map.remove("Names") {
                    None | Some(Value::Null) => return Err(missing(service, "Names")),
                    Some(Value::Array(a)) => a
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s),
                            _ => Err(serialization(format!(
                                "{name}: member Names must be a list of strings"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(_) => {
                        return Err(serialization(format!(
                            "{name}: member Names must be a list of strings"
                        )));
                    }
                };
                Resource::Parameters(names)
            }
        };
        if let Some(unknown) = map.keys().find(|k| !members.contains(&k.as_str())) {
            return Err(serialization(format!(
                "{name} has no member `{unknown}` (members: {})",
                members_of(from, members)
            )));
        }
        if map.contains_key("tags") && map.contains_key("Tags") {
            return Err(serialization(format!(
                "{name}: give the queue's tags once (`tags`, or `Tags` in the query protocol)"
            )));
        }
        Ok(Call {
            service,
            action: parsed,
            resource,
            input: Value::Object(map),
        })
    }

    /// The queue this call names, if it names one.
    pub fn queue(&self) -> Option<&str> {
        match &self.resource {
            Resource::Queue(q) => Some(q),
            Resource::Move { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn members_of(from: From, others: &[&str]) -> String {
    let resource: &[&str] = match from {
        From::Nothing => &[],
        From::QueueUrl => &["QueueUrl"],
        From::QueueName => &["QueueName"],
        From::Move => &["SourceArn", "DestinationArn"],
        From::TaskHandle => &["TaskHandle"],
        From::Name => &["Name"],
        From::Names => &["Names"],
        From::Path => &["Path"],
        From::TagResource => &["ResourceId"],
    };
    resource
        .iter()
        .chain(others)
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a JSON request body, refusing a key given twice in any object (serde_json
/// would keep the last one silently, so two readers could see different values).
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| serialization(format!("the request body is not valid JSON: {e}")))?;
    match v {
        v @ Value::Object(_) => Ok(v),
        _ => Err(serialization("the request body must be a JSON object")),
    }
}

/// A `serde_json::Value` seed that refuses duplicate object keys.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("the key `{k}` is given twice")));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_by_its_name_under_its_service_only() {
        let all = SqsAction::ALL
            .iter()
            .map(|a| Action::Sqs(*a))
            .chain(SsmAction::ALL.iter().map(|a| Action::Ssm(*a)));
        for a in all {
            assert_eq!(Action::parse(a.service(), a.name()), Some(a));
            let other = match a.service() {
                Service::Sqs => Service::Ssm,
                Service::Ssm => Service::Sqs,
            };
            assert_eq!(Action::parse(other, a.name()), None, "{a}");
        }
        assert_eq!(Action::parse(Service::Sqs, "sendmessage"), None);
        assert_eq!(SqsAction::ALL.len() + SsmAction::ALL.len(), 36);
    }
    use serde_json::json;

    #[test]
    fn resource_members_move_out_of_the_input() {
        let c = Call::parse(
            Service::Ssm,
            "GetParameter",
            json!({"Name": "/a/b", "WithDecryption": true}),
            None,
        )
        .unwrap();
        assert_eq!(c.resource, Resource::Parameter("/a/b".into()));
        assert_eq!(c.input, json!({"WithDecryption": true}));
    }

    #[test]
    fn a_member_the_action_does_not_have_is_refused() {
        // The attack of the security review: Names next to Name.
        let e = Call::parse(
            Service::Ssm,
            "GetParameter",
            json!({"Name": "/shop/test/billing/DB_PASSWORD", "Names": ["/shop/test/api/T"]}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(e.message.contains("Names"), "{}", e.message);
        let e = Call::parse(
            Service::Ssm,
            "GetParametersByPath",
            json!({"Path": "/", "Name": "/shop/test/api/T"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, "SerializationException");
        let e = Call::parse(
            Service::Sqs,
            "GetQueueUrl",
            json!({"QueueName": "b", "QueueUrl": "http://h/0/a"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, "SerializationException");
    }

    #[test]
    fn queue_urls_name_exactly_one_queue() {
        for bad in [
            "http://h/000000000000/billing?x=/000000000000/api",
            "http://h/000000000000/billing#/000000000000/api",
            "http://h/000000000000/api?b",
            "http://h/000000000000/a/b",
            "http://h/000000000000/",
            "http://h/acct/q",
            "http://h",
            "q",
        ] {
            let e = Call::parse(Service::Sqs, "PurgeQueue", json!({"QueueUrl": bad}), None)
                .unwrap_err();
            assert_eq!(e.code, "InvalidAddress", "{bad}");
        }
    }

    #[test]
    fn a_queue_named_twice_is_refused() {
        let e = Call::parse(
            Service::Sqs,
            "SendMessage",
            json!({"QueueUrl": "http://h/0/a", "MessageBody": "x"}),
            Some("b"),
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidAddress");
        let c = Call::parse(
            Service::Sqs,
            "SendMessage",
            json!({"MessageBody": "x"}),
            Some("b"),
        )
        .unwrap();
        assert_eq!(c.queue(), Some("b"));
    }

    #[test]
    fn resource_members_of_the_wrong_type_are_refused() {
        for input in [
            json!({"Name": ["/a"]}),
            json!({"Name": 1}),
            json!({"Name": {"x": 1}}),
        ] {
            let e = Call::parse(Service::Ssm, "GetParameter", input, None).unwrap_err();
            assert_eq!(e.code, "SerializationException");
        }
        let e = Call::parse(
            Service::Ssm,
            "GetParameters",
            json!({"Names": ["/a", 2]}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, "SerializationException");
    }

    #[test]
    fn duplicate_json_keys_are_refused_at_any_depth() {
        assert!(parse_json(br#"{"Name":"/a","Name":"/b"}"#).is_err());
        assert!(parse_json(br#"{"Attributes":{"A":"1","A":"2"}}"#).is_err());
        assert!(parse_json(br#"{"Entries":[{"Id":"1","Id":"2"}]}"#).is_err());
        assert!(parse_json(br#"{"Name":"/a"} x"#).is_err());
        assert_eq!(
            parse_json(br#"{"Name":"/a","N":[1,2.5,null,true]}"#).unwrap(),
            json!({"Name": "/a", "N": [1, 2.5, null, true]})
        );
        assert_eq!(parse_json(b"").unwrap(), json!({}));
    }

    #[test]
    fn unknown_actions_are_refused() {
        let e = Call::parse(Service::Sqs, "CreateTopic", json!({}), None).unwrap_err();
        assert_eq!(e.code, "InvalidAction");
        let e = Call::parse(Service::Ssm, "PutResourcePolicy", json!({}), None).unwrap_err();
        assert_eq!(e.code, "UnknownOperationException");
    }
}
