//! The endpoint's queues: `pantstack_sqs::Queues`, each queue waking the long
//! polls that wait on it through a tokio `Notify`.

use crate::error::ApiError;
use pantstack_sqs::{Queues, Refusal, Wake};
use std::sync::Arc;
use tokio::sync::Notify;

pub use pantstack_sqs::{Applied, MoveTask, Op};

/// One queue of the endpoint.
pub type QueueRt = pantstack_sqs::QueueRt<Waiters>;

/// The long polls waiting on a queue.
#[derive(Clone, Default)]
pub struct Waiters(pub Arc<Notify>);

impl Wake for Waiters {
    fn wake(&self) {
        self.0.notify_waiters();
    }
}

/// The queues, with the handlers of the API's actions (`handlers`).
#[derive(Default)]
pub struct Sqs(Queues<Waiters>);

impl std::ops::Deref for Sqs {
    type Target = Queues<Waiters>;
    fn deref(&self) -> &Queues<Waiters> {
        &self.0
    }
}

impl std::ops::DerefMut for Sqs {
    fn deref_mut(&mut self) -> &mut Queues<Waiters> {
        &mut self.0
    }
}

impl Sqs {
    pub fn new(region: &str, account: &str) -> Self {
        Sqs(Queues::new(region, account))
    }

    /// Applies one op (`Queues::apply`); a refusal as the API answers it.
    pub fn apply(&mut self, op: &Op) -> Result<Applied, ApiError> {
        self.0.apply(op).map_err(ApiError::from)
    }

    pub fn arn(&self, name: &str) -> String {
        crate::iam::queue_arn(&self.region, &self.account, name)
    }

    pub fn notify_of(&self, name: &str) -> Option<Arc<Notify>> {
        self.waiters_of(name).map(|w| w.0.clone())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let e = ApiError::bad(r.code, r.message);
        match r.query_code {
            Some(q) => e.with_query_code(q),
            None => e,
        }
    }
}
