//! S3 over the `s3s` crate: s3s parses requests (REST routes, XML, SigV4 in header,
//! presigned and aws-chunked forms, trailers) and renders responses; this file is
//! the storage behind it. Object bodies stream through a blocking writer that
//! computes MD5 and the requested checksums and syncs the blob and its directory;
//! only then is the op journaled and the request answered.

use crate::Core;
use crate::s3::{Objects, Op, Part, Upload, Version, Versioning};
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

/// Read size of object GETs.
const CHUNK: usize = 1024 * 1024;
/// Smallest part but the last (AWS: 5 MiB).
pub const MIN_PART: u64 = 5 * 1024 * 1024;

static IDS: AtomicU64 = AtomicU64::new(1);

/// A new id: time and a counter (blob names, version ids, upload ids).
fn new_id() -> String {
    let n = IDS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}{n:06x}{:05x}", std::process::id() & 0xfffff)
}

pub(crate) fn ts(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn ms_of(t: &Timestamp) -> u64 {
    let odt: time::OffsetDateTime = t.clone().into();
    (odt.unix_timestamp_nanos() / 1_000_000).max(0) as u64
}

use crate::b64;

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
    fn dir(&self) -> &Path {
        &self.core.objects_dir
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.core.s3.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals ops applied under the lock, waits until durable, then deletes what
    /// they freed.
    async fn commit(&self, rx: crate::journal::Durable, garbage: Vec<String>) -> S3Result<()> {
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
    fn complete_output(
        &self,
        bucket: &str,
        key: &str,
        etag: String,
        version_id: Option<String>,
        sse: Option<&crate::s3::Sse>,
    ) -> S3Response<CompleteMultipartUploadOutput> {
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            crate::s3config::sse_fields(sse);
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
    fn completed_again(
        &self,
        b: &crate::s3::Bucket,
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
    /// bucket's default (`s3config::sse_of`).
    fn sse_for(
        &self,
        name: &str,
        algorithm: Option<&ServerSideEncryption>,
        kms_key: Option<&String>,
        bucket_key: Option<bool>,
        customer: crate::s3config::SseC,
    ) -> S3Result<Option<crate::s3::Sse>> {
        let st = self.state();
        let b = bucket(&st, name)?;
        crate::s3config::sse_of(
            algorithm,
            kms_key,
            bucket_key,
            customer,
            b.config.encryption.as_ref(),
            &self.core.region,
        )
    }

    /// Replaces part of a bucket's configuration, journaled.
    async fn configure(
        &self,
        name: &str,
        change: impl FnOnce(&mut crate::s3::BucketConfig),
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
    fn config_part<T>(
        &self,
        name: &str,
        part: impl FnOnce(&crate::s3::BucketConfig) -> Option<T>,
        unset: S3Error,
    ) -> S3Result<T> {
        let st = self.state();
        part(&bucket(&st, name)?.config).ok_or(unset)
    }

    /// Replaces the tags of an object version (the latest without a version id).
    async fn set_tags(
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
    fn apply(&self, st: &mut Objects, ops: Vec<Op>) -> (crate::journal::Durable, Vec<String>) {
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

/// A bucket by name, or NoSuchBucket.
fn bucket<'a>(st: &'a Objects, name: &str) -> S3Result<&'a crate::s3::Bucket> {
    st.buckets.get(name).ok_or_else(|| no_bucket(name))
}

/// Whether a listing asked for `encoding-type=url`.
fn url_encoded(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str() == "url")
}

/// The owner every object of the local cloud has.
fn owner() -> Owner {
    Owner {
        display_name: Some("pantstack".into()),
        id: Some(crate::ACCOUNT.into()),
    }
}

fn no_bucket(b: &str) -> S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist: {b}")
}

fn no_key(k: &str) -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist: {k}")
}

fn marker_error(code: S3ErrorCode, msg: &str, version_id: &str) -> S3Error {
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

/// The checksum algorithms a request asks for, upper-case.
#[derive(Default, Clone)]
struct Wanted {
    algorithms: Vec<String>,
    expected: BTreeMap<String, String>,
    content_md5: Option<String>,
    /// The signed `x-amz-content-sha256` when it is a hash (lower-case hex):
    /// the body must have it.
    content_sha256: Option<String>,
}

impl Wanted {
    #[allow(clippy::too_many_arguments)]
    fn new(
        algorithm: Option<&ChecksumAlgorithm>,
        crc32: Option<&String>,
        crc32c: Option<&String>,
        sha1: Option<&String>,
        sha256: Option<&String>,
        crc64: Option<&String>,
        md5: Option<&String>,
        headers: &http::HeaderMap,
    ) -> Wanted {
        let mut w = Wanted {
            content_md5: md5.cloned(),
            content_sha256: headers
                .get("x-amz-content-sha256")
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
                .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())),
            ..Wanted::default()
        };
        for (name, v) in [
            ("CRC32", crc32),
            ("CRC32C", crc32c),
            ("SHA1", sha1),
            ("SHA256", sha256),
            ("CRC64NVME", crc64),
        ] {
            if let Some(v) = v {
                w.expected.insert(name.into(), v.clone());
                w.algorithms.push(name.into());
            }
        }
        if let Some(a) = algorithm {
            w.algorithms.push(a.as_str().to_ascii_uppercase());
        }
        // Declared trailers: `x-amz-trailer: x-amz-checksum-crc32`.
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for name in t.split(',') {
                if let Some(a) = name.trim().strip_prefix("x-amz-checksum-") {
                    w.algorithms.push(a.to_ascii_uppercase());
                }
            }
        }
        w.algorithms.sort();
        w.algorithms.dedup();
        w
    }

    /// Values from the trailer, once the body is read.
    fn take_trailer(&mut self, trailer: Option<&s3s::TrailingHeaders>) {
        if let Some(h) = trailer.and_then(|t| t.take()) {
            for (k, v) in &h {
                if let (Some(a), Ok(v)) = (k.as_str().strip_prefix("x-amz-checksum-"), v.to_str()) {
                    self.expected.insert(a.to_ascii_uppercase(), v.to_string());
                    if !self.algorithms.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                        self.algorithms.push(a.to_ascii_uppercase());
                    }
                }
            }
        }
    }
}

enum Hasher {
    Crc(crc_fast::Digest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(a: &str) -> Option<Hasher> {
        use crc_fast::CrcAlgorithm::*;
        Some(match a {
            "CRC32" => Hasher::Crc(crc_fast::Digest::new(Crc32IsoHdlc), 4),
            "CRC32C" => Hasher::Crc(crc_fast::Digest::new(Crc32Iscsi), 4),
            "CRC64NVME" => Hasher::Crc(crc_fast::Digest::new(Crc64Nvme), 8),
            "SHA1" => Hasher::Sha1(sha1::Sha1::new()),
            "SHA256" => Hasher::Sha256(sha2::Sha256::new()),
            _ => return None,
        })
    }
    fn update(&mut self, d: &[u8]) {
        match self {
            Hasher::Crc(c, _) => c.update(d),
            Hasher::Sha1(h) => h.update(d),
            Hasher::Sha256(h) => h.update(d),
        }
    }
    fn finish(self) -> String {
        match self {
            Hasher::Crc(c, 4) => b64(&(c.finalize() as u32).to_be_bytes()),
            Hasher::Crc(c, _) => b64(&c.finalize().to_be_bytes()),
            Hasher::Sha1(h) => b64(&h.finalize()),
            Hasher::Sha256(h) => b64(&h.finalize()),
        }
    }
}

/// Size, MD5, checksums and (when asked) the hex SHA-256 of what the blob
/// writer wrote.
type Hashed = (u64, [u8; 16], Vec<(String, String)>, Option<String>);

/// A blob as written.
struct Written {
    /// The blob file (empty when the data is inline).
    blob: String,
    inline: Option<String>,
    size: u64,
    md5: [u8; 16],
    checksums: BTreeMap<String, String>,
}

/// Streams a request body into a new blob (synced with its directory) while
/// hashing it. Checks Content-MD5 and any checksum the request carried.
async fn write_blob(
    dir: &Path,
    body: Option<StreamingBlob>,
    mut wanted: Wanted,
    trailer: Option<&s3s::TrailingHeaders>,
) -> S3Result<Written> {
    let blob = new_id();
    let path = dir.join(&blob);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let algorithms = wanted.algorithms.clone();
    let payload_hash = wanted.content_sha256.is_some();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<Hashed> {
        let mut payload = payload_hash.then(sha2::Sha256::new);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut md5 = Md5::new();
        let mut hashers: Vec<(String, Hasher)> = algorithms
            .iter()
            .filter_map(|a| Hasher::new(a).map(|h| (a.clone(), h)))
            .collect();
        let mut size = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            md5.update(&chunk);
            if let Some(p) = payload.as_mut() {
                p.update(&chunk);
            }
            for (_, h) in &mut hashers {
                h.update(&chunk);
            }
            f.write_all(&chunk)?;
            size += chunk.len() as u64;
        }
        f.sync_all()?;
        if let Some(d) = path.parent() {
            std::fs::File::open(d)?.sync_all()?;
        }
        let sums = hashers.into_iter().map(|(a, h)| (a, h.finish())).collect();
        let payload = payload.map(|p| hex(&p.finalize()));
        Ok((size, md5.finalize().into(), sums, payload))
    });
    let mut failed = None;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
    }
    drop(tx);
    let result = writer
        .await
        .map_err(|e| s3_error!(InternalError, "blob writer: {e}"))?;
    let discard = || {
        let _ = std::fs::remove_file(dir.join(&blob));
    };
    if let Some(e) = failed {
        discard();
        return Err(body_error(&e));
    }
    let (size, md5, sums, payload) = match result {
        Ok(r) => r,
        Err(e) => {
            discard();
            return Err(s3_error!(InternalError, "cannot write the object: {e}"));
        }
    };
    let checksums: BTreeMap<String, String> = sums.into_iter().collect();
    if let Err(e) = verify_sums(&mut wanted, trailer, &md5, &checksums, payload.as_deref()) {
        discard();
        return Err(e);
    }
    Ok(Written {
        blob,
        inline: None,
        size,
        md5,
        checksums,
    })
}

/// Objects up to this size live in their journal record (one sync per PUT);
/// larger ones in blob files.
const INLINE_MAX: i64 = 64 * 1024;

/// The SSE-C of a copy: of its destination and of its source (a partial set on
/// either side is the partial one).
fn copy_sse_c(dest: [Option<&String>; 3], source: [Option<&String>; 3]) -> crate::s3config::SseC {
    use crate::s3config::SseC;
    let d = SseC::of(dest[0], dest[1], dest[2]);
    let s = SseC::of(source[0], source[1], source[2]);
    match (d, s) {
        (SseC::Partial, _) | (_, SseC::Partial) => SseC::Partial,
        (SseC::None, SseC::None) => SseC::None,
        _ => SseC::Full,
    }
}

/// SSE-C parameters on a read or a part: no object or upload here is SSE-C
/// encrypted (writes with SSE-C are refused), so S3's answer for an object not
/// encrypted with a customer key applies.
fn sse_c_not_applicable(given: crate::s3config::SseC) -> S3Result<()> {
    given.refuse(s3_error!(
        InvalidRequest,
        "The encryption parameters are not applicable to this object."
    ))
}

/// `x-amz-copy-source-range: bytes=first-last` within an object of `size`
/// bytes: (offset, length).
fn copy_range(r: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (a, b) = r
        .strip_prefix("bytes=")
        .and_then(|x| x.split_once('-'))
        .ok_or_else(bad)?;
    let (first, last): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if first > last {
        return Err(bad());
    }
    if last >= size {
        return Err(s3_error!(
            InvalidArgument,
            "Range specified is not valid for source object of size: {size}"
        ));
    }
    Ok((first, last - first + 1))
}

/// Copies `len` bytes at `start` of a version's data into a new synced blob:
/// its name, MD5 and the upload's checksum (if it has an algorithm).
fn copy_part(
    dir: &Path,
    v: &Version,
    start: u64,
    len: u64,
    algorithm: Option<String>,
) -> std::io::Result<(String, [u8; 16], BTreeMap<String, String>)> {
    let name = new_id();
    let path = dir.join(&name);
    let mut out = std::fs::File::create(&path)?;
    let mut md5 = Md5::new();
    let mut hasher = algorithm.as_deref().and_then(Hasher::new);
    let mut feed = |d: &[u8], out: &mut std::fs::File| -> std::io::Result<()> {
        md5.update(d);
        if let Some(h) = hasher.as_mut() {
            h.update(d);
        }
        out.write_all(d)
    };
    let result = (|| -> std::io::Result<()> {
        if let Some(inline) = &v.inline {
            let data = base64::engine::general_purpose::STANDARD
                .decode(inline)
                .map_err(|e| std::io::Error::other(format!("damaged inline object: {e}")))?;
            let end = (start + len).min(data.len() as u64) as usize;
            feed(&data[start as usize..end], &mut out)?;
        } else if let Some(blob) = &v.blob {
            let mut f = std::fs::File::open(dir.join(blob))?;
            f.seek(SeekFrom::Start(start))?;
            let mut left = len;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let n = f.read(&mut buf[..(left.min(CHUNK as u64) as usize)])?;
                if n == 0 {
                    return Err(std::io::Error::other(
                        "the source blob is shorter than its object",
                    ));
                }
                feed(&buf[..n], &mut out)?;
                left -= n as u64;
            }
        }
        out.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let mut sums = BTreeMap::new();
    if let (Some(a), Some(h)) = (algorithm, hasher) {
        sums.insert(a, h.finish());
    }
    Ok((name, md5.finalize().into(), sums))
}

/// S3's 400 `XAmzContentSHA256Mismatch`: the body is not the one signed.
fn sha256_mismatch() -> S3Error {
    let e = crate::error::xamz_sha256_mismatch();
    let mut err = S3Error::with_message(S3ErrorCode::Custom(e.code.into()), e.message);
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

/// The answer to a body that could not be read: s3s's own check of the
/// signed payload hash (`Sha256Mismatch`) is S3's `XAmzContentSHA256Mismatch`.
fn body_error(e: &str) -> S3Error {
    if e.contains("Sha256Mismatch") {
        return sha256_mismatch();
    }
    s3_error!(IncompleteBody, "the request body could not be read: {e}")
}

/// Checks Content-MD5 and the checksums the request carried (headers or trailer).
fn verify_sums(
    wanted: &mut Wanted,
    trailer: Option<&s3s::TrailingHeaders>,
    md5: &[u8; 16],
    checksums: &BTreeMap<String, String>,
    payload_sha256: Option<&str>,
) -> S3Result<()> {
    wanted.take_trailer(trailer);
    if let (Some(signed), Some(got)) = (&wanted.content_sha256, payload_sha256)
        && signed != got
    {
        return Err(sha256_mismatch());
    }
    if let Some(m) = &wanted.content_md5
        && *m != b64(md5)
    {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    for (a, expected) in &wanted.expected {
        match checksums.get(a) {
            Some(got) if got == expected => {}
            Some(_) => {
                return Err(s3_error!(
                    BadDigest,
                    "The {a} you specified did not match the calculated checksum."
                ));
            }
            None => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Checksum algorithm {a} is not supported."
                ));
            }
        }
    }
    Ok(())
}

/// Reads a small body into memory, hashing it; checks it like `write_blob`.
async fn read_inline(
    body: Option<StreamingBlob>,
    mut wanted: Wanted,
    trailer: Option<&s3s::TrailingHeaders>,
) -> S3Result<(Vec<u8>, [u8; 16], BTreeMap<String, String>)> {
    let mut data = Vec::new();
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let c = chunk.map_err(|e| body_error(&e.to_string()))?;
            if data.len() + c.len() > INLINE_MAX as usize {
                return Err(s3_error!(
                    IncompleteBody,
                    "the body is longer than its Content-Length"
                ));
            }
            data.extend_from_slice(&c);
        }
    }
    let md5: [u8; 16] = Md5::digest(&data).into();
    let mut checksums = BTreeMap::new();
    for a in &wanted.algorithms {
        if let Some(mut h) = Hasher::new(a) {
            h.update(&data);
            checksums.insert(a.clone(), h.finish());
        }
    }
    let payload = wanted
        .content_sha256
        .is_some()
        .then(|| pantstack_awsproto::sigv4::sha256_hex(&data));
    verify_sums(&mut wanted, trailer, &md5, &checksums, payload.as_deref())?;
    Ok((data, md5, checksums))
}

/// `len` bytes of an object's data from `offset`: its inline data or its blob.
fn body_of(dir: &Path, v: &Version, offset: u64, len: u64) -> Option<StreamingBlob> {
    if let Some(data) = &v.inline {
        let raw = crate::unb64(data)?;
        let end = (offset + len).min(raw.len() as u64) as usize;
        let start = (offset as usize).min(end);
        let bytes = Bytes::copy_from_slice(&raw[start..end]);
        return Some(StreamingBlob::wrap(futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes) },
        )));
    }
    v.blob
        .as_ref()
        .map(|blob| read_blob(dir.join(blob), offset, len))
}

/// Streams `len` bytes of a blob from `offset`.
fn read_blob(path: PathBuf, offset: u64, len: u64) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if let Err(e) = f.seek(SeekFrom::Start(offset)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let n = (left as usize).min(CHUNK);
            let mut buf = vec![0u8; n];
            if let Err(e) = f.read_exact(&mut buf) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            left -= n as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    StreamingBlob::wrap(stream)
}

fn etag_of(v: &Version) -> ETag {
    ETag::Strong(v.etag.clone())
}

/// The Content-Encoding S3 stores: the request's codings without `aws-chunked`,
/// the transfer framing of the body (SigV4 streaming docs: S3 stores the object
/// without it), so `gzip,aws-chunked` stores `gzip` and `aws-chunked` nothing.
fn stored_encoding(v: Option<&String>) -> Option<String> {
    let kept: Vec<&str> = v?
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

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

fn headers_of(
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
fn check_conditions(
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
fn check_write(
    b: &crate::s3::Bucket,
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
fn copy_source(
    b: &crate::s3::Bucket,
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
fn pick<'a>(
    b: &'a crate::s3::Bucket,
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

fn checksum_fields(v: &Version, want: bool) -> [Option<String>; 5] {
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

fn url_encode(s: &str, on: bool) -> String {
    if on {
        pantstack_awsproto::sigv4::uri_encode(s, true)
    } else {
        s.to_string()
    }
}

#[async_trait::async_trait]
impl S3 for S3Svc {
    async fn create_bucket(
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

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let i = req.input;
        let tags = crate::s3config::tag_set_in(&i.tagging.tag_set, 10)?;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_ref(), tags)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = req.input;
        let st = self.state();
        let b = bucket(&st, &i.bucket)?;
        let v = pick(b, &i.key, i.version_id.as_ref())?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: crate::s3config::tag_set(&v.tags),
            version_id: b.versioning.ever_enabled().then(|| v.version_id.clone()),
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = req.input;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_ref(), BTreeMap::new())
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
    }

    async fn put_bucket_policy(
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

    async fn get_bucket_policy(
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

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.configure(&req.input.bucket, |c| c.policy = None)
            .await?;
        let mut r = S3Response::new(DeleteBucketPolicyOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let i = req.input;
        let rules = crate::s3config::cors_in(&i.cors_configuration)?;
        self.configure(&i.bucket, |c| c.cors = Some(rules)).await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    async fn get_bucket_cors(
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
            cors_rules: Some(crate::s3config::cors_out(&rules)),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.configure(&req.input.bucket, |c| c.cors = None).await?;
        let mut r = S3Response::new(DeleteBucketCorsOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    async fn put_bucket_lifecycle_configuration(
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
        let rules = crate::s3config::lifecycle_in(conf)?;
        self.configure(&i.bucket, |c| c.lifecycle = Some(rules))
            .await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_lifecycle_configuration(
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
            rules: Some(crate::s3config::lifecycle_out(&rules)),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.configure(&req.input.bucket, |c| c.lifecycle = None)
            .await?;
        let mut r = S3Response::new(DeleteBucketLifecycleOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let i = req.input;
        let sse = crate::s3config::encryption_in(
            &i.server_side_encryption_configuration,
            &self.core.region,
        )?;
        self.configure(&i.bucket, |c| c.encryption = Some(sse))
            .await?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let st = self.state();
        let b = bucket(&st, &req.input.bucket)?;
        // Every bucket has default encryption (SSE-S3 unless set otherwise).
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(crate::s3config::encryption_out(
                b.config.encryption.as_ref(),
            )),
        }))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.configure(&req.input.bucket, |c| c.encryption = None)
            .await?;
        let mut r = S3Response::new(DeleteBucketEncryptionOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let i = req.input;
        let tags = crate::s3config::tag_set_in(&i.tagging.tag_set, 50)?;
        self.configure(&i.bucket, |c| c.tags = Some(tags)).await?;
        let mut r = S3Response::new(PutBucketTaggingOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tags = self.config_part(
            &req.input.bucket,
            |c| c.tags.clone(),
            s3_error!(NoSuchTagSet, "The TagSet does not exist"),
        )?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: crate::s3config::tag_set(&tags),
        }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.configure(&req.input.bucket, |c| c.tags = None).await?;
        let mut r = S3Response::new(DeleteBucketTaggingOutput::default());
        r.status = Some(http::StatusCode::NO_CONTENT);
        Ok(r)
    }

    async fn head_bucket(
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

    async fn get_bucket_location(
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

    async fn list_buckets(
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

    async fn delete_bucket(
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

    async fn put_bucket_versioning(
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

    async fn get_bucket_versioning(
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

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let i = req.input;
        let tags = crate::s3config::tagging_header(i.tagging.as_ref())?;
        let sse = self.sse_for(
            &i.bucket,
            i.server_side_encryption.as_ref(),
            i.ssekms_key_id.as_ref(),
            i.bucket_key_enabled,
            crate::s3config::SseC::of(
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
            let (data, md5, checksums) =
                read_inline(i.body, wanted, req.trailing_headers.as_ref()).await?;
            Written {
                blob: String::new(),
                inline: Some(b64(&data)),
                size: data.len() as u64,
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
            crate::s3config::sse_fields(sse.as_ref());
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

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        sse_c_not_applicable(crate::s3config::SseC::of(
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
            (v, b.versioning.ever_enabled())
        };
        let (v, versioned) = v;
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
        let body = body_of(self.dir(), &v, start, len);
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
            crate::s3config::sse_fields(v.sse.as_ref());
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
        Ok(resp)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        sse_c_not_applicable(crate::s3config::SseC::of(
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
            crate::s3config::sse_fields(v.sse.as_ref());
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

    async fn delete_object(
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

    async fn delete_objects(
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

    async fn copy_object(
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
            crate::s3config::tagging_header(i.tagging.as_ref())?
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
            crate::s3config::sse_fields(version.sse.as_ref());
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

    async fn list_objects_v2(
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

    async fn list_objects(
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

    async fn list_object_versions(
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

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let upload_id = new_id();
        let tags = crate::s3config::tagging_header(i.tagging.as_ref())?;
        let sse = self.sse_for(
            &i.bucket,
            i.server_side_encryption.as_ref(),
            i.ssekms_key_id.as_ref(),
            i.bucket_key_enabled,
            crate::s3config::SseC::of(
                i.sse_customer_algorithm.as_ref(),
                i.sse_customer_key.as_ref(),
                i.sse_customer_key_md5.as_ref(),
            ),
        )?;
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) =
            crate::s3config::sse_fields(sse.as_ref());
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

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        sse_c_not_applicable(crate::s3config::SseC::of(
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
            crate::s3config::sse_fields(sse.as_ref());
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

    async fn upload_part_copy(
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

    async fn complete_multipart_upload(
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
            versioning.ever_enabled().then(|| version.version_id.clone()),
            version.sse.as_ref(),
        ))
    }

    async fn abort_multipart_upload(
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

    async fn list_parts(
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

    async fn list_multipart_uploads(
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

fn checksum_fields_of(c: &BTreeMap<String, String>) -> [Option<String>; 5] {
    let g = |a: &str| c.get(a).cloned();
    [
        g("CRC32"),
        g("CRC32C"),
        g("SHA1"),
        g("SHA256"),
        g("CRC64NVME"),
    ]
}

/// The op and response of deleting `key` (or one version of it).
fn delete_op(
    b: &crate::s3::Bucket,
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

/// The `CommonPrefixes` of a listing (absent when empty, as S3 answers).
fn common_prefixes(prefixes: Vec<String>, enc: bool) -> Option<Vec<CommonPrefix>> {
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
fn object_entry(k: &str, v: &Version, enc: bool) -> Object {
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
fn list_keys<T>(
    b: &crate::s3::Bucket,
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

/// Which host names address a bucket: `<bucket>.localhost` is virtual-hosted; an IP
/// address or `localhost` is path-style.
pub struct LocalHosts;

impl s3s::host::S3Host for LocalHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        if let Some(bucket) = name.strip_suffix(".localhost")
            && !bucket.is_empty()
        {
            return Ok(s3s::host::VirtualHost::new(host).with_bucket(bucket.to_ascii_lowercase()));
        }
        Ok(s3s::host::VirtualHost::new(host))
    }
}

/// SigV4 secrets for s3s: the local cloud's issued credentials.
pub struct Auth {
    pub core: Arc<Core>,
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.core.secret_of(access_key) {
            Some((_, secret)) => Ok(s3s::auth::SecretKey::from(secret.to_string())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records (get credentials with `eval \"$(pantstack aws-env)\"`)."
            )),
        }
    }
}

/// Identity-based policies for s3s: a unit's credentials reach only what its
/// policy allows (`iam`); anonymous requests are refused, as without a policy.
///
/// `check` runs on the parsed path before the input is parsed; the operations
/// whose authorization depends on their input (a version id, the keys of a batch,
/// a copy source) are authorized by their own methods below, from the input s3s
/// parsed and hands to the handler, never from the raw query or headers.
pub struct Access {
    pub core: Arc<Core>,
}

/// Operations authorized from their parsed input (each has a method below).
const BY_INPUT: &[&str] = &[
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "UploadPartCopy",
    "PutObject",
    "CreateMultipartUpload",
    "GetObjectTagging",
    "PutObjectTagging",
    "DeleteObjectTagging",
];

impl Access {
    /// The policy of the request's principal (None: unrestricted), or the refusal
    /// of a request without known credentials.
    fn policy_of(
        &self,
        creds: Option<&s3s::auth::Credentials>,
    ) -> S3Result<Option<(&str, Arc<crate::iam::Policy>)>> {
        let Some(creds) = creds else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let Some((principal, _)) = self.core.secret_of(&creds.access_key) else {
            return Err(s3_error!(AccessDenied, "Unknown access key"));
        };
        Ok(self.core.policy(principal).map(|p| (principal, p)))
    }

    /// Authorizes each (action, resource) as IAM evaluates one account: an
    /// explicit `Deny` in the bucket's policy refuses (whoever asks, `user`
    /// too); else an `Allow` of the identity policy (none: unrestricted) or of
    /// the bucket policy allows.
    fn authorize(
        &self,
        creds: Option<&s3s::auth::Credentials>,
        asked: impl FnOnce() -> Vec<(String, String)>,
    ) -> S3Result<()> {
        authorize(&self.core, creds, asked)
    }

    fn object(
        &self,
        creds: Option<&s3s::auth::Credentials>,
        op: &str,
        bucket: &str,
        key: &str,
        version: bool,
    ) -> S3Result<()> {
        self.authorize(creds, || {
            crate::iam::s3_request(op, Some(bucket), Some(key), version, None)
        })
    }
}

#[async_trait::async_trait]
impl s3s::access::S3Access for Access {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name();
        if BY_INPUT.contains(&op) {
            // Authenticated here, authorized by the operation's method.
            return self.policy_of(cx.credentials()).map(|_| ());
        }
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(&**bucket), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(&**bucket), Some(&**key)),
        };
        self.authorize(cx.credentials(), || {
            crate::iam::s3_request(op, bucket, key, false, None)
        })
    }

    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(req.credentials.as_ref(), "GetObject", &i.bucket, &i.key, v)
    }

    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(req.credentials.as_ref(), "HeadObject", &i.bucket, &i.key, v)
    }

    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "DeleteObject",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        // Authenticated here; each key is authorized by the handler, which
        // reports a refused key among the batch's errors, as S3 does.
        self.policy_of(req.credentials.as_ref()).map(|_| ())
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let tagged = i.tagging.as_ref().is_some_and(|t| !t.is_empty());
        self.authorize(req.credentials.as_ref(), || {
            tagging_too(
                crate::iam::s3_request("PutObject", Some(&i.bucket), Some(&i.key), false, None),
                tagged,
            )
        })
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let tagged = i.tagging.as_ref().is_some_and(|t| !t.is_empty());
        self.authorize(req.credentials.as_ref(), || {
            tagging_too(
                crate::iam::s3_request(
                    "CreateMultipartUpload",
                    Some(&i.bucket),
                    Some(&i.key),
                    false,
                    None,
                ),
                tagged,
            )
        })
    }

    async fn get_object_tagging(&self, req: &mut S3Request<GetObjectTaggingInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "GetObjectTagging",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "PutObjectTagging",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn delete_object_tagging(
        &self,
        req: &mut S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let v = i.version_id.is_some();
        self.object(
            req.credentials.as_ref(),
            "DeleteObjectTagging",
            &i.bucket,
            &i.key,
            v,
        )
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let i = &req.input;
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = &i.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copy sources by access point or outpost are not served by the local cloud"
            ));
        };
        let source = (&**bucket, &**key, version_id.is_some());
        self.authorize(req.credentials.as_ref(), || {
            crate::iam::s3_request(
                "UploadPartCopy",
                Some(&i.bucket),
                Some(&i.key),
                false,
                Some(source),
            )
        })
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let (source, version_id) = match &i.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => (
                (&**bucket, &**key, version_id.is_some()),
                version_id.as_deref(),
            ),
            CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
                return Err(s3_error!(
                    NotImplemented,
                    "copy sources by access point or outpost are not served by the local cloud"
                ));
            }
        };
        let replace_tags = i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let tagged = replace_tags && i.tagging.as_ref().is_some_and(|t| !t.is_empty());
        // Copying a source's tags (the COPY directive) reads them:
        // s3:GetObjectTagging on the source, s3:PutObjectTagging on the copy.
        let copies_tags = !replace_tags && {
            let st = self.core.s3.lock().unwrap_or_else(|e| e.into_inner());
            st.buckets.get(source.0).is_some_and(|b| {
                let v = match version_id {
                    Some(id) => b.version(source.1, id),
                    None => b.latest(source.1),
                };
                v.is_some_and(|v| !v.tags.is_empty())
            })
        };
        self.authorize(req.credentials.as_ref(), || {
            let mut asked = tagging_too(
                crate::iam::s3_request(
                    "CopyObject",
                    Some(&i.bucket),
                    Some(&i.key),
                    false,
                    Some(source),
                ),
                tagged || copies_tags,
            );
            if copies_tags {
                let read = if source.2 {
                    "s3:GetObjectVersionTagging"
                } else {
                    "s3:GetObjectTagging"
                };
                asked.push((
                    read.into(),
                    format!("{}/{}", crate::iam::bucket_arn(source.0), source.1),
                ));
            }
            asked
        })
    }
}

/// A write that sets tags (`x-amz-tagging`) needs `s3:PutObjectTagging` too
/// (S3 API reference, PutObject: "To use this operation with tagging, you must
/// have the s3:PutObjectTagging permission").
fn tagging_too(mut asked: Vec<(String, String)>, tagged: bool) -> Vec<(String, String)> {
    if tagged && let Some((_, r)) = asked.first().cloned() {
        asked.push(("s3:PutObjectTagging".into(), r));
    }
    asked
}

/// Authorizes each (action, resource) of an S3 request as IAM evaluates one
/// account: an explicit `Deny` in the bucket's policy refuses (whoever asks,
/// `user` too); else an `Allow` of the identity policy (none: unrestricted) or
/// of the bucket policy allows.
fn authorize(
    core: &Core,
    creds: Option<&s3s::auth::Credentials>,
    asked: impl FnOnce() -> Vec<(String, String)>,
) -> S3Result<()> {
    let Some(creds) = creds else {
        return Err(s3_error!(AccessDenied, "Signature is required"));
    };
    let Some((principal, _)) = core.secret_of(&creds.access_key) else {
        return Err(s3_error!(AccessDenied, "Unknown access key"));
    };
    let policy = core.policy(principal);
    let asked = asked();
    let docs: Vec<Option<Arc<crate::policy_doc::PolicyDoc>>> = {
        let st = core.s3.lock().unwrap_or_else(|e| e.into_inner());
        if st.policies.is_empty() {
            Vec::new()
        } else {
            asked
                .iter()
                .map(|(_, r)| st.policies.get(crate::iam::bucket_of_arn(r)?).cloned())
                .collect()
        }
    };
    crate::policy_doc::authorize(
        principal,
        policy.as_deref(),
        &docs,
        &asked,
        &[
            "s3:GetBucketPolicy",
            "s3:PutBucketPolicy",
            "s3:DeleteBucketPolicy",
        ],
    )
    .map_err(|m| s3_error!(AccessDenied, "{m}"))
}

/// The S3 service of a core.
pub fn service(core: Arc<Core>) -> s3s::service::S3Service {
    let mut b = s3s::service::S3ServiceBuilder::new(S3Svc { core: core.clone() });
    b.set_host(LocalHosts);
    b.set_auth(Auth { core: core.clone() });
    b.set_access(Access { core });
    b.build()
}
