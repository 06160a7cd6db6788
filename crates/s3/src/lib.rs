//! S3 state as a pure model: buckets (versioning state, configuration), object
//! versions, multipart uploads and the journal ops that change them. No I/O: an
//! op applied to the same state gives the same state, so replaying the journal
//! rebuilds exactly the acknowledged buckets and objects. Object data lives in
//! blob files the endpoint writes and syncs before the op that names them is
//! journaled; `Objects::apply` returns the blobs an op made unreferenced, and
//! `Objects::referenced` the ones still named.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One version of a key: an object or a delete marker.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    /// `null` for objects written while versioning was off or suspended.
    pub version_id: String,
    pub delete_marker: bool,
    /// The blob file holding the data (none for a delete marker or a small object).
    pub blob: Option<String>,
    /// A small object's data, kept in its journal record (as base64): one sync
    /// per PUT. In memory as bytes: a GET hands them out without a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Inline>,
    pub size: u64,
    /// Hex MD5 (or `md5-N` for multipart), without quotes.
    pub etag: String,
    /// Milliseconds since the epoch.
    pub modified: u64,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-case.
    pub metadata: BTreeMap<String, String>,
    /// `Cache-Control`, `Content-Disposition`, ... as given.
    pub headers: BTreeMap<String, String>,
    /// Algorithm (`CRC32`, `CRC32C`, `SHA1`, `SHA256`, `CRC64NVME`) → base64 value.
    pub checksums: BTreeMap<String, String>,
    /// Multipart: the number of parts.
    pub parts: Option<u32>,
    /// Object tags (`x-amz-tagging`, PutObjectTagging), at most 10.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The server-side encryption the object was written with (none recorded:
    /// SSE-S3, S3's default since January 2023).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<Sse>,
}

/// A small object's data: bytes in memory, standard base64 in the journal (the
/// same text as when it was a base64 `String`, so journals written before read
/// the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inline(pub bytes::Bytes);

impl Serialize for Inline {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Inline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Inline, D::Error> {
        use base64::Engine;
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(|v| Inline(bytes::Bytes::from(v)))
            .map_err(|e| serde::de::Error::custom(format!("damaged inline object: {e}")))
    }
}

/// Server-side encryption settings (of an object, or a bucket's default).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sse {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_key: bool,
}

/// A bucket's stored configuration: replaced whole by each Put/Delete of a part.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketConfig {
    /// The bucket policy document as given (PutBucketPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Vec<CorsRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Vec<LifecycleRule>>,
    /// Default encryption (PutBucketEncryption); none: SSE-S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Sse>,
    /// Bucket tags (PutBucketTagging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

impl BucketConfig {
    pub fn is_empty(&self) -> bool {
        *self == BucketConfig::default()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// One lifecycle rule (expirations and aborts; transitions are accepted and
/// stored but have no effect: the local cloud has one storage class).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub enabled: bool,
    /// The filter: every condition given must hold.
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<i64>,
    /// Whether the rule was written with `<Filter>` (as it reads back).
    #[serde(default)]
    pub filter: bool,
    /// Whether the filter was an `<And>`.
    #[serde(default)]
    pub and: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<i32>,
    /// Milliseconds since the epoch (a midnight UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired_object_delete_marker: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_upload_days: Option<i32>,
    /// Transitions as given (XML-free JSON), read back unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<(Option<i32>, Option<u64>, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncurrent_transitions: Vec<(Option<i32>, Option<i32>, String)>,
}

impl LifecycleRule {
    /// Whether the rule's filter selects an object of this key, size and tags.
    pub fn selects(&self, key: &str, size: u64, tags: &BTreeMap<String, String>) -> bool {
        key.starts_with(&self.prefix)
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
            && self.size_greater_than.is_none_or(|n| size as i64 > n)
            && self.size_less_than.is_none_or(|n| (size as i64) < n)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub modified: u64,
    pub checksums: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub initiated: u64,
    /// The object's settings (content type, metadata, headers), kept until complete.
    pub template: Version,
    pub checksum_algorithm: Option<String>,
    pub parts: BTreeMap<u32, Part>,
}

/// What a completed multipart upload answered: a retried
/// CompleteMultipartUpload (its first answer lost) gets it again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Completed {
    pub upload_id: String,
    pub key: String,
    pub etag: String,
    /// The version id the answer named (none when the bucket was never versioned).
    pub version_id: Option<String>,
}

/// How many completed uploads a bucket remembers (the oldest are forgotten).
pub const COMPLETED_KEEP: usize = 1000;

/// A bucket's versioning state. Once enabled, versioning can be suspended but
/// never turned off: S3 then keeps the versions it has and shows version ids.
/// Journaled as S3 reports it: `null` (never enabled), `"Enabled"`, `"Suspended"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

impl Versioning {
    /// The state a `Status` of PutBucketVersioning sets, if it is one.
    pub fn parse(status: &str) -> Option<Versioning> {
        match status {
            "Enabled" => Some(Versioning::Enabled),
            "Suspended" => Some(Versioning::Suspended),
            _ => None,
        }
    }

    /// The `Status` GetBucketVersioning reports (none until one was set).
    pub fn status(self) -> Option<&'static str> {
        match self {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some("Enabled"),
            Versioning::Suspended => Some("Suspended"),
        }
    }

    /// Whether versioning was ever enabled: version ids are shown and a plain
    /// delete leaves a delete marker.
    pub fn ever_enabled(self) -> bool {
        self != Versioning::Unversioned
    }
}

impl Serialize for Versioning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.status().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Versioning {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Versioning::Unversioned),
            Some(s) => Versioning::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("unknown versioning status `{s}`"))
            }),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Bucket {
    pub created: u64,
    pub versioning: Versioning,
    /// Key → versions, oldest first.
    pub objects: BTreeMap<String, Vec<Version>>,
    pub uploads: BTreeMap<String, Upload>,
    /// The last `COMPLETED_KEEP` completed uploads, oldest first.
    pub completed: std::collections::VecDeque<Completed>,
    /// Policy, CORS, lifecycle, default encryption, tags.
    pub config: BucketConfig,
}

impl Bucket {
    /// The latest version of a key.
    pub fn latest(&self, key: &str) -> Option<&Version> {
        self.objects.get(key).and_then(|v| v.last())
    }

    pub fn version(&self, key: &str, id: &str) -> Option<&Version> {
        self.objects
            .get(key)
            .and_then(|vs| vs.iter().find(|v| v.version_id == id))
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The answer of a completed upload, if it is among the remembered ones.
    pub fn completed(&self, upload_id: &str) -> Option<&Completed> {
        self.completed
            .iter()
            .rev()
            .find(|c| c.upload_id == upload_id)
    }

    fn remember(&mut self, c: Completed) {
        self.completed.push_back(c);
        while self.completed.len() > COMPLETED_KEEP {
            self.completed.pop_front();
        }
    }
}

/// The lifecycle rules the aws target synthesizes for a manifest's bucket
/// (`synth::storage`): incomplete multipart uploads aborted after 7 days, and,
/// for a versioned bucket with `noncurrent_expiry_days`, noncurrent versions
/// expired after that many days and expired delete markers removed.
pub fn declared_lifecycle(versioning: bool, noncurrent_days: Option<i64>) -> Vec<LifecycleRule> {
    let mut rules = vec![LifecycleRule {
        id: Some("abort-incomplete-multipart-uploads".into()),
        enabled: true,
        abort_upload_days: Some(7),
        ..LifecycleRule::default()
    }];
    if versioning && let Some(days) = noncurrent_days {
        rules.push(LifecycleRule {
            id: Some("expire-noncurrent-versions".into()),
            enabled: true,
            noncurrent_days: Some(days.clamp(1, i32::MAX as i64) as i32),
            expired_object_delete_marker: true,
            ..LifecycleRule::default()
        });
    }
    rules
}

/// A change to S3 state: what the journal holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateBucket {
        name: String,
        now: u64,
    },
    DeleteBucket {
        name: String,
    },
    /// Never `Unversioned`: versioning cannot be turned off once set.
    Versioning {
        name: String,
        status: Versioning,
    },
    /// The bucket's whole configuration after a Put/Delete of one part of it.
    Config {
        name: String,
        config: BucketConfig,
    },
    /// An object version's tags replaced (PutObjectTagging, DeleteObjectTagging).
    Tagging {
        bucket: String,
        key: String,
        version_id: String,
        tags: BTreeMap<String, String>,
    },
    /// A new object version (replacing the `null` version unless versioning is on).
    Put {
        bucket: String,
        key: String,
        version: Version,
    },
    /// Without `version_id`: a delete marker (versioned) or removal (unversioned).
    Delete {
        bucket: String,
        key: String,
        version_id: Option<String>,
        /// The marker's id when one is created.
        marker_id: String,
        now: u64,
    },
    CreateUpload {
        bucket: String,
        upload_id: String,
        upload: Upload,
    },
    UploadPart {
        bucket: String,
        upload_id: String,
        number: u32,
        part: Part,
    },
    CompleteUpload {
        bucket: String,
        upload_id: String,
        version: Version,
    },
    AbortUpload {
        bucket: String,
        upload_id: String,
    },
    /// A compacted journal's image of one bucket, empty (its objects and uploads
    /// follow), replacing any bucket of that name.
    ImageBucket {
        name: String,
        created: u64,
        #[serde(default)]
        versioning: Versioning,
        /// The remembered completed uploads, oldest first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        completed: Vec<Completed>,
        #[serde(default, skip_serializing_if = "BucketConfig::is_empty")]
        config: BucketConfig,
    },
    /// Versions of the bucket's keys, oldest first; a key's versions may continue
    /// in the next record.
    ImageObjects {
        bucket: String,
        objects: Vec<(String, Vec<Version>)>,
    },
    /// An unfinished upload; its parts beside it (a map with number keys does not
    /// read back inside these tagged records).
    ImageUpload {
        bucket: String,
        upload_id: String,
        upload: Upload,
        parts: Vec<(u32, Part)>,
    },
}

/// Bytes of object versions per `ImageObjects` record (records are at most
/// 16 MiB; an inline object is at most 64 KiB, ~88 KiB in base64).
const IMAGE_CHUNK: usize = 1 << 20;

/// The variable bytes a version adds to an image record (key, inline data,
/// metadata and headers); field names and numbers come on top.
fn image_bytes(key: &str, v: &Version) -> usize {
    let pairs =
        |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    key.len()
        + v.inline.as_ref().map_or(0, |d| d.0.len().div_ceil(3) * 4)
        + pairs(&v.metadata)
        + pairs(&v.headers)
        + pairs(&v.tags)
}

/// What an applied op made unreferenced: blob files to delete once durable.
pub type Garbage = Vec<String>;

#[derive(Default)]
pub struct Objects {
    pub buckets: BTreeMap<String, Bucket>,
}

impl Objects {
    /// Applies an op (checked by the caller before; replay applies as recorded).
    pub fn apply(&mut self, op: &Op) -> Garbage {
        let mut garbage = Vec::new();
        match op {
            Op::CreateBucket { name, now } => {
                self.buckets.entry(name.clone()).or_insert_with(|| Bucket {
                    created: *now,
                    ..Bucket::default()
                });
            }
            Op::DeleteBucket { name } => {
                if let Some(b) = self.buckets.remove(name) {
                    for u in b.uploads.values() {
                        garbage.extend(u.parts.values().map(|p| p.blob.clone()));
                    }
                }
            }
            Op::Versioning { name, status } => {
                if let Some(b) = self.buckets.get_mut(name) {
                    b.versioning = *status;
                }
            }
            Op::Config { name, config } => {
                if let Some(b) = self.buckets.get_mut(name) {
                    b.config = config.clone();
                }
            }
            Op::Tagging {
                bucket,
                key,
                version_id,
                tags,
            } => {
                if let Some(v) = self
                    .buckets
                    .get_mut(bucket)
                    .and_then(|b| b.objects.get_mut(key))
                    .and_then(|vs| vs.iter_mut().find(|v| &v.version_id == version_id))
                {
                    v.tags = tags.clone();
                }
            }
            Op::Put {
                bucket,
                key,
                version,
            } => self.put_version(bucket, key, version, &mut garbage),
            Op::CompleteUpload {
                bucket,
                upload_id,
                version,
            } => {
                let Some(b) = self.buckets.get_mut(bucket) else {
                    return garbage;
                };
                let Some(u) = b.uploads.remove(upload_id) else {
                    return garbage;
                };
                b.remember(Completed {
                    upload_id: upload_id.clone(),
                    key: u.key.clone(),
                    etag: version.etag.clone(),
                    version_id: b
                        .versioning
                        .ever_enabled()
                        .then(|| version.version_id.clone()),
                });
                garbage.extend(u.parts.values().map(|p| p.blob.clone()));
                self.put_version(bucket, &u.key, version, &mut garbage);
            }
            Op::Delete {
                bucket,
                key,
                version_id,
                marker_id,
                now,
            } => {
                let Some(b) = self.buckets.get_mut(bucket) else {
                    return garbage;
                };
                let versioning = b.versioning;
                let versions = b.objects.entry(key.clone()).or_default();
                match version_id {
                    Some(id) => versions.retain(|v| {
                        if &v.version_id == id {
                            garbage.extend(v.blob.clone());
                            false
                        } else {
                            true
                        }
                    }),
                    None => {
                        if versioning != Versioning::Enabled {
                            versions.retain(|v| {
                                if v.version_id == "null" {
                                    garbage.extend(v.blob.clone());
                                    false
                                } else {
                                    true
                                }
                            });
                        }
                        if versioning.ever_enabled() {
                            versions.push(Version {
                                version_id: marker_id.clone(),
                                delete_marker: true,
                                blob: None,
                                inline: None,
                                size: 0,
                                etag: String::new(),
                                modified: *now,
                                ..Version::default()
                            });
                        }
                    }
                }
                if versions.is_empty() {
                    b.objects.remove(key);
                }
            }
            Op::CreateUpload {
                bucket,
                upload_id,
                upload,
            } => {
                if let Some(b) = self.buckets.get_mut(bucket) {
                    b.uploads.insert(upload_id.clone(), upload.clone());
                }
            }
            Op::UploadPart {
                bucket,
                upload_id,
                number,
                part,
            } => {
                if let Some(u) = self
                    .buckets
                    .get_mut(bucket)
                    .and_then(|b| b.uploads.get_mut(upload_id))
                    && let Some(old) = u.parts.insert(*number, part.clone())
                {
                    garbage.push(old.blob);
                }
            }
            Op::AbortUpload { bucket, upload_id } => {
                if let Some(u) = self
                    .buckets
                    .get_mut(bucket)
                    .and_then(|b| b.uploads.remove(upload_id))
                {
                    garbage.extend(u.parts.values().map(|p| p.blob.clone()));
                }
            }
            Op::ImageBucket {
                name,
                created,
                versioning,
                completed,
                config,
            } => {
                self.buckets.insert(
                    name.clone(),
                    Bucket {
                        created: *created,
                        versioning: *versioning,
                        completed: completed.iter().cloned().collect(),
                        config: config.clone(),
                        ..Bucket::default()
                    },
                );
            }
            Op::ImageObjects { bucket, objects } => {
                if let Some(b) = self.buckets.get_mut(bucket) {
                    for (key, versions) in objects {
                        b.objects
                            .entry(key.clone())
                            .or_default()
                            .extend(versions.iter().cloned());
                    }
                }
            }
            Op::ImageUpload {
                bucket,
                upload_id,
                upload,
                parts,
            } => {
                if let Some(b) = self.buckets.get_mut(bucket) {
                    let mut u = upload.clone();
                    u.parts = parts.iter().cloned().collect();
                    b.uploads.insert(upload_id.clone(), u);
                }
            }
        }
        garbage
    }

    /// About how many bytes `image` would write: whether compacting is worth it.
    pub fn image_estimate(&self) -> u64 {
        let mut n = 0usize;
        for b in self.buckets.values() {
            n += 256 + 200 * b.completed.len();
            for (key, versions) in &b.objects {
                n += versions
                    .iter()
                    .map(|v| 400 + image_bytes(key, v))
                    .sum::<usize>();
            }
            n += b
                .uploads
                .values()
                .map(|u| 512 + u.key.len() + 200 * u.parts.len())
                .sum::<usize>();
        }
        n as u64
    }

    /// The ops that rebuild the buckets exactly (a compacted journal's image),
    /// handed to `out` one at a time. Blobs stay where they are: the image names
    /// the same files.
    pub fn image(&self, out: &mut dyn FnMut(Op)) {
        for (name, b) in &self.buckets {
            out(Op::ImageBucket {
                name: name.clone(),
                created: b.created,
                versioning: b.versioning,
                completed: b.completed.iter().cloned().collect(),
                config: b.config.clone(),
            });
            let mut chunk: Vec<(String, Vec<Version>)> = Vec::new();
            let mut bytes = 0;
            for (key, versions) in &b.objects {
                chunk.push((key.clone(), Vec::new()));
                for v in versions {
                    bytes += 512 + image_bytes(key, v);
                    if let Some((_, vs)) = chunk.last_mut() {
                        vs.push(v.clone());
                    }
                    if bytes >= IMAGE_CHUNK {
                        out(Op::ImageObjects {
                            bucket: name.clone(),
                            objects: std::mem::take(&mut chunk),
                        });
                        chunk.push((key.clone(), Vec::new()));
                        bytes = 0;
                    }
                }
                if chunk.last().is_some_and(|(_, vs)| vs.is_empty()) {
                    chunk.pop();
                }
            }
            if !chunk.is_empty() {
                out(Op::ImageObjects {
                    bucket: name.clone(),
                    objects: chunk,
                });
            }
            for (id, u) in &b.uploads {
                out(Op::ImageUpload {
                    bucket: name.clone(),
                    upload_id: id.clone(),
                    upload: Upload {
                        parts: BTreeMap::new(),
                        ..u.clone()
                    },
                    parts: u.parts.iter().map(|(n, p)| (*n, p.clone())).collect(),
                });
            }
        }
    }

    /// What the buckets' lifecycle rules call for at `now` (ms since the epoch),
    /// a day lasting `day` ms (AWS: 86,400,000; shorter locally to watch rules
    /// act). As S3 computes it, an action is due at the object's creation (for
    /// noncurrent versions: when they became noncurrent) plus the rule's days,
    /// rounded up to the next midnight UTC (the next multiple of `day`).
    /// `marker_id` gives the id of each delete marker an expiration creates in a
    /// versioned bucket. The ops are applied in order.
    pub fn lifecycle_ops(
        &self,
        now: u64,
        day: u64,
        marker_id: &mut dyn FnMut() -> String,
    ) -> Vec<Op> {
        let day = day.max(1);
        let due = |since: u64, days: i32| {
            let at = since.saturating_add(day.saturating_mul(days.max(0) as u64));
            at.div_ceil(day).saturating_mul(day) <= now
        };
        let mut ops = Vec::new();
        for (name, b) in &self.buckets {
            let Some(rules) = &b.config.lifecycle else {
                continue;
            };
            let rules: Vec<&LifecycleRule> = rules.iter().filter(|r| r.enabled).collect();
            if rules.is_empty() {
                continue;
            }
            let delete = |key: &str, version_id: Option<String>, marker: String| Op::Delete {
                bucket: name.clone(),
                key: key.to_string(),
                version_id,
                marker_id: marker,
                now,
            };
            for (key, versions) in &b.objects {
                let Some(current) = versions.last() else {
                    continue;
                };
                if current.delete_marker {
                    // An expired object delete marker: the only version left.
                    if versions.len() == 1
                        && rules.iter().any(|r| {
                            r.expired_object_delete_marker && r.selects(key, 0, &BTreeMap::new())
                        })
                    {
                        ops.push(delete(key, Some(current.version_id.clone()), String::new()));
                        continue;
                    }
                } else if rules.iter().any(|r| {
                    r.selects(key, current.size, &current.tags)
                        && (r.expiration_days.is_some_and(|d| due(current.modified, d))
                            || r.expiration_date.is_some_and(|t| t <= now))
                }) {
                    let marker = match b.versioning {
                        Versioning::Enabled => marker_id(),
                        Versioning::Suspended => "null".to_string(),
                        Versioning::Unversioned => String::new(),
                    };
                    ops.push(delete(key, None, marker));
                }
                // Noncurrent versions, newest first; each became noncurrent when
                // the next one was written.
                let noncurrent = versions.len().saturating_sub(1);
                for (rank, i) in (0..noncurrent).rev().enumerate() {
                    let v = &versions[i];
                    let since = versions[i + 1].modified;
                    let expire = rules.iter().any(|r| {
                        r.selects(key, v.size, &v.tags)
                            && r.noncurrent_days.is_some_and(|d| due(since, d))
                            && r.newer_noncurrent_versions
                                .is_none_or(|keep| rank >= keep.max(0) as usize)
                    });
                    if expire {
                        ops.push(delete(key, Some(v.version_id.clone()), String::new()));
                    }
                }
            }
            for (id, u) in &b.uploads {
                if rules.iter().any(|r| {
                    u.key.starts_with(&r.prefix)
                        && r.tags.is_empty()
                        && r.abort_upload_days.is_some_and(|d| due(u.initiated, d))
                }) {
                    ops.push(Op::AbortUpload {
                        bucket: name.clone(),
                        upload_id: id.clone(),
                    });
                }
            }
        }
        ops
    }

    fn put_version(&mut self, bucket: &str, key: &str, version: &Version, garbage: &mut Garbage) {
        let Some(b) = self.buckets.get_mut(bucket) else {
            return;
        };
        let versions = b.objects.entry(key.to_string()).or_default();
        if version.version_id == "null" {
            versions.retain(|v| {
                if v.version_id == "null" {
                    garbage.extend(v.blob.clone());
                    false
                } else {
                    true
                }
            });
        }
        versions.push(version.clone());
    }

    /// Every blob the state references (the rest of the objects directory is garbage).
    pub fn referenced(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for b in self.buckets.values() {
            for vs in b.objects.values() {
                out.extend(vs.iter().filter_map(|v| v.blob.clone()));
            }
            for u in b.uploads.values() {
                out.extend(u.parts.values().map(|p| p.blob.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
