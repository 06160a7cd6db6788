//! What S3 reads from and writes to HTTP headers beside the DTOs: the request's
//! content encodings, the request-id headers of every answer, conditional
//! requests (`If-Match`, `If-None-Match`, `If-(Un)Modified-Since`), copy sources,
//! version selection and checksum fields.

use super::body::stored_encoding;
use super::common::*;
use super::stamp::*;
use super::state::Version;
use crate::b64;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::collections::BTreeMap;

/// Prepares an S3 request's head for s3s: SDKs send `Content-Encoding: gzip` and
/// `Content-Encoding: aws-chunked` as two fields, which s3s refuses as a
/// duplicate; they become one list (RFC 9110 §5.3), which SigV4 canonicalizes
/// the same way (values joined with commas).
pub fn prepare_request(headers: &mut http::HeaderMap) {
    let name = http::header::CONTENT_ENCODING;
    if headers.get_all(&name).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<String> = headers
        .get_all(&name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .collect();
    if let Ok(v) = http::HeaderValue::from_str(&joined.join(",")) {
        headers.insert(name, v);
    }
}

/// Stamps an S3 answer with the ids S3 gives every response.
pub fn stamp_response(headers: &mut http::HeaderMap, request_id: &str) {
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        headers.entry("x-amz-request-id").or_insert(v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&b64(request_id.as_bytes())) {
        headers.entry("x-amz-id-2").or_insert(v);
    }
}

pub(super) fn headers_of(
    cache_control: Option<&String>,
    content_disposition: Option<&String>,
    content_encoding: Option<&String>,
    content_language: Option<&String>,
    expires: Option<&Timestamp>,
    website_redirect: Option<&String>,
) -> BTreeMap<String, String> {
    let mut h = BTreeMap::new();
    let content_encoding = stored_encoding(content_encoding);
    for (k, v) in [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding.as_ref()),
        ("content-language", content_language),
    ] {
        if let Some(v) = v {
            h.insert(k.to_string(), v.clone());
        }
    }
    if let Some(e) = expires {
        h.insert("expires".into(), ms_of(e).to_string());
    }
    if let Some(w) = website_redirect {
        h.insert("website-redirect-location".into(), w.clone());
    }
    h
}

/// S3's conditional request rules (RFC 9110 order, as S3 applies them).
pub(super) fn check_conditions(
    v: &Version,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let matches =
        |c: &ETagCondition| c.is_any() || c.as_etag().is_some_and(|e| e.value() == v.etag);
    let modified_s = v.modified / 1000;
    let mut match_passed = false;
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        match_passed = true;
    }
    if !match_passed
        && let Some(t) = if_unmodified_since
        && modified_s > ms_of(t) / 1000
    {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let not_modified = if let Some(c) = if_none_match {
        matches(c)
    } else {
        if_modified_since.is_some_and(|t| modified_s <= ms_of(t) / 1000)
    };
    if not_modified {
        // A 304 carries the validators a 200 would (RFC 9110 §15.4.5).
        let mut e = S3Error::new(S3ErrorCode::NotModified);
        let mut h = http::HeaderMap::new();
        if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", v.etag)) {
            h.insert(http::header::ETAG, etag);
        }
        let mut date = Vec::new();
        if ts(modified_s * 1000)
            .format(TimestampFormat::HttpDate, &mut date)
            .is_ok()
            && let Ok(m) = http::HeaderValue::from_bytes(&date)
        {
            h.insert(http::header::LAST_MODIFIED, m);
        }
        e.set_headers(h);
        return Err(e);
    }
    Ok(())
}

/// The write conditions of PutObject and CompleteMultipartUpload, checked under
/// the state's lock with the write (S3 user guide, conditional writes):
/// `If-None-Match: *` fails with 412 when the key has an object; `If-Match`
/// fails with 404 NoSuchKey when it has none (or a delete marker) and 412 when
/// its ETag differs. S3 takes only `*` in a write's If-None-Match: an ETag there
/// is 501 NotImplemented (PutObject API reference; aws/aws-sdk-ruby#3144 shows
/// S3's answer).
pub(super) fn check_write(
    b: &super::state::Bucket,
    key: &str,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let current = b.latest(key).filter(|v| !v.delete_marker);
    let failed = || {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    };
    if let Some(c) = if_none_match {
        if !c.is_any() {
            return Err(s3_error!(
                NotImplemented,
                "A header you provided implies functionality that is not implemented: If-None-Match takes only *"
            ));
        }
        if current.is_some() {
            return Err(failed());
        }
    }
    if let Some(c) = if_match {
        let Some(v) = current else {
            return Err(no_key(key));
        };
        if !(c.is_any() || c.as_etag().is_some_and(|e| e.value() == v.etag)) {
            return Err(failed());
        }
    }
    Ok(())
}

/// The source version of a copy (CopyObject, UploadPartCopy) with its
/// copy-source conditions checked: `[if-match, if-none-match]`,
/// `[if-modified-since, if-unmodified-since]`; a source that was not modified
/// is a failed precondition for a copy, not a 304.
pub(super) fn copy_source(
    b: &super::state::Bucket,
    key: &str,
    version_id: Option<&str>,
    etags: [Option<&ETagCondition>; 2],
    times: [Option<&Timestamp>; 2],
) -> S3Result<Version> {
    let v = pick(b, key, version_id.map(str::to_string).as_ref())?.clone();
    check_conditions(&v, etags[0], etags[1], times[0], times[1]).map_err(|e| {
        if *e.code() == S3ErrorCode::NotModified {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        } else {
            e
        }
    })?;
    Ok(v)
}

/// Picks the version a GET/HEAD addresses; refuses delete markers as S3 does.
pub(super) fn pick<'a>(
    b: &'a super::state::Bucket,
    key: &str,
    version_id: Option<&String>,
) -> S3Result<&'a Version> {
    match version_id {
        Some(id) => {
            let v = b
                .version(key, id)
                .ok_or_else(|| s3_error!(NoSuchVersion, "The specified version does not exist."))?;
            if v.delete_marker {
                return Err(marker_error(
                    S3ErrorCode::MethodNotAllowed,
                    "The specified method is not allowed against this resource.",
                    &v.version_id,
                ));
            }
            Ok(v)
        }
        None => {
            let v = b.latest(key).ok_or_else(|| no_key(key))?;
            if v.delete_marker {
                return Err(marker_error(
                    S3ErrorCode::NoSuchKey,
                    "The specified key does not exist.",
                    &v.version_id,
                ));
            }
            Ok(v)
        }
    }
}

pub(super) fn checksum_fields(v: &Version, want: bool) -> [Option<String>; 5] {
    let g = |a: &str| {
        if want {
            v.checksums.get(a).cloned()
        } else {
            None
        }
    };
    [
        g("CRC32"),
        g("CRC32C"),
        g("SHA1"),
        g("SHA256"),
        g("CRC64NVME"),
    ]
}

pub(super) fn url_encode(s: &str, on: bool) -> String {
    if on {
        pantstack_awsproto::sigv4::uri_encode(s, true)
    } else {
        s.to_string()
    }
}

pub(super) fn checksum_fields_of(c: &BTreeMap<String, String>) -> [Option<String>; 5] {
    let g = |a: &str| c.get(a).cloned();
    [
        g("CRC32"),
        g("CRC32C"),
        g("SHA1"),
        g("SHA256"),
        g("CRC64NVME"),
    ]
}
