//! Identity-based policies of the principals this endpoint issued credentials to,
//! evaluated as IAM does for the statements Pantstack writes: a request is allowed
//! when some `Allow` statement lists its action and its resource (`*` and `?`
//! wildcards; actions compare without regard to case, resources exactly), and
//! denied otherwise. A service unit's policy is the one its task role has on AWS
//! (`pantstack_model::iam`), so what AWS would refuse is refused here too.
//!
//! Requests map to actions and resources as IAM's service authorization reference
//! says: batch calls need their single action (`SendMessageBatch` needs
//! `sqs:SendMessage`), `HeadObject` needs `s3:GetObject`, a call naming a version
//! needs the `…Version` action, multipart calls need `s3:PutObject`, `CopyObject`
//! needs `s3:GetObject` on its source too.

use serde_json::Value;

/// One `Allow` statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// A principal's identity-based policy. The empty policy allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Adds a statement allowing `actions` on `resources`.
    pub fn allow(mut self, actions: &[&str], resources: Vec<String>) -> Self {
        if !actions.is_empty() && !resources.is_empty() {
            self.statements.push(Statement {
                actions: actions.iter().map(|a| a.to_string()).collect(),
                resources,
            });
        }
        self
    }

    /// Whether `principal`, holding this policy, may perform each (action,
    /// resource); the refusal's message for the first that no statement allows.
    pub fn authorize<'a>(
        &self,
        principal: &str,
        requests: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), String> {
        for (action, resource) in requests {
            if !self.allows(action, resource) {
                return Err(denial(principal, action, resource));
            }
        }
        Ok(())
    }

    /// Whether some statement allows `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.statements.iter().any(|s| {
            s.actions.iter().any(|a| matches(a, action, true))
                && s.resources.iter().any(|r| matches(r, resource, false))
        })
    }
}

/// IAM's wildcard match: `*` is any run of characters, `?` any one character.
pub fn matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Greedy with one backtrack point: linear in practice, never exponential.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == b'?' || (p[i] != b'*' && eq(p[i], t[j]))) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == b'*')
}

/// The ARN of a queue.
pub fn queue_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

/// The ARN of a bucket (an object's: `<bucket ARN>/<key>`).
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// The action and resources of an SQS call.
pub fn sqs_request(
    action: &str,
    input: &Value,
    region: &str,
    account: &str,
) -> (String, Vec<String>) {
    let arn = |name: &str| queue_arn(region, account, name);
    let single = match action {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        a => a,
    };
    let text = |k: &str| input.get(k).and_then(Value::as_str);
    let resource = if let Some(url) = text("QueueUrl") {
        arn(url.trim_end_matches('/').rsplit('/').next().unwrap_or(url))
    } else if let Some(name) = text("QueueName") {
        arn(name)
    } else if let Some(source) = text("SourceArn") {
        source.to_string()
    } else {
        "*".to_string()
    };
    (format!("sqs:{single}"), vec![resource])
}

/// The ARN of an SSM parameter (`/a/b` → `parameter/a/b`, `a` → `parameter/a`); a
/// version or label selector (`/a/b:3`) is not part of it.
pub fn parameter_arn(region: &str, account: &str, name: &str) -> String {
    if name.starts_with("arn:") {
        // arn:partition:ssm:region:account:parameter/name[:selector]
        let parts: Vec<&str> = name.splitn(6, ':').collect();
        if let [head @ .., resource] = parts.as_slice() {
            let resource = resource.split(':').next().unwrap_or(resource);
            return format!("{}:{resource}", head.join(":"));
        }
    }
    let name = name.split(':').next().unwrap_or(name);
    let slash = if name.starts_with('/') { "" } else { "/" };
    format!("arn:aws:ssm:{region}:{account}:parameter{slash}{name}")
}

/// The action and resources of an SSM call.
pub fn ssm_request(
    action: &str,
    input: &Value,
    region: &str,
    account: &str,
) -> (String, Vec<String>) {
    let arn = |n: &str| parameter_arn(region, account, n);
    let mut resources: Vec<String> = Vec::new();
    if let Some(names) = input.get("Names").and_then(Value::as_array) {
        resources.extend(names.iter().filter_map(Value::as_str).map(arn));
    } else if let Some(name) = input.get("Name").and_then(Value::as_str) {
        resources.push(arn(name));
    } else if let Some(path) = input.get("Path").and_then(Value::as_str) {
        resources.push(arn(path));
    }
    if resources.is_empty() {
        resources.push("*".into());
    }
    (format!("ssm:{action}"), resources)
}

/// What an S3 call needs: (action, resource) pairs, every one of them allowed.
/// `op` is the operation's name, `bucket` and `key` its path, `version` whether the
/// query names a `versionId`, `copy_source` the `x-amz-copy-source` header.
pub fn s3_request(
    op: &str,
    bucket: Option<&str>,
    key: Option<&str>,
    version: bool,
    copy_source: Option<&str>,
) -> Vec<(String, String)> {
    let bucket_resource = bucket.map(bucket_arn);
    let object_arn = match (&bucket_resource, key) {
        (Some(b), Some(k)) => Some(format!("{b}/{k}")),
        _ => None,
    };
    let versioned =
        |plain: &str, with_version: &str| if version { with_version } else { plain }.to_string();
    let action = match op {
        "GetObject" | "HeadObject" => versioned("GetObject", "GetObjectVersion"),
        "DeleteObject" => versioned("DeleteObject", "DeleteObjectVersion"),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "PutObject".into(),
        "ListParts" => "ListMultipartUploadParts".into(),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket".into(),
        "ListObjectVersions" => "ListBucketVersions".into(),
        "ListMultipartUploads" => "ListBucketMultipartUploads".into(),
        "ListBuckets" => "ListAllMyBuckets".into(),
        // Every object of the batch needs s3:DeleteObject (checked on the bucket's
        // objects as a whole).
        "DeleteObjects" => "DeleteObject".into(),
        other => other.to_string(),
    };
    let resource = match (op, &object_arn, &bucket_resource) {
        ("DeleteObjects", _, Some(b)) => format!("{b}/*"),
        (_, Some(o), _) => o.clone(),
        (_, None, Some(b)) => b.clone(),
        _ => "*".into(),
    };
    let mut out = vec![(format!("s3:{action}"), resource)];
    if let Some(src) = copy_source {
        let src = pantstack_awsproto::sigv4::percent_decode(src.trim_start_matches('/'), false);
        let (path, query) = src.split_once('?').unwrap_or((&src, ""));
        let read = if query.contains("versionId=") {
            "s3:GetObjectVersion"
        } else {
            "s3:GetObject"
        };
        out.push((read.into(), bucket_arn(path)));
    }
    out
}

/// The message of a refusal, in the words AWS uses.
pub fn denial(principal: &str, action: &str, resource: &str) -> String {
    format!(
        "User: {principal} is not authorized to perform: {action} on resource: {resource} \
         because no identity-based policy allows the {action} action (a service's \
         credentials reach only its own queues, buckets and parameters, as its task role \
         does on AWS)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(matches("arn:aws:s3:::b/*", "arn:aws:s3:::b/k/x", false));
        assert!(matches("arn:aws:s3:::b/*", "arn:aws:s3:::b/", false));
        assert!(!matches("arn:aws:s3:::b/*", "arn:aws:s3:::b", false));
        assert!(!matches("arn:aws:s3:::b/*", "arn:aws:s3:::bb/k", false));
        assert!(matches("sqs:*", "sqs:SendMessage", true));
        assert!(matches("sqs:sendmessage", "sqs:SendMessage", true));
        assert!(!matches("arn:aws:sqs:r:1:Q", "arn:aws:sqs:r:1:q", false));
        assert!(matches("a?c*e", "abcde", false));
        assert!(matches("*a*b*", "xxaxxbxx", false));
        assert!(!matches("*a*b", "xxaxxbxx", false));
        assert!(matches("*", "", false));
        assert!(!matches("", "x", false));
    }

    #[test]
    fn a_policy_allows_only_what_a_statement_lists() {
        let p = Policy::default()
            .allow(&["sqs:SendMessage"], vec!["arn:aws:sqs:r:1:q".into()])
            .allow(&["s3:GetObject"], vec!["arn:aws:s3:::b/*".into()]);
        assert!(p.allows("sqs:SendMessage", "arn:aws:sqs:r:1:q"));
        assert!(!p.allows("sqs:SendMessage", "arn:aws:sqs:r:1:other"));
        assert!(!p.allows("sqs:ReceiveMessage", "arn:aws:sqs:r:1:q"));
        assert!(p.allows("s3:GetObject", "arn:aws:s3:::b/x"));
        assert!(!p.allows("s3:PutObject", "arn:aws:s3:::b/x"));
        assert!(!Policy::default().allows("sqs:SendMessage", "*"));
    }

    #[test]
    fn requests_map_to_actions_and_resources() {
        let arn = |n: &str| format!("arn:aws:sqs:r:1:{n}");
        let (a, r) = sqs_request(
            "SendMessageBatch",
            &json!({"QueueUrl": "http://127.0.0.1:1/1/jobs"}),
            "r",
            "1",
        );
        assert_eq!((a.as_str(), r), ("sqs:SendMessage", vec![arn("jobs")]));
        let (a, r) = sqs_request("GetQueueUrl", &json!({"QueueName": "jobs"}), "r", "1");
        assert_eq!((a.as_str(), r), ("sqs:GetQueueUrl", vec![arn("jobs")]));
        assert_eq!(sqs_request("ListQueues", &json!({}), "r", "1").1, vec!["*"]);

        assert_eq!(
            parameter_arn("r", "1", "/a/b:3"),
            "arn:aws:ssm:r:1:parameter/a/b"
        );
        assert_eq!(
            parameter_arn("r", "1", "arn:aws:ssm:x:2:parameter/a/b:label"),
            "arn:aws:ssm:x:2:parameter/a/b"
        );
        let (a, r) = ssm_request("GetParameters", &json!({"Names": ["/a/b", "c"]}), "r", "1");
        assert_eq!(a, "ssm:GetParameters");
        assert_eq!(
            r,
            vec![
                "arn:aws:ssm:r:1:parameter/a/b",
                "arn:aws:ssm:r:1:parameter/c"
            ]
        );

        assert_eq!(
            s3_request("HeadObject", Some("b"), Some("k"), false, None),
            vec![("s3:GetObject".to_string(), "arn:aws:s3:::b/k".to_string())]
        );
        assert_eq!(
            s3_request("DeleteObject", Some("b"), Some("k"), true, None)[0].0,
            "s3:DeleteObjectVersion"
        );
        assert_eq!(
            s3_request("ListObjectsV2", Some("b"), None, false, None),
            vec![("s3:ListBucket".to_string(), "arn:aws:s3:::b".to_string())]
        );
        assert_eq!(
            s3_request(
                "CopyObject",
                Some("b"),
                Some("k"),
                false,
                Some("/src/a%20b?versionId=1")
            ),
            vec![
                ("s3:PutObject".to_string(), "arn:aws:s3:::b/k".to_string()),
                (
                    "s3:GetObjectVersion".to_string(),
                    "arn:aws:s3:::src/a b".to_string()
                ),
            ]
        );
        assert_eq!(s3_request("ListBuckets", None, None, false, None)[0].1, "*");
    }
}
