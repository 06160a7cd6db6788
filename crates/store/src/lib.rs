//! A crash-safe append-only log of records: what the local cloud's AWS endpoints
//! will keep their state in (a send, a put, a delete is one record).
//!
//! Each record is `len: u32 LE | crc32: u32 LE | payload`. `append` writes and
//! `fdatasync`s before it returns, so an acknowledged record survives `kill -9` and
//! power loss; `open` replays the log and cuts a torn tail (a record whose length or
//! checksum does not hold), so a half-written record is never seen.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Records larger than this are refused (S3's 5 GiB objects go to their own files;
/// records hold metadata and queue messages).
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

const HEADER: usize = 8;

/// CRC-32 (IEEE, reflected, as zlib), table-driven.
pub fn crc32(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    const T: [u32; 256] = table();
    let mut c = !0u32;
    for &b in data {
        c = T[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
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

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// What `open` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Bytes of a torn tail that were cut off (0 after a clean shutdown).
    pub truncated: u64,
}

pub struct Log {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Log {
    /// Opens (or creates) the log, calling `each` for every intact record in order,
    /// and cuts a torn tail.
    pub fn open(path: &Path, mut each: impl FnMut(&[u8])) -> Result<(Log, Recovery), Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut data)?;
        let mut at = 0usize;
        let mut records = 0;
        while data.len() - at >= HEADER {
            let len =
                u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
            if len > MAX_RECORD || data.len() - at - HEADER < len {
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
        let truncated = (data.len() - at) as u64;
        if truncated > 0 {
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        if let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok((
            Log {
                path: path.to_path_buf(),
                file,
                len: at as u64,
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
            if p.len() > MAX_RECORD {
                return Err(Error::TooLarge(p.len()));
            }
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32(p).to_le_bytes());
            buf.extend_from_slice(p);
        }
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
        {
            // Leave no partial record behind for later appends to follow.
            let _ = self.file.set_len(self.len);
            return Err(Error::Io(e));
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
