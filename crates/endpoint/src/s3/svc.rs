//! The storage behind S3: `S3Svc` (the state and the object directory), its
//! journal commit, and the lifecycle pass.

use super::common::*;
use super::headers::pick;
use super::state::{Op, State};
use crate::Core;
use s3s::dto::*;
use s3s::{S3Error, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub struct S3Svc {
    pub core: Arc<Core>,
}

tokio::task_local! {
    /// Set when the S3 request running in this task journaled records of its own:
    /// they come after everything it saw in the log, so their durability covers
    /// its answer. A request that journals nothing (a read, a delete of nothing)
    /// waits for a read barrier instead (`http`).
    pub static COMMITTED: std::cell::Cell<bool>;
}

impl S3Svc {
    pub(super) fn dir(&self) -> &Path {
        &self.core.objects_dir
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.core.s3.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals ops applied under the lock, waits until durable, then deletes what
    /// they freed.
    pub(super) async fn commit(
        &self,
        rx: crate::journal::Durable,
        garbage: Vec<String>,
    ) -> S3Result<()> {
        // This request's answer is covered by its own records (see `http`).
        let _ = COMMITTED.try_with(|c| c.set(true));
        if let Err(e) = rx.wait().await {
            let e = crate::stopped_error(&e);
            return Err(s3_error!(ServiceUnavailable, "{}", e.message));
        }
        let dir = self.dir().to_path_buf();
        if !garbage.is_empty() {
            tokio::task::spawn_blocking(move || {
                for g in garbage {
                    let _ = std::fs::remove_file(dir.join(g));
                }
            });
        }
        Ok(())
    }

    /// CompleteMultipartUpload's answer.
    pub(super) fn complete_output(
        &self,
        bucket: &str,
        key: &str,
        etag: String,
        version_id: Option<String>,
        sse: Option<&super::state::Sse>,
    ) -> S3Response<CompleteMultipartUploadOutput> {
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(sse);
        S3Response::new(CompleteMultipartUploadOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            bucket: Some(bucket.to_string()),
            key: Some(key.to_string()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("{}/{}/{}", self.core.base_url(), bucket, key)),
            version_id,
            ..Default::default()
        })
    }

    /// A CompleteMultipartUpload of an upload that is no longer open: the same
    /// answer again when it completed (a retry whose first answer was lost, which
    /// S3 answers 200), NoSuchUpload otherwise.
    pub(super) fn completed_again(
        &self,
        b: &super::state::Bucket,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        match b.completed(upload_id).filter(|c| c.key == key) {
            Some(c) => {
                // The object it made, if it is still there, says how it was
                // encrypted.
                let made = match &c.version_id {
                    Some(v) => b.version(key, v),
                    None => b.latest(key).filter(|v| v.etag == c.etag),
                };
                Ok(self.complete_output(
                    bucket,
                    key,
                    c.etag.clone(),
                    c.version_id.clone(),
                    made.and_then(|v| v.sse.as_ref()),
                ))
            }
            None => Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist."
            )),
        }
    }

    /// The encryption a write to `name` gets: what it asks for, else the
    /// bucket's default (`config::sse_of`).
    pub(super) fn sse_for(
        &self,
        name: &str,
        algorithm: Option<&ServerSideEncryption>,
        kms_key: Option<&String>,
        bucket_key: Option<bool>,
        customer: super::config::SseC,
    ) -> S3Result<Option<super::state::Sse>> {
        let st = self.state();
        let b = bucket(&st, name)?;
        super::config::sse_of(
            algorithm,
            kms_key,
            bucket_key,
            customer,
            b.config.encryption.as_ref(),
            &self.core.region,
        )
    }

    /// Replaces part of a bucket's configuration, journaled.
    pub(super) async fn configure(
        &self,
        name: &str,
        change: impl FnOnce(&mut super::state::BucketConfig),
    ) -> S3Result<()> {
        let (rx, g) = {
            let mut st = self.state();
            let mut config = bucket(&st, name)?.config.clone();
            change(&mut config);
            self.apply(
                &mut st,
                vec![Op::Config {
                    name: name.to_string(),
                    config,
                }],
            )
        };
        self.commit(rx, g).await
    }

    /// A part of a bucket's configuration, or the error S3 answers when unset.
    pub(super) fn config_part<T>(
        &self,
        name: &str,
        part: impl FnOnce(&super::state::BucketConfig) -> Option<T>,
        unset: S3Error,
    ) -> S3Result<T> {
        let st = self.state();
        part(&bucket(&st, name)?.config).ok_or(unset)
    }

    /// Replaces the tags of an object version (the latest without a version id).
    pub(super) async fn set_tags(
        &self,
        name: &str,
        key: &str,
        version_id: Option<&String>,
        tags: BTreeMap<String, String>,
    ) -> S3Result<Option<String>> {
        let (rx, g, shown) = {
            let mut st = self.state();
            let b = bucket(&st, name)?;
            let v = pick(b, key, version_id)?;
            let shown = b.versioning.ever_enabled().then(|| v.version_id.clone());
            let version_id = v.version_id.clone();
            let (rx, g) = self.apply(
                &mut st,
                vec![Op::Tagging {
                    bucket: name.to_string(),
                    key: key.to_string(),
                    version_id,
                    tags,
                }],
            );
            (rx, g, shown)
        };
        self.commit(rx, g).await?;
        Ok(shown)
    }

    /// Applies `ops` (already checked) and journals them while the lock is held.
    pub(super) fn apply(
        &self,
        st: &mut State,
        ops: Vec<Op>,
    ) -> (crate::journal::Durable, Vec<String>) {
        let mut garbage = Vec::new();
        for op in &ops {
            garbage.extend(st.apply(op));
        }
        let records = self.core.records(ops, crate::Record::S3);
        (self.core.journal.submit(records), garbage)
    }
}

/// Applies what the buckets' lifecycle rules call for now (expirations,
/// noncurrent-version expirations, aborted uploads), journaled as the requests
/// that would do the same are; returns how many actions ran.
pub async fn lifecycle_pass(core: &Core) -> usize {
    let day = core.lifecycle_day().as_millis() as u64;
    let (rx, garbage, n) = {
        let mut st = core.s3.lock().unwrap_or_else(|e| e.into_inner());
        let ops = st.lifecycle_ops(crate::now_ms(), day, &mut new_id);
        if ops.is_empty() {
            return 0;
        }
        let n = ops.len();
        let mut garbage = Vec::new();
        for op in &ops {
            garbage.extend(st.apply(op));
        }
        let records = core.records(ops, crate::Record::S3);
        (core.journal.submit(records), garbage, n)
    };
    if rx.wait().await.is_err() {
        // The journal stopped: nothing more is served, the blobs stay.
        return 0;
    }
    let dir = core.objects_dir.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for g in garbage {
            let _ = std::fs::remove_file(dir.join(g));
        }
    })
    .await;
    n
}
