//! SQS: the queues of the local cloud, every action of the API as an operation on
//! them, and the journal records that make them durable.
//!
//! Input arrives in the JSON protocol's shape (the query protocol is converted to it
//! by `query.rs`); output leaves in that shape too. A change is an `Op`: applied to
//! the state, then (if it succeeded) written to the journal; replaying the journal
//! applies the same ops in the same order with the same clock values, which rebuilds
//! the same queues, messages, receive counts and receipt handles.
//!
//! Modules by concern: `state` (the queues, the journal ops and their replay),
//! `handlers` (each action of the API: input checked, ops built, output shaped),
//! `attributes` (queue attributes: settable, checked, reported), `policy` (queue
//! policies: checked, AddPermission/RemovePermission), `input` (checks of the
//! request's members and of messages, and the errors SQS answers with).

mod attributes;
mod handlers;
mod input;
mod policy;
mod state;
#[cfg(test)]
mod tests;

pub use handlers::message_id;
pub use input::{int, md5_of_attributes, text};
pub use state::{Applied, MoveTask, Op, QueueRt, Sqs};

pub type Millis = u64;

/// Longest long poll (seconds).
pub const MAX_WAIT_SECS: u64 = 20;
/// Entries of one batch request.
pub const MAX_BATCH: usize = 10;
/// A batch's bodies and attributes together (bytes): 1 MiB, as one message
/// (AWS SQS API reference, SendMessageBatch, since August 2025).
pub const MAX_BATCH_BYTES: usize = pantstack_sqs::MAX_MESSAGE_BYTES;

/// Tags a queue can have (AWS SQS developer guide, "Quotas related to queues").
pub const MAX_TAGS: usize = 50;
