//! The connection slot table of a listener: every open connection and what it is doing. A
//! connection that has not yet given a complete request (in its TLS handshake, reading a
//! request head, or idle between requests) can be evicted; one serving a request cannot. When a
//! new connection arrives and the table (or its share for handshakes) is full, one is closed to
//! make room: first those that have not even sent a whole ClientHello, then those stalled in a
//! request head, then those stalled later in the handshake, then idle keep-alives; within each,
//! the one that has waited longest. A client that sends its hello at once passes the first rank
//! in one round trip, so slow or silent clients (slowloris), even redialling as fast as they
//! are closed, only ever evict each other. Only when every slot serves a request is a newcomer
//! refused. Memory stays bounded by the table's size.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::{Async, Executor, Timer, channel, future};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected, the client's first flight (TLS ClientHello; on plain HTTP, a request head)
    /// not complete.
    Hello,
    /// TLS handshake past the client's hello (the server has answered).
    Handshake,
    /// Reading a request's head and body.
    Reading,
    /// Keep-alive, waiting for the next request.
    Idle,
    /// Serving a request (or a stream, or a spliced upgrade): never evicted.
    Busy,
}

impl Phase {
    /// Which go first when room is needed (lower first); None: never.
    fn eviction_rank(self) -> Option<u8> {
        match self {
            Phase::Hello => Some(0),
            Phase::Reading => Some(1),
            Phase::Handshake => Some(2),
            Phase::Idle => Some(3),
            Phase::Busy => None,
        }
    }

    fn handshaking(self) -> bool {
        matches!(self, Phase::Hello | Phase::Handshake)
    }
}

struct Entry {
    phase: Phase,
    since: Instant,
    /// Dropped to close the connection (its task waits on the receiver).
    kill: Option<channel::Sender<()>>,
}

#[derive(Default)]
struct Table {
    next: u64,
    conns: BTreeMap<u64, Entry>,
}

/// What eviction and refusal have done, for /metrics.
#[derive(Default, Debug)]
pub struct Counters {
    pub evicted_handshake: AtomicU64,
    pub evicted_reading: AtomicU64,
    pub evicted_idle: AtomicU64,
    pub refused: AtomicU64,
}

pub struct Slots {
    max: usize,
    max_handshakes: usize,
    table: Mutex<Table>,
    pub counters: Arc<Counters>,
}

/// A connection's place in the table, freed when dropped.
pub struct Slot {
    id: u64,
    slots: Arc<Slots>,
    /// Ends (with an error) when the connection is evicted.
    pub killed: channel::Receiver<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().conns.remove(&self.id);
    }
}

impl Slot {
    pub fn set(&self, phase: Phase) {
        if let Some(e) = self.slots.lock().conns.get_mut(&self.id) {
            e.phase = phase;
            e.since = Instant::now();
        }
    }
}

impl Slots {
    pub fn new(max: usize, max_handshakes: usize, counters: Arc<Counters>) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            max_handshakes: max_handshakes.min(max),
            table: Mutex::new(Table::default()),
            counters,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open connections, and of them those in their handshake.
    pub fn load(&self) -> (usize, usize) {
        let t = self.lock();
        (t.conns.len(), Self::handshakes(&t))
    }

    fn handshakes(t: &Table) -> usize {
        t.conns
            .values()
            .filter(|e| e.phase.handshaking() && e.kill.is_some())
            .count()
    }

    /// More than half the slots are taken: idle connections get short deadlines.
    pub fn under_pressure(&self) -> bool {
        self.lock().conns.len() > self.max / 2
    }

    /// Closes the connection of the lowest eviction rank that has waited longest in it (only
    /// handshakes when `handshakes_only`); false when there is none.
    fn evict(&self, t: &mut Table, handshakes_only: bool) -> bool {
        let victim = t
            .conns
            .iter()
            .filter(|(_, e)| e.kill.is_some() && (!handshakes_only || e.phase.handshaking()))
            .filter_map(|(id, e)| Some((e.phase.eviction_rank()?, e.since, *id, e.phase)))
            .min_by_key(|(rank, since, id, _)| (*rank, *since, *id))
            .map(|(_, _, id, phase)| (id, phase));
        let Some((id, phase)) = victim else {
            return false;
        };
        if let Some(e) = t.conns.get_mut(&id) {
            // Dropping the sender wakes the connection's task, which then closes.
            e.kill = None;
        }
        let c = &self.counters;
        match phase {
            Phase::Hello | Phase::Handshake => &c.evicted_handshake,
            Phase::Reading => &c.evicted_reading,
            _ => &c.evicted_idle,
        }
        .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// A slot for a new connection, evicting to make room; None (counted) when every slot
    /// serves a request.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut t = self.lock();
        if Self::handshakes(&t) >= self.max_handshakes {
            self.evict(&mut t, true);
        }
        // Evicted connections keep their entry until their task has closed them; they still
        // count against the table, so memory stays bounded even while they wind down.
        if t.conns.len() >= self.max && !self.evict(&mut t, false) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if t.conns.len() >= self.max + self.max_handshakes {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = t.next;
        t.next += 1;
        let (tx, killed) = channel::bounded(1);
        t.conns.insert(
            id,
            Entry {
                phase: Phase::Hello,
                since: Instant::now(),
                kill: Some(tx),
            },
        );
        Some(Slot {
            id,
            slots: self.clone(),
            killed,
        })
    }
}

/// Accepts connections on `listener` until it fails, on an executor on this thread: each is
/// admitted to `slots` (or closed at once) and served by `serve` as a task of its own, which
/// ends when `serve` returns or the connection is evicted.
pub fn accept_loop<F, Fut>(listener: TcpListener, slots: Arc<Slots>, what: &str, serve: F)
where
    F: Fn(Async<TcpStream>, Arc<Slot>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = match Async::new(listener) {
        Ok(l) => l,
        Err(e) => {
            crate::error!("{what} listener: {e}");
            return;
        }
    };
    let ex = Executor::new();
    smol::block_on(ex.run(async {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of fds and the like: back off instead of spinning.
                    crate::vinfo!(2, "{what} accept: {e}");
                    Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = slots.admit() else {
                continue;
            };
            let killed = slot.killed.clone();
            let work = serve(tcp, Arc::new(slot));
            ex.spawn(async move {
                future::or(work, async {
                    let _ = killed.recv().await;
                })
                .await;
            })
            .detach();
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn killed(s: &Slot) -> bool {
        s.killed.is_closed()
    }

    #[test]
    fn the_longest_waiting_handshake_makes_room() {
        let slots = Slots::new(4, 2, Arc::default());
        let a = slots.admit().unwrap_or_else(|| panic!("a"));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = slots.admit().unwrap_or_else(|| panic!("b"));
        // Two handshakes is the share: a third evicts the oldest, a.
        let c = slots.admit().unwrap_or_else(|| panic!("c"));
        assert!(killed(&a) && !killed(&b) && !killed(&c));
        assert_eq!(slots.counters.evicted_handshake.load(Ordering::Relaxed), 1);
        drop(a);
        b.set(Phase::Busy);
        c.set(Phase::Idle);
        let d = slots.admit().unwrap_or_else(|| panic!("d"));
        d.set(Phase::Busy);
        let e = slots.admit().unwrap_or_else(|| panic!("e"));
        e.set(Phase::Handshake);
        assert_eq!(slots.load(), (4, 1));
        // Full: a handshake past its hello goes before an idle keep-alive; busy ones stay.
        let f = slots.admit().unwrap_or_else(|| panic!("f"));
        assert!(killed(&e) && !killed(&c) && !killed(&b) && !killed(&d));
        drop(e);
        let g = slots.admit().unwrap_or_else(|| panic!("g"));
        assert!(
            killed(&f),
            "a client still in its hello goes first, newer or not"
        );
        drop(f);
        g.set(Phase::Busy);
        let h = slots.admit().unwrap_or_else(|| panic!("h"));
        assert!(killed(&c), "then the idle one");
        drop(c);
        h.set(Phase::Busy);
        // Every slot serves a request: refused.
        assert!(slots.admit().is_none());
        assert_eq!(slots.counters.refused.load(Ordering::Relaxed), 1);
        drop((b, d, g, h));
        assert_eq!(slots.load(), (0, 0));
    }

    /// Clients that dribble their hello, redialling as fast as they are closed, never evict
    /// one that has sent its hello.
    #[test]
    fn redialling_dribblers_evict_each_other_only() {
        let slots = Slots::new(64, 16, Arc::default());
        let mut held: Vec<Slot> = (0..16).filter_map(|_| slots.admit()).collect();
        let legit = slots.admit().unwrap_or_else(|| panic!("legit"));
        legit.set(Phase::Handshake);
        for _ in 0..10_000 {
            held.retain(|s| !killed(s));
            if let Some(s) = slots.admit() {
                held.push(s);
            }
        }
        assert!(!killed(&legit));
        assert!(slots.counters.evicted_handshake.load(Ordering::Relaxed) >= 9_000);
    }
}
