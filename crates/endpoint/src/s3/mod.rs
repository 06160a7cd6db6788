//! S3: the state model (`state`: buckets, object versions, multipart uploads and
//! the journal ops that change them), bucket configurations (`config`), and the
//! S3 API over the `s3s` crate (`service`), one module per concern. Object data
//! lives in blob files (`aws/objects/<id>`), written and synced before the op
//! that names them is journaled.

mod access;
mod body;
mod buckets;
mod common;
pub mod config;
mod headers;
mod listing;
mod multipart;
mod objects;
mod service;
mod stamp;
pub mod state;
mod svc;
mod versioning;

pub(crate) use body::FileRange;
pub use common::MIN_PART;
pub use headers::{prepare_request, stamp_response};
pub use service::service;
pub use state::*;
pub use svc::{COMMITTED, S3Svc, lifecycle_pass};
