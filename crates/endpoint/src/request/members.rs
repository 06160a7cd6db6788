//! The members of a request, typed: how a JSON value (either wire form: the query
//! protocol's input arrives in the JSON protocol's shape, its numbers as strings)
//! becomes a field of a typed request, and the AWS error a value of the wrong shape
//! gets.
//!
//! A member given as `null` is a member not given. Every conversion names the
//! member it refuses. Where the endpoint has always answered a malformed member
//! with a particular code and message (an integer that is not one, a map that is
//! not one, `WithDecryption` that is not a boolean, SSM's lists and `Tags`, the
//! filters, `ParameterVersion`, AddPermission's lists, `ReceiveRequestAttemptId`),
//! that answer is kept; a member of another wrong type is a
//! `SerializationException` (`MalformedQueryString` in the query protocol).
//! Range and semantic checks (a delay of 0..=900, a tag's key) stay with the
//! handlers, which make them in the order AWS does.

use super::{Service, serialization};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a member is read: its service, action and name (for the errors).
pub(crate) struct At {
    pub service: Service,
    pub action: &'static str,
    pub member: &'static str,
}

/// A field of a typed request, read from its member (`None`: not given, or null).
pub(crate) trait Member: Sized {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError>;
}

/// SQS's `InvalidParameterValue`.
fn invalid(msg: impl Into<String>) -> ApiError {
    pantstack_sqs::refusal::invalid(msg).into()
}

impl Member for Option<String> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        match v {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(serialization(format!(
                "{}: member {} must be a string",
                at.action, at.member
            ))),
        }
    }
}

/// An integer: a JSON number, or (query protocol) a numeric string.
impl Member for Option<i64> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        let k = at.member;
        match v {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(format!("Value {n} for parameter {k} is invalid."))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid(format!("Value {s} for parameter {k} is invalid."))),
            Some(other) => Err(invalid(format!(
                "Value {other} for parameter {k} is invalid."
            ))),
        }
    }
}

/// A boolean, as the JSON protocol sends it: `"true"` as a string is a
/// `SerializationException` on AWS.
impl Member for Option<bool> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        match v {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(serialization(format!("{} must be a boolean", at.member))),
        }
    }
}

/// A list of strings (`AttributeNames`, `Labels`, `TagKeys`).
impl Member for Option<Vec<String>> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        strings(v).map_err(|()| serialization(format!("{} must be a list of strings", at.member)))
    }
}

fn strings(v: Option<Value>) -> Result<Option<Vec<String>>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(()),
    }
}

/// AddPermission's `AWSAccountIds` and `Actions`: refused as SQS's
/// `InvalidParameterValue`.
pub(crate) fn sqs_list(v: Option<Value>, at: &At) -> Result<Option<Vec<String>>, ApiError> {
    strings(v).map_err(|()| invalid(format!("{} must be a list of strings.", at.member)))
}

/// A map of strings (SQS `Attributes`, `Tags`): a number or a boolean is taken as
/// its text (an SDK may send `"VisibilityTimeout": 30`).
pub type StringMap = BTreeMap<String, String>;

impl Member for Option<StringMap> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        string_map(v, at.member)
    }
}

/// CreateQueue's `tags` (JSON protocol) and `Tags` (query protocol): one member
/// with two spellings, named `tags` in errors.
pub(crate) fn queue_tags(v: Option<Value>, _: &At) -> Result<Option<StringMap>, ApiError> {
    string_map(v, "tags")
}

fn string_map(v: Option<Value>, what: &str) -> Result<Option<StringMap>, ApiError> {
    let m = match v {
        None => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid(format!("{what} must be a map"))),
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(invalid(format!("{what}.{k} must be a string"))),
        };
        out.insert(k, s);
    }
    Ok(Some(out))
}

/// One message attribute as given: its type and value, unchecked (the handler
/// checks them, as SQS does, per message). Other fields (`StringListValues`,
/// ...) are not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageAttributeValue {
    pub data_type: Option<String>,
    pub string_value: Option<String>,
    pub binary_value: Option<String>,
}

/// Message attributes by name (sorted by name, as SQS's MD5 of them is).
pub type MessageAttributes = BTreeMap<String, MessageAttributeValue>;

impl Member for Option<MessageAttributes> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        let k = at.member;
        let m = match v {
            None => return Ok(None),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(invalid(format!("{k} must be a map"))),
        };
        let mut out = BTreeMap::new();
        for (name, a) in m {
            let Value::Object(mut a) = a else {
                return Err(invalid(format!("{k}.{name} must be a map")));
            };
            let mut field = |f: &str| match a.remove(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(invalid(format!("{k}.{name}.{f} must be a string"))),
            };
            let value = MessageAttributeValue {
                data_type: field("DataType")?,
                string_value: field("StringValue")?,
                binary_value: field("BinaryValue")?,
            };
            out.insert(name, value);
        }
        Ok(Some(out))
    }
}

/// One entry of a batch request: its `Id` (`""` when not given or not a string:
/// the batch is then refused as `InvalidBatchEntryId`) and its members, parsed
/// (a malformed entry fails alone, in the response's `Failed`, as SQS answers).
#[derive(Clone, Debug)]
pub struct Entry<T> {
    pub id: String,
    pub item: Result<T, ApiError>,
}

/// The members of a batch entry. Members an entry does not have are not read
/// (as the endpoint always has).
pub(crate) trait EntryItem: Sized {
    fn parse(m: &mut Map<String, Value>, at: &At) -> Result<Self, ApiError>;
}

/// A member of a batch entry, read as the same member of a request is.
pub(crate) fn entry_member<T: Member>(
    m: &mut Map<String, Value>,
    at: &At,
    member: &'static str,
) -> Result<T, ApiError> {
    let v = m.remove(member).filter(|v| !v.is_null());
    T::member(
        v,
        &At {
            service: at.service,
            action: at.action,
            member,
        },
    )
}

impl<T: EntryItem> Member for Option<Vec<Entry<T>>> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        let list = match v {
            None => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(serialization(format!(
                    "{}: member {} must be a list of entries",
                    at.action, at.member
                )));
            }
        };
        let entries = list
            .into_iter()
            .map(|e| match e {
                Value::Object(mut m) => {
                    let id = match m.remove("Id") {
                        Some(Value::String(s)) => s,
                        _ => String::new(),
                    };
                    let item = T::parse(&mut m, at);
                    Entry { id, item }
                }
                _ => Entry {
                    id: String::new(),
                    item: Err(serialization(format!(
                        "{}: an entry of {} must be an object",
                        at.action, at.member
                    ))),
                },
            })
            .collect();
        Ok(Some(entries))
    }
}

/// An SSM tag as given (`Key` and `Value` both required: the handler says so).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

impl Member for Option<Vec<Tag>> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad(
                "SerializationException",
                format!("{} must be a list of tags", at.member),
            )
        };
        let list = match v {
            None => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(bad()),
        };
        list.into_iter()
            .map(|t| {
                let Value::Object(mut t) = t else {
                    return Err(bad());
                };
                let mut field = |f: &str| match t.remove(f) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s)),
                    Some(_) => Err(bad()),
                };
                Ok(Tag {
                    key: field("Key")?,
                    value: field("Value")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// An SSM filter as given (`ParameterStringFilter`, or a legacy
/// `ParametersFilter`): checked by the handler (`ssm::filters`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterInput {
    pub key: Option<String>,
    pub option: Option<String>,
    pub values: Option<Vec<String>>,
}

impl Member for Option<Vec<FilterInput>> {
    fn member(v: Option<Value>, at: &At) -> Result<Self, ApiError> {
        let validation = |m: String| ApiError::bad("ValidationException", m);
        let list = match v {
            None => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(validation(format!(
                    "{} must be a list of filters.",
                    at.member
                )));
            }
        };
        list.into_iter()
            .map(|f| {
                let Value::Object(mut f) = f else {
                    return Err(validation(format!(
                        "{} must be a list of filters.",
                        at.member
                    )));
                };
                let mut field = |name: &str| match f.remove(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s)),
                    Some(_) => Err(validation(format!(
                        "The {name} of a filter in {} must be a string.",
                        at.member
                    ))),
                };
                let (key, option) = (field("Key")?, field("Option")?);
                let values = match f.remove("Values") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(a)) => Some(
                        a.into_iter()
                            .map(|v| match v {
                                Value::String(s) => Ok(s),
                                _ => Err(validation("Filter values must be strings.".into())),
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    Some(_) => {
                        return Err(validation(
                            "Filter values must be a list of strings.".into(),
                        ));
                    }
                };
                Ok(FilterInput {
                    key,
                    option,
                    values,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// SSM's `ParameterVersion`: a positive integer (a JSON number).
pub(crate) fn parameter_version(v: Option<Value>, _: &At) -> Result<Option<u64>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad(
                "SerializationException",
                format!("ParameterVersion {n} is not a version number"),
            )
        }),
        Some(_) => Err(ApiError::bad(
            "SerializationException",
            "ParameterVersion must be a number",
        )),
    }
}

/// ReceiveMessage's `ReceiveRequestAttemptId`: a string.
pub(crate) fn attempt_id(v: Option<Value>, _: &At) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!(
            "Value {other} for parameter ReceiveRequestAttemptId is invalid. Reason: must be a string."
        ))),
    }
}
