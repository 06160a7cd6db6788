//! Who may do what in S3: the loopback virtual hosts, the secret key of an
//! access key (s3s checks the signature), and authorization of each operation
//! by the principal's identity policy and the bucket policy.

use crate::Core;
use s3s::dto::*;
use s3s::{S3Request, S3Result, s3_error};
use std::sync::Arc;

/// Which host names address a bucket: `<bucket>.localhost` is virtual-hosted; an IP
/// address or `localhost` is path-style.
pub struct LocalHosts;

impl s3s::host::S3Host for LocalHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        if let Some(bucket) = name.strip_suffix(".localhost")
            && !bucket.is_empty()
        {
            return Ok(s3s::host::VirtualHost::new(host).with_bucket(bucket.to_ascii_lowercase()));
        }
        Ok(s3s::host::VirtualHost::new(host))
    }
}

/// SigV4 secrets for s3s: the local cloud's issued credentials.
pub struct Auth {
    pub core: Arc<Core>,
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.core.secret_of(access_key) {
            Some((_, secret)) => Ok(s3s::auth::SecretKey::from(secret.to_string())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records (get credentials with `eval \"$(pantstack aws-env)\"`)."
            )),
        }
    }
}

/// Identity-based policies for s3s: a unit's credentials reach only what its
/// policy allows (`iam`); anonymous requests are refused, as without a policy.
///
/// `check` runs on the parsed path before the input is parsed; the operations
/// whose authorization depends on their input (a version id, the keys of a batch,
/// a copy source) are authorized by their own methods below, from the input s3s
/// parsed and hands to the handler, never from the raw query or headers.
pub struct Access {
    pub core: Arc<Core>,
}

/// Operations authorized from their parsed input (each has a method below).
pub(super) const BY_INPUT: &[&str] = &[
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "UploadPartCopy",
    "PutObject",
    "CreateMultipartUpload",
    "GetObjectTagging",
    "PutObjectTagging",
    "DeleteObjectTagging",
];

impl Access {
    /// The policy of the request's principal (None: unrestricted), or the refusal
    /// of a request without known credentials.
    fn policy_of(
        &self,
        creds: Option<&s3s::auth::Credentials>,
    ) -> S3Result<Option<(&str, Arc<crate::iam::Policy>)>> {
        let Some(creds) = creds else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let Some((principal, _)) = self.core.secret_of(&creds.access_key) else {
            return Err(s3_error!(AccessDenied, "Unknown access key"));
        };
        Ok(self.core.policy(principal).map(|p| (principal, p)))
    }

    /// Authorizes each (action, resource) as IAM evaluates one account: an
    /// explicit `Deny` in the bucket's policy refuses (whoever asks, `user`
    /// too); else an `Allow` of the identity policy (none: unrestricted) or of
    /// the bucket policy allows.
    fn authorize(
        &self,
        creds: Option<&s3s::auth::Credentials>,
        asked: impl FnOnce() -> Vec<(String, String)>,
    ) -> S3Result<()> {
        authorize(&self.core, creds, asked)
    }

    fn object(
        &self,
        creds: Option<&s3s::auth::Credentials>,
        op: &str,
        bucket: &str,
        key: &str,
        version: bool,
    ) -> S3Result<()> {
        self.authorize(creds, || {
            crate::iam::s3_request(op, Some(bucket), Some(key), version, None)
        })
    }
}

#[async_trait::async_trait]
impl s3s::access::S3Access for Access {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name();
        if BY_INPUT.contains(&op) {
            // Authenticated here, authorized by the operation's method.
            return self.policy_of(cx.credentials()).map(|_| ());
        }
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(&**bucket), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(&**bucket), Some(&**key)),
        };
        self.authorize(cx.credentials(), || {
            crate::iam::s3_request(op, bucket, key, false, None)
        })
    }

    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(req.credentials.as_ref(), "GetObject", &i.bucket, &i.key, v)
    }

    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(req.credentials.as_ref(), "HeadObject", &i.bucket, &i.key, v)
    }

    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "DeleteObject",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        // Authenticated here; each key is authorized by the handler, which
        // reports a refused key among the batch's errors, as S3 does.
        self.policy_of(req.credentials.as_ref()).map(|_| ())
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let tagged = i.tagging.as_ref().is_some_and(|t| !t.is_empty());
        self.authorize(req.credentials.as_ref(), || {
            tagging_too(
                crate::iam::s3_request("PutObject", Some(&i.bucket), Some(&i.key), false, None),
                tagged,
            )
        })
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let tagged = i.tagging.as_ref().is_some_and(|t| !t.is_empty());
        self.authorize(req.credentials.as_ref(), || {
            tagging_too(
                crate::iam::s3_request(
                    "CreateMultipartUpload",
                    Some(&i.bucket),
                    Some(&i.key),
                    false,
                    None,
                ),
                tagged,
            )
        })
    }

    async fn get_object_tagging(&self, req: &mut S3Request<GetObjectTaggingInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "GetObjectTagging",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "PutObjectTagging",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn delete_object_tagging(
        &self,
        req: &mut S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "DeleteObjectTagging",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let i = &req.input;
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = &i.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copy sources by access point or outpost are not served by the local cloud"
            ));
        };
        let source = (&**bucket, &**key, version_id.is_some());
        self.authorize(req.credentials.as_ref(), || {
            crate::iam::s3_request(
                "UploadPartCopy",
                Some(&i.bucket),
                Some(&i.key),
                false,
                Some(source),
            )
        })
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let (source, version_id) = match &i.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => (
                (&**bucket, &**key, version_id.is_some()),
                version_id.as_deref(),
            ),
            CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
                return Err(s3_error!(
                    NotImplemented,
                    "copy sources by access point or outpost are not served by the local cloud"
                ));
            }
        };
        let replace_tags = i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let tagged = replace_tags && i.tagging.as_ref().is_some_and(|t| !t.is_empty());
        // Copying a source's tags (the COPY directive) reads them:
        // s3:GetObjectTagging on the source, s3:PutObjectTagging on the copy.
        let copies_tags = !replace_tags && {
            let st = self.core.s3.lock().unwrap_or_else(|e| e.into_inner());
            st.buckets.get(source.0).is_some_and(|b| {
                let v = match version_id {
                    Some(id) => b.version(source.1, id),
                    None => b.latest(source.1),
                };
                v.is_some_and(|v| !v.tags.is_empty())
            })
        };
        self.authorize(req.credentials.as_ref(), || {
            let mut asked = tagging_too(
                crate::iam::s3_request(
                    "CopyObject",
                    Some(&i.bucket),
                    Some(&i.key),
                    false,
                    Some(source),
                ),
                tagged || copies_tags,
            );
            if copies_tags {
                let read = if source.2 {
                    "s3:GetObjectVersionTagging"
                } else {
                    "s3:GetObjectTagging"
                };
                asked.push((
                    read.into(),
                    format!("{}/{}", crate::iam::bucket_arn(source.0), source.1),
                ));
            }
            asked
        })
    }
}

/// A write that sets tags (`x-amz-tagging`) needs `s3:PutObjectTagging` too
/// (S3 API reference, PutObject: "To use this operation with tagging, you must
/// have the s3:PutObjectTagging permission").
pub(super) fn tagging_too(mut asked: Vec<(String, String)>, tagged: bool) -> Vec<(String, String)> {
    if tagged && let Some((_, r)) = asked.first().cloned() {
        asked.push(("s3:PutObjectTagging".into(), r));
    }
    asked
}

/// Authorizes each (action, resource) of an S3 request as IAM evaluates one
/// account: an explicit `Deny` in the bucket's policy refuses (whoever asks,
/// `user` too); else an `Allow` of the identity policy (none: unrestricted) or
/// of the bucket policy allows.
pub(super) fn authorize(
    core: &Core,
    creds: Option<&s3s::auth::Credentials>,
    asked: impl FnOnce() -> Vec<(String, String)>,
) -> S3Result<()> {
    let Some(creds) = creds else {
        return Err(s3_error!(AccessDenied, "Signature is required"));
    };
    let Some((principal, _)) = core.secret_of(&creds.access_key) else {
        return Err(s3_error!(AccessDenied, "Unknown access key"));
    };
    let policy = core.policy(principal);
    let asked = asked();
    let docs: Vec<Option<Arc<crate::policy_doc::PolicyDoc>>> = {
        let st = core.s3.lock().unwrap_or_else(|e| e.into_inner());
        if st.policies.is_empty() {
            Vec::new()
        } else {
            asked
                .iter()
                .map(|(_, r)| st.policies.get(crate::iam::bucket_of_arn(r)?).cloned())
                .collect()
        }
    };
    crate::policy_doc::authorize(
        principal,
        policy.as_deref(),
        &docs,
        &asked,
        &[
            "s3:GetBucketPolicy",
            "s3:PutBucketPolicy",
            "s3:DeleteBucketPolicy",
        ],
    )
    .map_err(|m| s3_error!(AccessDenied, "{m}"))
}
