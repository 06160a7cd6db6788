//! The validated, typed model of a Pantstack monorepo.
//!
//! Pure and synchronous: no tokio, no AWS SDK, no network. Input is the
//! manifest crate's spanned YAML; output is a [`repo::Monorepo`] and diagnostics.
//!
//! - [`settings`]: every tunable setting in one table (key, manifest path, kind,
//!   default), resolved default ← manifest ← stack file ← CLI.
//! - [`service`], [`foundation`]: the two manifests.
//! - [`repo`]: loading the monorepo and the checks across files.
//! - [`mod@env`]: branch / pull request → environment.
//! - [`tag`]: image tags of the seed's strategy.
//! - [`names`]: the rules of names (labels, variables); [`physical`]: the names of
//!   an environment's resources and queue URLs, on AWS and in the local cloud;
//!   [`refs`]: the `${queue:NAME}` reference grammar of variable values.

#![forbid(unsafe_code)]

pub mod changes;
pub mod env;
pub mod foundation;
pub mod iam;
pub mod names;
pub mod physical;
pub mod refs;
pub mod repo;
pub mod service;
pub mod settings;
pub mod tag;
pub mod values;

pub use repo::{Loaded, Monorepo, Resolved, ServiceUnit, load};
