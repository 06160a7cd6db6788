//! What IAM authorizes for each recorded call (`record::Call`): the actions, the
//! resource ARN of each, and the request's condition keys — as the Service
//! Authorization Reference says for the calls the aws target makes
//! (CloudFormation, S3, ECR, ECS, CloudWatch Logs, SSM, Service Quotas, IAM, STS,
//! KMS, ELBv2), including what a call implies beyond its own action:
//! `iam:PassRole` for a `RoleArn` given to CloudFormation, `s3:GetObject` on a
//! `TemplateURL` (CloudFormation reads it as the caller), KMS through SSM for
//! SecureStrings (`kms:ViaService`). A call it has no mapping for is an error,
//! so that no new call is left unevaluated.
//!
//! Stateful over one recording: the key a parameter was written with is
//! remembered, for the reads that decrypt it.

use crate::record::Call;
use serde_json::Value;
use std::collections::BTreeMap;

/// One authorization IAM makes for a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub action: String,
    pub resource: String,
    /// Condition keys of the request (lowercase names).
    pub context: BTreeMap<String, String>,
}

fn need(action: &str, resource: String) -> Need {
    Need {
        action: action.to_string(),
        resource,
        context: BTreeMap::new(),
    }
}

impl Need {
    fn with(mut self, key: &str, value: &str) -> Need {
        self.context
            .insert(key.to_ascii_lowercase(), value.to_string());
        self
    }
}

/// Maps the calls of one recording, in order.
pub struct Authorizer {
    account: String,
    /// KMS aliases (`alias/shop/test`) → key ARNs.
    aliases: BTreeMap<String, String>,
    /// Parameter ARN → the ARN of the key it was written with.
    keys: BTreeMap<String, String>,
}

/// A stack id for the ARN IAM evaluates (`stack/<name>/<id>`) when the request
/// names the stack by name.
const STACK_ID: &str = "00000000-0000-0000-0000-000000000000";

fn s<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p[k].as_str().filter(|v| !v.is_empty())
}

/// The last `/`-separated part of an ARN or name.
fn last(v: &str) -> &str {
    v.rsplit('/').next().unwrap_or(v)
}

impl Authorizer {
    pub fn new(account: &str, aliases: BTreeMap<String, String>) -> Authorizer {
        Authorizer {
            account: account.to_string(),
            aliases,
            keys: BTreeMap::new(),
        }
    }

    /// What IAM authorizes for `call` (empty: a call every principal may make,
    /// like `sts:GetCallerIdentity`), or why it cannot be said.
    pub fn needs(&mut self, call: &Call) -> Result<Vec<Need>, String> {
        let p = &call.params;
        let (r, a) = (call.region.as_str(), self.account.clone());
        let op = call.operation.as_str();
        let unmapped = || {
            Err(format!(
                "no IAM mapping for {}:{op} (crates/fakecloud-adapter/src/authz.rs): say which action, resource and condition keys it needs",
                call.service
            ))
        };
        let action = format!("{}:{op}", call.service);
        let out = match call.service.as_str() {
            "cloudformation" => self.cloudformation(call)?,
            "s3" => s3(call, &a)?,
            "ecr" => {
                let repo = |n: &str| {
                    let acct = s(p, "registryId").unwrap_or(&a);
                    format!("arn:aws:ecr:{r}:{acct}:repository/{n}")
                };
                match op {
                    "GetAuthorizationToken" => vec![need(&action, "*".into())],
                    "DescribeRepositories" => match p["repositoryNames"].as_array() {
                        Some(names) if !names.is_empty() => names
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|n| need(&action, repo(n)))
                            .collect(),
                        _ => vec![need(&action, "*".into())],
                    },
                    "ListImages"
                    | "DescribeImages"
                    | "BatchDeleteImage"
                    | "BatchGetImage"
                    | "PutImage"
                    | "InitiateLayerUpload"
                    | "UploadLayerPart"
                    | "CompleteLayerUpload"
                    | "BatchCheckLayerAvailability"
                    | "GetDownloadUrlForLayer"
                    | "ListTagsForResource" => {
                        let Some(n) = s(p, "repositoryName") else {
                            return Err(format!("ecr:{op} without repositoryName"));
                        };
                        vec![need(&action, repo(n))]
                    }
                    _ => return unmapped(),
                }
            }
            "ecs" => {
                let cluster = last(s(p, "cluster").unwrap_or("default")).to_string();
                let cluster_arn = format!("arn:aws:ecs:{r}:{a}:cluster/{cluster}");
                // `<kind>/<cluster>/<id>` whether the request gave a name, an ARN of
                // the current format, or of the old one (`task/<id>`).
                let scoped = |kind: &str, v: &str| {
                    format!("arn:aws:ecs:{r}:{a}:{kind}/{cluster}/{}", last(v))
                };
                let list = |k: &str| -> Vec<String> {
                    p[k].as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                };
                let in_cluster = |n: Need| n.with("ecs:cluster", &cluster_arn);
                match op {
                    "DescribeServices" => list("services")
                        .iter()
                        .map(|v| in_cluster(need(&action, scoped("service", v))))
                        .collect(),
                    "DescribeTasks" => list("tasks")
                        .iter()
                        .map(|v| in_cluster(need(&action, scoped("task", v))))
                        .collect(),
                    // ListTasks is authorized on the cluster's container instances.
                    "ListTasks" => vec![in_cluster(need(
                        &action,
                        format!("arn:aws:ecs:{r}:{a}:container-instance/{cluster}/*"),
                    ))],
                    "ListServices" => vec![in_cluster(need(&action, "*".into()))],
                    "DescribeClusters" => match list("clusters") {
                        c if c.is_empty() => vec![need(&action, cluster_arn.clone())],
                        c => c
                            .iter()
                            .map(|v| {
                                need(&action, format!("arn:aws:ecs:{r}:{a}:cluster/{}", last(v)))
                            })
                            .collect(),
                    },
                    "DescribeTaskDefinition" | "ListTaskDefinitions" | "ListClusters" => {
                        vec![need(&action, "*".into())]
                    }
                    _ => return unmapped(),
                }
            }
            "logs" => {
                let group = s(p, "logGroupName").map(str::to_string).or_else(|| {
                    s(p, "logGroupIdentifier").map(|g| {
                        g.rsplit_once("log-group:")
                            .map_or(g, |(_, n)| n.trim_end_matches(":*"))
                            .to_string()
                    })
                });
                let group_arn = |g: &str| format!("arn:aws:logs:{r}:{a}:log-group:{g}");
                match (op, group) {
                    ("GetLogEvents", Some(g)) => vec![need(
                        &action,
                        format!(
                            "{}:log-stream:{}",
                            group_arn(&g),
                            s(p, "logStreamName").unwrap_or("*")
                        ),
                    )],
                    ("FilterLogEvents" | "DescribeLogStreams", Some(g)) => {
                        vec![need(&action, format!("{}:*", group_arn(&g)))]
                    }
                    ("DescribeLogGroups", _) => {
                        vec![need(&action, format!("arn:aws:logs:{r}:{a}:log-group:*"))]
                    }
                    _ => return unmapped(),
                }
            }
            "ssm" => self.ssm(call)?,
            "servicequotas" => match (op, s(p, "ServiceCode"), s(p, "QuotaCode")) {
                ("GetServiceQuota", Some(svc), Some(q)) => vec![need(
                    &action,
                    format!("arn:aws:servicequotas:{r}:{a}:{svc}/{q}"),
                )],
                (
                    "ListServiceQuotas"
                    | "GetAWSDefaultServiceQuota"
                    | "ListAWSDefaultServiceQuotas",
                    ..,
                ) => {
                    vec![need(&action, "*".into())]
                }
                _ => return unmapped(),
            },
            "iam" => match op {
                "CreateServiceLinkedRole" => {
                    let svc = s(p, "AWSServiceName").unwrap_or_default();
                    vec![
                        need(
                            &action,
                            format!("arn:aws:iam::{a}:role/aws-service-role/{svc}/*"),
                        )
                        .with("iam:AWSServiceName", svc),
                    ]
                }
                "GetRole" => vec![need(
                    &action,
                    format!(
                        "arn:aws:iam::{a}:role/{}",
                        s(p, "RoleName").unwrap_or_default()
                    ),
                )],
                _ => return unmapped(),
            },
            "sts" => match op {
                // Needs no permission (IAM: "No permissions are required").
                "GetCallerIdentity" => Vec::new(),
                "AssumeRole" => vec![need(&action, s(p, "RoleArn").unwrap_or("*").to_string())],
                _ => return unmapped(),
            },
            "kms" => match op {
                "ListAliases" | "ListKeys" => vec![need(&action, "*".into())],
                "DescribeKey" => vec![need(&action, self.key(r, s(p, "KeyId").unwrap_or("*"))?)],
                _ => return unmapped(),
            },
            "elasticloadbalancing" => match op {
                o if o.starts_with("Describe") => vec![need(&action, "*".into())],
                _ => return unmapped(),
            },
            _ => return unmapped(),
        };
        Ok(out)
    }

    /// A key's ARN from what a request gives: an ARN, a key id or an alias.
    fn key(&self, region: &str, k: &str) -> Result<String, String> {
        if k.starts_with("arn:") && k.contains(":key/") {
            return Ok(k.to_string());
        }
        let alias = k
            .rsplit_once(":alias/")
            .map(|(_, a)| format!("alias/{a}"))
            .unwrap_or_else(|| k.to_string());
        if alias.starts_with("alias/") {
            return self.aliases.get(&alias).cloned().ok_or_else(|| {
                format!(
                    "the KMS alias {alias} names no key known to the check (aliases: {:?})",
                    self.aliases.keys().collect::<Vec<_>>()
                )
            });
        }
        Ok(format!("arn:aws:kms:{region}:{}:key/{k}", self.account))
    }

    fn cloudformation(&mut self, call: &Call) -> Result<Vec<Need>, String> {
        let p = &call.params;
        let op = call.operation.as_str();
        let action = format!("cloudformation:{op}");
        let (r, a) = (call.region.as_str(), self.account.as_str());
        let stack = s(p, "StackName").map(|n| {
            if n.starts_with("arn:") {
                n.to_string()
            } else {
                format!("arn:aws:cloudformation:{r}:{a}:stack/{n}/{STACK_ID}")
            }
        });
        Ok(match (op, stack) {
            (
                "ListStacks"
                | "ValidateTemplate"
                | "ListExports"
                | "ListImports"
                | "DescribeAccountLimits"
                | "EstimateTemplateCost",
                _,
            )
            | ("DescribeStacks" | "GetTemplateSummary", None) => {
                vec![need(&action, "*".into())]
            }
            (
                "CreateChangeSet"
                | "CreateStack"
                | "UpdateStack"
                | "DeleteStack"
                | "ContinueUpdateRollback",
                Some(stack),
            ) => {
                let mut n = need(&action, stack);
                let mut out = Vec::new();
                // The query protocol spells it RoleARN.
                if let Some(role) = s(p, "RoleARN").or(s(p, "RoleArn")) {
                    n = n.with("cloudformation:RoleArn", role);
                    // Passing a role to CloudFormation.
                    out.push(
                        need("iam:PassRole", role.to_string())
                            .with("iam:PassedToService", "cloudformation.amazonaws.com"),
                    );
                }
                if let Some(c) = s(p, "ChangeSetName") {
                    n = n.with("cloudformation:ChangeSetName", c);
                }
                if let Some(url) = s(p, "TemplateURL") {
                    n = n.with("cloudformation:TemplateUrl", url);
                    // CloudFormation reads the template as the caller.
                    out.push(need("s3:GetObject", template_object(url)?));
                }
                out.insert(0, n);
                out
            }
            (
                "DescribeStacks"
                | "DescribeStackEvents"
                | "DescribeStackResources"
                | "DescribeStackResource"
                | "ListStackResources"
                | "GetTemplate"
                | "GetTemplateSummary"
                | "DescribeChangeSet"
                | "ExecuteChangeSet"
                | "DeleteChangeSet"
                | "ListChangeSets"
                | "UpdateTerminationProtection"
                | "DetectStackDrift"
                | "DescribeStackResourceDrifts"
                | "CancelUpdateStack",
                Some(stack),
            ) => {
                let mut n = need(&action, stack);
                if let Some(c) = s(p, "ChangeSetName") {
                    n = n.with("cloudformation:ChangeSetName", c);
                }
                vec![n]
            }
            (_, None) => {
                return Err(format!(
                    "cloudformation:{op} names no stack (StackName): the check cannot say which stack IAM evaluates"
                ));
            }
            _ => {
                return Err(format!(
                    "no IAM mapping for cloudformation:{op} (crates/fakecloud-adapter/src/authz.rs)"
                ));
            }
        })
    }

    fn ssm(&mut self, call: &Call) -> Result<Vec<Need>, String> {
        let p = &call.params;
        let op = call.operation.as_str();
        let action = format!("ssm:{op}");
        let r = call.region.as_str();
        let param = |n: &str| -> String {
            if n.starts_with("arn:") {
                return n.to_string();
            }
            let n = n.split(':').next().unwrap_or(n);
            let slash = if n.starts_with('/') { "" } else { "/" };
            format!("arn:aws:ssm:{r}:{}:parameter{slash}{n}", self.account)
        };
        let names: Vec<String> = match p["Names"].as_array() {
            Some(a) => a.iter().filter_map(Value::as_str).map(param).collect(),
            None => s(p, "Name")
                .or(s(p, "ResourceId"))
                .map(param)
                .into_iter()
                .collect(),
        };
        let via = format!("ssm.{r}.amazonaws.com");
        let decrypt = p["WithDecryption"].as_bool() == Some(true);
        let mut out = Vec::new();
        match op {
            "GetParameter"
            | "GetParameters"
            | "GetParameterHistory"
            | "DeleteParameter"
            | "DeleteParameters"
            | "AddTagsToResource"
            | "ListTagsForResource"
            | "LabelParameterVersion" => {
                if names.is_empty() {
                    return Err(format!("ssm:{op} names no parameter"));
                }
                for n in &names {
                    out.push(need(&action, n.clone()));
                    if decrypt && let Some(k) = self.keys.get(n) {
                        out.push(need("kms:Decrypt", k.clone()).with("kms:ViaService", &via));
                    }
                }
            }
            "GetParametersByPath" => {
                let path = s(p, "Path").ok_or("ssm:GetParametersByPath without Path")?;
                let arn = param(path.trim_end_matches('/'));
                out.push(need(&action, arn.clone()));
                if decrypt {
                    // The keys of the parameters under the path this recording wrote.
                    let mut keys: Vec<&String> = self
                        .keys
                        .iter()
                        .filter(|(n, _)| n.starts_with(&format!("{arn}/")))
                        .map(|(_, k)| k)
                        .collect();
                    keys.sort();
                    keys.dedup();
                    for k in keys {
                        out.push(need("kms:Decrypt", k.clone()).with("kms:ViaService", &via));
                    }
                }
            }
            "PutParameter" => {
                let n = names
                    .first()
                    .ok_or("ssm:PutParameter without Name")?
                    .clone();
                out.push(need(&action, n.clone()));
                if p["Tags"].as_array().is_some_and(|t| !t.is_empty()) {
                    out.push(need("ssm:AddTagsToResource", n.clone()));
                }
                if s(p, "Type") == Some("SecureString")
                    && let Some(k) = s(p, "KeyId")
                {
                    // A customer managed key: SSM encrypts with it as the caller
                    // (the AWS managed aws/ssm key needs no identity policy).
                    let key = self.key(r, k)?;
                    out.push(need("kms:Encrypt", key.clone()).with("kms:ViaService", &via));
                    self.keys.insert(n, key);
                }
            }
            "DescribeParameters" => out.push(need(&action, "*".into())),
            _ => {
                return Err(format!(
                    "no IAM mapping for ssm:{op} (crates/fakecloud-adapter/src/authz.rs)"
                ));
            }
        }
        Ok(out)
    }
}

/// The object ARN a `TemplateURL` names: path-style (`https://host/bucket/key`)
/// or virtual-hosted (`https://bucket.s3.region.amazonaws.com/key`).
fn template_object(url: &str) -> Result<String, String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = crate::decode(path.split('?').next().unwrap_or(path));
    let host = host.split(':').next().unwrap_or(host);
    if let Some((bucket, _)) = host.split_once(".s3.").or_else(|| host.split_once(".s3-")) {
        return Ok(format!("arn:aws:s3:::{bucket}/{path}"));
    }
    if path.contains('/') {
        return Ok(format!("arn:aws:s3:::{path}"));
    }
    Err(format!("TemplateURL {url} names no bucket and key"))
}

/// S3's REST API: the operation from the method, the path and the query.
fn s3(call: &Call, _account: &str) -> Result<Vec<Need>, String> {
    let p = &call.params;
    let path = p["path"].as_str().unwrap_or("/");
    let q = &p["query"];
    let has = |k: &str| !q[k].is_null();
    let method = call.operation.as_str();
    let trimmed = path.trim_start_matches('/');
    // Virtual-hosted requests name the bucket in the host.
    let host_bucket = p["headers"]["host"]
        .as_str()
        .and_then(|h| h.split_once(".s3."))
        .map(|(b, _)| b.to_string());
    let (bucket, key) = match &host_bucket {
        Some(b) => (b.clone(), trimmed.to_string()),
        None => {
            let (b, k) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            (b.to_string(), k.to_string())
        }
    };
    let b_arn = format!("arn:aws:s3:::{bucket}");
    let o_arn = format!("{b_arn}/{key}");
    let one = |action: &str, arn: &str| Ok(vec![need(action, arn.to_string())]);
    if bucket.is_empty() {
        return match method {
            "GET" => one("s3:ListAllMyBuckets", "*"),
            _ => Err(format!("no IAM mapping for S3 {method} /")),
        };
    }
    let version = has("versionId");
    if key.is_empty() {
        let sub = [
            ("versions", "s3:ListBucketVersions", "s3:ListBucketVersions"),
            (
                "versioning",
                "s3:GetBucketVersioning",
                "s3:PutBucketVersioning",
            ),
            ("policy", "s3:GetBucketPolicy", "s3:PutBucketPolicy"),
            ("location", "s3:GetBucketLocation", ""),
            ("tagging", "s3:GetBucketTagging", "s3:PutBucketTagging"),
            (
                "encryption",
                "s3:GetEncryptionConfiguration",
                "s3:PutEncryptionConfiguration",
            ),
            (
                "lifecycle",
                "s3:GetLifecycleConfiguration",
                "s3:PutLifecycleConfiguration",
            ),
            ("uploads", "s3:ListBucketMultipartUploads", ""),
            ("acl", "s3:GetBucketAcl", "s3:PutBucketAcl"),
        ]
        .into_iter()
        .find(|(k, ..)| has(k));
        let mut list = need("s3:ListBucket", b_arn.clone());
        if let Some(prefix) = q["prefix"].as_str() {
            list = list.with("s3:prefix", prefix);
        }
        return match (method, sub) {
            ("GET", Some((_, get, _))) => one(get, &b_arn),
            ("PUT", Some((_, _, put))) if !put.is_empty() => one(put, &b_arn),
            ("DELETE", Some(("policy", ..))) => one("s3:DeleteBucketPolicy", &b_arn),
            ("GET" | "HEAD", None) => Ok(vec![list]),
            ("PUT", None) => one("s3:CreateBucket", &b_arn),
            ("DELETE", None) => one("s3:DeleteBucket", &b_arn),
            ("POST", _) if has("delete") => Ok(p["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    let arn = format!("{b_arn}/{}", k["key"].as_str().unwrap_or_default());
                    if k["version"].is_string() {
                        need("s3:DeleteObjectVersion", arn)
                    } else {
                        need("s3:DeleteObject", arn)
                    }
                })
                .collect()),
            _ => Err(format!("no IAM mapping for S3 {method} {path} {q}")),
        };
    }
    let pick = |plain: &str, versioned: &str| {
        if version {
            versioned.to_string()
        } else {
            plain.to_string()
        }
    };
    match method {
        "GET" | "HEAD" if has("tagging") => one(
            &pick("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
            &o_arn,
        ),
        "GET" | "HEAD" => one(&pick("s3:GetObject", "s3:GetObjectVersion"), &o_arn),
        "PUT" if has("tagging") => one("s3:PutObjectTagging", &o_arn),
        "PUT" => {
            let mut out = vec![need("s3:PutObject", o_arn)];
            if let Some(src) = p["headers"]["x-amz-copy-source"].as_str() {
                let src = crate::decode(src);
                let (src, v) = src
                    .split_once("?versionId=")
                    .map_or((src.as_str(), false), |(s, _)| (s, true));
                let action = if v {
                    "s3:GetObjectVersion"
                } else {
                    "s3:GetObject"
                };
                out.push(need(
                    action,
                    format!("arn:aws:s3:::{}", src.trim_start_matches('/')),
                ));
            }
            Ok(out)
        }
        "DELETE" if has("uploadId") => one("s3:AbortMultipartUpload", &o_arn),
        "DELETE" => one(&pick("s3:DeleteObject", "s3:DeleteObjectVersion"), &o_arn),
        "POST" if has("uploads") || has("uploadId") => one("s3:PutObject", &o_arn),
        _ => Err(format!("no IAM mapping for S3 {method} {path} {q}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn call(service: &str, operation: &str, params: Value) -> Call {
        Call {
            principal: "ci".into(),
            key: "k".into(),
            service: service.into(),
            region: "us-east-1".into(),
            operation: operation.into(),
            params,
        }
    }

    fn auth() -> Authorizer {
        Authorizer::new(
            "123456789012",
            [(
                "alias/shop/preview".to_string(),
                "arn:aws:kms:us-east-1:123456789012:key/k1".to_string(),
            )]
            .into(),
        )
    }

    fn pairs(n: &[Need]) -> Vec<(String, String)> {
        n.iter()
            .map(|n| (n.action.clone(), n.resource.clone()))
            .collect()
    }

    #[test]
    fn a_change_set_with_a_role_and_a_template_url_needs_the_pass_and_the_read() {
        let n = auth()
            .needs(&call(
                "cloudformation",
                "CreateChangeSet",
                json!({"StackName": "shop-test-api", "ChangeSetName": "c1",
                       "RoleARN": "arn:aws:iam::123456789012:role/shop-test-deploy-us-east-1",
                       "TemplateURL": "http://127.0.0.1:4567/shop-templates/shop-test-api/abc.json"}),
            ))
            .unwrap();
        assert_eq!(
            pairs(&n),
            [
                (
                    "cloudformation:CreateChangeSet".into(),
                    format!(
                        "arn:aws:cloudformation:us-east-1:123456789012:stack/shop-test-api/{STACK_ID}"
                    )
                ),
                (
                    "iam:PassRole".into(),
                    "arn:aws:iam::123456789012:role/shop-test-deploy-us-east-1".into()
                ),
                (
                    "s3:GetObject".into(),
                    "arn:aws:s3:::shop-templates/shop-test-api/abc.json".into()
                ),
            ]
        );
        assert_eq!(
            n[0].context["cloudformation:rolearn"],
            "arn:aws:iam::123456789012:role/shop-test-deploy-us-east-1"
        );
        assert_eq!(
            n[1].context["iam:passedtoservice"],
            "cloudformation.amazonaws.com"
        );
        // Without a RoleArn the key is absent (a DeleteStack so made is what a
        // RoleArn condition refuses).
        let n = auth()
            .needs(&call(
                "cloudformation",
                "DeleteStack",
                json!({"StackName": "x"}),
            ))
            .unwrap();
        assert_eq!(n.len(), 1);
        assert!(n[0].context.is_empty());
        // An unnamed DescribeStacks is on `*`.
        let n = auth()
            .needs(&call("cloudformation", "DescribeStacks", json!({})))
            .unwrap();
        assert_eq!(
            pairs(&n),
            [("cloudformation:DescribeStacks".into(), "*".into())]
        );
        assert_eq!(
            template_object("https://b.s3.us-east-1.amazonaws.com/k/x.json").unwrap(),
            "arn:aws:s3:::b/k/x.json"
        );
    }

    #[test]
    fn s3_rest_requests_map_to_their_actions() {
        let mut a = auth();
        let rest = |method: &str, path: &str, query: Value| {
            call(
                "s3",
                method,
                json!({"path": path, "query": query, "headers": {}, "keys": []}),
            )
        };
        for (c, want) in [
            (
                rest("GET", "/b", json!({"versions": "", "prefix": "p"})),
                ("s3:ListBucketVersions", "arn:aws:s3:::b"),
            ),
            (
                rest("GET", "/b", json!({"list-type": "2"})),
                ("s3:ListBucket", "arn:aws:s3:::b"),
            ),
            (
                rest("HEAD", "/b", json!({})),
                ("s3:ListBucket", "arn:aws:s3:::b"),
            ),
            (
                rest("DELETE", "/b", json!({})),
                ("s3:DeleteBucket", "arn:aws:s3:::b"),
            ),
            (rest("GET", "/", json!({})), ("s3:ListAllMyBuckets", "*")),
            (
                rest("PUT", "/b/k/l.json", json!({})),
                ("s3:PutObject", "arn:aws:s3:::b/k/l.json"),
            ),
            (
                rest("GET", "/b/k", json!({"versionId": "v"})),
                ("s3:GetObjectVersion", "arn:aws:s3:::b/k"),
            ),
            (
                rest("DELETE", "/b/k", json!({})),
                ("s3:DeleteObject", "arn:aws:s3:::b/k"),
            ),
            (
                rest("DELETE", "/b/k", json!({"versionId": "v"})),
                ("s3:DeleteObjectVersion", "arn:aws:s3:::b/k"),
            ),
        ] {
            let n = a.needs(&c).unwrap();
            assert_eq!(
                pairs(&n),
                [(want.0.to_string(), want.1.to_string())],
                "{c:?}"
            );
        }
        let del = call(
            "s3",
            "POST",
            json!({"path": "/b", "query": {"delete": ""}, "headers": {},
            "keys": [{"key": "a", "version": "v1"}, {"key": "b", "version": null}]}),
        );
        assert_eq!(
            pairs(&a.needs(&del).unwrap()),
            [
                ("s3:DeleteObjectVersion".into(), "arn:aws:s3:::b/a".into()),
                ("s3:DeleteObject".into(), "arn:aws:s3:::b/b".into())
            ]
        );
    }

    #[test]
    fn secure_strings_need_their_key_through_ssm_and_unknown_calls_are_errors() {
        let mut a = auth();
        let n = a
            .needs(&call(
                "ssm",
                "PutParameter",
                json!({"Name": "/shop/preview-7/api/T", "Type": "SecureString",
                "KeyId": "alias/shop/preview", "Tags": [{"Key": "a", "Value": "b"}]}),
            ))
            .unwrap();
        let p = "arn:aws:ssm:us-east-1:123456789012:parameter/shop/preview-7/api/T";
        let key = "arn:aws:kms:us-east-1:123456789012:key/k1";
        assert_eq!(
            pairs(&n),
            [
                ("ssm:PutParameter".into(), p.into()),
                ("ssm:AddTagsToResource".into(), p.into()),
                ("kms:Encrypt".into(), key.into())
            ]
        );
        assert_eq!(
            n[2].context["kms:viaservice"],
            "ssm.us-east-1.amazonaws.com"
        );
        // Read back with decryption: the key it was written with.
        let n = a
            .needs(&call(
                "ssm",
                "GetParameters",
                json!({"Names": ["/shop/preview-7/api/T"], "WithDecryption": true}),
            ))
            .unwrap();
        assert_eq!(
            pairs(&n),
            [
                ("ssm:GetParameters".into(), p.into()),
                ("kms:Decrypt".into(), key.into())
            ]
        );
        let n = a
            .needs(&call(
                "ssm",
                "GetParametersByPath",
                json!({"Path": "/shop/preview-7/", "WithDecryption": true}),
            ))
            .unwrap();
        assert_eq!(n[1].resource, key);
        // An alias nobody knows, and a call without a mapping: errors, never passes.
        assert!(
            a.needs(&call(
                "ssm",
                "PutParameter",
                json!({"Name": "/x", "Type": "SecureString", "KeyId": "alias/other"})
            ))
            .unwrap_err()
            .contains("alias/other")
        );
        assert!(
            a.needs(&call("ecs", "RunTask", json!({})))
                .unwrap_err()
                .contains("no IAM mapping for ecs:RunTask")
        );
        assert!(
            a.needs(&call(
                "cloudformation",
                "DescribeChangeSet",
                json!({"ChangeSetName": "arn:x"})
            ))
            .is_err()
        );
        assert_eq!(
            a.needs(&call("sts", "GetCallerIdentity", json!({})))
                .unwrap(),
            []
        );
    }

    #[test]
    fn ecs_resources_are_in_their_cluster_whatever_arn_format_the_request_uses() {
        let mut a = auth();
        let n = a
            .needs(&call("ecs", "DescribeTasks", json!({"cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/shop-test-cluster",
                "tasks": ["arn:aws:ecs:us-east-1:123456789012:task/abc", "arn:aws:ecs:us-east-1:123456789012:task/shop-test-cluster/def"]})))
            .unwrap();
        assert_eq!(
            n[0].resource,
            "arn:aws:ecs:us-east-1:123456789012:task/shop-test-cluster/abc"
        );
        assert_eq!(
            n[1].resource,
            "arn:aws:ecs:us-east-1:123456789012:task/shop-test-cluster/def"
        );
        assert_eq!(
            n[0].context["ecs:cluster"],
            "arn:aws:ecs:us-east-1:123456789012:cluster/shop-test-cluster"
        );
        let n = a
            .needs(&call(
                "ecs",
                "DescribeServices",
                json!({"cluster": "c", "services": ["api"]}),
            ))
            .unwrap();
        assert_eq!(
            n[0].resource,
            "arn:aws:ecs:us-east-1:123456789012:service/c/api"
        );
        let n = a
            .needs(&call(
                "logs",
                "GetLogEvents",
                json!({"logGroupName": "/ecs/shop-test/api", "logStreamName": "s/1"}),
            ))
            .unwrap();
        assert_eq!(
            n[0].resource,
            "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/shop-test/api:log-stream:s/1"
        );
    }
}
