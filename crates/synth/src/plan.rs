//! `stacks.json`: which stacks to deploy, where, in which order, with which
//! parameters, and which SecureString parameters must exist first.

use crate::Ctx;
use crate::cfn::Template;
use pantstack_model::service::Service;
use serde_json::{Value, json};

pub const FILE: &str = "stacks.json";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub description: String,
    /// `None`: the deployer must supply it (an image tag).
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    pub template: String,
    pub region: String,
    /// Deployed by a person with administrator rights (`bootstrap`), or by CI through
    /// the deploy role.
    pub deployed_by: &'static str,
    pub capabilities: Vec<&'static str>,
    pub parameters: Vec<Parameter>,
    pub depends_on: Vec<String>,
    /// Over 51,200 bytes: CloudFormation takes it only from an S3 bucket
    /// (`--s3-bucket` / `TemplateURL`), not inline.
    pub template_bucket: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretParameter {
    pub service: String,
    /// The environment variable the task sees.
    pub variable: String,
    pub path: String,
    pub kms_key_alias: String,
    pub rotation_days: Option<i64>,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub project: String,
    pub environment: String,
    pub region: String,
    /// In deployment order.
    pub stacks: Vec<Stack>,
    pub secrets: Vec<SecretParameter>,
}

impl Plan {
    pub fn new(cx: &Ctx<'_>) -> Self {
        Plan {
            project: cx.project().to_string(),
            environment: cx.env.to_string(),
            region: cx.region.clone(),
            stacks: Vec::new(),
            secrets: Vec::new(),
        }
    }

    pub fn add_shared(&mut self, cx: &Ctx<'_>, _t: &Template) {
        let mut parameters = vec![Parameter {
            name: "EcsServiceLinkedRole".into(),
            description: "`exists` if the account already has AWSServiceRoleForECS (aws iam get-role --role-name AWSServiceRoleForECS; one per account); `create` creates it".into(),
            default: Some("create".into()),
        }];
        if cx.repo.foundation.github.is_some() {
            parameters.push(Parameter {
                name: "GitHubOidcProviderArn".into(),
                description: "the account's existing GitHub OIDC provider, if it has one (one per account); empty creates it".into(),
                default: Some(String::new()),
            });
        }
        self.stacks.push(Stack {
            name: cx.names.shared_stack(),
            template: format!("{}.json", cx.names.shared_stack()),
            region: cx.region.clone(),
            deployed_by: "bootstrap",
            capabilities: vec![],
            parameters,
            depends_on: vec![],
            template_bucket: false,
        });
    }

    pub fn add_foundation(&mut self, cx: &Ctx<'_>) {
        self.stacks.push(Stack {
            name: cx.names.foundation_stack(),
            template: format!("{}.json", cx.names.foundation_stack()),
            region: cx.region.clone(),
            deployed_by: "bootstrap",
            capabilities: vec!["CAPABILITY_NAMED_IAM"],
            parameters: vec![],
            depends_on: vec![cx.names.shared_stack()],
            template_bucket: false,
        });
    }

    pub fn add_replica(&mut self, cx: &Ctx<'_>, svc: &Service, region: &str) {
        self.stacks.push(Stack {
            name: cx.names.replica_stack(&svc.name),
            template: format!("{}.json", cx.names.replica_stack(&svc.name)),
            region: region.to_string(),
            deployed_by: "ci",
            capabilities: vec![],
            parameters: vec![],
            depends_on: vec![cx.names.foundation_stack()],
            template_bucket: false,
        });
    }

    /// The environment's shared load balancer: after the foundation, before the
    /// HTTP services.
    pub fn add_shared_lb(&mut self, cx: &Ctx<'_>) {
        self.stacks.push(Stack {
            name: cx.names.lb_stack(),
            template: format!("{}.json", cx.names.lb_stack()),
            region: cx.region.clone(),
            deployed_by: "ci",
            capabilities: vec![],
            parameters: vec![],
            depends_on: vec![cx.names.foundation_stack()],
            template_bucket: false,
        });
    }

    /// The Service Connect stack: after every service stack it imports from.
    pub fn add_calls(&mut self, cx: &Ctx<'_>, participants: &[String]) {
        self.stacks.push(Stack {
            name: cx.names.calls_stack(),
            template: format!("{}.json", cx.names.calls_stack()),
            region: cx.region.clone(),
            deployed_by: "ci",
            capabilities: vec![],
            parameters: vec![],
            depends_on: participants
                .iter()
                .map(|s| cx.names.service_stack(s))
                .collect(),
            template_bucket: false,
        });
    }

    pub fn add_service(&mut self, cx: &Ctx<'_>, svc: &Service) {
        let mut parameters = Vec::new();
        if svc.http.is_some() {
            parameters.push(Parameter {
                name: "ImageTag".into(),
                description: format!(
                    "tag of the {} image in the ECR repository (`pantstack tag {}`)",
                    svc.name, svc.name
                ),
                default: None,
            });
        }
        if svc.worker.is_some() {
            parameters.push(Parameter {
                name: "WorkerImageTag".into(),
                description: format!(
                    "tag of the {}-worker image (`pantstack tag {} --worker`)",
                    svc.name, svc.name
                ),
                default: None,
            });
        }
        let mut depends_on = vec![cx.names.foundation_stack()];
        if cx.shared_lb && svc.http.is_some() {
            depends_on.push(cx.names.lb_stack());
        }
        if svc.buckets.iter().any(|b| b.replication_region.is_some()) {
            depends_on.push(cx.names.replica_stack(&svc.name));
        }
        // A bucket another service granted is imported from that service's stack.
        for (owner, _, section, _) in crate::service::used_grants(cx, svc) {
            let stack = cx.names.service_stack(&owner);
            if section == "buckets" && !depends_on.contains(&stack) {
                depends_on.push(stack);
            }
        }
        self.stacks.push(Stack {
            name: cx.names.service_stack(&svc.name),
            template: format!("{}.json", cx.names.service_stack(&svc.name)),
            region: cx.region.clone(),
            deployed_by: "ci",
            capabilities: vec!["CAPABILITY_NAMED_IAM"],
            parameters,
            depends_on,
            template_bucket: false,
        });
        // The owner's: a secret taken `from` another service is that one's parameter.
        for s in svc.secrets.iter().filter(|s| s.from.is_none()) {
            self.secrets.push(SecretParameter {
                service: svc.name.clone(),
                variable: s.name.clone(),
                path: format!("{}/{}", cx.names.ssm_path(&svc.name), s.name),
                kms_key_alias: cx.names.kms_alias(),
                rotation_days: s.rotation_days,
                description: s.description.clone(),
            });
        }
    }

    /// Marks the stacks whose template (in `files`) is over the inline limit.
    pub fn mark_sizes(&mut self, files: &[crate::File]) {
        for s in &mut self.stacks {
            s.template_bucket = files.iter().any(|f| {
                f.name == s.template && f.contents.len() > crate::cfn::INLINE_TEMPLATE_MAX
            });
        }
    }

    pub fn to_value(&self) -> Value {
        json!({
            "project": self.project,
            "environment": self.environment,
            "region": self.region,
            "stacks": self.stacks.iter().map(|s| json!({
                "name": s.name,
                "template": s.template,
                "region": s.region,
                "deployed_by": s.deployed_by,
                "capabilities": s.capabilities,
                "depends_on": s.depends_on,
                "template_bucket": s.template_bucket,
                "parameters": s.parameters.iter().map(|p| json!({
                    "name": p.name,
                    "description": p.description,
                    "required": p.default.is_none(),
                    "default": p.default,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "secrets": self.secrets.iter().map(|s| json!({
                "service": s.service,
                "variable": s.variable,
                "parameter": s.path,
                "type": "SecureString",
                "kms_key": s.kms_key_alias,
                "rotation_days": s.rotation_days,
                "description": s.description,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn render(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_value()).unwrap_or_default();
        s.push('\n');
        s
    }
}
