//! One SQS queue as a pure state machine over a clock passed in (milliseconds), so
//! that the semantics AWS documents are unit-tested without sockets or sleeps:
//! visibility timeouts and re-delivery, receive counts, redrive to a dead-letter
//! queue at `maxReceiveCount`, per-message and queue delays, retention, and FIFO
//! queues (per-group ordering, 5-minute deduplication, content-based dedup, and
//! `ReceiveRequestAttemptId`: a retried receive gets the same messages and
//! receipt handles for 5 minutes).
//!
//! Above the one queue, `queues` holds the queues of a region and the journal ops
//! that change them (an op applied to the same state gives the same result, so
//! replaying the ops rebuilds the same queues, messages, receive counts and
//! receipt handles); `attributes` checks queue attributes and names; `refusal`
//! is the errors SQS answers with. The endpoint wraps all of it with the JSON and
//! query protocols and journals every op before acknowledging it.

#![forbid(unsafe_code)]

pub mod attributes;
pub mod queues;
pub mod refusal;

pub use queues::{Applied, MoveTask, Op, QueueRt, Queues, Wake};
pub use refusal::{Refusal, name_of_arn};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

pub type Millis = u64;

/// Longest long poll (seconds).
pub const MAX_WAIT_SECS: u64 = 20;
/// Tags a queue can have (AWS SQS developer guide, "Quotas related to queues").
pub const MAX_TAGS: usize = 50;

/// The 5-minute deduplication interval of FIFO queues.
pub const DEDUP_WINDOW_MS: Millis = 5 * 60 * 1000;
/// Most messages one ReceiveMessage returns.
pub const MAX_RECEIVE: usize = 10;
/// Largest message (body and attributes), the default and the most
/// `MaximumMessageSize` can be: 1 MiB since August 2025 (AWS "What's new",
/// 2025-08-04: "Amazon SQS increases maximum message payload size to 1 MiB").
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Visibility timeout limit: 12 hours.
pub const MAX_VISIBILITY_SECS: u64 = 12 * 3600;
/// How long a `ReceiveRequestAttemptId` answers a retry: "You can use
/// ReceiveRequestAttemptId only for 5 minutes after a ReceiveMessage action"
/// (SQS API reference, ReceiveMessage).
pub const ATTEMPT_WINDOW_MS: Millis = 5 * 60 * 1000;
/// Longest `ReceiveRequestAttemptId` (characters).
pub const MAX_ATTEMPT_ID: usize = 128;

/// Whether `id` is a valid `ReceiveRequestAttemptId`: 1 to 128 characters, each
/// alphanumeric (`a-z`, `A-Z`, `0-9`) or punctuation
/// (``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``), as the API reference says.
pub fn valid_attempt_id(id: &str) -> bool {
    (1..=MAX_ATTEMPT_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub visibility_timeout_secs: u64,
    pub retention_secs: u64,
    pub delay_secs: u64,
    pub max_message_bytes: usize,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    /// `maxReceiveCount` of the redrive policy (the DLQ is the caller's).
    pub max_receive_count: Option<u32>,
}

impl Default for Attributes {
    /// AWS's defaults.
    fn default() -> Self {
        Attributes {
            visibility_timeout_secs: 30,
            retention_secs: 4 * 24 * 3600,
            delay_secs: 0,
            max_message_bytes: MAX_MESSAGE_BYTES,
            fifo: false,
            content_based_deduplication: false,
            max_receive_count: None,
        }
    }
}

/// Errors named as AWS names them (the client's exception types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `InvalidParameterValue`.
    InvalidParameterValue(String),
    /// `MissingParameter` (FIFO without a group id, ...).
    MissingParameter(String),
    /// `ReceiptHandleIsInvalid`.
    ReceiptHandleIsInvalid,
    /// `MessageNotInflight` (ChangeMessageVisibility on a visible message).
    MessageNotInflight,
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidParameterValue(_) => "InvalidParameterValue",
            Error::MissingParameter(_) => "MissingParameter",
            Error::ReceiptHandleIsInvalid => "ReceiptHandleIsInvalid",
            Error::MessageNotInflight => "MessageNotInflight",
        }
    }
}

/// Serialized without its empty fields (a journal image holds one per message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub sent_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub receive_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_receive_at: Option<Millis>,
    /// What the endpoint keeps with the message (message attributes), opaque here.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extra: String,
    /// The queue a dead-lettered message came from (set by the caller that moved
    /// it; a DLQ's move task sends it back there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    visible_at: Millis,
    /// The receipt handle of the current delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receipt: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A delivery of ReceiveMessage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at: Millis,
    pub first_receive_at: Millis,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
    pub sequence: u64,
    pub extra: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    pub sequence: u64,
    /// FIFO: a duplicate within the window was accepted but not enqueued again.
    pub duplicate: bool,
}

/// What one FIFO receive with a `ReceiveRequestAttemptId` delivered: a retry
/// within [`ATTEMPT_WINDOW_MS`] gets these messages again, with these receipt
/// handles, as long as none of them was deleted, received again or had its
/// visibility changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the first receive of the attempt was.
    pub at: Millis,
    /// Each delivered message: (sequence, receipt handle, the `visible_at` the
    /// receive, or its last retry, gave it).
    pub delivered: Vec<(u64, String, Millis)>,
}

/// Serialized (a journal's compacted image) without its messages, which travel
/// in chunks of their own (`messages`, `restore_messages`), and without the
/// receipt index, which the messages rebuild.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Queue {
    pub attributes: Attributes,
    /// By sequence: send order.
    /// Boxed: keys arrive in order, so B-tree nodes split at the right edge stay
    /// about half full; with messages inline (~200 bytes each) that doubled their
    /// memory.
    #[serde(skip)]
    messages: BTreeMap<u64, Box<Message>>,
    next_sequence: u64,
    #[serde(serialize_with = "sorted")]
    dedup: HashMap<String, (Millis, String, u64)>,
    /// Dedup ids in the order they were recorded, for expiry.
    dedup_order: VecDeque<(Millis, String)>,
    #[serde(skip)]
    receipts: HashMap<String, u64>,
    next_receipt: u64,
    /// FIFO receives by `ReceiveRequestAttemptId`, for 5 minutes.
    #[serde(
        default,
        serialize_with = "sorted",
        skip_serializing_if = "HashMap::is_empty"
    )]
    attempts: HashMap<String, Attempt>,
}

/// Appends `v` in lower-case hex, zero-padded to at least `width` digits (what
/// `{:0width$x}` writes).
pub fn push_hex(out: &mut String, v: u64, width: usize) {
    let digits = (16 - v.leading_zeros() as usize / 4).max(1).max(width);
    for i in (0..digits).rev() {
        let nibble = v.checked_shr(4 * i as u32).unwrap_or(0) & 15;
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// Gives a hash map's room back once it has emptied well below it (a hash map
/// never shrinks by itself: a queue that once held 100k receipts would keep
/// their table): below a quarter of its capacity it is shrunk to twice its
/// length, so shrinking costs O(1) per removal, amortized.
fn shrink_map<V>(m: &mut HashMap<String, V>) {
    if m.capacity() > MIN_SHRINK && m.len() < m.capacity() / 4 {
        m.shrink_to(m.len() * 2);
    }
}

/// `shrink_map` for the dedup ids' queue.
fn shrink_deque<T>(d: &mut VecDeque<T>) {
    if d.capacity() > MIN_SHRINK && d.len() < d.capacity() / 4 {
        d.shrink_to(d.len() * 2);
    }
}

/// Tables at most this large are left as they are.
const MIN_SHRINK: usize = 64;

/// A map serialized in key order, so that a queue's image is the same bytes for
/// the same state.
fn sorted<S: serde::Serializer, V: Serialize>(
    m: &HashMap<String, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().collect::<BTreeMap<_, _>>())
}

fn content_dedup_id(s: &str) -> String {
    // Content-based deduplication id: a stable digest of the body (FNV-1a 64,
    // twice with different seeds; collisions are as unlikely as they need to be
    // within a 5-minute window of one queue).
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for x in s.bytes() {
        a = (a ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(x))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(7);
    }
    format!("{a:016x}{b:016x}")
}

/// AWS's words for a visibility timeout past 12 hours.
fn visibility_out_of_range(secs: u64) -> Error {
    Error::InvalidParameterValue(format!(
        "Value {secs} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."
    ))
}

/// The delivery of `m` under `receipt`.
fn delivery(m: &Message, receipt: String, now: Millis) -> Delivery {
    Delivery {
        message_id: m.id.clone(),
        receipt_handle: receipt,
        body: m.body.clone(),
        receive_count: m.receive_count,
        sent_at: m.sent_at,
        first_receive_at: m.first_receive_at.unwrap_or(now),
        group: m.group.clone(),
        dedup_id: m.dedup_id.clone(),
        sequence: m.sequence,
        extra: m.extra.clone(),
    }
}

impl Queue {
    pub fn new(attributes: Attributes) -> Self {
        Queue {
            attributes,
            next_sequence: 1,
            ..Queue::default()
        }
    }

    /// The queue without its messages: what `Serialize` writes of it, as a value.
    pub fn head(&self) -> Queue {
        Queue {
            attributes: self.attributes.clone(),
            messages: BTreeMap::new(),
            next_sequence: self.next_sequence,
            dedup: self.dedup.clone(),
            dedup_order: self.dedup_order.clone(),
            receipts: HashMap::new(),
            next_receipt: self.next_receipt,
            attempts: self.attempts.clone(),
        }
    }

    /// Every message held, in send order, in its full state (visibility, current
    /// receipt handle, receive count): with the queue's own serialized fields, an
    /// exact image of the queue.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values().map(|m| &**m)
    }

    /// Puts messages of an image back (after the queue's serialized fields), with
    /// the receipt handles they carry.
    pub fn restore_messages(&mut self, messages: impl IntoIterator<Item = Message>) {
        for m in messages {
            if let Some(r) = &m.receipt {
                self.receipts.insert(r.clone(), m.sequence);
            }
            self.messages.insert(m.sequence, Box::new(m));
        }
    }

    /// Drops messages past retention and dedup ids past their window. Both are
    /// scanned from the oldest and stop at the first live one, so a send costs
    /// O(expired), not O(queue length). (A message moved in from another queue keeps
    /// its older send time but a newer place; it ends at the latest when the
    /// messages before it do, and `counts` never reports it.)
    fn expire(&mut self, now: Millis) {
        let retention = self.attributes.retention_secs * 1000;
        while let Some(entry) = self.messages.first_entry() {
            if now < entry.get().sent_at + retention {
                break;
            }
            let m = entry.remove();
            if let Some(r) = m.receipt {
                self.receipts.remove(&r);
            }
        }
        while let Some((t, key)) = self.dedup_order.front() {
            if now < *t + DEDUP_WINDOW_MS {
                break;
            }
            if self.dedup.get(key).is_some_and(|(t0, _, _)| t0 == t) {
                self.dedup.remove(key);
            }
            self.dedup_order.pop_front();
        }
        self.shrink();
    }

    /// Gives back the room of the receipt, dedup and attempt tables once they
    /// have emptied well below it (after deletes, expiry, a purge).
    fn shrink(&mut self) {
        shrink_map(&mut self.receipts);
        shrink_map(&mut self.dedup);
        shrink_map(&mut self.attempts);
        shrink_deque(&mut self.dedup_order);
    }

    /// SendMessage. `delay_secs` overrides the queue's (standard queues only).
    pub fn send(
        &mut self,
        body: &str,
        delay_secs: Option<u64>,
        group: Option<&str>,
        dedup_id: Option<&str>,
        now: Millis,
    ) -> Result<Sent, Error> {
        self.send_with(body, "", None, delay_secs, group, dedup_id, now)
    }

    /// SendMessage with `extra` kept beside the body (the endpoint's message
    /// attributes) and the message id `id` (a UUID the caller drew; without one,
    /// an id derived from the sequence number and `now`, which is what a record
    /// without an id, written by older versions, replays to).
    #[allow(clippy::too_many_arguments)]
    pub fn send_with(
        &mut self,
        body: &str,
        extra: &str,
        id: Option<&str>,
        delay_secs: Option<u64>,
        group: Option<&str>,
        dedup_id: Option<&str>,
        now: Millis,
    ) -> Result<Sent, Error> {
        self.expire(now);
        if body.is_empty() {
            return Err(Error::MissingParameter(
                "The request must contain the parameter MessageBody.".into(),
            ));
        }
        if body.len() > self.attributes.max_message_bytes {
            return Err(Error::InvalidParameterValue(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                self.attributes.max_message_bytes
            )));
        }
        let delay = delay_secs.unwrap_or(self.attributes.delay_secs);
        if delay > 900 {
            return Err(Error::InvalidParameterValue("Value for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.".into()));
        }
        let (group, dedup) = if self.attributes.fifo {
            let g = group.ok_or_else(|| {
                Error::MissingParameter(
                    "The request must contain the parameter MessageGroupId.".into(),
                )
            })?;
            if delay_secs.is_some_and(|d| d > 0) {
                return Err(Error::InvalidParameterValue("Value 1 for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.".into()));
            }
            let d = match dedup_id {
                Some(d) => d.to_string(),
                None if self.attributes.content_based_deduplication => content_dedup_id(body),
                None => {
                    return Err(Error::InvalidParameterValue("The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly".into()));
                }
            };
            (Some(g.to_string()), Some(d))
        } else {
            (None, None)
        };
        if let Some(d) = &dedup
            && let Some((_, id, seq)) = self.dedup.get(d)
        {
            return Ok(Sent {
                message_id: id.clone(),
                sequence: *seq,
                duplicate: true,
            });
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                // `{:08x}-{:04x}-4000-8000-{:012x}`, without the formatting
                // machinery (the first group is wider: kept as journals hold it).
                let mut id = String::with_capacity(40);
                push_hex(&mut id, sequence >> 32 ^ now, 8);
                id.push('-');
                push_hex(&mut id, sequence & 0xffff, 4);
                id.push_str("-4000-8000-");
                push_hex(&mut id, sequence, 12);
                id
            }
        };
        if let Some(d) = &dedup {
            self.dedup.insert(d.clone(), (now, id.clone(), sequence));
            self.dedup_order.push_back((now, d.clone()));
        }
        self.messages.insert(
            sequence,
            Box::new(Message {
                id: id.clone(),
                body: body.to_string(),
                sent_at: now,
                group,
                dedup_id: dedup,
                sequence,
                receive_count: 0,
                first_receive_at: None,
                extra: extra.to_string(),
                origin: None,
                visible_at: now + delay * 1000,
                receipt: None,
            }),
        );
        Ok(Sent {
            message_id: id,
            sequence,
            duplicate: false,
        })
    }

    /// ReceiveMessage: up to `max` visible messages, each hidden for `visibility`
    /// (the queue's unless given). Messages that reached `maxReceiveCount` are
    /// removed and returned in the second list, for the caller to move to the DLQ.
    pub fn receive(
        &mut self,
        max: usize,
        visibility_secs: Option<u64>,
        now: Millis,
    ) -> Result<(Vec<Delivery>, Vec<Message>), Error> {
        self.receive_attempt(max, visibility_secs, None, now)
    }

    /// ReceiveMessage with a `ReceiveRequestAttemptId` (FIFO queues; a standard
    /// queue ignores it, as SQS does). Within 5 minutes of the first receive of
    /// an attempt, a retry with the same id returns the same messages with the
    /// same receipt handles (their receive counts unchanged) and resets their
    /// visibility timeout, as long as none of them was deleted, received again
    /// or had its visibility changed; otherwise the retry is a receive of its
    /// own, recorded under the id in place of the old one. An invalid id (not 1
    /// to 128 alphanumeric or punctuation characters) is `InvalidParameterValue`.
    pub fn receive_attempt(
        &mut self,
        max: usize,
        visibility_secs: Option<u64>,
        attempt: Option<&str>,
        now: Millis,
    ) -> Result<(Vec<Delivery>, Vec<Message>), Error> {
        let attempt = attempt.filter(|_| self.attributes.fifo);
        if let Some(id) = attempt
            && !valid_attempt_id(id)
        {
            return Err(Error::InvalidParameterValue(format!(
                "Value {id} for parameter ReceiveRequestAttemptId is invalid. Reason: ReceiveRequestAttemptId can only include alphanumeric and punctuation characters. 1 to 128 in length."
            )));
        }
        if !(1..=MAX_RECEIVE).contains(&max) {
            return Err(Error::InvalidParameterValue(format!(
                "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
            )));
        }
        let vis = visibility_secs.unwrap_or(self.attributes.visibility_timeout_secs);
        if vis > MAX_VISIBILITY_SECS {
            return Err(visibility_out_of_range(vis));
        }
        self.expire(now);
        if !self.attempts.is_empty() {
            self.attempts
                .retain(|_, a| now < a.at.saturating_add(ATTEMPT_WINDOW_MS));
            shrink_map(&mut self.attempts);
        }
        if let Some(id) = attempt
            && let Some(again) = self.retry(id, vis, now)
        {
            return Ok((again, Vec::new()));
        }
        // FIFO: a group with a message in flight delivers nothing more.
        let blocked: HashSet<String> = if self.attributes.fifo {
            self.messages
                .values()
                .filter(|m| m.visible_at > now && m.receipt.is_some())
                .filter_map(|m| m.group.clone())
                .collect()
        } else {
            HashSet::new()
        };
        let mut seen_groups: HashSet<String> = HashSet::new();
        let mut picked = Vec::new();
        let mut dead = Vec::new();
        for (seq, m) in &self.messages {
            if picked.len() >= max {
                break;
            }
            if m.visible_at > now {
                if let Some(g) = &m.group {
                    seen_groups.insert(g.clone());
                }
                continue;
            }
            if let Some(g) = &m.group
                && (blocked.contains(g)
                    || (seen_groups.contains(g)
                        && !picked
                            .iter()
                            .any(|(_, pg): &(u64, Option<String>)| pg.as_ref() == Some(g))))
            {
                continue;
            }
            if let Some(limit) = self.attributes.max_receive_count
                && m.receive_count >= limit
            {
                dead.push(*seq);
                continue;
            }
            picked.push((*seq, m.group.clone()));
        }
        let mut moved = Vec::new();
        for seq in dead {
            if let Some(mut m) = self.messages.remove(&seq) {
                if let Some(r) = m.receipt.take() {
                    self.receipts.remove(&r);
                }
                moved.push(*m);
            }
        }
        let mut out = Vec::new();
        for (seq, _) in picked {
            let receipt = format!("rh-{seq}-{}", self.next_receipt);
            self.next_receipt += 1;
            if let Some(m) = self.messages.get_mut(&seq) {
                if let Some(old) = m.receipt.replace(receipt.clone()) {
                    self.receipts.remove(&old);
                }
                m.receive_count += 1;
                m.first_receive_at.get_or_insert(now);
                m.visible_at = now + vis * 1000;
                self.receipts.insert(receipt.clone(), seq);
                out.push(delivery(m, receipt, now));
            }
        }
        if let Some(id) = attempt
            && !out.is_empty()
        {
            let visible_at = now + vis * 1000;
            self.attempts.insert(
                id.to_string(),
                Attempt {
                    at: now,
                    delivered: out
                        .iter()
                        .map(|d| (d.sequence, d.receipt_handle.clone(), visible_at))
                        .collect(),
                },
            );
        }
        Ok((out, moved))
    }

    /// The retry of attempt `id`: its messages again, hidden `vis` seconds more,
    /// if every one is still as that receive left it (same receipt handle, same
    /// visibility); else None (and the attempt is forgotten).
    fn retry(&mut self, id: &str, vis: u64, now: Millis) -> Option<Vec<Delivery>> {
        let a = self.attempts.get(id)?;
        let intact = a.delivered.iter().all(|(seq, receipt, visible_at)| {
            self.messages.get(seq).is_some_and(|m| {
                m.receipt.as_deref() == Some(receipt.as_str()) && m.visible_at == *visible_at
            })
        });
        if !intact {
            self.attempts.remove(id);
            return None;
        }
        let a = self.attempts.get_mut(id)?;
        let visible_at = now + vis * 1000;
        let mut out = Vec::with_capacity(a.delivered.len());
        for (seq, receipt, at) in &mut a.delivered {
            if let Some(m) = self.messages.get_mut(seq) {
                m.visible_at = visible_at;
                *at = visible_at;
                out.push(delivery(m, receipt.clone(), now));
            }
        }
        Some(out)
    }

    /// DeleteMessage. A handle of an earlier delivery of a message that was received
    /// again is invalid (the message stays).
    pub fn delete(&mut self, receipt: &str) -> Result<(), Error> {
        let seq = self
            .receipts
            .remove(receipt)
            .ok_or(Error::ReceiptHandleIsInvalid)?;
        self.messages.remove(&seq);
        shrink_map(&mut self.receipts);
        Ok(())
    }

    /// ChangeMessageVisibility: from now on, hidden `secs` more (0: visible now).
    pub fn change_visibility(
        &mut self,
        receipt: &str,
        secs: u64,
        now: Millis,
    ) -> Result<(), Error> {
        if secs > MAX_VISIBILITY_SECS {
            return Err(visibility_out_of_range(secs));
        }
        let seq = *self
            .receipts
            .get(receipt)
            .ok_or(Error::ReceiptHandleIsInvalid)?;
        let m = self
            .messages
            .get_mut(&seq)
            .ok_or(Error::ReceiptHandleIsInvalid)?;
        if m.visible_at <= now {
            return Err(Error::MessageNotInflight);
        }
        m.visible_at = now + secs * 1000;
        Ok(())
    }

    /// PurgeQueue.
    pub fn purge(&mut self) {
        self.messages.clear();
        self.receipts.clear();
        self.shrink();
    }

    /// ApproximateNumberOfMessages (visible), ...NotVisible (in flight), ...Delayed.
    pub fn counts(&self, now: Millis) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        let retention = self.attributes.retention_secs * 1000;
        for m in self
            .messages
            .values()
            .filter(|m| now < m.sent_at + retention)
        {
            if m.visible_at <= now {
                c.0 += 1;
            } else if m.receipt.is_some() {
                c.1 += 1;
            } else {
                c.2 += 1;
            }
        }
        c
    }

    /// When the oldest message still kept was sent (ApproximateAgeOfOldestMessage
    /// is `now` minus it).
    pub fn oldest_sent(&self, now: Millis) -> Option<Millis> {
        let retention = self.attributes.retention_secs * 1000;
        self.messages
            .values()
            .map(|m| m.sent_at)
            .filter(|t| now < t + retention)
            .min()
    }

    /// The earliest time a message becomes visible (for long polling).
    pub fn next_visible(&self) -> Option<Millis> {
        self.messages.values().map(|m| m.visible_at).min()
    }

    /// Removes and returns every message (a DLQ's move back to its source), oldest
    /// first, as long as `limit` allows.
    pub fn take_all(&mut self, limit: usize) -> Vec<Message> {
        let keys: Vec<u64> = self.messages.keys().take(limit).copied().collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(mut m) = self.messages.remove(&k) {
                if let Some(r) = m.receipt.take() {
                    self.receipts.remove(&r);
                }
                out.push(*m);
            }
        }
        self.shrink();
        out
    }

    /// Takes a message moved from another queue (DLQ redrive or move back), keeping
    /// its id, body and send time.
    pub fn adopt(&mut self, mut m: Message, now: Millis) {
        let seq = self.next_sequence;
        self.next_sequence += 1;
        m.sequence = seq;
        m.receive_count = 0;
        m.first_receive_at = None;
        m.receipt = None;
        m.visible_at = now;
        self.messages.insert(seq, Box::new(m));
    }
}

#[cfg(test)]
mod tests;
