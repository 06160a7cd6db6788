//! Reading a YAML tree against a schema while collecting *every* problem.
//!
//! A serde deserializer stops at the first error; users fixing a manifest want them
//! all at once. `Reader` checks types, ranges and unknown keys field by field and
//! records a [`Diagnostic`] for each problem, returning `None` for that field only, so
//! the rest of the file is still checked.

use crate::diag::{Diagnostic, Span, did_you_mean};
use crate::yaml::{Node, Value};

/// Collects diagnostics for one file.
pub struct Reader<'f> {
    pub file: &'f str,
    pub diags: Vec<Diagnostic>,
}

/// The entries of a mapping whose keys were checked against the allowed list.
#[derive(Clone, Copy)]
pub struct Fields<'n> {
    entries: &'n [(Node, Node)],
    pub span: Span,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }

    /// The span of a key itself (for messages about the key, not its value).
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(k, _)| k.span)
    }

    /// All entries, as (key text, key node, value node).
    pub fn entries(&self) -> impl Iterator<Item = (String, &'n Node, &'n Node)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.scalar_text().unwrap_or_default(), k, v))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Joins a dotted field path.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Parses a duration: `90`, `90s`, `5m`, `1h`, `7d` (whole seconds).
pub fn parse_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 's') => (&t[..i], 1),
        (i, 'm') => (&t[..i], 60),
        (i, 'h') => (&t[..i], 3600),
        (i, 'd') => (&t[..i], 86_400),
        _ => (t, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Formats seconds the way users write them (`30s`, `5m`, `4d`).
pub fn format_duration(secs: u64) -> String {
    if secs != 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

impl<'f> Reader<'f> {
    pub fn new(file: &'f str) -> Self {
        Reader {
            file,
            diags: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Span,
        field: &str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::error(code, self.file, span, field, msg))
    }

    pub fn warn(
        &mut self,
        code: &'static str,
        span: Span,
        field: &str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::warning(code, self.file, span, field, msg))
    }

    /// Records a diagnostic and returns it for adding help.
    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        let found = node.type_name();
        let shown = node
            .scalar_text()
            .map(|t| format!(" `{t}`"))
            .unwrap_or_default();
        self.error(
            "wrong-type",
            node.span,
            path,
            format!("`{path}` must be {expected}, found {found}{shown}"),
        );
    }

    /// Reads a mapping and reports every key not in `allowed` (with "did you mean").
    /// A null value (`http:` with nothing after it) reads as an empty mapping.
    pub fn map<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let entries: &'n [(Node, Node)] = match &node.value {
            Value::Map(m) => m,
            Value::Null => &[],
            _ => {
                self.wrong_type(
                    node,
                    if path.is_empty() { "(top level)" } else { path },
                    "a mapping",
                );
                return None;
            }
        };
        for (k, _) in entries {
            let name = k.scalar_text().unwrap_or_default();
            if !allowed.contains(&name.as_str()) {
                let field = join(path, &name);
                let where_ = if path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{path}`")
                };
                let help = match did_you_mean(&name, allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("valid keys here: {}", allowed.join(", ")),
                };
                self.error(
                    "unknown-key",
                    k.span,
                    &field,
                    format!("unknown key `{name}` {where_}"),
                )
                .help = Some(help);
            }
        }
        Some(Fields {
            entries,
            span: node.span,
        })
    }

    /// Reads a mapping whose keys are user-chosen names (queues, buckets, ...).
    pub fn named_map<'n>(&mut self, node: &'n Node, path: &str) -> Option<Fields<'n>> {
        match &node.value {
            Value::Map(m) => Some(Fields {
                entries: m,
                span: node.span,
            }),
            Value::Null => Some(Fields {
                entries: &[],
                span: node.span,
            }),
            _ => {
                self.wrong_type(node, path, "a mapping of names to settings");
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// A string; numbers and booleans are accepted as their text (for `PORT: 8080`).
    pub fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => node.scalar_text(),
            _ => {
                self.wrong_type(node, path, "a string, number or boolean");
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s == "true" || s == "false" => Some(s == "true"),
            _ => {
                self.wrong_type(node, path, "`true` or `false`");
                None
            }
        }
    }

    /// An integer within `min..=max`; a quoted integer is accepted (Pulumi config
    /// values are strings).
    pub fn int(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let v = match &node.value {
            Value::Int(i) => *i,
            Value::Str(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse::<i64>().ok()?,
            _ => {
                self.wrong_type(node, path, "an integer");
                return None;
            }
        };
        if v < min || v > max {
            self.error(
                "out-of-range",
                node.span,
                path,
                format!("`{path}` is {v}; it must be between {min} and {max}"),
            );
            return None;
        }
        Some(v)
    }

    /// A duration in whole seconds within `min..=max`.
    pub fn duration(&mut self, node: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
        let secs = match &node.value {
            Value::Int(i) if *i >= 0 => Some(*i as u64),
            Value::Str(s) => parse_duration(s),
            _ => None,
        };
        let Some(secs) = secs else {
            self.wrong_type(node, path, "a duration such as `30s`, `5m`, `1h` or `7d`");
            return None;
        };
        if secs < min || secs > max {
            self.error(
                "out-of-range",
                node.span,
                path,
                format!(
                    "`{path}` is {}; it must be between {} and {}",
                    format_duration(secs),
                    format_duration(min),
                    format_duration(max)
                ),
            );
            return None;
        }
        Some(secs)
    }

    /// One of a fixed set of words.
    pub fn one_of(&mut self, node: &Node, path: &str, choices: &[&str]) -> Option<String> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(_) | Value::Bool(_) => node.scalar_text().unwrap_or_default(),
            _ => {
                self.wrong_type(node, path, &format!("one of {}", choices.join(", ")));
                return None;
            }
        };
        if choices.contains(&text.as_str()) {
            return Some(text);
        }
        let help = match did_you_mean(&text, choices) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("valid values: {}", choices.join(", ")),
        };
        self.error(
            "invalid-value",
            node.span,
            path,
            format!(
                "`{path}` is `{text}`; it must be one of {}",
                choices.join(", ")
            ),
        )
        .help = Some(help);
        None
    }

    /// A command: a list of words, or one string split on whitespace (with `'`/`"`
    /// quoting).
    pub fn command(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        match &node.value {
            Value::Str(s) => match split_words(s) {
                Some(words) if !words.is_empty() => Some(words),
                Some(_) => {
                    self.error(
                        "invalid-value",
                        node.span,
                        path,
                        format!("`{path}` is empty"),
                    );
                    None
                }
                None => {
                    self.error(
                        "invalid-value",
                        node.span,
                        path,
                        format!("`{path}` has an unclosed quote"),
                    );
                    None
                }
            },
            Value::Seq(items) if !items.is_empty() => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    out.push(self.text(item, &format!("{path}[{i}]"))?);
                }
                Some(out)
            }
            _ => {
                self.wrong_type(
                    node,
                    path,
                    "a command (a string or a non-empty list of strings)",
                );
                None
            }
        }
    }

    pub fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        match &node.value {
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            Value::Str(s) => Some(vec![s.clone()]),
            _ => {
                self.wrong_type(node, path, "a list of strings");
                None
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(node, path, "a list");
                None
            }
        }
    }
}

/// Splits a command line into words: whitespace separates, `'…'` and `"…"` quote.
/// `None` on an unclosed quote.
pub fn split_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(format_duration(300), "5m");
        assert_eq!(format_duration(90), "90s");
    }

    #[test]
    fn unknown_keys_and_types_are_all_reported() {
        let node = parse(
            "f.yaml",
            "prot: 80\nport: x\nhealth: 1\n",
            Limits::default(),
        )
        .unwrap();
        let mut r = Reader::new("f.yaml");
        let f = r.map(&node, "http", &["port", "healthcheck"]).unwrap();
        let _ = r.int(f.get("port").unwrap(), "http.port", 1, 65535);
        let codes: Vec<_> = r.diags.iter().map(|d| (d.code, d.span.line)).collect();
        assert_eq!(
            codes,
            vec![("unknown-key", 1), ("unknown-key", 3), ("wrong-type", 2)]
        );
        assert_eq!(r.diags[0].help.as_deref(), Some("did you mean `port`?"));
    }

    #[test]
    fn split_words_handles_quotes() {
        assert_eq!(
            split_words("cargo run -- 'a b' \"c\"").unwrap(),
            vec!["cargo", "run", "--", "a b", "c"]
        );
        assert_eq!(split_words("a 'b"), None);
    }
}
