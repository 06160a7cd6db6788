//! Point-in-time snapshots of the endpoint's state (`pantstack backup`) and the
//! checks a restore runs on one before it becomes a journal again.
//!
//! Invariants:
//! - A snapshot is one instant of the state: its journal image is written while
//!   the key ring and the SQS, SSM and S3 locks are all held (in the order every
//!   other path takes them), and the object blobs it names are linked (or copied)
//!   aside under the same locks, so no later delete can free one it needs.
//! - A snapshot holds only what is durable: after the locks are released it waits
//!   for a read barrier covering every record submitted before the image was
//!   taken; a journal that stopped fails the snapshot.
//! - SecureString values stay sealed: the image carries the ciphertexts the
//!   journal carries, and nothing here opens one.
//! - `check_image` replays an image through the same `apply` functions as start
//!   does, refusing a record that does not parse or apply, and reports what the
//!   image holds and which blobs it needs.

use crate::{Core, Replay, lock, write_image};
use sha2::Digest;
use std::collections::BTreeSet;
use std::path::Path;

/// What a snapshot took: the journal image of the state and the blob files of
/// object data it names, linked into the staging directory it was given.
pub struct Snapshot {
    /// Framed journal records (`Image*` ops) that replay to the state.
    pub image: Vec<u8>,
    /// The blob file names (under `staging`) the image names, sorted.
    pub blobs: Vec<String>,
    /// `key-binding.json` of the state (which master key sealed its secrets),
    /// when the state has one.
    pub key_binding: Option<Vec<u8>>,
}

/// What an image holds, counted by replaying it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contents {
    pub queues: u64,
    pub messages: u64,
    pub buckets: u64,
    /// Object versions, delete markers included.
    pub object_versions: u64,
    pub multipart_uploads: u64,
    pub parameters: u64,
    /// Parameter versions kept (up to 100 a parameter).
    pub parameter_versions: u64,
    /// The ids of the master keys its SecureStrings are sealed under (a key
    /// file must hold all of them to open them).
    #[serde(default)]
    pub sealed_under: BTreeSet<u32>,
    /// The blob files of object data the image names.
    #[serde(skip)]
    pub blobs: BTreeSet<String>,
}

/// The SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    pantstack_awsproto::sigv4::hex(&d)
}

/// A streaming SHA-256 (large blobs are hashed as they are copied).
#[derive(Default)]
pub struct Hasher(sha2::Sha256);

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn hex(self) -> String {
        pantstack_awsproto::sigv4::hex(&self.0.finalize())
    }
}

/// Links `from` to `to`, or copies it (and syncs the copy) where a link cannot
/// be made.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()
}

impl Core {
    /// Takes a snapshot of the whole state: the journal image and, linked into
    /// `staging` (a new directory on the state's file system), every blob it
    /// names. Requests wait while the image is written (the state's locks are
    /// held); the caller copies the staged blobs afterwards and removes `staging`.
    pub async fn snapshot(&self, staging: &Path) -> Result<Snapshot, String> {
        self.stopped().map_err(|e| e.message)?;
        std::fs::create_dir(staging)
            .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        let taken = (|| {
            let _keys = self.keys();
            let q = lock(&self.sqs);
            let p = lock(&self.ssm);
            let o = lock(&self.s3);
            let m = lock(&self.metrics);
            let mut image = Vec::new();
            write_image(&q, &p, &o, &m, &mut image)?;
            let blobs: Vec<String> = o.referenced().into_iter().collect();
            for b in &blobs {
                let from = self.objects_dir.join(b);
                link_or_copy(&from, &staging.join(b))
                    .map_err(|e| format!("cannot take {}: {e}", from.display()))?;
            }
            // Everything applied before the image was taken must be durable
            // before the snapshot counts.
            let barrier = self.journal.submit(Vec::new());
            Ok::<_, String>((image, blobs, barrier))
        })();
        let (image, blobs, barrier) = match taken {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_dir_all(staging);
                return Err(e);
            }
        };
        if let Err(e) = barrier.wait().await {
            let _ = std::fs::remove_dir_all(staging);
            return Err(format!(
                "the local cloud's journal stopped while the backup was taken: {e}"
            ));
        }
        let key_binding = self
            .objects_dir
            .parent()
            .and_then(|dir| std::fs::read(crate::keys::binding_path(dir)).ok());
        Ok(Snapshot {
            image,
            blobs,
            key_binding,
        })
    }
}

/// Replays the journal image in `path` (whole records only, as a fresh state in
/// `region` would replay it) and counts what it holds. `Err` names the file and
/// the record that does not parse or apply.
pub fn check_image(region: &str, path: &Path) -> Result<Contents, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let mut replay = Replay::new(region);
    pantstack_store::read_prefix(path, len, |rec| replay.record(rec)).map_err(|e| {
        format!(
            "{}: not a whole journal image ({e}): the file is truncated or damaged",
            path.display()
        )
    })?;
    let (q, p, o, _metrics) = replay.finish(path)?;
    let mut c = Contents::default();
    q.image(&mut |op| match op {
        crate::sqs::Op::Image { .. } => c.queues += 1,
        crate::sqs::Op::ImageMessages { messages, .. } => c.messages += messages.len() as u64,
        _ => {}
    });
    for op in p.image() {
        if let crate::ssm::Op::Image { versions, .. } = op {
            c.parameters += 1;
            c.parameter_versions += versions.len() as u64;
        }
    }
    o.image(&mut |op| match op {
        crate::s3::Op::ImageBucket { .. } => c.buckets += 1,
        crate::s3::Op::ImageObjects { objects, .. } => {
            c.object_versions += objects.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
        }
        crate::s3::Op::ImageUpload { .. } => c.multipart_uploads += 1,
        _ => {}
    });
    c.sealed_under = p.sealed_under();
    c.blobs = o.referenced();
    Ok(c)
}
