//! One error type for every endpoint, rendered in the wire format of the protocol
//! the request came in (JSON, query XML), with the code AWS uses so that SDKs raise
//! the same exception types.

/// An error as AWS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The modelled error shape (`QueueDoesNotExist`, `ParameterNotFound`).
    pub code: String,
    /// SQS: the query-protocol code (`AWS.SimpleQueueService.NonExistentQueue`),
    /// sent in `x-amzn-query-error` by the JSON protocol.
    pub query_code: Option<String>,
    pub message: String,
    /// Whose fault: the caller's (`Sender`) or ours (`Receiver`).
    pub sender: bool,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            query_code: None,
            message: message.into(),
            sender: status < 500,
        }
    }

    /// A 400 with the same code in both protocols.
    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn with_query_code(mut self, q: &str) -> Self {
        self.query_code = Some(q.to_string());
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalFailure", message)
    }

    /// The code of the query protocol (falls back to the shape name).
    pub fn query(&self) -> &str {
        self.query_code.as_deref().unwrap_or(&self.code)
    }

    pub fn fault(&self) -> &'static str {
        if self.sender { "Sender" } else { "Receiver" }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// S3's answer to a body whose SHA-256 is not the signed `x-amz-content-sha256`.
pub(crate) fn xamz_sha256_mismatch() -> ApiError {
    ApiError::bad(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
}
