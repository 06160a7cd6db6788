//! SSM Parameter Store as a pure model: parameter names and hierarchies, types,
//! versions and history, reads by name, by `name:version` and by path, and the
//! errors AWS names. Values are opaque here: the endpoint (not written yet) encrypts
//! SecureString values before they reach this model and decrypts on the way out,
//! and persists every change in the durable log before acknowledging it.

use std::collections::BTreeMap;

/// History kept per parameter (AWS keeps 100 versions).
pub const MAX_VERSIONS: usize = 100;
pub const MAX_NAME: usize = 2048;
pub const MAX_DEPTH: usize = 15;
/// Standard tier value limit.
pub const MAX_VALUE: usize = 4096;

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
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "ValidationException",
            Error::NotFound(_) => "ParameterNotFound",
            Error::AlreadyExists(_) => "ParameterAlreadyExists",
            Error::VersionNotFound(_) => "ParameterVersionNotFound",
            Error::TypeMismatch(_) => "HierarchyTypeMismatchException",
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
}

/// A parameter found: its name and the version read.
pub type Found<'s> = (&'s str, &'s Version);

#[derive(Clone, Debug, Default)]
pub struct Store {
    /// By full name (`/shop/test/api/API_TOKEN`); the last version last.
    params: BTreeMap<String, Vec<Version>>,
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

/// `name` or `name:version` (labels are not supported yet).
fn selector(s: &str) -> Result<(&str, Option<u64>), Error> {
    match s.rsplit_once(':') {
        Some((n, v)) if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() => {
            let v = v
                .parse()
                .map_err(|_| Error::Validation(format!("bad version in `{s}`")))?;
            Ok((n, Some(v)))
        }
        Some((_, _)) => Err(Error::Validation(format!(
            "`{s}`: selectors other than a version number are not supported"
        ))),
        None => Ok((s, None)),
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

    /// Puts a parameter of an image back, replacing what the name held.
    pub fn restore(&mut self, name: String, versions: Vec<Version>) {
        if versions.is_empty() {
            self.params.remove(&name);
        } else {
            self.params.insert(name, versions);
        }
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
        });
        if versions.len() > MAX_VERSIONS {
            versions.remove(0);
        }
        Ok(version)
    }

    /// GetParameter by `name` or `name:version`.
    pub fn get(&self, selector_text: &str) -> Result<(&str, &Version), Error> {
        let (name, version) = selector(selector_text)?;
        let (key, versions) = self
            .key_of(name)
            .and_then(|k| self.params.get_key_value(k))
            .ok_or_else(|| Error::NotFound(format!("Parameter {name} not found.")))?;
        match version {
            None => versions.last().map(|v| (key.as_str(), v)),
            Some(n) => versions
                .iter()
                .find(|v| v.version == n)
                .map(|v| (key.as_str(), v)),
        }
        .ok_or_else(|| {
            Error::VersionNotFound(format!(
                "Version {} of parameter {name} not found.",
                version.unwrap_or(0)
            ))
        })
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

    /// DeleteParameter (every version).
    pub fn delete(&mut self, name: &str) -> Result<(), Error> {
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
