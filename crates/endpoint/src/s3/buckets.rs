//! S3 bucket operations: create, head, list, delete, and the parts of a bucket
//! configuration (policy, CORS, lifecycle, default encryption, tags).

use super::common::*;
use super::stamp::*;
use super::state::Op;
use super::svc::*;
use base64::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

impl S3Svc {
    pub(super) async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = req.input.bucket.clone();
        let (rx, g) = {
            let mut st = self.state();
            if st.buckets.contains_key(&name) {
                // us-east-1 answers 200 to its owner re-creating a bucket; others 409.
                if self.core.region != "us-east-1" {
                    return Err(s3_error!(
                        BucketAlreadyOwnedByYou,
                        "Your previous request to create the named bucket succeeded and you already own it."
                    ));
                }
                return Ok(S3Response::new(CreateBucketOutput {
                    location: Some(format!("/{name}")),
                }));
            }
            self.apply(
                &mut st,
                vec![Op::CreateBucket {
                    name: name.clone(),
                    now: crate::now_ms(),
                }],
            )
        };
        self.commit(rx, g).await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    pub(super) async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let i = req.input;
        let arn = crate::iam::bucket_arn(&i.bucket);
        // S3's quota: a bucket policy is at most 20 KB.
        if i.policy.len() > 20 * 1024 {
            return Err(s3_error!(
                MalformedPolicy,
                "Policy exceeds the maximum allowed document size ({} bytes; at most 20480).",
                i.policy.len()
            ));
        }
        crate::policy_doc::PolicyDoc::parse(&i.policy, "s3", &|r| {
            r == arn || r.starts_with(&format!("{arn}/"))
        })
        .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
        self.configure(&i.bucket, |c| c.policy = Some(i.policy.clone()))
            .await?;
        let mut r = S3Response::new(PutBucketPolicyOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let policy = self.config_part(
            &req.input.bucket,
            |c| c.policy.clone(),
            s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"),
        )?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    pub(super) async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.configure(&req.input.bucket, |c| c.policy = None)
            .await?;
        let mut r = S3Response::new(DeleteBucketPolicyOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let i = req.input;
        let rules = super::config::cors_in(&i.cors_configuration)?;
        self.configure(&i.bucket, |c| c.cors = Some(rules)).await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules = self.config_part(
            &req.input.bucket,
            |c| c.cors.clone(),
            s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ),
        )?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(super::config::cors_out(&rules)),
        }))
    }

    pub(super) async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.configure(&req.input.bucket, |c| c.cors = None).await?;
        let mut r = S3Response::new(DeleteBucketCorsOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let i = req.input;
        let Some(conf) = &i.lifecycle_configuration else {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        };
        let rules = super::config::lifecycle_in(conf)?;
        self.configure(&i.bucket, |c| c.lifecycle = Some(rules))
            .await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let rules = self.config_part(
            &req.input.bucket,
            |c| c.lifecycle.clone(),
            s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist"
            ),
        )?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(super::config::lifecycle_out(&rules)),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.configure(&req.input.bucket, |c| c.lifecycle = None)
            .await?;
        let mut r = S3Response::new(DeleteBucketLifecycleOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let i = req.input;
        let sse = super::config::encryption_in(
            &i.server_side_encryption_configuration,
            &self.core.region,
        )?;
        self.configure(&i.bucket, |c| c.encryption = Some(sse))
            .await?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let st = self.state();
        let b = bucket(&st, &req.input.bucket)?;
        // Every bucket has default encryption (SSE-S3 unless set otherwise).
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(super::config::encryption_out(
                b.config.encryption.as_ref(),
            )),
        }))
    }

    pub(super) async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.configure(&req.input.bucket, |c| c.encryption = None)
            .await?;
        let mut r = S3Response::new(DeleteBucketEncryptionOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let i = req.input;
        let tags = super::config::tag_set_in(&i.tagging.tag_set, 50)?;
        self.configure(&i.bucket, |c| c.tags = Some(tags)).await?;
        let mut r = S3Response::new(PutBucketTaggingOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tags = self.config_part(
            &req.input.bucket,
            |c| c.tags.clone(),
            s3_error!(NoSuchTagSet, "The TagSet does not exist"),
        )?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: super::config::tag_set(&tags),
        }))
    }

    pub(super) async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.configure(&req.input.bucket, |c| c.tags = None).await?;
        let mut r = S3Response::new(DeleteBucketTaggingOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    pub(super) async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        if !self.state().buckets.contains_key(&req.input.bucket) {
            return Err(no_bucket(&req.input.bucket));
        }
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.core.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        if !self.state().buckets.contains_key(&req.input.bucket) {
            return Err(no_bucket(&req.input.bucket));
        }
        let location = (self.core.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.core.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    pub(super) async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let i = req.input;
        // MaxBuckets: 1 to 10000 (ListBuckets API reference); the token is the
        // last name of the page, opaque (base64url) as on AWS.
        let max = match i.max_buckets {
            None => usize::MAX,
            Some(m) if (1..=10_000).contains(&m) => m as usize,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be an integer between 1 and 10000"
                ));
            }
        };
        let after = match &i.continuation_token {
            Some(t) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
            None => None,
        };
        let prefix = i.prefix.clone().unwrap_or_default();
        let st = self.state();
        let mut names = st
            .buckets
            .range(prefix.clone()..)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .filter(|(n, _)| after.as_ref().is_none_or(|a| *n > a))
            .filter(|_| {
                i.bucket_region
                    .as_ref()
                    .is_none_or(|r| *r == self.core.region)
            });
        let buckets: Vec<Bucket> = names
            .by_ref()
            .take(max)
            .map(|(n, b)| Bucket {
                name: Some(n.clone()),
                creation_date: Some(ts(b.created)),
                bucket_region: Some(self.core.region.clone()),
            })
            .collect();
        let more = names.next().is_some();
        let token = more
            .then(|| buckets.last().and_then(|b| b.name.clone()))
            .flatten()
            .map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n));
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            continuation_token: token,
            prefix: i.prefix.clone(),
        }))
    }

    pub(super) async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let name = req.input.bucket;
        let (rx, g) = {
            let mut st = self.state();
            let b = bucket(&st, &name)?;
            if !b.is_empty() {
                return Err(s3_error!(
                    BucketNotEmpty,
                    "The bucket you tried to delete is not empty"
                ));
            }
            self.apply(&mut st, vec![Op::DeleteBucket { name: name.clone() }])
        };
        self.commit(rx, g).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }
}
