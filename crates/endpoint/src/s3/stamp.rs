//! Timestamps of S3 DTOs as milliseconds since the epoch, and back.

use crate::Core;
use super::state::{Objects, Op, Part, State, Upload, Version, Versioning};
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use pantstack_awsproto::sigv4::hex;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use crate::b64;

pub(crate) fn ts(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn ms_of(t: &Timestamp) -> u64 {
    let odt: time::OffsetDateTime = t.clone().into();
    (odt.unix_timestamp_nanos() / 1_000_000).max(0) as u64
}
