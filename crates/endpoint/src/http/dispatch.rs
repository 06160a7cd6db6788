//! Answers an SQS or SSM request, whichever HTTP path parsed it: routed by
//! `X-Amz-Target` or the query protocol's `Action`, SigV4 checked before any
//! handler runs, every error rendered in the caller's protocol.

use crate::Core;
use crate::cloudwatch;
use crate::error::ApiError;
use crate::iam;
use crate::query;
use crate::request::{self, Service};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use pantstack_awsproto::sigv4;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

/// The body type of the hyper path's responses.
pub(super) type Body = s3s::Body;

/// Largest SQS/SSM request body accepted; larger ones are refused from their
/// Content-Length, unread. A full SQS batch (1 MiB of bodies and attributes)
/// must fit however it is encoded: the query protocol percent-encodes each byte
/// of non-ASCII text as three (`é` → `%C3%A9`), JSON with `ensure_ascii` (boto3)
/// writes 2-byte characters as six (`\u00e9`), and a binary attribute is base64
/// (4/3) whose `+`, `/`, `=` are percent-encoded again (at most 4x). So 4 MiB of
/// payload plus 1 MiB of room for names, framing and the other members.
pub const MAX_BODY: usize = 5 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    SqsJson(String),
    /// Action and input.
    SqsQuery(String, Value),
    Ssm(String),
}

impl Route {
    fn service(&self) -> &'static str {
        match self {
            Route::SqsJson(_) | Route::SqsQuery(..) => "sqs",
            Route::Ssm(_) => "ssm",
        }
    }
}

static REQUESTS: AtomicU64 = AtomicU64::new(1);

pub(super) fn request_id() -> String {
    let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
    let t = crate::now_ms();
    // `{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}`, without the formatting machinery.
    let mut id = String::with_capacity(40);
    let hex = pantstack_sqs::push_hex;
    hex(&mut id, (t >> 16) & 0xffff_ffff, 8);
    id.push('-');
    hex(&mut id, t & 0xffff, 4);
    id.push_str("-4");
    hex(&mut id, (n >> 12) & 0xfff, 3);
    id.push_str("-8");
    hex(&mut id, n & 0xfff, 3);
    id.push('-');
    hex(&mut id, n, 12);
    id
}

pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The service a request's signature is scoped to (`s3`, `sqs`, `ssm`), if signed.
fn scope_service<'a>(authorization: Option<&'a str>, query: &str) -> Option<Cow<'a, str>> {
    if let Some(a) = authorization
        && let Some(at) = a.find("Credential=")
    {
        let credential = &a[at + "Credential=".len()..];
        let end = credential.find([',', ' ']).unwrap_or(credential.len());
        return credential[..end].split('/').nth(3).map(Cow::Borrowed);
    }
    let credential = query::form_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Credential")
        .map(|(_, v)| v)?;
    credential
        .split('/')
        .nth(3)
        .map(|s| Cow::Owned(s.to_string()))
}

/// Whether a request is for S3: signed for it, or (unsigned, as presigned URLs
/// and anonymous reads are) with none of the marks of SQS's and SSM's protocols.
pub(crate) fn is_s3<'a>(get: impl Fn(&str) -> Option<&'a str>, query: &str) -> bool {
    match scope_service(get("authorization"), query).as_deref() {
        Some("s3") => true,
        Some(_) => false,
        None => {
            get("x-amz-target").is_none()
                && !get("content-type")
                    .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
                && !query.split('&').any(|p| p.starts_with("Action="))
        }
    }
}

/// The refusal of a request from a browser page of another site, or sent through
/// a DNS name that is not a loopback name (DNS rebinding): the endpoint answers
/// only `127.0.0.1`, `[::1]`, `localhost` and `*.localhost` (S3's virtual hosts),
/// and pages served from those. SDKs send no `Origin`.
pub(crate) fn foreign_origin(host: Option<&str>, origin: Option<&str>) -> Option<ApiError> {
    fn loopback(host: &str) -> bool {
        // host [":" port], the port all digits and at most 65535.
        let (name, port) = match host.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, rest)) => (h, rest.strip_prefix(':')),
                None => return false,
            },
            None => match host.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host, None),
            },
        };
        if port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return false;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name == "::1"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.is_loopback())
    }
    if let Some(h) = host
        && !loopback(h)
    {
        return Some(ApiError::new(
            403,
            "AccessDenied",
            format!(
                "Host `{h}` is not a loopback name: the local cloud's endpoint answers requests to 127.0.0.1, localhost and *.localhost only"
            ),
        ));
    }
    if let Some(o) = origin {
        let host = o
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        if o == "null" || !loopback(host) {
            return Some(ApiError::new(
                403,
                "AccessDenied",
                format!(
                    "a browser page of `{o}` may not call the local cloud's endpoint (only pages served from a loopback address may)"
                ),
            ));
        }
    }
    None
}

/// An SQS or SSM request, parsed by either HTTP path.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Lower-case names, as sent values.
    pub headers: Vec<(String, String)>,
}

/// The answer to an SQS or SSM request, written by either HTTP path.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub request_id: String,
    /// `x-amzn-query-error` (SQS's JSON protocol errors).
    pub query_error: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(super) fn into_response(self) -> Response<Body> {
        let mut r = Response::new(Body::from(Bytes::from(self.body)));
        *r.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert("x-amzn-requestid", v);
        }
        if self.content_type == "application/cbor" {
            h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
        }
        if let Some(v) = self
            .query_error
            .and_then(|q| HeaderValue::from_str(&q).ok())
        {
            h.insert("x-amzn-query-error", v);
        }
        r
    }
}

/// Answers an SQS or SSM request. `body` is the refusal of a body larger than
/// `MAX_BODY` (left unread) or whose framing is malformed.
pub(crate) async fn api(core: &Core, call: &Call<'_>, body: Result<Bytes, ApiError>) -> Reply {
    let rid = request_id();
    let headers = &call.headers;
    let target = header(headers, "x-amz-target").map(str::to_string);
    if let Some((protocol, op)) = cloudwatch::wire::route(call.path, target.as_deref()) {
        let reply = match metrics(core, call, body, protocol, &op).await {
            Ok(out) => (200, cloudwatch::wire::output(protocol, &out), None),
            Err(e) => {
                let (ctype, body, query) = cloudwatch::wire::error(protocol, &e);
                (e.status, (ctype, body), Some(query))
            }
        };
        let (status, (content_type, body), query_error) = reply;
        return Reply {
            status,
            content_type,
            request_id: rid,
            query_error,
            body,
        };
    }
    // The protocol decides how errors look, so find it before anything can fail.
    let json_kind = match target.as_deref() {
        Some(t) if t.starts_with("AmazonSSM.") => Some(false),
        Some(_) => Some(true),
        None => None,
    };
    let fail = |e: ApiError, rid: String| -> Reply {
        match json_kind {
            Some(sqs) => json_error(&e, sqs, rid),
            None => xml_error(&e, rid),
        }
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return fail(e, rid),
    };
    if let Some(e) = foreign_origin(header(headers, "host"), header(headers, "origin")) {
        return fail(e, rid);
    }
    // Headers that decide where a request goes or who may send it count once.
    for name in ["host", "origin", "x-amz-target", "authorization"] {
        if headers.iter().filter(|(k, _)| k == name).count() > 1 {
            return fail(
                ApiError::bad(
                    "InvalidRequest",
                    format!("The header {name} is given more than once."),
                ),
                rid,
            );
        }
    }
    if scope_service(header(headers, "authorization"), call.query).as_deref() == Some("monitoring")
    {
        return fail(
            ApiError::bad(
                "InvalidAction",
                "CloudWatch's query protocol (Action=… forms) is not answered by the local cloud: it answers PutMetricData, GetMetricData and ListMetrics in the JSON 1.0 and RPC v2 CBOR protocols that current SDKs and the AWS CLI send (upgrade the SDK)",
            )
            .with_query_code("InvalidAction"),
            rid,
        );
    }
    let route = match route(&target, headers, call.path, call.query, &body) {
        Ok(r) => r,
        Err(e) => return fail(e, rid),
    };
    let sreq = sigv4::Request {
        method: call.method,
        path: call.path,
        query: call.query,
        headers,
    };
    let principal = match authenticate(core, &sreq, &body, route.service()) {
        Ok(p) => p,
        Err(e) => return fail(e, rid),
    };
    // Parse once: the typed call is what IAM checks and what the handler gets.
    let (service, action, input) = match route {
        Route::SqsJson(a) => match request::parse_json(&body) {
            Ok(v) => (Service::Sqs, a, v),
            Err(e) => return fail(e, rid),
        },
        Route::Ssm(a) => match request::parse_json(&body) {
            Ok(v) => (Service::Ssm, a, v),
            Err(e) => return fail(e, rid),
        },
        Route::SqsQuery(a, input) => (Service::Sqs, a, input),
    };
    // SQS may address the queue by the request's path (`/<account>/<name>`), in
    // either protocol; `Call::parse` refuses a path and a QueueUrl that differ.
    let path_queue = match (service, call.path) {
        (Service::Sqs, p) if p != "/" && !p.is_empty() => {
            match pantstack_model::physical::queue_of_url(p) {
                Some(q) => Some(q.to_string()),
                None => {
                    return fail(
                        ApiError::bad(
                            "InvalidAddress",
                            format!("The address {p} is not valid for this endpoint."),
                        )
                        .with_query_code("InvalidAddress"),
                        rid,
                    );
                }
            }
        }
        _ => None,
    };
    let call = match request::Call::parse(service, &action, input, path_queue.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e, rid),
    };
    let policy = core.policy(&principal.0);
    // A queue's own policy (SetQueueAttributes, AddPermission) is evaluated
    // beside the identity policy; most queues have none.
    let queue_policy = match (&call.resource, service) {
        (request::Resource::Queue(q), Service::Sqs) => core.queue_policy(q),
        _ => None,
    };
    if policy.is_some() || queue_policy.is_some() {
        let asked = iam::call_request(&call, &core.region, crate::ACCOUNT);
        let docs: Vec<_> = asked.iter().map(|_| queue_policy.clone()).collect();
        let escape = [
            "sqs:GetQueueAttributes",
            "sqs:SetQueueAttributes",
            "sqs:RemovePermission",
        ];
        if let Err(m) =
            crate::policy_doc::authorize(&principal.0, policy.as_deref(), &docs, &asked, &escape)
        {
            let e = match service {
                Service::Ssm => ApiError::bad("AccessDeniedException", m),
                Service::Sqs => {
                    ApiError::new(403, "AccessDeniedException", m).with_query_code("AccessDenied")
                }
            };
            return fail(e, rid);
        }
    }
    let query = json_kind.is_none();
    let result = match service {
        Service::Sqs => core.sqs_call(&call, &principal.1).await.map(|out| {
            if query {
                xml_ok(query::to_xml(call.action.name(), &out, &rid))
            } else {
                json_ok(&out, "application/x-amz-json-1.0")
            }
        }),
        Service::Ssm => core
            .ssm_call(&call, &principal.0)
            .await
            .map(|out| json_ok(&out, "application/x-amz-json-1.1")),
    };
    match result {
        Ok((content_type, body)) => Reply {
            status: 200,
            content_type,
            request_id: rid,
            query_error: None,
            body,
        },
        Err(e) => fail(e, rid),
    }
}

/// A CloudWatch request: checked as an SQS/SSM one is (host, origin, headers
/// given once, SigV4 scoped to `monitoring`), then answered by `Core`.
async fn metrics(
    core: &Core,
    call: &Call<'_>,
    body: Result<Bytes, ApiError>,
    protocol: cloudwatch::Protocol,
    op: &str,
) -> Result<Value, ApiError> {
    let body = body?;
    let headers = &call.headers;
    if let Some(e) = foreign_origin(header(headers, "host"), header(headers, "origin")) {
        return Err(e);
    }
    for name in [
        "host",
        "origin",
        "x-amz-target",
        "authorization",
        "content-encoding",
    ] {
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
    let input = cloudwatch::wire::input(
        protocol,
        op,
        header(headers, "content-encoding"),
        &body,
        MAX_BODY,
    )?;
    core.cloudwatch_call(action, &input, &principal).await
}

fn route(
    target: &Option<String>,
    headers: &[(String, String)],
    path: &str,
    query_string: &str,
    body: &[u8],
) -> Result<Route, ApiError> {
    if let Some(t) = target {
        if query::form_pairs(query_string)
            .iter()
            .any(|(k, _)| k == "Action")
        {
            return Err(ApiError::bad(
                "InvalidParameterCombination",
                "The request names its action twice: X-Amz-Target and Action=.",
            ));
        }
        if let Some(a) = t.strip_prefix("AmazonSQS.") {
            return Ok(Route::SqsJson(a.to_string()));
        }
        if let Some(a) = t.strip_prefix("AmazonSSM.") {
            return Ok(Route::Ssm(a.to_string()));
        }
        return Err(ApiError::bad(
            "UnknownOperationException",
            format!("X-Amz-Target `{t}`: this local cloud serves AmazonSQS and AmazonSSM"),
        ));
    }
    let form = header(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut pairs = query::form_pairs(query_string);
    if form {
        pairs.extend(query::form_pairs(&String::from_utf8_lossy(body)));
    }
    let Some(action) = pairs
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
    else {
        return Err(ApiError::new(
            501,
            "NotImplemented",
            format!("{path}: not an SQS or SSM request (S3 is not served by this local cloud yet)"),
        ));
    };
    let input = query::to_json(&pairs)?;
    Ok(Route::SqsQuery(action, input))
}

/// Checks the signature; returns (principal, access key).
fn authenticate(
    core: &Core,
    req: &sigv4::Request<'_>,
    body: &[u8],
    service: &str,
) -> Result<(String, String), ApiError> {
    let auth = |e: sigv4::SigError| {
        let status = if matches!(e, sigv4::SigError::Malformed(_)) {
            400
        } else {
            403
        };
        ApiError::new(status, e.code(false), e.to_string())
    };
    let signed = sigv4::parse(req).map_err(auth)?;
    let (principal, secret) = core.secret_of(&signed.access_key).ok_or_else(|| {
        auth(sigv4::SigError::UnknownKey(format!(
            "{} (get credentials with `eval \"$(pantstack aws-env)\"`)",
            signed.access_key
        )))
    })?;
    if signed.service != service {
        return Err(ApiError::new(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to correct service: '{service}' (the request is signed for '{}')",
                signed.service
            ),
        ));
    }
    if signed.region != core.region {
        return Err(ApiError::new(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region: this local cloud is '{}', the request is signed for '{}' (set AWS_REGION={})",
                core.region, signed.region, core.region
            ),
        ));
    }
    let now = (crate::now_ms() / 1000) as i64;
    let key = core.signing_key(&signed, secret);
    sigv4::verify_with_key(req, &signed, &key, &sigv4::sha256_hex(body), now).map_err(auth)?;
    Ok((principal.to_string(), signed.access_key))
}

fn json_ok(out: &Value, ctype: &'static str) -> (&'static str, Vec<u8>) {
    let mut body = Vec::with_capacity(256);
    (
        ctype,
        match serde_json::to_writer(&mut body, out) {
            Ok(()) => body,
            Err(_) => Vec::new(),
        },
    )
}

fn xml_ok(xml: String) -> (&'static str, Vec<u8>) {
    ("text/xml", xml.into_bytes())
}

fn json_error(e: &ApiError, sqs: bool, rid: String) -> Reply {
    let ty = if sqs {
        format!("com.amazonaws.sqs#{}", e.code)
    } else {
        e.code.clone()
    };
    Reply {
        status: e.status,
        content_type: if sqs {
            "application/x-amz-json-1.0"
        } else {
            "application/x-amz-json-1.1"
        },
        request_id: rid,
        query_error: sqs.then(|| format!("{};{}", e.query(), e.fault())),
        body: json!({ "__type": ty, "message": e.message })
            .to_string()
            .into_bytes(),
    }
}

fn xml_error(e: &ApiError, rid: String) -> Reply {
    Reply {
        status: e.status,
        content_type: "text/xml",
        body: query::error_xml(e, &rid).into_bytes(),
        request_id: rid,
        query_error: None,
    }
}
