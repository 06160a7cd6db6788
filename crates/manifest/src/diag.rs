//! Diagnostics: every problem found in a monorepo, pointing at file, line, column and
//! the offending key, with the fix in words where one is obvious.

use std::fmt::Write as _;

/// Where in a file something is. Lines and columns are 1-based; `len` is the number
/// of characters to underline (at least 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Span {
    pub fn new(line: u32, col: u32, len: u32) -> Self {
        Span {
            line,
            col,
            len: len.max(1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem. `code` is a stable, machine-readable kind (`unknown-key`,
/// `wrong-type`, `out-of-range`, ...); `field` is the dotted key path inside the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    /// Path of the file relative to the monorepo root, `/`-separated.
    pub file: String,
    pub span: Span,
    pub field: String,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        file: &str,
        span: Span,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            file: file.to_string(),
            span,
            field: field.to_string(),
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(
        code: &'static str,
        file: &str,
        span: Span,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, span, field, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic like a compiler does: header, location, the source line
    /// with the span underlined, and the help. `source` is the file's text, if known.
    pub fn render(&self, source: Option<&str>, color: bool) -> String {
        let (bold, red, yellow, blue, reset) = if color {
            (
                "\x1b[1m",
                "\x1b[1;31m",
                "\x1b[1;33m",
                "\x1b[1;34m",
                "\x1b[0m",
            )
        } else {
            ("", "", "", "", "")
        };
        let sev_color = match self.severity {
            Severity::Error => red,
            Severity::Warning => yellow,
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{sev_color}{}[{}]{reset}{bold}: {}{reset}",
            self.severity.as_str(),
            self.code,
            self.message
        );
        let line_no = self.span.line.to_string();
        let pad = " ".repeat(line_no.len());
        let _ = write!(out, "{pad}{blue}-->{reset} {}", self.file);
        if self.span.line > 0 {
            let _ = write!(out, ":{}:{}", self.span.line, self.span.col);
        }
        out.push('\n');
        let text = source.and_then(|s| {
            s.lines()
                .nth((self.span.line as usize).saturating_sub(1))
                .filter(|_| self.span.line > 0)
        });
        if let Some(text) = text {
            let shown: String = text.chars().take(160).collect();
            let col = (self.span.col as usize).saturating_sub(1);
            let avail = shown.chars().count().saturating_sub(col).max(1);
            let len = (self.span.len as usize).clamp(1, avail);
            let _ = writeln!(out, "{pad} {blue}|{reset}");
            let _ = writeln!(out, "{blue}{line_no} |{reset} {shown}");
            let _ = writeln!(
                out,
                "{pad} {blue}|{reset} {}{sev_color}{}{reset}",
                " ".repeat(col),
                "^".repeat(len)
            );
        }
        if !self.field.is_empty() {
            let _ = writeln!(out, "{pad} {blue}={reset} field: {}", self.field);
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} {blue}={reset} help: {help}");
        }
        out
    }
}

/// Sorts diagnostics by file, position and message so output is deterministic.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.span, a.severity, &a.message).cmp(&(&b.file, b.span, b.severity, &b.message))
    });
}

/// The closest candidate to `word` within a small edit distance, for "did you mean".
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for cand in candidates {
        let d = edit_distance(&lower, &cand.to_ascii_lowercase());
        let limit = (cand.len().max(word.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over chars, with transpositions counted as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_and_transpositions() {
        assert_eq!(did_you_mean("prot", &["port", "path"]), Some("port"));
        assert_eq!(
            did_you_mean("helthcheck", &["healthcheck"]),
            Some("healthcheck")
        );
        assert_eq!(did_you_mean("zzzzzz", &["port", "path"]), None);
        assert_eq!(
            did_you_mean("MinCapacity", &["minCapacity"]),
            Some("minCapacity")
        );
    }

    #[test]
    fn render_underlines_the_span() {
        let d = Diagnostic::error(
            "unknown-key",
            "a.yaml",
            Span::new(2, 3, 4),
            "http.prot",
            "unknown key `prot`",
        )
        .with_help("did you mean `port`?");
        let out = d.render(Some("http:\n  prot: 80\n"), false);
        assert!(out.contains("--> a.yaml:2:3"), "{out}");
        assert!(out.contains("  prot: 80\n"), "{out}");
        assert!(out.contains("  |   ^^^^\n"), "{out}");
        assert!(out.contains("help: did you mean `port`?"), "{out}");
    }
}
