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

use crate::request::{Action, Call, Request, Resource, Service, SqsAction, SsmRequest};

/// One `Allow` statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// A principal's identity-based policy, and the statements of resource-based
/// policies (queue and bucket policies: another service's `grants:`) that name it.
/// Within one account an `Allow` in either suffices, as IAM evaluates it; no
/// manifest writes a `Deny`. The empty policy allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
    /// From resource-based policies: allowed to this principal by the resource.
    pub granted: Vec<Statement>,
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

    /// Adds what a resource-based policy allows this principal.
    pub fn grant(mut self, actions: &[&str], resources: Vec<String>) -> Self {
        if !actions.is_empty() && !resources.is_empty() {
            self.granted.push(Statement {
                actions: actions.iter().map(|a| a.to_string()).collect(),
                resources,
            });
        }
        self
    }

    /// Whether some statement, of the identity policy or of a resource policy
    /// naming the principal, allows `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.statements.iter().chain(&self.granted).any(|s| {
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

/// What an SQS or SSM call needs: (action, resource) pairs, every one of them
/// allowed. Built from the parsed [`Call`] the handler receives, never from the
/// raw request, so the resource checked is the resource acted on.
pub fn call_request(call: &Call, region: &str, account: &str) -> Vec<(String, String)> {
    let queue = |name: &str| queue_arn(region, account, name);
    let parameter = |name: &str| parameter_arn(region, account, name);
    let prefix = match call.service {
        Service::Sqs => "sqs",
        Service::Ssm => "ssm",
    };
    let single = match call.action {
        Action::Sqs(SqsAction::SendMessageBatch) => "SendMessage",
        Action::Sqs(SqsAction::DeleteMessageBatch) => "DeleteMessage",
        Action::Sqs(SqsAction::ChangeMessageVisibilityBatch) => "ChangeMessageVisibility",
        a => a.name(),
    };
    let action = format!("{prefix}:{single}");
    match &call.resource {
        Resource::None => vec![(action, "*".into())],
        Resource::Queue(q) => vec![(action, queue(q))],
        Resource::Move { source, dest, .. } => {
            let mut out = vec![(action, queue(source))];
            if let Some((d, _)) = dest {
                out.push(("sqs:SendMessage".into(), queue(d)));
            }
            out
        }
        // A task handle names its source queue only through the task, which the
        // handler looks up; AWS scopes the action to the queue, so ask for it on
        // every queue (a unit's policy never grants it).
        Resource::Task(_) => vec![(action, queue("*"))],
        // PutParameter with `Tags` also needs `ssm:AddTagsToResource`, as on AWS.
        Resource::Parameter(p)
            if matches!(&call.request, Request::Ssm(SsmRequest::PutParameter(r))
                if r.tags.as_ref().is_some_and(|t| !t.is_empty())) =>
        {
            vec![
                (action, parameter(p)),
                ("ssm:AddTagsToResource".into(), parameter(p)),
            ]
        }
        // Labels and tags (`ssm:LabelParameterVersion`, `ssm:AddTagsToResource`,
        // ...) are on the parameter's ARN too.
        Resource::Parameter(p) | Resource::Path(p) => vec![(action, parameter(p))],
        Resource::Parameters(ps) if ps.is_empty() => vec![(action, "*".into())],
        Resource::Parameters(ps) => ps.iter().map(|p| (action.clone(), parameter(p))).collect(),
    }
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

/// The parameter name (with its `:version` selector, if any) that `raw`, a name
/// or an ARN as a request gives it, names in `region` and `account`; `None` for
/// an ARN of another partition, region or account, or not of a parameter.
///
/// An ARN's resource `parameter/<rest>` names `/<rest>` when `<rest>` is a path
/// (`parameter/a/b` is `/a/b`) and `<rest>` when it is top-level (where `name`
/// and `/name` are one parameter): the ARN of a parameter is
/// `arn:aws:ssm:<region>:<account>:parameter/<name without its leading slash>`
/// (SSM user guide, "Working with parameter hierarchies"; GetParameter's `Name`:
/// "The name or Amazon Resource Name (ARN) of the parameter"). The name returned
/// is one whose [`parameter_arn`] is the ARN `call_request` authorized, so the
/// parameter read is the parameter IAM allowed.
pub fn parameter_name(region: &str, account: &str, raw: &str) -> Option<String> {
    if !raw.starts_with("arn:") {
        return Some(raw.to_string());
    }
    let parts: Vec<&str> = raw.splitn(6, ':').collect();
    let rest = parts.get(5)?.strip_prefix("parameter/")?;
    let path = rest.split(':').next().unwrap_or(rest);
    let name = if path.contains('/') {
        format!("/{rest}")
    } else {
        rest.to_string()
    };
    (parameter_arn(region, account, &name) == parameter_arn(region, account, raw)).then_some(name)
}

/// The source of a `CopyObject`, as parsed: bucket, key, whether it names a version.
pub type CopySource<'a> = (&'a str, &'a str, bool);

/// What an S3 call needs: (action, resource) pairs, every one of them allowed.
/// `op` is the operation's name, `bucket` and `key` its parsed path, `version`
/// whether the parsed input names a version, `copy_source` the parsed
/// `x-amz-copy-source`. `DeleteObjects` is authorized per key
/// ([`s3_delete_objects`]).
pub fn s3_request(
    op: &str,
    bucket: Option<&str>,
    key: Option<&str>,
    version: bool,
    copy_source: Option<CopySource<'_>>,
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
        "GetObjectTagging" => versioned("GetObjectTagging", "GetObjectVersionTagging"),
        "PutObjectTagging" => versioned("PutObjectTagging", "PutObjectVersionTagging"),
        "DeleteObjectTagging" => versioned("DeleteObjectTagging", "DeleteObjectVersionTagging"),
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS".into(),
        "GetBucketCors" => "GetBucketCORS".into(),
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "PutLifecycleConfiguration".into()
        }
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration".into(),
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration".into(),
        "GetBucketEncryption" => "GetEncryptionConfiguration".into(),
        "DeleteBucketTagging" => "PutBucketTagging".into(),
        other => other.to_string(),
    };
    let resource = match (&object_arn, &bucket_resource) {
        (Some(o), _) => o.clone(),
        (None, Some(b)) => b.clone(),
        _ => "*".into(),
    };
    let mut out = vec![(format!("s3:{action}"), resource)];
    if let Some((b, k, v)) = copy_source {
        let read = if v {
            "s3:GetObjectVersion"
        } else {
            "s3:GetObject"
        };
        out.push((read.into(), format!("{}/{k}", bucket_arn(b))));
    }
    out
}

/// The bucket an S3 ARN names (`arn:aws:s3:::bucket` or `…:::bucket/key`).
pub fn bucket_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws:s3:::")?;
    Some(rest.split_once('/').map_or(rest, |(b, _)| b))
}

/// What a `DeleteObjects` needs: for each (key, names a version) of the batch,
/// `s3:DeleteObject` or `s3:DeleteObjectVersion` on that object, as AWS
/// evaluates each key of the batch.
pub fn s3_delete_objects<'a>(
    bucket: &str,
    keys: impl IntoIterator<Item = (&'a str, bool)>,
) -> Vec<(String, String)> {
    keys.into_iter()
        .map(|(k, v)| {
            let action = if v {
                "s3:DeleteObjectVersion"
            } else {
                "s3:DeleteObject"
            };
            (action.to_string(), format!("{}/{k}", bucket_arn(bucket)))
        })
        .collect()
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
    fn parameter_arns_name_the_parameter_iam_authorized() {
        let name = |raw: &str| parameter_name("r", "1", raw);
        assert_eq!(
            name("arn:aws:ssm:r:1:parameter/a/b").as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            name("arn:aws:ssm:r:1:parameter/a/b:3").as_deref(),
            Some("/a/b:3")
        );
        assert_eq!(
            name("arn:aws:ssm:r:1:parameter/top").as_deref(),
            Some("top")
        );
        assert_eq!(name("/a/b").as_deref(), Some("/a/b"));
        for other in [
            "arn:aws:ssm:x:1:parameter/a/b",
            "arn:aws:ssm:r:2:parameter/a/b",
            "arn:aws-cn:ssm:r:1:parameter/a/b",
            "arn:aws:sqs:r:1:parameter/a/b",
            "arn:aws:ssm:r:1:document/a/b",
            "arn:aws:ssm:r:1",
        ] {
            assert_eq!(name(other), None, "{other}");
        }
        // Whatever it names has the ARN that was authorized.
        for raw in [
            "arn:aws:ssm:r:1:parameter/a/b:3",
            "arn:aws:ssm:r:1:parameter/top",
            "top",
            "/top",
        ] {
            let n = name(raw).unwrap();
            assert_eq!(
                parameter_arn("r", "1", &n),
                parameter_arn("r", "1", raw),
                "{raw}"
            );
        }
        assert_eq!(
            parameter_arn("r", "1", "top"),
            parameter_arn("r", "1", "/top")
        );
    }

    #[test]
    fn requests_map_to_actions_and_resources() {
        let arn = |n: &str| format!("arn:aws:sqs:r:1:{n}");
        let call = |service, action, input| Call::parse(service, action, input, None).unwrap();
        let r = call_request(
            &call(
                Service::Sqs,
                "SendMessageBatch",
                json!({"QueueUrl": "http://127.0.0.1:1/1/jobs", "Entries": []}),
            ),
            "r",
            "1",
        );
        assert_eq!(r, vec![("sqs:SendMessage".to_string(), arn("jobs"))]);
        let r = call_request(
            &call(Service::Sqs, "GetQueueUrl", json!({"QueueName": "jobs"})),
            "r",
            "1",
        );
        assert_eq!(r, vec![("sqs:GetQueueUrl".to_string(), arn("jobs"))]);
        for (action, input) in [
            (
                "AddPermission",
                json!({"QueueUrl": "http://h/1/jobs", "Label": "l", "AWSAccountIds": ["111122223333"], "Actions": ["SendMessage"]}),
            ),
            (
                "RemovePermission",
                json!({"QueueUrl": "http://h/1/jobs", "Label": "l"}),
            ),
        ] {
            let r = call_request(&call(Service::Sqs, action, input), "r", "1");
            assert_eq!(r, vec![(format!("sqs:{action}"), arn("jobs"))]);
        }
        let r = call_request(&call(Service::Sqs, "ListQueues", json!({})), "r", "1");
        assert_eq!(r, vec![("sqs:ListQueues".to_string(), "*".to_string())]);
        let r = call_request(
            &call(
                Service::Sqs,
                "StartMessageMoveTask",
                json!({"SourceArn": "arn:aws:sqs:r:1:dlq", "DestinationArn": "arn:aws:sqs:r:1:q"}),
            ),
            "r",
            "1",
        );
        assert_eq!(
            r,
            vec![
                ("sqs:StartMessageMoveTask".to_string(), arn("dlq")),
                ("sqs:SendMessage".to_string(), arn("q"))
            ]
        );

        assert_eq!(
            parameter_arn("r", "1", "/a/b:3"),
            "arn:aws:ssm:r:1:parameter/a/b"
        );
        assert_eq!(
            parameter_arn("r", "1", "arn:aws:ssm:x:2:parameter/a/b:label"),
            "arn:aws:ssm:x:2:parameter/a/b"
        );
        let r = call_request(
            &call(
                Service::Ssm,
                "GetParameters",
                json!({"Names": ["/a/b", "c"]}),
            ),
            "r",
            "1",
        );
        assert_eq!(
            r,
            vec![
                (
                    "ssm:GetParameters".to_string(),
                    "arn:aws:ssm:r:1:parameter/a/b".to_string()
                ),
                (
                    "ssm:GetParameters".to_string(),
                    "arn:aws:ssm:r:1:parameter/c".to_string()
                )
            ]
        );
        let r = call_request(
            &call(
                Service::Ssm,
                "GetParametersByPath",
                json!({"Path": "/", "Recursive": true}),
            ),
            "r",
            "1",
        );
        assert_eq!(
            r,
            vec![(
                "ssm:GetParametersByPath".to_string(),
                "arn:aws:ssm:r:1:parameter/".to_string()
            )]
        );
        // Labels and tags: their own actions, on the parameter's ARN (a
        // ResourceId may be the ARN); PutParameter with Tags needs both.
        let ab = "arn:aws:ssm:r:1:parameter/a/b".to_string();
        for (action, input) in [
            (
                "LabelParameterVersion",
                json!({"Name": "/a/b", "Labels": ["x"]}),
            ),
            (
                "UnlabelParameterVersion",
                json!({"Name": "/a/b:1", "ParameterVersion": 1, "Labels": ["x"]}),
            ),
            (
                "AddTagsToResource",
                json!({"ResourceType": "Parameter", "ResourceId": "/a/b", "Tags": []}),
            ),
            (
                "RemoveTagsFromResource",
                json!({"ResourceType": "Parameter", "ResourceId": ab, "TagKeys": []}),
            ),
            (
                "ListTagsForResource",
                json!({"ResourceType": "Parameter", "ResourceId": "/a/b"}),
            ),
        ] {
            let r = call_request(&call(Service::Ssm, action, input), "r", "1");
            assert_eq!(r, vec![(format!("ssm:{action}"), ab.clone())], "{action}");
        }
        let r = call_request(
            &call(
                Service::Ssm,
                "ListTagsForResource",
                json!({"ResourceType": "Document", "ResourceId": "d"}),
            ),
            "r",
            "1",
        );
        assert_eq!(
            r,
            vec![("ssm:ListTagsForResource".to_string(), "*".to_string())]
        );
        let r = call_request(
            &call(
                Service::Ssm,
                "PutParameter",
                json!({"Name": "/a/b", "Value": "v", "Tags": [{"Key": "k", "Value": "v"}]}),
            ),
            "r",
            "1",
        );
        assert_eq!(
            r,
            vec![
                ("ssm:PutParameter".to_string(), ab.clone()),
                ("ssm:AddTagsToResource".to_string(), ab.clone())
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
                Some(("src", "a b", true))
            ),
            vec![
                ("s3:PutObject".to_string(), "arn:aws:s3:::b/k".to_string()),
                (
                    "s3:GetObjectVersion".to_string(),
                    "arn:aws:s3:::src/a b".to_string()
                ),
            ]
        );
        assert_eq!(
            s3_delete_objects("b", [("k", false), ("v", true)]),
            vec![
                (
                    "s3:DeleteObject".to_string(),
                    "arn:aws:s3:::b/k".to_string()
                ),
                (
                    "s3:DeleteObjectVersion".to_string(),
                    "arn:aws:s3:::b/v".to_string()
                ),
            ]
        );
        assert_eq!(s3_request("ListBuckets", None, None, false, None)[0].1, "*");
    }
}
