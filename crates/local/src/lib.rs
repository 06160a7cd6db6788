//! The local cloud: every service of an environment on this machine, with the
//! behaviour of ALB + ECS (see ARCHITECTURE.md).

#![forbid(unsafe_code)]

pub mod backup;
pub mod build;
pub mod client;
pub mod control;
pub mod core;
pub mod dashboard;
pub mod history;
pub mod logs;
pub mod metrics;
pub mod monitor;
pub mod ports;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod task;
