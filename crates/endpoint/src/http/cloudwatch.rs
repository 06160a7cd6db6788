//! Answers a CloudWatch request in the protocol it came in: Smithy RPC v2 CBOR
//! (`POST /service/GraniteServiceVersion20100801/operation/<Op>`, what boto3 and
//! the AWS CLI send) or AWS JSON 1.0 (`X-Amz-Target:
//! GraniteServiceVersion20100801.<Op>`). The signature (scoped to `monitoring`)
//! is checked before anything else, then IAM, then the handler. Errors carry
//! CloudWatch's error shapes (`__type`) and its query-compatible codes
//! (`x-amzn-query-error`, which the SDKs report as the error code). A body sent
//! with `Content-Encoding: gzip` (the SDKs compress PutMetricData bodies over
//! 10 KiB) is inflated after the signature is checked, to at most `MAX_BODY`.

use super::dispatch::{Call, Reply, authenticate, foreign_origin, header};
use crate::Core;
use crate::cloudwatch::{self, Protocol, cbor};
use crate::error::ApiError;
use bytes::Bytes;
use pantstack_awsproto::sigv4;
use serde_json::{Value, json};

/// The request's CloudWatch protocol and operation, if it is one.
pub(super) fn route(
    path: &str,
    target: Option<&str>,
    headers: &[(String, String)],
) -> Option<(Protocol, String)> {
    if let Some(op) = path.strip_prefix(cloudwatch::CBOR_PATH) {
        let _ = headers;
        return Some((Protocol::Cbor, op.to_string()));
    }
    target
        .and_then(|t| t.strip_prefix(cloudwatch::JSON_TARGET))
        .map(|op| (Protocol::Json, op.to_string()))
}

pub(super) async fn answer(
    core: &Core,
    call: &Call<'_>,
    body: Result<Bytes, ApiError>,
    rid: String,
    protocol: Protocol,
    op: &str,
) -> Reply {
    match run(core, call, body, protocol, op).await {
        Ok(out) => {
            let (content_type, body) = match protocol {
                Protocol::Cbor => ("application/cbor", cbor::encode(&out)),
                Protocol::Json => (
                    "application/x-amz-json-1.0",
                    serde_json::to_vec(&out).unwrap_or_default(),
                ),
            };
            Reply {
                status: 200,
                content_type,
                request_id: rid,
                query_error: None,
                body,
            }
        }
        Err(e) => {
            let err = json!({
                "__type": format!("com.amazonaws.cloudwatch#{}", e.code),
                "message": e.message,
            });
            let (content_type, body) = match protocol {
                Protocol::Cbor => ("application/cbor", cbor::encode(&err)),
                Protocol::Json => ("application/x-amz-json-1.0", err.to_string().into_bytes()),
            };
            Reply {
                status: e.status,
                content_type,
                request_id: rid,
                query_error: Some(format!("{};{}", e.query(), e.fault())),
                body,
            }
        }
    }
}

async fn run(
    core: &Core,
    call: &Call<'_>,
    body: Result<Bytes, ApiError>,
    protocol: Protocol,
    op: &str,
) -> Result<Value, ApiError> {
    let body = body?;
    let headers = &call.headers;
    if let Some(e) = foreign_origin(header(headers, "host"), header(headers, "origin")) {
        return Err(e);
    }
    for name in ["host", "origin", "x-amz-target", "authorization"] {
        if headers.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(ApiError::bad(
                "InvalidRequest",
                format!("The header {name} is given more than once."),
            ));
        }
    }
    let sreq = sigv4::Request {
        method: call.method,
        path: call.path,
        query: call.query,
        headers,
    };
    let (principal, _) = authenticate(core, &sreq, &body, "monitoring")?;
    let action = cloudwatch::Action::parse(op).ok_or_else(|| {
        ApiError::bad(
            "UnknownOperationException",
            format!(
                "CloudWatch operation `{op}`: this local cloud answers PutMetricData, GetMetricData and ListMetrics"
            ),
        )
    })?;
    let body = match header(headers, "content-encoding") {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => gunzip(&body).map_err(|e| {
            ApiError::bad(
                "SerializationException",
                format!("the {op} request's gzip body does not decompress: {e}"),
            )
        })?,
        Some(other) => {
            return Err(ApiError::bad(
                "SerializationException",
                format!("Content-Encoding `{other}` is not supported (gzip is)"),
            ));
        }
    };
    let input = match protocol {
        Protocol::Cbor => cbor::decode(&body),
        Protocol::Json if body.is_empty() => Ok(json!({})),
        Protocol::Json => serde_json::from_slice(&body).map_err(|e| e.to_string()),
    }
    .map_err(|e| {
        ApiError::bad(
            "SerializationException",
            format!("the {op} request's body does not parse: {e}"),
        )
    })?;
    core.cloudwatch_call(action, &input, &principal).await
}

/// A gzip member's content (RFC 1952), at most `MAX_BODY` bytes.
fn gunzip(b: &[u8]) -> Result<Vec<u8>, String> {
    if b.len() < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
        return Err("not a gzip member".into());
    }
    let flags = b[3];
    let mut at = 10;
    let past = |at: usize| -> Result<usize, String> {
        if at > b.len() {
            Err("the gzip header is cut short".into())
        } else {
            Ok(at)
        }
    };
    if flags & 4 != 0 {
        let n = usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
        at = past(at + 2 + n)?;
    }
    for bit in [8, 16] {
        if flags & bit != 0 {
            let end = b[at..]
                .iter()
                .position(|&c| c == 0)
                .ok_or("the gzip header is cut short")?;
            at = past(at + end + 1)?;
        }
    }
    if flags & 2 != 0 {
        at = past(at + 2)?;
    }
    if b.len() < at + 8 {
        return Err("the gzip member is cut short".into());
    }
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(
        &b[at..b.len() - 8],
        super::dispatch::MAX_BODY,
    )
    .map_err(|e| format!("{e} (at most {} bytes inflated)", super::dispatch::MAX_BODY))?;
    let size = u32::from_le_bytes([
        b[b.len() - 4],
        b[b.len() - 3],
        b[b.len() - 2],
        b[b.len() - 1],
    ]);
    if size as usize != out.len() % (1 << 32) {
        return Err("its length does not match its trailer".into());
    }
    Ok(out)
}
