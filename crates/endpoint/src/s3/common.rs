//! What every S3 operation shares: ids, the owner, the common errors, and the
//! bucket lookup.

use super::state::{Bucket, Objects};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

/// Read size of object GETs.
pub(super) const CHUNK: usize = 1024 * 1024;
/// Smallest part but the last (AWS: 5 MiB).
pub const MIN_PART: u64 = 5 * 1024 * 1024;

pub(super) static IDS: AtomicU64 = AtomicU64::new(1);

/// A new id: time and a counter (blob names, version ids, upload ids).
pub(super) fn new_id() -> String {
    let n = IDS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}{n:06x}{:05x}", std::process::id() & 0xfffff)
}

/// A bucket by name, or NoSuchBucket.
pub(super) fn bucket<'a>(st: &'a Objects, name: &str) -> S3Result<&'a Bucket> {
    st.buckets.get(name).ok_or_else(|| no_bucket(name))
}

/// Whether a listing asked for `encoding-type=url`.
pub(super) fn url_encoded(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str() == "url")
}

/// The owner every object of the local cloud has.
pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("pantstack".into()),
        id: Some(crate::ACCOUNT.into()),
    }
}

pub(super) fn no_bucket(b: &str) -> S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist: {b}")
}

pub(super) fn no_key(k: &str) -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist: {k}")
}

pub(super) fn marker_error(code: S3ErrorCode, msg: &str, version_id: &str) -> S3Error {
    let mut e = S3Error::with_message(code, msg.to_string());
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(version_id) {
        h.insert("x-amz-version-id", v);
    }
    e.set_headers(h);
    e
}
