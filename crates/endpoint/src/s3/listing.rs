//! S3 listings of a bucket's keys (ListObjects v1 and v2): prefixes,
//! delimiters, markers and continuation tokens, URL-encoded keys.

use super::body::*;
use super::common::*;
use super::headers::*;
use super::stamp::*;
use super::state::Version;
use super::svc::*;
use base64::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

impl S3Svc {
    pub(super) async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let enc = url_encoded(i.encoding_type.as_ref());
        let max = i.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match &i.continuation_token {
            Some(t) => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?;
                Some(raw)
            }
            None => i.start_after.clone(),
        };
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let (contents, prefixes, next) = list_keys(
            b,
            &prefix,
            i.delimiter.as_deref(),
            after.as_deref(),
            max,
            |k, v| object_entry(k, v, enc),
        );
        let count = contents.len() + prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: Some(url_encode(&prefix, enc)),
            delimiter: i.delimiter.clone().map(|d| url_encode(&d, enc)),
            max_keys: Some(max as i32),
            key_count: Some(count as i32),
            is_truncated: Some(next.is_some()),
            next_continuation_token: next
                .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)),
            continuation_token: i.continuation_token.clone(),
            start_after: i.start_after.clone().map(|s| url_encode(&s, enc)),
            contents: Some(contents),
            common_prefixes: common_prefixes(prefixes, enc),
            encoding_type: i.encoding_type.clone(),
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let enc = url_encoded(i.encoding_type.as_ref());
        let max = i.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = i.prefix.clone().unwrap_or_default();
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let (contents, prefixes, next) = list_keys(
            b,
            &prefix,
            i.delimiter.as_deref(),
            i.marker.as_deref(),
            max,
            |k, v| object_entry(k, v, enc),
        );
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(url_encode(&prefix, enc)),
            delimiter: i.delimiter.clone(),
            marker: i.marker.clone(),
            max_keys: Some(max as i32),
            is_truncated: Some(next.is_some()),
            next_marker: if i.delimiter.is_some() { next } else { None },
            contents: Some(contents),
            common_prefixes: common_prefixes(prefixes, enc),
            encoding_type: i.encoding_type.clone(),
            ..Default::default()
        }))
    }
}

/// The `CommonPrefixes` of a listing (absent when empty, as S3 answers).
pub(super) fn common_prefixes(prefixes: Vec<String>, enc: bool) -> Option<Vec<CommonPrefix>> {
    (!prefixes.is_empty()).then(|| {
        prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(url_encode(&p, enc)),
            })
            .collect()
    })
}

/// An entry of ListObjects(V2).
pub(super) fn object_entry(k: &str, v: &Version, enc: bool) -> Object {
    Object {
        key: Some(url_encode(k, enc)),
        size: Some(v.size as i64),
        e_tag: Some(etag_of(v)),
        last_modified: Some(ts(v.modified)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        checksum_algorithm: (!v.checksums.is_empty()).then(|| {
            v.checksums
                .keys()
                .map(|a| ChecksumAlgorithm::from(a.clone()))
                .collect()
        }),
        ..Default::default()
    }
}

/// Keys under `prefix` after `after`, rolled up at `delimiter`; the latest version
/// of each (delete markers hide a key). Returns objects, common prefixes and the
/// key to continue after when truncated.
pub(super) fn list_keys<T>(
    b: &super::state::Bucket,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
    make: impl Fn(&str, &Version) -> T,
) -> (Vec<T>, Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last_key: Option<String> = None;
    let start = match after {
        Some(a) if a >= prefix => a.to_string(),
        _ => prefix.to_string(),
    };
    for (k, vs) in b.objects.range(start..) {
        if !k.starts_with(prefix) {
            break;
        }
        if after.is_some_and(|a| k.as_str() <= a) {
            continue;
        }
        let Some(v) = vs.last().filter(|v| !v.delete_marker) else {
            continue;
        };
        if let Some(d) = delimiter.filter(|d| !d.is_empty())
            && let Some(pos) = k[prefix.len()..].find(d)
        {
            let p = k[..prefix.len() + pos + d.len()].to_string();
            if prefixes.last() == Some(&p) || after.is_some_and(|a| a.starts_with(&p)) {
                continue;
            }
            if out.len() + prefixes.len() >= max {
                return (out, prefixes, last_key);
            }
            // Continue after everything under this prefix.
            last_key = Some(format!("{p}\u{10ffff}"));
            prefixes.push(p);
            continue;
        }
        if out.len() + prefixes.len() >= max {
            return (out, prefixes, last_key);
        }
        out.push(make(k, v));
        last_key = Some(k.clone());
    }
    (out, prefixes, None)
}
