//! Every checkov check a synthesized template skips, with the written reason.
//!
//! A skip is attached to one resource's `Metadata.checkov.skip` and only where its
//! condition holds (e.g. the HTTP listener skips the TLS checks only when no
//! certificate is configured). docs/security.md lists every entry of `ALL`; a test
//! fails if the two drift apart.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skip {
    pub id: &'static str,
    pub reason: &'static str,
}

const fn skip(id: &'static str, reason: &'static str) -> Skip {
    Skip { id, reason }
}

pub const ALB_PORT_80_OPEN: Skip = skip(
    "CKV_AWS_260",
    "Public load balancer: port 80 must accept the internet. With a certificate it only answers with a redirect to HTTPS.",
);
pub const ALB_HTTP_LISTENER: Skip = skip(
    "CKV_AWS_2",
    "No certificate is configured (pantstack:certificateArn), so the listener is HTTP. Set a certificate to get HTTPS and an HTTP-to-HTTPS redirect.",
);
pub const ALB_HTTP_LISTENER_TLS: Skip = skip(
    "CKV_AWS_103",
    "No certificate is configured (pantstack:certificateArn), so the listener is HTTP and has no TLS policy.",
);
pub const ALB_PREVIEW_DELETION: Skip = skip(
    "CKV_AWS_150",
    "Preview environments are destroyed automatically when the pull request closes; deletion protection would block that.",
);
pub const LOG_BUCKET_SELF_LOGGING: Skip = skip(
    "CKV_AWS_18",
    "This is the access-log bucket; logging its own access would log forever.",
);
pub const BUCKET_VERSIONING_OFF: Skip = skip(
    "CKV_AWS_21",
    "Versioning is turned off in the manifest (buckets.<name>.versioning: false).",
);

pub const TEMPLATE_BUCKET_LOGGING: Skip = skip(
    "CKV_AWS_18",
    "Holds only the CloudFormation templates `pantstack deploy` uploads (templates never carry secrets); every write is a CloudTrail management event of the deploying role, and the shared stack has no log bucket of its own.",
);

/// Every skip the synthesizer can emit (docs/security.md lists these).
pub const ALL: &[Skip] = &[
    ALB_PORT_80_OPEN,
    ALB_HTTP_LISTENER,
    ALB_HTTP_LISTENER_TLS,
    ALB_PREVIEW_DELETION,
    LOG_BUCKET_SELF_LOGGING,
    TEMPLATE_BUCKET_LOGGING,
    BUCKET_VERSIONING_OFF,
];
