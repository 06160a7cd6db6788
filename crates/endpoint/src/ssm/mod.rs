//! SSM Parameter Store over the JSON 1.1 protocol. SecureString values are sealed
//! with the master key (AES-256-GCM, bound to the parameter's name) before they
//! reach the store or the journal; they are opened only for a caller that asks
//! `WithDecryption`. Labels live on versions and tags on parameters in the
//! store; every change to them is an [`Op`] in the journal, and the compaction
//! image carries them.
//!
//! Modules by concern: `state` (the parameters, the journal ops and their
//! replay), `handlers` (each action of the API), `filters` (the filters and
//! patterns of DescribeParameters and GetParametersByPath).

mod filters;
mod handlers;
mod state;
#[cfg(test)]
mod tests;

pub use state::{ImageVersion, Op, Params};
