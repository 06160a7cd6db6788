//! Every action of the SSM Parameter Store API as an operation on the
//! parameters: input checked, ops built (applied and journaled by the caller),
//! the output shaped.

use super::filters::*;
use super::state::*;
use crate::error::ApiError;
use crate::keys::Keyring;
use crate::request::ssm::*;
use crate::request::{Call, Request, Resource, Tag};
use pantstack_ssm::{Store, Version};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A `Tags` member: a list of `{Key, Value}` (both required), each checked as
/// the SSM `Tag` type is; in the order given, a key given twice keeping its last
/// value.
pub(super) fn tag_list(
    tags: &Option<Vec<Tag>>,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let Some(list) = tags else {
        return Ok(None);
    };
    if list.len() > 1000 {
        return Err(validation(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 1000",
        ));
    }
    let mut out = BTreeMap::new();
    for t in list {
        let (Some(k), Some(v)) = (&t.key, &t.value) else {
            return Err(validation(
                "1 validation error detected: Value null at 'tags.member.key' or 'tags.member.value' failed to satisfy constraint: Member must not be null",
            ));
        };
        pantstack_ssm::check_tag(k, v).map_err(p_err)?;
        out.insert(k.clone(), v.clone());
    }
    Ok(Some(out))
}

/// The resource types AddTagsToResource and its siblings know
/// (`ResourceTypeForTagging`); only `Parameter` is built here.
pub(super) const TAGGABLE: &[&str] = &[
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

impl Params {
    pub(super) fn param_json(
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

    pub(super) fn meta_json(&self, name: &str, v: &Version, user: &str) -> Value {
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
        let Request::Ssm(request) = &call.request else {
            return Err(ApiError::bad(
                "UnknownOperationException",
                format!(
                    "The action {} is not supported by the local cloud's SSM.",
                    call.action
                ),
            ));
        };
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
        let decrypt = request.with_decryption();
        let mut ops = Vec::new();
        let out = match request {
            SsmRequest::PutParameter(r) => {
                let name = name_of()?;
                pantstack_ssm::check_name(&name).map_err(p_err)?;
                let name = self.store.key_of(&name).unwrap_or(&name).to_string();
                let value = r.value.as_deref().ok_or_else(|| {
                    ApiError::bad("ValidationException", "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
                })?;
                if let Some(pattern) = &r.allowed_pattern {
                    check_pattern(pattern, value)?;
                }
                let overwrite = r.overwrite == Some(true);
                let tags = tag_list(&r.tags)?.unwrap_or_default();
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
                let kind = match r.kind.as_deref() {
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
                if let Some(tier) = r.tier.as_deref()
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
                    Some(r.key_id.as_deref().unwrap_or(DEFAULT_KEY).to_string())
                } else if let Some(k) = &r.key_id {
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
                    description: r.description.clone(),
                    overwrite,
                    now,
                    tags,
                };
                let version = self.apply(&op)?;
                ops.push(op);
                json!({ "Version": version, "Tier": "Standard" })
            }
            SsmRequest::GetParameter(_) => {
                let sel = resolve(&self.store, &name_of()?)?;
                let (name, v) = self.store.get(&sel).map_err(p_err)?;
                let selector = sel.strip_prefix(name).filter(|s| !s.is_empty());
                json!({ "Parameter": self.param_json(keys, name, v, decrypt, selector)? })
            }
            SsmRequest::GetParameters(_) => {
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
            SsmRequest::GetParametersByPath(r) => {
                let Resource::Path(path) = &call.resource else {
                    return Err(ApiError::bad(
                        "ValidationException",
                        "1 validation error detected: Value null at 'path' failed to satisfy constraint: Member must not be null",
                    ));
                };
                let path = path.as_str();
                let recursive = r.recursive == Some(true);
                let max = max_results(r.max_results, 10)?;
                let filters = filters(None, r.parameter_filters.as_deref(), Filtered::ByPath)?;
                let after = r.next_token.as_deref().unwrap_or("");
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
            SsmRequest::DeleteParameter(_) => {
                let op = Op::Delete {
                    name: resolve(&self.store, &name_of()?)?,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SsmRequest::DeleteParameters(_) => {
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
            SsmRequest::DescribeParameters(r) => {
                let filters = filters(
                    r.filters.as_deref(),
                    r.parameter_filters.as_deref(),
                    Filtered::Describe,
                )?;
                let max = max_results(r.max_results, 50)? as usize;
                let after = r.next_token.as_deref().unwrap_or("");
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
            SsmRequest::GetParameterHistory(r) => {
                // Oldest first, at most MaxResults (1..=50) a page; NextToken names
                // the last version given.
                let name = resolve(&self.store, &name_of()?)?;
                let history = self.store.history(&name).map_err(p_err)?;
                let max = max_results(r.max_results, 50)? as usize;
                let after = match r.next_token.as_deref() {
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
            SsmRequest::LabelParameterVersion(r) => {
                let name = resolve(&self.store, &name_of()?)?;
                let labels = r.labels.clone().ok_or_else(|| {
                    validation("1 validation error detected: Value null at 'labels' failed to satisfy constraint: Member must not be null")
                })?;
                let version = r.parameter_version;
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
            SsmRequest::UnlabelParameterVersion(r) => {
                let name = resolve(&self.store, &name_of()?)?;
                let version = r.parameter_version.ok_or_else(|| {
                    validation("1 validation error detected: Value null at 'parameterVersion' failed to satisfy constraint: Member must not be null")
                })?;
                let labels = r.labels.clone().ok_or_else(|| {
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
            SsmRequest::AddTagsToResource(AddTagsToResource { resource_type, .. })
            | SsmRequest::RemoveTagsFromResource(RemoveTagsFromResource {
                resource_type, ..
            })
            | SsmRequest::ListTagsForResource(ListTagsForResource { resource_type }) => {
                let name = self.tagged(call, resource_type.as_deref(), &resolve)?;
                match request {
                    SsmRequest::AddTagsToResource(r) => {
                        let tags = tag_list(&r.tags)?.ok_or_else(|| {
                            validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
                        })?;
                        if !tags.is_empty() {
                            let op = Op::Tag { name, tags };
                            self.apply(&op)?;
                            ops.push(op);
                        }
                        json!({})
                    }
                    SsmRequest::RemoveTagsFromResource(r) => {
                        let keys = r.tag_keys.clone().ok_or_else(|| {
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
        };
        Ok((out, ops))
    }

    /// The parameter a tagging call names: its `ResourceType` must be
    /// `Parameter` (another type AWS knows is `InvalidResourceType` here, as no
    /// other resource exists), its `ResourceId` the name or ARN of a parameter
    /// that exists, else `InvalidResourceId`.
    pub(super) fn tagged(
        &self,
        call: &Call,
        resource_type: Option<&str>,
        resolve: &dyn Fn(&Store, &str) -> Result<String, ApiError>,
    ) -> Result<String, ApiError> {
        let kind = resource_type.ok_or_else(|| {
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
}
