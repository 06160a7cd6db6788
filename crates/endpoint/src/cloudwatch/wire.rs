//! The wire side of CloudWatch: which requests are CloudWatch's and in which
//! protocol — Smithy RPC v2 CBOR (`POST
//! /service/GraniteServiceVersion20100801/operation/<Op>`) or AWS JSON 1.0
//! (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`, what boto3 1.44 and the
//! AWS CLI send) — their bodies decoded, answers and errors encoded. Errors carry
//! CloudWatch's error shapes (`__type`) and its query-compatible codes
//! (`x-amzn-query-error`, which the SDKs report as the error code). A body sent
//! with `Content-Encoding: gzip` (the SDKs compress PutMetricData bodies over
//! 10 KiB) is inflated, to at most the given bound, after the signature over it
//! was checked (by `http::dispatch`, which also authenticates and calls
//! `Core::cloudwatch_call`).

use super::{Protocol, cbor};
use crate::error::ApiError;
use serde_json::{Value, json};

/// The request's CloudWatch protocol and operation, if it is CloudWatch's.
pub fn route(path: &str, target: Option<&str>) -> Option<(Protocol, String)> {
    if let Some(op) = path.strip_prefix(super::CBOR_PATH) {
        return Some((Protocol::Cbor, op.to_string()));
    }
    target
        .and_then(|t| t.strip_prefix(super::JSON_TARGET))
        .map(|op| (Protocol::Json, op.to_string()))
}

/// The most bytes a PutMetricData request may hold (after gzip), as on AWS.
pub const PUT_MAX_BYTES: usize = 1024 * 1024;

fn too_large(op: &str, max: usize) -> ApiError {
    ApiError::bad(
        "InvalidParameterValue",
        format!("the {op} request is over {max} bytes (AWS's limit for one request): split its MetricData"),
    )
    .with_query_code("InvalidParameterValue")
}

/// The request's input: `body` inflated per `encoding`, then decoded.
pub fn input(
    protocol: Protocol,
    op: &str,
    encoding: Option<&str>,
    body: &[u8],
    max: usize,
) -> Result<Value, ApiError> {
    // AWS: "Each PutMetricData request is limited to 1 MB": it also bounds the
    // journal record a put becomes.
    let max = if op == "PutMetricData" {
        max.min(PUT_MAX_BYTES)
    } else {
        max
    };
    if body.len() > max {
        return Err(too_large(op, max));
    }
    let inflated;
    let body = match encoding {
        None | Some("identity") => body,
        Some("gzip") => {
            inflated = gunzip(body, max).map_err(|e| {
                if e == INFLATES_PAST_MAX {
                    return too_large(op, max);
                }
                ApiError::bad(
                    "SerializationException",
                    format!("the {op} request's gzip body does not decompress: {e}"),
                )
            })?;
            &inflated[..]
        }
        Some(other) => {
            return Err(ApiError::bad(
                "SerializationException",
                format!("Content-Encoding `{other}` is not supported (gzip is)"),
            ));
        }
    };
    match protocol {
        Protocol::Cbor => cbor::decode(body),
        Protocol::Json if body.is_empty() => Ok(json!({})),
        Protocol::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
    }
    .map_err(|e| {
        ApiError::bad(
            "SerializationException",
            format!("the {op} request's body does not parse: {e}"),
        )
    })
}

/// An answer's content type and body.
pub fn output(protocol: Protocol, out: &Value) -> (&'static str, Vec<u8>) {
    match protocol {
        Protocol::Cbor => ("application/cbor", cbor::encode(out)),
        Protocol::Json => (
            "application/x-amz-json-1.0",
            serde_json::to_vec(out).unwrap_or_default(),
        ),
    }
}

/// An error's content type, body and `x-amzn-query-error`.
pub fn error(protocol: Protocol, e: &ApiError) -> (&'static str, Vec<u8>, String) {
    let err = json!({
        "__type": format!("com.amazonaws.cloudwatch#{}", e.code),
        "message": e.message,
    });
    let (ctype, body) = output(protocol, &err);
    (ctype, body, format!("{};{}", e.query(), e.fault()))
}

/// [`gunzip`]'s error when the content is over its bound.
const INFLATES_PAST_MAX: &str = "inflates past the bound";

/// A gzip member's content (RFC 1952), at most `max` bytes.
fn gunzip(b: &[u8], max: usize) -> Result<Vec<u8>, String> {
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
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(&b[at..b.len() - 8], max)
        .map_err(|e| {
            if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput {
                INFLATES_PAST_MAX.to_string()
            } else {
                format!("{e}")
            }
        })?;
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
