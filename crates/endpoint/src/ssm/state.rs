//! The parameters of the local cloud and the journal ops that change them;
//! SecureString values sealed with the master key, bound to the parameter's name.

use crate::error::ApiError;
use crate::keys::Keyring;
use pantstack_ssm::{Error as PErr, Store, Type, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A change to the parameters: what the journal holds. `value` is base64 of what
/// the store keeps (ciphertext for SecureString).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Put {
        name: String,
        kind: String,
        value: String,
        plain_len: usize,
        key_id: Option<String>,
        description: Option<String>,
        overwrite: bool,
        now: u64,
        /// PutParameter's `Tags` (only when it creates the parameter).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
    Delete {
        name: String,
    },
    /// LabelParameterVersion: the valid labels, attached to `version`.
    Label {
        name: String,
        version: u64,
        labels: Vec<String>,
    },
    /// UnlabelParameterVersion: the labels removed from `version`.
    Unlabel {
        name: String,
        version: u64,
        labels: Vec<String>,
    },
    /// AddTagsToResource.
    Tag {
        name: String,
        tags: BTreeMap<String, String>,
    },
    /// RemoveTagsFromResource.
    Untag {
        name: String,
        keys: Vec<String>,
    },
    /// A version re-encrypted under a new master key.
    Rekey {
        name: String,
        version: u64,
        value: String,
    },
    /// A compacted journal's image of one parameter: every kept version (with
    /// its labels) and the parameter's tags.
    Image {
        name: String,
        versions: Vec<ImageVersion>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
}

/// One version of a parameter in a compacted journal (`value` as in `Put`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageVersion {
    version: u64,
    kind: String,
    value: String,
    key_id: Option<String>,
    description: Option<String>,
    modified: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
}

/// A journaled value that is not base64: a damaged record, never an empty value.
pub(super) fn damaged(v: Option<Vec<u8>>, name: &str) -> Result<Vec<u8>, ApiError> {
    v.ok_or_else(|| {
        ApiError::internal(format!(
            "parameter {name}: its value in the journal is not valid base64"
        ))
    })
}

/// The default key of SecureStrings, as AWS names it.
pub const DEFAULT_KEY: &str = "alias/aws/ssm";

#[derive(Default)]
pub struct Params {
    pub store: Store,
    pub region: String,
    pub account: String,
}

impl Params {
    pub fn new(region: &str, account: &str) -> Self {
        Params {
            store: Store::default(),
            region: region.to_string(),
            account: account.to_string(),
        }
    }

    pub fn apply(&mut self, op: &Op) -> Result<u64, ApiError> {
        match op {
            Op::Put {
                name,
                kind,
                value,
                plain_len,
                key_id,
                description,
                overwrite,
                now,
                tags,
            } => {
                // Checked before anything changes: the put and its tags are one change.
                if tags.len() > pantstack_ssm::MAX_TAGS {
                    return Err(validation(format!(
                        "A parameter can have at most {} tags.",
                        pantstack_ssm::MAX_TAGS
                    )));
                }
                for (k, v) in tags {
                    pantstack_ssm::check_tag(k, v).map_err(p_err)?;
                }
                let kind = Type::parse(kind).ok_or_else(|| {
                    ApiError::bad(
                        "ValidationException",
                        format!("1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"),
                    )
                })?;
                let value = damaged(crate::unb64(value), name)?;
                let version = self
                    .store
                    .put(
                        name,
                        kind,
                        value,
                        *plain_len,
                        key_id.as_deref(),
                        description.as_deref(),
                        *overwrite,
                        *now,
                    )
                    .map_err(p_err)?;
                if !tags.is_empty() {
                    let tags: Vec<_> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    self.store.add_tags(name, &tags).map_err(p_err)?;
                }
                Ok(version)
            }
            Op::Delete { name } => {
                self.store.delete(name).map_err(p_err)?;
                Ok(0)
            }
            Op::Label {
                name,
                version,
                labels,
            } => {
                let (v, _) = self
                    .store
                    .label(name, Some(*version), labels)
                    .map_err(p_err)?;
                Ok(v)
            }
            Op::Unlabel {
                name,
                version,
                labels,
            } => {
                self.store.unlabel(name, *version, labels).map_err(p_err)?;
                Ok(*version)
            }
            Op::Tag { name, tags } => {
                let tags: Vec<_> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.store.add_tags(name, &tags).map_err(p_err)?;
                Ok(0)
            }
            Op::Untag { name, keys } => {
                self.store.remove_tags(name, keys).map_err(p_err)?;
                Ok(0)
            }
            Op::Rekey {
                name,
                version,
                value,
            } => {
                let value = damaged(crate::unb64(value), name)?;
                self.store.set_value(name, *version, value);
                Ok(*version)
            }
            Op::Image {
                name,
                versions,
                tags,
            } => {
                let versions = versions
                    .iter()
                    .map(|v| {
                        Ok(Version {
                            version: v.version,
                            kind: Type::parse(&v.kind).ok_or_else(|| {
                                ApiError::internal(format!(
                                    "parameter {name}: unknown type `{}` in the journal",
                                    v.kind
                                ))
                            })?,
                            value: damaged(crate::unb64(&v.value), name)?,
                            key_id: v.key_id.clone(),
                            description: v.description.clone(),
                            modified: v.modified,
                            labels: v.labels.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?;
                self.store.restore(name.clone(), versions, tags.clone());
                Ok(0)
            }
        }
    }

    /// About how many bytes `image` would write: whether compacting is worth it.
    pub fn image_estimate(&self) -> u64 {
        self.store
            .all()
            .map(|(name, versions)| {
                64 + name.len()
                    + versions
                        .iter()
                        .map(|v| {
                            120 + v.value.len() * 4 / 3
                                + v.description.as_ref().map_or(0, String::len)
                                + v.key_id.as_ref().map_or(0, String::len)
                                + v.labels.iter().map(|l| l.len() + 3).sum::<usize>()
                        })
                        .sum::<usize>()
                    + self.store.tags(name).map_or(0, |t| {
                        t.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>()
                    })
            })
            .sum::<usize>() as u64
    }

    /// The ops that rebuild the parameters exactly (a compacted journal's image).
    pub fn image(&self) -> impl Iterator<Item = Op> + '_ {
        self.store.all().map(|(name, versions)| Op::Image {
            name: name.to_string(),
            versions: versions
                .iter()
                .map(|v| ImageVersion {
                    version: v.version,
                    kind: v.kind.as_str().to_string(),
                    value: crate::b64(&v.value),
                    key_id: v.key_id.clone(),
                    description: v.description.clone(),
                    modified: v.modified,
                    labels: v.labels.clone(),
                })
                .collect(),
            tags: self.store.tags(name).cloned().unwrap_or_default(),
        })
    }

    /// The ids of the master keys the SecureString versions are sealed under.
    pub fn sealed_under(&self) -> std::collections::BTreeSet<u32> {
        self.store
            .all()
            .flat_map(|(_, versions)| versions.iter())
            .filter(|v| v.kind == Type::SecureString)
            .filter_map(|v| Keyring::key_of(&v.value))
            .collect()
    }

    pub(super) fn arn(&self, name: &str) -> String {
        let n = name.strip_prefix('/').unwrap_or(name);
        format!("arn:aws:ssm:{}:{}:parameter/{n}", self.region, self.account)
    }

    pub(super) fn value_of(
        &self,
        keys: &Keyring,
        name: &str,
        v: &Version,
        decrypt: bool,
    ) -> Result<String, ApiError> {
        if v.kind != Type::SecureString {
            return Ok(String::from_utf8_lossy(&v.value).into_owned());
        }
        if !decrypt {
            // AWS returns the ciphertext blob, base64.
            return Ok(crate::b64(&v.value));
        }
        let plain = keys
            .open(name.as_bytes(), &v.value)
            .map_err(|e| ApiError::new(500, "InternalServerError", format!("{name}: {e}")))?;
        String::from_utf8(plain)
            .map_err(|_| ApiError::internal(format!("{name}: the value is not UTF-8")))
    }

    /// Re-encrypts every SecureString version under the keyring's current key;
    /// returns the ops to journal.
    pub fn reencrypt(&mut self, keys: &Keyring) -> Result<Vec<Op>, String> {
        let current = keys.current_id();
        let mut ops = Vec::new();
        for (name, v) in self.store.versions_mut() {
            if v.kind != Type::SecureString || Keyring::key_of(&v.value) == Some(current) {
                continue;
            }
            let plain = keys.open(name.as_bytes(), &v.value)?;
            let sealed = keys.seal(name.as_bytes(), &plain)?;
            v.value = sealed.clone();
            ops.push(Op::Rekey {
                name: name.to_string(),
                version: v.version,
                value: crate::b64(&sealed),
            });
        }
        Ok(ops)
    }

    /// A SecureString's plaintext (or a String's value), latest version: what a
    /// task's `secrets` receive at start.
    pub fn resolve(&self, keys: &Keyring, name: &str) -> Result<String, ApiError> {
        let (n, v) = self.store.get(name).map_err(p_err)?;
        self.value_of(keys, n, v, true)
    }
}

pub(super) fn p_err(e: PErr) -> ApiError {
    match e {
        PErr::Validation(m) => ApiError::bad("ValidationException", m),
        PErr::NotFound(m) => ApiError::bad("ParameterNotFound", m),
        PErr::AlreadyExists(m) => ApiError::bad("ParameterAlreadyExists", m),
        PErr::VersionNotFound(m) => ApiError::bad("ParameterVersionNotFound", m),
        PErr::TypeMismatch(m) => ApiError::bad("HierarchyTypeMismatchException", m),
        PErr::LabelNotFound(m) => ApiError::bad("ParameterVersionLabelNotFound", m),
        PErr::LabelLimit(m) => ApiError::bad("ParameterVersionLabelLimitExceeded", m),
        PErr::MaxVersions(m) => ApiError::bad("ParameterMaxVersionLimitExceeded", m),
        PErr::TooManyTags(m) => ApiError::bad("TooManyTagsError", m),
    }
}

pub(super) fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::bad("ValidationException", msg)
}
