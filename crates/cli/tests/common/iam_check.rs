//! The CI roles' permissions checked against every AWS call the end-to-end runs
//! make: the adapter records each call with the principal the test says made it
//! (`ci:test`, `ci:preview`; `admin` for what a person runs: bootstrap, secrets,
//! destroy), `pantstack_fakecloud_adapter::authz` maps it to what IAM
//! authorizes, and pantstack's own IAM evaluator
//! (`pantstack_endpoint::policy_doc::authorize_identity`) decides it against the
//! policies the synthesized foundation template gives that environment's
//! `CiRole` (inline, managed, boundary), intrinsics resolved with the emulator's
//! exports. The emulator evaluates no IAM; this is what stands in for it.

use pantstack_endpoint::policy_doc::{Caller, PolicyDoc, authorize_identity};
use pantstack_fakecloud_adapter::authz::Authorizer;
use pantstack_fakecloud_adapter::record::Call;
use serde_json::Value;
use std::collections::BTreeMap;

/// A CI role as a foundation template defines it.
pub struct Role {
    pub arn: String,
    pub policies: Vec<(String, PolicyDoc)>,
    pub boundary: Option<(String, PolicyDoc)>,
}

/// What the intrinsics of a deployed template resolve to.
pub struct Resolver<'a> {
    pub account: String,
    pub region: String,
    pub exports: &'a BTreeMap<String, String>,
    pub template: &'a Value,
}

impl Resolver<'_> {
    fn sub(&self, text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..]
                .find('}')
                .ok_or(format!("unclosed ${{ in {text}"))?
                + i;
            let name = &rest[i + 2..end];
            let v = match name {
                "AWS::Partition" => "aws".to_string(),
                "AWS::AccountId" => self.account.clone(),
                "AWS::Region" => self.region.clone(),
                n => match vars.get(n) {
                    Some(v) => v.clone(),
                    None => self
                        .resolve(&serde_json::json!({ "Ref": n }))?
                        .as_str()
                        .map(str::to_string)
                        .ok_or(format!("${{{n}}} in {text} resolves to no string"))?,
                },
            };
            out.push_str(&v);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `v` with every intrinsic function resolved.
    pub fn resolve(&self, v: &Value) -> Result<Value, String> {
        match v {
            Value::Array(a) => a.iter().map(|x| self.resolve(x)).collect(),
            Value::Object(o)
                if o.len() == 1 && o.keys().all(|k| k.starts_with("Fn::") || k == "Ref") =>
            {
                let (k, x) = o.iter().next().ok_or("empty")?;
                let s = |x: &Value| -> Result<String, String> {
                    self.resolve(x)?
                        .as_str()
                        .map(str::to_string)
                        .ok_or(format!("{k} of {x} is no string"))
                };
                Ok(Value::String(match k.as_str() {
                    "Fn::Sub" => match x {
                        Value::String(t) => self.sub(t, &BTreeMap::new())?,
                        Value::Array(a) if a.len() == 2 => {
                            let mut vars = BTreeMap::new();
                            for (n, val) in a[1].as_object().ok_or("Fn::Sub variables")? {
                                vars.insert(n.clone(), s(val)?);
                            }
                            self.sub(a[0].as_str().ok_or("Fn::Sub text")?, &vars)?
                        }
                        _ => return Err(format!("Fn::Sub {x}")),
                    },
                    "Fn::ImportValue" => {
                        let name = s(x)?;
                        self.exports.get(&name).cloned().ok_or(format!(
                            "no export {name} in the emulator (exports: {:?})",
                            self.exports.keys().collect::<Vec<_>>()
                        ))?
                    }
                    // A resource's attribute: through the output that exports it.
                    "Fn::GetAtt" | "Ref" => {
                        let outputs = self.template["Outputs"].as_object().ok_or("no Outputs")?;
                        let export = outputs
                            .values()
                            .find(|o| o["Value"] == *v)
                            .map(|o| s(&o["Export"]["Name"]))
                            .ok_or(format!(
                                "{v} is exported by no output of the template: the check cannot resolve it"
                            ))??;
                        self.exports
                            .get(&export)
                            .cloned()
                            .ok_or(format!("no export {export} in the emulator"))?
                    }
                    other => return Err(format!("the check resolves no {other}")),
                }))
            }
            Value::Object(o) => {
                let mut out = serde_json::Map::new();
                for (k, x) in o {
                    out.insert(k.clone(), self.resolve(x)?);
                }
                Ok(Value::Object(out))
            }
            _ => Ok(v.clone()),
        }
    }

    /// The template's `CiRole`: its inline policies, the managed policies it
    /// attaches (those of the template; an AWS managed policy is refused, the
    /// check could not know it) and its permissions boundary.
    pub fn ci_role(&self) -> Result<Role, String> {
        let role = &self.template["Resources"]["CiRole"];
        let props = &role["Properties"];
        let name = self.resolve(&props["RoleName"])?;
        let name = name.as_str().ok_or("CiRole has no RoleName")?;
        let parse = |what: &str, doc: &Value| -> Result<PolicyDoc, String> {
            PolicyDoc::parse_identity(&self.resolve(doc)?.to_string())
                .map_err(|e| format!("{what}: {e}"))
        };
        let managed = |r: &Value| -> Result<(String, PolicyDoc), String> {
            let id = r["Ref"].as_str().ok_or(format!(
                "{r}: only the template's own managed policies can be checked"
            ))?;
            let res = &self.template["Resources"][id];
            Ok((
                id.to_string(),
                parse(id, &res["Properties"]["PolicyDocument"])?,
            ))
        };
        let mut policies = Vec::new();
        for p in props["Policies"].as_array().into_iter().flatten() {
            let n = p["PolicyName"].as_str().unwrap_or("inline").to_string();
            policies.push((n.clone(), parse(&n, &p["PolicyDocument"])?));
        }
        for r in props["ManagedPolicyArns"].as_array().into_iter().flatten() {
            policies.push(managed(r)?);
        }
        let boundary = match props.get("PermissionsBoundary") {
            Some(b) => Some(managed(b)?),
            None => None,
        };
        Ok(Role {
            arn: format!("arn:aws:iam::{}:role/{name}", self.account),
            policies,
            boundary,
        })
    }
}

/// What a `docker push` to ECR needs (the registry API does not pass the
/// adapter): after each `ecr:GetAuthorizationToken` of a CI principal.
fn pushes(call: &Call, repository: &str) -> Vec<Call> {
    [
        "BatchCheckLayerAvailability",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "PutImage",
        "BatchGetImage",
    ]
    .iter()
    .map(|op| Call {
        operation: op.to_string(),
        params: serde_json::json!({ "repositoryName": repository, "note": "docker push" }),
        ..call.clone()
    })
    .collect()
}

/// Whether a refusal is one pantstack expects and reports: `diff` run as a CI
/// role compares the stacks `bootstrap` deploys (`administrators`: the shared
/// stack, the foundation) only where it may, and says "not compared" for the
/// others (`deploy::ship::diff`) — a denial on such a stack, or on the upload
/// of its template, in a call labelled `…/diff`.
fn expected(principal: &str, resource: &str, administrators: &[&str]) -> bool {
    principal.ends_with("/diff")
        && administrators.iter().any(|a| {
            resource.contains(&format!(":stack/{a}/"))
                || (resource.starts_with("arn:aws:s3:::") && resource.contains(&format!("/{a}/")))
        })
}

/// Evaluates every call of a principal that has a role in `roles` (a label's
/// part before `/` names the role; `admin`'s calls are mapped only to learn the
/// keys parameters are written with): the number of authorizations evaluated
/// and of expected refusals (`expected`), or every other refusal and every
/// call without a mapping, each naming the call, the role and what is missing.
pub fn check(
    calls: &[Call],
    roles: &BTreeMap<String, Role>,
    authorizer: &mut Authorizer,
    repository: &str,
    administrators: &[&str],
) -> Result<(usize, usize), String> {
    let mut failures: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut evaluated = 0;
    let mut tolerated = 0;
    let role_of = |c: &Call| roles.get(c.principal.split('/').next().unwrap_or_default());
    let mut all = Vec::new();
    for c in calls {
        all.push(c.clone());
        if c.operation == "GetAuthorizationToken" && role_of(c).is_some() {
            all.extend(pushes(c, repository));
        }
    }
    for call in &all {
        let needs = authorizer.needs(call);
        if call.principal == "admin" {
            continue;
        }
        let Some(role) = role_of(call) else {
            failures.push(format!(
                "{} was made as {:?}, which has no CI role in the check",
                call.describe(),
                call.principal
            ));
            continue;
        };
        let needs = match needs {
            Ok(n) => n,
            Err(e) => {
                failures.push(format!("{} as {}: {e}", call.describe(), role.arn));
                continue;
            }
        };
        let session = role
            .arn
            .replace(":iam::", ":sts::")
            .replace(":role/", ":assumed-role/")
            + "/github-actions";
        let caller = Caller {
            arn: &session,
            account: session.split(':').nth(4).unwrap_or_default(),
            kind: "AssumedRole",
        };
        for n in needs {
            evaluated += 1;
            let context = |k: &str| match k {
                "aws:principalarn" => Some(role.arn.clone()),
                "aws:principalaccount" => Some(caller.account.to_string()),
                k => n.context.get(k).cloned(),
            };
            let decided = authorize_identity(
                &caller,
                &role.policies,
                role.boundary.as_ref(),
                &n.action,
                &n.resource,
                &context,
            );
            if decided.is_err() && expected(&call.principal, &n.resource, administrators) {
                tolerated += 1;
                continue;
            }
            if let Err(why) = decided
                && seen.insert((call.principal.clone(), n.action.clone(), n.resource.clone()))
            {
                failures.push(format!(
                    "{} as {} needs {} on {} (context {:?}), denied: {why}",
                    call.describe(),
                    role.arn,
                    n.action,
                    n.resource,
                    n.context
                ));
            }
        }
    }
    if failures.is_empty() {
        Ok((evaluated, tolerated))
    } else {
        Err(failures.join("\n\n"))
    }
}

/// Who a `pantstack` command line runs as in CI: the generated workflows run
/// `up`/`deploy` and `changed --deployed` as the environment's CI role, every
/// `preview` verb and `diff --pr` as the previews' CI role; the rest
/// (bootstrap, secrets, unlock, status, logs, down, an environment's diff) is
/// a person's, `admin`.
pub fn principal_for(args: &[&str]) -> String {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !matches!(*a, "--format" | "json"))
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1).copied())
    };
    let env = match (after("--env"), after("--pr")) {
        (_, Some(_)) => "preview".to_string(),
        (Some(e), None) if e.starts_with("preview") => "preview".to_string(),
        (Some(e), None) => e.to_string(),
        (None, None) => "test".to_string(),
    };
    match args.first().copied() {
        Some("preview") => "ci:preview".into(),
        Some("deploy" | "up") => format!("ci:{env}"),
        // Only the preview's diff runs in CI (the checks workflow).
        Some("diff") if env == "preview" => "ci:preview/diff".into(),
        Some("changed") if args.contains(&"--deployed") => format!("ci:{env}"),
        _ => "admin".into(),
    }
}
