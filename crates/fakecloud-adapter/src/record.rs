//! Opt-in recording of the AWS API calls that pass through the adapter: for each
//! request, who made it (the principal label the recording's owner set, and the
//! access key of its signature), the service (the signature's credential scope),
//! the operation and its parameters. Tests use it to evaluate every call the
//! aws target makes against the IAM policies of the CI role that would make it
//! (`crate::authz` maps a call to what IAM authorizes). Off unless asked for
//! (`serve_recording`, or the binary's `--record FILE`); never records bodies of
//! templates or parameter values (a `Value` or `TemplateBody` is recorded as its
//! length).

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;

/// One recorded request.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The label the recorder had when the request came (`Recorder::act_as`).
    pub principal: String,
    /// The access key id of the request's signature.
    pub key: String,
    /// The signing name of its service (`cloudformation`, `s3`, `ecs`, ...).
    pub service: String,
    pub region: String,
    /// The operation (`CreateChangeSet`, `DescribeServices`); for S3's REST API
    /// the method (`GET`, `PUT`, ...), its path and query in `params`.
    pub operation: String,
    /// The request's parameters: the form (query protocol), the JSON body (JSON
    /// protocols), or for S3 `{path, query, headers, keys}`.
    pub params: Value,
}

impl Call {
    pub fn to_json(&self) -> Value {
        json!({
            "principal": self.principal, "key": self.key, "service": self.service,
            "region": self.region, "operation": self.operation, "params": self.params,
        })
    }

    pub fn from_json(v: &Value) -> Option<Call> {
        let s = |k: &str| v[k].as_str().map(str::to_string);
        Some(Call {
            principal: s("principal")?,
            key: s("key")?,
            service: s("service")?,
            region: s("region")?,
            operation: s("operation")?,
            params: v["params"].clone(),
        })
    }

    /// A short description for messages: `cloudformation:CreateChangeSet
    /// {"StackName":"x",...}`.
    pub fn describe(&self) -> String {
        let mut p = self.params.to_string();
        if p.len() > 400 {
            let mut end = 400;
            while !p.is_char_boundary(end) {
                end -= 1;
            }
            p.truncate(end);
            p.push('…');
        }
        format!("{}:{} {p}", self.service, self.operation)
    }
}

/// Records the calls of one adapter: in memory, and as JSON lines in a file
/// when one is named.
pub struct Recorder {
    state: Mutex<State>,
}

struct State {
    principal: String,
    calls: Vec<Call>,
    file: Option<std::fs::File>,
}

impl Recorder {
    /// A recorder; with `file`, each call is appended to it as a JSON line too.
    pub fn new(file: Option<&std::path::Path>) -> std::io::Result<Recorder> {
        let file = match file {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(Recorder {
            state: Mutex::new(State {
                principal: String::new(),
                calls: Vec::new(),
                file,
            }),
        })
    }

    /// Labels the calls from now on as made by `principal` (until the next
    /// `act_as`).
    pub fn act_as(&self, principal: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.principal = principal.to_string();
        }
    }

    /// Every call recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }

    /// Records the request `head` (request line and headers) and `body`.
    pub fn record(&self, head: &str, body: &[u8]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let Some(mut call) = parse(head, body) else {
            return;
        };
        call.principal = s.principal.clone();
        if let Some(f) = s.file.as_mut() {
            let _ = writeln!(f, "{}", call.to_json());
        }
        s.calls.push(call);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Form fields (`a=b&c=d`, percent-decoded).
pub fn form(text: &str) -> Map<String, Value> {
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (crate::decode(k), Value::String(crate::decode(v)))
        })
        .collect()
}

/// Replaces the values never recorded (templates, parameter values) by their
/// length.
fn redact(map: &mut Map<String, Value>) {
    for k in ["TemplateBody", "Value", "Policy", "value"] {
        if let Some(v) = map.get_mut(k)
            && let Some(s) = v.as_str()
        {
            *v = Value::String(format!("<{} bytes>", s.len()));
        }
    }
}

/// The call a request makes, or None when it is no signed AWS API request.
pub fn parse(head: &str, body: &[u8]) -> Option<Call> {
    let mut line = head.lines().next()?.split_whitespace();
    let method = line.next()?.to_string();
    let target = line.next()?.to_string();
    // AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...
    let auth = header(head, "authorization")?;
    let cred = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    let scope: Vec<&str> = cred.split('/').collect();
    let [key, _, region, service, ..] = scope.as_slice() else {
        return None;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut call = Call {
        principal: String::new(),
        key: key.to_string(),
        service: service.to_string(),
        region: region.to_string(),
        operation: String::new(),
        params: Value::Null,
    };
    let text = String::from_utf8_lossy(body);
    if let Some(t) = header(head, "x-amz-target") {
        call.operation = t.rsplit('.').next().unwrap_or(t).to_string();
        let mut v: Value = serde_json::from_str(&text).unwrap_or(json!({}));
        if let Some(m) = v.as_object_mut() {
            redact(m);
        }
        call.params = v;
    } else if *service != "s3"
        && header(head, "content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        let mut m = form(&text);
        redact(&mut m);
        call.operation = m
            .get("Action")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        call.params = Value::Object(m);
    } else if *service != "s3" && method == "GET" && form(query).contains_key("Action") {
        let m = form(query);
        call.operation = m
            .get("Action")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        call.params = Value::Object(m);
    } else {
        // REST (S3): the method, path and query; the copy source; the keys of a
        // DeleteObjects.
        call.operation = method;
        let mut headers = Map::new();
        for h in ["x-amz-copy-source", "host"] {
            if let Some(v) = header(head, h) {
                headers.insert(h.into(), Value::String(v.to_string()));
            }
        }
        let mut keys = Vec::new();
        if form(query).contains_key("delete") {
            for obj in text.split("<Object>").skip(1) {
                let tag = |t: &str| {
                    let open = format!("<{t}>");
                    let s = obj.find(&open)? + open.len();
                    let e = s + obj[s..].find(&format!("</{t}>"))?;
                    Some(crate::xml_unescape(&obj[s..e]))
                };
                keys.push(json!({ "key": tag("Key"), "version": tag("VersionId") }));
            }
        }
        call.params = json!({
            "path": crate::decode(path), "query": Value::Object(form(query)),
            "headers": headers, "keys": keys,
        });
    }
    Some(call)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=ci-key/20260101/us-east-1/SERVICE/aws4_request, SignedHeaders=host, Signature=00";

    fn head(first: &str, service: &str, extra: &str) -> String {
        format!(
            "{first}\r\nHost: 127.0.0.1\r\n{}\r\n{extra}\r\n",
            AUTH.replace("SERVICE", service)
        )
    }

    #[test]
    fn each_protocol_is_recorded_as_service_operation_and_parameters() {
        let r = Recorder::new(None).unwrap();
        r.act_as("ci:test");
        r.record(
            &head(
                "POST / HTTP/1.1",
                "cloudformation",
                "Content-Type: application/x-www-form-urlencoded",
            ),
            b"Action=CreateChangeSet&StackName=shop-test-api&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fd&TemplateBody=%7B%7D",
        );
        r.act_as("admin");
        r.record(
            &head(
                "POST / HTTP/1.1",
                "ssm",
                "X-Amz-Target: AmazonSSM.PutParameter\r\nContent-Type: application/x-amz-json-1.1",
            ),
            br#"{"Name":"/a/b","Value":"secret","Type":"SecureString","KeyId":"alias/a"}"#,
        );
        r.record(
            &head("POST /b?delete HTTP/1.1", "s3", "Content-Type: application/xml"),
            b"<Delete><Object><Key>k&amp;1</Key><VersionId>v1</VersionId></Object><Object><Key>k2</Key></Object></Delete>",
        );
        // Unsigned (the adapter's own calls, a health check): not an API call.
        r.record("GET /_fakecloud/health HTTP/1.1\r\nHost: x\r\n", b"");
        let c = r.calls();
        assert_eq!(c.len(), 3);
        assert_eq!(
            (
                c[0].principal.as_str(),
                c[0].service.as_str(),
                c[0].operation.as_str()
            ),
            ("ci:test", "cloudformation", "CreateChangeSet")
        );
        assert_eq!(c[0].params["RoleArn"], "arn:aws:iam::1:role/d");
        assert_eq!(c[0].params["TemplateBody"], "<2 bytes>");
        assert_eq!(c[0].key, "ci-key");
        assert_eq!(
            (c[1].principal.as_str(), c[1].operation.as_str()),
            ("admin", "PutParameter")
        );
        assert_eq!(
            c[1].params["Value"], "<6 bytes>",
            "values are never recorded"
        );
        assert!(!c[1].to_json().to_string().contains("secret\""));
        assert_eq!(c[2].operation, "POST");
        assert_eq!(c[2].params["path"], "/b");
        assert_eq!(c[2].params["keys"][0]["key"], "k&1");
        assert_eq!(c[2].params["keys"][0]["version"], "v1");
        assert!(c[2].params["keys"][1]["version"].is_null());
        assert_eq!(Call::from_json(&c[2].to_json()).as_ref(), Some(&c[2]));
    }
}
