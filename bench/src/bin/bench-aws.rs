//! A SigV4-signing load client for AWS-compatible endpoints (ours and moto's), so
//! both are driven by the same client in the same run. Prints one JSON line:
//! operations, units (messages, objects or bytes), seconds, and the server's CPU
//! seconds over the run (from /proc/PID/stat, threads included).
//!
//! Usage: `bench-aws SCENARIO URL ACCESS SECRET PID SECONDS CONNS [FILL]`
//! Scenarios: sqs-send, sqs-batch, sqs-recv, s3-put, s3-get, s3-big.

#![forbid(unsafe_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pantstack_awsproto::sigv4;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

const REGION: &str = "us-east-1";

#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    access: String,
    secret: String,
}

/// `yyyymmddThhmmssZ`, from the local cloud's RFC 3339 formatter.
fn amz_date(t: SystemTime) -> String {
    let r = pantstack_rt::clock::rfc3339_micros(t);
    let mut out: String = r[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    out.push('Z');
    out
}

/// A signed request.
fn request(
    t: &Target,
    service: &str,
    method: &str,
    path: &str,
    mut headers: Vec<(String, String)>,
    body: Bytes,
    unsigned_payload: bool,
) -> hyper::Request<Full<Bytes>> {
    let date = amz_date(SystemTime::now());
    let payload = if unsigned_payload {
        "UNSIGNED-PAYLOAD".to_string()
    } else {
        sigv4::sha256_hex(&body)
    };
    headers.push(("host".into(), format!("{}:{}", t.host, t.port)));
    headers.push(("x-amz-date".into(), date.clone()));
    if service == "s3" {
        headers.push(("x-amz-content-sha256".into(), payload.clone()));
    }
    let auth = sigv4::authorization(
        &sigv4::Request::from_target(method, path, &headers),
        &t.access,
        &t.secret,
        REGION,
        service,
        &date,
        &payload,
    );
    let mut b = hyper::Request::builder().method(method).uri(path);
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b = b.header("authorization", auth);
    b.body(Full::new(body)).unwrap_or_default()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> Sender {
    let stream = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .unwrap_or_else(|e| fail(&format!("connect: {e}")));
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| fail(&format!("handshake: {e}")));
    tokio::spawn(conn);
    sender
}

fn fail(m: &str) -> ! {
    eprintln!("bench-aws: {m}");
    std::process::exit(1)
}

/// A connection that reconnects when the server closes it (moto answers
/// `Connection: close`).
struct Conn {
    t: Target,
    s: Sender,
}

impl Conn {
    async fn new(t: &Target) -> Conn {
        Conn {
            t: t.clone(),
            s: connect(t).await,
        }
    }
}

/// Sends a request (built again if the connection had to be replaced); returns
/// status and the whole body.
async fn call(c: &mut Conn, make: impl Fn(&Target) -> hyper::Request<Full<Bytes>>) -> (u16, Bytes) {
    let mut attempt = 0;
    let resp = loop {
        attempt += 1;
        if c.s.is_closed() || c.s.ready().await.is_err() {
            c.s = connect(&c.t).await;
        }
        match c.s.send_request(make(&c.t)).await {
            Ok(r) => break r,
            Err(_) if attempt < 3 => c.s = connect(&c.t).await,
            Err(e) => fail(&format!("request: {e}")),
        }
    };
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, body)
}

/// Sends a GET and counts the body's bytes frame by frame (no copy).
async fn call_count(
    c: &mut Conn,
    make: impl Fn(&Target) -> hyper::Request<Full<Bytes>>,
) -> (u16, u64) {
    if c.s.is_closed() || c.s.ready().await.is_err() {
        c.s = connect(&c.t).await;
    }
    let resp =
        c.s.send_request(make(&c.t))
            .await
            .unwrap_or_else(|e| fail(&format!("request: {e}")));
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.map(|f| f.into_data()) {
            n += d.map(|d| d.len() as u64).unwrap_or(0);
        }
    }
    (status, n)
}

fn sqs(t: &Target, action: &str, input: &Value) -> hyper::Request<Full<Bytes>> {
    request(
        t,
        "sqs",
        "POST",
        "/",
        vec![
            ("x-amz-target".into(), format!("AmazonSQS.{action}")),
            ("content-type".into(), "application/x-amz-json-1.0".into()),
        ],
        Bytes::from(input.to_string()),
        false,
    )
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is 3rd; utime 14th, stime 15th overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 7 {
        fail("usage: bench-aws SCENARIO URL ACCESS SECRET PID SECONDS CONNS [FILL]");
    }
    let url = a[1].trim_start_matches("http://").trim_end_matches('/');
    let (host, port) = url.split_once(':').unwrap_or((url, "80"));
    let t = Target {
        host: host.to_string(),
        port: port.parse().unwrap_or(80),
        access: a[2].clone(),
        secret: a[3].clone(),
    };
    let pid: u32 = a[4].parse().unwrap_or(0);
    let secs: f64 = a[5].parse().unwrap_or(5.0);
    let conns: usize = a[6].parse().unwrap_or(8);
    let fill: usize = a.get(7).and_then(|f| f.parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let scenario = a[0].clone();
    let out = rt.block_on(run(&scenario, t, pid, secs, conns, fill));
    println!("{out}");
}

async fn run(scenario: &str, t: Target, pid: u32, secs: f64, conns: usize, fill: usize) -> Value {
    let mut s = Conn::new(&t).await;
    let queue = format!("bench-{}", std::process::id());
    let qurl = format!("http://{}:{}/000000000000/{queue}", t.host, t.port);
    let bucket = format!("bench-{}", std::process::id());
    let body256 = "m".repeat(256);
    let obj4k = Bytes::from(vec![b'o'; 4096]);
    // Setup.
    if scenario.starts_with("sqs") {
        let (st, b) = call(&mut s, |t| {
            sqs(t, "CreateQueue", &json!({"QueueName": queue}))
        })
        .await;
        if st != 200 {
            fail(&format!(
                "CreateQueue: {st} {}",
                String::from_utf8_lossy(&b)
            ));
        }
    } else {
        let (st, b) = call(&mut s, |t| {
            request(
                t,
                "s3",
                "PUT",
                &format!("/{bucket}"),
                vec![],
                Bytes::new(),
                false,
            )
        })
        .await;
        if st != 200 {
            fail(&format!(
                "CreateBucket: {st} {}",
                String::from_utf8_lossy(&b)
            ));
        }
    }
    if scenario == "sqs-recv" {
        let mut n = 0;
        while n < fill {
            let entries: Vec<Value> = (0..10)
                .map(|i| json!({"Id": format!("e{i}"), "MessageBody": body256}))
                .collect();
            let (st, b) = call(&mut s, |t| {
                sqs(
                    t,
                    "SendMessageBatch",
                    &json!({"QueueUrl": qurl, "Entries": entries}),
                )
            })
            .await;
            if st != 200 {
                fail(&format!("fill: {st} {}", String::from_utf8_lossy(&b)));
            }
            n += 10;
        }
    }
    if scenario == "s3-get" {
        for i in 0..100 {
            let (st, _) = call(&mut s, |t| {
                request(
                    t,
                    "s3",
                    "PUT",
                    &format!("/{bucket}/k{i}"),
                    vec![],
                    obj4k.clone(),
                    false,
                )
            })
            .await;
            if st != 200 {
                fail(&format!("setup PUT: {st}"));
            }
        }
    }
    if scenario == "s3-big" {
        let big = Bytes::from(vec![b'b'; 256 * 1024 * 1024]);
        let (st, b) = call(&mut s, |t| {
            request(
                t,
                "s3",
                "PUT",
                &format!("/{bucket}/big"),
                vec![],
                big.clone(),
                true,
            )
        })
        .await;
        if st != 200 {
            fail(&format!("big PUT: {st} {}", String::from_utf8_lossy(&b)));
        }
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        let mut bytes = 0u64;
        let mut gets = 0u64;
        while t0.elapsed().as_secs_f64() < secs || gets == 0 {
            let (st, len) = call_count(&mut s, |t| {
                request(
                    t,
                    "s3",
                    "GET",
                    &format!("/{bucket}/big"),
                    vec![],
                    Bytes::new(),
                    false,
                )
            })
            .await;
            if st != 200 {
                fail(&format!("big GET: {st}"));
            }
            bytes += len;
            gets += 1;
        }
        let el = t0.elapsed().as_secs_f64();
        return json!({"scenario": scenario, "ops": gets, "units": bytes, "seconds": el, "server_cpu_s": cpu_seconds(pid) - cpu0});
    }
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let units = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conns {
        let (t, stop, ops, units, errors) = (
            t.clone(),
            stop.clone(),
            ops.clone(),
            units.clone(),
            errors.clone(),
        );
        let (qurl, bucket, body256, obj4k, scenario) = (
            qurl.clone(),
            bucket.clone(),
            body256.clone(),
            obj4k.clone(),
            scenario.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut s = Conn::new(&t).await;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (ok, n) = match scenario.as_str() {
                    "sqs-send" => {
                        let (st, _) = call(&mut s, |t| sqs(t, "SendMessage", &json!({"QueueUrl": qurl, "MessageBody": body256}))).await;
                        (st == 200, 1)
                    }
                    "sqs-batch" => {
                        let entries: Vec<Value> = (0..10).map(|i| json!({"Id": format!("e{i}"), "MessageBody": body256})).collect();
                        let (st, _) = call(&mut s, |t| sqs(t, "SendMessageBatch", &json!({"QueueUrl": qurl, "Entries": entries}))).await;
                        (st == 200, 10)
                    }
                    "sqs-recv" => {
                        let (st, b) = call(&mut s, |t| sqs(t, "ReceiveMessage", &json!({"QueueUrl": qurl, "MaxNumberOfMessages": 10, "VisibilityTimeout": 300}))).await;
                        let v: Value = serde_json::from_slice(&b).unwrap_or_default();
                        let msgs = v["Messages"].as_array().cloned().unwrap_or_default();
                        if st != 200 || msgs.is_empty() {
                            if st == 200 {
                                break; // drained
                            }
                            (false, 0)
                        } else {
                            let entries: Vec<Value> = msgs.iter().enumerate().map(|(i, m)| json!({"Id": format!("d{i}"), "ReceiptHandle": m["ReceiptHandle"]})).collect();
                            let (st2, _) = call(&mut s, |t| sqs(t, "DeleteMessageBatch", &json!({"QueueUrl": qurl, "Entries": entries}))).await;
                            (st2 == 200, msgs.len() as u64)
                        }
                    }
                    "s3-put" => {
                        let (st, _) = call(&mut s, |t| request(t, "s3", "PUT", &format!("/{bucket}/w{w}-{i}"), vec![], obj4k.clone(), false)).await;
                        (st == 200, 1)
                    }
                    "s3-get" => {
                        let (st, b) = call(&mut s, |t| request(t, "s3", "GET", &format!("/{bucket}/k{}", i % 100), vec![], Bytes::new(), false)).await;
                        (st == 200 && b.len() == 4096, 1)
                    }
                    other => fail(&format!("unknown scenario {other}")),
                };
                if ok {
                    ops.fetch_add(1, Ordering::Relaxed);
                    units.fetch_add(n, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let deadline = Duration::from_secs_f64(secs);
    while t0.elapsed() < deadline && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let el = t0.elapsed().as_secs_f64();
    json!({
        "scenario": scenario, "ops": ops.load(Ordering::Relaxed), "units": units.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed), "seconds": el, "server_cpu_s": cpu_seconds(pid) - cpu0,
    })
}
