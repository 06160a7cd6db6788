//! Reading a service manifest into the model's [`Service`]: unknown keys, names,
//! paths and values are reported as diagnostics on the reader, and what is valid is
//! kept.

use super::check::check_references;
use super::*;
use crate::names;
use crate::values::settings_section;
use pantstack_manifest::diag::did_you_mean;
use pantstack_manifest::read::join;
use pantstack_manifest::{Fields, Node, Reader, Span};

const TOP_KEYS: &[&str] = &[
    "service",
    "description",
    "image",
    "http",
    "worker",
    "queues",
    "buckets",
    "secrets",
    "variables",
    "local",
    "environments",
    "calls",
];
/// `local:` holds settings (`local.runtime`, ...) and the build command.
const LOCAL_KEYS: &[&str] = &["build"];
const HTTP_KEYS: &[&str] = &["command", "local", "rules"];
const WORKER_KEYS: &[&str] = &["queue", "command", "local", "image"];
const IMAGE_KEYS: &[&str] = &["dockerfile", "context", "build"];
const QUEUE_KEYS: &[&str] = &[
    "grants",
    "fifo",
    "content_based_deduplication",
    "visibility_timeout",
    "retention",
    "delay",
    "receive_wait",
    "max_message_size",
    "dead_letter",
];
const DLQ_KEYS: &[&str] = &["max_receive_count", "retention"];
const BUCKET_KEYS: &[&str] = &[
    "versioning",
    "noncurrent_expiry_days",
    "replication",
    "grants",
];
const SECRET_KEYS: &[&str] = &["rotation_days", "description", "grants", "from"];
/// A secret's only access level.
const SECRET_ACCESS: &[(&str, Access)] = &[("read", Access::Read)];

/// Reads a service manifest. `dir_name` is the module directory's name.
pub fn read_service(r: &mut Reader<'_>, dir_name: &str, node: &Node) -> Service {
    let file = r.file.to_string();
    let mut svc = Service {
        name: dir_name.to_string(),
        dir: format!("modules/{dir_name}"),
        manifest_file: file.clone(),
        description: None,
        image: Image::default_for(),
        http: None,
        worker: None,
        queues: Vec::new(),
        buckets: Vec::new(),
        secrets: Vec::new(),
        variables: Vec::new(),
        env_variables: Vec::new(),
        foreign: Vec::new(),
        calls: Vec::new(),
        local_build: None,
        settings: Layer::default(),
    };
    let mut layer = Layer::default();
    let Some(top) = settings_section(r, node, "", TOP_KEYS, false, &mut layer) else {
        return svc;
    };
    if let Some(n) = top.get("service")
        && let Some(name) = r.string(n, "service")
        && name != dir_name
    {
        r.error(
            "name-mismatch",
            n.span,
            "service",
            format!("`service: {name}` does not match its directory `modules/{dir_name}`"),
        )
        .help = Some(format!(
            "write `service: {dir_name}`, or rename the directory to `modules/{name}`"
        ));
    }
    if let Some(n) = top.get("description") {
        svc.description = r.text(n, "description");
    }
    if let Some(n) = top.get("image") {
        svc.image = read_image(r, n, "image").unwrap_or_else(Image::default_for);
    }
    if let Some(n) = top.get("local")
        && let Some(f) = settings_section(r, n, "local", LOCAL_KEYS, false, &mut layer)
        && let Some(b) = f.get("build")
    {
        svc.local_build = r.command(b, "local.build");
    }
    if let Some(n) = top.get("http")
        && let Some(f) = settings_section(r, n, "http", HTTP_KEYS, false, &mut layer)
    {
        svc.http = Some(read_http(r, &f));
    }
    if let Some(n) = top.get("worker")
        && let Some(f) = settings_section(r, n, "worker", WORKER_KEYS, false, &mut layer)
    {
        svc.worker = read_worker(r, &f, n.span, &file);
    }
    if svc.http.is_none() && svc.worker.is_none() {
        r.error(
            "missing-role",
            top.span,
            "",
            format!("service `{dir_name}` declares neither `http:` nor `worker:`"),
        )
        .help = Some("add `http:` with a `port` for a web service, `worker:` with a `queue` for a queue consumer, or both".into());
    }
    if let Some(n) = top.get("queues") {
        svc.queues = read_named(r, n, "queues", (QUEUE_KEYS, "queue", 40), read_queue);
    }
    if let Some(n) = top.get("buckets") {
        svc.buckets = read_named(r, n, "buckets", (BUCKET_KEYS, "bucket", 24), read_bucket);
    }
    if let Some(n) = top.get("secrets") {
        svc.secrets = read_secrets(r, n);
    }
    if let Some(n) = top.get("variables") {
        svc.variables = read_variables(r, n, "variables");
    }
    if let Some(n) = top.get("calls") {
        match &n.value {
            pantstack_manifest::Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(v) = r.string(item, &format!("calls[{i}]")) {
                        svc.calls.push(Located {
                            value: v,
                            file: file.clone(),
                            span: item.span,
                        });
                    }
                }
            }
            _ => {
                r.error(
                    "invalid-value",
                    n.span,
                    "calls",
                    "`calls` is a list of services, e.g. `calls: [billing]`",
                );
            }
        }
    }
    if let Some(n) = top.get("environments")
        && let Some(envs) = r.named_map(n, "environments")
    {
        for (env, key, value) in envs.entries() {
            let path = join("environments", &env);
            let Some(f) = r.map(value, &path, &["variables"]) else {
                continue;
            };
            let variables = f
                .get("variables")
                .map(|v| read_variables(r, v, &join(&path, "variables")))
                .unwrap_or_default();
            svc.env_variables.push(EnvVariables {
                env,
                span: key.span,
                variables,
            });
        }
    }
    svc.settings = layer;
    svc.foreign = check_references(r, &svc, &top);
    svc
}

fn read_image(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<Image> {
    let f = r.map(node, path, IMAGE_KEYS)?;
    let mut img = Image::default_for();
    if let Some(n) = f.get("dockerfile") {
        img.dockerfile = checked_rel_path(r, n, &join(path, "dockerfile"))?;
    }
    if let Some(n) = f.get("context") {
        img.context = checked_rel_path(r, n, &join(path, "context"))?;
    }
    if let Some(n) = f.get("build") {
        img.build = r.command(n, &join(path, "build"));
    }
    Some(img)
}

/// A path relative to the module directory that stays inside the monorepo.
fn checked_rel_path(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<String> {
    let p = r.string(node, field)?;
    if p.starts_with('/') || p.split('/').filter(|c| *c == "..").count() > 2 {
        r.error(
            "invalid-value",
            node.span,
            field,
            format!("`{field}` is `{p}`; it must be a path relative to the module directory inside the monorepo"),
        );
        return None;
    }
    Some(p)
}

fn read_http(r: &mut Reader<'_>, f: &Fields<'_>) -> Http {
    let mut http = Http {
        command: None,
        local: None,
        rules: Vec::new(),
    };
    if let Some(n) = f.get("command") {
        http.command = r.command(n, "http.command");
    }
    if let Some(n) = f.get("local") {
        http.local = r.command(n, "http.local");
    }
    if let Some(n) = f.get("rules") {
        for (i, item) in r
            .seq(n, "http.rules")
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let path = format!("http.rules[{i}]");
            let Some(rf) = r.map(item, &path, &["path", "host"]) else {
                continue;
            };
            let mut rule = ListenerRule {
                path: None,
                host: None,
            };
            if let Some(p) = rf.get("path") {
                rule.path = r.string(p, &join(&path, "path"));
                if let Some(pv) = &rule.path
                    && (!pv.starts_with('/') || pv.len() > 128)
                {
                    r.error(
                            "invalid-value",
                            p.span,
                            &join(&path, "path"),
                            format!("listener rule path `{pv}` must start with `/` and be at most 128 characters (ALB limit)"),
                        )
                        .help = Some("e.g. `/api/*`".into());
                }
            }
            if let Some(h) = rf.get("host") {
                rule.host = r.string(h, &join(&path, "host"));
                if let Some(hv) = &rule.host {
                    let ok = !hv.is_empty()
                        && hv.len() <= 128
                        && hv.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?')
                        });
                    if !ok {
                        r.error(
                            "invalid-value",
                            h.span,
                            &join(&path, "host"),
                            format!("listener rule host `{hv}` must be a host name (letters, digits, `-`, `.`, wildcards `*` `?`)"),
                        );
                    }
                }
            }
            if rule.path.is_none() && rule.host.is_none() {
                r.error(
                    "missing-key",
                    item.span,
                    &path,
                    "a listener rule needs `path`, `host`, or both",
                );
            }
            http.rules.push(rule);
        }
    }
    http
}

fn read_worker(r: &mut Reader<'_>, f: &Fields<'_>, span: Span, file: &str) -> Option<Worker> {
    let queue = match f.get("queue") {
        Some(n) => Located {
            value: r.string(n, "worker.queue")?,
            file: file.to_string(),
            span: n.span,
        },
        None => {
            r.error(
                "missing-key",
                span,
                "worker.queue",
                "`worker.queue` is required: the queue this worker consumes",
            )
            .help = Some("add `queue: jobs` and declare it under `queues:`".into());
            return None;
        }
    };
    Some(Worker {
        queue,
        command: f
            .get("command")
            .and_then(|n| r.command(n, "worker.command")),
        local: f.get("local").and_then(|n| r.command(n, "worker.local")),
        image: f
            .get("image")
            .and_then(|n| read_image(r, n, "worker.image")),
    })
}

/// Reads `queues:` / `buckets:`: `(allowed keys, what one is called, longest name)`.
fn read_named<T>(
    r: &mut Reader<'_>,
    node: &Node,
    path: &str,
    (keys, what, max): (&[&str], &str, usize),
    read: fn(&mut Reader<'_>, &str, &Fields<'_>, &str) -> T,
) -> Vec<T> {
    let mut out = Vec::new();
    let Some(entries) = r.named_map(node, path) else {
        return out;
    };
    for (name, key, value) in entries.entries() {
        let field = join(path, &name);
        if let Err(why) = names::check_label(&name, what, max) {
            r.error("invalid-name", key.span, &field, why).help =
                Some(format!("try `{}`", names::suggest_label(&name, max)));
        }
        if let Some(f) = r.map(value, &field, keys) {
            out.push(read(r, &name, &f, &field));
        }
    }
    out
}

fn read_queue(r: &mut Reader<'_>, name: &str, f: &Fields<'_>, path: &str) -> Queue {
    let dur = |r: &mut Reader<'_>, key: &str, min: u64, max: u64, default: u64| {
        f.get(key)
            .and_then(|n| r.duration(n, &join(path, key), min, max))
            .unwrap_or(default)
    };
    let fifo = f
        .get("fifo")
        .and_then(|n| r.boolean(n, &join(path, "fifo")))
        .unwrap_or(false);
    let cbd = f
        .get("content_based_deduplication")
        .and_then(|n| r.boolean(n, &join(path, "content_based_deduplication")));
    if cbd == Some(true)
        && !fifo
        && let Some(span) = f.key_span("content_based_deduplication")
    {
        r.error(
            "invalid-value",
            span,
            &join(path, "content_based_deduplication"),
            "content-based deduplication needs a FIFO queue",
        )
        .help = Some("add `fifo: true`, or remove `content_based_deduplication`".into());
    }
    let dead_letter = f.get("dead_letter").and_then(|n| {
        let dpath = join(path, "dead_letter");
        let df = r.map(n, &dpath, DLQ_KEYS)?;
        Some(DeadLetter {
            max_receive_count: df
                .get("max_receive_count")
                .and_then(|m| r.int(m, &join(&dpath, "max_receive_count"), 1, 1000))
                .unwrap_or(5),
            retention_secs: df
                .get("retention")
                .and_then(|m| r.duration(m, &join(&dpath, "retention"), 60, 1_209_600))
                .unwrap_or(1_209_600),
        })
    });
    Queue {
        name: name.to_string(),
        grants: read_grants(r, f, path, Access::QUEUE),
        fifo,
        content_based_deduplication: cbd.unwrap_or(false),
        visibility_timeout_secs: dur(r, "visibility_timeout", 0, 43_200, 30),
        retention_secs: dur(r, "retention", 60, 1_209_600, 345_600),
        delay_secs: dur(r, "delay", 0, 900, 0),
        receive_wait_secs: dur(r, "receive_wait", 0, 20, 20),
        max_message_bytes: f
            .get("max_message_size")
            .and_then(|n| r.int(n, &join(path, "max_message_size"), 1024, 1_048_576))
            .unwrap_or(1_048_576),
        // Dead-letter queues are on by default: a poison message must not loop forever.
        dead_letter: if f.get("dead_letter").is_some() {
            dead_letter
        } else {
            Some(DeadLetter {
                max_receive_count: 5,
                retention_secs: 1_209_600,
            })
        },
    }
}

/// `grants: { SERVICE: ACCESS, ... }` of a queue or bucket.
fn read_grants(
    r: &mut Reader<'_>,
    f: &Fields<'_>,
    path: &str,
    levels: &[(&str, Access)],
) -> Vec<Grant> {
    let mut out = Vec::new();
    let Some(node) = f.get("grants") else {
        return out;
    };
    let gpath = join(path, "grants");
    let Some(entries) = r.named_map(node, &gpath) else {
        return out;
    };
    let names: Vec<&str> = levels.iter().map(|(n, _)| *n).collect();
    for (service, key, value) in entries.entries() {
        let field = join(&gpath, &service);
        let Some(level) = r.string(value, &field) else {
            continue;
        };
        match levels.iter().find(|(n, _)| *n == level) {
            Some((_, access)) => out.push(Grant {
                to: Located {
                    value: service,
                    file: r.file.to_string(),
                    span: key.span,
                },
                access: *access,
            }),
            None => {
                r.error(
                    "invalid-value",
                    value.span,
                    &field,
                    format!("unknown access `{level}`"),
                )
                .help = Some(match did_you_mean(&level, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("one of: {}", names.join(", ")),
                });
            }
        }
    }
    out
}

fn read_bucket(r: &mut Reader<'_>, name: &str, f: &Fields<'_>, path: &str) -> Bucket {
    let replication_region = f.get("replication").and_then(|n| {
        let rpath = join(path, "replication");
        let rf = r.map(n, &rpath, &["region"])?;
        match rf.get("region") {
            Some(reg) => {
                let region = r.string(reg, &join(&rpath, "region"))?;
                if let Err(why) = crate::foundation::check_region(&region) {
                    r.error("invalid-value", reg.span, &join(&rpath, "region"), why);
                    return None;
                }
                Some(region)
            }
            None => {
                r.error(
                    "missing-key",
                    n.span,
                    &join(&rpath, "region"),
                    "replication needs a destination `region`",
                );
                None
            }
        }
    });
    let versioning = f
        .get("versioning")
        .and_then(|n| r.boolean(n, &join(path, "versioning")))
        .unwrap_or(true);
    if replication_region.is_some()
        && !versioning
        && let Some(span) = f.key_span("versioning")
    {
        r.error(
            "invalid-value",
            span,
            &join(path, "versioning"),
            "cross-region replication needs versioning",
        )
        .help = Some("set `versioning: true` or remove `replication`".into());
    }
    Bucket {
        name: name.to_string(),
        grants: read_grants(r, f, path, Access::BUCKET),
        versioning,
        noncurrent_expiry_days: f
            .get("noncurrent_expiry_days")
            .and_then(|n| r.int(n, &join(path, "noncurrent_expiry_days"), 1, 3650))
            .or(Some(30)),
        replication_region,
    }
}

fn read_secrets(r: &mut Reader<'_>, node: &Node) -> Vec<Secret> {
    let mut out = Vec::new();
    let Some(entries) = r.named_map(node, "secrets") else {
        return out;
    };
    for (name, key, value) in entries.entries() {
        let field = join("secrets", &name);
        if let Err(why) = names::check_env_var(&name) {
            r.error("invalid-name", key.span, &field, why);
        } else if names::is_reserved_var(&name) {
            r.error(
                "reserved-name",
                key.span,
                &field,
                format!("`{name}` is set by pantstack for every task"),
            )
            .help = Some("choose another name".into());
        }
        let Some(f) = r.map(value, &field, SECRET_KEYS) else {
            continue;
        };
        let from = f.get("from").and_then(|n| {
            let v = r.string(n, &join(&field, "from"))?;
            Some(Located {
                value: v,
                file: r.file.to_string(),
                span: n.span,
            })
        });
        if from.is_some() {
            for own in ["rotation_days", "description", "grants"] {
                if let Some(span) = f.key_span(own) {
                    r.error(
                        "invalid-key",
                        span,
                        &join(&field, own),
                        format!("`{own}` belongs to the secret's owner, not to a secret taken `from` another service"),
                    )
                    .help = Some(format!("set it in the owner's manifest, or remove `from` to make `{name}` this service's own"));
                }
            }
        }
        out.push(Secret {
            grants: read_grants(r, &f, &field, SECRET_ACCESS),
            from,
            name: name.clone(),
            rotation_days: f
                .get("rotation_days")
                .and_then(|n| r.int(n, &join(&field, "rotation_days"), 1, 3650)),
            description: f
                .get("description")
                .and_then(|n| r.text(n, &join(&field, "description"))),
        });
    }
    out
}

fn read_variables(r: &mut Reader<'_>, node: &Node, path: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(entries) = r.named_map(node, path) else {
        return out;
    };
    for (name, key, value) in entries.entries() {
        let field = join(path, &name);
        if let Err(why) = names::check_env_var(&name) {
            r.error("invalid-name", key.span, &field, why);
            continue;
        }
        if names::is_reserved_var(&name) {
            r.error(
                "reserved-name",
                key.span,
                &field,
                format!("`{name}` is set by pantstack for every task"),
            )
            .help = Some("choose another name".into());
            continue;
        }
        if let Some(v) = r.text(value, &field) {
            out.push((name, v));
        }
    }
    out
}
