//! CloudWatch custom metrics: PutMetricData, GetMetricData and ListMetrics, in
//! the protocols current SDKs speak (Smithy RPC v2 CBOR, AWS JSON 1.0; routed by
//! `wire`), so a service's business metrics can be written and read
//! locally as on AWS.
//!
//! A put is authorized as AWS does: `cloudwatch:PutMetricData` scoped by the
//! condition key `cloudwatch:namespace` (the action has no resource). The
//! endpoint's policies carry that condition's value as the resource
//! [`namespace_resource`] of the action, so a unit may put only into the
//! namespaces its task role names. Reads need `cloudwatch:GetMetricData` and
//! `cloudwatch:ListMetrics` on `*`.
//!
//! Datapoints are state like queues and parameters: a put is an [`Op`] applied
//! under the lock and answered once journaled; replay and the compaction image
//! rebuild them. Retention is bounded (see `state`). Modules: `wire` (protocols), `cbor`
//! (its format), `state` (metrics, datapoints, retention, ops), `handlers` (input
//! checks, statistics, output).

pub mod cbor;
mod handlers;
mod state;
pub mod wire;

pub use handlers::{MAX_DATUMS, put_namespace};
pub use state::{
    CONTAINER_INSIGHTS, Key, MAX_METRICS, MAX_WEIGHT, Metrics, Op, Point, RETENTION_MS,
    is_builtin_namespace,
};

use crate::error::ApiError;
use serde_json::Value;

/// The RPC v2 CBOR path prefix (the operation follows).
pub const CBOR_PATH: &str = "/service/GraniteServiceVersion20100801/operation/";
/// The JSON 1.0 `X-Amz-Target` prefix.
pub const JSON_TARGET: &str = "GraniteServiceVersion20100801.";

/// The wire protocol of a CloudWatch request (and of its answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Cbor,
    Json,
}

/// The CloudWatch actions the endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    PutMetricData,
    GetMetricData,
    ListMetrics,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "PutMetricData" => Some(Action::PutMetricData),
            "GetMetricData" => Some(Action::GetMetricData),
            "ListMetrics" => Some(Action::ListMetrics),
            _ => None,
        }
    }

    /// The IAM action.
    pub fn iam(self) -> &'static str {
        match self {
            Action::PutMetricData => "cloudwatch:PutMetricData",
            Action::GetMetricData => "cloudwatch:GetMetricData",
            Action::ListMetrics => "cloudwatch:ListMetrics",
        }
    }
}

/// The resource under which the endpoint's policies carry a
/// `StringEquals cloudwatch:namespace` condition's value.
pub fn namespace_resource(namespace: &str) -> String {
    format!("cloudwatch:namespace/{namespace}")
}

/// What IAM is asked for a call: (action, resource).
pub fn request(action: Action, input: &Value) -> Result<(String, String), ApiError> {
    Ok(match action {
        Action::PutMetricData => (
            action.iam().to_string(),
            namespace_resource(&put_namespace(input)?),
        ),
        _ => (action.iam().to_string(), "*".to_string()),
    })
}

pub(crate) use handlers::{get, list, put};
