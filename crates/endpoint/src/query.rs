//! The SQS query protocol (form-encoded requests, XML responses) that older SDKs
//! and the 2012-11-05 API speak: requests become the JSON protocol's input shape,
//! responses are rendered from its output shape, so one handler serves both.

use crate::error::{ApiError, xml_escape};
use serde_json::{Map, Value, json};

pub const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Splits `a=b&c=d` (form or query string), percent-decoded.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                pantstack_awsproto::sigv4::percent_decode(k, true),
                pantstack_awsproto::sigv4::percent_decode(v, true),
            )
        })
        .collect()
}

/// `Prefix.N.rest` → (N, rest).
fn indexed<'a>(key: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('.')?;
    let (n, rest) = match rest.split_once('.') {
        Some((n, r)) => (n, r),
        None => (rest, ""),
    };
    n.parse().ok().map(|n| (n, rest))
}

/// Query parameters → the JSON protocol's input. A parameter given twice is
/// refused (which one counts would otherwise be a guess); the signature's own
/// parameters of a presigned request (`X-Amz-*`) are not input.
pub fn to_json(pairs: &[(String, String)]) -> Result<Value, ApiError> {
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    for (k, _) in pairs {
        if !seen.insert(k.as_str()) {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!("The parameter {k} is given more than once."),
            )
            .with_query_code("InvalidParameterValue"));
        }
    }
    let mut out = Map::new();
    let mut attrs: std::collections::BTreeMap<usize, (Option<String>, Option<String>)> =
        Default::default();
    let mut mattrs: std::collections::BTreeMap<usize, Map<String, Value>> = Default::default();
    let mut tags: std::collections::BTreeMap<usize, (Option<String>, Option<String>)> =
        Default::default();
    let mut lists: std::collections::BTreeMap<&str, std::collections::BTreeMap<usize, String>> =
        Default::default();
    let mut entries: std::collections::BTreeMap<usize, Vec<(String, String)>> = Default::default();
    const LISTS: &[(&str, &str)] = &[
        ("AttributeName", "AttributeNames"),
        ("MessageAttributeName", "MessageAttributeNames"),
        ("MessageSystemAttributeName", "MessageSystemAttributeNames"),
        ("TagKey", "TagKeys"),
        // AddPermission: `AWSAccountId.N`, `ActionName.N`.
        ("AWSAccountId", "AWSAccountIds"),
        ("ActionName", "Actions"),
    ];
    'pairs: for (k, v) in pairs {
        if k == "Action" || k == "Version" || k.starts_with("X-Amz-") {
            continue;
        }
        if let Some((n, rest)) = indexed(k, "Attribute") {
            let e = attrs.entry(n).or_default();
            match rest {
                "Name" => e.0 = Some(v.clone()),
                "Value" => e.1 = Some(v.clone()),
                _ => {}
            }
            continue;
        }
        if let Some((n, rest)) = indexed(k, "MessageAttribute") {
            let e = mattrs.entry(n).or_default();
            match rest {
                "Name" => {
                    e.insert("Name".into(), json!(v));
                }
                r => {
                    if let Some(field) = r.strip_prefix("Value.") {
                        e.insert(field.to_string(), json!(v));
                    }
                }
            }
            continue;
        }
        if let Some((n, rest)) = indexed(k, "Tag") {
            let e = tags.entry(n).or_default();
            match rest {
                "Key" => e.0 = Some(v.clone()),
                "Value" => e.1 = Some(v.clone()),
                _ => {}
            }
            continue;
        }
        for (single, plural) in LISTS {
            if let Some((n, "")) = indexed(k, single) {
                lists.entry(plural).or_default().insert(n, v.clone());
                continue 'pairs;
            }
        }
        if let Some((head, _)) = k.split_once('.')
            && head.ends_with("BatchRequestEntry")
            && let Some((n, rest)) = indexed(k, head)
        {
            entries
                .entry(n)
                .or_default()
                .push((rest.to_string(), v.clone()));
            continue;
        }
        out.insert(k.clone(), json!(v));
    }
    if !attrs.is_empty() {
        let mut m = Map::new();
        for (_, (k, v)) in attrs {
            if let Some(k) = k {
                m.insert(k, json!(v.unwrap_or_default()));
            }
        }
        out.insert("Attributes".into(), Value::Object(m));
    }
    if !mattrs.is_empty() {
        let mut m = Map::new();
        for (_, mut e) in mattrs {
            if let Some(Value::String(name)) = e.remove("Name") {
                m.insert(name, Value::Object(e));
            }
        }
        out.insert("MessageAttributes".into(), Value::Object(m));
    }
    if !tags.is_empty() {
        let mut m = Map::new();
        for (_, (k, v)) in tags {
            if let Some(k) = k {
                m.insert(k, json!(v.unwrap_or_default()));
            }
        }
        out.insert("Tags".into(), Value::Object(m));
    }
    for (plural, items) in lists {
        out.insert(
            plural.to_string(),
            json!(items.into_values().collect::<Vec<_>>()),
        );
    }
    if !entries.is_empty() {
        let mut list = Vec::new();
        for (_, fields) in entries {
            list.push(to_json(&fields)?);
        }
        out.insert("Entries".into(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn element(action: &str, key: &str, v: &Value, out: &mut String) {
    let item = match (key, action) {
        ("QueueUrls" | "queueUrls", _) => Some("QueueUrl"),
        ("Messages", _) => Some("Message"),
        ("Successful", "SendMessageBatch") => Some("SendMessageBatchResultEntry"),
        ("Successful", "DeleteMessageBatch") => Some("DeleteMessageBatchResultEntry"),
        ("Successful", _) => Some("ChangeMessageVisibilityBatchResultEntry"),
        ("Failed", _) => Some("BatchResultErrorEntry"),
        ("Results", _) => Some("ListMessageMoveTasksResultEntry"),
        _ => None,
    };
    match (key, v) {
        ("Attributes", Value::Object(m)) => {
            for (k, v) in m {
                out.push_str(&format!(
                    "<Attribute><Name>{}</Name><Value>{}</Value></Attribute>",
                    xml_escape(k),
                    xml_escape(&scalar(v))
                ));
            }
        }
        ("Tags", Value::Object(m)) => {
            for (k, v) in m {
                out.push_str(&format!(
                    "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
                    xml_escape(k),
                    xml_escape(&scalar(v))
                ));
            }
        }
        ("MessageAttributes", Value::Object(m)) => {
            for (k, v) in m {
                out.push_str(&format!(
                    "<MessageAttribute><Name>{}</Name><Value>",
                    xml_escape(k)
                ));
                if let Value::Object(fields) = v {
                    for (f, x) in fields {
                        out.push_str(&format!("<{f}>{}</{f}>", xml_escape(&scalar(x))));
                    }
                }
                out.push_str("</Value></MessageAttribute>");
            }
        }
        (_, Value::Array(items)) => {
            let name = item.unwrap_or(key);
            for it in items {
                match it {
                    Value::Object(m) => {
                        out.push_str(&format!("<{name}>"));
                        for (k, v) in m {
                            element(action, k, v, out);
                        }
                        out.push_str(&format!("</{name}>"));
                    }
                    other => {
                        out.push_str(&format!("<{name}>{}</{name}>", xml_escape(&scalar(other))))
                    }
                }
            }
        }
        (_, Value::Object(m)) => {
            out.push_str(&format!("<{key}>"));
            for (k, v) in m {
                element(action, k, v, out);
            }
            out.push_str(&format!("</{key}>"));
        }
        (_, other) => out.push_str(&format!("<{key}>{}</{key}>", xml_escape(&scalar(other)))),
    }
}

/// The query protocol's XML for an action's JSON output.
pub fn to_xml(action: &str, output: &Value, request_id: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\"?><{action}Response xmlns=\"{XMLNS}\">");
    if let Value::Object(m) = output
        && !m.is_empty()
    {
        out.push_str(&format!("<{action}Result>"));
        for (k, v) in m {
            element(action, k, v, &mut out);
        }
        out.push_str(&format!("</{action}Result>"));
    } else if !matches!(
        action,
        "DeleteMessage"
            | "DeleteQueue"
            | "PurgeQueue"
            | "SetQueueAttributes"
            | "ChangeMessageVisibility"
            | "TagQueue"
            | "UntagQueue"
            | "AddPermission"
            | "RemovePermission"
    ) {
        out.push_str(&format!("<{action}Result/>"));
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    ));
    out
}

/// The query protocol's error document.
pub fn error_xml(e: &ApiError, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        e.fault(),
        xml_escape(e.query()),
        xml_escape(&e.message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_become_json_input() {
        let pairs = form_pairs(
            "Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fx%2F0%2Fq\
             &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=hi+there\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v\
             &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=x\
             &AttributeName.1=All&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5",
        );
        let v = to_json(&pairs).unwrap();
        assert_eq!(v["QueueUrl"], "http://x/0/q");
        assert_eq!(v["Entries"][0]["MessageBody"], "hi there");
        assert_eq!(
            v["Entries"][0]["MessageAttributes"]["k"]["StringValue"],
            "v"
        );
        assert_eq!(v["Entries"][1]["Id"], "b");
        assert_eq!(v["AttributeNames"][0], "All");
        assert_eq!(v["Attributes"]["VisibilityTimeout"], "5");
        // AddPermission's lists (SQS API reference, AddPermission, query example).
        let v = to_json(&form_pairs(
            "Action=AddPermission&Label=Share&AWSAccountId.1=111122223333\
             &AWSAccountId.2=444455556666&ActionName.1=SendMessage&ActionName.2=ReceiveMessage",
        ))
        .unwrap();
        assert_eq!(v["AWSAccountIds"], json!(["111122223333", "444455556666"]));
        assert_eq!(v["Actions"], json!(["SendMessage", "ReceiveMessage"]));
        assert_eq!(v["Label"], "Share");
        let x = to_xml("AddPermission", &json!({}), "r1");
        assert!(!x.contains("Result"), "{x}");
    }

    #[test]
    fn json_output_becomes_query_xml() {
        let x = to_xml(
            "ReceiveMessage",
            &json!({"Messages": [{"Body": "a<b", "Attributes": {"SenderId": "me"}}]}),
            "r1",
        );
        assert!(!x.contains("<ReceiveMessageResult><Message><Attributes>"));
        assert!(x.contains("<Message><Attribute><Name>SenderId</Name><Value>me</Value></Attribute><Body>a&lt;b</Body></Message>"));
        assert!(to_xml("DeleteMessage", &json!({}), "r").contains("<DeleteMessageResponse"));
    }
}
