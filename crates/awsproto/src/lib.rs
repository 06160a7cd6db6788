//! AWS wire-protocol pieces for the local cloud's AWS-compatible endpoints. Pure: no
//! I/O, no clock (callers pass the time in).
//!
//! Signature Version 4 verification (`sigv4`), checked against requests signed by
//! botocore. The endpoint verifies SQS and SSM requests with it (s3s verifies S3's).

#![forbid(unsafe_code)]

pub mod sigv4;
