//! What a service's code may do on AWS: the IAM actions its task role gets on its
//! own queues, buckets and parameters. `synth` writes these lists into the task
//! role's policy and the local cloud enforces the same lists on the service's
//! credentials, so a call that AWS would deny is denied locally too.

/// On each of the service's queues and their dead-letter queues.
pub const QUEUE_ACTIONS: &[&str] = &[
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
];

/// On each of the service's buckets.
pub const BUCKET_ACTIONS: &[&str] = &[
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketLocation",
];

/// On the objects of each of the service's buckets (`<bucket ARN>/*`).
pub const OBJECT_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
];

/// On the service's parameter path and everything under it (its secrets).
pub const PARAMETER_ACTIONS: &[&str] = &[
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
];

/// Into the service's own metrics namespace (`Names::metrics_namespace`): the
/// action has no resource; AWS scopes it by the condition key [`METRICS_KEY`].
pub const METRICS_ACTIONS: &[&str] = &["cloudwatch:PutMetricData"];

/// The condition key that scopes [`METRICS_ACTIONS`] to a namespace.
pub const METRICS_KEY: &str = "cloudwatch:namespace";

/// The task variable naming the service's metrics namespace.
pub const METRICS_NAMESPACE_VAR: &str = "PANTSTACK_METRICS_NAMESPACE";

/// What a grant (`grants:` on a queue or bucket) allows another service: actions on
/// the queue or bucket itself, and on the bucket's objects (`<bucket ARN>/*`).
/// Least privilege: only the actions of the access level.
pub fn grant_actions(access: crate::service::Access) -> (Vec<&'static str>, Vec<&'static str>) {
    use crate::service::Access;
    const SEND: &[&str] = &[
        "sqs:SendMessage",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
    ];
    const CONSUME: &[&str] = &[
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
    ];
    const LIST: &[&str] = &[
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucketLocation",
    ];
    const READ: &[&str] = &["s3:GetObject", "s3:GetObjectVersion"];
    const WRITE: &[&str] = &[
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ];
    let both = |a: &[&'static str], b: &[&'static str]| {
        let mut v: Vec<&'static str> = a.to_vec();
        for x in b {
            if !v.contains(x) {
                v.push(x);
            }
        }
        v
    };
    match access {
        Access::Send => (SEND.to_vec(), Vec::new()),
        Access::Consume => (CONSUME.to_vec(), Vec::new()),
        Access::SendConsume => (both(SEND, CONSUME), Vec::new()),
        Access::Read => (LIST.to_vec(), READ.to_vec()),
        Access::Write => (vec!["s3:GetBucketLocation"], WRITE.to_vec()),
        Access::ReadWrite => (LIST.to_vec(), both(READ, WRITE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Access;

    #[test]
    fn grants_allow_only_their_level() {
        let (q, o) = grant_actions(Access::Send);
        assert!(q.contains(&"sqs:SendMessage") && !q.contains(&"sqs:ReceiveMessage"));
        assert!(o.is_empty());
        let (q, _) = grant_actions(Access::Consume);
        assert!(q.contains(&"sqs:DeleteMessage") && !q.contains(&"sqs:SendMessage"));
        let (b, o) = grant_actions(Access::Read);
        assert!(b.contains(&"s3:ListBucket"));
        assert!(o.contains(&"s3:GetObject") && !o.contains(&"s3:PutObject"));
        let (b, o) = grant_actions(Access::Write);
        assert!(!b.contains(&"s3:ListBucket"));
        assert!(o.contains(&"s3:PutObject") && !o.contains(&"s3:GetObject"));
        let (_, o) = grant_actions(Access::ReadWrite);
        assert!(o.contains(&"s3:PutObject") && o.contains(&"s3:GetObject"));
    }
}
