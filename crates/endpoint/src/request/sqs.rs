//! The SQS actions and their typed requests: one struct per action (its members
//! besides the resource's), one [`SqsRequest`] over them.

use super::members::{
    At, Entry, EntryItem, MessageAttributes, StringMap, attempt_id, entry_member, queue_tags,
    sqs_list,
};
use crate::error::ApiError;
use serde_json::{Map, Value};

actions! {
    SqsAction, SqsRequest {
        CreateQueue QueueName {
            attributes: Option<StringMap> = "Attributes",
            tags: Option<StringMap> = "tags" with queue_tags,
            query_tags: Option<StringMap> = "Tags" with queue_tags,
        }
        GetQueueUrl QueueName {
            queue_owner_aws_account_id: Option<String> = "QueueOwnerAWSAccountId",
        }
        ListQueues Nothing {
            queue_name_prefix: Option<String> = "QueueNamePrefix",
            next_token: Option<String> = "NextToken",
            max_results: Option<i64> = "MaxResults",
        }
        DeleteQueue QueueUrl {}
        PurgeQueue QueueUrl {}
        GetQueueAttributes QueueUrl {
            attribute_names: Option<Vec<String>> = "AttributeNames",
        }
        SetQueueAttributes QueueUrl {
            attributes: Option<StringMap> = "Attributes",
        }
        TagQueue QueueUrl {
            tags: Option<StringMap> = "Tags",
        }
        UntagQueue QueueUrl {
            tag_keys: Option<Vec<String>> = "TagKeys",
        }
        ListQueueTags QueueUrl {}
        SendMessage QueueUrl {
            message_body: Option<String> = "MessageBody",
            delay_seconds: Option<i64> = "DelaySeconds",
            message_attributes: Option<MessageAttributes> = "MessageAttributes",
            message_system_attributes: Option<MessageAttributes> = "MessageSystemAttributes",
            message_deduplication_id: Option<String> = "MessageDeduplicationId",
            message_group_id: Option<String> = "MessageGroupId",
        }
        SendMessageBatch QueueUrl {
            entries: Option<Vec<Entry<SendEntry>>> = "Entries",
        }
        ReceiveMessage QueueUrl {
            attribute_names: Option<Vec<String>> = "AttributeNames",
            message_system_attribute_names: Option<Vec<String>> = "MessageSystemAttributeNames",
            message_attribute_names: Option<Vec<String>> = "MessageAttributeNames",
            max_number_of_messages: Option<i64> = "MaxNumberOfMessages",
            visibility_timeout: Option<i64> = "VisibilityTimeout",
            wait_time_seconds: Option<i64> = "WaitTimeSeconds",
            receive_request_attempt_id: Option<String> = "ReceiveRequestAttemptId" with attempt_id,
        }
        DeleteMessage QueueUrl {
            receipt_handle: Option<String> = "ReceiptHandle",
        }
        DeleteMessageBatch QueueUrl {
            entries: Option<Vec<Entry<DeleteEntry>>> = "Entries",
        }
        ChangeMessageVisibility QueueUrl {
            receipt_handle: Option<String> = "ReceiptHandle",
            visibility_timeout: Option<i64> = "VisibilityTimeout",
        }
        ChangeMessageVisibilityBatch QueueUrl {
            entries: Option<Vec<Entry<VisibilityEntry>>> = "Entries",
        }
        ListDeadLetterSourceQueues QueueUrl {
            next_token: Option<String> = "NextToken",
            max_results: Option<i64> = "MaxResults",
        }
        StartMessageMoveTask Move {
            max_number_of_messages_per_second: Option<i64> = "MaxNumberOfMessagesPerSecond",
        }
        ListMessageMoveTasks Move {
            max_results: Option<i64> = "MaxResults",
        }
        CancelMessageMoveTask TaskHandle {}
        AddPermission QueueUrl {
            label: Option<String> = "Label",
            aws_account_ids: Option<Vec<String>> = "AWSAccountIds" with sqs_list,
            actions: Option<Vec<String>> = "Actions" with sqs_list,
        }
        RemovePermission QueueUrl {
            label: Option<String> = "Label",
        }
    }
}

/// One message to send, of SendMessage or of a SendMessageBatch entry.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub body: Option<&'a str>,
    pub delay_seconds: Option<i64>,
    pub attributes: Option<&'a MessageAttributes>,
    pub deduplication_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
}

impl SendMessage {
    pub fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            body: self.message_body.as_deref(),
            delay_seconds: self.delay_seconds,
            attributes: self.message_attributes.as_ref(),
            deduplication_id: self.message_deduplication_id.as_deref(),
            group_id: self.message_group_id.as_deref(),
        }
    }
}

/// A SendMessageBatch entry (`SendMessageBatchRequestEntry`) besides its `Id`.
#[derive(Clone, Debug, Default)]
pub struct SendEntry {
    pub message_body: Option<String>,
    pub delay_seconds: Option<i64>,
    pub message_attributes: Option<MessageAttributes>,
    pub message_deduplication_id: Option<String>,
    pub message_group_id: Option<String>,
}

impl SendEntry {
    pub fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            body: self.message_body.as_deref(),
            delay_seconds: self.delay_seconds,
            attributes: self.message_attributes.as_ref(),
            deduplication_id: self.message_deduplication_id.as_deref(),
            group_id: self.message_group_id.as_deref(),
        }
    }
}

impl EntryItem for SendEntry {
    fn parse(m: &mut Map<String, Value>, at: &At) -> Result<Self, ApiError> {
        Ok(SendEntry {
            message_body: entry_member(m, at, "MessageBody")?,
            delay_seconds: entry_member(m, at, "DelaySeconds")?,
            message_attributes: entry_member(m, at, "MessageAttributes")?,
            message_deduplication_id: entry_member(m, at, "MessageDeduplicationId")?,
            message_group_id: entry_member(m, at, "MessageGroupId")?,
        })
    }
}

/// A DeleteMessageBatch entry besides its `Id`.
#[derive(Clone, Debug, Default)]
pub struct DeleteEntry {
    pub receipt_handle: Option<String>,
}

impl EntryItem for DeleteEntry {
    fn parse(m: &mut Map<String, Value>, at: &At) -> Result<Self, ApiError> {
        Ok(DeleteEntry {
            receipt_handle: entry_member(m, at, "ReceiptHandle")?,
        })
    }
}

/// A ChangeMessageVisibilityBatch entry besides its `Id`.
#[derive(Clone, Debug, Default)]
pub struct VisibilityEntry {
    pub receipt_handle: Option<String>,
    pub visibility_timeout: Option<i64>,
}

impl EntryItem for VisibilityEntry {
    fn parse(m: &mut Map<String, Value>, at: &At) -> Result<Self, ApiError> {
        Ok(VisibilityEntry {
            receipt_handle: entry_member(m, at, "ReceiptHandle")?,
            visibility_timeout: entry_member(m, at, "VisibilityTimeout")?,
        })
    }
}
