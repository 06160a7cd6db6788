//! SSM Parameter Store as a pure model: parameter names and hierarchies, types,
//! versions and history, labels (moved between versions, at most 10 a version),
//! tags (at most 50 a parameter), reads by name, by `name:version`,
//! `name:label` and by path, and the errors AWS names. Values are opaque here: the endpoint encrypts
//! SecureString values before they reach this model and decrypts on the way out,
//! and persists every change in the durable log before acknowledging it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

/// History kept per parameter (AWS keeps 100 versions).
pub const MAX_VERSIONS: usize = 100;
pub const MAX_NAME: usize = 2048;
pub const MAX_DEPTH: usize = 15;
/// Standard tier value limit.
pub const MAX_VALUE: usize = 4096;
/// Labels a version may carry, and labels one LabelParameterVersion may give.
pub const MAX_LABELS: usize = 10;
/// A label's length.
pub const MAX_LABEL: usize = 100;
/// Tags a parameter may carry.
pub const MAX_TAGS: usize = 50;
/// A tag key's and a tag value's length.
pub const MAX_TAG_KEY: usize = 128;
pub const MAX_TAG_VALUE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    StringList,
    SecureString,
}

impl Type {
    pub fn parse(s: &str) -> Option<Type> {
        match s {
            "String" => Some(Type::String),
            "StringList" => Some(Type::StringList),
            "SecureString" => Some(Type::SecureString),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Type::String => "String",
            Type::StringList => "StringList",
            Type::SecureString => "SecureString",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `ValidationException`.
    Validation(String),
    /// `ParameterNotFound`.
    NotFound(String),
    /// `ParameterAlreadyExists`.
    AlreadyExists(String),
    /// `ParameterVersionNotFound`.
    VersionNotFound(String),
    /// `HierarchyTypeMismatchException` (type changed on overwrite).
    TypeMismatch(String),
    /// `ParameterVersionLabelNotFound` (a `name:label` no version carries).
    LabelNotFound(String),
    /// `ParameterVersionLabelLimitExceeded` (a version with more than 10 labels).
    LabelLimit(String),
    /// `ParameterMaxVersionLimitExceeded` (the oldest of 100 versions is labeled).
    MaxVersions(String),
    /// `TooManyTagsError` (more than 50 tags on a parameter).
    TooManyTags(String),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "ValidationException",
            Error::NotFound(_) => "ParameterNotFound",
            Error::AlreadyExists(_) => "ParameterAlreadyExists",
            Error::VersionNotFound(_) => "ParameterVersionNotFound",
            Error::TypeMismatch(_) => "HierarchyTypeMismatchException",
            Error::LabelNotFound(_) => "ParameterVersionLabelNotFound",
            Error::LabelLimit(_) => "ParameterVersionLabelLimitExceeded",
            Error::MaxVersions(_) => "ParameterMaxVersionLimitExceeded",
            Error::TooManyTags(_) => "TooManyTagsError",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub version: u64,
    pub kind: Type,
    /// For SecureString: the ciphertext, as the endpoint stores it.
    pub value: Vec<u8>,
    pub key_id: Option<String>,
    pub description: Option<String>,
    /// Milliseconds since the epoch.
    pub modified: u64,
    /// The labels this version carries (a label is on one version of a
    /// parameter at most), in the order they were attached.
    pub labels: Vec<String>,
}

/// A parameter found: its name and the version read.
pub type Found<'s> = (&'s str, &'s Version);

#[derive(Clone, Debug, Default)]
pub struct Store {
    /// By full name (`/shop/test/api/API_TOKEN`); the last version last.
    params: BTreeMap<String, Vec<Version>>,
    /// Tags by parameter name (only parameters that have some).
    tags: BTreeMap<String, BTreeMap<String, String>>,
}

/// Whether `label` is one AWS attaches (LabelParameterVersion lists the others
/// in `InvalidLabels`): letters, digits, `.`, `-`, `_`, not beginning with a
/// digit, `aws` or `ssm` (case-insensitive). Its length (1..100) is checked as
/// the request's: a ValidationException.
pub fn valid_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        && !label.starts_with(|c: char| c.is_ascii_digit())
        && !lower.starts_with("aws")
        && !lower.starts_with("ssm")
}

/// Checks the labels of a LabelParameterVersion or UnlabelParameterVersion as
/// AWS's model does: 1..10 labels of 1..100 characters.
pub fn check_labels(labels: &[String]) -> Result<(), Error> {
    if labels.is_empty() || labels.len() > MAX_LABELS {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value at 'labels' failed to satisfy constraint: Member must have length less than or equal to {MAX_LABELS}, Member must have length greater than or equal to 1"
        )));
    }
    if let Some(l) = labels
        .iter()
        .find(|l| l.is_empty() || l.chars().count() > MAX_LABEL)
    {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '[{l}]' at 'labels' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to {MAX_LABEL}, Member must have length greater than or equal to 1]"
        )));
    }
    Ok(())
}

/// Checks one tag as the SSM `Tag` type does: a key of 1..128 and a value of
/// 0..256 characters, both of letters, digits, spaces and `_.:/=+-@`.
pub fn check_tag(key: &str, value: &str) -> Result<(), Error> {
    let allowed = |s: &str| {
        s.chars().all(|c| {
            c.is_alphanumeric()
                || c == ' '
                || (c.is_whitespace() && !c.is_control())
                || "_.:/=+-@".contains(c)
        })
    };
    let klen = key.chars().count();
    if klen == 0 || klen > MAX_TAG_KEY || !allowed(key) {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{key}' at 'tags.key' failed to satisfy constraint: Member must have length 1..{MAX_TAG_KEY} and satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*)$"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Error::Validation(format!(
            "Tag key {key} uses the prefix aws:, which is reserved for AWS use"
        )));
    }
    if value.chars().count() > MAX_TAG_VALUE || !allowed(value) {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{value}' at 'tags.value' failed to satisfy constraint: Member must have length 0..{MAX_TAG_VALUE} and satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*)$"
        )));
    }
    Ok(())
}

/// Checks a parameter name as AWS does.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::Validation(format!(
            "parameter name must be 1..{MAX_NAME} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(Error::Validation(format!(
            "parameter name `{name}` contains `{c}`: only a-zA-Z0-9_.-/ are allowed"
        )));
    }
    let lower = name.trim_start_matches('/').to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return Err(Error::Validation(format!(
            "parameter name `{name}` must not begin with aws or ssm (case-insensitive)"
        )));
    }
    if name.contains('/') {
        if !name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(Error::Validation(format!(
                "parameter name `{name}`: a hierarchy must start with `/`, not end with `/` and have no empty level"
            )));
        }
        if name.matches('/').count() > MAX_DEPTH {
            return Err(Error::Validation(format!(
                "parameter name `{name}` has more than {MAX_DEPTH} levels"
            )));
        }
    }
    Ok(())
}

/// What a `name:selector` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Select<'a> {
    Latest,
    Version(u64),
    Label(&'a str),
}

/// `name`, `name:version` or `name:label`.
fn selector(s: &str) -> Result<(&str, Select<'_>), Error> {
    match s.rsplit_once(':') {
        Some((n, v)) if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() => {
            let v = v
                .parse()
                .map_err(|_| Error::Validation(format!("bad version in `{s}`")))?;
            Ok((n, Select::Version(v)))
        }
        Some((n, l)) if !l.is_empty() => Ok((n, Select::Label(l))),
        Some(_) => Err(Error::Validation(format!(
            "`{s}`: a selector is a version number or a label"
        ))),
        None => Ok((s, Select::Latest)),
    }
}

/// Whether `name` is top-level (no hierarchy): `name` or `/name`.
pub fn top_level(name: &str) -> bool {
    !name.strip_prefix('/').unwrap_or(name).contains('/')
}

impl Store {
    /// The stored name `name` refers to: itself, or for a top-level name the
    /// same name with or without its leading slash ("For parameters that aren't
    /// in a hierarchy, the leading slash is optional": `name` and `/name` are one
    /// parameter). The exact name wins when both exist (journals written before
    /// the two were one).
    pub fn key_of<'s>(&'s self, name: &str) -> Option<&'s str> {
        if let Some((k, _)) = self.params.get_key_value(name) {
            return Some(k.as_str());
        }
        if name.is_empty() || !top_level(name) {
            return None;
        }
        let other = match name.strip_prefix('/') {
            Some(bare) => bare.to_string(),
            None => format!("/{name}"),
        };
        self.params.get_key_value(&other).map(|(k, _)| k.as_str())
    }

    /// Every parameter with its kept versions (oldest first), by name: with
    /// `restore`, an exact image of the store.
    pub fn all(&self) -> impl Iterator<Item = (&str, &[Version])> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Puts a parameter of an image back (its versions with their labels, and
    /// its tags), replacing what the name held.
    pub fn restore(
        &mut self,
        name: String,
        versions: Vec<Version>,
        tags: BTreeMap<String, String>,
    ) {
        if versions.is_empty() {
            self.params.remove(&name);
            self.tags.remove(&name);
            return;
        }
        if tags.is_empty() {
            self.tags.remove(&name);
        } else {
            self.tags.insert(name.clone(), tags);
        }
        self.params.insert(name, versions);
    }

    /// The tags of a parameter (empty if it has none); None if it does not exist.
    pub fn tags(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        let key = self.key_of(name)?;
        Some(self.tags.get(key).unwrap_or(&NONE))
    }

    /// AddTagsToResource: adds or overwrites tags; refused whole when a tag is
    /// not valid or the parameter would carry more than 50.
    pub fn add_tags(&mut self, name: &str, tags: &[(String, String)]) -> Result<(), Error> {
        for (k, v) in tags {
            check_tag(k, v)?;
        }
        let key = self
            .key_of(name)
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?
            .to_string();
        let mut after = self.tags.get(&key).cloned().unwrap_or_default();
        for (k, v) in tags {
            after.insert(k.clone(), v.clone());
        }
        if after.len() > MAX_TAGS {
            return Err(Error::TooManyTags(format!(
                "The parameter {key} would have {} tags: a parameter can have at most {MAX_TAGS}.",
                after.len()
            )));
        }
        if after.is_empty() {
            self.tags.remove(&key);
        } else {
            self.tags.insert(key, after);
        }
        Ok(())
    }

    /// RemoveTagsFromResource: removes the tags with these keys (keys it does
    /// not have are ignored).
    pub fn remove_tags(&mut self, name: &str, keys: &[String]) -> Result<(), Error> {
        let key = self
            .key_of(name)
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?
            .to_string();
        if let Some(tags) = self.tags.get_mut(&key) {
            for k in keys {
                tags.remove(k);
            }
            if tags.is_empty() {
                self.tags.remove(&key);
            }
        }
        Ok(())
    }

    /// LabelParameterVersion: attaches the valid labels to `version` (the latest
    /// when None), moving each from another version that carries it. Returns
    /// the version labeled and the labels not valid (`InvalidLabels`: not
    /// attached). Nothing changes when it fails.
    pub fn label(
        &mut self,
        name: &str,
        version: Option<u64>,
        labels: &[String],
    ) -> Result<(u64, Vec<String>), Error> {
        check_labels(labels)?;
        let key = self
            .key_of(name)
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?
            .to_string();
        let versions = self
            .params
            .get_mut(&key)
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?;
        let target = match version {
            None => versions.len().checked_sub(1),
            Some(n) => versions.iter().position(|v| v.version == n),
        }
        .ok_or_else(|| {
            Error::VersionNotFound(format!(
                "Systems Manager could not find version {} of {key}. Verify the version and try again.",
                version.unwrap_or(0)
            ))
        })?;
        let (valid, invalid): (Vec<&String>, Vec<&String>) =
            labels.iter().partition(|l| valid_label(l));
        let mut after = versions[target].labels.clone();
        for l in valid {
            if !after.contains(l) {
                after.push(l.clone());
            }
        }
        if after.len() > MAX_LABELS {
            return Err(Error::LabelLimit(format!(
                "A parameter version can have maximum {MAX_LABELS} labels. Move one or more labels to another version and try again."
            )));
        }
        for (i, v) in versions.iter_mut().enumerate() {
            if i != target {
                v.labels.retain(|l| !after.contains(l));
            }
        }
        versions[target].labels = after;
        Ok((
            versions[target].version,
            invalid.into_iter().cloned().collect(),
        ))
    }

    /// UnlabelParameterVersion: removes labels from `version`. Returns the labels
    /// removed and the ones that version did not carry (`InvalidLabels`).
    pub fn unlabel(
        &mut self,
        name: &str,
        version: u64,
        labels: &[String],
    ) -> Result<(Vec<String>, Vec<String>), Error> {
        check_labels(labels)?;
        let key = self
            .key_of(name)
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?
            .to_string();
        let v = self
            .params
            .get_mut(&key)
            .and_then(|vs| vs.iter_mut().find(|v| v.version == version))
            .ok_or_else(|| {
                Error::VersionNotFound(format!(
                    "Systems Manager could not find version {version} of {key}. Verify the version and try again."
                ))
            })?;
        let mut removed = Vec::new();
        let mut invalid = Vec::new();
        for l in labels {
            if let Some(i) = v.labels.iter().position(|x| x == l) {
                v.labels.remove(i);
                removed.push(l.clone());
            } else if !removed.contains(l) && !invalid.contains(l) {
                invalid.push(l.clone());
            }
        }
        Ok((removed, invalid))
    }

    /// PutParameter; returns the new version.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        name: &str,
        kind: Type,
        value: Vec<u8>,
        plaintext_len: usize,
        key_id: Option<&str>,
        description: Option<&str>,
        overwrite: bool,
        now: u64,
    ) -> Result<u64, Error> {
        check_name(name)?;
        if plaintext_len == 0 || plaintext_len > MAX_VALUE {
            return Err(Error::Validation(format!(
                "parameter value must be 1..{MAX_VALUE} bytes (standard tier)"
            )));
        }
        if key_id.is_some() && kind != Type::SecureString {
            return Err(Error::Validation(
                "KeyId is only allowed with SecureString".into(),
            ));
        }
        let versions = self.params.entry(name.to_string()).or_default();
        if let Some(last) = versions.last() {
            if !overwrite {
                return Err(Error::AlreadyExists(format!(
                    "The parameter already exists. To overwrite this value, set the overwrite option in the request to true. ({name})"
                )));
            }
            if last.kind != kind {
                return Err(Error::TypeMismatch(format!(
                    "{name} is a {}; it cannot be overwritten as a {}",
                    last.kind.as_str(),
                    kind.as_str()
                )));
            }
        }
        if versions.len() >= MAX_VERSIONS
            && let Some(oldest) = versions.first()
            && !oldest.labels.is_empty()
        {
            return Err(Error::MaxVersions(format!(
                "You attempted to create a new version of {name} by calling the PutParameter API with the overwrite flag. Version {}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again.",
                oldest.version
            )));
        }
        let version = versions.last().map(|v| v.version + 1).unwrap_or(1);
        versions.push(Version {
            version,
            kind,
            value,
            key_id: key_id.map(str::to_string),
            description: description
                .map(str::to_string)
                .or_else(|| versions.last().and_then(|v| v.description.clone())),
            modified: now,
            labels: Vec::new(),
        });
        if versions.len() > MAX_VERSIONS {
            versions.remove(0);
        }
        Ok(version)
    }

    /// GetParameter by `name`, `name:version` or `name:label`.
    pub fn get(&self, selector_text: &str) -> Result<(&str, &Version), Error> {
        let (name, select) = selector(selector_text)?;
        let (key, versions) = self
            .key_of(name)
            .and_then(|k| self.params.get_key_value(k))
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?;
        match select {
            Select::Latest => versions
                .last()
                .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found."))),
            Select::Version(n) => versions.iter().find(|v| v.version == n).ok_or_else(|| {
                Error::VersionNotFound(format!("Version {n} of parameter {name} not found."))
            }),
            Select::Label(l) => versions
                .iter()
                .find(|v| v.labels.iter().any(|x| x == l))
                .ok_or_else(|| {
                    Error::LabelNotFound(format!(
                        "Systems Manager could not find label {l} for parameter {name}. Verify the label and try again."
                    ))
                }),
        }
        .map(|v| (key.as_str(), v))
    }

    /// The version of `name` that carries `label`, if one does.
    pub fn labeled(&self, name: &str, label: &str) -> Option<&Version> {
        self.params
            .get(name)?
            .iter()
            .find(|v| v.labels.iter().any(|x| x == label))
    }

    /// GetParameters: found ones, and the invalid names (AWS does not fail the call).
    pub fn get_many<'a>(
        &self,
        names: &'a [String],
    ) -> Result<(Vec<Found<'_>>, Vec<&'a str>), Error> {
        if names.is_empty() || names.len() > 10 {
            return Err(Error::Validation(
                "Names must hold 1..10 parameter names".into(),
            ));
        }
        let mut found = Vec::new();
        let mut invalid = Vec::new();
        for n in names {
            match self.get(n) {
                Ok(p) => found.push(p),
                Err(_) => invalid.push(n.as_str()),
            }
        }
        Ok((found, invalid))
    }

    /// GetParametersByPath: the latest version of every parameter under `path`
    /// (directly, or at any depth with `recursive`), in name order.
    pub fn by_path(&self, path: &str, recursive: bool) -> Result<Vec<(&str, &Version)>, Error> {
        if !path.starts_with('/') || path.len() > MAX_NAME {
            return Err(Error::Validation(format!(
                "path `{path}` must start with `/`"
            )));
        }
        let prefix = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        Ok(self
            .params
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| recursive || !k[prefix.len()..].contains('/'))
            .filter_map(|(k, v)| v.last().map(|l| (k.as_str(), l)))
            .collect())
    }

    /// DeleteParameter (every version, with its labels and tags).
    pub fn delete(&mut self, name: &str) -> Result<(), Error> {
        self.tags.remove(name);
        self.params
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))
    }

    /// GetParameterHistory: every kept version, oldest first.
    pub fn history(&self, name: &str) -> Result<&[Version], Error> {
        self.key_of(name)
            .and_then(|k| self.params.get(k))
            .map(|v| v.as_slice())
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))
    }

    /// Every stored version, for re-encryption under a new key.
    pub fn versions_mut(&mut self) -> impl Iterator<Item = (&str, &mut Version)> {
        self.params
            .iter_mut()
            .flat_map(|(k, vs)| vs.iter_mut().map(move |v| (k.as_str(), v)))
    }

    /// Replaces the stored value of one version (re-encryption); false if it is gone.
    pub fn set_value(&mut self, name: &str, version: u64, value: Vec<u8>) -> bool {
        match self
            .params
            .get_mut(name)
            .and_then(|vs| vs.iter_mut().find(|v| v.version == version))
        {
            Some(v) => {
                v.value = value;
                true
            }
            None => false,
        }
    }

    /// DescribeParameters: names and latest versions (metadata; values not needed).
    pub fn describe(&self) -> Vec<(&str, &Version)> {
        self.params
            .iter()
            .filter_map(|(k, v)| v.last().map(|l| (k.as_str(), l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(s: &mut Store, name: &str, value: &str, overwrite: bool) -> Result<u64, Error> {
        s.put(
            name,
            Type::String,
            value.as_bytes().to_vec(),
            value.len(),
            None,
            None,
            overwrite,
            1,
        )
    }

    #[test]
    fn versions_overwrite_and_history() {
        let mut s = Store::default();
        assert_eq!(put(&mut s, "/shop/test/api/URL", "a", false), Ok(1));
        assert_eq!(
            put(&mut s, "/shop/test/api/URL", "b", false)
                .unwrap_err()
                .code(),
            "ParameterAlreadyExists"
        );
        assert_eq!(put(&mut s, "/shop/test/api/URL", "b", true), Ok(2));
        assert_eq!(s.get("/shop/test/api/URL").unwrap().1.value, b"b");
        assert_eq!(s.get("/shop/test/api/URL:1").unwrap().1.value, b"a");
        assert_eq!(
            s.get("/shop/test/api/URL:9").unwrap_err().code(),
            "ParameterVersionNotFound"
        );
        assert_eq!(s.history("/shop/test/api/URL").unwrap().len(), 2);
        let e = s
            .put(
                "/shop/test/api/URL",
                Type::SecureString,
                b"x".to_vec(),
                1,
                None,
                None,
                true,
                2,
            )
            .unwrap_err();
        assert_eq!(e.code(), "HierarchyTypeMismatchException");
        for i in 0..150 {
            put(&mut s, "/many", &format!("v{i}"), true).unwrap();
        }
        assert_eq!(s.history("/many").unwrap().len(), MAX_VERSIONS);
        assert_eq!(s.history("/many").unwrap()[0].version, 51);
    }

    #[test]
    fn paths_recursive_or_not_and_many() {
        let mut s = Store::default();
        for n in [
            "/shop/test/api/A",
            "/shop/test/api/B",
            "/shop/test/api/deep/C",
            "/shop/test/other/D",
            "/shop/testing/E",
        ] {
            put(&mut s, n, "v", false).unwrap();
        }
        let names = |v: Vec<(&str, &Version)>| {
            v.into_iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(s.by_path("/shop/test/api", false).unwrap()),
            ["/shop/test/api/A", "/shop/test/api/B"]
        );
        assert_eq!(
            names(s.by_path("/shop/test/api/", true).unwrap()),
            [
                "/shop/test/api/A",
                "/shop/test/api/B",
                "/shop/test/api/deep/C"
            ]
        );
        assert_eq!(
            names(s.by_path("/shop/test", true).unwrap()).len(),
            4,
            "not /shop/testing"
        );
        let req = vec!["/shop/test/api/A".to_string(), "/nope".to_string()];
        let (found, invalid) = s.get_many(&req).unwrap();
        assert_eq!((found.len(), invalid), (1, vec!["/nope"]));
        s.delete("/shop/test/api/A").unwrap();
        assert_eq!(
            s.delete("/shop/test/api/A").unwrap_err().code(),
            "ParameterNotFound"
        );
        assert_eq!(s.describe().len(), 4);
    }

    #[test]
    fn names_and_values_are_validated() {
        for bad in [
            "",
            "/a/",
            "a/b",
            "/a//b",
            "/aws/x",
            "ssm-thing",
            "/a b",
            "/x?",
        ] {
            assert_eq!(
                check_name(bad).unwrap_err().code(),
                "ValidationException",
                "{bad}"
            );
        }
        assert!(check_name(&format!("/{}", ["l"; 15].join("/"))).is_ok());
        assert!(check_name(&format!("/{}", ["l"; 16].join("/"))).is_err());
        assert!(check_name("plain_name-1.2").is_ok());
        let mut s = Store::default();
        assert_eq!(
            put(&mut s, "/big", &"x".repeat(MAX_VALUE + 1), false)
                .unwrap_err()
                .code(),
            "ValidationException"
        );
        assert_eq!(
            s.put(
                "/k",
                Type::String,
                b"v".to_vec(),
                1,
                Some("alias/x"),
                None,
                false,
                0
            )
            .unwrap_err()
            .code(),
            "ValidationException"
        );
        assert!(s.get("/x:label").is_err());
    }

    fn labels_of(s: &Store, name: &str) -> Vec<(u64, Vec<String>)> {
        s.history(name)
            .unwrap()
            .iter()
            .map(|v| (v.version, v.labels.clone()))
            .collect()
    }

    fn strings(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_move_between_versions_and_are_limited() {
        let mut s = Store::default();
        for v in ["a", "b", "c"] {
            put(&mut s, "/app/url", v, true).unwrap();
        }
        // The latest version when none is given; invalid labels are listed, not attached.
        let (v, invalid) = s
            .label(
                "/app/url",
                None,
                &strings(&["prod", "1st", "AWSx", "ssm-x", "a b", "ok.-_"]),
            )
            .unwrap();
        assert_eq!(v, 3);
        assert_eq!(invalid, strings(&["1st", "AWSx", "ssm-x", "a b"]));
        assert_eq!(
            labels_of(&s, "/app/url"),
            vec![(1, vec![]), (2, vec![]), (3, strings(&["prod", "ok.-_"]))]
        );
        assert_eq!(s.get("/app/url:prod").unwrap().1.value, b"c");
        // A label moves from the version that had it.
        s.label("/app/url", Some(1), &strings(&["prod", "old"]))
            .unwrap();
        assert_eq!(
            labels_of(&s, "/app/url"),
            vec![
                (1, strings(&["prod", "old"])),
                (2, vec![]),
                (3, strings(&["ok.-_"]))
            ]
        );
        assert_eq!(s.get("/app/url:prod").unwrap().1.value, b"a");
        assert_eq!(
            s.get("/app/url:nope").unwrap_err().code(),
            "ParameterVersionLabelNotFound"
        );
        // At most 10 labels a version: refused whole, nothing moved.
        let eight: Vec<String> = (0..8).map(|i| format!("l{i}")).collect();
        s.label("/app/url", Some(2), &eight).unwrap();
        let e = s
            .label("/app/url", Some(2), &strings(&["prod", "ok.-_", "x"]))
            .unwrap_err();
        assert_eq!(e.code(), "ParameterVersionLabelLimitExceeded");
        assert_eq!(s.get("/app/url:prod").unwrap().1.version, 1);
        // Re-attaching a label a version has counts once.
        s.label("/app/url", Some(2), &strings(&["l0", "prod", "old"]))
            .unwrap();
        assert_eq!(s.history("/app/url").unwrap()[1].labels.len(), 10);
        // Request limits: 1..10 labels of 1..100 characters.
        for bad in [vec![], strings(&["x"; 11]), vec!["x".repeat(101)]] {
            assert_eq!(
                s.label("/app/url", None, &bad).unwrap_err().code(),
                "ValidationException"
            );
        }
        assert_eq!(
            s.label("/app/url", Some(9), &strings(&["x"]))
                .unwrap_err()
                .code(),
            "ParameterVersionNotFound"
        );
        assert_eq!(
            s.label("/nope", None, &strings(&["x"])).unwrap_err().code(),
            "ParameterNotFound"
        );
        // Unlabel: removed, and the labels that version does not carry.
        let (removed, invalid) = s
            .unlabel("/app/url", 2, &strings(&["prod", "l1", "ok.-_"]))
            .unwrap();
        assert_eq!(
            (removed, invalid),
            (strings(&["prod", "l1"]), strings(&["ok.-_"]))
        );
        assert!(s.labeled("/app/url", "prod").is_none());
        assert_eq!(s.labeled("/app/url", "ok.-_").unwrap().version, 3);
        // The oldest of 100 versions cannot be dropped while it is labeled.
        s.label("/app/url", Some(1), &strings(&["keep"])).unwrap();
        for i in 0..97 {
            put(&mut s, "/app/url", &format!("v{i}"), true).unwrap();
        }
        assert_eq!(s.history("/app/url").unwrap().len(), MAX_VERSIONS);
        assert_eq!(
            put(&mut s, "/app/url", "more", true).unwrap_err().code(),
            "ParameterMaxVersionLimitExceeded"
        );
        s.label("/app/url", None, &strings(&["keep"])).unwrap();
        put(&mut s, "/app/url", "more", true).unwrap();
        assert_eq!(s.history("/app/url").unwrap()[0].version, 2);
        // Deleting the parameter removes its labels with it.
        s.delete("/app/url").unwrap();
        put(&mut s, "/app/url", "new", false).unwrap();
        assert!(s.labeled("/app/url", "keep").is_none());
    }

    #[test]
    fn tags_are_limited_and_go_with_the_parameter() {
        let mut s = Store::default();
        put(&mut s, "top", "v", false).unwrap();
        let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
        s.add_tags("/top", &[tag("team", "a"), tag("env", "")])
            .unwrap();
        s.add_tags("top", &[tag("team", "b")]).unwrap();
        let have: Vec<_> = s.tags("top").unwrap().clone().into_iter().collect();
        assert_eq!(have, vec![tag("env", ""), tag("team", "b")]);
        assert_eq!(s.tags("nope"), None);
        assert_eq!(
            s.add_tags("top", &[tag("aws:owner", "x")])
                .unwrap_err()
                .code(),
            "ValidationException",
            "the aws: prefix is reserved"
        );
        let many: Vec<_> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(
            s.add_tags("top", &many).unwrap_err().code(),
            "TooManyTagsError"
        );
        assert_eq!(s.tags("top").unwrap().len(), 2, "nothing added");
        s.add_tags("top", &many[..48]).unwrap();
        assert_eq!(s.tags("top").unwrap().len(), MAX_TAGS);
        for (k, v) in [
            ("", "v"),
            ("a*b", "v"),
            ("k", "v!"),
            (&*"k".repeat(129), "v"),
            ("k", &*"v".repeat(257)),
        ] {
            assert_eq!(
                s.add_tags("top", &[tag(k, v)]).unwrap_err().code(),
                "ValidationException",
                "{k}={v}"
            );
        }
        assert!(check_tag("Ünïcode key:/=+-@_. 1", "välue 2").is_ok());
        s.remove_tags("top", &strings(&["team", "absent"])).unwrap();
        assert!(!s.tags("top").unwrap().contains_key("team"));
        assert_eq!(
            s.remove_tags("nope", &strings(&["x"])).unwrap_err().code(),
            "ParameterNotFound"
        );
        s.delete("top").unwrap();
        put(&mut s, "top", "v", false).unwrap();
        assert!(
            s.tags("top").unwrap().is_empty(),
            "deleted with the parameter"
        );
    }

    #[test]
    fn top_level_names_with_and_without_a_slash_are_one_parameter() {
        let mut s = Store::default();
        put(&mut s, "/top", "a", false).unwrap();
        assert_eq!(s.key_of("top"), Some("/top"));
        assert_eq!(s.key_of("/top"), Some("/top"));
        assert_eq!(s.get("top").unwrap().0, "/top");
        assert_eq!(s.get("top:1").unwrap().1.value, b"a");
        assert_eq!(s.history("top").unwrap().len(), 1);
        put(&mut s, "bare", "b", false).unwrap();
        assert_eq!(s.key_of("/bare"), Some("bare"));
        // Not for hierarchies: `a/b` is not `/a/b`.
        put(&mut s, "/a/b", "c", false).unwrap();
        assert_eq!(s.key_of("a/b"), None);
        assert_eq!(s.key_of("/a"), None);
    }
}
