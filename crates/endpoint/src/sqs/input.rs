//! Checks of an SQS request's members and of messages (bodies, message
//! attributes and their MD5), and the errors SQS answers with.

use super::MAX_BATCH;
use crate::error::ApiError;
use crate::request::{Entry, MessageAttributes};
use base64::Engine;
use md5::{Digest, Md5};
use pantstack_awsproto::sigv4::hex;
use pantstack_sqs::refusal;
use serde_json::{Map, Value, json};

pub(super) fn no_queue() -> ApiError {
    refusal::no_queue().into()
}

pub(super) fn invalid(msg: impl Into<String>) -> ApiError {
    refusal::invalid(msg).into()
}

pub(super) fn missing(name: &str) -> ApiError {
    ApiError::bad(
        "MissingParameter",
        format!("The request must contain the parameter {name}."),
    )
}

/// A string field of the input.
pub fn text<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// An integer member in `lo..=hi`, if given.
pub(super) fn ranged(v: Option<i64>, k: &str, lo: i64, hi: i64) -> Result<Option<u64>, ApiError> {
    match v {
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

pub(super) fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// Valid message characters (XML 1.0): #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
/// #x10000-#x10FFFF.
pub(super) fn check_body(body: &str) -> Result<(), ApiError> {
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
pub(super) fn check_message_attributes(
    m: Option<&MessageAttributes>,
) -> Result<(Map<String, Value>, usize), ApiError> {
    let Some(m) = m else {
        return Ok((Map::new(), 0));
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
        let ty = a.data_type.as_deref().ok_or_else(|| {
            invalid(format!(
                "The message attribute '{name}' must contain a non-empty attribute type."
            ))
        })?;
        let base = ty.split('.').next().unwrap_or("");
        let mut e = Map::new();
        e.insert("DataType".into(), json!(ty));
        match base {
            "String" | "Number" => {
                let sv = a.string_value.as_deref().ok_or_else(|| {
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
                let bv = a.binary_value.as_deref().ok_or_else(|| {
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

/// A batch's entries, checked as a whole: given, 1..=10 of them, their ids
/// valid and distinct.
pub(super) fn batch_entries<T>(entries: &Option<Vec<Entry<T>>>) -> Result<&[Entry<T>], ApiError> {
    let entries = entries.as_deref().ok_or_else(|| missing("Entries"))?;
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
        let id = e.id.as_str();
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
