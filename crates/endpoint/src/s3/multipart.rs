//! S3 multipart uploads: create, upload a part (or copy one), complete, abort,
//! and list uploads and parts.

use super::body::*;
use super::common::*;
use super::headers::*;
use super::stamp::*;
use super::state::{Op, Part, Upload, Version, Versioning};
use super::svc::*;
use md5::{Digest, Md5};
use pantstack_awsproto::sigv4::hex;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

impl S3Svc {
    pub(super) async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let upload_id = new_id();
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
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(sse.as_ref());
        let upload = Upload {
            key: i.key.clone(),
            initiated: crate::now_ms(),
            template: Version {
                version_id: String::new(),
                delete_marker: false,
                blob: None,
                inline: None,
                size: 0,
                etag: String::new(),
                modified: 0,
                content_type: i.content_type.map(|c| c.to_string()),
                metadata: i
                    .metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                headers: headers_of(
                    i.cache_control.as_ref(),
                    i.content_disposition.as_ref(),
                    i.content_encoding.as_ref(),
                    i.content_language.as_ref(),
                    i.expires.as_ref(),
                    i.website_redirect_location.as_ref(),
                ),
                checksums: BTreeMap::new(),
                parts: None,
                tags,
                sse,
            },
            checksum_algorithm: i
                .checksum_algorithm
                .as_ref()
                .map(|a| a.as_str().to_ascii_uppercase()),
            parts: BTreeMap::new(),
        };
        let (rx, g) = {
            let mut st = self.state();
            if !st.buckets.contains_key(&i.bucket) {
                return Err(no_bucket(&i.bucket));
            }
            self.apply(
                &mut st,
                vec![Op::CreateUpload {
                    bucket: i.bucket.clone(),
                    upload_id: upload_id.clone(),
                    upload,
                }],
            )
        };
        self.commit(rx, g).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload_id),
            checksum_algorithm: i.checksum_algorithm,
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        sse_c_not_applicable(super::config::SseC::of(
            i.sse_customer_algorithm.as_ref(),
            i.sse_customer_key.as_ref(),
            i.sse_customer_key_md5.as_ref(),
        ))?;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let algorithm = {
            let st = self.state();
            let b = bucket(&st, &i.bucket)?;
            // An upload id names one upload of one key (AWS: NoSuchUpload for
            // another key).
            let u = b
                .uploads
                .get(&i.upload_id)
                .filter(|u| u.key == i.key)
                .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
            (u.checksum_algorithm.clone(), u.template.sse.clone())
        };
        let (algorithm, sse) = algorithm;
        let mut wanted = Wanted::new(
            i.checksum_algorithm.as_ref(),
            i.checksum_crc32.as_ref(),
            i.checksum_crc32c.as_ref(),
            i.checksum_sha1.as_ref(),
            i.checksum_sha256.as_ref(),
            i.checksum_crc64nvme.as_ref(),
            i.content_md5.as_ref(),
            &req.headers,
        );
        wanted.algorithms.extend(algorithm);
        wanted.algorithms.dedup();
        let w = write_blob(self.dir(), i.body, wanted, req.trailing_headers.as_ref()).await?;
        let part = Part {
            blob: w.blob.clone(),
            size: w.size,
            etag: hex(&w.md5),
            modified: crate::now_ms(),
            checksums: w.checksums.clone(),
        };
        let (rx, g) = {
            let mut st = self.state();
            let known = st
                .buckets
                .get(&i.bucket)
                .and_then(|b| b.uploads.get(&i.upload_id))
                .is_some_and(|u| u.key == i.key);
            if !known {
                let _ = std::fs::remove_file(self.dir().join(&w.blob));
                return Err(s3_error!(
                    NoSuchUpload,
                    "The specified upload does not exist."
                ));
            }
            self.apply(
                &mut st,
                vec![Op::UploadPart {
                    bucket: i.bucket.clone(),
                    upload_id: i.upload_id.clone(),
                    number: i.part_number as u32,
                    part,
                }],
            )
        };
        self.commit(rx, g).await?;
        let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields_of(&w.checksums);
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            super::config::sse_fields(sse.as_ref());
        Ok(S3Response::new(UploadPartOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            e_tag: Some(ETag::Strong(hex(&w.md5))),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_crc64nvme: crc64,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
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
        )
        .refuse(s3_error!(
            NotImplemented,
            "server-side encryption with customer-provided keys (SSE-C) is not served by the local cloud"
        ))?;
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
        let (src, algorithm) = {
            let st = self.state();
            let b = bucket(&st, &i.bucket)?;
            let algorithm = b
                .uploads
                .get(&i.upload_id)
                .filter(|u| u.key == i.key)
                .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?
                .checksum_algorithm
                .clone();
            let v = copy_source(
                bucket(&st, sb)?,
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
            )?;
            (v, algorithm)
        };
        let (start, len) = match &i.copy_source_range {
            None => (0, src.size),
            Some(r) => copy_range(r, src.size)?,
        };
        let dir = self.dir().to_path_buf();
        let from = src.clone();
        let written =
            tokio::task::spawn_blocking(move || copy_part(&dir, &from, start, len, algorithm))
                .await
                .map_err(|e| s3_error!(InternalError, "{e}"))?
                .map_err(|e| s3_error!(InternalError, "cannot copy the part: {e}"))?;
        let (blob, md5, checksums) = written;
        let part = Part {
            blob: blob.clone(),
            size: len,
            etag: hex(&md5),
            modified: crate::now_ms(),
            checksums: checksums.clone(),
        };
        let (rx, g) = {
            let mut st = self.state();
            let known = st
                .buckets
                .get(&i.bucket)
                .and_then(|b| b.uploads.get(&i.upload_id))
                .is_some_and(|u| u.key == i.key);
            if !known {
                let _ = std::fs::remove_file(self.dir().join(&blob));
                return Err(s3_error!(
                    NoSuchUpload,
                    "The specified upload does not exist."
                ));
            }
            self.apply(
                &mut st,
                vec![Op::UploadPart {
                    bucket: i.bucket.clone(),
                    upload_id: i.upload_id.clone(),
                    number: i.part_number as u32,
                    part: part.clone(),
                }],
            )
        };
        self.commit(rx, g).await?;
        let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields_of(&checksums);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(ts(part.modified)),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
                checksum_crc64nvme: crc64,
            }),
            copy_source_version_id: sv.as_ref().map(|s| s.to_string()),
            ..Default::default()
        }))
    }

    pub(super) async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let given = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if given.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let (upload, versioning) = {
            let st = self.state();
            let b = bucket(&st, &i.bucket)?;
            let Some(u) = b.uploads.get(&i.upload_id).filter(|u| u.key == i.key) else {
                return self.completed_again(b, &i.bucket, &i.key, &i.upload_id);
            };
            // Fail early; checked again with the write.
            check_write(b, &i.key, i.if_match.as_ref(), i.if_none_match.as_ref())?;
            (u.clone(), b.versioning)
        };
        let mut chosen = Vec::new();
        let mut last = 0;
        for (idx, p) in given.iter().enumerate() {
            let n = p.part_number.unwrap_or(0);
            if n <= last {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. Parts must be ordered by part number."
                ));
            }
            last = n;
            let stored = upload.parts.get(&(n as u32)).ok_or_else(|| s3_error!(InvalidPart, "One or more of the specified parts could not be found. Part {n} was not uploaded."))?;
            if let Some(e) = &p.e_tag
                && e.value().trim_matches('"') != stored.etag
            {
                return Err(s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The ETag of part {n} does not match."
                ));
            }
            if idx + 1 < given.len() && stored.size < MIN_PART {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size. Part {n} is {} bytes; every part but the last must be at least 5 MiB.",
                    stored.size
                ));
            }
            chosen.push(stored.clone());
        }
        // Concatenate the parts into the object's blob.
        let blob = new_id();
        let dir = self.dir().to_path_buf();
        let parts_paths: Vec<PathBuf> = chosen.iter().map(|p| dir.join(&p.blob)).collect();
        let target = dir.join(&blob);
        let algorithm = upload.checksum_algorithm.clone();
        let (size, sum) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Option<String>)> {
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)?;
                let mut size = 0;
                let mut hasher = algorithm.as_deref().and_then(Hasher::new);
                let mut buf = vec![0u8; CHUNK];
                for p in &parts_paths {
                    let mut f = std::fs::File::open(p)?;
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        if let Some(h) = &mut hasher {
                            h.update(&buf[..n]);
                        }
                        out.write_all(&buf[..n])?;
                        size += n as u64;
                    }
                }
                out.sync_all()?;
                std::fs::File::open(&dir)?.sync_all()?;
                Ok((size, hasher.map(Hasher::finish)))
            })
            .await
            .map_err(|e| s3_error!(InternalError, "{e}"))?
            .map_err(|e| s3_error!(InternalError, "cannot assemble the object: {e}"))?;
        let mut md5s = Md5::new();
        for p in &chosen {
            let raw: Vec<u8> = (0..p.etag.len() / 2)
                .filter_map(|k| u8::from_str_radix(&p.etag[2 * k..2 * k + 2], 16).ok())
                .collect();
            md5s.update(&raw);
        }
        let etag = format!("{}-{}", hex(&md5s.finalize()), chosen.len());
        let mut version = upload.template.clone();
        version.version_id = if versioning == Versioning::Enabled {
            new_id()
        } else {
            "null".into()
        };
        version.blob = Some(blob.clone());
        version.size = size;
        version.etag = etag.clone();
        version.modified = crate::now_ms();
        version.parts = Some(chosen.len() as u32);
        if let (Some(a), Some(s)) = (upload.checksum_algorithm.clone(), sum) {
            version.checksums.insert(a, s);
        }
        let (rx, g) = {
            let mut st = self.state();
            let b = bucket(&st, &i.bucket)?;
            let discard = || {
                let _ = std::fs::remove_file(self.dir().join(&blob));
            };
            if !b.uploads.contains_key(&i.upload_id) {
                // A concurrent completion of the same upload won.
                discard();
                return self.completed_again(b, &i.bucket, &i.key, &i.upload_id);
            }
            if let Err(e) = check_write(b, &i.key, i.if_match.as_ref(), i.if_none_match.as_ref()) {
                discard();
                return Err(e);
            }
            self.apply(
                &mut st,
                vec![Op::CompleteUpload {
                    bucket: i.bucket.clone(),
                    upload_id: i.upload_id.clone(),
                    version: version.clone(),
                }],
            )
        };
        self.commit(rx, g).await?;
        Ok(self.complete_output(
            &i.bucket,
            &i.key,
            etag,
            versioning
                .ever_enabled()
                .then(|| version.version_id.clone()),
            version.sse.as_ref(),
        ))
    }

    pub(super) async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        let (rx, g) = {
            let mut st = self.state();
            let b = bucket(&st, &i.bucket)?;
            if b.uploads.get(&i.upload_id).is_none_or(|u| u.key != i.key) {
                return Err(s3_error!(
                    NoSuchUpload,
                    "The specified upload does not exist."
                ));
            }
            self.apply(
                &mut st,
                vec![Op::AbortUpload {
                    bucket: i.bucket.clone(),
                    upload_id: i.upload_id.clone(),
                }],
            )
        };
        self.commit(rx, g).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let u = b
            .uploads
            .get(&i.upload_id)
            .filter(|u| u.key == i.key)
            .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
        let after = i.part_number_marker.map(|m| m.max(0) as u32).unwrap_or(0);
        let max = i.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
        let all: Vec<(&u32, &Part)> = u.parts.range(after + 1..).collect();
        let parts: Vec<s3s::dto::Part> = all
            .iter()
            .take(max)
            .map(|(n, p)| {
                let [crc32, crc32c, sha1, sha256, crc64] = checksum_fields_of(&p.checksums);
                s3s::dto::Part {
                    part_number: Some(**n as i32),
                    size: Some(p.size as i64),
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    last_modified: Some(ts(p.modified)),
                    checksum_crc32: crc32,
                    checksum_crc32c: crc32c,
                    checksum_sha1: sha1,
                    checksum_sha256: sha256,
                    checksum_crc64nvme: crc64,
                }
            })
            .collect();
        let truncated = all.len() > max;
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(u.key.clone()),
            upload_id: Some(i.upload_id.clone()),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            next_part_number_marker: if truncated {
                parts.last().and_then(|p| p.part_number)
            } else {
                None
            },
            parts: Some(parts),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let uploads = b
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(&prefix))
            .map(|(id, u)| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(ts(u.initiated)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket.clone()),
            prefix: i.prefix.clone(),
            uploads: Some(uploads),
            is_truncated: Some(false),
            ..Default::default()
        }))
    }
}
