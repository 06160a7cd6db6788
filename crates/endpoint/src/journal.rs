//! Group commit around the durable record log: requests hand their records to one
//! writer thread, which appends everything pending with one write and one
//! `fdatasync`, then acknowledges each request. A request answers its client only
//! after its records are on disk.
//!
//! Records are submitted while the caller still holds the lock of the state they
//! change, so the log's order is the order the changes were applied in, and replaying
//! the log rebuilds exactly the acknowledged state.

use pantstack_store::{Log, Recovery};
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most records written with one sync.
const GROUP: usize = 4096;
/// When the last group had several requests (clients are concurrent), the writer
/// sleeps this long before syncing, so one sync covers what arrives meanwhile
/// (a sync costs ~110 µs of CPU on a virtio disk, whatever it carries). A lone
/// client (groups of one) never waits.
const GATHER: std::time::Duration = std::time::Duration::from_micros(150);

type Ack = oneshot::Sender<Result<(), String>>;

pub struct Journal {
    tx: mpsc::Sender<(Vec<Vec<u8>>, Ack)>,
}

/// What a submit resolves to once its records are durable.
pub type Durable = oneshot::Receiver<Result<(), String>>;

impl Journal {
    /// Opens the log at `path`, calling `each` for every record in order, and starts
    /// the writer thread.
    pub fn open(path: &Path, each: impl FnMut(&[u8])) -> Result<(Journal, Recovery), String> {
        let (log, recovery) =
            Log::open(path, each).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel::<(Vec<Vec<u8>>, Ack)>();
        std::thread::Builder::new()
            .name("pantstack-journal".into())
            .spawn(move || writer(log, rx))
            .map_err(|e| format!("cannot start the journal writer: {e}"))?;
        Ok((Journal { tx }, recovery))
    }

    /// Queues records for the next group commit. Call it while holding the lock of
    /// the state the records describe; await the result without it.
    pub fn submit(&self, records: Vec<Vec<u8>>) -> Durable {
        let (ack, rx) = oneshot::channel();
        if records.is_empty() {
            let _ = ack.send(Ok(()));
        } else if let Err(mpsc::SendError((_, ack))) = self.tx.send((records, ack)) {
            let _ = ack.send(Err("the journal writer has stopped".into()));
        }
        rx
    }
}

fn writer(mut log: Log, rx: mpsc::Receiver<(Vec<Vec<u8>>, Ack)>) {
    let mut last_requests = 1;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut n = batch[0].0.len();
        // Concurrent clients: sleep once for the window (one wake-up, not one per
        // arriving record), then take everything that came.
        if last_requests >= 2 {
            std::thread::sleep(GATHER);
        }
        while n < GROUP
            && let Ok(more) = rx.try_recv()
        {
            n += more.0.len();
            batch.push(more);
        }
        last_requests = batch.len();
        let refs: Vec<&[u8]> = batch
            .iter()
            .flat_map(|(records, _)| records.iter().map(Vec::as_slice))
            .collect();
        let result = log
            .append_all(&refs)
            .map_err(|e| format!("cannot write {}: {e}", log.path().display()));
        for (_, ack) in batch {
            let _ = ack.send(result.clone());
        }
    }
}
