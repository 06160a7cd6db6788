//! Verifying AWS Signature Version 4: the `Authorization` header form and the
//! presigned-URL (query) form, with the canonicalization rules of the AWS SDKs
//! (S3 keeps the path as sent; other services encode it once more).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a signed request's time may be from the server's (AWS: 15 minutes).
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// Presigned URLs live at most 7 days.
pub const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;

/// Why a request's signature is not accepted, with the error code AWS answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigError {
    /// No signature at all (`MissingAuthenticationToken`).
    Missing,
    /// A signature that cannot be parsed (`IncompleteSignature`).
    Malformed(String),
    /// An access key this endpoint does not know (`InvalidClientTokenId`; S3:
    /// `InvalidAccessKeyId`).
    UnknownKey(String),
    /// The signature does not match (`SignatureDoesNotMatch`).
    Mismatch,
    /// Too far from the server's clock, or a presigned URL past its expiry.
    Expired(String),
}

impl SigError {
    /// The AWS error code clients map to exception types.
    pub fn code(&self, s3: bool) -> &'static str {
        match self {
            SigError::Missing if s3 => "AccessDenied",
            SigError::Missing => "MissingAuthenticationToken",
            SigError::Malformed(_) if s3 => "AuthorizationHeaderMalformed",
            SigError::Malformed(_) => "IncompleteSignature",
            SigError::UnknownKey(_) if s3 => "InvalidAccessKeyId",
            SigError::UnknownKey(_) => "InvalidClientTokenId",
            SigError::Mismatch => "SignatureDoesNotMatch",
            SigError::Expired(_) if s3 => "AccessDenied",
            SigError::Expired(_) => "SignatureDoesNotMatch",
        }
    }
}

impl std::fmt::Display for SigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigError::Missing => f.write_str("the request is not signed (no Authorization header or X-Amz-Signature)"),
            SigError::Malformed(m) => write!(f, "malformed signature: {m}"),
            SigError::UnknownKey(k) => write!(f, "the access key {k} is not known to this local cloud"),
            SigError::Mismatch => f.write_str("the request signature we calculated does not match the signature you provided; check your secret access key and signing method"),
            SigError::Expired(m) => f.write_str(m),
        }
    }
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// The query string as sent (without `?`).
    pub query: &'a str,
    /// Header names in any case; repeated names allowed.
    pub headers: &'a [(String, String)],
}

impl<'a> Request<'a> {
    /// A request whose target (`/path?query`, as in its request line) is split
    /// into path and query.
    pub fn from_target(method: &'a str, target: &'a str, headers: &'a [(String, String)]) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method,
            path,
            query,
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a signature claims: who signed, when, for which region and service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub access_key: String,
    /// `yyyymmdd` of the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// `yyyymmddThhmmssZ`.
    pub amz_date: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// Presigned (query) form: its `X-Amz-Expires`.
    pub expires: Option<i64>,
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Reads the signature of a request (header or presigned form).
pub fn parse(req: &Request<'_>) -> Result<Signed, SigError> {
    if let Some(auth) = req.header("authorization") {
        let rest = auth
            .strip_prefix(ALGORITHM)
            .ok_or_else(|| SigError::Malformed(format!("only {ALGORITHM} is supported")))?;
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let (Some(c), Some(sh), Some(sig)) = (credential, signed, signature) else {
            return Err(SigError::Malformed(
                "Authorization must name Credential, SignedHeaders and Signature".into(),
            ));
        };
        let amz_date = req
            .header("x-amz-date")
            .or_else(|| req.header("date"))
            .ok_or_else(|| SigError::Malformed("X-Amz-Date is missing".into()))?;
        return scope(c, sh, sig, amz_date, None);
    }
    let q = query_pairs(req.query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(sig) = get("X-Amz-Signature") else {
        return Err(SigError::Missing);
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(SigError::Malformed(format!(
            "X-Amz-Algorithm must be {ALGORITHM}"
        )));
    }
    let (Some(c), Some(sh), Some(d), Some(e)) = (
        get("X-Amz-Credential"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Date"),
        get("X-Amz-Expires"),
    ) else {
        return Err(SigError::Malformed(
            "a presigned URL needs X-Amz-Credential, X-Amz-SignedHeaders, X-Amz-Date and X-Amz-Expires".into(),
        ));
    };
    let expires: i64 = e
        .parse()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e))
        .ok_or_else(|| {
            SigError::Malformed(format!(
                "X-Amz-Expires must be 1..{MAX_EXPIRES_SECS} seconds"
            ))
        })?;
    scope(c, sh, sig, d, Some(expires))
}

fn scope(
    credential: &str,
    signed: &str,
    sig: &str,
    amz_date: &str,
    expires: Option<i64>,
) -> Result<Signed, SigError> {
    let mut parts = credential.split('/');
    let (Some(key), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SigError::Malformed(format!(
            "Credential must be KEY/yyyymmdd/region/service/aws4_request, not `{credential}`"
        )));
    };
    if amz_date.len() != 16 || !amz_date.starts_with(date) {
        return Err(SigError::Malformed(format!(
            "X-Amz-Date `{amz_date}` does not match the credential date {date}"
        )));
    }
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Malformed(
            "Signature must be 64 hex digits".into(),
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(|s| s.to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed(
            "SignedHeaders must include host".into(),
        ));
    }
    Ok(Signed {
        access_key: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        amz_date: amz_date.to_string(),
        signed_headers,
        signature: sig.to_ascii_lowercase(),
        expires,
    })
}

/// Seconds since the epoch of `yyyymmddThhmmssZ`.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss)
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = vec![0u8; bytes.len() * 2];
    for (pair, b) in s.chunks_exact_mut(2).zip(bytes) {
        pair[0] = H[usize::from(b >> 4)];
        pair[1] = H[usize::from(b & 15)];
    }
    // Hex digits are ASCII: the conversion cannot fail.
    String::from_utf8(s).unwrap_or_default()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The signing key of a secret for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// RFC 3986 unreserved characters stay; everything else is `%XX` (uppercase).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s, keep_slash);
    out
}

/// Decodes `%XX` (and, in query strings, `+` as space).
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `s` RFC 3986-encoded (as `uri_encode`) to `out`.
fn push_encoded(out: &mut String, s: &str, keep_slash: bool) {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(H[(b >> 4) as usize] as char);
            out.push(H[(b & 15) as usize] as char);
        }
    }
}

/// The canonical request of SigV4. `payload_hash` is the hex SHA-256 of the body,
/// or what `x-amz-content-sha256` says (`UNSIGNED-PAYLOAD`, streaming modes).
///
/// Built in one buffer: it runs for every request the endpoint receives.
pub fn canonical_request(req: &Request<'_>, signed: &Signed, payload_hash: &str) -> String {
    let s3 = signed.service == "s3";
    let path = if req.path.is_empty() { "/" } else { req.path };
    let mut out = String::with_capacity(
        256 + path.len()
            + req.query.len()
            + req
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    out.push_str(req.method);
    out.push('\n');
    if s3 {
        // S3: the path as sent, re-encoded consistently, never normalized.
        push_encoded(&mut out, &percent_decode(path, false), true);
    } else {
        // Other services: the (already encoded) path is encoded once more.
        push_encoded(&mut out, path, true);
    }
    out.push('\n');
    if !req.query.is_empty() {
        let mut query: Vec<(String, String)> = query_pairs(req.query)
            .into_iter()
            .filter(|(k, _)| !(signed.expires.is_some() && k == "X-Amz-Signature"))
            .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
            .collect();
        query.sort();
        for (i, (k, v)) in query.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
    }
    out.push('\n');
    for name in &signed.signed_headers {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for (_, v) in req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            if !first {
                out.push(',');
            }
            first = false;
            // Trimmed, inner runs of whitespace as one space.
            for (j, word) in v.split_whitespace().enumerate() {
                if j > 0 {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in signed.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The `Authorization` header a client sends for `req`, signing every header in
/// `req.headers` (which must include `host` and `x-amz-date`). `amz_date` is
/// `yyyymmddThhmmssZ`; `payload_hash` as for `canonical_request`. For load
/// generators and tests that speak to the endpoint without an SDK.
pub fn authorization(
    req: &Request<'_>,
    access_key: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    payload_hash: &str,
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut names: Vec<String> = req
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let signed = Signed {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        amz_date: amz_date.to_string(),
        signed_headers: names,
        signature: String::new(),
        expires: None,
    };
    let creq = canonical_request(req, &signed, payload_hash);
    let to_sign = string_to_sign(&signed, &creq);
    let key = signing_key(secret, date, region, service);
    let sig = hex(&hmac(&key, to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={access_key}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
        signed.signed_headers.join(";")
    )
}

/// The string a signature signs: `ALGORITHM \n amz-date \n
/// date/region/service/aws4_request \n hex(sha256(canonical request))`, written
/// without the formatting machinery (it is on every request's path).
fn string_to_sign(signed: &Signed, canonical_request: &str) -> String {
    let mut out = String::with_capacity(160);
    for part in [
        ALGORITHM,
        "\n",
        &signed.amz_date,
        "\n",
        &signed.date,
        "/",
        &signed.region,
        "/",
        &signed.service,
        "/aws4_request\n",
        &sha256_hex(canonical_request.as_bytes()),
    ] {
        out.push_str(part);
    }
    out
}

/// Verifies a parsed signature with the secret of its access key, at `now` (seconds
/// since the epoch). `body_sha256` is the hex SHA-256 of the body as received: it
/// is what the canonical request holds, whatever an `x-amz-content-sha256`
/// header claims (a header naming another body makes the signature not match, so
/// a body cannot be swapped under a signed hash). Presigned requests sign
/// `UNSIGNED-PAYLOAD`. S3 requests are verified by s3s, not here.
pub fn verify(
    req: &Request<'_>,
    signed: &Signed,
    secret: &str,
    body_sha256: &str,
    now: i64,
) -> Result<(), SigError> {
    let key = signing_key(secret, &signed.date, &signed.region, &signed.service);
    verify_with_key(req, signed, &key, body_sha256, now)
}

/// `verify` with the signing key already derived (`signing_key` of the secret and
/// the signature's date, region and service), for callers that cache it.
pub fn verify_with_key(
    req: &Request<'_>,
    signed: &Signed,
    key: &[u8],
    body_sha256: &str,
    now: i64,
) -> Result<(), SigError> {
    let t = parse_amz_date(&signed.amz_date).ok_or_else(|| {
        SigError::Malformed(format!(
            "X-Amz-Date `{}` is not yyyymmddThhmmssZ",
            signed.amz_date
        ))
    })?;
    match signed.expires {
        Some(e) if now > t + e => {
            return Err(SigError::Expired(format!(
                "the presigned URL expired at {} ({} s after signing)",
                t + e,
                e
            )));
        }
        Some(_) if t > now + MAX_SKEW_SECS => {
            return Err(SigError::Expired(
                "the presigned URL is signed in the future".into(),
            ));
        }
        None if (now - t).abs() > MAX_SKEW_SECS => {
            return Err(SigError::Expired(format!(
                "signature expired: X-Amz-Date {} is more than 15 minutes from the server's time",
                signed.amz_date
            )));
        }
        _ => {}
    }
    let payload = if signed.expires.is_some() {
        "UNSIGNED-PAYLOAD"
    } else {
        body_sha256
    };
    let creq = canonical_request(req, signed, payload);
    let to_sign = string_to_sign(signed, &creq);
    let expected = hex(&hmac(key, to_sign.as_bytes()));
    // Constant time: the comparison does not stop at the first difference.
    let diff = expected
        .bytes()
        .zip(signed.signature.bytes())
        .fold(expected.len() ^ signed.signature.len(), |acc, (a, b)| {
            acc | usize::from(a ^ b)
        });
    if diff == 0 {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[(&str, &str)]) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The canonical request as SigV4's specification spells it out, step by step:
    /// the one-buffer `canonical_request` must produce exactly this.
    fn spelled_out(req: &Request<'_>, signed: &Signed, payload_hash: &str) -> String {
        let path = if req.path.is_empty() { "/" } else { req.path };
        let uri = if signed.service == "s3" {
            uri_encode(&percent_decode(path, false), true)
        } else {
            uri_encode(path, true)
        };
        let mut query: Vec<(String, String)> = query_pairs(req.query)
            .into_iter()
            .filter(|(k, _)| !(signed.expires.is_some() && k == "X-Amz-Signature"))
            .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
            .collect();
        query.sort();
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut headers = String::new();
        for name in &signed.signed_headers {
            let values: Vec<String> = req
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        format!(
            "{}\n{uri}\n{}\n{headers}\n{}\n{payload_hash}",
            req.method,
            query.join("&"),
            signed.signed_headers.join(";")
        )
    }

    /// What `authorization` signs, `parse` + `verify` accept; a changed byte fails.
    #[test]
    fn a_client_signature_verifies() {
        let h = headers(&[
            ("Host", "127.0.0.1:1"),
            ("X-Amz-Date", "20260101T000000Z"),
            ("X-Amz-Target", "AmazonSQS.ListQueues"),
        ]);
        let payload = sha256_hex(b"{}");
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &h,
        };
        let auth = authorization(
            &req,
            "AK",
            "secret",
            "us-east-1",
            "sqs",
            "20260101T000000Z",
            &payload,
        );
        let mut with = h.clone();
        with.push(("Authorization".into(), auth));
        let signed_req = Request {
            headers: &with,
            ..req.clone()
        };
        let signed = parse(&signed_req).unwrap();
        let now = parse_amz_date("20260101T000000Z").unwrap();
        assert_eq!(
            verify(&signed_req, &signed, "secret", &payload, now),
            Ok(())
        );
        assert!(verify(&signed_req, &signed, "other", &payload, now).is_err());
        assert!(verify(&signed_req, &signed, "secret", &sha256_hex(b"{ }"), now).is_err());
    }

    #[test]
    fn canonical_request_matches_the_spelled_out_form() {
        let h = headers(&[
            ("Host", "127.0.0.1:4566"),
            ("X-Amz-Date", "20260101T000000Z"),
            ("x-amz-meta-a", "  two   words  "),
            ("X-Amz-Meta-A", "second\tvalue"),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-empty", ""),
        ]);
        let paths = [
            "",
            "/",
            "/123/queue",
            "/bucket/a%20b/%E2%82%AC+c",
            "/bucket/ü~x.y_z-",
        ];
        let queries = [
            "",
            "Action=SendMessage&MessageBody=a+b%21&Version=2012-11-05",
            "b=2&a=1&a=0&flag&X-Amz-Signature=ab",
            "prefix=%2Fdir%2F&delimiter=%2F&list-type=2",
        ];
        for service in ["sqs", "s3"] {
            for expires in [None, Some(60)] {
                let signed = Signed {
                    access_key: "AK".into(),
                    date: "20260101".into(),
                    region: "us-east-1".into(),
                    service: service.into(),
                    amz_date: "20260101T000000Z".into(),
                    signed_headers: vec![
                        "content-type".into(),
                        "host".into(),
                        "x-amz-date".into(),
                        "x-amz-meta-a".into(),
                        "x-empty".into(),
                        "x-missing".into(),
                    ],
                    signature: String::new(),
                    expires,
                };
                for path in paths {
                    for query in queries {
                        let req = Request {
                            method: "POST",
                            path,
                            query,
                            headers: &h,
                        };
                        assert_eq!(
                            canonical_request(&req, &signed, "UNSIGNED-PAYLOAD"),
                            spelled_out(&req, &signed, "UNSIGNED-PAYLOAD"),
                            "{service} {path}?{query} {expires:?}"
                        );
                    }
                }
            }
        }
    }

    /// `get-vanilla` of AWS's SigV4 test suite.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let h = headers(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let mut h2 = h.clone();
        h2.push(("Authorization".into(), auth.into()));
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &h2,
        };
        let s = parse(&req).expect("parses");
        assert_eq!(
            (s.access_key.as_str(), s.region.as_str(), s.service.as_str()),
            ("AKIDEXAMPLE", "us-east-1", "service")
        );
        let now = parse_amz_date("20150830T123600Z").expect("date");
        verify(
            &req,
            &s,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            &sha256_hex(b""),
            now,
        )
        .expect("valid");
        assert_eq!(
            verify(&req, &s, "wrong", &sha256_hex(b""), now),
            Err(SigError::Mismatch)
        );
        let late = now + MAX_SKEW_SECS + 1;
        assert!(matches!(
            verify(
                &req,
                &s,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                &sha256_hex(b""),
                late
            ),
            Err(SigError::Expired(_))
        ));
    }

    #[test]
    fn unsigned_and_malformed_requests_are_named() {
        let h = headers(&[("Host", "x")]);
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &h,
        };
        assert_eq!(parse(&req), Err(SigError::Missing));
        assert_eq!(SigError::Missing.code(false), "MissingAuthenticationToken");
        let h = headers(&[
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AK/2026/us-east-1/sqs, SignedHeaders=host, Signature=00",
            ),
            ("X-Amz-Date", "20261125T180000Z"),
        ]);
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &h,
        };
        assert!(matches!(parse(&req), Err(SigError::Malformed(_))));
        assert_eq!(SigError::Mismatch.code(true), "SignatureDoesNotMatch");
        assert_eq!(
            SigError::UnknownKey("x".into()).code(true),
            "InvalidAccessKeyId"
        );
    }

    #[test]
    fn dates_and_encoding() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20261125T180000Z"), Some(1_795_629_600));
        assert_eq!(parse_amz_date("2026-11-25"), None);
        assert_eq!(uri_encode("a b/c+~", true), "a%20b/c%2B~");
        assert_eq!(percent_decode("a%2Bb+c%2x", true), "a+b c%2x");
    }
}
