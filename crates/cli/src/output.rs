//! Printing: diagnostics, colour on terminals only, JSON for machines.

use crate::args::{ColorChoice, Format};
use pantstack_manifest::Diagnostic;
use pantstack_manifest::files::RepoFiles;
use pantstack_model::settings::Val;
use std::io::IsTerminal;

#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub format: Format,
    pub color: bool,
}

impl Out {
    pub fn new(format: Format, choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Out { format, color }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    pub fn bold(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn dim(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Prints diagnostics to stderr, with source lines where the file is known.
pub fn print_diagnostics(out: &Out, files: Option<&RepoFiles>, diags: &[Diagnostic]) {
    for d in diags {
        let source = files.and_then(|f| f.text_of(&d.file));
        eprintln!("{}", d.render(source, out.color));
    }
}

pub fn summary(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    (errors, diags.len() - errors)
}

pub fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "severity": d.severity.as_str(),
        "code": d.code,
        "file": d.file,
        "line": d.span.line,
        "column": d.span.col,
        "field": d.field,
        "message": d.message,
        "help": d.help,
    })
}

/// A resolved setting value as JSON (durations in seconds).
pub fn val_json(v: &Val) -> serde_json::Value {
    match v {
        Val::Int(i) => serde_json::json!(i),
        Val::Duration(secs) => serde_json::json!(secs),
        Val::Text(t) => serde_json::json!(t),
        Val::Bool(b) => serde_json::json!(b),
    }
}
