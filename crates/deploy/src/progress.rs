//! What a long AWS operation shows while it waits: one line per stack, redrawn in
//! place on a terminal; elsewhere (CI logs, pipes) a plain line whenever a stack's
//! state changes. Everything goes to standard error, so standard output keeps only
//! results.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

pub struct Progress {
    tty: bool,
    inner: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    rows: Vec<(String, String)>,
    drawn: usize,
}

impl Progress {
    pub fn new() -> Progress {
        Progress::with_tty(std::io::stderr().is_terminal() && std::env::var_os("CI").is_none())
    }

    pub fn with_tty(tty: bool) -> Progress {
        Progress {
            tty,
            inner: Mutex::new(Lines::default()),
        }
    }

    /// Sets what `key` (a stack, a service) is doing.
    pub fn set(&self, key: &str, state: &str) {
        let Ok(mut l) = self.inner.lock() else {
            return;
        };
        let state = state.replace('\n', " ");
        match l.rows.iter_mut().find(|(k, _)| k == key) {
            Some((_, s)) if *s == state => return,
            Some((_, s)) => *s = state.clone(),
            None => l.rows.push((key.to_string(), state.clone())),
        }
        let mut err = std::io::stderr().lock();
        if !self.tty {
            let _ = writeln!(err, "  {key}: {state}");
            return;
        }
        // Move up over what was drawn, then draw every row again.
        if l.drawn > 0 {
            let _ = write!(err, "\x1b[{}A", l.drawn);
        }
        let width = l.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, s) in &l.rows {
            let line: String = format!("  {k:<width$}  {s}")
                .chars()
                .take(terminal_width())
                .collect();
            let _ = writeln!(err, "\x1b[2K{line}");
        }
        l.drawn = l.rows.len();
    }

    /// A line of its own, below the rows (which are drawn again under it).
    pub fn note(&self, text: &str) {
        let Ok(mut l) = self.inner.lock() else {
            return;
        };
        let mut err = std::io::stderr().lock();
        if self.tty && l.drawn > 0 {
            let _ = write!(err, "\x1b[{}A\x1b[J", l.drawn);
            l.drawn = 0;
        }
        let _ = writeln!(err, "{text}");
        if self.tty {
            let width = l.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, s) in &l.rows {
                let _ = writeln!(err, "\x1b[2K  {k:<width$}  {s}");
            }
            l.drawn = l.rows.len();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}
