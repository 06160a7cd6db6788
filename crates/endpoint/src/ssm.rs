//! SSM Parameter Store over the JSON 1.1 protocol. SecureString values are sealed
//! with the master key (AES-256-GCM, bound to the parameter's name) before they
//! reach the store or the journal; they are opened only for a caller that asks
//! `WithDecryption`.

use crate::error::ApiError;
use crate::keys::Keyring;
use crate::sqs::{int, text};
use pantstack_ssm::{Error as PErr, Store, Type, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    },
    Delete {
        name: String,
    },
    /// A version re-encrypted under a new master key.
    Rekey {
        name: String,
        version: u64,
        value: String,
    },
    /// A compacted journal's image of one parameter: every kept version.
    Image {
        name: String,
        versions: Vec<ImageVersion>,
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
}

fn p_err(e: PErr) -> ApiError {
    match e {
        PErr::Validation(m) => ApiError::bad("ValidationException", m),
        PErr::NotFound(m) => ApiError::bad("ParameterNotFound", m),
        PErr::AlreadyExists(m) => ApiError::bad("ParameterAlreadyExists", m),
        PErr::VersionNotFound(m) => ApiError::bad("ParameterVersionNotFound", m),
        PErr::TypeMismatch(m) => ApiError::bad("HierarchyTypeMismatchException", m),
    }
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
            } => {
                let kind = Type::parse(kind).ok_or_else(|| {
                    ApiError::bad(
                        "ValidationException",
                        format!("1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"),
                    )
                })?;
                self.store
                    .put(
                        name,
                        kind,
                        crate::unb64(value).unwrap_or_default(),
                        *plain_len,
                        key_id.as_deref(),
                        description.as_deref(),
                        *overwrite,
                        *now,
                    )
                    .map_err(p_err)
            }
            Op::Delete { name } => {
                self.store.delete(name).map_err(p_err)?;
                Ok(0)
            }
            Op::Rekey {
                name,
                version,
                value,
            } => {
                self.store
                    .set_value(name, *version, crate::unb64(value).unwrap_or_default());
                Ok(*version)
            }
            Op::Image { name, versions } => {
                let versions = versions
                    .iter()
                    .map(|v| Version {
                        version: v.version,
                        // Written from a `Type` by `image`.
                        kind: Type::parse(&v.kind).unwrap_or(Type::String),
                        value: crate::unb64(&v.value).unwrap_or_default(),
                        key_id: v.key_id.clone(),
                        description: v.description.clone(),
                        modified: v.modified,
                    })
                    .collect();
                self.store.restore(name.clone(), versions);
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
                        })
                        .sum::<usize>()
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
                })
                .collect(),
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
        action: &str,
        input: &Value,
        now: u64,
        caller: &str,
    ) -> Result<(Value, Vec<Op>), ApiError> {
        let name_of = |input: &Value| -> Result<String, ApiError> {
            text(input, "Name").map(str::to_string).ok_or_else(|| {
                ApiError::bad(
                    "ValidationException",
                    "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null",
                )
            })
        };
        let decrypt = input
            .get("WithDecryption")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
        let mut ops = Vec::new();
        let out = match action {
            "PutParameter" => {
                let name = name_of(input)?;
                pantstack_ssm::check_name(&name).map_err(p_err)?;
                let value = text(input, "Value").ok_or_else(|| {
                    ApiError::bad("ValidationException", "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
                })?;
                let overwrite = input
                    .get("Overwrite")
                    .is_some_and(|v| v.as_bool() == Some(true));
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
                };
                let version = self.apply(&op)?;
                ops.push(op);
                json!({ "Version": version, "Tier": "Standard" })
            }
            "GetParameter" => {
                let sel = name_of(input)?;
                let (name, v) = self.store.get(&sel).map_err(p_err)?;
                let selector = sel.strip_prefix(name).filter(|s| !s.is_empty());
                json!({ "Parameter": self.param_json(keys, name, v, decrypt, selector)? })
            }
            "GetParameters" => {
                let names = crate::sqs::string_list(input.get("Names"));
                let (found, invalid) = self.store.get_many(&names).map_err(p_err)?;
                let mut params = Vec::new();
                for (name, v) in found {
                    params.push(self.param_json(keys, name, v, decrypt, None)?);
                }
                json!({ "Parameters": params, "InvalidParameters": invalid })
            }
            "GetParametersByPath" => {
                let path = text(input, "Path").ok_or_else(|| {
                    ApiError::bad("ValidationException", "1 validation error detected: Value null at 'path' failed to satisfy constraint: Member must not be null")
                })?;
                let recursive = input
                    .get("Recursive")
                    .is_some_and(|v| v.as_bool() == Some(true));
                let max = int(input, "MaxResults")?.unwrap_or(10);
                if !(1..=10).contains(&max) {
                    return Err(ApiError::bad(
                        "ValidationException",
                        format!(
                            "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10"
                        ),
                    ));
                }
                let after = text(input, "NextToken").unwrap_or("");
                let all = self.store.by_path(path, recursive).map_err(p_err)?;
                let rest: Vec<_> = all.into_iter().filter(|(n, _)| *n > after).collect();
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
                    name: name_of(input)?,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            "DeleteParameters" => {
                let names = crate::sqs::string_list(input.get("Names"));
                if names.is_empty() || names.len() > 10 {
                    return Err(ApiError::bad(
                        "ValidationException",
                        "Names must hold 1..10 parameter names",
                    ));
                }
                let mut deleted = Vec::new();
                let mut invalid = Vec::new();
                for n in names {
                    let op = Op::Delete { name: n.clone() };
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
                // Filters: Name (Equals/BeginsWith), Path (Recursive/OneLevel), Type.
                let filters = input
                    .get("ParameterFilters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let max = int(input, "MaxResults")?.unwrap_or(50).clamp(1, 50) as usize;
                let after = text(input, "NextToken").unwrap_or("");
                let matches = |name: &str, v: &Version| {
                    filters.iter().all(|f| {
                        let key = text(f, "Key").unwrap_or("");
                        let opt = text(f, "Option").unwrap_or("Equals");
                        let values: Vec<&str> = f
                            .get("Values")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        values.iter().any(|want| match (key, opt) {
                            ("Name", "BeginsWith") => name.starts_with(want),
                            ("Name", _) => name == *want,
                            ("Type", _) => v.kind.as_str() == *want,
                            ("Path", "Recursive") => {
                                name.starts_with(&format!("{}/", want.trim_end_matches('/')))
                            }
                            ("Path", _) => name
                                .strip_prefix(&format!("{}/", want.trim_end_matches('/')))
                                .is_some_and(|r| !r.contains('/')),
                            _ => false,
                        })
                    })
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
                let name = name_of(input)?;
                let history = self.store.history(&name).map_err(p_err)?;
                let mut out = Vec::new();
                for v in history {
                    let mut m = self.meta_json(&name, v, caller);
                    m["Value"] = json!(self.value_of(keys, &name, v, decrypt)?);
                    m["Labels"] = json!([]);
                    out.push(m);
                }
                json!({ "Parameters": out })
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
