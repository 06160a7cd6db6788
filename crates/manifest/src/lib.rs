//! Reads a Pantstack monorepo: YAML with spans and budgets, the seed's Pulumi-style
//! project and stack files, and diagnostics that point at file, line and column.
//!
//! Pure: no async, no network, no AWS. The only I/O is `files::load`, which reads
//! the monorepo's files with `std::fs`.

#![forbid(unsafe_code)]

pub mod diag;
pub mod files;
pub mod pulumi;
pub mod read;
pub mod yaml;

pub use diag::{Diagnostic, Severity, Span};
pub use files::{RepoFiles, SourceFile};
pub use read::{Fields, Reader};
pub use yaml::{Limits, Node, Value};
