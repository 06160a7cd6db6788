//! Signature Version 4 parsing and verification on arbitrary requests: never panics.
//! Input lines: method, path, query, then `name: value` headers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pantstack_awsproto::sigv4::{Request, parse, sha256_hex, verify};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let method = lines.next().unwrap_or("GET").to_string();
    let path = lines.next().unwrap_or("/").to_string();
    let query = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let req = Request { method: &method, path: &path, query: &query, headers: &headers };
    if let Ok(signed) = parse(&req) {
        let _ = verify(&req, &signed, "secret", &sha256_hex(data), 1_795_629_600);
    }
});
