//! YAML → a tree of nodes that remember where they came from.
//!
//! The one place that knows which YAML crate we use (`saphyr-parser`, an event
//! parser with spans). We build the tree ourselves so that we can enforce budgets
//! against hostile input (file size, nesting depth, node count *after* alias
//! expansion: a "billion laughs" document is refused, not expanded) and resolve plain
//! scalars with the YAML 1.2 core schema (`yes` is a string, not a boolean).

use crate::diag::{Diagnostic, Span};
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

/// Limits that keep a hostile or accidental input from exhausting memory or time.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes in the tree, counting every node an alias copies.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 512 * 1024,
            max_depth: 48,
            max_nodes: 50_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are scalars and unique.
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

impl Node {
    /// The YAML type name users see in "expected X, found Y".
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text (for keys and messages); `None` for collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some("null".into()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks up a key in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }
}

/// Parses one YAML document. On failure returns the single diagnostic that stopped
/// the parse (a syntax error or an exceeded budget), pointing into `file`.
pub fn parse(file: &str, text: &str, limits: Limits) -> Result<Node, Diagnostic> {
    if text.len() > limits.max_bytes {
        return Err(Diagnostic::error(
            "file-too-large",
            file,
            Span::default(),
            "",
            format!(
                "file is {} bytes; manifests are limited to {} bytes",
                text.len(),
                limits.max_bytes
            ),
        )
        .with_help("split the file, or remove generated content from it"));
    }
    let mut builder = Builder {
        file,
        limits,
        nodes: 0,
        anchors: HashMap::new(),
        stack: Vec::new(),
        docs: 0,
        root: None,
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            Diagnostic::error(
                "yaml-syntax",
                file,
                Span::new(m.line() as u32, m.col() as u32 + 1, 1),
                "",
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        let start = span.start;
        let len = if span.end.line() == start.line() {
            span.end.index().saturating_sub(start.index())
        } else {
            1
        };
        let sp = Span::new(start.line() as u32, start.col() as u32 + 1, len as u32);
        builder.event(event, sp)?;
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        span: Span::new(1, 1, 1),
    }))
}

enum Frame {
    Seq {
        anchor: usize,
        span: Span,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        span: Span,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Entries from `<<` merge keys; added at the end where not set explicitly.
        merged: Vec<(Node, Node)>,
    },
}

struct Builder<'a> {
    file: &'a str,
    limits: Limits,
    nodes: usize,
    anchors: HashMap<usize, Node>,
    stack: Vec<Frame>,
    docs: usize,
    root: Option<Node>,
}

impl Builder<'_> {
    fn err(&self, code: &'static str, span: Span, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, self.file, span, "", msg)
    }

    fn add_nodes(&mut self, n: usize, span: Span) -> Result<(), Diagnostic> {
        self.nodes += n;
        if self.nodes > self.limits.max_nodes {
            return Err(self
                .err(
                    "yaml-too-large",
                    span,
                    format!(
                        "document expands to more than {} nodes (aliases included)",
                        self.limits.max_nodes
                    ),
                )
                .with_help("this looks like an alias bomb; write the values out instead"));
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
            Event::DocumentStart(_) => {
                self.docs += 1;
                if self.docs > 1 {
                    return Err(self
                        .err(
                            "yaml-multiple-documents",
                            span,
                            "a manifest holds exactly one YAML document",
                        )
                        .with_help("remove the `---` separator and merge the documents"));
                }
                Ok(())
            }
            Event::Alias(id) => {
                let node =
                    self.anchors.get(&id).cloned().ok_or_else(|| {
                        self.err("yaml-syntax", span, "alias to an unknown anchor")
                    })?;
                self.add_nodes(node.count(), span)?;
                self.push(Node { span, ..node })
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.add_nodes(1, span)?;
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !forced_str {
                    resolve_plain(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                let node = Node { value, span };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node)
            }
            Event::SequenceStart(anchor, _) => {
                self.add_nodes(1, span)?;
                self.open(
                    Frame::Seq {
                        anchor,
                        span,
                        items: Vec::new(),
                    },
                    span,
                )
            }
            Event::MappingStart(anchor, _) => {
                self.add_nodes(1, span)?;
                self.open(
                    Frame::Map {
                        anchor,
                        span,
                        entries: Vec::new(),
                        key: None,
                        merged: Vec::new(),
                    },
                    span,
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self
                    .stack
                    .pop()
                    .ok_or_else(|| self.err("yaml-syntax", span, "unbalanced collection end"))?;
                let (anchor, node) = match frame {
                    Frame::Seq {
                        anchor,
                        span,
                        items,
                    } => (
                        anchor,
                        Node {
                            value: Value::Seq(items),
                            span,
                        },
                    ),
                    Frame::Map {
                        anchor,
                        span,
                        mut entries,
                        merged,
                        ..
                    } => {
                        for (k, v) in merged {
                            if !entries.iter().any(|(p, _)| p.value == k.value) {
                                entries.push((k, v));
                            }
                        }
                        (
                            anchor,
                            Node {
                                value: Value::Map(entries),
                                span,
                            },
                        )
                    }
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node)
            }
        }
    }

    fn open(&mut self, frame: Frame, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.err(
                "yaml-too-deep",
                span,
                format!("nesting deeper than {} levels", self.limits.max_depth),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), Diagnostic> {
        let file = self.file;
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                key,
                merged,
                ..
            }) => match key.take() {
                None => {
                    if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                        return Err(Diagnostic::error(
                            "yaml-complex-key",
                            file,
                            node.span,
                            "",
                            "mapping keys must be plain scalars",
                        ));
                    }
                    *key = Some(node);
                    Ok(())
                }
                Some(k) => {
                    if is_merge_key(&k) {
                        return merge_into(file, merged, node);
                    }
                    if let Some((prev, _)) = entries.iter().find(|(p, _)| p.value == k.value) {
                        let name = k.scalar_text().unwrap_or_default();
                        return Err(Diagnostic::error(
                            "duplicate-key",
                            file,
                            k.span,
                            &name,
                            format!(
                                "key `{name}` appears twice in this mapping (first at line {})",
                                prev.span.line
                            ),
                        )
                        .with_help("remove one of them; YAML keys must be unique"));
                    }
                    entries.push((k, node));
                    Ok(())
                }
            },
        }
    }
}

fn is_merge_key(k: &Node) -> bool {
    matches!(&k.value, Value::Str(s) if s == "<<")
}

/// `<<: *base` (or a list of aliases): copies entries the mapping does not set itself.
fn merge_into(file: &str, entries: &mut Vec<(Node, Node)>, node: Node) -> Result<(), Diagnostic> {
    let sources = match node.value {
        Value::Map(m) => vec![m],
        Value::Seq(items) => {
            let mut maps = Vec::new();
            for item in items {
                match item.value {
                    Value::Map(m) => maps.push(m),
                    _ => {
                        return Err(Diagnostic::error(
                            "yaml-merge",
                            file,
                            item.span,
                            "<<",
                            "`<<` merges only mappings",
                        ));
                    }
                }
            }
            maps
        }
        _ => {
            return Err(Diagnostic::error(
                "yaml-merge",
                file,
                node.span,
                "<<",
                "`<<` merges only mappings",
            ));
        }
    };
    for source in sources {
        for (k, v) in source {
            if !entries.iter().any(|(p, _)| p.value == k.value) {
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        return Value::Str(text.to_string());
    }
    if is_core_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn is_core_float(s: &str) -> bool {
    // [0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)? with at least one digit in the mantissa
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits_ok = int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()));
    let has_digit = !int.is_empty() || frac.is_some_and(|f| !f.is_empty());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    digits_ok && has_digit && exp_ok && (frac.is_some() || exp.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node, Diagnostic> {
        parse("t.yaml", text, Limits::default())
    }

    #[test]
    fn core_schema_scalars() {
        let n = p("a: 1\nb: yes\nc: true\nd: 1.5\ne: '1'\nf: ~\ng: 0x1F\nh: 1e3\ni: !!str 5\n")
            .unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
        assert_eq!(n.get("b").unwrap().value, Value::Str("yes".into()));
        assert_eq!(n.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("d").unwrap().value, Value::Float(1.5));
        assert_eq!(n.get("e").unwrap().value, Value::Str("1".into()));
        assert_eq!(n.get("f").unwrap().value, Value::Null);
        assert_eq!(n.get("g").unwrap().value, Value::Int(31));
        assert_eq!(n.get("h").unwrap().value, Value::Float(1000.0));
        assert_eq!(n.get("i").unwrap().value, Value::Str("5".into()));
    }

    #[test]
    fn spans_are_one_based() {
        let n = p("config:\n  aws:region: us-east-1\n").unwrap();
        let (k, v) = &n.get("config").unwrap().as_map().unwrap()[0];
        assert_eq!(k.span, Span::new(2, 3, 10));
        assert_eq!(v.span, Span::new(2, 15, 9));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in "bcdefghij".chars() {
            doc.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        let err = p(&doc).unwrap_err();
        assert_eq!(err.code, "yaml-too-large");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(p(&doc).unwrap_err().code, "yaml-too-deep");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.code, "duplicate-key");
        assert_eq!(err.span.line, 3);
    }

    #[test]
    fn merge_keys_fill_missing_entries() {
        let n = p("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n").unwrap();
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().value, Value::Int(1));
        assert_eq!(c.get("y").unwrap().value, Value::Int(3));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = p("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.code, "yaml-syntax");
        assert!(err.span.line >= 1);
    }

    #[test]
    fn huge_files_are_refused_before_parsing() {
        let doc = "a: 1\n".repeat(200_000);
        assert_eq!(p(&doc).unwrap_err().code, "file-too-large");
    }

    #[test]
    fn empty_file_is_null() {
        assert_eq!(p("").unwrap().value, Value::Null);
    }
}
