//! A CloudFormation template under construction, and the intrinsic functions.
//!
//! Templates are `serde_json::Value`s whose objects are `BTreeMap`s, so keys are
//! always written in sorted order: the same model gives the same bytes.

use serde_json::{Map, Value, json};

use crate::skips::Skip;

/// The largest template CloudFormation accepts inline (`--template-body`).
pub const INLINE_TEMPLATE_MAX: usize = 51_200;
/// The largest template CloudFormation accepts from S3 (`--template-url`).
pub const S3_TEMPLATE_MAX: usize = 1_048_576;
/// Resources per template.
pub const RESOURCES_MAX: usize = 500;

pub struct Template {
    description: String,
    metadata: Map<String, Value>,
    parameters: Map<String, Value>,
    conditions: Map<String, Value>,
    mappings: Map<String, Value>,
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
}

impl Template {
    pub fn new(description: impl Into<String>) -> Self {
        Template {
            description: description.into(),
            metadata: Map::new(),
            parameters: Map::new(),
            conditions: Map::new(),
            mappings: Map::new(),
            resources: Map::new(),
            outputs: Map::new(),
        }
    }

    /// Template-level `Metadata` (e.g. the cfn-lint checks a template opts out
    /// of, with the reason beside the call).
    pub fn metadata(&mut self, key: &str, value: Value) {
        self.metadata.insert(key.to_string(), value);
    }

    pub fn parameter(&mut self, name: &str, spec: Value) {
        self.parameters.insert(name.to_string(), spec);
    }

    pub fn condition(&mut self, name: &str, expr: Value) {
        self.conditions.insert(name.to_string(), expr);
    }

    pub fn mapping(&mut self, name: &str, map: Value) {
        self.mappings.insert(name.to_string(), map);
    }

    /// Adds a resource; returns its logical id for chaining.
    pub fn resource(&mut self, id: &str, kind: &str, properties: Value) -> Res<'_> {
        self.resources.insert(
            id.to_string(),
            json!({ "Type": kind, "Properties": properties }),
        );
        Res {
            body: self.resources.get_mut(id),
        }
    }

    pub fn output(&mut self, name: &str, value: Value, export: Option<&str>) {
        let mut o = json!({ "Value": value });
        if let (Some(e), Value::Object(m)) = (export, &mut o) {
            m.insert("Export".into(), json!({ "Name": e }));
        }
        self.outputs.insert(name.to_string(), o);
    }

    pub fn has_resource(&self, id: &str) -> bool {
        self.resources.contains_key(id)
    }

    pub fn to_value(&self) -> Value {
        let mut t = Map::new();
        t.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
        t.insert("Description".into(), json!(self.description));
        for (key, map) in [
            ("Metadata", &self.metadata),
            ("Parameters", &self.parameters),
            ("Conditions", &self.conditions),
            ("Mappings", &self.mappings),
            ("Resources", &self.resources),
            ("Outputs", &self.outputs),
        ] {
            if !map.is_empty() {
                t.insert(key.into(), Value::Object(map.clone()));
            }
        }
        Value::Object(t)
    }

    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Minified JSON (sorted keys, no whitespace) with a final newline: templates
    /// are deployed as they are written, and CloudFormation counts every byte of an
    /// inline template against its 51,200-byte limit.
    pub fn render(&self) -> String {
        let mut s = serde_json::to_string(&self.to_value()).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A resource just added, to attach `DependsOn`, `Condition` or checkov skips.
pub struct Res<'a> {
    body: Option<&'a mut Value>,
}

impl Res<'_> {
    fn set(&mut self, key: &str, v: Value) {
        if let Some(Value::Object(m)) = self.body.as_deref_mut() {
            m.insert(key.to_string(), v);
        }
    }

    pub fn depends_on(mut self, ids: &[&str]) -> Self {
        let v: Vec<Value> = ids.iter().map(|s| json!(s)).collect();
        self.set("DependsOn", Value::Array(v));
        self
    }

    pub fn condition(mut self, name: &str) -> Self {
        self.set("Condition", json!(name));
        self
    }

    pub fn retain(mut self) -> Self {
        self.set("DeletionPolicy", json!("Retain"));
        self.set("UpdateReplacePolicy", json!("Retain"));
        self
    }

    /// Skips checkov checks for this resource, each with its written reason
    /// (listed in docs/security.md).
    pub fn skip(mut self, skips: &[Skip]) -> Self {
        let list: Vec<Value> = skips
            .iter()
            .map(|s| json!({ "id": s.id, "comment": s.reason }))
            .collect();
        self.set("Metadata", json!({ "checkov": { "skip": list } }));
        self
    }
}

pub fn r(id: &str) -> Value {
    json!({ "Ref": id })
}

pub fn att(id: &str, attr: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attr] })
}

pub fn sub(s: &str) -> Value {
    json!({ "Fn::Sub": s })
}

pub fn import(name: &str) -> Value {
    json!({ "Fn::ImportValue": name })
}

pub fn join(sep: &str, parts: Vec<Value>) -> Value {
    json!({ "Fn::Join": [sep, parts] })
}

pub fn select(i: usize, list: Value) -> Value {
    json!({ "Fn::Select": [i.to_string(), list] })
}

pub fn split(sep: &str, v: Value) -> Value {
    json!({ "Fn::Split": [sep, v] })
}

pub fn if_(cond: &str, yes: Value, no: Value) -> Value {
    json!({ "Fn::If": [cond, yes, no] })
}

pub fn no_value() -> Value {
    r("AWS::NoValue")
}

/// `arn:${AWS::Partition}:<rest>` where `rest` may hold other `${...}`.
pub fn arn(rest: &str) -> Value {
    sub(&format!("arn:${{AWS::Partition}}:{rest}"))
}

/// The standard tags every taggable resource carries.
pub fn tags(project: &str, env: &str, service: Option<&str>, name: Option<&str>) -> Value {
    let mut t = vec![
        json!({ "Key": "pantstack:project", "Value": project }),
        json!({ "Key": "pantstack:environment", "Value": env }),
    ];
    if let Some(s) = service {
        t.push(json!({ "Key": "pantstack:service", "Value": s }));
    }
    if let Some(n) = name {
        t.push(json!({ "Key": "Name", "Value": n }));
    }
    Value::Array(t)
}

/// An IAM policy document.
pub fn policy(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

pub fn allow(sid: &str, actions: &[&str], resources: Vec<Value>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// Deny any request not made over TLS (bucket and queue policies).
pub fn deny_insecure_transport(resources: Vec<Value>, action: &str) -> Value {
    json!({
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resources,
        "Condition": { "Bool": { "aws:SecureTransport": "false" } }
    })
}

/// A resource-policy statement allowing another service's task role (by name, as
/// a condition on the account's principals: the role need not exist yet, so the
/// owner's and the consumer's stacks deploy in any order). Within one account the
/// role also needs the matching identity statement, which the consumer's stack
/// writes.
pub fn allow_role(
    sid: &str,
    role_name_sub: &str,
    actions: &[&str],
    resources: Vec<Value>,
) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "AWS": { "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" } },
        "Action": actions,
        "Resource": resources,
        "Condition": { "ArnEquals": { "aws:PrincipalArn": {
            "Fn::Sub": format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{role_name_sub}")
        } } }
    })
}

/// A role's trust policy for one AWS service principal.
pub fn assume_by(service: &str) -> Value {
    policy(vec![json!({
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sts:AssumeRole",
        "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } }
    })])
}
