//! Streamed response bodies: a producer runs on a thread of its own and hands chunks to the
//! connection through a channel of a few slots, so a slow client holds the producer (not
//! memory) and a gone client stops it. Streams are capped; past the cap a request gets 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use smol::channel;

/// Streams running at once at most (each is a thread with a small stack).
pub const MAX_STREAMS: usize = 64;
/// Chunks waiting between a producer and its connection at most.
const QUEUE: usize = 4;

/// Makes a body: sends its chunks through the sink until done or the client is gone.
pub type Producer = Box<dyn FnOnce(&mut Sink) + Send>;

/// Where a producer puts its chunks.
pub struct Sink {
    tx: channel::Sender<Vec<u8>>,
}

impl Sink {
    /// Sends one chunk, waiting while the connection is behind; false when the client is gone.
    pub fn send(&mut self, chunk: Vec<u8>) -> bool {
        chunk.is_empty() || self.tx.send_blocking(chunk).is_ok()
    }

    /// The client went away (the connection dropped its end).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Counts running streams; one slot per [`start`].
#[derive(Default)]
pub struct Streams {
    running: Arc<AtomicUsize>,
}

struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Streams {
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs `producer` on a thread of its own; the receiver yields its chunks and ends when it
    /// is done. None when [`MAX_STREAMS`] are running or no thread could be started.
    pub fn start(&self, producer: Producer) -> Option<channel::Receiver<Vec<u8>>> {
        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let slot = Running(self.running.clone());
        let (tx, rx) = channel::bounded(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("10250-stream".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _slot = slot;
                producer(&mut Sink { tx });
            });
        match spawned {
            Ok(_) => Some(rx),
            Err(e) => {
                crate::error!("starting a 10250 stream thread: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_reader_holds_the_producer_and_a_gone_one_stops_it() {
        let streams = Streams::default();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let rx = streams
            .start(Box::new(move |sink| {
                while sink.send(vec![0u8; 1024]) {
                    m.fetch_add(1, Ordering::SeqCst);
                }
            }))
            .unwrap_or_else(|| panic!("no stream"));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let queued = made.load(Ordering::SeqCst);
        assert!(queued <= QUEUE + 1, "the producer ran ahead: {queued}");
        assert_eq!(rx.recv_blocking().map(|c| c.len()), Ok(1024));
        drop(rx);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while streams.running() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the producer kept running"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn streams_are_capped() {
        let streams = Streams::default();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold_rx));
        let mut rxs = Vec::new();
        for _ in 0..MAX_STREAMS {
            let h = hold.clone();
            rxs.push(
                streams
                    .start(Box::new(move |_| {
                        let _ = h.lock().map(|r| r.recv());
                    }))
                    .unwrap_or_else(|| panic!("below the cap")),
            );
        }
        assert!(streams.start(Box::new(|_| {})).is_none(), "past the cap");
        drop(hold_tx);
    }
}
