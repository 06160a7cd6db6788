//! The HTTP shell: one listener on 127.0.0.1, requests routed to SQS or SSM by
//! `X-Amz-Target` or the query protocol's `Action`, SigV4 checked before any
//! handler runs, every error rendered in the caller's protocol.

use crate::Core;
use crate::error::ApiError;
use crate::iam;
use crate::query;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use pantstack_awsproto::sigv4;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::convert::Infallible;

type StdError = Box<dyn std::error::Error + Send + Sync>;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest request body accepted (SQS's 256 KiB batches and SSM values fit many
/// times over); larger ones are refused from their Content-Length, unread.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    SqsJson(String),
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

/// A running endpoint.
pub struct Server {
    pub port: u16,
    stop: watch::Sender<bool>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting; connections in progress finish their request.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

static REQUESTS: AtomicU64 = AtomicU64::new(1);

fn request_id() -> String {
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

/// How long a stopping endpoint lets requests in progress finish.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Binds 127.0.0.1:`port` (0: any free port) and serves `core` until shut down.
///
/// The endpoint runs on a thread of its own (`pantstack-aws`) with a current-thread
/// runtime: its event loop parses every ready request, then syncs their journal
/// records as one group before it waits again (see `journal`), with no hand-off
/// between threads on the way.
pub async fn serve(core: Arc<Core>, port: u16) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    core.set_base_url(format!("http://127.0.0.1:{port}"));
    let (stop, stopped) = watch::channel(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pantstack-aws".into())
        .spawn(move || rt.block_on(run(core, listener, stopped)))?;
    Ok(Server { port, stop })
}

async fn run(core: Arc<Core>, listener: std::net::TcpListener, mut stopped: watch::Receiver<bool>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let flusher = tokio::spawn({
        let core = core.clone();
        async move {
            let journal = core.journal.clone();
            journal.run_flusher_then(|| core.compact_if_due()).await
        }
    });
    let s3 = crate::s3svc::service(core.clone());
    // Every connection holds a sender; when the last is gone, all have finished.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let Ok((stream, _)) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let s3 = s3.clone();
        let mut stop = stopped.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            // SQS and SSM requests take the fast path; the rest of a connection
            // goes to hyper from the first request that does not.
            let read = match crate::h1::serve(&core, &mut stream, &mut stop).await {
                crate::h1::Outcome::Closed => {
                    drop(open);
                    return;
                }
                crate::h1::Outcome::Handover(read) => read,
            };
            let io = hyper_util::rt::TokioIo::new(crate::io::Prefixed::new(read, stream));
            let svc = hyper::service::service_fn(move |req| handle(core.clone(), s3.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    let _ = tokio::time::timeout(DRAIN, all_closed.recv()).await;
    flusher.abort();
    core.journal.flush();
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

type Body = s3s::Body;

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

async fn handle(
    core: Arc<Core>,
    s3: s3s::service::S3Service,
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
    if is_s3 {
        return Ok(match s3.call(req.map(Body::from)).await {
            Ok(r) => r,
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
    let body = if declared.is_some_and(|n| n > MAX_BODY) {
        None
    } else {
        Limited::new(body, MAX_BODY)
            .collect()
            .await
            .ok()
            .map(|b| b.to_bytes())
    };
    let call = Call {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
    };
    Ok(api(&core, &call, body).await.into_response())
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
    fn into_response(self) -> Response<Body> {
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
        if let Some(v) = self
            .query_error
            .and_then(|q| HeaderValue::from_str(&q).ok())
        {
            h.insert("x-amzn-query-error", v);
        }
        r
    }
}

/// Answers an SQS or SSM request. `body` is None when it was larger than
/// `MAX_BODY` (and left unread).
pub(crate) async fn api(core: &Core, call: &Call<'_>, body: Option<Bytes>) -> Reply {
    let rid = request_id();
    let headers = &call.headers;
    let target = header(headers, "x-amz-target").map(str::to_string);
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
    let Some(body) = body else {
        return fail(
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body is larger than {MAX_BODY} bytes"),
            ),
            rid,
        );
    };
    let route = match route(&target, headers, call.path, call.query, &body, core) {
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
    let parsed = match &route {
        Route::SqsQuery(..) => Value::Null,
        Route::SqsJson(_) | Route::Ssm(_) => match parse_json(&body) {
            Ok(v) => v,
            Err(e) => return fail(e, rid),
        },
    };
    let (action, input) = match &route {
        Route::SqsJson(a) | Route::Ssm(a) => (a.as_str(), &parsed),
        Route::SqsQuery(a, input) => (a.as_str(), input),
    };
    if let Some(policy) = core.policy(&principal.0) {
        let (iam_action, resources) = match &route {
            Route::Ssm(_) => iam::ssm_request(action, input, &core.region, crate::ACCOUNT),
            _ => iam::sqs_request(action, input, &core.region, crate::ACCOUNT),
        };
        let asked = resources.iter().map(|r| (iam_action.as_str(), r.as_str()));
        if let Err(m) = policy.authorize(&principal.0, asked) {
            let e = match &route {
                Route::Ssm(_) => ApiError::bad("AccessDeniedException", m),
                _ => ApiError::new(403, "AccessDeniedException", m).with_query_code("AccessDenied"),
            };
            return fail(e, rid);
        }
    }
    let result = match &route {
        Route::SqsJson(_) => core
            .sqs(action, input, &principal.1)
            .await
            .map(|out| json_ok(&out, "application/x-amz-json-1.0")),
        Route::SqsQuery(..) => core
            .sqs(action, input, &principal.1)
            .await
            .map(|out| xml_ok(query::to_xml(action, &out, &rid))),
        Route::Ssm(_) => core
            .ssm(action, input, &principal.0)
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

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::bad(
            "SerializationException",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad(
            "SerializationException",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

fn route(
    target: &Option<String>,
    headers: &[(String, String)],
    path: &str,
    query_string: &str,
    body: &[u8],
    core: &Core,
) -> Result<Route, ApiError> {
    if let Some(t) = target {
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
    let mut input = query::to_json(&pairs)?;
    // The query protocol may address the queue by the request path.
    if input.get("QueueUrl").is_none() && path.matches('/').count() == 2 && path.len() > 1 {
        input["QueueUrl"] = json!(format!("{}{path}", core.base_url()));
    }
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
