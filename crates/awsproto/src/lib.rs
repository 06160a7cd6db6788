//! AWS wire-protocol pieces for the local cloud's AWS-compatible endpoints. Pure: no
//! I/O, no clock (callers pass the time in).
//!
//! Today: Signature Version 4 verification (`sigv4`), checked against requests signed
//! by botocore. The SQS, S3 and SSM protocols build on it (not written yet).

#![forbid(unsafe_code)]

pub mod sigv4;
