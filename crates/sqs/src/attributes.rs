//! Queue attributes: which are settable (and clearable), how each is checked,
//! the redrive policy; and queue names.

use crate::refusal::{Refusal, bad_attribute, invalid, name_of_arn};
use crate::{Attributes, MAX_WAIT_SECS};
use serde_json::Value;
use std::collections::BTreeMap;

/// The settable attributes and how each is checked.
pub const SETTABLE: &[&str] = &[
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
pub const CLEARABLE: &[&str] = &["Policy", "RedrivePolicy", "RedriveAllowPolicy"];

/// `attrs` without the clearable attributes set to `""` (nothing to keep).
pub fn without_cleared(attrs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    attrs
        .iter()
        .filter(|(k, v)| !(v.is_empty() && CLEARABLE.contains(&k.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn parse_attrs(
    attrs: &BTreeMap<String, String>,
    fifo_name: bool,
    creating: bool,
    existing: Option<&BTreeMap<String, String>>,
) -> Result<(Attributes, Option<(String, u32)>), Refusal> {
    let mut merged = existing.cloned().unwrap_or_default();
    for (k, v) in attrs {
        if !SETTABLE.contains(&k.as_str()) {
            return Err(Refusal::new(
                "InvalidAttributeName",
                format!("Unknown Attribute {k}."),
            ));
        }
        if !creating && k == "FifoQueue" {
            return Err(Refusal::new(
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
    let num = |k: &str, lo: u64, hi: u64, d: u64| -> Result<u64, Refusal> {
        match merged.get(k) {
            None => Ok(d),
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| bad_attribute(k)),
        }
    };
    let boolean = |k: &str| -> Result<bool, Refusal> {
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
        return Err(Refusal::new(
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
                Refusal::new(
                    "InvalidAttributeValue",
                    format!(
                        "Value {s} for parameter RedrivePolicy is invalid. Reason: Invalid JSON."
                    ),
                )
            })?;
            let arn = v.get("deadLetterTargetArn").and_then(Value::as_str).ok_or_else(|| {
                Refusal::new("InvalidAttributeValue", "Value for parameter RedrivePolicy is invalid. Reason: Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
            })?;
            let dlq = name_of_arn(arn).ok_or_else(|| {
                Refusal::new(
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
                Refusal::new("InvalidAttributeValue", "Value for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: must be 1..1000.")
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
            crate::MAX_MESSAGE_BYTES as u64,
            crate::MAX_MESSAGE_BYTES as u64,
        )? as usize,
        fifo,
        content_based_deduplication: cbd,
        max_receive_count: None,
    };
    Ok((a, redrive))
}

/// Whether a queue name is valid; whether it names a FIFO queue.
pub fn check_queue_name(name: &str) -> Result<bool, Refusal> {
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
