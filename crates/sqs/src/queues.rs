//! The queues of a region and the journal ops that change them: an op
//! applied to the same state gives the same result, so replaying the journal
//! rebuilds the same queues, messages, receive counts and receipt handles.

use crate::attributes::{CLEARABLE, check_queue_name, parse_attrs, without_cleared};
use crate::refusal::{Refusal, bad_receipt, invalid, no_queue, q_err};
use crate::{Error as QErr, MAX_TAGS, Message, Millis, Queue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a queue wakes when its messages or attributes change (long polls wait
/// on it); `()` wakes nothing.
pub trait Wake: Default {
    fn wake(&self);
}

impl Wake for () {
    fn wake(&self) {}
}

/// One queue.
pub struct QueueRt<W> {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub modified: u64,
    /// Settable attributes as set, checked.
    pub attrs: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub q: Queue,
    /// Woken on every send and visibility change (long polls wait on it).
    pub waiters: W,
    /// The DLQ's name and maxReceiveCount (from RedrivePolicy).
    pub redrive: Option<(String, u32)>,
    /// When the last purge was (one per 60 s).
    pub purged_at: Option<Millis>,
}

/// A finished message-move task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveTask {
    pub handle: String,
    pub source: String,
    pub dest: Option<String>,
    pub moved: u64,
    pub started: Millis,
}

/// A change to the queues: what the journal holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Create {
        name: String,
        attrs: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        now: Millis,
    },
    DeleteQueue {
        name: String,
    },
    SetAttrs {
        name: String,
        attrs: BTreeMap<String, String>,
        now: Millis,
    },
    Tag {
        name: String,
        tags: BTreeMap<String, String>,
    },
    Untag {
        name: String,
        keys: Vec<String>,
    },
    Purge {
        name: String,
        now: Millis,
    },
    Send {
        name: String,
        body: String,
        extra: String,
        /// The message id, a random UUID drawn by the handler. A record without
        /// one (written by older versions) gets an id the queue derives.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        delay: Option<u64>,
        group: Option<String>,
        dedup: Option<String>,
        now: Millis,
    },
    Receive {
        name: String,
        max: usize,
        vis: Option<u64>,
        /// `ReceiveRequestAttemptId` (FIFO queues): a retry within 5 minutes
        /// gets the same messages and receipt handles again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<String>,
        now: Millis,
    },
    Delete {
        name: String,
        receipt: String,
    },
    Visibility {
        name: String,
        receipt: String,
        secs: u64,
        now: Millis,
    },
    Move {
        source: String,
        dest: Option<String>,
        handle: String,
        now: Millis,
    },
    /// A compacted journal's image of one queue without its messages (they
    /// follow in `ImageMessages`), replacing any queue of that name.
    Image {
        name: String,
        created: u64,
        modified: u64,
        attrs: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        redrive: Option<(String, u32)>,
        purged_at: Option<Millis>,
        queue: Box<Queue>,
    },
    /// Messages of the queue imaged last, in their full state.
    ImageMessages {
        name: String,
        messages: Vec<Message>,
    },
    /// The finished message-move tasks (ListMessageMoveTasks).
    ImageMoves {
        moves: Vec<MoveTask>,
    },
}

/// Bytes of messages per `ImageMessages` record (a record is at most 16 MiB; a
/// message with its attributes at most ~512 KiB, more once JSON-escaped).
const IMAGE_CHUNK: usize = 1 << 20;

/// What applying an op produced.
pub enum Applied {
    Nothing,
    Sent(crate::Sent),
    /// Deliveries, and how many messages were moved to the DLQ.
    Received(Vec<crate::Delivery>, usize),
    Moved(u64),
}

/// The queues of one region and account, and the finished message-move tasks.
#[derive(Default)]
pub struct Queues<W> {
    pub queues: BTreeMap<String, QueueRt<W>>,
    pub moves: Vec<MoveTask>,
    pub region: String,
    pub account: String,
}

impl<W: Wake> Queues<W> {
    pub fn new(region: &str, account: &str) -> Self {
        Queues {
            region: region.to_string(),
            account: account.to_string(),
            ..Queues::default()
        }
    }

    pub fn queue(&mut self, name: &str) -> Result<&mut QueueRt<W>, Refusal> {
        self.queues.get_mut(name).ok_or_else(no_queue)
    }

    /// Applies one op. The same op on the same state gives the same result (replay).
    pub fn apply(&mut self, op: &Op) -> Result<Applied, Refusal> {
        match op {
            Op::Create {
                name,
                attrs,
                tags,
                now,
            } => {
                let fifo = check_queue_name(name)?;
                let attrs = &without_cleared(attrs);
                if let Some(q) = self.queues.get(name) {
                    // Idempotent when nothing differs.
                    let differs: Vec<&str> = attrs
                        .iter()
                        .filter(|(k, v)| q.attrs.get(*k) != Some(*v))
                        .map(|(k, _)| k.as_str())
                        .collect();
                    if !differs.is_empty() {
                        return Err(Refusal::new(
                            "QueueNameExists",
                            format!(
                                "A queue already exists with the same name and a different value for attribute {}",
                                differs.join(", ")
                            ),
                        )
                        .with_query_code("QueueAlreadyExists"));
                    }
                    return Ok(Applied::Nothing);
                }
                let (a, redrive) = parse_attrs(attrs, fifo, true, None)?;
                self.queues.insert(
                    name.clone(),
                    QueueRt {
                        name: name.clone(),
                        created: now / 1000,
                        modified: now / 1000,
                        attrs: attrs.clone(),
                        tags: tags.clone(),
                        q: Queue::new(a),
                        waiters: W::default(),
                        redrive,
                        purged_at: None,
                    },
                );
                Ok(Applied::Nothing)
            }
            Op::DeleteQueue { name } => {
                let q = self.queues.remove(name).ok_or_else(no_queue)?;
                q.waiters.wake();
                Ok(Applied::Nothing)
            }
            Op::SetAttrs { name, attrs, now } => {
                let q = self.queue(name)?;
                let fifo = q.q.attributes.fifo;
                let (a, redrive) = parse_attrs(attrs, fifo, false, Some(&q.attrs))?;
                for (k, v) in attrs {
                    if v.is_empty() && CLEARABLE.contains(&k.as_str()) {
                        q.attrs.remove(k);
                    } else {
                        q.attrs.insert(k.clone(), v.clone());
                    }
                }
                q.q.attributes = a;
                q.redrive = redrive;
                q.modified = now / 1000;
                q.waiters.wake();
                Ok(Applied::Nothing)
            }
            Op::Tag { name, tags } => {
                let q = self.queue(name)?;
                // Checked before anything changes: a refused TagQueue applies no tag.
                let added = tags.keys().filter(|k| !q.tags.contains_key(*k)).count();
                if q.tags.len() + added > MAX_TAGS {
                    // AWS's words; at most MAX_TAGS per queue.
                    return Err(invalid(format!("Too many tags added for queue {name}.")));
                }
                q.tags.extend(tags.clone());
                Ok(Applied::Nothing)
            }
            Op::Untag { name, keys } => {
                let q = self.queue(name)?;
                for k in keys {
                    q.tags.remove(k);
                }
                Ok(Applied::Nothing)
            }
            Op::Purge { name, now } => {
                let q = self.queue(name)?;
                if let Some(t) = q.purged_at
                    && now.saturating_sub(t) < 60_000
                {
                    return Err(Refusal::new(
                        "PurgeQueueInProgress",
                        format!(
                            "Only one PurgeQueue operation on {name} is allowed every 60 seconds."
                        ),
                    )
                    .with_query_code("AWS.SimpleQueueService.PurgeQueueInProgress"));
                }
                q.q.purge();
                q.purged_at = Some(*now);
                Ok(Applied::Nothing)
            }
            Op::Send {
                name,
                body,
                extra,
                id,
                delay,
                group,
                dedup,
                now,
            } => {
                let q = self.queue(name)?;
                let sent =
                    q.q.send_with(
                        body,
                        extra,
                        id.as_deref(),
                        *delay,
                        group.as_deref(),
                        dedup.as_deref(),
                        *now,
                    )
                    .map_err(q_err)?;
                q.waiters.wake();
                Ok(Applied::Sent(sent))
            }
            Op::Receive {
                name,
                max,
                vis,
                attempt,
                now,
            } => {
                let redrive = self.queue(name)?.redrive.clone();
                let dlq = redrive
                    .as_ref()
                    .filter(|(d, _)| d != name && self.queues.contains_key(d));
                let q = self.queue(name)?;
                q.q.attributes.max_receive_count = dlq.map(|(_, n)| *n);
                let (got, dead) =
                    q.q.receive_attempt(*max, *vis, attempt.as_deref(), *now)
                        .map_err(q_err)?;
                let moved = dead.len();
                if let Some((d, _)) = dlq
                    && !dead.is_empty()
                    && let Some(target) = self.queues.get_mut(d)
                {
                    for mut m in dead {
                        m.origin = Some(name.clone());
                        target.q.adopt(m, *now);
                    }
                    target.waiters.wake();
                }
                Ok(Applied::Received(got, moved))
            }
            Op::Delete { name, receipt } => {
                match self.queue(name)?.q.delete(receipt) {
                    Ok(()) => Ok(Applied::Nothing),
                    // AWS: a handle of an earlier delivery, or of a message already
                    // deleted, succeeds without deleting anything; only a handle
                    // that was never issued is invalid.
                    Err(QErr::ReceiptHandleIsInvalid) if issued(receipt) => Ok(Applied::Nothing),
                    Err(QErr::ReceiptHandleIsInvalid) => Err(bad_receipt(receipt)),
                    Err(e) => Err(q_err(e)),
                }
            }
            Op::Visibility {
                name,
                receipt,
                secs,
                now,
            } => {
                let q = self.queue(name)?;
                q.q.change_visibility(receipt, *secs, *now)
                    .map_err(|e| match e {
                        QErr::ReceiptHandleIsInvalid => bad_receipt(receipt),
                        e => q_err(e),
                    })?;
                q.waiters.wake();
                Ok(Applied::Nothing)
            }
            Op::Move {
                source,
                dest,
                handle,
                now,
            } => {
                let msgs: Vec<Message> = self.queue(source)?.q.take_all(usize::MAX);
                let mut moved = 0;
                let mut back: Vec<Message> = Vec::new();
                for m in msgs {
                    let target = dest.clone().or_else(|| m.origin.clone());
                    match target.and_then(|t| self.queues.get_mut(&t)) {
                        Some(t) => {
                            let mut m = m;
                            m.origin = None;
                            t.q.adopt(m, *now);
                            t.waiters.wake();
                            moved += 1;
                        }
                        None => back.push(m),
                    }
                }
                if let Some(s) = self.queues.get_mut(source) {
                    for m in back {
                        s.q.adopt(m, *now);
                    }
                }
                self.moves.push(MoveTask {
                    handle: handle.clone(),
                    source: source.clone(),
                    dest: dest.clone(),
                    moved,
                    started: *now,
                });
                Ok(Applied::Moved(moved))
            }
            Op::Image {
                name,
                created,
                modified,
                attrs,
                tags,
                redrive,
                purged_at,
                queue,
            } => {
                let mut q = (**queue).clone();
                if !attrs.contains_key("MaximumMessageSize") {
                    // An image without it (written by older versions, whose
                    // default differs) gets `MAX_MESSAGE_BYTES`, the value
                    // replaying the queue's records gives.
                    q.attributes.max_message_bytes = crate::MAX_MESSAGE_BYTES;
                }
                let old = self.queues.insert(
                    name.clone(),
                    QueueRt {
                        name: name.clone(),
                        created: *created,
                        modified: *modified,
                        attrs: attrs.clone(),
                        tags: tags.clone(),
                        q,
                        waiters: W::default(),
                        redrive: redrive.clone(),
                        purged_at: *purged_at,
                    },
                );
                if let Some(old) = old {
                    old.waiters.wake();
                }
                Ok(Applied::Nothing)
            }
            Op::ImageMessages { name, messages } => {
                let q = self.queue(name)?;
                q.q.restore_messages(messages.iter().cloned());
                Ok(Applied::Nothing)
            }
            Op::ImageMoves { moves } => {
                self.moves = moves.clone();
                Ok(Applied::Nothing)
            }
        }
    }

    /// About how many bytes `image` would write (a walk over the messages, no
    /// copies): whether compacting is worth it.
    pub fn image_estimate(&self) -> u64 {
        self.queues
            .values()
            .map(|q| {
                512 + q
                    .q
                    .messages()
                    .map(|m| {
                        // Field names, numbers, the id and a receipt: ~170 bytes.
                        170 + m.body.len()
                            + m.extra.len()
                            + m.group.as_ref().map_or(0, String::len)
                            + m.dedup_id.as_ref().map_or(0, String::len)
                    })
                    .sum::<usize>() as u64
            })
            .sum()
    }

    /// The ops that rebuild the queues exactly, messages in their full state (a
    /// compacted journal's image), handed to `out` one at a time.
    pub fn image(&self, out: &mut dyn FnMut(Op)) {
        for q in self.queues.values() {
            out(Op::Image {
                name: q.name.clone(),
                created: q.created,
                modified: q.modified,
                attrs: q.attrs.clone(),
                tags: q.tags.clone(),
                redrive: q.redrive.clone(),
                purged_at: q.purged_at,
                queue: Box::new(q.q.head()),
            });
            let mut chunk = Vec::new();
            let mut bytes = 0;
            for m in q.q.messages() {
                bytes += m.body.len() + m.extra.len() + 256;
                chunk.push(m.clone());
                if bytes >= IMAGE_CHUNK {
                    out(Op::ImageMessages {
                        name: q.name.clone(),
                        messages: std::mem::take(&mut chunk),
                    });
                    bytes = 0;
                }
            }
            if !chunk.is_empty() {
                out(Op::ImageMessages {
                    name: q.name.clone(),
                    messages: chunk,
                });
            }
        }
        if !self.moves.is_empty() {
            out(Op::ImageMoves {
                moves: self.moves.clone(),
            });
        }
    }

    /// The `Policy` document of queue `name` as stored (set by
    /// SetQueueAttributes, CreateQueue, AddPermission or RemovePermission), if it
    /// has one.
    pub fn policy_of(&self, queue: &str) -> Option<&str> {
        self.queues
            .get(queue)?
            .attrs
            .get("Policy")
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    /// What queue `name` wakes.
    pub fn waiters_of(&self, name: &str) -> Option<&W> {
        self.queues.get(name).map(|q| &q.waiters)
    }

    /// When the queue next has a message becoming visible (long polls wake then).
    pub fn next_visible(&self, name: &str) -> Option<Millis> {
        self.queues.get(name).and_then(|q| q.q.next_visible())
    }
}

/// Whether a receipt handle has the form this endpoint issues (`rh-SEQ-N`).
fn issued(receipt: &str) -> bool {
    receipt
        .strip_prefix("rh-")
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}
