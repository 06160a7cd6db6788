//! The `api` service, written for AWS: an HTTP API that accepts jobs and a
//! worker (same codebase, `api work`) that processes them, talking to SQS and S3
//! through the AWS SDK for Rust. The same binary runs on ECS Fargate and in
//! Pantstack's local cloud, which gives its tasks `AWS_ENDPOINT_URL`, credentials,
//! the queue's URL, the bucket's name and the `API_TOKEN` secret.
//!
//! ```text
//! api serve                 PORT (8080); JOBS_QUEUE_URL, RESULTS_BUCKET, API_TOKEN
//!   GET  /healthz           200 ok
//!   POST /jobs              body = job input (text), `Authorization: Bearer $API_TOKEN`
//!                           → 202 {"id":..,"status":"queued"}; the job is sent to the queue
//!   GET  /jobs/{id}         {"id":..,"status":"queued|done|failed","result":..,"attempts":..}
//!        ?wait=SECS         long poll: answer once the job is done or failed (≤ 20 s)
//! api work                  PORT (8081) for /healthz; consumes JOBS_QUEUE_URL, writes
//!                           jobs/{id}.json into RESULTS_BUCKET. A failed job is retried
//!                           at once; after the queue's maxReceiveCount it is in the DLQ.
//! ```
//!
//! The HTTP side is the standard library (one thread per connection); the SDK calls
//! run on a small tokio runtime. Statically linked, it runs in a `FROM scratch` image.

#![forbid(unsafe_code)]

use aws_sdk_s3::primitives::ByteStream;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_BODY: usize = 64 * 1024;
const MAX_HEADER_LINES: usize = 100;

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    body: String,
    content_type: &'static str,
}

fn json(status: u16, body: String) -> Response {
    Response {
        status,
        body,
        content_type: "application/json",
    }
}

fn text(status: u16, body: &str) -> Response {
    Response {
        status,
        body: format!("{body}\n"),
        content_type: "text/plain; charset=utf-8",
    }
}

fn read_request(stream: &mut BufReader<TcpStream>) -> Result<Option<Request>, Response> {
    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) | Err(_) => return Ok(None),
        Ok(_) => {}
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(text(400, "malformed request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut content_length = 0usize;
    let mut authorization = None;
    for _ in 0..MAX_HEADER_LINES {
        let mut h = String::new();
        if stream
            .read_line(&mut h)
            .map_err(|_| text(400, "bad header"))?
            == 0
        {
            return Err(text(400, "connection closed in headers"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            let mut body = vec![0; content_length];
            stream
                .read_exact(&mut body)
                .map_err(|_| text(400, "body shorter than Content-Length"))?;
            return Ok(Some(Request {
                method,
                path,
                authorization,
                body,
            }));
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value
                    .trim()
                    .parse()
                    .map_err(|_| text(400, "invalid Content-Length"))?;
                if content_length > MAX_BODY {
                    return Err(text(413, "body larger than 64 KiB"));
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(text(411, "send a Content-Length"));
            } else if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    Err(text(431, "too many header lines"))
}

fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(r.body.as_bytes())?;
    stream.flush()
}

fn serve_connection(stream: TcpStream, handler: &dyn Fn(Request) -> Response) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let Ok(mut write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let response = match read_request(&mut reader) {
        Ok(Some(req)) => handler(req),
        Ok(None) => return,
        Err(resp) => resp,
    };
    let _ = write_response(&mut write_half, &response);
}

/// The value of `name` in the query string of `path`.
fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    path.split_once('?')?
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The AWS side: clients, the queue and the bucket.
struct Cloud {
    rt: tokio::runtime::Runtime,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    queue_url: String,
    bucket: String,
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set (the local cloud and the ECS task definition set it)")
    })
}

impl Cloud {
    fn from_env() -> Result<Cloud, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        // The standard chain: AWS_ENDPOINT_URL, AWS_REGION, credentials from the
        // environment (local cloud) or the task role (ECS).
        let conf = rt.block_on(aws_config::load_defaults(
            aws_config::BehaviorVersion::latest(),
        ));
        Ok(Cloud {
            sqs: aws_sdk_sqs::Client::new(&conf),
            s3: aws_sdk_s3::Client::new(&conf),
            queue_url: env("JOBS_QUEUE_URL")?,
            bucket: env("RESULTS_BUCKET")?,
            rt,
        })
    }

    fn key(id: &str) -> String {
        format!("jobs/{id}.json")
    }

    /// The job's record, or None if there is no such job.
    fn read(&self, id: &str) -> Result<Option<serde_json::Value>, String> {
        self.rt.block_on(async {
            match self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(Self::key(id))
                .send()
                .await
            {
                Ok(o) => {
                    let bytes = o
                        .body
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .into_bytes();
                    serde_json::from_slice(&bytes)
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(format!(
                    "S3 GetObject: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )),
            }
        })
    }

    fn write(&self, id: &str, record: &serde_json::Value) -> Result<(), String> {
        self.rt.block_on(async {
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(Self::key(id))
                .content_type("application/json")
                .body(ByteStream::from(record.to_string().into_bytes()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "S3 PutObject: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                })
        })
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Held by the worker while it handles a batch of messages: SIGTERM waits for it,
/// so a job is finished (written and deleted) before the process exits.
static WORKING: Mutex<()> = Mutex::new(());

/// Exits on SIGTERM, as ECS (and the local cloud) ask a task to stop: the load
/// balancer has already drained the task's connections, and the worker finishes
/// the batch in hand. In a FROM scratch image this process is PID 1, which the
/// kernel does not stop on SIGTERM without a handler: without this, every stop
/// would wait out the stop timeout and end in SIGKILL.
fn exit_on_sigterm(service: String) {
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return eprintln!("{service}: no SIGTERM handler: {e}"),
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(e) => {
                    eprintln!("{service}: no SIGTERM handler: {e}");
                    std::future::pending::<()>().await;
                }
            }
        });
        let _held = WORKING.lock();
        eprintln!("{service}: SIGTERM: stopping");
        std::process::exit(0);
    });
}

fn new_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!(
        "{t:x}{:04x}{:04x}",
        std::process::id() & 0xffff,
        NEXT_ID.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

fn unavailable(e: String) -> Response {
    eprintln!("api: {e}");
    json(503, serde_json::json!({ "error": e }).to_string())
}

fn api(cloud: &Cloud, token: Option<&str>, req: Request) -> Response {
    let segments: Vec<&str> = req
        .path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["healthz"]) => text(200, "ok"),
        // Drills for the local cloud's metrics, target tracking and alarms: CPU
        // work for `ms` milliseconds (at most 2000), and a forced 500.
        ("GET", ["busy"]) => {
            let ms = query_param(&req.path, "ms")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(100)
                .min(2000);
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                for i in 0..10_000u64 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                }
            }
            text(200, &format!("busy {ms} ms ({})", x % 10))
        }
        ("GET", ["error"]) => text(500, "a forced error (GET /error)"),
        ("POST", ["jobs"]) => {
            if let Some(t) = token
                && req.authorization.as_deref() != Some(&format!("Bearer {t}"))
            {
                return text(401, "send `Authorization: Bearer <API_TOKEN>`");
            }
            let Ok(input) = String::from_utf8(req.body) else {
                return text(400, "job input must be UTF-8 text");
            };
            let id = new_id();
            let record =
                serde_json::json!({ "id": id, "status": "queued", "input": input, "attempts": 0 });
            if let Err(e) = cloud.write(&id, &record) {
                return unavailable(e);
            }
            let message = serde_json::json!({ "id": id, "input": input }).to_string();
            let sent = cloud.rt.block_on(
                cloud
                    .sqs
                    .send_message()
                    .queue_url(&cloud.queue_url)
                    .message_body(message)
                    .send(),
            );
            if let Err(e) = sent {
                return unavailable(format!(
                    "SQS SendMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ));
            }
            json(
                202,
                serde_json::json!({ "id": id, "status": "queued" }).to_string(),
            )
        }
        ("GET", ["jobs", id]) => {
            let wait = query_param(&req.path, "wait")
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
                .min(20);
            let deadline = Instant::now() + Duration::from_secs(wait);
            loop {
                match cloud.read(id) {
                    Ok(None) => return text(404, "no such job"),
                    Ok(Some(r)) => {
                        let finished = r["status"] != "queued";
                        if finished || Instant::now() >= deadline {
                            return json(200, r.to_string());
                        }
                    }
                    Err(e) => return unavailable(e),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        (_, ["healthz" | "jobs"]) | (_, ["jobs", _]) => text(405, "method not allowed"),
        _ => text(404, "not found"),
    }
}

/// The work itself: counts the words and shouts the input back. An input that
/// contains `poison` fails, so retries and the dead-letter queue can be exercised.
fn process(input: &str) -> Result<String, String> {
    if input.contains("poison") {
        return Err("input is poisoned".into());
    }
    let words = input.split_whitespace().count();
    Ok(format!("{words} words: {}", input.to_uppercase()))
}

fn work(cloud: &Cloud) -> Result<(), String> {
    eprintln!("worker: consuming {}", cloud.queue_url);
    loop {
        let got = cloud.rt.block_on(
            cloud
                .sqs
                .receive_message()
                .queue_url(&cloud.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(5)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send(),
        );
        let messages = match got {
            Ok(r) => r.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!(
                    "worker: SQS ReceiveMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                );
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let _working = WORKING.lock();
        for m in messages {
            let (Some(body), Some(receipt)) = (m.body(), m.receipt_handle()) else {
                continue;
            };
            let attempts: u64 = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let job: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let (Some(id), Some(input)) = (job["id"].as_str(), job["input"].as_str()) else {
                eprintln!("worker: not a job, left for the dead-letter queue: {body}");
                continue;
            };
            match process(input) {
                Ok(result) => {
                    let record = serde_json::json!({ "id": id, "status": "done", "input": input, "result": result, "attempts": attempts });
                    if let Err(e) = cloud.write(id, &record) {
                        // Not deleted: it comes back after its visibility timeout.
                        eprintln!("worker: job {id}: {e}");
                        continue;
                    }
                    let deleted = cloud.rt.block_on(
                        cloud
                            .sqs
                            .delete_message()
                            .queue_url(&cloud.queue_url)
                            .receipt_handle(receipt)
                            .send(),
                    );
                    if let Err(e) = deleted {
                        eprintln!(
                            "worker: job {id}: DeleteMessage: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        );
                    }
                    eprintln!("worker: job {id} done");
                }
                Err(why) => {
                    eprintln!("worker: job {id} failed (attempt {attempts}): {why}");
                    let record = serde_json::json!({ "id": id, "status": "failed", "input": input, "error": why, "attempts": attempts });
                    if let Err(e) = cloud.write(id, &record) {
                        eprintln!("worker: job {id}: {e}");
                    }
                    // Retry at once; the queue's redrive policy moves it to the DLQ
                    // after maxReceiveCount receives.
                    let _ = cloud.rt.block_on(
                        cloud
                            .sqs
                            .change_message_visibility()
                            .queue_url(&cloud.queue_url)
                            .receipt_handle(receipt)
                            .visibility_timeout(0)
                            .send(),
                    );
                }
            }
        }
    }
}

fn listen(default_port: u16) -> Result<TcpListener, String> {
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| format!("PORT `{p}` is not a port number"))?,
        Err(_) => default_port,
    };
    let bind = std::env::var("BIND_ADDRESS").unwrap_or_else(|_| "0.0.0.0".into());
    TcpListener::bind((bind.as_str(), port))
        .map_err(|e| format!("cannot listen on {bind}:{port}: {e}"))
}

fn serve_forever(listener: TcpListener, handler: Arc<dyn Fn(Request) -> Response + Send + Sync>) {
    for stream in listener.incoming().flatten() {
        let h = handler.clone();
        std::thread::spawn(move || serve_connection(stream, h.as_ref()));
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let service = std::env::var("SERVICE_NAME").unwrap_or_else(|_| "api".into());
    if mode == "serve" || mode == "work" {
        exit_on_sigterm(service.clone());
    }
    let result = match mode.as_str() {
        "serve" => Cloud::from_env().and_then(|cloud| {
            let listener = listen(8080)?;
            if let Ok(addr) = listener.local_addr() {
                eprintln!("{service}: listening on {addr}");
            }
            let token = std::env::var("API_TOKEN").ok().filter(|t| !t.is_empty());
            let cloud = Arc::new(cloud);
            serve_forever(
                listener,
                Arc::new(move |req| api(&cloud, token.as_deref(), req)),
            );
            Ok(())
        }),
        "work" => Cloud::from_env().and_then(|cloud| {
            let listener = listen(8081)?;
            if let Ok(addr) = listener.local_addr() {
                eprintln!("{service} worker: health on {addr}");
            }
            std::thread::spawn(move || {
                serve_forever(
                    listener,
                    Arc::new(
                        |req: Request| match (req.method.as_str(), req.path.as_str()) {
                            ("GET", "/healthz") => text(200, "ok"),
                            _ => text(404, "not found"),
                        },
                    ),
                )
            });
            work(&cloud)
        }),
        "--help" | "-h" | "help" => {
            println!(
                "usage: api [serve|work]\n  serve  HTTP API on $PORT (8080)\n  work   worker; health on $PORT (8081)\nBoth use JOBS_QUEUE_URL and RESULTS_BUCKET through the AWS SDK (AWS_ENDPOINT_URL in the local cloud)."
            );
            Ok(())
        }
        other => Err(format!("unknown mode `{other}`; use `serve` or `work`")),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing() {
        assert_eq!(process("hello world").unwrap(), "2 words: HELLO WORLD");
        assert!(process("a poison pill").is_err());
    }

    #[test]
    fn query_parameters() {
        assert_eq!(query_param("/jobs/1?wait=5", "wait"), Some("5"));
        assert_eq!(query_param("/jobs/1", "wait"), None);
    }
}
