//! S3 versioning: the bucket's versioning state, listing versions, and what a
//! delete does under each state (remove, or leave a delete marker).

use super::body::*;
use super::common::*;
use super::headers::*;
use super::listing::*;
use super::stamp::*;
use super::state::{Op, Versioning};
use super::svc::*;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

impl S3Svc {
    pub(super) async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let name = req.input.bucket;
        let status = match &req.input.versioning_configuration.status {
            Some(s) => Versioning::parse(s.as_str()),
            None => Some(Versioning::Suspended),
        };
        let Some(status) = status else {
            return Err(s3_error!(
                MalformedXML,
                "Status must be Enabled or Suspended"
            ));
        };
        let (rx, g) = {
            let mut st = self.state();
            bucket(&st, &name)?;
            // Suspending a bucket that never had versioning reads back `Suspended`
            // (GetBucketVersioning: a status is returned once one was ever set);
            // it writes and deletes `null` versions like any suspended bucket.
            self.apply(
                &mut st,
                vec![Op::Versioning {
                    name: name.clone(),
                    status,
                }],
            )
        };
        self.commit(rx, g).await?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    pub(super) async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let st = self.state();
        let b = bucket(&st, &req.input.bucket)?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: b
                .versioning
                .status()
                .map(|s| BucketVersioningStatus::from(s.to_string())),
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = req.input;
        let enc = url_encoded(i.encoding_type.as_ref());
        let max = i.max_keys.unwrap_or(1000).clamp(1, 1000) as usize;
        let prefix = i.prefix.clone().unwrap_or_default();
        if i.version_id_marker.is_some() && i.key_marker.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut n = 0;
        // The last entry returned: where the next page starts (NextKeyMarker,
        // NextVersionIdMarker), set once an entry is left over.
        let mut last: Option<(String, Option<String>)> = None;
        let mut truncated = false;
        let key_marker = i.key_marker.as_deref();
        let start = match key_marker {
            Some(m) if m > prefix.as_str() => m.to_string(),
            _ => prefix.clone(),
        };
        'keys: for (k, vs) in b.objects.range(start..) {
            if !k.starts_with(&prefix) {
                break;
            }
            // Versions of the marker's key newer than (and including) the version
            // marker were on earlier pages; without a version marker, all were.
            let mut skipping = false;
            if key_marker == Some(k.as_str()) {
                match &i.version_id_marker {
                    None => continue,
                    Some(id) if vs.iter().any(|v| &v.version_id == id) => skipping = true,
                    Some(_) => continue,
                }
            }
            if let Some(d) = i.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(pos) = k[prefix.len()..].find(d)
            {
                let p = &k[..prefix.len() + pos + d.len()];
                if prefixes.last().map(String::as_str) == Some(p)
                    || key_marker.is_some_and(|m| m.starts_with(p))
                {
                    continue;
                }
                if n >= max {
                    truncated = true;
                    break;
                }
                prefixes.push(p.to_string());
                last = Some((p.to_string(), None));
                n += 1;
                continue;
            }
            // Newest first; delete markers in the same order.
            let latest = vs.len().saturating_sub(1);
            for (idx, v) in vs.iter().enumerate().rev() {
                if skipping {
                    if Some(&v.version_id) == i.version_id_marker.as_ref() {
                        skipping = false;
                    }
                    continue;
                }
                if n >= max {
                    truncated = true;
                    break 'keys;
                }
                n += 1;
                last = Some((k.clone(), Some(v.version_id.clone())));
                if v.delete_marker {
                    markers.push(DeleteMarkerEntry {
                        key: Some(url_encode(k, enc)),
                        version_id: Some(v.version_id.clone()),
                        is_latest: Some(idx == latest),
                        last_modified: Some(ts(v.modified)),
                        owner: Some(owner()),
                    });
                } else {
                    versions.push(ObjectVersion {
                        key: Some(url_encode(k, enc)),
                        version_id: Some(v.version_id.clone()),
                        is_latest: Some(idx == latest),
                        last_modified: Some(ts(v.modified)),
                        e_tag: Some(etag_of(v)),
                        size: Some(v.size as i64),
                        storage_class: Some(ObjectVersionStorageClass::from_static(
                            ObjectVersionStorageClass::STANDARD,
                        )),
                        owner: Some(owner()),
                        ..Default::default()
                    });
                }
            }
        }
        let next = if truncated { last } else { None };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(url_encode(&prefix, enc)),
            delimiter: i.delimiter.clone(),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            key_marker: i.key_marker.clone().map(|m| url_encode(&m, enc)),
            version_id_marker: i.version_id_marker.clone(),
            next_key_marker: next.as_ref().map(|(k, _)| url_encode(k, enc)),
            next_version_id_marker: next.and_then(|(_, v)| v),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: common_prefixes(prefixes, enc),
            encoding_type: i.encoding_type.clone(),
            ..Default::default()
        }))
    }
}

/// The op and response of deleting `key` (or one version of it).
pub(super) fn delete_op(
    b: &super::state::Bucket,
    bucket: &str,
    key: &str,
    version_id: Option<String>,
) -> (Option<Op>, DeleteObjectOutput) {
    let now = crate::now_ms();
    match version_id {
        Some(id) => {
            let found = b.version(key, &id).cloned();
            let out = DeleteObjectOutput {
                version_id: Some(id.clone()),
                delete_marker: found.as_ref().filter(|v| v.delete_marker).map(|_| true),
                ..Default::default()
            };
            // Deleting a version that does not exist succeeds, as on S3.
            let op = found.map(|_| Op::Delete {
                bucket: bucket.into(),
                key: key.into(),
                version_id: Some(id),
                marker_id: String::new(),
                now,
            });
            (op, out)
        }
        None => match b.versioning {
            Versioning::Unversioned => {
                let op = b.latest(key).map(|_| Op::Delete {
                    bucket: bucket.into(),
                    key: key.into(),
                    version_id: None,
                    marker_id: String::new(),
                    now,
                });
                (op, DeleteObjectOutput::default())
            }
            status => {
                let marker = if status == Versioning::Enabled {
                    new_id()
                } else {
                    "null".to_string()
                };
                let out = DeleteObjectOutput {
                    version_id: Some(marker.clone()),
                    delete_marker: Some(true),
                    ..Default::default()
                };
                (
                    Some(Op::Delete {
                        bucket: bucket.into(),
                        key: key.into(),
                        version_id: None,
                        marker_id: marker,
                        now,
                    }),
                    out,
                )
            }
        },
    }
}
