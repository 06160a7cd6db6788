//! SQS: the queues of the local cloud, every action of the API as an operation on
//! them, and the journal records that make them durable.
//!
//! Input arrives in the JSON protocol's shape (the query protocol is converted to it
//! by `query.rs`); output leaves in that shape too. A change is an `Op`: applied to
//! the state, then (if it succeeded) written to the journal; replaying the journal
//! applies the same ops in the same order with the same clock values, which rebuilds
//! the same queues, messages, receive counts and receipt handles.

use crate::error::ApiError;
use crate::request::{Call, Resource, name_of_arn};
use base64::Engine;
use md5::{Digest, Md5};
use pantstack_awsproto::sigv4::hex;
use pantstack_sqs::{Attributes, Error as QErr, Message, Queue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

pub type Millis = u64;

/// Longest long poll (seconds).
pub const MAX_WAIT_SECS: u64 = 20;
/// Entries of one batch request.
pub const MAX_BATCH: usize = 10;
/// A batch's bodies and attributes together (bytes): 1 MiB, as one message
/// (AWS SQS API reference, SendMessageBatch, since August 2025).
pub const MAX_BATCH_BYTES: usize = pantstack_sqs::MAX_MESSAGE_BYTES;

/// The settable attributes and how each is checked.
const SETTABLE: &[&str] = &[
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Attributes an empty value removes (AWS SQS API reference, SetQueueAttributes:
/// "To remove ... set it to an empty string"; the policies are JSON documents).
const CLEARABLE: &[&str] = &["Policy", "RedrivePolicy", "RedriveAllowPolicy"];

/// Tags a queue can have (AWS SQS developer guide, "Quotas related to queues").
pub const MAX_TAGS: usize = 50;

/// `attrs` without the clearable attributes set to `""` (nothing to keep).
fn without_cleared(attrs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    attrs
        .iter()
        .filter(|(k, v)| !(v.is_empty() && CLEARABLE.contains(&k.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn no_queue() -> ApiError {
    ApiError::bad("QueueDoesNotExist", "The specified queue does not exist.")
        .with_query_code("AWS.SimpleQueueService.NonExistentQueue")
}

/// AWS's `ReceiptHandleIsInvalid`, naming the handle.
fn bad_receipt(receipt: &str) -> ApiError {
    ApiError::bad(
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{receipt}\" is not a valid receipt handle."),
    )
}

/// AWS's `InvalidAttributeValue` for attribute `k` ("Invalid value for the
/// parameter VisibilityTimeout.").
fn bad_attribute(k: &str) -> ApiError {
    ApiError::bad(
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {k}."),
    )
}

/// Actions `AddPermission` may grant: `*` and those a queue's owner may share
/// (others are refused: "Only the queue owner is allowed to invoke this action").
const SHAREABLE: &[&str] = &[
    "*",
    "ChangeMessageVisibility",
    "DeleteMessage",
    "GetQueueAttributes",
    "GetQueueUrl",
    "ListDeadLetterSourceQueues",
    "PurgeQueue",
    "ReceiveMessage",
    "SendMessage",
];
/// Actions of one policy statement (SQS developer guide, "Amazon SQS policy
/// quotas": actions per statement 7, statements 20).
const MAX_POLICY_ACTIONS: usize = 7;
/// Statements of one queue policy (the same quotas).
const MAX_POLICY_STATEMENTS: usize = 20;

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad("InvalidParameterValue", msg)
}

fn missing(name: &str) -> ApiError {
    ApiError::bad(
        "MissingParameter",
        format!("The request must contain the parameter {name}."),
    )
}

fn q_err(e: QErr) -> ApiError {
    match e {
        QErr::InvalidParameterValue(m) => invalid(m),
        QErr::MissingParameter(m) => ApiError::bad("MissingParameter", m),
        QErr::ReceiptHandleIsInvalid => ApiError::bad(
            "ReceiptHandleIsInvalid",
            "The input receipt handle is not a valid receipt handle.",
        ),
        QErr::MessageNotInflight => ApiError::bad(
            "MessageNotInflight",
            "The message referred to isn't in flight.",
        )
        .with_query_code("AWS.SimpleQueueService.MessageNotInflight"),
    }
}

/// A string field of the input.
pub fn text<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// An integer field: a JSON number, or (query protocol) a numeric string.
pub fn int(v: &Value, k: &str) -> Result<Option<i64>, ApiError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
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

fn ranged(v: &Value, k: &str, lo: i64, hi: i64) -> Result<Option<u64>, ApiError> {
    match int(v, k)? {
        None => Ok(None),
        Some(n) if (lo..=hi).contains(&n) => Ok(Some(n as u64)),
        Some(n) => Err(invalid(format!(
            "Value {n} for parameter {k} is invalid. Reason: Must be between {lo} and {hi}, if provided."
        ))),
    }
}

/// MD5 of the message attributes as SQS computes it (sorted by name; each: name,
/// type, transport byte, value, lengths as 4-byte big-endian).
pub fn md5_of_attributes(attrs: &Map<String, Value>) -> String {
    let mut h = Md5::new();
    let mut names: Vec<&String> = attrs.keys().collect();
    names.sort();
    for name in names {
        let a = &attrs[name];
        let ty = text(a, "DataType").unwrap_or("");
        let put = |h: &mut Md5, b: &[u8]| {
            h.update((b.len() as u32).to_be_bytes());
            h.update(b);
        };
        put(&mut h, name.as_bytes());
        put(&mut h, ty.as_bytes());
        if ty.starts_with("Binary") {
            h.update([2u8]);
            let bin = text(a, "BinaryValue")
                .and_then(crate::unb64)
                .unwrap_or_default();
            put(&mut h, &bin);
        } else {
            h.update([1u8]);
            put(&mut h, text(a, "StringValue").unwrap_or("").as_bytes());
        }
    }
    hex(&h.finalize())
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// Valid message characters (XML 1.0): #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
/// #x10000-#x10FFFF.
fn check_body(body: &str) -> Result<(), ApiError> {
    // The common case in one branch-free pass over the bytes: no control byte
    // but tab, LF and CR, and (past ASCII) neither U+FFFE nor U+FFFF, the only
    // other characters a `str` can hold that SQS refuses.
    let controls = body.bytes().fold(false, |any, b| {
        any | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
    });
    if !controls && (body.is_ascii() || !body.contains(['\u{fffe}', '\u{ffff}'])) {
        return Ok(());
    }
    if let Some(c) = body.chars().find(|&c| {
        !matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    }) {
        return Err(ApiError::bad(
            "InvalidMessageContents",
            format!(
                "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Checks message attributes; returns them and their size in bytes.
fn check_message_attributes(v: Option<&Value>) -> Result<(Map<String, Value>, usize), ApiError> {
    let Some(v) = v else {
        return Ok((Map::new(), 0));
    };
    let Some(m) = v.as_object() else {
        return Err(invalid("MessageAttributes must be a map"));
    };
    if m.len() > 10 {
        return Err(invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [10].",
            m.len()
        )));
    }
    let mut size = 0;
    let mut out = Map::new();
    for (name, a) in m {
        let ok_name = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && !name.to_ascii_lowercase().starts_with("aws.")
            && !name.to_ascii_lowercase().starts_with("amazon.");
        if !ok_name {
            return Err(invalid(format!(
                "Message attribute name '{name}' is invalid: use A-Z a-z 0-9 _ - . (no leading, trailing or double period; not starting with AWS. or Amazon.), at most 256 characters."
            )));
        }
        let ty = text(a, "DataType").ok_or_else(|| {
            invalid(format!(
                "The message attribute '{name}' must contain a non-empty attribute type."
            ))
        })?;
        let base = ty.split('.').next().unwrap_or("");
        let mut e = Map::new();
        e.insert("DataType".into(), json!(ty));
        match base {
            "String" | "Number" => {
                let sv = text(a, "StringValue").ok_or_else(|| {
                    invalid(format!("The message attribute '{name}' must contain a non-empty message attribute value for message attribute type '{ty}'."))
                })?;
                if base == "Number" && sv.trim().parse::<f64>().is_err() {
                    return Err(invalid(format!(
                        "Can't cast the value of message (user) attribute '{name}' to a number."
                    )));
                }
                check_body(sv)?;
                size += sv.len();
                e.insert("StringValue".into(), json!(sv));
            }
            "Binary" => {
                let bv = text(a, "BinaryValue").ok_or_else(|| {
                    invalid(format!("The message attribute '{name}' must contain a non-empty message attribute value for message attribute type '{ty}'."))
                })?;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(bv)
                    .map_err(|_| {
                        invalid(format!(
                            "The message attribute '{name}' has a BinaryValue that is not base64."
                        ))
                    })?;
                size += raw.len();
                e.insert("BinaryValue".into(), json!(bv));
            }
            _ => {
                return Err(invalid(format!(
                    "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
                )));
            }
        }
        size += name.len() + ty.len();
        out.insert(name.clone(), Value::Object(e));
    }
    Ok((out, size))
}

/// One queue.
pub struct QueueRt {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub modified: u64,
    /// Settable attributes as set, checked.
    pub attrs: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub q: Queue,
    /// Woken on every send and visibility change (long polls wait on it).
    pub notify: Arc<Notify>,
    /// The DLQ's name and maxReceiveCount (from RedrivePolicy).
    pub redrive: Option<(String, u32)>,
    /// When the last purge was (one per 60 s).
    pub purged_at: Option<Millis>,
}

/// A finished message-move task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveTask {
    pub handle: String,
    pub source: String,
    pub dest: Option<String>,
    pub moved: u64,
    pub started: Millis,
}

/// A change to the queues: what the journal holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Create {
        name: String,
        attrs: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        now: Millis,
    },
    DeleteQueue {
        name: String,
    },
    SetAttrs {
        name: String,
        attrs: BTreeMap<String, String>,
        now: Millis,
    },
    Tag {
        name: String,
        tags: BTreeMap<String, String>,
    },
    Untag {
        name: String,
        keys: Vec<String>,
    },
    Purge {
        name: String,
        now: Millis,
    },
    Send {
        name: String,
        body: String,
        extra: String,
        /// The message id, a random UUID drawn by the handler (records written
        /// before ids were drawn have none: the queue derives one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        delay: Option<u64>,
        group: Option<String>,
        dedup: Option<String>,
        now: Millis,
    },
    Receive {
        name: String,
        max: usize,
        vis: Option<u64>,
        /// `ReceiveRequestAttemptId` (FIFO queues): a retry within 5 minutes
        /// gets the same messages and receipt handles again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<String>,
        now: Millis,
    },
    Delete {
        name: String,
        receipt: String,
    },
    Visibility {
        name: String,
        receipt: String,
        secs: u64,
        now: Millis,
    },
    Move {
        source: String,
        dest: Option<String>,
        handle: String,
        now: Millis,
    },
    /// A compacted journal's image of one queue without its messages (they
    /// follow in `ImageMessages`), replacing any queue of that name.
    Image {
        name: String,
        created: u64,
        modified: u64,
        attrs: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        redrive: Option<(String, u32)>,
        purged_at: Option<Millis>,
        queue: Box<Queue>,
    },
    /// Messages of the queue imaged last, in their full state.
    ImageMessages {
        name: String,
        messages: Vec<Message>,
    },
    /// The finished message-move tasks (ListMessageMoveTasks).
    ImageMoves {
        moves: Vec<MoveTask>,
    },
}

/// Bytes of messages per `ImageMessages` record (a record is at most 16 MiB; a
/// message with its attributes at most ~512 KiB, more once JSON-escaped).
const IMAGE_CHUNK: usize = 1 << 20;

/// What applying an op produced.
pub enum Applied {
    Nothing,
    Sent(pantstack_sqs::Sent),
    /// Deliveries, and how many messages were moved to the DLQ.
    Received(Vec<pantstack_sqs::Delivery>, usize),
    Moved(u64),
}

#[derive(Default)]
pub struct Sqs {
    pub queues: BTreeMap<String, QueueRt>,
    pub moves: Vec<MoveTask>,
    pub region: String,
    pub account: String,
}

fn parse_attrs(
    attrs: &BTreeMap<String, String>,
    fifo_name: bool,
    creating: bool,
    existing: Option<&BTreeMap<String, String>>,
) -> Result<(Attributes, Option<(String, u32)>), ApiError> {
    let mut merged = existing.cloned().unwrap_or_default();
    for (k, v) in attrs {
        if !SETTABLE.contains(&k.as_str()) {
            return Err(ApiError::bad(
                "InvalidAttributeName",
                format!("Unknown Attribute {k}."),
            ));
        }
        if !creating && k == "FifoQueue" {
            return Err(ApiError::bad(
                "InvalidAttributeName",
                "Unknown Attribute FifoQueue (it can only be set when the queue is created).",
            ));
        }
        if v.is_empty() && CLEARABLE.contains(&k.as_str()) {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    let num = |k: &str, lo: u64, hi: u64, d: u64| -> Result<u64, ApiError> {
        match merged.get(k) {
            None => Ok(d),
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| bad_attribute(k)),
        }
    };
    let boolean = |k: &str| -> Result<bool, ApiError> {
        match merged.get(k).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(bad_attribute(k)),
        }
    };
    let fifo = boolean("FifoQueue")?;
    if fifo != fifo_name {
        return Err(invalid(if fifo {
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
        } else {
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (a queue whose name ends with .fifo must set FifoQueue=true)."
        }));
    }
    let cbd = boolean("ContentBasedDeduplication")?;
    if cbd && !fifo {
        return Err(ApiError::bad(
            "InvalidAttributeName",
            "Unknown Attribute ContentBasedDeduplication (FIFO queues only).",
        ));
    }
    boolean("SqsManagedSseEnabled")?;
    num("ReceiveMessageWaitTimeSeconds", 0, MAX_WAIT_SECS, 0)?;
    num("KmsDataKeyReusePeriodSeconds", 60, 86_400, 300)?;
    let redrive = match merged.get("RedrivePolicy").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let v: Value = serde_json::from_str(s).map_err(|_| {
                ApiError::bad(
                    "InvalidAttributeValue",
                    format!(
                        "Value {s} for parameter RedrivePolicy is invalid. Reason: Invalid JSON."
                    ),
                )
            })?;
            let arn = text(&v, "deadLetterTargetArn").ok_or_else(|| {
                ApiError::bad("InvalidAttributeValue", "Value for parameter RedrivePolicy is invalid. Reason: Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
            })?;
            let dlq = name_of_arn(arn).ok_or_else(|| {
                ApiError::bad(
                    "InvalidAttributeValue",
                    format!("Value {arn} for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn."),
                )
            })?;
            let count = match &v["maxReceiveCount"] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad("InvalidAttributeValue", "Value for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: must be 1..1000.")
            })?;
            Some((dlq.to_string(), count as u32))
        }
    };
    let a = Attributes {
        visibility_timeout_secs: num("VisibilityTimeout", 0, 43_200, 30)?,
        retention_secs: num("MessageRetentionPeriod", 60, 1_209_600, 345_600)?,
        delay_secs: num("DelaySeconds", 0, 900, 0)?,
        max_message_bytes: num(
            "MaximumMessageSize",
            1024,
            pantstack_sqs::MAX_MESSAGE_BYTES as u64,
            pantstack_sqs::MAX_MESSAGE_BYTES as u64,
        )? as usize,
        fifo,
        content_based_deduplication: cbd,
        max_receive_count: None,
    };
    Ok((a, redrive))
}

/// A `Policy` attribute must be a policy document: a JSON object with a
/// `Statement` (an object or a list of them); `""` removes it. Else AWS's
/// `InvalidAttributeValue`. Checked by the handler, so records journaled before
/// this check replay as they were accepted.
fn check_policy(attrs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let Some(p) = attrs.get("Policy").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let refuse = |why: String| {
        ApiError::bad(
            "InvalidAttributeValue",
            format!("Invalid value for the parameter Policy. Reason: {why}"),
        )
    };
    // SQS's quotas on queue policies: 8,192 bytes, 20 statements.
    if p.len() > 8192 {
        return Err(refuse(format!(
            "the policy is {} bytes; a queue policy has at most 8192",
            p.len()
        )));
    }
    let doc = crate::policy_doc::PolicyDoc::parse(p, "sqs", &|r| {
        r == "*" || r.starts_with("arn:aws:sqs:")
    })
    .map_err(refuse)?;
    if doc.len() > 20 {
        return Err(refuse(format!(
            "the policy has {} statements; a queue policy has at most 20",
            doc.len()
        )));
    }
    Ok(())
}

/// The document and its statements, if `policy` is a policy document.
fn policy_statements(policy: &str) -> Option<(Map<String, Value>, Vec<Value>)> {
    let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(policy) else {
        return None;
    };
    let statements = match doc.remove("Statement")? {
        Value::Array(list) if list.iter().all(Value::is_object) => list,
        one @ Value::Object(_) => vec![one],
        _ => return None,
    };
    Some((doc, statements))
}

fn with_statements(mut doc: Map<String, Value>, statements: Vec<Value>) -> String {
    doc.insert("Statement".into(), Value::Array(statements));
    Value::Object(doc).to_string()
}

/// One value, or a list of several, as AWS writes a generated policy's
/// `Principal` and `Action`.
fn one_or_list(mut items: Vec<String>) -> Value {
    if items.len() == 1 {
        json!(items.remove(0))
    } else {
        json!(items)
    }
}

/// The queue's `Policy` after `AddPermission`: a statement `Sid` = label allowing
/// the accounts' roots `SQS:<action>` for each action on the queue (AWS SQS API
/// reference, AddPermission).
fn add_permission(
    current: Option<&str>,
    queue_arn: &str,
    label: &str,
    input: &Value,
) -> Result<String, ApiError> {
    if label.is_empty()
        || label.len() > 80
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "Value {label} for parameter Label is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length."
        )));
    }
    let list = |k: &str| -> Result<Vec<String>, ApiError> {
        match input.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid(format!("{k} must be a list of strings.")))
                })
                .collect(),
            Some(_) => Err(invalid(format!("{k} must be a list of strings."))),
        }
    };
    let actions = list("Actions")?;
    let accounts = list("AWSAccountIds")?;
    if actions.is_empty() {
        return Err(missing("Actions"));
    }
    if accounts.is_empty() {
        return Err(invalid(
            "Value [] for parameter PrincipalId is invalid. Reason: Unable to verify.",
        ));
    }
    if let Some(a) = accounts
        .iter()
        .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(format!(
            "Value [{a}] for parameter PrincipalId is invalid. Reason: Unable to verify."
        )));
    }
    if actions.len() > MAX_POLICY_ACTIONS {
        return Err(ApiError::new(
            403,
            "OverLimit",
            format!(
                "{} Actions were found, maximum allowed is {MAX_POLICY_ACTIONS}.",
                actions.len()
            ),
        ));
    }
    if let Some(a) = actions.iter().find(|a| !SHAREABLE.contains(&a.as_str())) {
        return Err(invalid(format!(
            "Value SQS:{a} for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action."
        )));
    }
    let (doc, mut statements) = current.and_then(policy_statements).unwrap_or_else(|| {
        let mut doc = Map::new();
        doc.insert("Version".into(), json!("2012-10-17"));
        doc.insert("Id".into(), json!(format!("{queue_arn}/SQSDefaultPolicy")));
        (doc, Vec::new())
    });
    if statements.iter().any(|s| text(s, "Sid") == Some(label)) {
        return Err(invalid(format!(
            "Value {label} for parameter Label is invalid. Reason: Already exists."
        )));
    }
    if statements.len() >= MAX_POLICY_STATEMENTS {
        return Err(ApiError::new(
            403,
            "OverLimit",
            format!(
                "{} Statements were found, maximum allowed is {MAX_POLICY_STATEMENTS}.",
                statements.len() + 1
            ),
        ));
    }
    let principals = accounts
        .iter()
        .map(|a| format!("arn:aws:iam::{a}:root"))
        .collect();
    let actions = actions.iter().map(|a| format!("SQS:{a}")).collect();
    statements.push(json!({
        "Sid": label,
        "Effect": "Allow",
        "Principal": { "AWS": one_or_list(principals) },
        "Action": one_or_list(actions),
        "Resource": queue_arn,
    }));
    Ok(with_statements(doc, statements))
}

/// The queue's `Policy` after `RemovePermission` of `label` (`""`: no statement
/// is left, the attribute goes).
fn remove_permission(current: Option<&str>, label: &str) -> Result<String, ApiError> {
    let not_found = || {
        invalid(format!(
            "Value {label} for parameter Label is invalid. Reason: can't find label on existing policy."
        ))
    };
    let (doc, statements) = current.and_then(policy_statements).ok_or_else(not_found)?;
    let before = statements.len();
    let kept: Vec<Value> = statements
        .into_iter()
        .filter(|s| text(s, "Sid") != Some(label))
        .collect();
    if kept.len() == before {
        return Err(not_found());
    }
    Ok(if kept.is_empty() {
        String::new()
    } else {
        with_statements(doc, kept)
    })
}

fn check_queue_name(name: &str) -> Result<bool, ApiError> {
    let fifo = name.ends_with(".fifo");
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty()
        || name.len() > 80
        || stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "Value {name} for parameter QueueName is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length."
        )));
    }
    Ok(fifo)
}

impl Sqs {
    pub fn new(region: &str, account: &str) -> Self {
        Sqs {
            region: region.to_string(),
            account: account.to_string(),
            ..Sqs::default()
        }
    }

    pub fn arn(&self, name: &str) -> String {
        crate::iam::queue_arn(&self.region, &self.account, name)
    }

    fn queue(&mut self, name: &str) -> Result<&mut QueueRt, ApiError> {
        self.queues.get_mut(name).ok_or_else(no_queue)
    }

    /// Applies one op. The same op on the same state gives the same result (replay).
    pub fn apply(&mut self, op: &Op) -> Result<Applied, ApiError> {
        match op {
            Op::Create {
                name,
                attrs,
                tags,
                now,
            } => {
                let fifo = check_queue_name(name)?;
                let attrs = &without_cleared(attrs);
                if let Some(q) = self.queues.get(name) {
                    // Idempotent when nothing differs.
                    let differs: Vec<&str> = attrs
                        .iter()
                        .filter(|(k, v)| q.attrs.get(*k) != Some(*v))
                        .map(|(k, _)| k.as_str())
                        .collect();
                    if !differs.is_empty() {
                        return Err(ApiError::bad(
                            "QueueNameExists",
                            format!(
                                "A queue already exists with the same name and a different value for attribute {}",
                                differs.join(", ")
                            ),
                        )
                        .with_query_code("QueueAlreadyExists"));
                    }
                    return Ok(Applied::Nothing);
                }
                let (a, redrive) = parse_attrs(attrs, fifo, true, None)?;
                self.queues.insert(
                    name.clone(),
                    QueueRt {
                        name: name.clone(),
                        created: now / 1000,
                        modified: now / 1000,
                        attrs: attrs.clone(),
                        tags: tags.clone(),
                        q: Queue::new(a),
                        notify: Arc::new(Notify::new()),
                        redrive,
                        purged_at: None,
                    },
                );
                Ok(Applied::Nothing)
            }
            Op::DeleteQueue { name } => {
                let q = self.queues.remove(name).ok_or_else(no_queue)?;
                q.notify.notify_waiters();
                Ok(Applied::Nothing)
            }
            Op::SetAttrs { name, attrs, now } => {
                let q = self.queue(name)?;
                let fifo = q.q.attributes.fifo;
                let (a, redrive) = parse_attrs(attrs, fifo, false, Some(&q.attrs))?;
                for (k, v) in attrs {
                    if v.is_empty() && CLEARABLE.contains(&k.as_str()) {
                        q.attrs.remove(k);
                    } else {
                        q.attrs.insert(k.clone(), v.clone());
                    }
                }
                q.q.attributes = a;
                q.redrive = redrive;
                q.modified = now / 1000;
                q.notify.notify_waiters();
                Ok(Applied::Nothing)
            }
            Op::Tag { name, tags } => {
                let q = self.queue(name)?;
                // Checked before anything changes: a refused TagQueue applies no tag.
                let added = tags.keys().filter(|k| !q.tags.contains_key(*k)).count();
                if q.tags.len() + added > MAX_TAGS {
                    // AWS's words; at most MAX_TAGS per queue.
                    return Err(invalid(format!("Too many tags added for queue {name}.")));
                }
                q.tags.extend(tags.clone());
                Ok(Applied::Nothing)
            }
            Op::Untag { name, keys } => {
                let q = self.queue(name)?;
                for k in keys {
                    q.tags.remove(k);
                }
                Ok(Applied::Nothing)
            }
            Op::Purge { name, now } => {
                let q = self.queue(name)?;
                if let Some(t) = q.purged_at
                    && now.saturating_sub(t) < 60_000
                {
                    return Err(ApiError::bad(
                        "PurgeQueueInProgress",
                        format!(
                            "Only one PurgeQueue operation on {name} is allowed every 60 seconds."
                        ),
                    )
                    .with_query_code("AWS.SimpleQueueService.PurgeQueueInProgress"));
                }
                q.q.purge();
                q.purged_at = Some(*now);
                Ok(Applied::Nothing)
            }
            Op::Send {
                name,
                body,
                extra,
                id,
                delay,
                group,
                dedup,
                now,
            } => {
                let q = self.queue(name)?;
                let sent =
                    q.q.send_with(
                        body,
                        extra,
                        id.as_deref(),
                        *delay,
                        group.as_deref(),
                        dedup.as_deref(),
                        *now,
                    )
                    .map_err(q_err)?;
                q.notify.notify_waiters();
                Ok(Applied::Sent(sent))
            }
            Op::Receive {
                name,
                max,
                vis,
                attempt,
                now,
            } => {
                let redrive = self.queue(name)?.redrive.clone();
                let dlq = redrive
                    .as_ref()
                    .filter(|(d, _)| d != name && self.queues.contains_key(d));
                let q = self.queue(name)?;
                q.q.attributes.max_receive_count = dlq.map(|(_, n)| *n);
                let (got, dead) =
                    q.q.receive_attempt(*max, *vis, attempt.as_deref(), *now)
                        .map_err(q_err)?;
                let moved = dead.len();
                if let Some((d, _)) = dlq
                    && !dead.is_empty()
                    && let Some(target) = self.queues.get_mut(d)
                {
                    for mut m in dead {
                        m.origin = Some(name.clone());
                        target.q.adopt(m, *now);
                    }
                    target.notify.notify_waiters();
                }
                Ok(Applied::Received(got, moved))
            }
            Op::Delete { name, receipt } => {
                match self.queue(name)?.q.delete(receipt) {
                    Ok(()) => Ok(Applied::Nothing),
                    // AWS: a handle of an earlier delivery, or of a message already
                    // deleted, succeeds without deleting anything; only a handle
                    // that was never issued is invalid.
                    Err(QErr::ReceiptHandleIsInvalid) if issued(receipt) => Ok(Applied::Nothing),
                    Err(QErr::ReceiptHandleIsInvalid) => Err(bad_receipt(receipt)),
                    Err(e) => Err(q_err(e)),
                }
            }
            Op::Visibility {
                name,
                receipt,
                secs,
                now,
            } => {
                let q = self.queue(name)?;
                q.q.change_visibility(receipt, *secs, *now)
                    .map_err(|e| match e {
                        QErr::ReceiptHandleIsInvalid => bad_receipt(receipt),
                        e => q_err(e),
                    })?;
                q.notify.notify_waiters();
                Ok(Applied::Nothing)
            }
            Op::Move {
                source,
                dest,
                handle,
                now,
            } => {
                let msgs: Vec<Message> = self.queue(source)?.q.take_all(usize::MAX);
                let mut moved = 0;
                let mut back: Vec<Message> = Vec::new();
                for m in msgs {
                    let target = dest.clone().or_else(|| m.origin.clone());
                    match target.and_then(|t| self.queues.get_mut(&t)) {
                        Some(t) => {
                            let mut m = m;
                            m.origin = None;
                            t.q.adopt(m, *now);
                            t.notify.notify_waiters();
                            moved += 1;
                        }
                        None => back.push(m),
                    }
                }
                if let Some(s) = self.queues.get_mut(source) {
                    for m in back {
                        s.q.adopt(m, *now);
                    }
                }
                self.moves.push(MoveTask {
                    handle: handle.clone(),
                    source: source.clone(),
                    dest: dest.clone(),
                    moved,
                    started: *now,
                });
                Ok(Applied::Moved(moved))
            }
            Op::Image {
                name,
                created,
                modified,
                attrs,
                tags,
                redrive,
                purged_at,
                queue,
            } => {
                let mut q = (**queue).clone();
                if !attrs.contains_key("MaximumMessageSize") {
                    // An image taken when the default was 256 KiB: the default
                    // now, as replaying the queue's records gives.
                    q.attributes.max_message_bytes = pantstack_sqs::MAX_MESSAGE_BYTES;
                }
                let old = self.queues.insert(
                    name.clone(),
                    QueueRt {
                        name: name.clone(),
                        created: *created,
                        modified: *modified,
                        attrs: attrs.clone(),
                        tags: tags.clone(),
                        q,
                        notify: Arc::new(Notify::new()),
                        redrive: redrive.clone(),
                        purged_at: *purged_at,
                    },
                );
                if let Some(old) = old {
                    old.notify.notify_waiters();
                }
                Ok(Applied::Nothing)
            }
            Op::ImageMessages { name, messages } => {
                let q = self.queue(name)?;
                q.q.restore_messages(messages.iter().cloned());
                Ok(Applied::Nothing)
            }
            Op::ImageMoves { moves } => {
                self.moves = moves.clone();
                Ok(Applied::Nothing)
            }
        }
    }

    /// About how many bytes `image` would write (a walk over the messages, no
    /// copies): whether compacting is worth it.
    pub fn image_estimate(&self) -> u64 {
        self.queues
            .values()
            .map(|q| {
                512 + q
                    .q
                    .messages()
                    .map(|m| {
                        // Field names, numbers, the id and a receipt: ~170 bytes.
                        170 + m.body.len()
                            + m.extra.len()
                            + m.group.as_ref().map_or(0, String::len)
                            + m.dedup_id.as_ref().map_or(0, String::len)
                    })
                    .sum::<usize>() as u64
            })
            .sum()
    }

    /// The ops that rebuild the queues exactly, messages in their full state (a
    /// compacted journal's image), handed to `out` one at a time.
    pub fn image(&self, out: &mut dyn FnMut(Op)) {
        for q in self.queues.values() {
            out(Op::Image {
                name: q.name.clone(),
                created: q.created,
                modified: q.modified,
                attrs: q.attrs.clone(),
                tags: q.tags.clone(),
                redrive: q.redrive.clone(),
                purged_at: q.purged_at,
                queue: Box::new(q.q.head()),
            });
            let mut chunk = Vec::new();
            let mut bytes = 0;
            for m in q.q.messages() {
                bytes += m.body.len() + m.extra.len() + 256;
                chunk.push(m.clone());
                if bytes >= IMAGE_CHUNK {
                    out(Op::ImageMessages {
                        name: q.name.clone(),
                        messages: std::mem::take(&mut chunk),
                    });
                    bytes = 0;
                }
            }
            if !chunk.is_empty() {
                out(Op::ImageMessages {
                    name: q.name.clone(),
                    messages: chunk,
                });
            }
        }
        if !self.moves.is_empty() {
            out(Op::ImageMoves {
                moves: self.moves.clone(),
            });
        }
    }

    fn all_attributes(&self, q: &QueueRt, now: Millis) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let a = &q.q.attributes;
        let (visible, inflight, delayed) = q.q.counts(now);
        out.insert("QueueArn".into(), self.arn(&q.name));
        out.insert("ApproximateNumberOfMessages".into(), visible.to_string());
        out.insert(
            "ApproximateNumberOfMessagesNotVisible".into(),
            inflight.to_string(),
        );
        out.insert(
            "ApproximateNumberOfMessagesDelayed".into(),
            delayed.to_string(),
        );
        out.insert("CreatedTimestamp".into(), q.created.to_string());
        out.insert("LastModifiedTimestamp".into(), q.modified.to_string());
        out.insert(
            "VisibilityTimeout".into(),
            a.visibility_timeout_secs.to_string(),
        );
        out.insert("MaximumMessageSize".into(), a.max_message_bytes.to_string());
        out.insert(
            "MessageRetentionPeriod".into(),
            a.retention_secs.to_string(),
        );
        out.insert("DelaySeconds".into(), a.delay_secs.to_string());
        out.insert("ReceiveMessageWaitTimeSeconds".into(), "0".into());
        out.insert("SqsManagedSseEnabled".into(), "true".into());
        if a.fifo {
            out.insert("FifoQueue".into(), "true".into());
            out.insert(
                "ContentBasedDeduplication".into(),
                a.content_based_deduplication.to_string(),
            );
            out.insert("DeduplicationScope".into(), "queue".into());
            out.insert("FifoThroughputLimit".into(), "perQueue".into());
        }
        for (k, v) in &q.attrs {
            out.insert(k.clone(), v.clone());
        }
        if q.attrs.contains_key("KmsMasterKeyId") {
            out.insert("SqsManagedSseEnabled".into(), "false".into());
        }
        out
    }

    /// A RedrivePolicy's dead-letter queue must exist here (this region and
    /// account) and be of the source's type: "The dead-letter queue of a FIFO
    /// queue must also be a FIFO queue. Similarly, the dead-letter queue of a
    /// standard queue must also be a standard queue" (SQS developer guide,
    /// "Using dead-letter queues"). The errors are AWS's `InvalidParameterValue`
    /// with its reasons. Checked by the handler, not in `apply`: records journaled
    /// before this check replay as they were accepted.
    fn check_redrive(&self, attrs: &BTreeMap<String, String>, fifo: bool) -> Result<(), ApiError> {
        let Some(policy) = attrs.get("RedrivePolicy").filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let Some(arn) = serde_json::from_str::<Value>(policy)
            .ok()
            .and_then(|v| text(&v, "deadLetterTargetArn").map(str::to_string))
        else {
            return Ok(()); // parse_attrs names what is wrong with it
        };
        let reason = |r: &str| {
            invalid(format!(
                "Value {policy} for parameter RedrivePolicy is invalid. Reason: {r}"
            ))
        };
        let dlq = name_of_arn(&arn)
            .filter(|n| self.arn(n) == arn)
            .and_then(|n| self.queues.get(n))
            .ok_or_else(|| reason("Dead letter target does not exist."))?;
        if dlq.q.attributes.fifo != fifo {
            return Err(reason(
                "Dead-letter target must be of same type as the source.",
            ));
        }
        Ok(())
    }

    /// The wait of a ReceiveMessage: its WaitTimeSeconds, else the queue's.
    pub fn wait_secs(&self, name: &str, input: &Value) -> Result<u64, ApiError> {
        let q = self.queues.get(name).ok_or_else(no_queue)?;
        match ranged(input, "WaitTimeSeconds", 0, MAX_WAIT_SECS as i64)? {
            Some(w) => Ok(w),
            None => Ok(q
                .attrs
                .get("ReceiveMessageWaitTimeSeconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)),
        }
    }

    /// The `Policy` document of queue `name` as stored (set by
    /// SetQueueAttributes, CreateQueue, AddPermission or RemovePermission), if it
    /// has one.
    pub fn policy_of(&self, queue: &str) -> Option<&str> {
        self.queues
            .get(queue)?
            .attrs
            .get("Policy")
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    pub fn notify_of(&self, name: &str) -> Option<Arc<Notify>> {
        self.queues.get(name).map(|q| q.notify.clone())
    }

    /// When the queue next has a message becoming visible (long polls wake then).
    pub fn next_visible(&self, name: &str) -> Option<Millis> {
        self.queues.get(name).and_then(|q| q.q.next_visible())
    }

    /// Handles every action but ReceiveMessage's waiting. Returns the response and
    /// the ops to journal (already applied).
    pub fn handle(
        &mut self,
        call: &Call,
        now: Millis,
        sender: &str,
        base_url: &str,
    ) -> Result<(Value, Vec<Op>), ApiError> {
        let account = self.account.clone();
        let url = |name: &str| format!("{base_url}/{account}/{name}");
        let (action, input) = (call.action, &call.input);
        // The queue comes from the parsed call (what IAM checked), never from input.
        let queue_name = || -> Result<String, ApiError> {
            call.queue()
                .map(str::to_string)
                .ok_or_else(|| missing("QueueUrl"))
        };
        let mut ops = Vec::new();
        let out = match action {
            "CreateQueue" => {
                let name = queue_name()?;
                let name = name.as_str();
                let attrs = string_map(input.get("Attributes"), "Attributes")?;
                let tags = string_map(input.get("tags").or_else(|| input.get("Tags")), "tags")?;
                if tags.len() > MAX_TAGS {
                    return Err(invalid(format!("Too many tags added for queue {name}.")));
                }
                if !self.queues.contains_key(name) {
                    check_policy(&attrs)?;
                    self.check_redrive(&attrs, name.ends_with(".fifo"))?;
                }
                let op = Op::Create {
                    name: name.to_string(),
                    attrs,
                    tags,
                    now,
                };
                let existed = self.queues.contains_key(name);
                self.apply(&op)?;
                if !existed {
                    ops.push(op);
                }
                json!({ "QueueUrl": url(name) })
            }
            "GetQueueUrl" => {
                let name = queue_name()?;
                let name = name.as_str();
                if !self.queues.contains_key(name) {
                    return Err(no_queue());
                }
                json!({ "QueueUrl": url(name) })
            }
            "ListQueues" => {
                let prefix = text(input, "QueueNamePrefix").unwrap_or("");
                let max = ranged(input, "MaxResults", 1, 1000)?;
                let after = text(input, "NextToken").unwrap_or("");
                let names: Vec<&String> = self
                    .queues
                    .keys()
                    .filter(|n| n.starts_with(prefix) && n.as_str() > after)
                    .collect();
                let take = max.map(|m| m as usize).unwrap_or(1000);
                let page: Vec<String> = names.iter().take(take).map(|n| url(n)).collect();
                let mut out = json!({ "QueueUrls": page });
                if max.is_some() && names.len() > take {
                    out["NextToken"] = json!(names[take - 1]);
                }
                out
            }
            "DeleteQueue" => {
                let op = Op::DeleteQueue {
                    name: queue_name()?,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "PurgeQueue" => {
                let op = Op::Purge {
                    name: queue_name()?,
                    now,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "GetQueueAttributes" => {
                let name = queue_name()?;
                let q = self.queues.get(&name).ok_or_else(no_queue)?;
                let all = self.all_attributes(q, now);
                let wanted = string_list(input.get("AttributeNames"));
                let mut out = Map::new();
                for w in &wanted {
                    if w == "All" {
                        for (k, v) in &all {
                            out.insert(k.clone(), json!(v));
                        }
                    } else if let Some(v) = all.get(w) {
                        out.insert(w.clone(), json!(v));
                    } else if !SETTABLE.contains(&w.as_str())
                        && !w.starts_with("Approximate")
                        && !["QueueArn", "CreatedTimestamp", "LastModifiedTimestamp"]
                            .contains(&w.as_str())
                    {
                        return Err(ApiError::bad(
                            "InvalidAttributeName",
                            format!("Unknown Attribute {w}."),
                        ));
                    }
                }
                if out.is_empty() {
                    json!({})
                } else {
                    json!({ "Attributes": out })
                }
            }
            "SetQueueAttributes" => {
                let name = queue_name()?;
                let attrs = string_map(input.get("Attributes"), "Attributes")?;
                let fifo = self
                    .queues
                    .get(&name)
                    .ok_or_else(no_queue)?
                    .q
                    .attributes
                    .fifo;
                check_policy(&attrs)?;
                self.check_redrive(&attrs, fifo)?;
                let op = Op::SetAttrs { name, attrs, now };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "TagQueue" => {
                let op = Op::Tag {
                    name: queue_name()?,
                    tags: string_map(input.get("Tags"), "Tags")?,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "UntagQueue" => {
                let op = Op::Untag {
                    name: queue_name()?,
                    keys: string_list(input.get("TagKeys")),
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "AddPermission" | "RemovePermission" => {
                let name = queue_name()?;
                let q = self.queues.get(&name).ok_or_else(no_queue)?;
                let label = text(input, "Label").ok_or_else(|| missing("Label"))?;
                let current = q.attrs.get("Policy").map(String::as_str);
                let policy = if action == "AddPermission" {
                    add_permission(current, &self.arn(&name), label, input)?
                } else {
                    remove_permission(current, label)?
                };
                // Journaled as the SetQueueAttributes of the policy it leaves ("" when
                // no statement is left: the attribute is removed).
                let op = Op::SetAttrs {
                    name,
                    attrs: BTreeMap::from([("Policy".to_string(), policy)]),
                    now,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "ListQueueTags" => {
                let name = queue_name()?;
                let q = self.queues.get(&name).ok_or_else(no_queue)?;
                if q.tags.is_empty() {
                    json!({})
                } else {
                    json!({ "Tags": q.tags })
                }
            }
            "SendMessage" => {
                let name = queue_name()?;
                let (op, md5_attrs) = self.send_op(&name, input, now, sender)?;
                let r = self.apply(&op)?;
                let Applied::Sent(sent) = r else {
                    return Err(ApiError::internal("send did not send"));
                };
                ops.push(op);
                self.sent_json(&name, input, &sent, md5_attrs)
            }
            "SendMessageBatch" => {
                let name = queue_name()?;
                self.queue(&name)?;
                let entries = batch_entries(input)?;
                let total: usize = entries
                    .iter()
                    .map(|e| {
                        text(e, "MessageBody").map_or(0, str::len)
                            + check_message_attributes(e.get("MessageAttributes"))
                                .map_or(0, |(_, n)| n)
                    })
                    .sum();
                if total > MAX_BATCH_BYTES {
                    return Err(ApiError::bad(
                        "BatchRequestTooLong",
                        format!("Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent {total} bytes."),
                    )
                    .with_query_code("AWS.SimpleQueueService.BatchRequestTooLong"));
                }
                let mut ok = Vec::new();
                let mut failed = Vec::new();
                for e in entries {
                    let id = text(e, "Id").unwrap_or("");
                    let result =
                        self.send_op(&name, e, now, sender).and_then(|(op, md5)| {
                            match self.apply(&op)? {
                                Applied::Sent(sent) => Ok((op, sent, md5)),
                                _ => Err(ApiError::internal("send did not send")),
                            }
                        });
                    match result {
                        Ok((op, sent, md5)) => {
                            ops.push(op);
                            let mut r = self.sent_json(&name, e, &sent, md5);
                            r["Id"] = json!(id);
                            ok.push(r);
                        }
                        Err(err) => failed.push(batch_error(id, &err)),
                    }
                }
                json!({ "Successful": ok, "Failed": failed })
            }
            "DeleteMessage" => {
                let name = queue_name()?;
                let receipt =
                    text(input, "ReceiptHandle").ok_or_else(|| missing("ReceiptHandle"))?;
                let op = Op::Delete {
                    name,
                    receipt: receipt.to_string(),
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "DeleteMessageBatch" => {
                let name = queue_name()?;
                self.queue(&name)?;
                self.batch(input, &mut ops, |e| {
                    Ok(Op::Delete {
                        name: name.clone(),
                        receipt: text(e, "ReceiptHandle").unwrap_or("").to_string(),
                    })
                })?
            }
            "ChangeMessageVisibility" => {
                let name = queue_name()?;
                let op = visibility_op(&name, input, now)?;
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "ChangeMessageVisibilityBatch" => {
                let name = queue_name()?;
                self.queue(&name)?;
                self.batch(input, &mut ops, |e| visibility_op(&name, e, now))?
            }
            "ListDeadLetterSourceQueues" => {
                let name = queue_name()?;
                self.queue(&name)?;
                let sources: Vec<String> = self
                    .queues
                    .values()
                    .filter(|q| q.redrive.as_ref().is_some_and(|(d, _)| *d == name))
                    .map(|q| url(&q.name))
                    .collect();
                json!({ "queueUrls": sources })
            }
            "StartMessageMoveTask" => {
                let Resource::Move {
                    source,
                    source_arn: src_arn,
                    dest,
                } = &call.resource
                else {
                    return Err(missing("SourceArn"));
                };
                if !self.queues.contains_key(source) {
                    return Err(ApiError::bad(
                        "ResourceNotFoundException",
                        format!(
                            "The resource that you specified for the SourceArn parameter doesn't exist: {src_arn}"
                        ),
                    ));
                }
                let source = source.clone();
                let is_dlq = self
                    .queues
                    .values()
                    .any(|q| q.redrive.as_ref().is_some_and(|(d, _)| *d == source));
                if !is_dlq {
                    return Err(invalid(format!(
                        "Source queue must be configured as a Dead Letter Queue: {src_arn}"
                    )));
                }
                let dest = match dest {
                    None => None,
                    Some((d, a)) if !self.queues.contains_key(d) => {
                        return Err(ApiError::bad(
                            "ResourceNotFoundException",
                            format!(
                                "The resource that you specified for the DestinationArn parameter doesn't exist: {a}"
                            ),
                        ));
                    }
                    Some((d, _)) => Some(d.clone()),
                };
                let handle = format!("move-{}-{now}", self.moves.len() + 1);
                let op = Op::Move {
                    source,
                    dest,
                    handle: handle.clone(),
                    now,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({ "TaskHandle": handle })
            }
            "ListMessageMoveTasks" => {
                let source = call.queue().unwrap_or("");
                let results: Vec<Value> = self
                    .moves
                    .iter()
                    .rev()
                    .filter(|m| m.source == source)
                    .take(10)
                    .map(|m| {
                        let mut r = json!({
                            "Status": "COMPLETED",
                            "SourceArn": self.arn(&m.source),
                            "ApproximateNumberOfMessagesMoved": m.moved,
                            "ApproximateNumberOfMessagesToMove": m.moved,
                            "StartedTimestamp": m.started,
                        });
                        if let Some(d) = &m.dest {
                            r["DestinationArn"] = json!(self.arn(d));
                        }
                        r
                    })
                    .collect();
                json!({ "Results": results })
            }
            "CancelMessageMoveTask" => {
                return Err(ApiError::bad(
                    "ResourceNotFoundException",
                    "The task is not running: move tasks of the local cloud complete at once.",
                ));
            }
            other => {
                return Err(ApiError::bad(
                    "InvalidAction",
                    format!("The action {other} is not valid for this endpoint."),
                )
                .with_query_code("InvalidAction"));
            }
        };
        Ok((out, ops))
    }

    /// A batch of deletes or visibility changes: each entry's op applied on its own;
    /// `Successful` and `Failed` entries by id.
    fn batch(
        &mut self,
        input: &Value,
        ops: &mut Vec<Op>,
        op_of: impl Fn(&Value) -> Result<Op, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for e in batch_entries(input)? {
            let id = text(e, "Id").unwrap_or("");
            match op_of(e).and_then(|op| self.apply(&op).map(|_| op)) {
                Ok(op) => {
                    ops.push(op);
                    ok.push(json!({ "Id": id }));
                }
                Err(err) => failed.push(batch_error(id, &err)),
            }
        }
        Ok(json!({ "Successful": ok, "Failed": failed }))
    }

    fn send_op(
        &self,
        name: &str,
        input: &Value,
        now: Millis,
        sender: &str,
    ) -> Result<(Op, Option<String>), ApiError> {
        let q = self.queues.get(name).ok_or_else(no_queue)?;
        let body = text(input, "MessageBody").ok_or_else(|| missing("MessageBody"))?;
        check_body(body)?;
        let (attrs, attr_bytes) = check_message_attributes(input.get("MessageAttributes"))?;
        if body.len() + attr_bytes > q.q.attributes.max_message_bytes {
            return Err(invalid(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                q.q.attributes.max_message_bytes
            )));
        }
        let delay = ranged(input, "DelaySeconds", 0, 900)?;
        let group = text(input, "MessageGroupId").map(str::to_string);
        let dedup = text(input, "MessageDeduplicationId").map(str::to_string);
        if !q.q.attributes.fifo && dedup.is_some() {
            return Err(invalid(
                "The request include parameter MessageDeduplicationId that is not valid for this queue type.",
            ));
        }
        let md5 = (!attrs.is_empty()).then(|| md5_of_attributes(&attrs));
        // `{"a":attrs,"s":sender}`, written straight from the map (no `Value`).
        #[derive(Serialize)]
        struct Extra<'a> {
            a: &'a Map<String, Value>,
            s: &'a str,
        }
        let extra = serde_json::to_string(&Extra {
            a: &attrs,
            s: sender,
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok((
            Op::Send {
                name: name.to_string(),
                body: body.to_string(),
                extra,
                id: Some(message_id()),
                delay,
                group,
                dedup,
                now,
            },
            md5,
        ))
    }

    fn sent_json(
        &self,
        name: &str,
        input: &Value,
        sent: &pantstack_sqs::Sent,
        md5_attrs: Option<String>,
    ) -> Value {
        let mut r = json!({
            "MessageId": sent.message_id,
            "MD5OfMessageBody": md5_hex(text(input, "MessageBody").unwrap_or("")),
        });
        if let Some(m) = md5_attrs {
            r["MD5OfMessageAttributes"] = json!(m);
        }
        if self.queues.get(name).is_some_and(|q| q.q.attributes.fifo) {
            r["SequenceNumber"] = json!(format!("{:020}", sent.sequence));
        }
        r
    }

    /// The op of a ReceiveMessage (checked) for queue `name`.
    pub fn receive_op(&self, name: &str, input: &Value, now: Millis) -> Result<Op, ApiError> {
        self.queues.get(name).ok_or_else(no_queue)?;
        let max = ranged(input, "MaxNumberOfMessages", 1, 10)?.unwrap_or(1) as usize;
        let vis = ranged(input, "VisibilityTimeout", 0, 43_200)?;
        let attempt = match input.get("ReceiveRequestAttemptId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(invalid(format!(
                    "Value {other} for parameter ReceiveRequestAttemptId is invalid. Reason: must be a string."
                )));
            }
        };
        Ok(Op::Receive {
            name: name.to_string(),
            max,
            vis,
            attempt,
            now,
        })
    }

    /// The response of a ReceiveMessage for what was delivered.
    pub fn received_json(
        &self,
        name: &str,
        input: &Value,
        got: &[pantstack_sqs::Delivery],
    ) -> Value {
        let mut system = string_list(input.get("MessageSystemAttributeNames"));
        system.extend(string_list(input.get("AttributeNames")));
        let all_sys = system.iter().any(|s| s == "All");
        let want_sys = |n: &str| all_sys || system.iter().any(|s| s == n);
        let user = string_list(input.get("MessageAttributeNames"));
        let want_user = |n: &str| {
            user.iter().any(|u| {
                // "All or .* ... You can also use all message attributes starting
                // with a prefix, for example bar.*" (SQS API reference,
                // ReceiveMessage, MessageAttributeNames): `bar.*` is every name
                // that starts with `bar`, `bar.x` and `barx` alike (as the regex).
                u == "All"
                    || u == ".*"
                    || u == n
                    || u.strip_suffix(".*").is_some_and(|p| n.starts_with(p))
            })
        };
        let fifo = self.queues.get(name).is_some_and(|q| q.q.attributes.fifo);
        let msgs: Vec<Value> = got
            .iter()
            .map(|d| {
                let extra: Value = serde_json::from_str(&d.extra).unwrap_or(Value::Null);
                let mut m = json!({
                    "MessageId": d.message_id,
                    "ReceiptHandle": d.receipt_handle,
                    "MD5OfBody": md5_hex(&d.body),
                    "Body": d.body,
                });
                let mut a = Map::new();
                let mut put = |k: &str, v: String| {
                    if want_sys(k) {
                        a.insert(k.to_string(), json!(v));
                    }
                };
                put("SenderId", text(&extra, "s").unwrap_or("").to_string());
                put("SentTimestamp", d.sent_at.to_string());
                put("ApproximateReceiveCount", d.receive_count.to_string());
                put(
                    "ApproximateFirstReceiveTimestamp",
                    d.first_receive_at.to_string(),
                );
                if fifo {
                    put("SequenceNumber", format!("{:020}", d.sequence));
                    if let Some(g) = &d.group {
                        put("MessageGroupId", g.clone());
                    }
                    if let Some(dd) = &d.dedup_id {
                        put("MessageDeduplicationId", dd.clone());
                    }
                }
                if !a.is_empty() {
                    m["Attributes"] = Value::Object(a);
                }
                if let Some(attrs) = extra.get("a").and_then(Value::as_object) {
                    let chosen: Map<String, Value> = attrs
                        .iter()
                        .filter(|(k, _)| want_user(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if !chosen.is_empty() {
                        m["MD5OfMessageAttributes"] = json!(md5_of_attributes(&chosen));
                        m["MessageAttributes"] = Value::Object(chosen);
                    }
                }
                m
            })
            .collect();
        if msgs.is_empty() {
            json!({})
        } else {
            json!({ "Messages": msgs })
        }
    }
}

/// A fresh message id: a version 4 UUID, as SQS's are (36 characters). Its 122
/// random bits come from two SipHash-1-3 hashes of a per-process counter under
/// a key the standard library draws from the OS once per process: unpredictable
/// across restarts, never repeated within one, and no system call per message.
/// Drawn by the handler and carried in the op, so replay gives the same id.
pub fn message_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = key.build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.finish()
    };
    let (hi, lo) = (half(0x5153_5f69_645f_6869), half(0x5153_5f69_645f_6c6f));
    // Version 4 in the third group, variant 10 in the fourth (RFC 9562).
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    let hex = pantstack_sqs::push_hex;
    let mut id = String::with_capacity(36);
    hex(&mut id, hi >> 32, 8);
    id.push('-');
    hex(&mut id, (hi >> 16) & 0xffff, 4);
    id.push('-');
    hex(&mut id, hi & 0xffff, 4);
    id.push('-');
    hex(&mut id, lo >> 48, 4);
    id.push('-');
    hex(&mut id, lo & 0xffff_ffff_ffff, 12);
    id
}

/// Whether a receipt handle has the form this endpoint issues (`rh-SEQ-N`).
fn issued(receipt: &str) -> bool {
    receipt
        .strip_prefix("rh-")
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// A `Failed` entry of a batch response.
fn batch_error(id: &str, err: &ApiError) -> Value {
    json!({ "Id": id, "SenderFault": err.sender, "Code": err.query(), "Message": err.message })
}

fn visibility_op(name: &str, input: &Value, now: Millis) -> Result<Op, ApiError> {
    let receipt = text(input, "ReceiptHandle").ok_or_else(|| missing("ReceiptHandle"))?;
    let secs = ranged(input, "VisibilityTimeout", 0, 43_200)?
        .ok_or_else(|| missing("VisibilityTimeout"))?;
    Ok(Op::Visibility {
        name: name.to_string(),
        receipt: receipt.to_string(),
        secs,
        now,
    })
}

fn string_map(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(invalid(format!("{what}.{k} must be a string"))),
                };
                out.insert(k.clone(), s);
            }
        }
        Some(_) => return Err(invalid(format!("{what} must be a map"))),
    }
    Ok(out)
}

pub(crate) fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn batch_entries(input: &Value) -> Result<&Vec<Value>, ApiError> {
    let entries = input
        .get("Entries")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("Entries"))?;
    if entries.is_empty() {
        return Err(ApiError::bad(
            "EmptyBatchRequest",
            "There should be at least one SendMessageBatchRequestEntry in the request.",
        )
        .with_query_code("AWS.SimpleQueueService.EmptyBatchRequest"));
    }
    if entries.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        )
        .with_query_code("AWS.SimpleQueueService.TooManyEntriesInBatchRequest"));
    }
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let id = text(e, "Id").unwrap_or("");
        if id.is_empty()
            || id.len() > 80
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ApiError::bad(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            )
            .with_query_code("AWS.SimpleQueueService.InvalidBatchEntryId"));
        }
        if !seen.insert(id) {
            return Err(
                ApiError::bad("BatchEntryIdsNotDistinct", format!("Id {id} repeated."))
                    .with_query_code("AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
            );
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let redrive =
            json!({"deadLetterTargetArn": a.arn("dlq"), "maxReceiveCount": 1}).to_string();
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
                .receive_op("q", &json!({"MaxNumberOfMessages": 10}), now)
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
}
