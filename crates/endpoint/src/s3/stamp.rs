//! Timestamps of S3 DTOs as milliseconds since the epoch, and back.

use s3s::dto::*;
use std::time::{Duration, UNIX_EPOCH};

pub(crate) fn ts(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn ms_of(t: &Timestamp) -> u64 {
    let odt: time::OffsetDateTime = t.clone().into();
    (odt.unix_timestamp_nanos() / 1_000_000).max(0) as u64
}
