//! SQS: the queues of the local cloud, every action of the API as an operation on
//! them, and the journal records that make them durable.
//!
//! Input arrives parsed (`request::Call`: the queue it names and its members,
//! typed, from either protocol); output leaves in the JSON protocol's shape (the
//! query protocol renders it as XML in `query.rs`). A change is an `Op`: applied to
//! the state, then (if it succeeded) written to the journal; replaying the journal
//! applies the same ops in the same order with the same clock values, which rebuilds
//! the same queues, messages, receive counts and receipt handles.
//!
//! The queues, their attributes and the journal ops are the pure crate
//! `pantstack_sqs`; here: `state` (those queues waking long polls), `handlers`
//! (each action of the API: input checked, ops built, output shaped, attributes
//! reported), `policy` (queue policies: checked, AddPermission and
//! RemovePermission), `input` (checks of the request's members and of messages).

mod handlers;
mod input;
mod policy;
mod state;
#[cfg(test)]
mod tests;

pub use handlers::message_id;
pub use input::{md5_of_attributes, text};
pub use pantstack_sqs::{MAX_TAGS, MAX_WAIT_SECS, Millis};
pub use state::{Applied, MoveTask, Op, QueueRt, Sqs, Waiters};

/// Entries of one batch request.
pub const MAX_BATCH: usize = 10;
/// A batch's bodies and attributes together (bytes): 1 MiB, as one message
/// (AWS SQS API reference, SendMessageBatch, since August 2025).
pub const MAX_BATCH_BYTES: usize = pantstack_sqs::MAX_MESSAGE_BYTES;
