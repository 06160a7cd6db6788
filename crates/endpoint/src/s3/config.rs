//! What S3 stores beside the data: object tags, server-side encryption settings,
//! and a bucket's configuration (policy, CORS, lifecycle, default encryption,
//! tags), checked as S3 checks them and converted between s3s's types and the
//! journaled ones of `s3`.

use super::state::{CorsRule, LifecycleRule, Sse};
use s3s::dto::*;
use s3s::{S3Result, s3_error};
use std::collections::BTreeMap;

/// S3's limits on object tags (user guide, "Categorizing your storage using
/// tags"): 10 per object, keys 1..128 and values 0..256 Unicode characters,
/// unique keys.
pub fn object_tags(
    pairs: Vec<(String, String)>,
    limit: usize,
) -> S3Result<BTreeMap<String, String>> {
    if pairs.len() > limit {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than {limit}"
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        let keylen = k.chars().count();
        if !(1..=128).contains(&keylen) {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid: a key has 1 to 128 characters"
            ));
        }
        if v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is invalid: a value has at most 256 characters"
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(s3_error!(
                InvalidTag,
                "Your TagKey cannot be prefixed with aws:"
            ));
        }
        if out.insert(k, v).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(out)
}

/// The tags of an `x-amz-tagging` header (a URL query string: `k1=v1&k2=v2`).
pub fn tagging_header(h: Option<&String>) -> S3Result<BTreeMap<String, String>> {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    object_tags(crate::query::form_pairs(h), 10)
}

/// The tags of a `<Tagging>` body.
pub fn tag_set_in(set: &[Tag], limit: usize) -> S3Result<BTreeMap<String, String>> {
    object_tags(
        set.iter()
            .map(|t| {
                (
                    t.key.clone().unwrap_or_default(),
                    t.value.clone().unwrap_or_default(),
                )
            })
            .collect(),
        limit,
    )
}

pub fn tag_set(tags: &BTreeMap<String, String>) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// What a request says of customer-provided keys (SSE-C): its three headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseC {
    None,
    /// Some of the three headers, not all (or one empty).
    Partial,
    Full,
}

impl SseC {
    pub fn of(algorithm: Option<&String>, key: Option<&String>, md5: Option<&String>) -> SseC {
        let given = [algorithm, key, md5];
        let n = given.iter().filter(|h| h.is_some()).count();
        let empty = given.iter().flatten().any(|v| v.is_empty());
        match n {
            0 => SseC::None,
            3 if !empty => SseC::Full,
            _ => SseC::Partial,
        }
    }

    /// The refusal of a request naming SSE-C: S3's for a partial set, else
    /// `full`'s (the local cloud serves no SSE-C object).
    pub fn refuse(self, full: s3s::S3Error) -> S3Result<()> {
        match self {
            SseC::None => Ok(()),
            SseC::Partial => Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide the encryption algorithm, the encryption key and the key's MD5"
            )),
            SseC::Full => Err(full),
        }
    }
}

/// The encryption a write asks for (`x-amz-server-side-encryption` and its KMS
/// key), else the bucket's default. Customer-provided keys (SSE-C) are not
/// served locally: refused, never ignored.
pub fn sse_of(
    algorithm: Option<&ServerSideEncryption>,
    kms_key: Option<&String>,
    bucket_key: Option<bool>,
    customer: SseC,
    default: Option<&Sse>,
    region: &str,
) -> S3Result<Option<Sse>> {
    customer.refuse(s3_error!(
        NotImplemented,
        "server-side encryption with customer-provided keys (SSE-C) is not served by the local cloud"
    ))?;
    let Some(a) = algorithm else {
        if kms_key.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-server-side-encryption-aws-kms-key-id is only valid with x-amz-server-side-encryption: aws:kms"
            ));
        }
        return Ok(default.cloned());
    };
    let algorithm = a.as_str();
    match algorithm {
        "AES256" => {
            if kms_key.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
                ));
            }
        }
        "aws:kms" | "aws:kms:dsse" => {}
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "The encryption method specified is not supported: {other} (AES256, aws:kms or aws:kms:dsse)"
            ));
        }
    }
    Ok(Some(Sse {
        algorithm: algorithm.to_string(),
        kms_key: kms_key.cloned().or_else(|| {
            algorithm
                .starts_with("aws:kms")
                .then(|| format!("arn:aws:kms:{region}:{}:alias/aws/s3", crate::ACCOUNT))
        }),
        bucket_key: bucket_key.unwrap_or(false),
    }))
}

/// The response fields of an object's encryption (none recorded: SSE-S3).
pub fn sse_fields(v: Option<&Sse>) -> (Option<ServerSideEncryption>, Option<String>, Option<bool>) {
    match v {
        None => (
            Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AES256,
            )),
            None,
            None,
        ),
        Some(s) => (
            Some(ServerSideEncryption::from(s.algorithm.clone())),
            s.kms_key.clone(),
            s.bucket_key.then_some(true),
        ),
    }
}

pub fn encryption_in(c: &ServerSideEncryptionConfiguration, region: &str) -> S3Result<Sse> {
    let [rule] = c.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "a ServerSideEncryptionConfiguration has exactly one Rule"
        ));
    };
    let d = rule.apply_server_side_encryption_by_default.as_ref();
    let mut sse = sse_of(
        Some(
            &d.map(|d| d.sse_algorithm.clone())
                .unwrap_or_else(|| ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
        ),
        d.and_then(|d| d.kms_master_key_id.as_ref()),
        rule.bucket_key_enabled,
        SseC::None,
        None,
        region,
    )?
    .unwrap_or_default();
    if d.and_then(|d| d.kms_master_key_id.as_ref()).is_none() {
        sse.kms_key = None;
    }
    Ok(sse)
}

pub fn encryption_out(s: Option<&Sse>) -> ServerSideEncryptionConfiguration {
    let default = Sse {
        algorithm: "AES256".into(),
        ..Sse::default()
    };
    let s = s.unwrap_or(&default);
    ServerSideEncryptionConfiguration {
        rules: vec![ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: s.kms_key.clone(),
                sse_algorithm: ServerSideEncryption::from(s.algorithm.clone()),
            }),
            bucket_key_enabled: Some(s.bucket_key),
        }],
    }
}

const CORS_METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

pub fn cors_in(c: &CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    if c.cors_rules.is_empty() || c.cors_rules.len() > 100 {
        return Err(s3_error!(
            MalformedXML,
            "a CORS configuration has 1 to 100 rules"
        ));
    }
    let mut out = Vec::new();
    for r in &c.cors_rules {
        for m in &r.allowed_methods {
            if !CORS_METHODS.contains(&m.as_str()) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
        }
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "a CORS rule needs AllowedOrigin and AllowedMethod"
            ));
        }
        if r.id.as_ref().is_some_and(|id| id.chars().count() > 255) {
            return Err(s3_error!(
                InvalidArgument,
                "The ID of a CORS rule is at most 255 characters"
            ));
        }
        for h in r.allowed_headers.as_deref().unwrap_or_default() {
            if h.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                ));
            }
        }
        for o in &r.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                ));
            }
        }
        out.push(CorsRule {
            id: r.id.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_headers: r.allowed_headers.clone().unwrap_or_default(),
            expose_headers: r.expose_headers.clone().unwrap_or_default(),
            max_age_seconds: r.max_age_seconds,
        });
    }
    Ok(out)
}

pub fn cors_out(rules: &[CorsRule]) -> Vec<CORSRule> {
    rules
        .iter()
        .map(|r| CORSRule {
            id: r.id.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_headers: (!r.allowed_headers.is_empty()).then(|| r.allowed_headers.clone()),
            expose_headers: (!r.expose_headers.is_empty()).then(|| r.expose_headers.clone()),
            max_age_seconds: r.max_age_seconds,
        })
        .collect()
}

use super::stamp::{ms_of as ms, ts as stamp};

/// A lifecycle configuration, checked as S3 checks one (PutBucketLifecycle-
/// Configuration: 1..1000 rules, unique ids of at most 255 characters, an action
/// per rule, positive days, a date at midnight UTC, `ExpiredObjectDeleteMarker`
/// without days or date, `NewerNoncurrentVersions` 1..100).
pub fn lifecycle_in(c: &BucketLifecycleConfiguration) -> S3Result<Vec<LifecycleRule>> {
    if c.rules.is_empty() || c.rules.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle configuration has 1 to 1000 rules"
        ));
    }
    let mut out: Vec<LifecycleRule> = Vec::new();
    for r in &c.rules {
        let bad = |m: &str| s3_error!(InvalidArgument, "{m}");
        if let Some(id) = &r.id {
            if id.chars().count() > 255 {
                return Err(bad("ID length should not exceed allowed limit of 255"));
            }
            if out.iter().any(|o| o.id.as_deref() == Some(id)) {
                return Err(bad(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
        }
        let enabled = match r.status.as_str() {
            "Enabled" => true,
            "Disabled" => false,
            other => {
                return Err(s3_error!(
                    MalformedXML,
                    "Status must be Enabled or Disabled, not {other}"
                ));
            }
        };
        // S3 names a rule put without an ID.
        let id = r.id.clone().unwrap_or_else(|| {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{n:x}{:04x}", out.len())
        });
        let mut rule = LifecycleRule {
            id: Some(id),
            enabled,
            ..LifecycleRule::default()
        };
        match (&r.filter, &r.prefix) {
            (Some(_), Some(_)) => {
                return Err(s3_error!(
                    MalformedXML,
                    "a rule has either Filter or Prefix, not both"
                ));
            }
            (None, p) => rule.prefix = p.clone().unwrap_or_default(),
            (Some(f), None) => {
                rule.filter = true;
                let given = [
                    f.prefix.is_some(),
                    f.tag.is_some(),
                    f.object_size_greater_than.is_some(),
                    f.object_size_less_than.is_some(),
                    f.and.is_some(),
                ];
                if given.iter().filter(|g| **g).count() > 1 {
                    return Err(s3_error!(
                        MalformedXML,
                        "a lifecycle rule's Filter holds one condition; combine several with And"
                    ));
                }
                if let Some(and) = &f.and {
                    rule.and = true;
                    rule.prefix = and.prefix.clone().unwrap_or_default();
                    rule.tags = tag_set_in(and.tags.as_deref().unwrap_or_default(), 50)?;
                    rule.size_greater_than = and.object_size_greater_than;
                    rule.size_less_than = and.object_size_less_than;
                } else {
                    rule.prefix = f.prefix.clone().unwrap_or_default();
                    if let Some(t) = &f.tag {
                        rule.tags = tag_set_in(std::slice::from_ref(t), 1)?;
                    }
                    rule.size_greater_than = f.object_size_greater_than;
                    rule.size_less_than = f.object_size_less_than;
                }
            }
        }
        if let Some(e) = &r.expiration {
            if e.days.is_some() && e.date.is_some() {
                return Err(bad("An Expiration has Days or Date, not both"));
            }
            if e.expired_object_delete_marker.is_some() && (e.days.is_some() || e.date.is_some()) {
                return Err(bad(
                    "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy.",
                ));
            }
            if let Some(d) = e.days {
                if d <= 0 {
                    return Err(bad(
                        "'Days' for Expiration action must be a positive integer",
                    ));
                }
                rule.expiration_days = Some(d);
            }
            if let Some(t) = &e.date {
                let at = ms(t);
                if !at.is_multiple_of(86_400_000) {
                    return Err(bad("'Date' must be at midnight GMT"));
                }
                rule.expiration_date = Some(at);
            }
            rule.expired_object_delete_marker = e.expired_object_delete_marker.unwrap_or(false);
        }
        if let Some(n) = &r.noncurrent_version_expiration {
            match n.noncurrent_days {
                Some(d) if d > 0 => rule.noncurrent_days = Some(d),
                _ => {
                    return Err(bad(
                        "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
                    ));
                }
            }
            if let Some(k) = n.newer_noncurrent_versions {
                if !(1..=100).contains(&k) {
                    return Err(bad("NewerNoncurrentVersions must be between 1 and 100"));
                }
                rule.newer_noncurrent_versions = Some(k);
            }
        }
        if let Some(a) = &r.abort_incomplete_multipart_upload {
            match a.days_after_initiation {
                Some(d) if d > 0 => rule.abort_upload_days = Some(d),
                _ => {
                    return Err(bad(
                        "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
                    ));
                }
            }
            if !rule.tags.is_empty() {
                return Err(bad(
                    "AbortIncompleteMultipartUpload cannot be specified with Tags.",
                ));
            }
        }
        let transitions = r.transitions.as_deref().unwrap_or_default();
        for t in transitions {
            if t.days.is_some() == t.date.is_some() {
                return Err(bad("A Transition has Days or Date, one of them"));
            }
            if let Some(d) = &t.date
                && !ms(d).is_multiple_of(86_400_000)
            {
                return Err(bad("'Date' must be at midnight GMT"));
            }
        }
        if transitions.iter().any(|t| t.days.is_some())
            && transitions.iter().any(|t| t.date.is_some())
        {
            return Err(bad(
                "The transitions of a rule are all by Days or all by Date",
            ));
        }
        let classes: Vec<&str> = transitions
            .iter()
            .filter_map(|t| t.storage_class.as_ref().map(|c| c.as_str()))
            .collect();
        let mut seen = std::collections::HashSet::new();
        if classes.iter().any(|c| !seen.insert(*c)) {
            return Err(bad(
                "'StorageClass' must be different for each Transition of a rule",
            ));
        }
        for t in transitions {
            rule.transitions.push((
                t.days,
                t.date.as_ref().map(ms),
                t.storage_class
                    .as_ref()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            ));
        }
        for t in r
            .noncurrent_version_transitions
            .as_deref()
            .unwrap_or_default()
        {
            rule.noncurrent_transitions.push((
                t.newer_noncurrent_versions,
                t.noncurrent_days,
                t.storage_class
                    .as_ref()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            ));
        }
        if let (Some(gt), Some(lt)) = (rule.size_greater_than, rule.size_less_than)
            && gt >= lt
        {
            return Err(bad(
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
            ));
        }
        for (days, _, class) in &rule.transitions {
            check_transition(class, *days)?;
            if let (Some(t), Some(e)) = (days, rule.expiration_days)
                && e <= *t
            {
                return Err(bad(
                    "'Days' in the Expiration action must be greater than 'Days' in the Transition action",
                ));
            }
        }
        for (_, days, class) in &rule.noncurrent_transitions {
            check_transition(class, *days)?;
            if let (Some(t), Some(e)) = (days, rule.noncurrent_days)
                && e <= *t
            {
                return Err(bad(
                    "'NoncurrentDays' in the NoncurrentVersionExpiration action must be greater than 'NoncurrentDays' in the NoncurrentVersionTransition action",
                ));
            }
        }
        let acts = rule.expiration_days.is_some()
            || rule.expiration_date.is_some()
            || rule.expired_object_delete_marker
            || rule.noncurrent_days.is_some()
            || rule.abort_upload_days.is_some()
            || !rule.transitions.is_empty()
            || !rule.noncurrent_transitions.is_empty();
        if !acts {
            return Err(bad("At least one action needs to be specified in a rule"));
        }
        out.push(rule);
    }
    Ok(out)
}

/// A transition's storage class and days, as S3 checks them (30 days at least
/// to the infrequent-access classes).
fn check_transition(class: &str, days: Option<i32>) -> S3Result<()> {
    const CLASSES: &[&str] = &[
        "GLACIER",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
    ];
    if !CLASSES.contains(&class) {
        return Err(s3_error!(
            InvalidArgument,
            "'{class}' is not a storage class a lifecycle transition may move to ({})",
            CLASSES.join(", ")
        ));
    }
    if let Some(d) = days {
        if d < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "'Days' in a Transition action must be a nonnegative integer"
            ));
        }
        if matches!(class, "STANDARD_IA" | "ONEZONE_IA") && d < 30 {
            return Err(s3_error!(
                InvalidArgument,
                "'Days' in Transition action must be greater than or equal to 30 for storageClass '{class}'"
            ));
        }
    }
    Ok(())
}

pub fn lifecycle_out(rules: &[LifecycleRule]) -> Vec<s3s::dto::LifecycleRule> {
    rules
        .iter()
        .map(|r| {
            let tags = tag_set(&r.tags);
            let filter = r.filter.then(|| {
                if r.and {
                    LifecycleRuleFilter {
                        and: Some(LifecycleRuleAndOperator {
                            prefix: Some(r.prefix.clone()),
                            tags: (!tags.is_empty()).then_some(tags.clone()),
                            object_size_greater_than: r.size_greater_than,
                            object_size_less_than: r.size_less_than,
                        }),
                        ..Default::default()
                    }
                } else {
                    LifecycleRuleFilter {
                        prefix: Some(r.prefix.clone()),
                        tag: tags.first().cloned(),
                        object_size_greater_than: r.size_greater_than,
                        object_size_less_than: r.size_less_than,
                        ..Default::default()
                    }
                }
            });
            let expiration = (r.expiration_days.is_some()
                || r.expiration_date.is_some()
                || r.expired_object_delete_marker)
                .then(|| LifecycleExpiration {
                    days: r.expiration_days,
                    date: r.expiration_date.map(stamp),
                    expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
                });
            s3s::dto::LifecycleRule {
                id: r.id.clone(),
                status: ExpirationStatus::from_static(if r.enabled {
                    ExpirationStatus::ENABLED
                } else {
                    ExpirationStatus::DISABLED
                }),
                prefix: (!r.filter).then(|| r.prefix.clone()),
                filter,
                expiration,
                noncurrent_version_expiration: r.noncurrent_days.map(|d| {
                    NoncurrentVersionExpiration {
                        noncurrent_days: Some(d),
                        newer_noncurrent_versions: r.newer_noncurrent_versions,
                    }
                }),
                abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
                    AbortIncompleteMultipartUpload {
                        days_after_initiation: Some(d),
                    }
                }),
                transitions: (!r.transitions.is_empty()).then(|| {
                    r.transitions
                        .iter()
                        .map(|(days, date, class)| Transition {
                            days: *days,
                            date: date.map(stamp),
                            storage_class: Some(TransitionStorageClass::from(class.clone())),
                        })
                        .collect()
                }),
                noncurrent_version_transitions: (!r.noncurrent_transitions.is_empty()).then(|| {
                    r.noncurrent_transitions
                        .iter()
                        .map(|(newer, days, class)| NoncurrentVersionTransition {
                            newer_noncurrent_versions: *newer,
                            noncurrent_days: *days,
                            storage_class: Some(TransitionStorageClass::from(class.clone())),
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// Whether a CORS pattern (one `*` at most, S3's rule) matches a value.
fn cors_like(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    match p.split_once('*') {
        None => p == v,
        Some((head, tail)) => {
            v.len() >= head.len() + tail.len() && v.starts_with(head) && v.ends_with(tail)
        }
    }
}

/// The first rule that allows a request from `origin` with `method` and the
/// request headers `headers` (S3 user guide, "How Amazon S3 evaluates the CORS
/// configuration": the first matching rule applies).
pub fn cors_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins
            .iter()
            .any(|o| cors_like(o, origin, false))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                r.allowed_headers
                    .iter()
                    .any(|a| cors_like(a, h.trim(), true))
            })
    })
}

/// The `Access-Control-*` headers S3 answers for a matching rule: of a
/// preflight (`preflight` holds the requested headers) or of the request
/// itself.
pub fn cors_headers(
    rule: &CorsRule,
    origin: &str,
    preflight: Option<&[&str]>,
) -> Vec<(&'static str, String)> {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let mut out = vec![(
        "access-control-allow-origin",
        if any {
            "*".to_string()
        } else {
            origin.to_string()
        },
    )];
    if !any {
        out.push(("access-control-allow-credentials", "true".into()));
    }
    out.push((
        "access-control-allow-methods",
        rule.allowed_methods.join(", "),
    ));
    if let Some(asked) = preflight
        && !asked.is_empty()
    {
        out.push(("access-control-allow-headers", asked.join(", ")));
    }
    if !rule.expose_headers.is_empty() {
        out.push((
            "access-control-expose-headers",
            rule.expose_headers.join(", "),
        ));
    }
    if let Some(age) = rule.max_age_seconds {
        out.push(("access-control-max-age", age.to_string()));
    }
    out.push((
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        CorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            ..CorsRule::default()
        }
    }

    #[test]
    fn the_first_rule_matching_origin_method_and_headers_applies() {
        let rules = vec![
            rule(&["https://*.example.com"], &["PUT"], &["content-*"]),
            rule(&["*"], &["GET"], &[]),
        ];
        let r = cors_rule(&rules, "https://app.example.com", "PUT", &["Content-Type"]);
        assert!(std::ptr::eq(r.unwrap(), &rules[0]));
        assert!(cors_rule(&rules, "https://app.example.com", "PUT", &["x-other"]).is_none());
        assert!(cors_rule(&rules, "https://example.org", "PUT", &[]).is_none());
        let r = cors_rule(&rules, "http://localhost:3000", "GET", &[]).unwrap();
        let h = cors_headers(r, "http://localhost:3000", None);
        assert_eq!(h[0], ("access-control-allow-origin", "*".to_string()));
        assert!(
            !h.iter()
                .any(|(n, _)| *n == "access-control-allow-credentials")
        );
        assert!(cors_rule(&rules, "http://localhost:3000", "GET", &["authorization"]).is_none());
    }
}
