//! Resource-based policy documents (bucket policies; queue policies use the same
//! evaluation): checked when stored, evaluated beside the identity policies of
//! `iam` as IAM's evaluation logic says for one account — an explicit `Deny` in
//! either refuses, else an `Allow` in either allows.
//!
//! Principals: locally a service unit is `arn:aws:iam::<account>:role/<unit>`
//! and a person (`pantstack aws-env`) `arn:aws:iam::<account>:user/user`; `"*"`,
//! `{"AWS": "*"}`, the account id and `arn:aws:iam::<account>:root` name every
//! principal of the account; `Service` and `CanonicalUser` principals match no
//! local caller. Conditions: the `String*`, `Arn*`, `Bool` and `Null` operators
//! (with `…IfExists`) on the keys `aws:SecureTransport` (always `true`: the local
//! endpoint stands in for AWS's TLS endpoint), `aws:PrincipalArn`,
//! `aws:PrincipalAccount` and `aws:PrincipalType`; a key the request does not
//! carry is absent, as IAM treats it (positive operators fail, negated ones and
//! `…IfExists` hold).
//!
//! The same evaluation serves identity-based policies (`PolicyDoc::parse_identity`,
//! `authorize_identity`): any action, any condition key, its value taken from a
//! request context the caller gives — how the tests check the synthesized CI
//! roles against every AWS call the aws target's end-to-end runs make.

use crate::iam::matches;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No statement applies.
    None,
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Principals {
    Any,
    /// `AWS` principals as written (ARNs, account ids).
    Aws(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Condition {
    operator: String,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    sid: Option<String>,
    deny: bool,
    principals: Principals,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

/// A parsed resource-based policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDoc {
    statements: Vec<Statement>,
}

/// Who is asking, as IAM's request context names them.
pub struct Caller<'a> {
    pub arn: &'a str,
    pub account: &'a str,
    /// `AssumedRole` for a unit, `User` for a person.
    pub kind: &'a str,
}

/// The local ARN of a principal (`user` or a unit name).
pub fn principal_arn(principal: &str) -> String {
    if principal == crate::USER {
        format!("arn:aws:iam::{}:user/{principal}", crate::ACCOUNT)
    } else {
        format!("arn:aws:iam::{}:role/{principal}", crate::ACCOUNT)
    }
}

/// Authorizes each (action, resource) of a request as IAM evaluates one
/// account: an explicit `Deny` of the resource's policy (`docs[n]` for the n-th
/// pair) refuses, whoever asks — but a person (`user`) may always perform the
/// `escape` actions, as the account's root user can always mend a resource
/// policy on AWS; else an `Allow` of the identity policy (`None`: unrestricted)
/// or of the resource policy allows. The error is the refusal's message.
pub fn authorize(
    principal: &str,
    identity: Option<&crate::iam::Policy>,
    docs: &[Option<std::sync::Arc<PolicyDoc>>],
    asked: &[(String, String)],
    escape: &[&str],
) -> Result<(), String> {
    let arn = principal_arn(principal);
    let user = principal == crate::USER;
    let caller = Caller {
        arn: &arn,
        account: crate::ACCOUNT,
        kind: if user { "User" } else { "AssumedRole" },
    };
    for (n, (action, resource)) in asked.iter().enumerate() {
        let decision = docs
            .get(n)
            .and_then(|d| d.as_ref())
            .map_or(Decision::None, |d| d.evaluate(&caller, action, resource));
        let mended = user && escape.iter().any(|e| e.eq_ignore_ascii_case(action));
        if decision == Decision::Deny && !mended {
            return Err(format!(
                "User: {arn} is not authorized to perform: {action} on resource: {resource} with an explicit deny in a resource-based policy"
            ));
        }
        let allowed = identity.is_none_or(|p| p.allows(action, resource));
        if !(allowed || decision == Decision::Allow) {
            return Err(crate::iam::denial(principal, action, resource));
        }
    }
    Ok(())
}

/// The condition keys the local cloud can evaluate (with their values for a
/// request): a policy using another key is refused when it is set, rather than
/// evaluated differently from AWS.
const KEYS: &[&str] = &[
    "aws:securetransport",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:sourceip",
];

const OPERATORS: &[&str] = &[
    "IpAddress",
    "NotIpAddress",
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Bool",
    "Null",
];

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("{what} must be a string or a list of strings")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

/// The one of `a` / `not_a` a statement has (exactly one must be there).
fn one_of<'a>(
    st: &'a serde_json::Map<String, Value>,
    a: &str,
    not_a: &str,
) -> Result<(&'a Value, bool), String> {
    match (st.get(a), st.get(not_a)) {
        (Some(v), None) => Ok((v, false)),
        (None, Some(v)) => Ok((v, true)),
        (Some(_), Some(_)) => Err(format!("a statement has both {a} and {not_a}")),
        (None, None) => Err(format!("a statement has no {a}")),
    }
}

/// What a policy is checked as: a resource's policy (bucket, queue) or an
/// identity-based policy.
enum Kind<'a> {
    Resource {
        service: &'a str,
        resource_ok: &'a dyn Fn(&str) -> bool,
    },
    Identity,
}

/// A resource policy statement's `Principal` or `NotPrincipal`.
fn principals(
    st: &serde_json::Map<String, Value>,
    deny: bool,
) -> Result<(Principals, bool), String> {
    let (p, not_principal) = one_of(st, "Principal", "NotPrincipal")?;
    if not_principal && !deny {
        return Err("NotPrincipal is only allowed with Effect Deny".into());
    }
    let principals = match p {
        Value::String(s) if s == "*" => Principals::Any,
        Value::Object(m) if !m.is_empty() => {
            let mut aws = Vec::new();
            let mut any = false;
            for (k, v) in m {
                let vs = strings(v, "Principal")?;
                match k.as_str() {
                    "AWS" => {
                        for v in &vs {
                            if v == "*" {
                                any = true;
                            } else if !aws_principal(v) {
                                return Err(format!("Invalid principal in policy: {v}"));
                            }
                        }
                        aws.extend(vs);
                    }
                    "Service" | "CanonicalUser" | "Federated" => {}
                    other => return Err(format!("Invalid principal type {other}")),
                }
            }
            if any {
                Principals::Any
            } else {
                Principals::Aws(aws)
            }
        }
        _ => return Err("Invalid principal in policy".into()),
    };
    Ok((principals, not_principal))
}

/// A statement's `Condition` block. A resource policy may use only the keys the
/// local cloud gives values to (`KEYS`); an identity policy any key.
fn conditions(c: &Value, identity: bool) -> Result<Vec<Condition>, String> {
    let Value::Object(c) = c else {
        return Err("Condition must be a JSON object".into());
    };
    let mut out = Vec::new();
    for (op, keys) in c {
        let (base, if_exists) = match op.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op.as_str(), false),
        };
        if if_exists && base == "Null" {
            return Err(
                "Invalid Condition type: NullIfExists (IfExists does not apply to Null)".into(),
            );
        }
        if !OPERATORS.contains(&base) {
            return Err(format!(
                "Invalid Condition type: {op} (the local cloud evaluates {})",
                OPERATORS.join(", ")
            ));
        }
        let Value::Object(keys) = keys else {
            return Err(format!("Condition {op} must map keys to values"));
        };
        for (key, values) in keys {
            if !identity && !KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "the local cloud cannot evaluate the condition key {key} (it evaluates aws:SecureTransport, aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:SourceIp); a statement it would evaluate differently from AWS is refused"
                ));
            }
            let ip = base.ends_with("IpAddress");
            if ip != (key.eq_ignore_ascii_case("aws:SourceIp")) {
                return Err(format!("Condition {op} does not apply to the key {key}"));
            }
            out.push(Condition {
                operator: base.to_string(),
                if_exists,
                key: key.to_ascii_lowercase(),
                values: strings(values, "a condition's values")?,
            });
        }
    }
    Ok(out)
}

impl PolicyDoc {
    /// A policy without statements.
    pub fn empty() -> PolicyDoc {
        PolicyDoc {
            statements: Vec::new(),
        }
    }

    /// Parses and checks a document: `service` is the actions' prefix (`s3`,
    /// `sqs`); `resource_ok` says whether a Resource may appear in this
    /// resource's policy. The error is what S3's `MalformedPolicy` (SQS's
    /// `InvalidAttributeValue`) carries.
    pub fn parse(
        text: &str,
        service: &str,
        resource_ok: &dyn Fn(&str) -> bool,
    ) -> Result<PolicyDoc, String> {
        PolicyDoc::parse_as(
            text,
            &Kind::Resource {
                service,
                resource_ok,
            },
        )
    }

    /// Parses and checks an identity-based policy (a role's inline or managed
    /// policy, a permissions boundary): no `Principal`, actions of any service,
    /// conditions on any key — evaluated from the request context the caller of
    /// [`PolicyDoc::evaluate_in`] gives (a key it does not give is absent, as IAM
    /// treats it). What checks the CI roles' policies against the calls the
    /// aws target makes (`crates/cli/tests/common/iam_check.rs`).
    pub fn parse_identity(text: &str) -> Result<PolicyDoc, String> {
        PolicyDoc::parse_as(text, &Kind::Identity)
    }

    fn parse_as(text: &str, kind: &Kind<'_>) -> Result<PolicyDoc, String> {
        let identity = matches!(kind, Kind::Identity);
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("Policies must be valid JSON: {e}"))?;
        // Policy variables (`${aws:username}`, …) are substituted by IAM; the
        // local cloud does not, so a policy using them is refused rather than
        // matched literally.
        if text.contains("${") {
            return Err(
                "the local cloud does not substitute policy variables (${…}); write the values out"
                    .into(),
            );
        }
        let Value::Object(doc) = doc else {
            return Err("Policies must be JSON objects".into());
        };
        if let Some(k) = doc
            .keys()
            .find(|k| !matches!(k.as_str(), "Version" | "Id" | "Statement"))
        {
            return Err(format!("Unknown field {k}"));
        }
        if let Some(v) = doc.get("Version")
            && !matches!(v.as_str(), Some("2012-10-17" | "2008-10-17"))
        {
            return Err("The policy's Version must be 2012-10-17 or 2008-10-17".into());
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            Some(v @ Value::Object(_)) => vec![v.clone()],
            _ => return Err("Missing required field Statement".into()),
        };
        let mut out = Vec::new();
        let mut sids = std::collections::HashSet::new();
        for st in &statements {
            let Value::Object(st) = st else {
                return Err("Each statement must be a JSON object".into());
            };
            if let Some(k) = st.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "Sid"
                        | "Effect"
                        | "Principal"
                        | "NotPrincipal"
                        | "Action"
                        | "NotAction"
                        | "Resource"
                        | "NotResource"
                        | "Condition"
                )
            }) {
                return Err(format!("Unknown field {k}"));
            }
            let mut sid = None;
            if let Some(s) = st.get("Sid") {
                let Some(s) = s.as_str() else {
                    return Err("Sid must be a string".into());
                };
                if !sids.insert(s.to_string()) {
                    return Err(format!(
                        "Statement IDs (SID) in a single policy must be unique: {s}"
                    ));
                }
                sid = Some(s.to_string());
            }
            let deny = match st.get("Effect").and_then(Value::as_str) {
                Some("Allow") => false,
                Some("Deny") => true,
                _ => return Err("Invalid effect: each statement's Effect is Allow or Deny".into()),
            };
            let (principals, not_principal) = if identity {
                if st.contains_key("Principal") || st.contains_key("NotPrincipal") {
                    return Err("an identity-based policy's statements name no Principal".into());
                }
                (Principals::Any, false)
            } else {
                principals(st, deny)?
            };
            let (a, not_action) = one_of(st, "Action", "NotAction")?;
            let actions = strings(a, "Action")?;
            for action in &actions {
                let ok = action == "*"
                    || action.split_once(':').is_some_and(|(p, rest)| {
                        !rest.is_empty()
                            && match kind {
                                Kind::Resource { service, .. } => p.eq_ignore_ascii_case(service),
                                Kind::Identity => !p.is_empty(),
                            }
                    });
                if !ok {
                    return Err(format!("Policy has invalid action: {action}"));
                }
            }
            let (r, not_resource) = one_of(st, "Resource", "NotResource")?;
            let resources = strings(r, "Resource")?;
            if let Kind::Resource { resource_ok, .. } = kind {
                for resource in &resources {
                    if !resource_ok(resource) {
                        return Err(format!("Policy has invalid resource: {resource}"));
                    }
                }
            }
            let conditions = match st.get("Condition") {
                Some(c) => conditions(c, identity)?,
                None => Vec::new(),
            };
            out.push(Statement {
                sid,
                deny,
                principals,
                not_principal,
                actions,
                not_action,
                resources,
                not_resource,
                conditions,
            });
        }
        Ok(PolicyDoc { statements: out })
    }

    /// How many statements the policy has.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// What the policy says about `caller` doing `action` on `resource`.
    pub fn evaluate(&self, caller: &Caller<'_>, action: &str, resource: &str) -> Decision {
        self.evaluate_in(caller, action, resource, &|key| context(key, caller))
    }

    /// What the policy says about `caller` doing `action` on `resource`, the
    /// request's condition keys looked up (lowercase) in `context`.
    pub fn evaluate_in(
        &self,
        caller: &Caller<'_>,
        action: &str,
        resource: &str,
        context: &dyn Fn(&str) -> Option<String>,
    ) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            if !s.applies(caller, action, resource, context) {
                continue;
            }
            if s.deny {
                return Decision::Deny;
            }
            allowed = true;
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::None
        }
    }

    /// Why no `Allow` statement of the policy applies to `action` on
    /// `resource`: each statement that names the action, by its Sid (or its
    /// position), with the part that does not hold — for a refusal's message.
    pub fn explain(
        &self,
        action: &str,
        resource: &str,
        context: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (n, s) in self.statements.iter().enumerate() {
            let what = s.actions.iter().any(|a| matches(a, action, true)) != s.not_action;
            if s.deny || !what {
                continue;
            }
            let name = s
                .sid
                .clone()
                .unwrap_or_else(|| format!("statement {}", n + 1));
            let on = s.resources.iter().any(|r| matches(r, resource, false)) != s.not_resource;
            if !on {
                out.push(format!(
                    "{name} allows {action} only on {}",
                    s.resources.join(", ")
                ));
                continue;
            }
            for c in s.conditions.iter().filter(|c| !holds(c, context)) {
                let had = context(&c.key).unwrap_or_else(|| "(absent)".into());
                out.push(format!(
                    "{name} allows {action} on it only when {} {} {} (the request's: {had})",
                    c.key,
                    c.operator,
                    c.values.join(" | ")
                ));
            }
        }
        out
    }

    /// Every statement's Sid (in order; unnamed ones skipped).
    pub fn sids(&self) -> Vec<&str> {
        self.statements
            .iter()
            .filter_map(|s| s.sid.as_deref())
            .collect()
    }
}

impl Statement {
    fn applies(
        &self,
        caller: &Caller<'_>,
        action: &str,
        resource: &str,
        context: &dyn Fn(&str) -> Option<String>,
    ) -> bool {
        let who = match &self.principals {
            Principals::Any => true,
            Principals::Aws(list) => list.iter().any(|p| names(p, caller)),
        } != self.not_principal;
        let what = self.actions.iter().any(|a| matches(a, action, true)) != self.not_action;
        let on = self.resources.iter().any(|r| matches(r, resource, false)) != self.not_resource;
        who && what && on && self.conditions.iter().all(|c| holds(c, context))
    }
}

/// How IAM decides a request of a principal holding identity-based
/// `policies` (inline and managed), within a permissions `boundary` if any, on
/// a resource whose own policy says nothing (one account): an explicit `Deny`
/// in any refuses; else an `Allow` in some policy — and in the boundary —
/// allows. The error says what is missing: the statements that name the action
/// and the part of each that does not hold.
pub fn authorize_identity(
    caller: &Caller<'_>,
    policies: &[(String, PolicyDoc)],
    boundary: Option<&(String, PolicyDoc)>,
    action: &str,
    resource: &str,
    context: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let mut allowed = false;
    for (name, p) in policies.iter().chain(boundary) {
        if p.evaluate_in(caller, action, resource, context) == Decision::Deny {
            return Err(format!("explicitly denied by the policy {name}"));
        }
    }
    for (_, p) in policies {
        allowed |= p.evaluate_in(caller, action, resource, context) == Decision::Allow;
    }
    let mut why = Vec::new();
    if !allowed {
        for (name, p) in policies {
            why.extend(
                p.explain(action, resource, context)
                    .into_iter()
                    .map(|w| format!("{name}: {w}")),
            );
        }
        if why.is_empty() {
            why.push(format!(
                "no statement of {} names {action}",
                policies
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Err(why.join("; "));
    }
    if let Some((name, b)) = boundary
        && b.evaluate_in(caller, action, resource, context) != Decision::Allow
    {
        return Err(format!("outside the permissions boundary {name}"));
    }
    Ok(())
}

/// Whether an `AWS` principal is one IAM takes: a 12-digit account id, or an
/// IAM ARN of an account's root, a user, a role or an assumed role — without
/// wildcards (IAM refuses partial wildcards in principals).
fn aws_principal(p: &str) -> bool {
    let account = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
    if account(p) {
        return true;
    }
    let Some(rest) = p
        .strip_prefix("arn:aws:iam::")
        .or_else(|| p.strip_prefix("arn:aws:sts::"))
    else {
        return false;
    };
    let Some((acct, what)) = rest.split_once(':') else {
        return false;
    };
    account(acct)
        && !what.contains('*')
        && !what.contains('?')
        && (what == "root"
            || ["user/", "role/", "assumed-role/"]
                .iter()
                .any(|k| what.strip_prefix(k).is_some_and(|n| !n.is_empty())))
}

/// Whether an IPv4 address lies in a CIDR block (`a.b.c.d/n` or one address).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let Ok(ip) = ip.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().unwrap_or(33)),
        None => (cidr, 32),
    };
    let Ok(net) = net.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// ARN matching of the ARN condition operators: part by part, `*` and `?`
/// within a part only.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| matches(p, a, false))
}

/// Whether an `AWS` principal entry names the caller.
fn names(p: &str, caller: &Caller<'_>) -> bool {
    p == caller.account || p == format!("arn:aws:iam::{}:root", caller.account) || p == caller.arn
}

fn context(key: &str, caller: &Caller<'_>) -> Option<String> {
    match key {
        "aws:securetransport" => Some("true".into()),
        "aws:principalarn" => Some(caller.arn.to_string()),
        "aws:principalaccount" => Some(caller.account.to_string()),
        "aws:principaltype" => Some(caller.kind.to_string()),
        // Every request reaches the local endpoint on loopback.
        "aws:sourceip" => Some("127.0.0.1".to_string()),
        _ => None,
    }
}

fn holds(c: &Condition, context: &dyn Fn(&str) -> Option<String>) -> bool {
    let value = context(&c.key);
    if c.operator == "Null" {
        // Null: "true" holds when the key is absent.
        let absent = value.is_none();
        return c
            .values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("true") == absent);
    }
    let negated = c.operator.contains("Not");
    let Some(value) = value else {
        return c.if_exists || negated;
    };
    let any = |f: &dyn Fn(&str) -> bool| c.values.iter().any(|v| f(v));
    let positive = match c.operator.as_str() {
        "StringEquals" | "StringNotEquals" => any(&|v| v == value),
        // ARN operators compare the six colon-separated parts one by one, each
        // with wildcards; ArnEquals and ArnLike behave identically (IAM User
        // Guide, condition operators, "ARN condition operators").
        "ArnEquals" | "ArnNotEquals" | "ArnLike" | "ArnNotLike" => any(&|v| arn_like(v, &value)),
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => {
            any(&|v| v.eq_ignore_ascii_case(&value))
        }
        "StringLike" | "StringNotLike" => any(&|v| matches(v, &value, false)),
        "Bool" => any(&|v| v.eq_ignore_ascii_case(&value)),
        "IpAddress" | "NotIpAddress" => any(&|v| in_cidr(&value, v)),
        _ => false,
    };
    positive != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Result<PolicyDoc, String> {
        PolicyDoc::parse(text, "s3", &|r| r.starts_with("arn:aws:s3:::b"))
    }

    const API: Caller<'static> = Caller {
        arn: "arn:aws:iam::000000000000:role/api",
        account: "000000000000",
        kind: "AssumedRole",
    };
    const OTHER: Caller<'static> = Caller {
        arn: "arn:aws:iam::000000000000:role/other",
        account: "000000000000",
        kind: "AssumedRole",
    };

    #[test]
    fn malformed_documents_are_refused_with_the_reason() {
        for (text, why) in [
            ("not json", "valid JSON"),
            ("{}", "Statement"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"sqs:SendMessage","Resource":"arn:aws:s3:::b"}]}"#,
                "invalid action",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::other"}]}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}}]}"#,
                "Condition type",
            ),
            (r#"{"Version":"2013-01-01","Statement":[]}"#, "Version"),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:principaltype}/*"}]}"#,
                "policy variables",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"NullIfExists":{"aws:PrincipalArn":"true"}}}]}"#,
                "NullIfExists",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}"#,
                "cannot evaluate the condition key",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Foo":1}]}"#,
                "Unknown field Foo",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/b*"},"Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "Invalid principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"junk"},"Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "Invalid principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"000000000000"},"Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "NotPrincipal",
            ),
            (
                r#"{"Statement":[{"Sid":"a","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"},{"Sid":"a","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "unique",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"IpAddress":{"aws:PrincipalArn":"x"}}}]}"#,
                "does not apply",
            ),
        ] {
            let e = doc(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn an_explicit_deny_wins_and_principals_and_conditions_select() {
        let d = doc(r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/other"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Principal":"*","Action":["s3:DeleteObject*"],"Resource":"arn:aws:s3:::b/locked/*"},
            {"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}},
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::000000000000:role/api"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/api-only/*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/tagged/*","Condition":{"StringNotEqualsIfExists":{"aws:PrincipalArn":"arn:aws:iam::000000000000:role/api"}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/internal/*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","127.0.0.0/8"]}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/vpn/*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}
        ]}"#).unwrap();
        assert_eq!(
            d.evaluate(&OTHER, "s3:GetObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert_eq!(
            d.evaluate(&API, "s3:GetObject", "arn:aws:s3:::b/k"),
            Decision::None
        );
        assert_eq!(
            d.evaluate(&API, "s3:DeleteObjectVersion", "arn:aws:s3:::b/locked/x"),
            Decision::Deny
        );
        assert_eq!(
            d.evaluate(&API, "s3:DeleteObject", "arn:aws:s3:::b/open/x"),
            Decision::None
        );
        assert_eq!(
            d.evaluate(&API, "s3:PutObject", "arn:aws:s3:::b/api-only/x"),
            Decision::None
        );
        assert_eq!(
            d.evaluate(&OTHER, "s3:PutObject", "arn:aws:s3:::b/api-only/x"),
            Decision::Deny
        );
        assert_eq!(
            d.evaluate(&API, "s3:PutObject", "arn:aws:s3:::b/tagged/x"),
            Decision::None
        );
        assert_eq!(
            d.evaluate(&OTHER, "s3:PutObject", "arn:aws:s3:::b/tagged/x"),
            Decision::Deny
        );
        // ARN operators: part by part; `*` does not cross a colon.
        let arns = doc(r#"{"Statement":[
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/a","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::*:role/ap?"}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/b","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:*:role/api"}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/c","Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::*:role/api"}}}
        ]}"#).unwrap();
        assert_eq!(
            arns.evaluate(&API, "s3:GetObject", "arn:aws:s3:::b/a"),
            Decision::Deny
        );
        assert_eq!(
            arns.evaluate(&API, "s3:GetObject", "arn:aws:s3:::b/b"),
            Decision::None
        );
        assert_eq!(
            arns.evaluate(&API, "s3:GetObject", "arn:aws:s3:::b/c"),
            Decision::None
        );
        assert_eq!(
            arns.evaluate(&OTHER, "s3:GetObject", "arn:aws:s3:::b/c"),
            Decision::Deny
        );
        // Requests come from loopback.
        assert_eq!(
            d.evaluate(&API, "s3:GetObject", "arn:aws:s3:::b/internal/x"),
            Decision::None
        );
        assert_eq!(
            d.evaluate(&API, "s3:GetObject", "arn:aws:s3:::b/vpn/x"),
            Decision::Deny
        );
    }

    #[test]
    fn identity_policies_evaluate_conditions_on_the_requests_own_keys() {
        let p = PolicyDoc::parse_identity(r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"ChangeStacks","Effect":"Allow","Action":["cloudformation:CreateChangeSet","cloudformation:DeleteStack"],"Resource":"arn:aws:cloudformation:us-east-1:1:stack/p-test-*/*","Condition":{"ArnEquals":{"cloudformation:RoleArn":"arn:aws:iam::1:role/p-test-deploy"}}},
            {"Sid":"Pass","Effect":"Allow","Action":"iam:PassRole","Resource":"arn:aws:iam::1:role/p-test-deploy","Condition":{"StringEquals":{"iam:PassedToService":"cloudformation.amazonaws.com"}}},
            {"Sid":"Lock","Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/p-*-lock.json","Condition":{"StringLike":{"s3:prefix":["a*"]}}},
            {"Effect":"Deny","Action":"s3:*","NotResource":"arn:aws:s3:::b/*"}
        ]}"#).unwrap();
        assert_eq!(p.sids(), ["ChangeStacks", "Pass", "Lock"]);
        let caller = Caller {
            arn: "arn:aws:sts::1:assumed-role/p-test-ci/gh",
            account: "1",
            kind: "AssumedRole",
        };
        let stack = "arn:aws:cloudformation:us-east-1:1:stack/p-test-api/0";
        let none = |_: &str| None;
        let policies = [("ci".to_string(), p)];
        let boundary = (
            "boundary".to_string(),
            PolicyDoc::parse_identity(
                r#"{"Statement":{"Effect":"Allow","Action":"iam:*","Resource":"*"}}"#,
            )
            .unwrap(),
        );
        // (action, resource, the request's key and value, within the boundary) →
        // the refusal's message, if any.
        let ask = |action: &str, resource: &str, key: &str, value: &str, bounded: bool| {
            let ctx = |k: &str| (k == key).then(|| value.to_string());
            let b = bounded.then_some(&boundary);
            authorize_identity(&caller, &policies, b, action, resource, &ctx).err()
        };
        let deploy = "arn:aws:iam::1:role/p-test-deploy";
        assert_eq!(
            ask(
                "cloudformation:DeleteStack",
                stack,
                "cloudformation:rolearn",
                deploy,
                false
            ),
            None
        );
        // Without the RoleArn the condition key is absent: refused, and the
        // message names the statement and the condition that did not hold.
        let e = authorize_identity(
            &caller,
            &policies,
            None,
            "cloudformation:DeleteStack",
            stack,
            &none,
        )
        .unwrap_err();
        assert!(
            e.contains("ChangeStacks")
                && e.contains("cloudformation:rolearn")
                && e.contains("(absent)"),
            "{e}"
        );
        let prod = "arn:aws:cloudformation:us-east-1:1:stack/p-prod-api/0";
        let e = ask(
            "cloudformation:CreateChangeSet",
            prod,
            "cloudformation:rolearn",
            deploy,
            false,
        )
        .unwrap();
        assert!(
            e.contains("only on arn:aws:cloudformation:us-east-1:1:stack/p-test-*/*"),
            "{e}"
        );
        let e = ask("ecs:ListTasks", "*", "", "", false).unwrap();
        assert!(e.contains("no statement of ci names ecs:ListTasks"), "{e}");
        let to = "iam:passedtoservice";
        assert_eq!(
            ask(
                "iam:PassRole",
                deploy,
                to,
                "cloudformation.amazonaws.com",
                false
            ),
            None
        );
        assert!(ask("iam:PassRole", deploy, to, "ecs.amazonaws.com", false).is_some());
        // StringLike on a request key; an explicit Deny (NotResource) wins.
        assert_eq!(
            ask(
                "s3:DeleteObject",
                "arn:aws:s3:::b/p-test-lock.json",
                "s3:prefix",
                "abc",
                false
            ),
            None
        );
        let e = ask(
            "s3:DeleteObject",
            "arn:aws:s3:::c/p-test-lock.json",
            "s3:prefix",
            "abc",
            false,
        )
        .unwrap();
        assert!(e.contains("explicitly denied"), "{e}");
        // A boundary must allow it too.
        let e = ask(
            "cloudformation:DeleteStack",
            stack,
            "cloudformation:rolearn",
            deploy,
            true,
        )
        .unwrap();
        assert!(
            e.contains("outside the permissions boundary boundary"),
            "{e}"
        );
        // An identity policy names no principal; a resource policy still needs one
        // and still refuses keys the local cloud cannot give values to.
        assert!(
            PolicyDoc::parse_identity(
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#
            )
            .is_err()
        );
        assert!(doc(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"StringEquals":{"cloudformation:RoleArn":"x"}}}]}"#).is_err());
    }
}
