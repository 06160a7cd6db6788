//! The errors SQS answers with: a code, the query protocol's code where it
//! differs, and AWS's message. Every one is the caller's (HTTP 400).

use crate::Error as QErr;

/// A request SQS refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The modelled error shape (`QueueDoesNotExist`).
    pub code: &'static str,
    /// The query protocol's code (`AWS.SimpleQueueService.NonExistentQueue`).
    pub query_code: Option<&'static str>,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            query_code: None,
            message: message.into(),
        }
    }

    pub fn with_query_code(mut self, q: &'static str) -> Refusal {
        self.query_code = Some(q);
        self
    }
}

/// The queue name of an SQS queue ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`).
pub fn name_of_arn(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", _, _, name] if !name.is_empty() => Some(name),
        _ => None,
    }
}

pub fn no_queue() -> Refusal {
    Refusal::new("QueueDoesNotExist", "The specified queue does not exist.")
        .with_query_code("AWS.SimpleQueueService.NonExistentQueue")
}

/// AWS's `ReceiptHandleIsInvalid`, naming the handle.
pub fn bad_receipt(receipt: &str) -> Refusal {
    Refusal::new(
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{receipt}\" is not a valid receipt handle."),
    )
}

/// AWS's `InvalidAttributeValue` for attribute `k` ("Invalid value for the
/// parameter VisibilityTimeout.").
pub fn bad_attribute(k: &str) -> Refusal {
    Refusal::new(
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {k}."),
    )
}

pub fn invalid(msg: impl Into<String>) -> Refusal {
    Refusal::new("InvalidParameterValue", msg)
}

pub fn q_err(e: QErr) -> Refusal {
    match e {
        QErr::InvalidParameterValue(m) => invalid(m),
        QErr::MissingParameter(m) => Refusal::new("MissingParameter", m),
        QErr::ReceiptHandleIsInvalid => Refusal::new(
            "ReceiptHandleIsInvalid",
            "The input receipt handle is not a valid receipt handle.",
        ),
        QErr::MessageNotInflight => Refusal::new(
            "MessageNotInflight",
            "The message referred to isn't in flight.",
        )
        .with_query_code("AWS.SimpleQueueService.MessageNotInflight"),
    }
}
