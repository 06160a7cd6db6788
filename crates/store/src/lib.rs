//! A crash-safe append-only log of records: what the local cloud's AWS endpoint
//! keeps its state in (a send, a put, a delete is one record).
//!
//! Each record is `len: u32 LE | crc32: u32 LE | payload`. `append` writes and
//! `fdatasync`s before it returns, so an acknowledged record survives `kill -9` and
//! power loss; `open` replays the log and cuts a torn tail (a record whose length or
//! checksum does not hold), so a half-written record is never seen.
//!
//! `journal` is the group commit around the log (many requests' records written
//! and synced at once, each answered only once its records are on disk; fail-stop
//! on a failed write) and its rewrite (compaction) into an image of the state.

#![forbid(unsafe_code)]

pub mod journal;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Records larger than this are refused (S3's 5 GiB objects go to their own files;
/// records hold metadata and queue messages).
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

const HEADER: usize = 8;

/// CRC-32 (IEEE, reflected, as zlib), with the CPU's carry-less multiply where it
/// has one (a 4 KiB record costs ~0.2 µs instead of ~6 µs table-driven).
pub fn crc32(data: &[u8]) -> u32 {
    // The algorithm is 32 bits wide: the u64 holds a u32.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32
}

/// Appends `payload` to `out` as one framed record (`len | crc32 | payload`), the
/// bytes `append_framed` writes.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    if payload.len() > MAX_RECORD {
        return Err(Error::TooLarge(payload.len()));
    }
    out.reserve(payload.len() + HEADER);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[derive(Debug)]
pub enum Error {
    Io(std::io::Error),
    TooLarge(usize),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::TooLarge(n) => write!(f, "record of {n} bytes exceeds {MAX_RECORD}"),
        }
    }
}

impl std::error::Error for Error {}

/// How appends reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Direct, synchronous block writes into preallocated space where the file
    /// system allows them, else buffered.
    Direct,
    /// Buffered append + `fdatasync`.
    Buffered,
}

/// A second handle for direct, synchronous writes, where the file system allows it.
fn direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
        .ok()
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Calls `each` for every intact record at the start of `data`; returns where
/// they end and how many there were.
fn scan(data: &[u8], each: &mut impl FnMut(&[u8])) -> (usize, usize) {
    let mut at = 0usize;
    let mut records = 0;
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        // An empty header is where the records end and preallocated space starts.
        if len == 0 || len > MAX_RECORD || data.len() - at - HEADER < len {
            break;
        }
        let payload = &data[at + HEADER..at + HEADER + len];
        if crc32(payload) != crc {
            break;
        }
        each(payload);
        records += 1;
        at += HEADER + len;
    }
    (at, records)
}

/// Reads the first `upto` bytes of a log that another handle may be appending to
/// (nothing is changed), calling `each` for every record in them. Fails unless
/// they are whole records.
pub fn read_prefix(path: &Path, upto: u64, mut each: impl FnMut(&[u8])) -> Result<usize, Error> {
    let mut data = Vec::new();
    File::open(path)?.take(upto).read_to_end(&mut data)?;
    let (at, records) = scan(&data, &mut each);
    if at as u64 != upto {
        return Err(Error::Io(std::io::Error::other(format!(
            "{}: the records end at byte {at}, not {upto}",
            path.display()
        ))));
    }
    Ok(records)
}

/// The whole records of a log from byte `from` (a record boundary) on, as they
/// are, while another handle may be appending: reading stops where the records
/// end or where one is not whole yet.
pub fn read_records_from(path: &Path, from: u64) -> Result<Vec<u8>, Error> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let (at, _) = scan(&data, &mut |_| {});
    data.truncate(at);
    Ok(data)
}

/// Reads bytes `from..to` of a log (records another handle appended), as they are.
pub fn read_range(path: &Path, from: u64, to: u64) -> Result<Vec<u8>, Error> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut out = Vec::new();
    f.take(to.saturating_sub(from)).read_to_end(&mut out)?;
    if out.len() as u64 != to.saturating_sub(from) {
        return Err(Error::Io(std::io::Error::other(format!(
            "{}: shorter than {to} bytes",
            path.display()
        ))));
    }
    Ok(out)
}

/// What `open` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Bytes of a torn tail that were cut off (0 after a clean shutdown).
    pub truncated: u64,
}

/// Direct writes go in whole blocks of this size, at offsets aligned to it.
const BLOCK: usize = 4096;
/// The log grows by zero-filled, synced chunks of at least this size, so an append
/// overwrites blocks that already exist and its sync carries no metadata.
const MIN_CHUNK: u64 = 4 * 1024 * 1024;
/// The direct write buffer is kept between appends up to this size (a group of
/// ordinary requests is a few KiB to a few hundred).
const KEEP_BUFFER: usize = 1024 * 1024;
/// At most this much is zero-filled at once (a pause of tens of milliseconds).
const MAX_CHUNK: u64 = 16 * 1024 * 1024;

pub struct Log {
    path: PathBuf,
    file: File,
    /// Bytes of records (the log's logical length).
    len: u64,
    /// How appends reach the disk.
    mode: Mode,
}

enum Mode {
    /// `O_DIRECT | O_DSYNC` writes of whole blocks into preallocated space: one
    /// write, no separate flush call, no file-size change to journal.
    Direct {
        file: File,
        /// Bytes on disk (zeros past `len`), synced.
        allocated: u64,
        /// The records' bytes in the last, partial block (rewritten, unchanged,
        /// with the next append).
        tail: Vec<u8>,
        /// Reused write buffer; the block-aligned window is found in it.
        buf: Vec<u8>,
    },
    /// Buffered append + `fdatasync`, where the file system refuses direct I/O
    /// (tmpfs).
    Buffered,
}

impl Log {
    /// Opens (or creates) the log, calling `each` for every intact record in order,
    /// and cuts a torn tail.
    pub fn open(path: &Path, each: impl FnMut(&[u8])) -> Result<(Log, Recovery), Error> {
        Self::open_as(path, Writes::Direct, each)
    }

    /// `open`, choosing how appends are written.
    pub fn open_as(
        path: &Path,
        writes: Writes,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(Log, Recovery), Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut data)?;
        let (at, records) = scan(&data, &mut each);
        // Zeros past the end are preallocated space; anything else is a torn write.
        let truncated = if data[at..].iter().any(|&b| b != 0) {
            (data.len() - at) as u64
        } else {
            0
        };
        if data.len() > at {
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        if let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        let handle = match writes {
            Writes::Direct => direct(path),
            Writes::Buffered => None,
        };
        let mode = match handle {
            Some(direct) => Mode::Direct {
                file: direct,
                allocated: at as u64,
                tail: data[at - at % BLOCK..at].to_vec(),
                buf: Vec::new(),
            },
            None => Mode::Buffered,
        };
        Ok((
            Log {
                path: path.to_path_buf(),
                file,
                len: at as u64,
                mode,
            },
            Recovery { records, truncated },
        ))
    }

    /// Appends one record; durable when this returns.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.append_all(&[payload])
    }

    /// Appends several records with one write and one sync (group commit).
    pub fn append_all(&mut self, payloads: &[&[u8]]) -> Result<(), Error> {
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER).sum());
        for p in payloads {
            frame(p, &mut buf)?;
        }
        self.append_framed(&buf)
    }

    /// Appends records already framed by `frame` with one write and one sync.
    pub fn append_framed(&mut self, records: &[u8]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let result = match &mut self.mode {
            Mode::Direct { .. } => self.append_direct(records),
            Mode::Buffered => self.append_buffered(records),
        };
        match result {
            Ok(()) => {
                self.len += records.len() as u64;
                Ok(())
            }
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP))
                    && matches!(self.mode, Mode::Direct { .. }) =>
            {
                // Direct I/O refused after all (the file system says EINVAL or
                // EOPNOTSUPP): buffered from here on.
                self.mode = Mode::Buffered;
                self.append_framed(records)
            }
            Err(e) => Err(Error::Io(e)),
        }
    }

    fn append_buffered(&mut self, records: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let r = self
            .file
            .write_all_at(records, self.len)
            .and_then(|_| self.file.sync_data());
        if r.is_err() {
            // Leave no partial record behind for later appends to follow.
            let _ = self.file.set_len(self.len);
        }
        r
    }

    fn append_direct(&mut self, records: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let Mode::Direct {
            file,
            allocated,
            tail,
            buf,
        } = &mut self.mode
        else {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        let end = self.len + records.len() as u64;
        if end > *allocated {
            // Grow by zero-filled blocks, synced (size included) before use.
            let chunk = (*allocated / 8).clamp(MIN_CHUNK, MAX_CHUNK);
            let target = (end + chunk).div_ceil(BLOCK as u64) * BLOCK as u64;
            let zeros = vec![0u8; 1 << 20];
            let mut at = *allocated;
            while at < target {
                let n = (target - at).min(zeros.len() as u64) as usize;
                self.file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            self.file.sync_all()?;
            *allocated = target;
        }
        // The write: the tail block's records, the new ones, zeros to a block end.
        let start = self.len - tail.len() as u64;
        let used = tail.len() + records.len();
        let size = used.div_ceil(BLOCK) * BLOCK;
        // Reused: grown when needed, and only the padding after the records is
        // zeroed (not the whole buffer on every append).
        if buf.len() < size + BLOCK {
            buf.resize(size + BLOCK, 0);
        }
        let skew = (BLOCK - buf.as_ptr() as usize % BLOCK) % BLOCK;
        let window = &mut buf[skew..skew + size];
        window[..tail.len()].copy_from_slice(tail);
        window[tail.len()..used].copy_from_slice(records);
        window[used..].fill(0);
        file.write_all_at(window, start)?;
        // The new partial block (the records' bytes in it) for the next append.
        let keep = used % BLOCK;
        let from = used - keep;
        tail.clear();
        tail.extend_from_slice(&window[from..used]);
        if buf.len() > KEEP_BUFFER {
            // One large group (a batch of 64 KiB objects) does not keep its
            // buffer for the small ones after it.
            *buf = Vec::new();
        }
        Ok(())
    }

    /// Bytes the reused write buffer holds between appends (tests).
    #[doc(hidden)]
    pub fn write_buffer(&self) -> usize {
        match &self.mode {
            Mode::Direct { buf, .. } => buf.capacity(),
            Mode::Buffered => 0,
        }
    }

    /// Bytes of records in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the caller renamed the log's file to `to` (the open handles
    /// follow the file; only the name it is reported under changes).
    pub fn renamed(&mut self, to: &Path) {
        self.path = to.to_path_buf();
    }

    /// Whether appends are direct block writes (false: buffered + `fdatasync`).
    pub fn is_direct(&self) -> bool {
        matches!(self.mode, Mode::Direct { .. })
    }
}

impl Drop for Log {
    /// A clean close leaves no preallocated space behind.
    fn drop(&mut self) {
        if let Mode::Direct { allocated, .. } = &self.mode
            && *allocated > self.len
        {
            let _ = self.file.set_len(self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A large group's write buffer is not kept for the small groups after it.
    #[test]
    fn a_large_groups_buffer_is_given_back() {
        let dir = std::env::temp_dir().join(format!("pantstack-store-buf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("log");
        let (mut log, _) = Log::open(&path, |_| {}).unwrap();
        if !log.is_direct() {
            // The file system refuses direct I/O: no write buffer at all.
            assert_eq!(log.write_buffer(), 0);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        log.append(b"small").unwrap();
        let small = log.write_buffer();
        assert!(small > 0 && small <= KEEP_BUFFER, "{small}");
        log.append_all(&[&vec![7u8; 3 << 20][..]]).unwrap();
        assert!(log.write_buffer() <= KEEP_BUFFER, "{}", log.write_buffer());
        log.append(b"after").unwrap();
        assert!(log.write_buffer() <= 4 * BLOCK, "{}", log.write_buffer());
        drop(log);
        let mut got = Vec::new();
        let _ = Log::open(&path, |r| got.push(r.len())).unwrap();
        assert_eq!(got, [5, 3 << 20, 5]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }
}
