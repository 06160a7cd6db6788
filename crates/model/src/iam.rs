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
];

/// On the service's parameter path and everything under it (its secrets).
pub const PARAMETER_ACTIONS: &[&str] = &[
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
];
