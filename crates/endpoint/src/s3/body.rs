//! Object bodies: streamed to blob files through a blocking writer that computes
//! MD5 and the requested checksums and syncs the blob and its directory, read
//! back in chunks, copied by range; server-side encryption with customer keys.

use super::common::*;
use super::state::Version;
use crate::b64;
use bytes::Bytes;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use pantstack_awsproto::sigv4::hex;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// The checksum algorithms a request asks for, upper-case.
#[derive(Default, Clone)]
pub(super) struct Wanted {
    pub(super) algorithms: Vec<String>,
    pub(super) expected: BTreeMap<String, String>,
    content_md5: Option<String>,
    /// The signed `x-amz-content-sha256` when it is a hash (lower-case hex):
    /// the body must have it.
    content_sha256: Option<String>,
}

impl Wanted {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
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
    pub(super) fn take_trailer(&mut self, trailer: Option<&s3s::TrailingHeaders>) {
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

pub(super) enum Hasher {
    Crc(crc_fast::Digest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub(super) fn new(a: &str) -> Option<Hasher> {
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
    pub(super) fn update(&mut self, d: &[u8]) {
        match self {
            Hasher::Crc(c, _) => c.update(d),
            Hasher::Sha1(h) => h.update(d),
            Hasher::Sha256(h) => h.update(d),
        }
    }
    pub(super) fn finish(self) -> String {
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
pub(super) type Hashed = (u64, [u8; 16], Vec<(String, String)>, Option<String>);

/// A blob as written.
pub(super) struct Written {
    /// The blob file (empty when the data is inline).
    pub(super) blob: String,
    pub(super) inline: Option<super::state::Inline>,
    pub(super) size: u64,
    pub(super) md5: [u8; 16],
    pub(super) checksums: BTreeMap<String, String>,
}

/// Streams a request body into a new blob (synced with its directory) while
/// hashing it. Checks Content-MD5 and any checksum the request carried.
pub(super) async fn write_blob(
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
pub(super) const INLINE_MAX: i64 = 64 * 1024;

/// The SSE-C of a copy: of its destination and of its source (a partial set on
/// either side is the partial one).
pub(super) fn copy_sse_c(
    dest: [Option<&String>; 3],
    source: [Option<&String>; 3],
) -> super::config::SseC {
    use super::config::SseC;
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
pub(super) fn sse_c_not_applicable(given: super::config::SseC) -> S3Result<()> {
    given.refuse(s3_error!(
        InvalidRequest,
        "The encryption parameters are not applicable to this object."
    ))
}

/// `x-amz-copy-source-range: bytes=first-last` within an object of `size`
/// bytes: (offset, length).
pub(super) fn copy_range(r: &str, size: u64) -> S3Result<(u64, u64)> {
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
pub(super) fn copy_part(
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
            let data = &inline.0;
            let end = (start + len).min(data.len() as u64) as usize;
            feed(&data[(start as usize).min(end)..end], &mut out)?;
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
pub(super) fn sha256_mismatch() -> S3Error {
    let e = crate::error::xamz_sha256_mismatch();
    let mut err = S3Error::with_message(S3ErrorCode::Custom(e.code.into()), e.message);
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

/// The answer to a body that could not be read: s3s's own check of the
/// signed payload hash (`Sha256Mismatch`) is S3's `XAmzContentSHA256Mismatch`.
pub(super) fn body_error(e: &str) -> S3Error {
    if e.contains("Sha256Mismatch") {
        return sha256_mismatch();
    }
    s3_error!(IncompleteBody, "the request body could not be read: {e}")
}

/// Checks Content-MD5 and the checksums the request carried (headers or trailer).
pub(super) fn verify_sums(
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
pub(super) async fn read_inline(
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

/// `len` bytes at `offset` of an object's blob file, opened while the request
/// was authorized (under the state's lock): what a GetObject answer sends,
/// whatever happens to the object afterwards (a new version is a new file; a
/// file unlinked by a delete stays readable through this descriptor). Put in
/// the answer's extensions so the connection can `sendfile` it
/// (`http::zerocopy`); the body reads the same file otherwise.
#[derive(Clone, Debug)]
pub(crate) struct FileRange {
    pub(crate) file: Arc<std::fs::File>,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// `len` bytes of an object's data from `offset`: its inline data or its blob
/// file (`file`, opened when the request was authorized).
pub(super) fn body_of(
    v: &Version,
    file: Option<&Arc<std::fs::File>>,
    offset: u64,
    len: u64,
) -> Option<StreamingBlob> {
    if let Some(data) = &v.inline {
        let raw = &data.0;
        let end = (offset + len).min(raw.len() as u64) as usize;
        let start = (offset as usize).min(end);
        // A reference to the stored bytes, not a copy.
        let bytes = raw.slice(start..end);
        return Some(StreamingBlob::wrap(futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes) },
        )));
    }
    file.map(|f| read_file(f.clone(), offset, len))
}

/// Streams `len` bytes of an open file from `offset`, in chunks read on a
/// blocking thread once the body is first polled (a body that is sent another
/// way, or not at all, reads nothing).
pub(super) fn read_file(file: Arc<std::fs::File>, offset: u64, len: u64) -> StreamingBlob {
    type Chunks = tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>;
    enum Lazy {
        Start(Arc<std::fs::File>, u64, u64),
        Running(Chunks),
    }
    fn start(file: Arc<std::fs::File>, offset: u64, len: u64) -> Chunks {
        use std::os::unix::fs::FileExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tokio::task::spawn_blocking(move || {
            let mut at = offset;
            let end = offset + len;
            while at < end {
                let n = ((end - at) as usize).min(CHUNK);
                let mut buf = vec![0u8; n];
                if let Err(e) = file.read_exact_at(&mut buf, at) {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
                at += n as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
        });
        rx
    }
    let stream = futures_util::stream::unfold(Lazy::Start(file, offset, len), |state| async move {
        let mut rx = match state {
            Lazy::Start(file, offset, len) => start(file, offset, len),
            Lazy::Running(rx) => rx,
        };
        rx.recv().await.map(|item| (item, Lazy::Running(rx)))
    });
    StreamingBlob::wrap(stream)
}

pub(super) fn etag_of(v: &Version) -> ETag {
    ETag::Strong(v.etag.clone())
}

/// The Content-Encoding S3 stores: the request's codings without `aws-chunked`,
/// the transfer framing of the body (SigV4 streaming docs: S3 stores the object
/// without it), so `gzip,aws-chunked` stores `gzip` and `aws-chunked` nothing.
pub(super) fn stored_encoding(v: Option<&String>) -> Option<String> {
    let kept: Vec<&str> = v?
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The body read from an open file (when it is not sent with sendfile):
    /// the range asked for, in chunks, from the descriptor even once the file
    /// is unlinked.
    #[tokio::test]
    async fn a_file_body_reads_its_range_from_the_open_file() {
        let path = std::env::temp_dir().join(format!("file-body-{}", std::process::id()));
        let data: Vec<u8> = (0..(CHUNK * 2 + 100)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        for (offset, len) in [(0, data.len()), (7, CHUNK + 1), (data.len() - 1, 1), (5, 0)] {
            let mut body = read_file(file.clone(), offset as u64, len as u64);
            let mut got = Vec::new();
            while let Some(chunk) = body.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            assert!(got == data[offset..offset + len], "{offset}+{len}");
        }
        // A file shorter than the range is an error, not a short body.
        let mut body = read_file(file, (data.len() - 3) as u64, 10);
        assert!(body.next().await.unwrap().is_err());
    }
}
