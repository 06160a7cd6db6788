//! Test helper for `tests/crash.rs`: appends records to the log at PATH forever,
//! printing `ack N` after each durable append, until it is killed.

#![forbid(unsafe_code)]

use std::io::Write;

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: store-crash-writer PATH");
        std::process::exit(2);
    };
    let (mut log, _) = match pantstack_store::Log::open(std::path::Path::new(&path), |_| {}) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot open {}: {e}", path.to_string_lossy());
            std::process::exit(1);
        }
    };
    let out = std::io::stdout();
    for i in 0..1_000_000u64 {
        let record = format!("message {i:06} {}", "x".repeat(i as usize % 97));
        if let Err(e) = log.append(record.as_bytes()) {
            eprintln!("append: {e}");
            std::process::exit(1);
        }
        let mut o = out.lock();
        if writeln!(o, "ack {}", i + 1)
            .and_then(|_| o.flush())
            .is_err()
        {
            std::process::exit(0);
        }
    }
}
