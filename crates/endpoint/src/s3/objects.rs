//! S3 object operations: put, get, head, copy, delete (one or a batch), and
//! object tags.

use super::access::authorize;
use super::body::*;
use super::common::*;
use super::headers::*;
use super::stamp::*;
use super::state::{Op, Version, Versioning};
use super::svc::*;
use super::versioning::*;
use pantstack_awsproto::sigv4::hex;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;

impl S3Svc {
    pub(super) async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let i = req.input;
        let tags = super::config::tag_set_in(&i.tagging.tag_set, 10)?;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_ref(), tags)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    pub(super) async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = req.input;
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let v = pick(b, &i.key, i.version_id.as_ref())?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: super::config::tag_set(&v.tags),
            version_id: b.versioning.ever_enabled().then(|| v.version_id.clone()),
        }))
    }

    pub(super) async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = req.input;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_ref(), BTreeMap::new())
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
    }

    pub(super) async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let i = req.input;
        let tags = super::config::tagging_header(i.tagging.as_ref())?;
        let sse = self.sse_for(
            &i.bucket,
            i.server_side_encryption.as_ref(),
            i.ssekms_key_id.as_ref(),
            i.bucket_key_enabled,
            super::config::SseC::of(
                i.sse_customer_algorithm.as_ref(),
                i.sse_customer_key.as_ref(),
                i.sse_customer_key_md5.as_ref(),
            ),
        )?;
        let wanted = Wanted::new(
            i.checksum_algorithm.as_ref(),
            i.checksum_crc32.as_ref(),
            i.checksum_crc32c.as_ref(),
            i.checksum_sha1.as_ref(),
            i.checksum_sha256.as_ref(),
            i.checksum_crc64nvme.as_ref(),
            i.content_md5.as_ref(),
            &req.headers,
        );
        let w = if i.content_length.is_some_and(|n| n <= INLINE_MAX) {
            let (mut data, md5, checksums) =
                read_inline(i.body, wanted, req.trailing_headers.as_ref()).await?;
            data.shrink_to_fit();
            Written {
                blob: String::new(),
                size: data.len() as u64,
                inline: Some(super::state::Inline(data.into())),
                md5,
                checksums,
            }
        } else {
            write_blob(self.dir(), i.body, wanted, req.trailing_headers.as_ref()).await?
        };
        let discard = |w: &Written| {
            if w.inline.is_none() {
                let _ = std::fs::remove_file(self.dir().join(&w.blob));
            }
        };
        let headers = headers_of(
            i.cache_control.as_ref(),
            i.content_disposition.as_ref(),
            i.content_encoding.as_ref(),
            i.content_language.as_ref(),
            i.expires.as_ref(),
            i.website_redirect_location.as_ref(),
        );
        let (rx, g, version) = {
            let mut st = self.state();
            let Some(b) = st.buckets.get(&i.bucket) else {
                discard(&w);
                return Err(no_bucket(&i.bucket));
            };
            if let Err(e) = check_write(b, &i.key, i.if_match.as_ref(), i.if_none_match.as_ref()) {
                discard(&w);
                return Err(e);
            }
            let version_id = if b.versioning == Versioning::Enabled {
                new_id()
            } else {
                "null".into()
            };
            let version = Version {
                version_id,
                delete_marker: false,
                blob: w.inline.is_none().then(|| w.blob.clone()),
                inline: w.inline.clone(),
                size: w.size,
                etag: hex(&w.md5),
                modified: crate::now_ms(),
                content_type: i.content_type.map(|c| c.to_string()),
                metadata: i
                    .metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                headers,
                checksums: w.checksums.clone(),
                parts: None,
                tags,
                sse: sse.clone(),
            };
            let versioned = b.versioning.ever_enabled();
            let (rx, g) = self.apply(
                &mut st,
                vec![Op::Put {
                    bucket: i.bucket.clone(),
                    key: i.key.clone(),
                    version: version.clone(),
                }],
            );
            (rx, g, versioned.then_some(version))
        };
        self.commit(rx, g).await?;
        let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields_of(&w.checksums);
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(sse.as_ref());
        Ok(S3Response::new(PutObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            e_tag: Some(ETag::Strong(hex(&w.md5))),
            version_id: version.map(|v| v.version_id),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_crc64nvme: crc64,
            size: Some(w.size as i64),
            ..Default::default()
        }))
    }

    pub(super) async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        sse_c_not_applicable(super::config::SseC::of(
            i.sse_customer_algorithm.as_ref(),
            i.sse_customer_key.as_ref(),
            i.sse_customer_key_md5.as_ref(),
        ))?;
        let v = {
            let st = self.state();
            let b = bucket(&st, &i.bucket)?;
            let v = pick(b, &i.key, i.version_id.as_ref())?.clone();
            check_conditions(
                &v,
                i.if_match.as_ref(),
                i.if_none_match.as_ref(),
                i.if_modified_since.as_ref(),
                i.if_unmodified_since.as_ref(),
            )?;
            // Opened under the lock: while the version is in the state its
            // file exists (a delete or an overwrite removes it only after
            // journaling), and the open descriptor keeps these bytes.
            let file = v
                .blob
                .as_ref()
                .filter(|_| v.inline.is_none())
                .and_then(|blob| std::fs::File::open(self.dir().join(blob)).ok())
                .map(std::sync::Arc::new);
            (v, file, b.versioning.ever_enabled())
        };
        let (v, file, versioned) = v;
        let (start, len, content_range) = match &i.range {
            None => (0, v.size, None),
            Some(r) => {
                let rg = r.check(v.size).map_err(S3Error::from)?;
                (
                    rg.start,
                    rg.end - rg.start,
                    Some(format!(
                        "bytes {}-{}/{}",
                        rg.start,
                        rg.end.saturating_sub(1),
                        v.size
                    )),
                )
            }
        };
        let want_sums = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == "ENABLED")
            && i.range.is_none();
        let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields(&v, want_sums);
        let body = body_of(&v, file.as_ref(), start, len);
        if body.is_none() && len > 0 {
            return Err(s3_error!(
                InternalError,
                "the data of {}/{} cannot be read (a damaged journal record or a missing blob)",
                i.bucket,
                i.key
            ));
        }
        let partial = content_range.is_some();
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(v.sse.as_ref());
        let mut resp = S3Response::new(GetObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            tag_count: (!v.tags.is_empty()).then_some(v.tags.len() as i32),
            body,
            content_length: Some(len as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: v.content_type.clone().and_then(|c| c.parse().ok()),
            e_tag: Some(etag_of(&v)),
            last_modified: Some(ts(v.modified)),
            metadata: (!v.metadata.is_empty()).then(|| v.metadata.clone().into_iter().collect()),
            version_id: versioned.then(|| v.version_id.clone()),
            cache_control: v.headers.get("cache-control").cloned(),
            content_disposition: v.headers.get("content-disposition").cloned(),
            content_encoding: v.headers.get("content-encoding").cloned(),
            content_language: v.headers.get("content-language").cloned(),
            expires: v
                .headers
                .get("expires")
                .and_then(|m| m.parse::<u64>().ok())
                .map(ts),
            website_redirect_location: v.headers.get("website-redirect-location").cloned(),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_crc64nvme: crc64,
            parts_count: v.parts.map(|p| p as i32),
            ..Default::default()
        });
        if partial {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        if let Some(file) = file
            && len > 0
        {
            resp.extensions.insert(super::body::FileRange {
                file,
                offset: start,
                len,
            });
        }
        Ok(resp)
    }

    pub(super) async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        sse_c_not_applicable(super::config::SseC::of(
            i.sse_customer_algorithm.as_ref(),
            i.sse_customer_key.as_ref(),
            i.sse_customer_key_md5.as_ref(),
        ))?;
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let v = pick(b, &i.key, i.version_id.as_ref())?;
        check_conditions(
            v,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let want_sums = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == "ENABLED");
        let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields(v, want_sums);
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(v.sse.as_ref());
        Ok(S3Response::new(HeadObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            content_length: Some(v.size as i64),
            accept_ranges: Some("bytes".into()),
            content_type: v.content_type.clone().and_then(|c| c.parse().ok()),
            e_tag: Some(etag_of(v)),
            last_modified: Some(ts(v.modified)),
            metadata: (!v.metadata.is_empty()).then(|| v.metadata.clone().into_iter().collect()),
            version_id: b.versioning.ever_enabled().then(|| v.version_id.clone()),
            cache_control: v.headers.get("cache-control").cloned(),
            content_disposition: v.headers.get("content-disposition").cloned(),
            content_encoding: v.headers.get("content-encoding").cloned(),
            content_language: v.headers.get("content-language").cloned(),
            expires: v
                .headers
                .get("expires")
                .and_then(|m| m.parse::<u64>().ok())
                .map(ts),
            website_redirect_location: v.headers.get("website-redirect-location").cloned(),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_crc64nvme: crc64,
            parts_count: v.parts.map(|p| p as i32),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = req.input;
        let (rx, g, out) = {
            let mut st = self.state();
            let b = bucket(&st, &i.bucket)?;
            let (op, out) = delete_op(b, &i.bucket, &i.key, i.version_id.clone());
            match op {
                Some(op) => {
                    let (rx, g) = self.apply(&mut st, vec![op]);
                    (Some(rx), g, out)
                }
                None => (None, Vec::new(), out),
            }
        };
        if let Some(rx) = rx {
            self.commit(rx, g).await?;
        }
        Ok(S3Response::new(out))
    }

    pub(super) async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects request"
            ));
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        // Each key is authorized on its own (DeleteObjects API reference: "For
        // each key, Amazon S3 performs a delete action and returns the result
        // of that delete, success, or failure"): a refused key is an error of
        // the batch, the others are deleted.
        let mut errors = Vec::new();
        let allowed: Vec<bool> = i
            .delete
            .objects
            .iter()
            .map(|o| {
                let r = authorize(&self.core, req.credentials.as_ref(), || {
                    crate::iam::s3_delete_objects(
                        &i.bucket,
                        [(o.key.as_str(), o.version_id.is_some())],
                    )
                });
                if let Err(e) = &r {
                    errors.push(Error {
                        code: Some("AccessDenied".into()),
                        key: Some(o.key.clone()),
                        message: e.message().map(str::to_string),
                        version_id: o.version_id.clone(),
                    });
                }
                r.is_ok()
            })
            .collect();
        let (rx, g, deleted) = {
            let mut st = self.state();
            let b = bucket(&st, &i.bucket)?;
            let mut ops = Vec::new();
            let mut deleted = Vec::new();
            for (o, _) in i.delete.objects.iter().zip(&allowed).filter(|(_, ok)| **ok) {
                let (op, out) = delete_op(b, &i.bucket, &o.key, o.version_id.clone());
                ops.extend(op);
                deleted.push(DeletedObject {
                    key: Some(o.key.clone()),
                    version_id: o.version_id.clone(),
                    delete_marker: out.delete_marker,
                    delete_marker_version_id: if out.delete_marker == Some(true) {
                        out.version_id.clone()
                    } else {
                        None
                    },
                });
            }
            let (rx, g) = self.apply(&mut st, ops);
            (rx, g, deleted)
        };
        self.commit(rx, g).await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        let CopySource::Bucket {
            bucket: sb,
            key: sk,
            version_id: sv,
        } = &i.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copies from access points are not supported locally"
            ));
        };
        let src = {
            let st = self.state();
            let b = bucket(&st, sb)?;
            if !st.buckets.contains_key(&i.bucket) {
                return Err(no_bucket(&i.bucket));
            }
            copy_source(
                b,
                sk,
                sv.as_deref(),
                [
                    i.copy_source_if_match.as_ref(),
                    i.copy_source_if_none_match.as_ref(),
                ],
                [
                    i.copy_source_if_modified_since.as_ref(),
                    i.copy_source_if_unmodified_since.as_ref(),
                ],
            )?
        };
        for (what, d) in [
            (
                "metadata",
                i.metadata_directive.as_ref().map(|d| d.as_str()),
            ),
            ("tagging", i.tagging_directive.as_ref().map(|d| d.as_str())),
        ] {
            if let Some(d) = d
                && d != "COPY"
                && d != "REPLACE"
            {
                return Err(s3_error!(
                    InvalidArgument,
                    "Unknown {what} directive: {d} (COPY or REPLACE)"
                ));
            }
        }
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let replace_tags = i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let tags = if replace_tags {
            super::config::tagging_header(i.tagging.as_ref())?
        } else {
            src.tags.clone()
        };
        let sse = self.sse_for(
            &i.bucket,
            i.server_side_encryption.as_ref(),
            i.ssekms_key_id.as_ref(),
            i.bucket_key_enabled,
            copy_sse_c(
                [
                    i.sse_customer_algorithm.as_ref(),
                    i.sse_customer_key.as_ref(),
                    i.sse_customer_key_md5.as_ref(),
                ],
                [
                    i.copy_source_sse_customer_algorithm.as_ref(),
                    i.copy_source_sse_customer_key.as_ref(),
                    i.copy_source_sse_customer_key_md5.as_ref(),
                ],
            ),
        )?;
        let changes_encryption = i.server_side_encryption.is_some();
        if !replace
            && !changes_encryption
            && sb.as_ref() == i.bucket
            && sk.as_ref() == i.key
            && sv.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        // A hard link shares the data; each name is freed on its own.
        let blob = new_id();
        if let Some(from) = &src.blob {
            let (a, b) = (self.dir().join(from), self.dir().join(&blob));
            let dir = self.dir().to_path_buf();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                if std::fs::hard_link(&a, &b).is_err() {
                    std::fs::copy(&a, &b)?;
                    std::fs::File::open(&b)?.sync_all()?;
                }
                std::fs::File::open(&dir)?.sync_all()
            })
            .await
            .map_err(|e| s3_error!(InternalError, "{e}"))?
            .map_err(|e| s3_error!(InternalError, "cannot copy the object: {e}"))?;
        }
        let mut version = src.clone();
        version.blob = src.blob.as_ref().map(|_| blob.clone());
        version.modified = crate::now_ms();
        version.tags = tags;
        version.sse = sse;
        if replace {
            version.metadata = i
                .metadata
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            version.content_type = i.content_type.as_ref().map(|c| c.to_string());
            version.headers = headers_of(
                i.cache_control.as_ref(),
                i.content_disposition.as_ref(),
                i.content_encoding.as_ref(),
                i.content_language.as_ref(),
                i.expires.as_ref(),
                i.website_redirect_location.as_ref(),
            );
        }
        let (rx, g, versioned) = {
            let mut st = self.state();
            let Some(b) = st.buckets.get(&i.bucket) else {
                let _ = std::fs::remove_file(self.dir().join(&blob));
                return Err(no_bucket(&i.bucket));
            };
            version.version_id = if b.versioning == Versioning::Enabled {
                new_id()
            } else {
                "null".into()
            };
            let versioned = b.versioning.ever_enabled();
            let (rx, g) = self.apply(
                &mut st,
                vec![Op::Put {
                    bucket: i.bucket.clone(),
                    key: i.key.clone(),
                    version: version.clone(),
                }],
            );
            (rx, g, versioned)
        };
        self.commit(rx, g).await?;
        let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields(&version, true);
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(version.sse.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag_of(&version)),
                last_modified: Some(ts(version.modified)),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
                checksum_crc64nvme: crc64,
                ..Default::default()
            }),
            version_id: versioned.then(|| version.version_id.clone()),
            copy_source_version_id: sv.as_ref().map(|s| s.to_string()),
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            ..Default::default()
        }))
    }
}
