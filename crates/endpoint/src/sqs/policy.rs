//! Queue policies: a policy set as an attribute is checked as SQS checks it;
//! AddPermission and RemovePermission edit its labelled statements.

use super::input::*;
use crate::error::ApiError;
use crate::request::sqs::AddPermission;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Actions `AddPermission` may grant: `*` and those a queue's owner may share
/// (others are refused: "Only the queue owner is allowed to invoke this action").
pub(super) const SHAREABLE: &[&str] = &[
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
pub(super) const MAX_POLICY_ACTIONS: usize = 7;

/// Statements of one queue policy (the same quotas).
pub(super) const MAX_POLICY_STATEMENTS: usize = 20;

/// A `Policy` attribute must be a policy document: a JSON object with a
/// `Statement` (an object or a list of them); `""` removes it. Else AWS's
/// `InvalidAttributeValue`. Checked by the handler, so records journaled before
/// this check replay as they were accepted.
pub(super) fn check_policy(attrs: &BTreeMap<String, String>) -> Result<(), ApiError> {
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
pub(super) fn policy_statements(policy: &str) -> Option<(Map<String, Value>, Vec<Value>)> {
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

pub(super) fn with_statements(mut doc: Map<String, Value>, statements: Vec<Value>) -> String {
    doc.insert("Statement".into(), Value::Array(statements));
    Value::Object(doc).to_string()
}

/// One value, or a list of several, as AWS writes a generated policy's
/// `Principal` and `Action`.
pub(super) fn one_or_list(mut items: Vec<String>) -> Value {
    if items.len() == 1 {
        json!(items.remove(0))
    } else {
        json!(items)
    }
}

/// The queue's `Policy` after `AddPermission`: a statement `Sid` = label allowing
/// the accounts' roots `SQS:<action>` for each action on the queue (AWS SQS API
/// reference, AddPermission).
pub(super) fn add_permission(
    current: Option<&str>,
    queue_arn: &str,
    label: &str,
    r: &AddPermission,
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
    let actions = r.actions.as_deref().unwrap_or_default();
    let accounts = r.aws_account_ids.as_deref().unwrap_or_default();
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
pub(super) fn remove_permission(current: Option<&str>, label: &str) -> Result<String, ApiError> {
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
