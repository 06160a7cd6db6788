//! The general HTTP path, on hyper: S3 (its bodies stream through `s3s`), CORS
//! preflights, and every SQS or SSM request the fast path hands over (chunked or
//! oversized bodies, `Expect`, HTTP/1.0), which it answers through `dispatch::api`.

use super::dispatch::{Body, Call, MAX_BODY, api, foreign_origin, header, is_s3, request_id};
use crate::Core;
use crate::error::{ApiError, xamz_sha256_mismatch};
use crate::query;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use pantstack_awsproto::sigv4;
use std::convert::Infallible;
use std::sync::Arc;

type StdError = Box<dyn std::error::Error + Send + Sync>;

pub(super) async fn handle(
    core: Arc<Core>,
    s3: s3s::service::S3Service,
    sink: Option<super::zerocopy::Sink>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    // S3 streams its bodies: hand it the request before anything reads the body.
    let is_s3 = {
        let h = req.headers();
        is_s3(
            |name| h.get(name).and_then(|v| v.to_str().ok()),
            req.uri().query().unwrap_or(""),
        )
    };
    if req.method() == hyper::Method::OPTIONS {
        return Ok(cors_preflight(&core, &req));
    }
    // A browser's request names its page's origin: CORS headers are added to
    // the answer when the bucket's configuration allows it.
    let cors_origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(|o| {
            let bucket = request_bucket(
                req.headers().get("host").and_then(|v| v.to_str().ok()),
                req.uri().path(),
            );
            (o.to_string(), bucket, req.method().as_str().to_string())
        });
    let refusal = {
        let h = req.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let twice = ["host", "origin", "x-amz-target", "authorization"]
            .into_iter()
            .find(|n| h.get_all(*n).iter().count() > 1)
            .map(|n| {
                ApiError::bad(
                    "InvalidRequest",
                    format!("The header {n} is given more than once."),
                )
            });
        twice
            .or_else(|| foreign_origin(get("host"), get("origin")))
            .or_else(|| {
                is_s3
                    .then(|| {
                        s3_signature_refusal(get("authorization"), req.uri().query().unwrap_or(""))
                    })
                    .flatten()
            })
    };
    if let Some(e) = refusal {
        return Ok(s3_error_response(&e, request_id()));
    }
    if is_s3 {
        if let Err(e) = core.stopped() {
            return Ok(s3_error_response(&e, request_id()));
        }
        let mut req = req;
        // An answer refusing a request with a body may come before the body was
        // read: the connection then cannot carry another request, and says so.
        let has_body = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
            || req.headers().contains_key(hyper::header::TRANSFER_ENCODING);
        crate::s3::prepare_request(req.headers_mut());
        let req = match signed_payload(req).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = s3_error_response(&e, request_id());
                if has_body {
                    r.headers_mut()
                        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                }
                return Ok(r);
            }
        };
        let call = crate::s3::COMMITTED.scope(std::cell::Cell::new(false), async move {
            let r = s3.call(req).await;
            (r, crate::s3::COMMITTED.with(|c| c.get()))
        });
        let (result, committed) = call.await;
        if !committed {
            // Nothing of its own journaled: answer only once everything it may
            // have seen is durable (nothing is shown before it is on disk).
            let barrier = core.journal.submit(Vec::new());
            if let Err(e) = barrier.wait().await {
                return Ok(s3_error_response(&crate::stopped_error(&e), request_id()));
            }
        }
        return Ok(match result {
            Ok(mut r) => {
                // Object data from its file: sent with sendfile when the
                // connection can, else the body reads the file.
                if let Some(range) = r.extensions_mut().remove::<crate::s3::FileRange>()
                    && let Some(sink) = sink
                {
                    *r.body_mut() = super::zerocopy::placeholder(sink, range);
                }
                crate::s3::stamp_response(r.headers_mut(), &request_id());
                if has_body && r.status().as_u16() >= 400 {
                    r.headers_mut()
                        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                }
                if let Some((origin, Some(bucket), method)) = &cors_origin {
                    let rules = cors_rules(&core, bucket);
                    if let Some(rule) = rules
                        .as_deref()
                        .and_then(|rs| crate::s3::config::cors_rule(rs, origin, method, &[]))
                    {
                        for (name, value) in crate::s3::config::cors_headers(rule, origin, None) {
                            if let Ok(v) = HeaderValue::from_str(&value) {
                                r.headers_mut().insert(name, v);
                            }
                        }
                    }
                }
                r
            }
            Err(e) => {
                let mut r =
                    Response::new(Body::from(format!("internal error: {}", StdError::from(e))));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        });
    }
    let (parts, body) = req.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let declared = header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    };
    let body = if declared.is_some_and(|n| n > MAX_BODY) {
        Err(too_large())
    } else {
        match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            // A chunked body whose framing is malformed, or one cut short.
            Err(e) => Err(ApiError::bad(
                "MalformedInput",
                format!("the request body could not be read: {e}"),
            )),
        }
    };
    let call = Call {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
    };
    Ok(api(&core, &call, body).await.into_response())
}

/// S3's `x-amz-content-sha256`: `UNSIGNED-PAYLOAD`, a `STREAMING-…` mode, or the
/// hex SHA-256 of the body, which the signature covers — so the body must have
/// it. A body of object data (PutObject, UploadPart) is checked as it is
/// written (`s3`); any other body (XML configurations, batch deletes,
/// multipart completions, at most 16 MiB) is read and checked here, before s3s
/// parses it. Else 400 `XAmzContentSHA256Mismatch` (or `InvalidArgument` for a
/// value that is none of these), as S3 answers.
async fn signed_payload(req: Request<Incoming>) -> Result<Request<Body>, ApiError> {
    let Some(claimed) = req
        .headers()
        .get("x-amz-content-sha256")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
    else {
        return Ok(req.map(Body::from));
    };
    let hex = claimed.len() == 64 && claimed.bytes().all(|b| b.is_ascii_hexdigit());
    if !(hex || claimed == "unsigned-payload" || claimed.starts_with("streaming-")) {
        return Err(ApiError::bad(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER), or a valid sha256 value.",
        ));
    }
    let object_data = req.method() == hyper::Method::PUT
        && !req.headers().contains_key("x-amz-copy-source")
        && req.uri().query().unwrap_or("").split('&').all(|p| {
            let k = p.split_once('=').map_or(p, |(k, _)| k);
            matches!(k, "" | "x-id" | "partNumber" | "uploadId")
        });
    if !hex || object_data {
        return Ok(req.map(Body::from));
    }
    const MAX: usize = 16 << 20;
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::bad(
                "MaxMessageLengthExceeded",
                format!("Your request was too big: at most {MAX} bytes here."),
            ));
        }
        Err(e) => {
            return Err(ApiError::bad(
                "IncompleteBody",
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    if sigv4::sha256_hex(&bytes) != claimed {
        return Err(xamz_sha256_mismatch());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The bucket a request addresses: `<bucket>.localhost`, else the path's first
/// segment.
fn request_bucket(host: Option<&str>, path: &str) -> Option<String> {
    if let Some(h) = host {
        let name = h.rsplit_once(':').map_or(h, |(n, _)| n);
        if let Some(b) = name.strip_suffix(".localhost")
            && !b.is_empty()
        {
            return Some(b.to_ascii_lowercase());
        }
    }
    let first = path.trim_start_matches('/').split('/').next()?;
    (!first.is_empty()).then(|| pantstack_awsproto::sigv4::percent_decode(first, false))
}

/// A bucket's CORS rules, if it has a CORS configuration.
fn cors_rules(core: &Core, bucket: &str) -> Option<Vec<crate::s3::CorsRule>> {
    let st = core.s3.lock().unwrap_or_else(|e| e.into_inner());
    st.buckets.get(bucket)?.config.cors.clone()
}

/// A browser's CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`), unsigned as browsers send it, answered
/// from the bucket's CORS configuration as S3 answers it: 200 with the
/// `Access-Control-*` headers of the first matching rule, else 403 `CORSResponse`.
fn cors_preflight(core: &Core, req: &Request<Incoming>) -> Response<Body> {
    let rid = request_id();
    let h = req.headers();
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    if let Some(e) = foreign_origin(get("host"), get("origin")) {
        return s3_error_response(&e, rid);
    }
    let (Some(origin), Some(method)) = (get("origin"), get("access-control-request-method")) else {
        return s3_error_response(
            &ApiError::bad(
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            ),
            rid,
        );
    };
    let forbidden = |m: &str| ApiError::new(403, "AccessForbidden", m.to_string());
    let Some(bucket) = request_bucket(get("host"), req.uri().path()) else {
        return s3_error_response(&forbidden("CORSResponse: Bucket not found"), rid);
    };
    let Some(rules) = cors_rules(core, &bucket) else {
        return s3_error_response(
            &forbidden("CORSResponse: CORS is not enabled for this bucket."),
            rid,
        );
    };
    let asked: Vec<&str> = get("access-control-request-headers")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let Some(rule) = crate::s3::config::cors_rule(&rules, origin, method, &asked) else {
        return s3_error_response(
            &forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ),
            rid,
        );
    };
    let mut r = Response::new(Body::from(Bytes::new()));
    for (name, value) in crate::s3::config::cors_headers(rule, origin, Some(&asked)) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    crate::s3::stamp_response(r.headers_mut(), &rid);
    r
}

/// What AWS refuses of an S3 request's signature before checking it: Signature
/// Version 2 (header `AWS key:sig` or presigned `AWSAccessKeyId`/`Signature`),
/// and a presigned URL valid for more than 7 days.
pub(crate) fn s3_signature_refusal(authorization: Option<&str>, query: &str) -> Option<ApiError> {
    let v2 = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.";
    if authorization.is_some_and(|a| a.starts_with("AWS ")) {
        return Some(ApiError::bad("InvalidRequest", v2));
    }
    let pairs = query::form_pairs(query);
    let has = |k: &str| pairs.iter().any(|(n, _)| n == k);
    if authorization.is_some() && (has("X-Amz-Signature") || has("X-Amz-Credential")) {
        return Some(ApiError::bad(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        ));
    }
    if has("AWSAccessKeyId") || (has("Signature") && !has("X-Amz-Signature")) {
        return Some(ApiError::bad("InvalidRequest", v2));
    }
    if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "X-Amz-Expires")
        && !v
            .parse::<i64>()
            .is_ok_and(|e| (1..=sigv4::MAX_EXPIRES_SECS).contains(&e))
    {
        return Some(ApiError::bad(
            "AuthorizationQueryParametersError",
            format!(
                "X-Amz-Expires must be less than a week (in seconds) that is {}",
                sigv4::MAX_EXPIRES_SECS
            ),
        ));
    }
    None
}

/// An error in S3's XML shape.
fn s3_error_response(e: &ApiError, rid: String) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{rid}</RequestId></Error>",
        crate::error::xml_escape(&e.code),
        crate::error::xml_escape(&e.message)
    );
    let mut r = Response::new(Body::from(Bytes::from(xml.into_bytes())));
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    crate::s3::stamp_response(r.headers_mut(), &rid);
    r
}
