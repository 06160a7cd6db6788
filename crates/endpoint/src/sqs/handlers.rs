//! Every action of the SQS API as an operation on the queues: input checked,
//! the op built (applied and journaled by the caller), the output shaped.

use super::input::*;
use super::policy::*;
use super::state::*;
use super::{MAX_BATCH_BYTES, MAX_TAGS, MAX_WAIT_SECS, Millis};
use crate::error::ApiError;
use crate::request::sqs::*;
use crate::request::{Call, Entry, Request, Resource, name_of_arn};
use pantstack_sqs::attributes::SETTABLE;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

impl Sqs {
    pub(super) fn all_attributes(&self, q: &QueueRt, now: Millis) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let a = &q.q.attributes;
        let (visible, inflight, delayed) = q.q.counts(now);
        out.insert("QueueArn".into(), self.arn(&q.name));
        out.insert("ApproximateNumberOfMessages".into(), visible.to_string());
        out.insert(
            "ApproximateNumberOfMessagesNotVisible".into(),
            inflight.to_string(),
        );
        out.insert(
            "ApproximateNumberOfMessagesDelayed".into(),
            delayed.to_string(),
        );
        out.insert("CreatedTimestamp".into(), q.created.to_string());
        out.insert("LastModifiedTimestamp".into(), q.modified.to_string());
        out.insert(
            "VisibilityTimeout".into(),
            a.visibility_timeout_secs.to_string(),
        );
        out.insert("MaximumMessageSize".into(), a.max_message_bytes.to_string());
        out.insert(
            "MessageRetentionPeriod".into(),
            a.retention_secs.to_string(),
        );
        out.insert("DelaySeconds".into(), a.delay_secs.to_string());
        out.insert("ReceiveMessageWaitTimeSeconds".into(), "0".into());
        out.insert("SqsManagedSseEnabled".into(), "true".into());
        if a.fifo {
            out.insert("FifoQueue".into(), "true".into());
            out.insert(
                "ContentBasedDeduplication".into(),
                a.content_based_deduplication.to_string(),
            );
            out.insert("DeduplicationScope".into(), "queue".into());
            out.insert("FifoThroughputLimit".into(), "perQueue".into());
        }
        for (k, v) in &q.attrs {
            out.insert(k.clone(), v.clone());
        }
        if q.attrs.contains_key("KmsMasterKeyId") {
            out.insert("SqsManagedSseEnabled".into(), "false".into());
        }
        out
    }

    /// A RedrivePolicy's dead-letter queue must exist here (this region and
    /// account) and be of the source's type: "The dead-letter queue of a FIFO
    /// queue must also be a FIFO queue. Similarly, the dead-letter queue of a
    /// standard queue must also be a standard queue" (SQS developer guide,
    /// "Using dead-letter queues"). The errors are AWS's `InvalidParameterValue`
    /// with its reasons. Checked by the handler, not in `apply`: records journaled
    /// before this check replay as they were accepted.
    pub(super) fn check_redrive(
        &self,
        attrs: &BTreeMap<String, String>,
        fifo: bool,
    ) -> Result<(), ApiError> {
        let Some(policy) = attrs.get("RedrivePolicy").filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let Some(arn) = serde_json::from_str::<Value>(policy)
            .ok()
            .and_then(|v| text(&v, "deadLetterTargetArn").map(str::to_string))
        else {
            return Ok(()); // parse_attrs names what is wrong with it
        };
        let reason = |r: &str| {
            invalid(format!(
                "Value {policy} for parameter RedrivePolicy is invalid. Reason: {r}"
            ))
        };
        let dlq = name_of_arn(&arn)
            .filter(|n| self.arn(n) == arn)
            .and_then(|n| self.queues.get(n))
            .ok_or_else(|| reason("Dead letter target does not exist."))?;
        if dlq.q.attributes.fifo != fifo {
            return Err(reason(
                "Dead-letter target must be of same type as the source.",
            ));
        }
        Ok(())
    }

    /// The wait of a ReceiveMessage: its WaitTimeSeconds, else the queue's.
    pub fn wait_secs(&self, name: &str, r: &ReceiveMessage) -> Result<u64, ApiError> {
        let q = self.queues.get(name).ok_or_else(no_queue)?;
        match ranged(
            r.wait_time_seconds,
            "WaitTimeSeconds",
            0,
            MAX_WAIT_SECS as i64,
        )? {
            Some(w) => Ok(w),
            None => Ok(q
                .attrs
                .get("ReceiveMessageWaitTimeSeconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)),
        }
    }

    /// Handles every action but ReceiveMessage's waiting. Returns the response and
    /// the ops to journal (already applied).
    pub fn handle(
        &mut self,
        call: &Call,
        now: Millis,
        sender: &str,
        base_url: &str,
    ) -> Result<(Value, Vec<Op>), ApiError> {
        let account = self.account.clone();
        let url = |name: &str| pantstack_model::physical::queue_url(base_url, &account, name);
        let Request::Sqs(request) = &call.request else {
            return Err(ApiError::bad(
                "InvalidAction",
                format!("The action {} is not valid for this endpoint.", call.action),
            )
            .with_query_code("InvalidAction"));
        };
        // The queue comes from the parsed call (what IAM checked), never from input.
        let queue_name = || -> Result<String, ApiError> {
            call.queue()
                .map(str::to_string)
                .ok_or_else(|| missing("QueueUrl"))
        };
        let mut ops = Vec::new();
        let out = match request {
            SqsRequest::CreateQueue(r) => {
                let name = queue_name()?;
                let name = name.as_str();
                let attrs = r.attributes.clone().unwrap_or_default();
                let tags = r.tags.as_ref().or(r.query_tags.as_ref());
                let tags = tags.cloned().unwrap_or_default();
                if tags.len() > MAX_TAGS {
                    return Err(invalid(format!("Too many tags added for queue {name}.")));
                }
                if !self.queues.contains_key(name) {
                    check_policy(&attrs)?;
                    self.check_redrive(&attrs, name.ends_with(".fifo"))?;
                }
                let op = Op::Create {
                    name: name.to_string(),
                    attrs,
                    tags,
                    now,
                };
                let existed = self.queues.contains_key(name);
                self.apply(&op)?;
                if !existed {
                    ops.push(op);
                }
                json!({ "QueueUrl": url(name) })
            }
            SqsRequest::GetQueueUrl(_) => {
                let name = queue_name()?;
                let name = name.as_str();
                if !self.queues.contains_key(name) {
                    return Err(no_queue());
                }
                json!({ "QueueUrl": url(name) })
            }
            SqsRequest::ListQueues(r) => {
                let prefix = r.queue_name_prefix.as_deref().unwrap_or("");
                let max = ranged(r.max_results, "MaxResults", 1, 1000)?;
                let after = r.next_token.as_deref().unwrap_or("");
                let names: Vec<&String> = self
                    .queues
                    .keys()
                    .filter(|n| n.starts_with(prefix) && n.as_str() > after)
                    .collect();
                let take = max.map(|m| m as usize).unwrap_or(1000);
                let page: Vec<String> = names.iter().take(take).map(|n| url(n)).collect();
                let mut out = json!({ "QueueUrls": page });
                if max.is_some() && names.len() > take {
                    out["NextToken"] = json!(names[take - 1]);
                }
                out
            }
            SqsRequest::DeleteQueue(_) => {
                let op = Op::DeleteQueue {
                    name: queue_name()?,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::PurgeQueue(_) => {
                let op = Op::Purge {
                    name: queue_name()?,
                    now,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::GetQueueAttributes(r) => {
                let name = queue_name()?;
                let q = self.queues.get(&name).ok_or_else(no_queue)?;
                let all = self.all_attributes(q, now);
                let wanted = r.attribute_names.as_deref().unwrap_or_default();
                let mut out = Map::new();
                for w in wanted {
                    if w == "All" {
                        for (k, v) in &all {
                            out.insert(k.clone(), json!(v));
                        }
                    } else if let Some(v) = all.get(w) {
                        out.insert(w.clone(), json!(v));
                    } else if !SETTABLE.contains(&w.as_str())
                        && !w.starts_with("Approximate")
                        && !["QueueArn", "CreatedTimestamp", "LastModifiedTimestamp"]
                            .contains(&w.as_str())
                    {
                        return Err(ApiError::bad(
                            "InvalidAttributeName",
                            format!("Unknown Attribute {w}."),
                        ));
                    }
                }
                if out.is_empty() {
                    json!({})
                } else {
                    json!({ "Attributes": out })
                }
            }
            SqsRequest::SetQueueAttributes(r) => {
                let name = queue_name()?;
                let attrs = r.attributes.clone().unwrap_or_default();
                let fifo = self
                    .queues
                    .get(&name)
                    .ok_or_else(no_queue)?
                    .q
                    .attributes
                    .fifo;
                check_policy(&attrs)?;
                self.check_redrive(&attrs, fifo)?;
                let op = Op::SetAttrs { name, attrs, now };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::TagQueue(r) => {
                let op = Op::Tag {
                    name: queue_name()?,
                    tags: r.tags.clone().unwrap_or_default(),
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::UntagQueue(r) => {
                let op = Op::Untag {
                    name: queue_name()?,
                    keys: r.tag_keys.clone().unwrap_or_default(),
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::AddPermission(AddPermission { label, .. })
            | SqsRequest::RemovePermission(RemovePermission { label }) => {
                let name = queue_name()?;
                let q = self.queues.get(&name).ok_or_else(no_queue)?;
                let label = label.as_deref().ok_or_else(|| missing("Label"))?;
                let current = q.attrs.get("Policy").map(String::as_str);
                let policy = match request {
                    SqsRequest::AddPermission(r) => {
                        add_permission(current, &self.arn(&name), label, r)?
                    }
                    _ => remove_permission(current, label)?,
                };
                // Journaled as the SetQueueAttributes of the policy it leaves ("" when
                // no statement is left: the attribute is removed).
                let op = Op::SetAttrs {
                    name,
                    attrs: BTreeMap::from([("Policy".to_string(), policy)]),
                    now,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::ListQueueTags(_) => {
                let name = queue_name()?;
                let q = self.queues.get(&name).ok_or_else(no_queue)?;
                if q.tags.is_empty() {
                    json!({})
                } else {
                    json!({ "Tags": q.tags })
                }
            }
            SqsRequest::SendMessage(r) => {
                let name = queue_name()?;
                let msg = r.outgoing();
                let (op, md5_attrs) = self.send_op(&name, msg, now, sender)?;
                let r = self.apply(&op)?;
                let Applied::Sent(sent) = r else {
                    return Err(ApiError::internal("send did not send"));
                };
                ops.push(op);
                self.sent_json(&name, msg, &sent, md5_attrs)
            }
            SqsRequest::SendMessageBatch(r) => {
                let name = queue_name()?;
                self.queue(&name)?;
                let entries = batch_entries(&r.entries)?;
                // An entry refused as malformed counts for nothing.
                let total: usize = entries
                    .iter()
                    .filter_map(|e| e.item.as_ref().ok())
                    .map(|e| {
                        e.message_body.as_deref().map_or(0, str::len)
                            + check_message_attributes(e.message_attributes.as_ref())
                                .map_or(0, |(_, n)| n)
                    })
                    .sum();
                if total > MAX_BATCH_BYTES {
                    return Err(ApiError::bad(
                        "BatchRequestTooLong",
                        format!("Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent {total} bytes."),
                    )
                    .with_query_code("AWS.SimpleQueueService.BatchRequestTooLong"));
                }
                let mut ok = Vec::new();
                let mut failed = Vec::new();
                for e in entries {
                    let id = e.id.as_str();
                    let result = e.item.as_ref().map_err(Clone::clone).and_then(|item| {
                        let msg = item.outgoing();
                        let (op, md5) = self.send_op(&name, msg, now, sender)?;
                        match self.apply(&op)? {
                            Applied::Sent(sent) => Ok((op, sent, md5, msg)),
                            _ => Err(ApiError::internal("send did not send")),
                        }
                    });
                    match result {
                        Ok((op, sent, md5, msg)) => {
                            ops.push(op);
                            let mut r = self.sent_json(&name, msg, &sent, md5);
                            r["Id"] = json!(id);
                            ok.push(r);
                        }
                        Err(err) => failed.push(batch_error(id, &err)),
                    }
                }
                json!({ "Successful": ok, "Failed": failed })
            }
            SqsRequest::DeleteMessage(r) => {
                let name = queue_name()?;
                let receipt = r
                    .receipt_handle
                    .as_deref()
                    .ok_or_else(|| missing("ReceiptHandle"))?;
                let op = Op::Delete {
                    name,
                    receipt: receipt.to_string(),
                };
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::DeleteMessageBatch(r) => {
                let name = queue_name()?;
                self.queue(&name)?;
                self.batch(&r.entries, &mut ops, |e: &DeleteEntry| {
                    Ok(Op::Delete {
                        name: name.clone(),
                        receipt: e.receipt_handle.clone().unwrap_or_default(),
                    })
                })?
            }
            SqsRequest::ChangeMessageVisibility(r) => {
                let name = queue_name()?;
                let op = visibility_op(
                    &name,
                    r.receipt_handle.as_deref(),
                    r.visibility_timeout,
                    now,
                )?;
                self.apply(&op)?;
                ops.push(op);
                json!({})
            }
            SqsRequest::ChangeMessageVisibilityBatch(r) => {
                let name = queue_name()?;
                self.queue(&name)?;
                self.batch(&r.entries, &mut ops, |e: &VisibilityEntry| {
                    visibility_op(
                        &name,
                        e.receipt_handle.as_deref(),
                        e.visibility_timeout,
                        now,
                    )
                })?
            }
            SqsRequest::ListDeadLetterSourceQueues(_) => {
                let name = queue_name()?;
                self.queue(&name)?;
                let sources: Vec<String> = self
                    .queues
                    .values()
                    .filter(|q| q.redrive.as_ref().is_some_and(|(d, _)| *d == name))
                    .map(|q| url(&q.name))
                    .collect();
                json!({ "queueUrls": sources })
            }
            SqsRequest::StartMessageMoveTask(_) => {
                let Resource::Move {
                    source,
                    source_arn: src_arn,
                    dest,
                } = &call.resource
                else {
                    return Err(missing("SourceArn"));
                };
                if !self.queues.contains_key(source) {
                    return Err(ApiError::bad(
                        "ResourceNotFoundException",
                        format!(
                            "The resource that you specified for the SourceArn parameter doesn't exist: {src_arn}"
                        ),
                    ));
                }
                let source = source.clone();
                let is_dlq = self
                    .queues
                    .values()
                    .any(|q| q.redrive.as_ref().is_some_and(|(d, _)| *d == source));
                if !is_dlq {
                    return Err(invalid(format!(
                        "Source queue must be configured as a Dead Letter Queue: {src_arn}"
                    )));
                }
                let dest = match dest {
                    None => None,
                    Some((d, a)) if !self.queues.contains_key(d) => {
                        return Err(ApiError::bad(
                            "ResourceNotFoundException",
                            format!(
                                "The resource that you specified for the DestinationArn parameter doesn't exist: {a}"
                            ),
                        ));
                    }
                    Some((d, _)) => Some(d.clone()),
                };
                let handle = format!("move-{}-{now}", self.moves.len() + 1);
                let op = Op::Move {
                    source,
                    dest,
                    handle: handle.clone(),
                    now,
                };
                self.apply(&op)?;
                ops.push(op);
                json!({ "TaskHandle": handle })
            }
            SqsRequest::ListMessageMoveTasks(_) => {
                let source = call.queue().unwrap_or("");
                let results: Vec<Value> = self
                    .moves
                    .iter()
                    .rev()
                    .filter(|m| m.source == source)
                    .take(10)
                    .map(|m| {
                        let mut r = json!({
                            "Status": "COMPLETED",
                            "SourceArn": self.arn(&m.source),
                            "ApproximateNumberOfMessagesMoved": m.moved,
                            "ApproximateNumberOfMessagesToMove": m.moved,
                            "StartedTimestamp": m.started,
                        });
                        if let Some(d) = &m.dest {
                            r["DestinationArn"] = json!(self.arn(d));
                        }
                        r
                    })
                    .collect();
                json!({ "Results": results })
            }
            // Answered by the endpoint's receive path (`Core::receive`), which may wait
            // for messages; never handed here.
            SqsRequest::ReceiveMessage(_) => {
                return Err(ApiError::bad(
                    "InvalidAction",
                    format!("The action {} is not valid for this endpoint.", call.action),
                )
                .with_query_code("InvalidAction"));
            }
            SqsRequest::CancelMessageMoveTask(_) => {
                return Err(ApiError::bad(
                    "ResourceNotFoundException",
                    "The task is not running: move tasks of the local cloud complete at once.",
                ));
            }
        };
        Ok((out, ops))
    }

    /// A batch of deletes or visibility changes: each entry's op applied on its own;
    /// `Successful` and `Failed` entries by id.
    pub(super) fn batch<T>(
        &mut self,
        entries: &Option<Vec<Entry<T>>>,
        ops: &mut Vec<Op>,
        op_of: impl Fn(&T) -> Result<Op, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for e in batch_entries(entries)? {
            let id = e.id.as_str();
            let op = e.item.as_ref().map_err(Clone::clone).and_then(&op_of);
            match op.and_then(|op| self.apply(&op).map(|_| op)) {
                Ok(op) => {
                    ops.push(op);
                    ok.push(json!({ "Id": id }));
                }
                Err(err) => failed.push(batch_error(id, &err)),
            }
        }
        Ok(json!({ "Successful": ok, "Failed": failed }))
    }

    pub(super) fn send_op(
        &self,
        name: &str,
        msg: Outgoing<'_>,
        now: Millis,
        sender: &str,
    ) -> Result<(Op, Option<String>), ApiError> {
        let q = self.queues.get(name).ok_or_else(no_queue)?;
        let body = msg.body.ok_or_else(|| missing("MessageBody"))?;
        check_body(body)?;
        let (attrs, attr_bytes) = check_message_attributes(msg.attributes)?;
        if body.len() + attr_bytes > q.q.attributes.max_message_bytes {
            return Err(invalid(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                q.q.attributes.max_message_bytes
            )));
        }
        let delay = ranged(msg.delay_seconds, "DelaySeconds", 0, 900)?;
        let group = msg.group_id.map(str::to_string);
        let dedup = msg.deduplication_id.map(str::to_string);
        if !q.q.attributes.fifo && dedup.is_some() {
            return Err(invalid(
                "The request include parameter MessageDeduplicationId that is not valid for this queue type.",
            ));
        }
        let md5 = (!attrs.is_empty()).then(|| md5_of_attributes(&attrs));
        // `{"a":attrs,"s":sender}`, written straight from the map (no `Value`).
        #[derive(Serialize)]
        struct Extra<'a> {
            a: &'a Map<String, Value>,
            s: &'a str,
        }
        let extra = serde_json::to_string(&Extra {
            a: &attrs,
            s: sender,
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok((
            Op::Send {
                name: name.to_string(),
                body: body.to_string(),
                extra,
                id: Some(message_id()),
                delay,
                group,
                dedup,
                now,
            },
            md5,
        ))
    }

    pub(super) fn sent_json(
        &self,
        name: &str,
        msg: Outgoing<'_>,
        sent: &pantstack_sqs::Sent,
        md5_attrs: Option<String>,
    ) -> Value {
        let mut r = json!({
            "MessageId": sent.message_id,
            "MD5OfMessageBody": md5_hex(msg.body.unwrap_or("")),
        });
        if let Some(m) = md5_attrs {
            r["MD5OfMessageAttributes"] = json!(m);
        }
        if self.queues.get(name).is_some_and(|q| q.q.attributes.fifo) {
            r["SequenceNumber"] = json!(format!("{:020}", sent.sequence));
        }
        r
    }

    /// The op of a ReceiveMessage (checked) for queue `name`.
    pub fn receive_op(&self, name: &str, r: &ReceiveMessage, now: Millis) -> Result<Op, ApiError> {
        self.queues.get(name).ok_or_else(no_queue)?;
        let max = ranged(r.max_number_of_messages, "MaxNumberOfMessages", 1, 10)?.unwrap_or(1);
        let vis = ranged(r.visibility_timeout, "VisibilityTimeout", 0, 43_200)?;
        let attempt = r.receive_request_attempt_id.clone();
        Ok(Op::Receive {
            name: name.to_string(),
            max: max as usize,
            vis,
            attempt,
            now,
        })
    }

    /// The response of a ReceiveMessage for what was delivered.
    pub fn received_json(
        &self,
        name: &str,
        r: &ReceiveMessage,
        got: &[pantstack_sqs::Delivery],
    ) -> Value {
        let names = |l: &Option<Vec<String>>| l.as_deref().unwrap_or_default().to_vec();
        let mut system = names(&r.message_system_attribute_names);
        system.extend(names(&r.attribute_names));
        let all_sys = system.iter().any(|s| s == "All");
        let want_sys = |n: &str| all_sys || system.iter().any(|s| s == n);
        let user = names(&r.message_attribute_names);
        let want_user = |n: &str| {
            user.iter().any(|u| {
                // "All or .* ... You can also use all message attributes starting
                // with a prefix, for example bar.*" (SQS API reference,
                // ReceiveMessage, MessageAttributeNames): `bar.*` is every name
                // that starts with `bar`, `bar.x` and `barx` alike (as the regex).
                u == "All"
                    || u == ".*"
                    || u == n
                    || u.strip_suffix(".*").is_some_and(|p| n.starts_with(p))
            })
        };
        let fifo = self.queues.get(name).is_some_and(|q| q.q.attributes.fifo);
        let msgs: Vec<Value> = got
            .iter()
            .map(|d| {
                let extra: Value = serde_json::from_str(&d.extra).unwrap_or(Value::Null);
                let mut m = json!({
                    "MessageId": d.message_id,
                    "ReceiptHandle": d.receipt_handle,
                    "MD5OfBody": md5_hex(&d.body),
                    "Body": d.body,
                });
                let mut a = Map::new();
                let mut put = |k: &str, v: String| {
                    if want_sys(k) {
                        a.insert(k.to_string(), json!(v));
                    }
                };
                put("SenderId", text(&extra, "s").unwrap_or("").to_string());
                put("SentTimestamp", d.sent_at.to_string());
                put("ApproximateReceiveCount", d.receive_count.to_string());
                put(
                    "ApproximateFirstReceiveTimestamp",
                    d.first_receive_at.to_string(),
                );
                if fifo {
                    put("SequenceNumber", format!("{:020}", d.sequence));
                    if let Some(g) = &d.group {
                        put("MessageGroupId", g.clone());
                    }
                    if let Some(dd) = &d.dedup_id {
                        put("MessageDeduplicationId", dd.clone());
                    }
                }
                if !a.is_empty() {
                    m["Attributes"] = Value::Object(a);
                }
                if let Some(attrs) = extra.get("a").and_then(Value::as_object) {
                    let chosen: Map<String, Value> = attrs
                        .iter()
                        .filter(|(k, _)| want_user(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if !chosen.is_empty() {
                        m["MD5OfMessageAttributes"] = json!(md5_of_attributes(&chosen));
                        m["MessageAttributes"] = Value::Object(chosen);
                    }
                }
                m
            })
            .collect();
        if msgs.is_empty() {
            json!({})
        } else {
            json!({ "Messages": msgs })
        }
    }
}

/// A fresh message id: a version 4 UUID, as SQS's are (36 characters). Its 122
/// random bits come from two SipHash-1-3 hashes of a per-process counter under
/// a key the standard library draws from the OS once per process: unpredictable
/// across restarts, never repeated within one, and no system call per message.
/// Drawn by the handler and carried in the op, so replay gives the same id.
pub fn message_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = key.build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.finish()
    };
    let (hi, lo) = (half(0x5153_5f69_645f_6869), half(0x5153_5f69_645f_6c6f));
    // Version 4 in the third group, variant 10 in the fourth (RFC 9562).
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    let hex = pantstack_sqs::push_hex;
    let mut id = String::with_capacity(36);
    hex(&mut id, hi >> 32, 8);
    id.push('-');
    hex(&mut id, (hi >> 16) & 0xffff, 4);
    id.push('-');
    hex(&mut id, hi & 0xffff, 4);
    id.push('-');
    hex(&mut id, lo >> 48, 4);
    id.push('-');
    hex(&mut id, lo & 0xffff_ffff_ffff, 12);
    id
}

/// A `Failed` entry of a batch response.
pub(super) fn batch_error(id: &str, err: &ApiError) -> Value {
    json!({ "Id": id, "SenderFault": err.sender, "Code": err.query(), "Message": err.message })
}

pub(super) fn visibility_op(
    name: &str,
    receipt: Option<&str>,
    visibility_timeout: Option<i64>,
    now: Millis,
) -> Result<Op, ApiError> {
    let receipt = receipt.ok_or_else(|| missing("ReceiptHandle"))?;
    let secs = ranged(visibility_timeout, "VisibilityTimeout", 0, 43_200)?
        .ok_or_else(|| missing("VisibilityTimeout"))?;
    Ok(Op::Visibility {
        name: name.to_string(),
        receipt: receipt.to_string(),
        secs,
        now,
    })
}
