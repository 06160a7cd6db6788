//! The HTTP shell: one listener on 127.0.0.1, requests routed to SQS or SSM by
//! `X-Amz-Target` or the query protocol's `Action`, SigV4 checked before any
//! handler runs, every error rendered in the caller's protocol.

use crate::Core;
use crate::error::ApiError;
use crate::iam;
use crate::query;
use crate::request::{self, Service};
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
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Bytes a connection on the general path must move in each `Limits::read` window
/// while it waits on I/O (a slow body or a reader that stopped is dropped).
const MIN_PROGRESS: u64 = 1024;

/// How long a stopping endpoint lets requests in progress finish.
const DRAIN: Duration = Duration::from_secs(2);

/// Binds 127.0.0.1:`port` (0: any free port) and serves `core` until shut down.
///
/// The endpoint runs on a thread of its own (`pantstack-aws`) with a current-thread
/// runtime: its event loop parses every ready request, then syncs their journal
/// records as one group before it waits again (see `journal`), with no hand-off
/// between threads on the way.
pub async fn serve(core: Arc<Core>, port: u16) -> std::io::Result<Server> {
    serve_with(core, port, Limits::default()).await
}

/// The limits of the endpoint's connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A connection with no request in progress for this long is closed, as AWS
    /// closes one after about 20 s (a long poll is a request in progress).
    pub idle: Duration,
    /// A request's head and body must arrive within this long of its first byte.
    pub read: Duration,
    /// Connections at once (each counted as two descriptors: its socket and an
    /// object file); more are answered 503 and closed at once. Also bounded by a
    /// quarter of the process's connection budget (`io::process_budget`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: Duration::from_secs(20),
            read: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// [`serve`] with other limits (tests use short timeouts and small caps).
pub async fn serve_with(core: Arc<Core>, port: u16, limits: Limits) -> std::io::Result<Server> {
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
        .spawn(move || rt.block_on(run(core, listener, stopped, limits)))?;
    Ok(Server { port, stop })
}

async fn run(
    core: Arc<Core>,
    listener: std::net::TcpListener,
    mut stopped: watch::Receiver<bool>,
    limits: Limits,
) {
    // Two descriptors a connection: the socket, and the object file an S3 request
    // may hold open while its body arrives or its answer is read.
    let budget = pantstack_rt::budget::ConnectionBudget::new(limits.max_connections, 2);
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
    let lifecycle = tokio::spawn({
        let core = core.clone();
        async move {
            // A pass every twenty-fourth of a lifecycle day (50 ms..1 h: a pass
            // walks every object under the state's lock), rechecked each second
            // so a shortened day takes effect at once.
            let mut last = tokio::time::Instant::now();
            loop {
                let every = (core.lifecycle_day() / 24)
                    .clamp(Duration::from_millis(50), Duration::from_secs(3600));
                tokio::time::sleep(every.min(Duration::from_secs(1))).await;
                if last.elapsed() >= every {
                    last = tokio::time::Instant::now();
                    crate::s3svc::lifecycle_pass(&core).await;
                }
            }
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
        let Ok((stream, _)) = conn else {
            // Out of descriptors (EMFILE) or a connection reset before accept: wait
            // a moment instead of spinning on a listener that stays readable.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(permit) = budget.try_acquire() else {
            pantstack_rt::budget::refuse_busy(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let s3 = s3.clone();
        let mut stop = stopped.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut stream = stream;
            // SQS and SSM requests take the fast path; the rest of a connection
            // goes to hyper from the first request that does not.
            let read = match crate::h1::serve(&core, &mut stream, &mut stop, &limits).await {
                crate::h1::Outcome::Closed => {
                    drop(open);
                    return;
                }
                crate::h1::Outcome::Handover(read) => read,
            };
            let io = hyper_util::rt::TokioIo::new(pantstack_rt::stream::Watchdog::new(
                pantstack_rt::stream::Prefixed::new(read, stream),
                limits.read,
                MIN_PROGRESS,
            ));
            let svc = hyper::service::service_fn(move |req| handle(core.clone(), s3.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.idle)
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
    lifecycle.abort();
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
        crate::s3svc::prepare_request(req.headers_mut());
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
        let call = crate::s3svc::COMMITTED.scope(std::cell::Cell::new(false), async move {
            let r = s3.call(req).await;
            (r, crate::s3svc::COMMITTED.with(|c| c.get()))
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
                crate::s3svc::stamp_response(r.headers_mut(), &request_id());
                if has_body && r.status().as_u16() >= 400 {
                    r.headers_mut()
                        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                }
                if let Some((origin, Some(bucket), method)) = &cors_origin {
                    let rules = cors_rules(&core, bucket);
                    if let Some(rule) = rules
                        .as_deref()
                        .and_then(|rs| crate::s3config::cors_rule(rs, origin, method, &[]))
                    {
                        for (name, value) in crate::s3config::cors_headers(rule, origin, None) {
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
/// written (`s3svc`); any other body (XML configurations, batch deletes,
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

/// S3's answer to a body whose SHA-256 is not the signed `x-amz-content-sha256`.
pub(crate) fn xamz_sha256_mismatch() -> ApiError {
    ApiError::bad(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
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
    let Some(rule) = crate::s3config::cors_rule(&rules, origin, method, &asked) else {
        return s3_error_response(
            &forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ),
            rid,
        );
    };
    let mut r = Response::new(Body::from(Bytes::new()));
    for (name, value) in crate::s3config::cors_headers(rule, origin, Some(&asked)) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    crate::s3svc::stamp_response(r.headers_mut(), &rid);
    r
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
    crate::s3svc::stamp_response(r.headers_mut(), &rid);
    r
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

/// Answers an SQS or SSM request. `body` is the refusal of a body larger than
/// `MAX_BODY` (left unread) or whose framing is malformed.
pub(crate) async fn api(core: &Core, call: &Call<'_>, body: Result<Bytes, ApiError>) -> Reply {
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
        (Service::Sqs, p) if p != "/" && !p.is_empty() => match request::queue_of_url(p) {
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
        },
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
                xml_ok(query::to_xml(call.action, &out, &rid))
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
