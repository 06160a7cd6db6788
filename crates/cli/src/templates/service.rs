//! The example `api` service: an HTTP API that accepts jobs and reports their status,
//! and its worker (same codebase, `api work`) that processes them.
//!
//! Standard library only, so the binary links statically and runs in a `FROM scratch`
//! image. Jobs are kept in memory by the API; the worker claims them over HTTP.
//! (Later: jobs go through an SQS queue and results into an S3 bucket.)
//!
//! ```text
//! api serve                 PORT (8080)
//!   GET  /healthz           200 ok
//!   POST /jobs              body = job input (text)  → 202 {"id":..,"status":"queued"}
//!   GET  /jobs/{id}         {"id":..,"status":"queued|running|done|failed","result":..}
//!        ?wait=SECS         long poll: answer once the job is done or failed (≤ 20 s)
//!   GET  /jobs              every job
//!   POST /internal/jobs/claim          → 200 {"id":..,"input":..} or 204
//!   POST /internal/jobs/{id}/complete  body = result   (worker only)
//!   POST /internal/jobs/{id}/fail      body = reason   (worker only)
//! api work                  PORT (8081) for /healthz; JOBS_API_URL, else
//!                           PANTSTACK_SERVICE_URL_API (http://127.0.0.1:8080)
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAX_BODY: usize = 64 * 1024;
const MAX_HEADER_LINES: usize = 100;

#[derive(Clone)]
struct Job {
    input: String,
    status: &'static str,
    result: Option<String>,
    attempts: u32,
}

#[derive(Default)]
struct Jobs {
    next: AtomicU64,
    items: Mutex<BTreeMap<u64, Job>>,
}

struct Request {
    method: String,
    path: String,
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

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn job_json(id: u64, job: &Job) -> String {
    let result = job
        .result
        .as_deref()
        .map(json_str)
        .unwrap_or_else(|| "null".into());
    format!(
        "{{\"id\":\"{id}\",\"status\":\"{}\",\"attempts\":{},\"result\":{result}}}",
        job.status, job.attempts
    )
}

fn read_request(stream: &mut BufReader<TcpStream>) -> Result<Option<Request>, Response> {
    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(_) => return Ok(None),
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(text(400, "malformed request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut content_length = 0usize;
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
            return Ok(Some(Request { method, path, body }));
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
            }
        }
    }
    Err(text(431, "too many header lines"))
}

fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
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

fn api(jobs: &Jobs, req: Request) -> Response {
    let segments: Vec<&str> = req
        .path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    // `GET /jobs/{id}?wait=SECS`: long poll until the job is done or failed.
    if let ("GET", ["jobs", id]) = (req.method.as_str(), segments.as_slice())
        && let Some(wait) = query_param(&req.path, "wait").and_then(|w| w.parse::<u64>().ok())
        && let Ok(id) = id.parse::<u64>()
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(wait.min(20));
        while std::time::Instant::now() < deadline {
            let finished = match jobs.items.lock() {
                Ok(g) => g
                    .get(&id)
                    .is_none_or(|j| j.status == "done" || j.status == "failed"),
                Err(p) => p
                    .into_inner()
                    .get(&id)
                    .is_none_or(|j| j.status == "done" || j.status == "failed"),
            };
            if finished {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut items = match jobs.items.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["healthz"]) => text(200, "ok"),
        ("POST", ["jobs"]) => {
            let Ok(input) = String::from_utf8(req.body) else {
                return text(400, "job input must be UTF-8 text");
            };
            let id = jobs.next.fetch_add(1, Ordering::SeqCst) + 1;
            let job = Job {
                input,
                status: "queued",
                result: None,
                attempts: 0,
            };
            let body = job_json(id, &job);
            items.insert(id, job);
            json(202, body)
        }
        ("GET", ["jobs"]) => {
            let all: Vec<String> = items.iter().map(|(id, j)| job_json(*id, j)).collect();
            json(200, format!("[{}]", all.join(",")))
        }
        ("GET", ["jobs", id]) => match id
            .parse::<u64>()
            .ok()
            .and_then(|id| items.get(&id).map(|j| (id, j)))
        {
            Some((id, job)) => json(200, job_json(id, job)),
            None => text(404, "no such job"),
        },
        ("POST", ["internal", "jobs", "claim"]) => {
            match items.iter_mut().find(|(_, j)| j.status == "queued") {
                Some((id, job)) => {
                    job.status = "running";
                    job.attempts += 1;
                    json(
                        200,
                        format!("{{\"id\":\"{id}\",\"input\":{}}}", json_str(&job.input)),
                    )
                }
                None => Response {
                    status: 204,
                    body: String::new(),
                    content_type: "text/plain",
                },
            }
        }
        ("POST", ["internal", "jobs", id, outcome @ ("complete" | "fail")]) => {
            let Some(job) = id.parse::<u64>().ok().and_then(|id| items.get_mut(&id)) else {
                return text(404, "no such job");
            };
            if job.status != "running" {
                return text(409, "job is not running");
            }
            let body = String::from_utf8_lossy(&req.body).into_owned();
            job.result = Some(body);
            job.status = if *outcome == "complete" {
                "done"
            } else {
                "failed"
            };
            text(200, "ok")
        }
        (_, ["healthz" | "jobs"]) | (_, ["jobs", _]) => text(405, "method not allowed"),
        _ => text(404, "not found"),
    }
}

/// The work itself: counts the words and shouts the input back. An input that
/// contains `poison` fails, so failure handling can be exercised.
fn process(input: &str) -> Result<String, String> {
    if input.contains("poison") {
        return Err("input is poisoned".into());
    }
    let words = input.split_whitespace().count();
    Ok(format!("{words} words: {}", input.to_uppercase()))
}

fn http_post(
    addr: SocketAddr,
    host: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed response"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Extracts a string field from the flat JSON objects the API writes.
fn field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = json.find(&key)? + key.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn resolve(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("JOBS_API_URL `{url}` must start with http://"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let with_port = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    // Resolve `localhost` ourselves: a FROM-scratch image has no NSS configuration.
    let lookup = with_port.replacen("localhost:", "127.0.0.1:", 1);
    let addr = lookup
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {hostport}"))?;
    Ok((addr, hostport.to_string()))
}

fn work(api_url: &str, stop: &AtomicBool) -> Result<(), String> {
    let (addr, host) = resolve(api_url)?;
    eprintln!("worker: consuming jobs from {api_url}");
    while !stop.load(Ordering::Relaxed) {
        match http_post(addr, &host, "/internal/jobs/claim", "") {
            Ok((200, body)) => {
                let (Some(id), Some(input)) = (field(&body, "id"), field(&body, "input")) else {
                    eprintln!("worker: malformed claim response: {body}");
                    continue;
                };
                let (path, out) = match process(&input) {
                    Ok(result) => (format!("/internal/jobs/{id}/complete"), result),
                    Err(why) => (format!("/internal/jobs/{id}/fail"), why),
                };
                if let Err(e) = http_post(addr, &host, &path, &out) {
                    eprintln!("worker: reporting job {id} failed: {e}");
                }
                eprintln!("worker: job {id} processed");
            }
            Ok((204, _)) => std::thread::sleep(Duration::from_millis(200)),
            Ok((status, body)) => {
                eprintln!("worker: claim answered {status}: {}", body.trim());
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                eprintln!("worker: API unreachable: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    Ok(())
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
    let result = match mode.as_str() {
        "serve" => listen(8080).map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                eprintln!("{service}: listening on {addr}");
            }
            let jobs = Arc::new(Jobs::default());
            serve_forever(listener, Arc::new(move |req| api(&jobs, req)));
        }),
        "work" => listen(8081).and_then(|listener| {
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
            // In the local cloud the API's load balancer is PANTSTACK_SERVICE_URL_API.
            let url = std::env::var("JOBS_API_URL")
                .or_else(|_| std::env::var("PANTSTACK_SERVICE_URL_API"))
                .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
            work(&url, &AtomicBool::new(false))
        }),
        "--help" | "-h" | "help" => {
            println!(
                "usage: api [serve|work]\n  serve  HTTP API on $PORT (8080)\n  work   worker; health on $PORT (8081), jobs from $JOBS_API_URL"
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
    fn json_fields_round_trip() {
        let s = format!(
            "{{\"id\":\"3\",\"input\":{}}}",
            json_str("a \"quoted\"\nline\u{1}")
        );
        assert_eq!(field(&s, "id").unwrap(), "3");
        assert_eq!(field(&s, "input").unwrap(), "a \"quoted\"\nline\u{1}");
    }
}
