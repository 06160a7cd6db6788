//! SSM Parameter Store over the JSON 1.1 protocol. SecureString values are sealed
//! with the master key (AES-256-GCM, bound to the parameter's name) before they
//! reach the store or the journal; they are opened only for a caller that asks
//! `WithDecryption`. Labels live on versions and tags on parameters in the
//! store; every change to them is an [`Op`] in the journal, and the compaction
//! image carries them.

use crate::error::ApiError;
use crate::keys::Keyring;
use crate::request::{Call, Resource};
use crate::sqs::{int, text};
use pantstack_ssm::{Error as PErr, Store, Type, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
fn damaged(v: Option<Vec<u8>>, name: &str) -> Result<Vec<u8>, ApiError> {
    v.ok_or_else(|| {
        ApiError::internal(format!(
            "parameter {name}: its value in the journal is not valid base64"
        ))
    })
}

/// PutParameter's `AllowedPattern`: the value must match it, as SSM checks.
fn check_pattern(pattern: &str, value: &str) -> Result<(), ApiError> {
    if pattern.len() > 1024 {
        return Err(ApiError::bad(
            "ValidationException",
            "1 validation error detected: Value at 'allowedPattern' failed to satisfy constraint: Member must have length less than or equal to 1024",
        ));
    }
    let re = regex_lite::Regex::new(pattern).map_err(|e| {
        ApiError::bad(
            "InvalidAllowedPatternException",
            format!("The allowed pattern {pattern} is not a valid regular expression: {e}"),
        )
    })?;
    if !re.is_match(value) {
        return Err(ApiError::bad(
            "ParameterPatternMismatchException",
            format!("Parameter value, cannot be validated against allowedPattern: {pattern}"),
        ));
    }
    Ok(())
}

fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::bad("ValidationException", msg)
}

/// Which action's filters: the keys and options allowed differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filtered {
    Describe,
    ByPath,
}

/// One `ParameterStringFilter` (or a legacy `ParametersFilter`, as `Equals`).
struct Filter {
    key: String,
    option: String,
    values: Vec<String>,
}

/// The filters of a DescribeParameters or GetParametersByPath, checked as the
/// SSM API reference describes `ParameterStringFilter`: the key matches
/// `tag:.+|Name|Type|KeyId|Path|Label|Tier|DataType`; "For DescribeParameters,
/// all of the listed patterns are valid except Label. For GetParametersByPath,
/// the following patterns listed for Key aren't valid: tag, DataType, Name, Path,
/// and Tier"; options `Equals` and `BeginsWith`, `Contains` too for Name (in
/// DescribeParameters), `Recursive` and `OneLevel` for Path, only `Equals` for
/// Label; 1..50 values of 1..1024 characters. DescribeParameters' legacy
/// `Filters` (`ParametersFilter`: Name, Type, KeyId, values matched exactly)
/// cannot be given with `ParameterFilters`. Every refusal is a ValidationException,
/// with the messages AWS sends for them.
fn filters(input: &Value, api: Filtered) -> Result<Vec<Filter>, ApiError> {
    let list = |member: &str| -> Result<Vec<Value>, ApiError> {
        match input.get(member) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(validation(format!("{member} must be a list of filters."))),
        }
    };
    let strings = |f: &Value, key: &str| -> Result<Vec<String>, ApiError> {
        let values: Vec<String> = match f.get("Values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| validation("Filter values must be strings."))?,
            Some(_) => return Err(validation("Filter values must be a list of strings.")),
        };
        if values.len() > 50 || values.iter().any(|v| v.is_empty() || v.len() > 1024) {
            return Err(validation(format!(
                "1 validation error detected: Value at 'values' of filter {key} failed to satisfy constraint: Member must have at most 50 values of length 1..1024"
            )));
        }
        Ok(values)
    };
    let legacy = list("Filters")?;
    let modern = list("ParameterFilters")?;
    if !legacy.is_empty() && !modern.is_empty() {
        return Err(validation(
            "You can use either Filters or ParameterFilters in a single request.",
        ));
    }
    let mut out = Vec::new();
    for f in &legacy {
        let key = text(f, "Key").unwrap_or("");
        if !["Name", "Type", "KeyId"].contains(&key) {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [Name, Type, KeyId]"
            )));
        }
        let values = strings(f, key)?;
        if values.is_empty() {
            return Err(validation(format!(
                "The following filter values are missing : null for filter key {key}."
            )));
        }
        out.push(Filter {
            key: key.to_string(),
            option: "Equals".into(),
            values,
        });
    }
    for f in &modern {
        let key = text(f, "Key").unwrap_or("");
        let known = ["Name", "Type", "KeyId", "Path", "Label", "Tier", "DataType"].contains(&key)
            || key.strip_prefix("tag:").is_some_and(|t| !t.is_empty());
        if !known || key.len() > 132 {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at 'parameterFilters.1.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: tag:.+|Name|Type|KeyId|Path|Label|Tier|DataType"
            )));
        }
        let valid_keys: &[&str] = match api {
            Filtered::Describe => &["Name", "Type", "KeyId", "Path", "Tier", "DataType"],
            Filtered::ByPath => &["Type", "KeyId", "Label"],
        };
        let tag_ok = api == Filtered::Describe && key.starts_with("tag:");
        if !tag_ok && !valid_keys.contains(&key) {
            return Err(validation(format!(
                "The following filter key is not valid: {key}. Valid filter keys include: [{}].",
                valid_keys.join(", ")
            )));
        }
        let options: &[&str] = match (key, api) {
            ("Path", _) => &["Recursive", "OneLevel"],
            ("Name", Filtered::Describe) => &["Equals", "BeginsWith", "Contains"],
            ("Label", _) => &["Equals"],
            _ => &["Equals", "BeginsWith"],
        };
        let default = if key == "Path" { "OneLevel" } else { "Equals" };
        let option = text(f, "Option").unwrap_or(default);
        if !options.contains(&option) {
            return Err(validation(format!(
                "The following filter option is not valid: {option}. Valid options include: [{}].",
                options.join(", ")
            )));
        }
        let values = strings(f, key)?;
        // `tag:KEY` without values: the parameters that have the tag KEY.
        if values.is_empty() && key != "Path" && !key.starts_with("tag:") {
            return Err(validation(format!(
                "The following filter values are missing : null for filter key {key}."
            )));
        }
        if key == "Path"
            && let Some(v) = values.iter().find(|v| !v.starts_with('/'))
        {
            return Err(validation(format!(
                "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\". ({v})"
            )));
        }
        out.push(Filter {
            key: key.to_string(),
            option: option.to_string(),
            values,
        });
    }
    Ok(out)
}

/// Whether a parameter (its version `v`, its tags) passes every filter (any of
/// a filter's values).
fn passes(filters: &[Filter], name: &str, v: &Version, tags: &BTreeMap<String, String>) -> bool {
    // A top-level name is the same with or without its leading slash.
    let bare = |n: &str| -> String {
        if pantstack_ssm::top_level(n) {
            n.trim_start_matches('/').to_string()
        } else {
            n.to_string()
        }
    };
    filters.iter().all(|f| {
        let op = |have: &str, want: &str| match f.option.as_str() {
            "BeginsWith" => have.starts_with(want),
            "Contains" => have.contains(want),
            _ => have == want,
        };
        let under = |want: &str| format!("{}/", want.trim_end_matches('/'));
        f.values.iter().any(|want| match f.key.as_str() {
            "Name" if f.option == "Equals" => bare(name) == bare(want),
            "Name" => op(name, want),
            "Type" => op(v.kind.as_str(), want),
            "KeyId" => v.key_id.as_deref().is_some_and(|k| op(k, want)),
            "Tier" => op("Standard", want),
            "DataType" => op("text", want),
            "Path" if f.option == "Recursive" => name.starts_with(&under(want)),
            "Path" => name
                .strip_prefix(&under(want))
                .is_some_and(|r| !r.contains('/')),
            "Label" => v.labels.iter().any(|l| l == want),
            k => k
                .strip_prefix("tag:")
                .and_then(|t| tags.get(t))
                .is_some_and(|have| op(have, want)),
        }) || (f.key == "Path" && f.values.is_empty())
            || (f.values.is_empty()
                && f.key
                    .strip_prefix("tag:")
                    .is_some_and(|t| tags.contains_key(t)))
    })
}

fn p_err(e: PErr) -> ApiError {
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

/// A list of strings member (`Labels`, `TagKeys`); None when not given.
fn string_list(input: &Value, member: &str) -> Result<Option<Vec<String>>, ApiError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad(
                    "SerializationException",
                    format!("{member} must be a list of strings"),
                )
            }),
        Some(_) => Err(ApiError::bad(
            "SerializationException",
            format!("{member} must be a list of strings"),
        )),
    }
}

/// A `Tags` member: a list of `{Key, Value}` (both required), each checked as
/// the SSM `Tag` type is; in the order given, a key given twice keeping its last
/// value.
fn tag_list(input: &Value) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let list = match input.get("Tags") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::bad(
                "SerializationException",
                "Tags must be a list of tags",
            ));
        }
    };
    if list.len() > 1000 {
        return Err(validation(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 1000",
        ));
    }
    let mut out = BTreeMap::new();
    for t in list {
        let (Some(k), Some(v)) = (text(t, "Key"), text(t, "Value")) else {
            return Err(validation(
                "1 validation error detected: Value null at 'tags.member.key' or 'tags.member.value' failed to satisfy constraint: Member must not be null",
            ));
        };
        pantstack_ssm::check_tag(k, v).map_err(p_err)?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(Some(out))
}

/// `ParameterVersion`: a positive integer, if given.
fn parameter_version(input: &Value) -> Result<Option<u64>, ApiError> {
    match input.get("ParameterVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad(
                "SerializationException",
                format!("ParameterVersion {n} is not a version number"),
            )
        }),
        Some(_) => Err(ApiError::bad(
            "SerializationException",
            "ParameterVersion must be a number",
        )),
    }
}

/// The resource types AddTagsToResource and its siblings know
/// (`ResourceTypeForTagging`); only `Parameter` is built here.
const TAGGABLE: &[&str] = &[
    "Document",
    "ManagedInstance",
    "MaintenanceWindow",
    "Parameter",
    "PatchBaseline",
    "OpsItem",
    "OpsMetadata",
    "Automation",
    "Association",
];

/// `MaxResults` (1..=`most`, `most` when not given), refused as AWS's model does.
fn max_results(input: &Value, most: i64) -> Result<i64, ApiError> {
    let max = int(input, "MaxResults")?.unwrap_or(most);
    if max < 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    if max > most {
        return Err(validation(format!(
            "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {most}"
        )));
    }
    Ok(max)
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

    fn arn(&self, name: &str) -> String {
        let n = name.strip_prefix('/').unwrap_or(name);
        format!("arn:aws:ssm:{}:{}:parameter/{n}", self.region, self.account)
    }

    fn value_of(
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

    fn param_json(
        &self,
        keys: &Keyring,
        name: &str,
        v: &Version,
        decrypt: bool,
        selector: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut p = json!({
            "Name": name,
            "Type": v.kind.as_str(),
            "Value": self.value_of(keys, name, v, decrypt)?,
            "Version": v.version,
            "LastModifiedDate": v.modified as f64 / 1000.0,
            "ARN": self.arn(name),
            "DataType": "text",
        });
        if let Some(s) = selector {
            p["Selector"] = json!(s);
        }
        Ok(p)
    }

    fn meta_json(&self, name: &str, v: &Version, user: &str) -> Value {
        let mut p = json!({
            "Name": name,
            "ARN": self.arn(name),
            "Type": v.kind.as_str(),
            "Version": v.version,
            "LastModifiedDate": v.modified as f64 / 1000.0,
            "LastModifiedUser": user,
            "Tier": "Standard",
            "DataType": "text",
            "Policies": [],
        });
        if let Some(k) = &v.key_id {
            p["KeyId"] = json!(k);
        }
        if let Some(d) = &v.description {
            p["Description"] = json!(d);
        }
        p
    }

    /// Handles one action; returns the response and the ops to journal (applied).
    pub fn handle(
        &mut self,
        keys: &Keyring,
        call: &Call,
        now: u64,
        caller: &str,
    ) -> Result<(Value, Vec<Op>), ApiError> {
        let (action, input) = (call.action, &call.input);
        // The parameters come from the parsed call (what IAM checked), never from
        // the input: `Call::parse` moved Name, Names and Path out of it.
        // A name may be an ARN (`iam::parameter_name`: only one of this region and
        // account, whose ARN is the one authorized), and a top-level `name` is
        // `/name` too (`Store::key_of`): resolved to the name stored.
        let (region, account) = (self.region.clone(), self.account.clone());
        let resolve = |store: &Store, raw: &str| -> Result<String, ApiError> {
            let name = crate::iam::parameter_name(&region, &account, raw).ok_or_else(|| {
                ApiError::bad("ParameterNotFound", format!("Parameter {raw} not found."))
            })?;
            let (base, selector) = match name.split_once(':') {
                Some((b, s)) => (b, Some(s)),
                None => (name.as_str(), None),
            };
            Ok(match (store.key_of(base), selector) {
                (Some(k), Some(s)) => format!("{k}:{s}"),
                (Some(k), None) => k.to_string(),
                (None, _) => name.clone(),
            })
        };
        let name_of = || -> Result<String, ApiError> {
            match &call.resource {
                Resource::Parameter(n) => Ok(n.clone()),
                _ => Err(ApiError::bad(
                    "ValidationException",
                    "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null",
                )),
            }
        };
        let names_of = || -> Vec<String> {
            match &call.resource {
                Resource::Parameters(n) => n.clone(),
                _ => Vec::new(),
            }
        };
        // A boolean member, as the JSON protocol sends it; "true" as a string is
        // a SerializationException on AWS.
        let decrypt = match input.get("WithDecryption") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::bad(
                    "SerializationException",
                    "WithDecryption must be a boolean",
                ));
            }
        };
        let mut ops = Vec::new();
        let out = match action {
            "PutParameter" => {
                let name = name_of()?;
                pantstack_ssm::check_name(&name).map_err(p_err)?;
                let name = self.store.key_of(&name).unwrap_or(&name).to_string();
                let value = text(input, "Value").ok_or_else(|| {
                    ApiError::bad("ValidationException", "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
                })?;
                if let Some(pattern) = text(input, "AllowedPattern") {
                    check_pattern(pattern, value)?;
                }
                let overwrite = input
                    .get("Overwrite")
                    .is_some_and(|v| v.as_bool() == Some(true));
                let tags = tag_list(input)?.unwrap_or_default();
                if overwrite && !tags.is_empty() {
                    return Err(validation(
                        "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
                    ));
                }
                let existing = self
                    .store
                    .history(&name)
                    .ok()
                    .and_then(|h| h.last().map(|v| v.kind));
                let kind = match text(input, "Type") {
                    Some(t) => t.to_string(),
                    None => match existing {
                        Some(k) => k.as_str().to_string(),
                        None => {
                            return Err(ApiError::bad(
                                "ValidationException",
                                "A parameter type is required when you create a parameter.",
                            ));
                        }
                    },
                };
                if let Some(tier) = text(input, "Tier")
                    && tier != "Standard"
                    && tier != "Intelligent-Tiering"
                {
                    return Err(ApiError::bad(
                        "ValidationException",
                        format!("Tier {tier} is not supported by the local cloud (Standard only)."),
                    ));
                }
                let secure = kind == "SecureString";
                let key_id = if secure {
                    Some(text(input, "KeyId").unwrap_or(DEFAULT_KEY).to_string())
                } else if let Some(k) = text(input, "KeyId") {
                    return Err(ApiError::bad(
                        "ValidationException",
                        format!("KeyId {k} is only allowed with SecureString parameters."),
                    ));
                } else {
                    None
                };
                let stored = if secure {
                    keys.seal(name.as_bytes(), value.as_bytes())
                        .map_err(ApiError::internal)?
                } else {
                    value.as_bytes().to_vec()
                };
                let op = Op::Put {
                    name,
                    kind,
                    value: crate::b64(&stored),
                    plain_len: value.len(),
                    key_id,
                    description: text(input, "Description").map(str::to_string),
                    overwrite,
                    now,
                    tags,
                };
                let version = self.apply(&op)?;
                ops.push(op);
                json!({ "Version": version, "Tier": "Standard" })
            }
            "GetParameter" => {
                let sel = resolve(&self.store, &name_of()?)?;
                let (name, v) = self.store.get(&sel).map_err(p_err)?;
                let selector = sel.strip_prefix(name).filter(|s| !s.is_empty());
                json!({ "Parameter": self.param_json(keys, name, v, decrypt, selector)? })
            }
            "GetParameters" => {
                let names = names_of();
                if names.is_empty() || names.len() > 10 {
                    return Err(ApiError::bad(
                        "ValidationException",
                        "Names must hold 1..10 parameter names",
                    ));
                }
                let mut params = Vec::new();
                let mut invalid = Vec::new();
                for raw in &names {
                    let found = resolve(&self.store, raw)
                        .ok()
                        .and_then(|sel| self.store.get(&sel).ok().map(|f| (sel, f)));
                    match found {
                        Some((sel, (name, v))) => {
                            let selector = sel.strip_prefix(name).filter(|s| !s.is_empty());
                            params.push(self.param_json(keys, name, v, decrypt, selector)?);
                        }
                        None => invalid.push(raw.clone()),
                    }
                }
                json!({ "Parameters": params, "InvalidParameters": invalid })
            }
            "GetParametersByPath" => {
                let Resource::Path(path) = &call.resource else {
                    return Err(ApiError::bad(
                        "ValidationException",
                        "1 validation error detected: Value null at 'path' failed to satisfy constraint: Member must not be null",
                    ));
                };
                let path = path.as_str();
                let recursive = input
                    .get("Recursive")
                    .is_some_and(|v| v.as_bool() == Some(true));
                let max = max_results(input, 10)?;
                let filters = filters(input, Filtered::ByPath)?;
                let after = text(input, "NextToken").unwrap_or("");
                let all = self.store.by_path(path, recursive).map_err(p_err)?;
                // With a `Label` filter, the version that carries the label is
                // the one returned (the latest of them, for several labels).
                let label = filters.iter().find(|f| f.key == "Label");
                let no_tags = BTreeMap::new();
                let rest: Vec<_> =
                    all.into_iter()
                        .filter_map(|(n, latest)| {
                            let v =
                                match label {
                                    None => latest,
                                    Some(f) => {
                                        self.store.history(n).ok()?.iter().rev().find(|v| {
                                            v.labels.iter().any(|l| f.values.contains(l))
                                        })?
                                    }
                                };
                            (n > after && passes(&filters, n, v, &no_tags)).then_some((n, v))
                        })
                        .collect();
                let mut params = Vec::new();
                for (name, v) in rest.iter().take(max as usize) {
                    params.push(self.param_json(keys, name, v, decrypt, None)?);
                }
                let mut out = json!({ "Parameters": params });
                if rest.len() > max as usize {
                    out["NextToken"] = json!(rest[max as usize - 1].0);
                }
                out
            }
            "DeleteParameter" => {
                let op = Op::Delete {
                    name: resolve(&self.store, &name_of()?)?,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "DeleteParameters" => {
                let names = names_of();
                if names.is_empty() || names.len() > 10 {
                    return Err(ApiError::bad(
                        "ValidationException",
                        "Names must hold 1..10 parameter names",
                    ));
                }
                let mut deleted = Vec::new();
                let mut invalid = Vec::new();
                for n in names {
                    let Ok(name) = resolve(&self.store, &n) else {
                        invalid.push(n);
                        continue;
                    };
                    let op = Op::Delete { name };
                    match self.apply(&op) {
                        Ok(_) => {
                            ops.push(op);
                            deleted.push(n);
                        }
                        Err(_) => invalid.push(n),
                    }
                }
                json!({ "DeletedParameters": deleted, "InvalidParameters": invalid })
            }
            "DescribeParameters" => {
                let filters = filters(input, Filtered::Describe)?;
                let max = max_results(input, 50)? as usize;
                let after = text(input, "NextToken").unwrap_or("");
                let no_tags = BTreeMap::new();
                let matches = |name: &str, v: &Version| {
                    let tags = self.store.tags(name).unwrap_or(&no_tags);
                    passes(&filters, name, v, tags)
                };
                let all: Vec<_> = self
                    .store
                    .describe()
                    .into_iter()
                    .filter(|(n, v)| *n > after && matches(n, v))
                    .collect();
                let page: Vec<Value> = all
                    .iter()
                    .take(max)
                    .map(|(n, v)| self.meta_json(n, v, caller))
                    .collect();
                let mut out = json!({ "Parameters": page });
                if all.len() > max {
                    out["NextToken"] = json!(all[max - 1].0);
                }
                out
            }
            "GetParameterHistory" => {
                // Oldest first, at most MaxResults (1..=50) a page; NextToken names
                // the last version given.
                let name = resolve(&self.store, &name_of()?)?;
                let history = self.store.history(&name).map_err(p_err)?;
                let max = max_results(input, 50)? as usize;
                let after = match text(input, "NextToken") {
                    None => 0,
                    Some(t) => t.parse::<u64>().map_err(|_| {
                        ApiError::bad("InvalidNextToken", "The specified token is not valid.")
                    })?,
                };
                let rest: Vec<&Version> = history.iter().filter(|v| v.version > after).collect();
                let mut out = Vec::new();
                for v in rest.iter().take(max) {
                    let mut m = self.meta_json(&name, v, caller);
                    m["Value"] = json!(self.value_of(keys, &name, v, decrypt)?);
                    m["Labels"] = json!(v.labels);
                    out.push(m);
                }
                let mut page = json!({ "Parameters": out });
                if rest.len() > max {
                    page["NextToken"] = json!(rest[max - 1].version.to_string());
                }
                page
            }
            "LabelParameterVersion" => {
                let name = resolve(&self.store, &name_of()?)?;
                let labels = string_list(input, "Labels")?.ok_or_else(|| {
                    validation("1 validation error detected: Value null at 'labels' failed to satisfy constraint: Member must not be null")
                })?;
                let version = parameter_version(input)?;
                let (version, invalid) =
                    self.store.label(&name, version, &labels).map_err(p_err)?;
                // What was attached (the valid labels), journaled as applied.
                let attached: Vec<String> = labels
                    .iter()
                    .filter(|l| !invalid.contains(l))
                    .cloned()
                    .collect();
                if !attached.is_empty() {
                    let key = self.store.key_of(&name).unwrap_or(&name).to_string();
                    ops.push(Op::Label {
                        name: key,
                        version,
                        labels: attached,
                    });
                }
                json!({ "InvalidLabels": invalid, "ParameterVersion": version })
            }
            "UnlabelParameterVersion" => {
                let name = resolve(&self.store, &name_of()?)?;
                let version = parameter_version(input)?.ok_or_else(|| {
                    validation("1 validation error detected: Value null at 'parameterVersion' failed to satisfy constraint: Member must not be null")
                })?;
                let labels = string_list(input, "Labels")?.ok_or_else(|| {
                    validation("1 validation error detected: Value null at 'labels' failed to satisfy constraint: Member must not be null")
                })?;
                let (removed, invalid) =
                    self.store.unlabel(&name, version, &labels).map_err(p_err)?;
                if !removed.is_empty() {
                    let key = self.store.key_of(&name).unwrap_or(&name).to_string();
                    ops.push(Op::Unlabel {
                        name: key,
                        version,
                        labels: removed.clone(),
                    });
                }
                json!({ "RemovedLabels": removed, "InvalidLabels": invalid })
            }
            "AddTagsToResource" | "RemoveTagsFromResource" | "ListTagsForResource" => {
                let name = self.tagged(call, &resolve)?;
                match action {
                    "AddTagsToResource" => {
                        let tags = tag_list(input)?.ok_or_else(|| {
                            validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
                        })?;
                        if !tags.is_empty() {
                            let op = Op::Tag { name, tags };
                            self.apply(&op)?;
                            ops.push(op);
                        }
                        json!({})
                    }
                    "RemoveTagsFromResource" => {
                        let keys = string_list(input, "TagKeys")?.ok_or_else(|| {
                            validation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
                        })?;
                        let had = self.store.tags(&name).cloned().unwrap_or_default();
                        let keys: Vec<String> =
                            keys.into_iter().filter(|k| had.contains_key(k)).collect();
                        if !keys.is_empty() {
                            let op = Op::Untag { name, keys };
                            self.apply(&op)?;
                            ops.push(op);
                        }
                        json!({})
                    }
                    _ => {
                        let list: Vec<Value> = self
                            .store
                            .tags(&name)
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| json!({ "Key": k, "Value": v }))
                            .collect();
                        json!({ "TagList": list })
                    }
                }
            }
            other => {
                return Err(ApiError::bad(
                    "UnknownOperationException",
                    format!("The action {other} is not supported by the local cloud's SSM."),
                ));
            }
        };
        Ok((out, ops))
    }

    /// The parameter a tagging call names: its `ResourceType` must be
    /// `Parameter` (another type AWS knows is `InvalidResourceType` here, as no
    /// other resource exists), its `ResourceId` the name or ARN of a parameter
    /// that exists, else `InvalidResourceId`.
    fn tagged(
        &self,
        call: &Call,
        resolve: &dyn Fn(&Store, &str) -> Result<String, ApiError>,
    ) -> Result<String, ApiError> {
        let kind = text(&call.input, "ResourceType").ok_or_else(|| {
            validation("1 validation error detected: Value null at 'resourceType' failed to satisfy constraint: Member must not be null")
        })?;
        if !TAGGABLE.contains(&kind) {
            return Err(validation(format!(
                "1 validation error detected: Value '{kind}' at 'resourceType' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                TAGGABLE.join(", ")
            )));
        }
        let invalid_id = || {
            ApiError::bad(
                "InvalidResourceId",
                "The resource ID isn't valid. Verify that you entered the correct ID and try again.",
            )
        };
        let raw = match (&call.resource, kind) {
            (Resource::Parameter(raw), "Parameter") => raw,
            (_, "Parameter") => return Err(invalid_id()),
            _ => {
                return Err(ApiError::bad(
                    "InvalidResourceType",
                    format!(
                        "The resource type isn't valid: the local cloud's SSM has parameters only, not {kind} resources."
                    ),
                ));
            }
        };
        let name = resolve(&self.store, raw).map_err(|_| invalid_id())?;
        if name.contains(':') {
            return Err(invalid_id());
        }
        self.store
            .key_of(&name)
            .map(str::to_string)
            .ok_or_else(invalid_id)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::request::Service;

    #[test]
    fn allowed_pattern_is_enforced() {
        let dir = std::env::temp_dir().join(format!("pantstack-ssm-{}", std::process::id()));
        let keys = Keyring::open_or_create(&dir.join("k.key")).unwrap();
        let mut p = Params::new("us-east-1", "000000000000");
        let mut put = |value: &str, pattern: &str| {
            let c = Call::parse(
                Service::Ssm,
                "PutParameter",
                json!({"Name": "/n", "Value": value, "Type": "String", "AllowedPattern": pattern, "Overwrite": true}),
                None,
            )
            .unwrap();
            p.handle(&keys, &c, 1, "t").map(|_| ()).map_err(|e| e.code)
        };
        assert_eq!(put("123", r"^\d+$"), Ok(()));
        assert_eq!(
            put("12a", r"^\d+$"),
            Err("ParameterPatternMismatchException".to_string())
        );
        assert_eq!(
            put("1", "(unclosed"),
            Err("InvalidAllowedPatternException".to_string())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
