//! Reading setting values from YAML nodes (manifests, stack files) and from
//! `--set key=value`, all through one path so each layer is validated the same way.

use crate::settings::{self, Kind, Layer, Setting, Source, Val};
use pantstack_manifest::read::join;
use pantstack_manifest::{Diagnostic, Fields, Node, Reader, Span, Value};

/// Reads a value of `setting` from `node`; records a diagnostic and returns `None`
/// when it is invalid.
pub fn read_value(r: &mut Reader<'_>, setting: &Setting, node: &Node, field: &str) -> Option<Val> {
    match setting.kind {
        Kind::Int { min, max } => r.int(node, field, min, max).map(Val::Int),
        Kind::IntSet(allowed) => {
            let v = r.int(node, field, i64::MIN, i64::MAX)?;
            if allowed.contains(&v) {
                Some(Val::Int(v))
            } else {
                let nearest = allowed
                    .iter()
                    .min_by_key(|a| (*a - v).abs())
                    .copied()
                    .unwrap_or(v);
                r.error(
                    "invalid-value",
                    node.span,
                    field,
                    format!("`{field}` is {v}; it must be one of {}", join_ints(allowed)),
                )
                .help = Some(format!("the nearest allowed value is {nearest}"));
                None
            }
        }
        Kind::Duration { min, max } => r.duration(node, field, min, max).map(Val::Duration),
        Kind::Choice(choices) => r.one_of(node, field, choices).map(Val::Text),
        Kind::Bool => r.boolean(node, field).map(Val::Bool),
        Kind::Text(rule) => {
            let text = r.text(node, field)?;
            match settings::check_text(rule, &text) {
                Ok(()) => Some(Val::Text(text)),
                Err(why) => {
                    r.error(
                        "invalid-value",
                        node.span,
                        field,
                        format!("`{field}` is `{text}`: it {why}"),
                    );
                    None
                }
            }
        }
    }
}

fn join_ints(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Reads a manifest section whose children are settings and further settings-only
/// sections. `extra` are structural keys the caller reads itself. Every key that is
/// neither is reported as unknown.
pub fn settings_section<'n>(
    r: &mut Reader<'_>,
    node: &'n Node,
    path: &str,
    extra: &[&str],
    foundation: bool,
    layer: &mut Layer,
) -> Option<Fields<'n>> {
    let own = settings::children(path, foundation);
    let subsections = subsections(path, foundation);
    let mut allowed: Vec<&str> = Vec::new();
    allowed.extend(own.iter().copied());
    allowed.extend(subsections.iter().copied());
    allowed.extend(extra.iter().copied());
    let fields = r.map(node, path, &allowed)?;
    for (key, _k, value) in fields.entries() {
        let field = join(path, &key);
        if extra.contains(&key.as_str()) {
            continue;
        }
        if let Some(setting) = settings::by_manifest_path(&field, foundation) {
            if let Some(val) = read_value(r, setting, value, &field) {
                layer.set(
                    setting,
                    val,
                    Source::Manifest {
                        file: r.file.to_string(),
                        span: value.span,
                    },
                );
            }
        } else if subsections.contains(&key.as_str()) {
            settings_section(r, value, &field, &[], foundation, layer);
        }
    }
    Some(fields)
}

/// Names of sections below `path` that hold settings (`http` → `healthcheck`).
fn subsections(path: &str, foundation: bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in settings::SETTINGS {
        if (s.applies == settings::Applies::Foundation) != foundation {
            continue;
        }
        let rest = if path.is_empty() {
            Some(s.manifest)
        } else {
            s.manifest
                .strip_prefix(path)
                .and_then(|r| r.strip_prefix('.'))
        };
        if let Some((first, _)) = rest.and_then(|r| r.split_once('.'))
            && !out.contains(&first)
        {
            out.push(first);
        }
    }
    out
}

/// Reads the `pantstack:` keys of a stack file into a layer. `aws:region` and
/// `pantstack:environment` are read by the caller.
pub fn stack_layer(
    r: &mut Reader<'_>,
    stack: &pantstack_manifest::pulumi::StackFile,
    foundation: bool,
    layer: &mut Layer,
) {
    let valid = settings::key_names(foundation);
    for entry in &stack.config {
        let field = format!("config.{}:{}", entry.namespace, entry.key);
        match entry.namespace.as_str() {
            "pantstack" => {
                if entry.key == "environment" {
                    continue;
                }
                match settings::by_key(&entry.key)
                    .filter(|s| (s.applies == settings::Applies::Foundation) == foundation)
                {
                    Some(setting) => {
                        if let Some(val) = read_value(r, setting, &entry.value, &field) {
                            layer.set(
                                setting,
                                val,
                                Source::Stack {
                                    file: r.file.to_string(),
                                    span: entry.value.span,
                                },
                            );
                        }
                    }
                    None => {
                        let other_layer = settings::by_key(&entry.key).is_some();
                        let help = if other_layer {
                            if foundation {
                                format!(
                                    "`{}` is a service setting: set it in modules/<service>/infrastructure/Pulumi.{}.yaml",
                                    entry.key, stack.stack
                                )
                            } else {
                                format!(
                                    "`{}` is a foundation setting: set it in stack/infra/foundation/Pulumi.{}.yaml",
                                    entry.key, stack.stack
                                )
                            }
                        } else {
                            match pantstack_manifest::diag::did_you_mean(&entry.key, &valid) {
                                Some(s) => format!("did you mean `pantstack:{s}`?"),
                                None => {
                                    "`pantstack config SERVICE` lists every setting".to_string()
                                }
                            }
                        };
                        r.error(
                            "unknown-key",
                            entry.key_span,
                            &field,
                            format!("unknown setting `pantstack:{}`", entry.key),
                        )
                        .help = Some(help);
                    }
                }
            }
            "aws" => {
                if entry.key != "region" {
                    r.warn(
                        "ignored-key",
                        entry.key_span,
                        &field,
                        format!("`aws:{}` is not used by pantstack and is ignored", entry.key),
                    )
                    .help = Some("pantstack reads `aws:region` only; credentials come from the AWS credential chain".into());
                }
            }
            ns => {
                r.warn(
                    "ignored-key",
                    entry.key_span,
                    &field,
                    format!("config namespace `{ns}` is not read by pantstack"),
                )
                .help = Some(format!(
                    "pantstack reads `pantstack:` and `aws:region`{}",
                    pantstack_manifest::diag::did_you_mean(ns, &["pantstack", "aws"])
                        .map(|s| format!("; did you mean `{s}:{}`?", entry.key))
                        .unwrap_or_default()
                ));
            }
        }
    }
}

/// Parses `--set key=value` overrides into a layer. Diagnostics name the argument.
pub fn cli_layer(overrides: &[String], foundation: bool) -> (Layer, Vec<Diagnostic>) {
    let mut layer = Layer::default();
    let mut r = Reader::new("--set");
    let valid = settings::key_names(foundation);
    for (i, arg) in overrides.iter().enumerate() {
        let field = format!("--set {arg}");
        let span = Span::new(0, 0, 1);
        let Some((key, value)) = arg.split_once('=') else {
            r.error(
                "invalid-argument",
                span,
                &field,
                format!("`--set {arg}` is not KEY=VALUE"),
            )
            .help = Some("write it as `--set minCapacity=2`".into());
            continue;
        };
        let key = key.trim().strip_prefix("pantstack:").unwrap_or(key.trim());
        match settings::by_key(key)
            .filter(|s| (s.applies == settings::Applies::Foundation) == foundation)
        {
            Some(setting) => {
                let node = Node {
                    value: Value::Str(value.to_string()),
                    span: Span::new(0, i as u32 + 1, 1),
                };
                if let Some(val) = read_value(&mut r, setting, &node, key) {
                    layer.set(setting, val, Source::Cli);
                }
            }
            None => {
                let help = pantstack_manifest::diag::did_you_mean(key, &valid)
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "`pantstack config SERVICE` lists every setting".into());
                r.error(
                    "unknown-key",
                    span,
                    &field,
                    format!("unknown setting `{key}`"),
                )
                .help = Some(help);
            }
        }
    }
    (layer, r.diags)
}
