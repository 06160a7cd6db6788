//! The `reports` service: another service's data, reached the two ways a monorepo's
//! services reach each other.
//!
//! ```text
//! reports serve             PORT (8080); API_URL, API_RESULTS
//!   GET /healthz            200 ok
//!   GET /report             {"api":"ok","jobs":N,"request_id":".."}: asks the api
//!                           for its health (calls: [api] → API_URL, Service Connect
//!                           on AWS) passing the request's X-Request-Id along, and
//!                           counts the job records in the api's bucket, which the
//!                           api grants it to read (API_RESULTS).
//! ```
//!
//! Like the api: the standard library for HTTP, the AWS SDK for S3 on a small tokio
//! runtime, statically linked into a FROM scratch image, stops on SIGTERM.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

struct Request {
    method: String,
    path: String,
    request_id: Option<String>,
}

fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    stream.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut request_id = None;
    for _ in 0..100 {
        let mut h = String::new();
        if stream.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(Request {
                method,
                path,
                request_id,
            });
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("x-request-id")
        {
            request_id = Some(value.trim().to_string());
        }
    }
    None
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// GET `url` over HTTP/1.1 (the api, inside the VPC or on loopback), with the
/// request id passed along; the body of a 200.
fn get(url: &str, request_id: Option<&str>) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let mut s = TcpStream::connect(host).map_err(|e| format!("cannot reach {host}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let id = request_id
        .map(|i| format!("X-Request-Id: {i}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{id}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or("no answer")
        ));
    }
    Ok(body.trim().to_string())
}

struct Cloud {
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    bucket: String,
    api: String,
}

impl Cloud {
    fn from_env() -> Result<Cloud, String> {
        let var = |n: &str| {
            std::env::var(n).map_err(|_| {
                format!("{n} is not set (the local cloud and the ECS task definition set it)")
            })
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let conf = rt.block_on(aws_config::load_defaults(
            aws_config::BehaviorVersion::latest(),
        ));
        Ok(Cloud {
            s3: aws_sdk_s3::Client::new(&conf),
            bucket: var("API_RESULTS")?,
            api: var("API_URL")?,
            rt,
        })
    }

    /// How many job records the api's bucket holds (its `jobs/` keys, every page).
    fn jobs(&self) -> Result<usize, String> {
        self.rt.block_on(async {
            let mut pages = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix("jobs/")
                .into_paginator()
                .send();
            let mut n = 0;
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "S3 ListObjectsV2: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                })?;
                n += page.contents().len();
            }
            Ok(n)
        })
    }
}

fn serve(cloud: &Cloud, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let Some(req) = read_request(&mut BufReader::new(read_half)) else {
        return;
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => respond(&mut stream, 200, "text/plain", "ok\n"),
        ("GET", "/report") => {
            let id = req.request_id.as_deref();
            let report =
                get(&format!("{}/healthz", cloud.api), id).and_then(|api| Ok((api, cloud.jobs()?)));
            match report {
                Ok((api, jobs)) => {
                    // One JSON line per report, with the request id the load
                    // balancer gave it (`pantstack trace ID` finds it).
                    eprintln!(
                        "{}",
                        serde_json::json!({ "level": "info", "message": "report served", "jobs": jobs, "request_id": id })
                    );
                    let body = serde_json::json!({ "api": api, "jobs": jobs, "request_id": id });
                    respond(&mut stream, 200, "application/json", &body.to_string());
                }
                Err(e) => {
                    eprintln!(
                        "{}",
                        serde_json::json!({ "level": "error", "message": format!("reports: {e}"), "request_id": id })
                    );
                    let body = serde_json::json!({ "error": e });
                    respond(&mut stream, 503, "application/json", &body.to_string());
                }
            }
        }
        _ => respond(&mut stream, 404, "text/plain", "not found\n"),
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if mode != "serve" {
        eprintln!("usage: reports serve  (HTTP on $PORT, 8080; API_URL, API_RESULTS)");
        std::process::exit(if mode == "--help" { 0 } else { 2 });
    }
    // SIGTERM (ECS and the local cloud stop a task with it; PID 1 in a FROM scratch
    // image needs a handler): the load balancer has drained already, so exit.
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                eprintln!("reports: SIGTERM: stopping");
                std::process::exit(0);
            }
        });
    });
    let result = Cloud::from_env().and_then(|cloud| {
        let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
        let bind = std::env::var("BIND_ADDRESS").unwrap_or_else(|_| "0.0.0.0".into());
        let listener = TcpListener::bind(format!("{bind}:{port}"))
            .map_err(|e| format!("cannot listen on {bind}:{port}: {e}"))?;
        eprintln!("reports: listening on {bind}:{port}, calling {}", cloud.api);
        let cloud = Arc::new(cloud);
        for stream in listener.incoming().flatten() {
            let c = cloud.clone();
            std::thread::spawn(move || serve(&c, stream));
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
