//! The ALB behaviour both HTTP paths apply, written once: which request id and trace
//! id a request carries, the headers a target sees (`X-Forwarded-*`, hop-by-hop
//! headers dropped), listener rules, the balancer's own answers, and the access-log
//! line. The fast path (`h1`) and the general path (`general`) call these; neither
//! restates a rule.

use crate::spec::Rule;
use crate::{Balancer, Worker};
use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

/// The longest client `X-Request-Id` kept; a longer or empty one is replaced by a
/// new id.
pub const REQUEST_ID_MAX: usize = 200;

/// Whether the client's `X-Request-Id` value is kept (else the balancer makes one).
pub fn keeps_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= REQUEST_ID_MAX
}

/// `X-Forwarded-Proto`: the local listeners speak plain HTTP.
pub const FORWARDED_PROTO: &str = "http";

/// The `X-Forwarded-For` a target sees: the client's list with the peer appended,
/// or the peer alone.
pub fn forwarded_for(prev: Option<&[u8]>, peer_ip: &[u8], out: &mut Vec<u8>) {
    if let Some(prev) = prev {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer_ip);
}

/// Whether a request for `host` and `path` (without the query) is routed: every
/// request when the listener has no rules, else one matching a rule.
pub fn routed(rules: &[Rule], host: &str, path: &str) -> bool {
    rules.is_empty() || rules.iter().any(|r| rule_matches(r, host, path))
}

/// What the balancer answers itself, instead of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A request that cannot be read any further (malformed, framed two ways, a head
    /// past 64 KiB): 400, and the connection closes, as ALB and nginx do.
    BadRequest(&'static str),
    /// A request target that has no origin form.
    BadTarget,
    /// No listener rule matches.
    NoRoute,
    /// The target group has no target that can take the request.
    NoTarget,
    /// The target refused or reset the connection before a response.
    TargetRefused,
    /// The target's response head gives two framings (not relayed).
    TargetFramedTwoWays,
    /// The target did not answer within the idle timeout.
    TargetTimedOut,
    /// An upgrade's connection to the target was refused.
    UpgradeRefused,
    /// An upgrade's handshake with the target failed.
    UpgradeHandshake,
    /// The target reset an upgrade's connection.
    UpgradeReset,
}

impl Answer {
    pub fn status(self) -> u16 {
        match self {
            Answer::BadRequest(_) | Answer::BadTarget => 400,
            Answer::NoRoute => 404,
            Answer::NoTarget => 503,
            Answer::TargetTimedOut => 504,
            Answer::TargetRefused
            | Answer::TargetFramedTwoWays
            | Answer::UpgradeRefused
            | Answer::UpgradeHandshake
            | Answer::UpgradeReset => 502,
        }
    }

    /// The reason phrase of the status line.
    pub fn reason(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            404 => "Not Found",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Error",
        }
    }

    /// The plain-text body (one line).
    pub fn body(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Answer::BadRequest(why) => return Cow::Owned(format!("{why}\n")),
            Answer::BadTarget => "bad request target\n",
            Answer::NoRoute => "no route\n",
            Answer::NoTarget => "no target registered\n",
            Answer::TargetRefused => "target refused or reset the connection\n",
            Answer::TargetFramedTwoWays => "target response framed two ways\n",
            Answer::TargetTimedOut => "target timed out\n",
            Answer::UpgradeRefused => "target refused the connection\n",
            Answer::UpgradeHandshake => "target handshake failed\n",
            Answer::UpgradeReset => "target reset the connection\n",
        })
    }

    /// Whether the client connection closes after this answer.
    pub fn closes(self) -> bool {
        matches!(self, Answer::BadRequest(_))
    }
}

/// A fast per-thread pseudo-random generator (xorshift64*), seeded from the
/// standard library's random hash keys: ids must be unique, not secret.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// Writes `v`'s low `digits` nibbles as lowercase hex.
fn hex_into(out: &mut [u8], v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in 0..digits {
        out[i] = HEX[((v >> ((digits - 1 - i) * 4)) & 0xf) as usize];
    }
}

/// A random UUID-shaped request id (version 4 layout), as ALB's are.
pub fn request_id() -> String {
    String::from_utf8_lossy(&request_id_bytes()).into_owned()
}

pub(crate) fn request_id_bytes() -> [u8; 36] {
    let (a, b) = (random_u64(), random_u64());
    let mut buf = *b"00000000-0000-4000-8000-000000000000";
    hex_into(&mut buf[0..8], a >> 32, 8);
    hex_into(&mut buf[9..13], a >> 16, 4);
    hex_into(&mut buf[15..18], a, 3);
    hex_into(&mut buf[19..23], (b >> 48) & 0x3fff | 0x8000, 4);
    hex_into(&mut buf[24..36], b, 12);
    buf
}

/// `Root=1-{epoch seconds, 8 hex}-{24 hex}`, X-Ray's trace id format.
pub fn trace_id() -> String {
    String::from_utf8_lossy(&trace_id_bytes()).into_owned()
}

pub(crate) fn trace_id_bytes() -> [u8; 40] {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut buf = *b"Root=1-00000000-000000000000000000000000";
    hex_into(&mut buf[7..15], secs, 8);
    hex_into(&mut buf[16..32], random_u64(), 16);
    hex_into(&mut buf[32..40], random_u64(), 8);
    buf
}

/// Hop-by-hop headers: about one connection, never forwarded (RFC 9110 §7.6.1).
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `*` matches any run of characters, `?` one (ALB path and host patterns).
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn rule_matches(r: &Rule, host: &str, path: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
    r.path.as_deref().is_none_or(|p| glob(p, path))
        && r.host
            .as_deref()
            .is_none_or(|h| glob(&h.to_ascii_lowercase(), &host.to_ascii_lowercase()))
}

impl Balancer {
    /// One line in the order of ALB access logs (fields we do not have are `-`);
    /// every field the client controls is escaped ([`escape_log_field`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn access_log(
        &self,
        worker: &Worker,
        client: SocketAddr,
        target: Option<SocketAddr>,
        started: Instant,
        status: u16,
        target_status: Option<u16>,
        request: &LogRequest,
        trace: &[u8],
        request_id: &[u8],
    ) {
        if self.log.is_none() {
            return;
        }
        let mut w = worker.log.lock().unwrap_or_else(|e| e.into_inner());
        let now = pantstack_rt::clock::rfc3339_micros(SystemTime::now());
        let elapsed = started.elapsed().as_secs_f64();
        let name = &self.name;
        let target = target.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        let tstatus = target_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            w,
            "http {now} app/{name}/local {client} {target} 0.000 {elapsed:.3} 0.000 {status} {tstatus} - - \""
        );
        w.extend_from_slice(request.request());
        w.extend_from_slice(b"\" \"");
        w.extend_from_slice(request.user_agent());
        let _ = write!(w, "\" - - targetgroup/{name}/local \"");
        escape_log_field(&mut w, trace, true);
        let _ = write!(
            w,
            "\" \"-\" \"-\" 0 {now} \"forward\" \"-\" \"-\" \"{target}\" \"{tstatus}\" \"-\" \"-\" "
        );
        escape_log_field(&mut w, request_id, false);
        w.push(b'\n');
        let full = w.len() > 64 * 1024;
        drop(w);
        if full {
            self.flush_log(worker, 0);
        }
    }
}

/// Writes a client-controlled access-log field so that it cannot leave its place:
/// `"` and `\` are escaped with a backslash, control and non-ASCII bytes written as
/// `\xHH` (ALB escapes its quoted fields the same way), and in an unquoted field a
/// space too. An empty field is `-`.
pub(crate) fn escape_log_field(out: &mut Vec<u8>, field: &[u8], quoted: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if field.is_empty() {
        out.push(b'-');
        return;
    }
    for &b in field {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b' ' if !quoted => out.extend_from_slice(b"\\x20"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
    }
}

/// The client-controlled text of an access-log line, escaped once when the request
/// arrives (both paths build it here): the `request` field (`METHOD
/// http://host/path VERSION`) and the `user_agent` field, in one buffer.
#[derive(Default)]
pub(crate) struct LogRequest {
    buf: Vec<u8>,
    split: usize,
}

impl LogRequest {
    pub(crate) fn new(
        method: &[u8],
        host: &[u8],
        target: &[u8],
        version: &str,
        user_agent: &[u8],
    ) -> Self {
        let mut buf =
            Vec::with_capacity(method.len() + host.len() + target.len() + user_agent.len() + 24);
        escape_log_field(&mut buf, method, true);
        buf.extend_from_slice(b" http://");
        escape_log_field(&mut buf, host, true);
        escape_log_field(&mut buf, target, true);
        buf.push(b' ');
        buf.extend_from_slice(version.as_bytes());
        let split = buf.len();
        escape_log_field(&mut buf, user_agent, true);
        LogRequest { buf, split }
    }

    fn request(&self) -> &[u8] {
        self.buf.get(..self.split).unwrap_or(b"-")
    }

    fn user_agent(&self) -> &[u8] {
        self.buf.get(self.split..).unwrap_or(b"-")
    }
}

fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Hop-by-hop headers are never forwarded; the ones the balancer sets itself are
/// not copied either.
pub fn dropped_request_header(name: &str) -> bool {
    is_one_of(name, HOP_BY_HOP)
        || is_one_of(
            name,
            &["x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"],
        )
}

/// In a response: hop-by-hop headers but `Transfer-Encoding` (a chunked body is
/// passed on as it is), and the target's `X-Request-Id` (the balancer's wins).
pub fn dropped_response_header(name: &str) -> bool {
    (is_one_of(name, HOP_BY_HOP) && !name.eq_ignore_ascii_case("transfer-encoding"))
        || name.eq_ignore_ascii_case("x-request-id")
}

/// The origin form (`/path?query`) of a request target: absolute-form targets
/// (`http://host/path`) lose their scheme and authority.
pub fn origin_form(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') || target == b"*" {
        return target;
    }
    match target.windows(3).position(|w| w == b"://") {
        Some(p) => {
            let rest = &target[p + 3..];
            match rest.iter().position(|b| *b == b'/' || *b == b'?') {
                Some(q) if rest[q] == b'/' => &rest[q..],
                Some(_) | None => b"/",
            }
        }
        None => target,
    }
}
