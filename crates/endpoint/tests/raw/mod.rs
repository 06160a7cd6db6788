//! Raw HTTP/1.1 against a local endpoint: requests signed as an SDK signs them,
//! written on a plain socket, responses read by hand. For tests that need what an
//! SDK will not send (extra members, duplicate keys, pipelining, attacks).

#![allow(dead_code)] // each test file uses its own part

use pantstack_awsproto::sigv4;
use pantstack_endpoint::iam::Policy;
use pantstack_endpoint::{Config, Core, http};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const REGION: &str = "eu-west-1";

pub struct Local {
    pub core: Arc<Core>,
    pub server: http::Server,
    pub access: String,
    pub secret: String,
    pub dir: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An endpoint with one principal, `api`, free of any policy.
pub async fn local(name: &str) -> Local {
    local_with(name, Default::default()).await
}

/// An endpoint whose principals are `api` and `billing`, with `policies`.
pub async fn local_with(name: &str, policies: HashMap<String, Policy>) -> Local {
    local_full(name, policies, http::Limits::default()).await
}

/// An endpoint with `limits` on its connections.
pub async fn local_limits(name: &str, limits: http::Limits) -> Local {
    local_full(name, Default::default(), limits).await
}

async fn local_full(name: &str, policies: HashMap<String, Policy>, limits: http::Limits) -> Local {
    let dir = std::env::temp_dir().join(format!("pantstack-wire-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = Arc::new(
        Core::open(&Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: REGION.into(),
            principals: vec!["api".into(), "billing".into()],
            policies,
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .expect("open"),
    );
    let server = http::serve_with(core.clone(), 0, limits)
        .await
        .expect("serve");
    let creds = core.credentials("api");
    Local {
        core,
        server,
        access: creds.access_key,
        secret: creds.secret_key,
        dir,
    }
}

pub fn amz_date() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Local {
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// A signed request's bytes: `service` scopes the signature; `extra` headers
    /// are sent (and signed) as given.
    pub fn signed(
        &self,
        service: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let host = format!("127.0.0.1:{}", self.port());
        self.signed_by(
            &self.access,
            &self.secret,
            &host,
            service,
            method,
            path,
            extra,
            body,
        )
    }

    /// [`Local::signed`] with `principal`'s credentials.
    pub fn signed_as(
        &self,
        principal: &str,
        service: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let host = format!("127.0.0.1:{}", self.port());
        self.signed_host(principal, &host, service, method, path, extra, body)
    }

    /// [`Local::signed_as`] with another `Host` (signed as given).
    #[allow(clippy::too_many_arguments)]
    pub fn signed_host(
        &self,
        principal: &str,
        host: &str,
        service: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let c = self.core.credentials(principal);
        self.signed_by(
            &c.access_key,
            &c.secret_key,
            host,
            service,
            method,
            path,
            extra,
            body,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn signed_by(
        &self,
        access: &str,
        secret: &str,
        host: &str,
        service: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let date = amz_date();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host.to_string()),
            ("x-amz-date".into(), date.clone()),
        ];
        if service == "s3" {
            headers.push(("x-amz-content-sha256".into(), sigv4::sha256_hex(body)));
        }
        for (k, v) in extra {
            headers.push((k.to_string(), v.to_string()));
        }
        let auth = sigv4::authorization(
            &sigv4::Request::from_target(method, path, &headers),
            access,
            secret,
            REGION,
            service,
            &date,
            &sigv4::sha256_hex(body),
        );
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "authorization: {auth}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// An SQS JSON-protocol request.
    pub fn sqs(&self, action: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let target = format!("AmazonSQS.{action}");
        let mut h = vec![
            ("x-amz-target", target.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
        ];
        h.extend_from_slice(extra);
        self.signed("sqs", "POST", "/", &h, body.as_bytes())
    }

    /// A JSON-protocol request of `principal` to `service` (`sqs` or `ssm`).
    pub fn json_as(&self, principal: &str, service: &str, action: &str, body: &str) -> Vec<u8> {
        let (target, ctype) = match service {
            "ssm" => (format!("AmazonSSM.{action}"), "application/x-amz-json-1.1"),
            _ => (format!("AmazonSQS.{action}"), "application/x-amz-json-1.0"),
        };
        let h = [("x-amz-target", target.as_str()), ("content-type", ctype)];
        self.signed_as(principal, service, "POST", "/", &h, body.as_bytes())
    }

    /// Sends one request on a new connection and reads its response.
    pub fn send(&self, request: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_response(&mut s, &mut Vec::new())
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (framed by Content-Length) from `s`, keeping any bytes
/// past it in `rest`.
pub fn read_response(s: &mut TcpStream, rest: &mut Vec<u8>) -> Response {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(n) = r.parse(rest).unwrap() {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = r.code.unwrap();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .expect("content-length");
            while rest.len() < n + len {
                let mut b = [0u8; 4096];
                let got = s.read(&mut b).unwrap();
                assert!(got > 0, "connection closed inside a body");
                rest.extend_from_slice(&b[..got]);
            }
            let body = String::from_utf8_lossy(&rest[n..n + len]).into_owned();
            rest.drain(..n + len);
            return Response {
                status,
                headers,
                body,
            };
        }
        let mut b = [0u8; 4096];
        let got = s.read(&mut b).unwrap();
        assert!(got > 0, "connection closed before a response");
        rest.extend_from_slice(&b[..got]);
    }
}

pub fn at_eof(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}
