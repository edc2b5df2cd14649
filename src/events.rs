//! Events, as the kubelet's recorder sends them: a bounded queue that never blocks the caller,
//! one sender thread paced by `eventRecordQPS`/`eventBurst`, and client-go's EventCorrelator
//! before each send: a per-object spam filter (25 at once, then one per 5 minutes), the
//! aggregation of similar events (more than 10 messages of one object and reason in 10 minutes
//! become one `(combined from similar events): ...` event) and the deduplication of identical
//! ones (the Event already sent is patched with its `count` and `lastTimestamp`, not sent
//! again). The correlator is pure, with the time passed in.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::kube::types::{Event, EventSource, ObjectMeta, ObjectReference};
use crate::kube::{KubeError, Lazy, PatchKind};
use crate::node::status::NodeEvent;
use crate::stop::Stop;
use crate::timefmt::Civil;
use crate::{vinfo, warn};

/// Queues events for the sender thread; a full queue drops the event (logged), never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: SyncSender<(Option<ObjectReference>, NodeEvent)>,
    node: String,
}

impl Recorder {
    /// An event about the node.
    pub fn record(&self, e: NodeEvent) {
        vinfo!(
            2,
            "Event occurred object={:?} kind=\"Node\" type={:?} reason={:?} message={:?}",
            self.node,
            if e.warning { "Warning" } else { "Normal" },
            e.reason,
            e.message
        );
        if let Err(TrySendError::Full((_, e))) = self.tx.try_send((None, e)) {
            warn!("event queue full; dropped event {}", e.reason);
        }
    }

    /// An event about another object (a pod, one of its containers).
    pub fn record_about(&self, object: ObjectReference, e: NodeEvent) {
        vinfo!(
            2,
            "Event occurred object=\"{}/{}\" kind={:?} type={:?} reason={:?} message={:?}",
            object.namespace,
            object.name,
            object.kind,
            if e.warning { "Warning" } else { "Normal" },
            e.reason,
            e.message
        );
        if let Err(TrySendError::Full((_, e))) = self.tx.try_send((Some(object), e)) {
            warn!("event queue full; dropped event {}", e.reason);
        }
    }
}

/// The recorder and its sender for node `node`: at most `qps` a second, bursts of `burst`
/// (qps 0: no limit, as eventRecordQPS).
pub fn recorder(
    node: &str,
    qps: i32,
    burst: i32,
    client: Arc<Lazy>,
    stop: Arc<Stop>,
) -> (Recorder, EventSender) {
    let (tx, rx) = std::sync::mpsc::sync_channel(256);
    (
        Recorder {
            tx,
            node: node.to_string(),
        },
        EventSender {
            rx,
            client,
            stop,
            node: node.to_string(),
            qps,
            burst: burst.max(1),
            correlator: Correlator::default(),
        },
    )
}

/// What the correlator makes of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Dropped by the spam filter.
    Dropped,
    /// A new Event object to create.
    Create(Event),
    /// An Event seen before: patch it (`name`) with this count, message and time.
    Patch { event: Event, name: String },
}

/// Entries each cache keeps at most (client-go's LRU size).
const CACHE: usize = 4096;
/// Similar events (same object, type and reason) past this many messages are combined.
const AGGREGATE_MAX: usize = 10;
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// The spam filter's bucket per object: this many at once, then one per 5 minutes.
const SPAM_BURST: f64 = 25.0;
const SPAM_QPS: f64 = 1.0 / 300.0;

#[derive(Debug, Clone)]
struct Aggregate {
    messages: BTreeSet<String>,
    last: Instant,
}

#[derive(Debug, Clone)]
struct Logged {
    name: String,
    count: i32,
    first: Option<String>,
    last: Instant,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// client-go's EventCorrelator: spam filter, aggregator, logger.
#[derive(Debug, Default)]
pub struct Correlator {
    spam: HashMap<String, Bucket>,
    aggregates: HashMap<String, Aggregate>,
    logged: HashMap<String, Logged>,
}

/// Keeps a cache at [`CACHE`] entries, dropping the least recently touched.
fn bound<V>(m: &mut HashMap<String, V>, touched: impl Fn(&V) -> Instant) {
    if m.len() > CACHE
        && let Some(k) = m
            .iter()
            .min_by_key(|(_, v)| touched(v))
            .map(|(k, _)| k.clone())
    {
        m.remove(&k);
    }
}

fn object_key(e: &Event) -> String {
    let o = &e.involved_object;
    [
        e.source.component.as_str(),
        &e.source.host,
        &o.kind,
        &o.namespace,
        &o.name,
        &o.uid,
        &o.api_version,
    ]
    .join("\u{0}")
}

impl Correlator {
    /// The event `e` (a fresh one, count 1) at `now` (`time` its API timestamp).
    pub fn observe(&mut self, mut e: Event, now: Instant, time: &str) -> Outcome {
        let object = object_key(&e);
        // The spam filter: a token bucket per object.
        let b = self.spam.entry(object.clone()).or_insert(Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * SPAM_QPS).min(SPAM_BURST);
        b.at = now;
        if b.tokens < 1.0 {
            return Outcome::Dropped;
        }
        b.tokens -= 1.0;
        bound(&mut self.spam, |b| b.at);
        // The aggregator: similar events (same object, type, reason) with many messages.
        let similar = [object.as_str(), &e.type_, &e.reason].join("\u{0}");
        let field = &e.involved_object.field_path;
        let mut key = [similar.as_str(), field, &e.message].join("\u{0}");
        let agg = self
            .aggregates
            .entry(similar.clone())
            .or_insert_with(|| Aggregate {
                messages: BTreeSet::new(),
                last: now,
            });
        if now.duration_since(agg.last) > AGGREGATE_INTERVAL {
            agg.messages.clear();
        }
        agg.messages.insert(e.message.clone());
        agg.last = now;
        if agg.messages.len() >= AGGREGATE_MAX {
            agg.messages.pop_first();
            e.message = format!("(combined from similar events): {}", e.message);
            key = similar;
        }
        bound(&mut self.aggregates, |a| a.last);
        // The logger: an event seen before is the same Event object, counted again.
        match self.logged.get_mut(&key) {
            Some(l) => {
                l.count += 1;
                l.last = now;
                e.count = l.count;
                e.first_timestamp = l.first.clone();
                e.last_timestamp = Some(time.to_string());
                e.metadata.name = l.name.clone();
                Outcome::Patch {
                    name: l.name.clone(),
                    event: e,
                }
            }
            None => {
                self.logged.insert(
                    key,
                    Logged {
                        name: e.metadata.name.clone(),
                        count: e.count,
                        first: e.first_timestamp.clone(),
                        last: now,
                    },
                );
                bound(&mut self.logged, |l| l.last);
                Outcome::Create(e)
            }
        }
    }

    /// The API server no longer has the Event a dedup would patch (it expired): the next one
    /// is created afresh.
    fn forget(&mut self, name: &str) {
        self.logged.retain(|_, l| l.name != name);
    }
}

pub struct EventSender {
    rx: Receiver<(Option<ObjectReference>, NodeEvent)>,
    client: Arc<Lazy>,
    stop: Arc<Stop>,
    node: String,
    qps: i32,
    burst: i32,
    correlator: Correlator,
}

impl EventSender {
    pub fn run(mut self) {
        let mut tokens = f64::from(self.burst);
        let mut last = Instant::now();
        while !self.stop.is_stopped() {
            let Ok((object, e)) = self.rx.recv_timeout(Duration::from_millis(500)) else {
                continue;
            };
            if self.qps > 0 {
                let now = Instant::now();
                tokens = (tokens + now.duration_since(last).as_secs_f64() * f64::from(self.qps))
                    .min(f64::from(self.burst));
                last = now;
                if tokens < 1.0 {
                    let wait = (1.0 - tokens) / f64::from(self.qps);
                    if self.stop.sleep(Duration::from_secs_f64(wait)) {
                        return;
                    }
                    tokens = 1.0;
                }
                tokens -= 1.0;
            }
            let ts = Civil::now().rfc3339();
            let ev = self.event(object, &e, &ts);
            match self.correlator.observe(ev, Instant::now(), &ts) {
                Outcome::Dropped => vinfo!(
                    2,
                    "event {:?} dropped by the spam filter (25 per object, then one per 5 minutes)",
                    e.reason
                ),
                Outcome::Create(ev) => self.send(&ev, None),
                Outcome::Patch { event, name } => self.send(&event, Some(&name)),
            }
        }
    }

    /// A fresh Event (count 1) about `object` (the node when None).
    fn event(&self, object: Option<ObjectReference>, e: &NodeEvent, ts: &str) -> Event {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // The kubelet's nodeRef: the node's name doubles as its UID.
        let involved = object.unwrap_or_else(|| ObjectReference {
            kind: "Node".into(),
            name: self.node.clone(),
            uid: self.node.clone(),
            ..ObjectReference::default()
        });
        let namespace = if involved.namespace.is_empty() {
            "default".to_string()
        } else {
            involved.namespace.clone()
        };
        Event {
            api_version: "v1".into(),
            kind: "Event".into(),
            metadata: ObjectMeta {
                name: format!("{}.{nanos:x}", involved.name),
                namespace,
                annotations: e.annotations.clone(),
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: e.reason.clone(),
            message: e.message.clone(),
            source: EventSource {
                component: "kubelet".into(),
                host: self.node.clone(),
            },
            first_timestamp: Some(ts.to_string()),
            last_timestamp: Some(ts.to_string()),
            count: 1,
            type_: if e.warning { "Warning" } else { "Normal" }.into(),
            reporting_component: "kubelet".into(),
            reporting_instance: self.node.clone(),
        }
    }

    /// Creates `ev`, or patches Event `patch` with its count, message and time (creating it
    /// when the API server no longer has it). Until the bootstrap has written the kubeconfig
    /// there is no client: the event is held. Transport failures are retried (client-go tries
    /// 12 times); the server's refusal drops it.
    fn send(&mut self, ev: &Event, patch: Option<&str>) {
        let ns = &ev.metadata.namespace;
        let mut patch = patch.map(String::from);
        let mut tries = 0;
        loop {
            let result = self.client.get().map(|c| match &patch {
                Some(name) => c
                    .patch::<serde_json::Value>(
                        &format!("/api/v1/namespaces/{ns}/events/{name}"),
                        PatchKind::Strategic,
                        &json!({"count": ev.count, "lastTimestamp": ev.last_timestamp, "message": ev.message}),
                    )
                    .map(|_| ()),
                None => c
                    .create::<_, serde_json::Value>(&format!("/api/v1/namespaces/{ns}/events"), ev)
                    .map(|_| ()),
            });
            let err = match result {
                Err(_) => None,
                Ok(Ok(())) => return,
                Ok(Err(e)) if e.code() == Some(404) && patch.is_some() => {
                    if let Some(name) = patch.take() {
                        self.correlator.forget(&name);
                    }
                    continue;
                }
                Ok(Err(e)) => Some(e),
            };
            if let Some(err) = err {
                tries += 1;
                if matches!(err, KubeError::Api { .. }) || tries >= 12 {
                    warn!(
                        "Server rejected event {:?} (will not retry!): {err}",
                        ev.reason
                    );
                    return;
                }
                self.client.forget();
            }
            if self.stop.sleep(Duration::from_secs(1)) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, reason: &str, message: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: format!("{name}.{message}"),
                namespace: "default".into(),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                kind: "Pod".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                ..ObjectReference::default()
            },
            reason: reason.into(),
            message: message.into(),
            source: EventSource {
                component: "kubelet".into(),
                host: "n1".into(),
            },
            count: 1,
            type_: "Warning".into(),
            first_timestamp: Some("t0".into()),
            ..Event::default()
        }
    }

    #[test]
    fn identical_events_patch_one_object() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        let first = c.observe(ev("p", "FailedMount", "cm not found"), t0, "t0");
        assert!(matches!(first, Outcome::Create(_)));
        for i in 2..=5 {
            match c.observe(ev("p", "FailedMount", "cm not found"), t0, "t1") {
                Outcome::Patch { name, event } => {
                    assert_eq!(name, "p.cm not found");
                    assert_eq!(event.count, i);
                    assert_eq!(event.first_timestamp.as_deref(), Some("t0"));
                    assert_eq!(event.last_timestamp.as_deref(), Some("t1"));
                }
                other => panic!("{other:?}"),
            }
        }
        // Another object is another event.
        assert!(matches!(
            c.observe(ev("q", "FailedMount", "cm not found"), t0, "t0"),
            Outcome::Create(_)
        ));
    }

    #[test]
    fn many_similar_messages_are_combined() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        for i in 0..9 {
            let out = c.observe(ev("p", "BackOff", &format!("m{i}")), t0, "t");
            assert!(matches!(out, Outcome::Create(_)), "{i}");
        }
        let combined = |o: Outcome| match o {
            Outcome::Create(e) | Outcome::Patch { event: e, .. } => (e.message, e.count),
            Outcome::Dropped => (String::new(), 0),
        };
        assert_eq!(
            combined(c.observe(ev("p", "BackOff", "m9"), t0, "t")),
            ("(combined from similar events): m9".into(), 1)
        );
        assert_eq!(
            combined(c.observe(ev("p", "BackOff", "m10"), t0, "t")),
            ("(combined from similar events): m10".into(), 2),
            "later ones patch the combined event"
        );
        // Ten minutes on, the aggregation starts over.
        let later = t0 + Duration::from_secs(601);
        assert!(matches!(
            c.observe(ev("p", "BackOff", "m11"), later, "t"),
            Outcome::Create(_)
        ));
    }

    #[test]
    fn the_spam_filter_allows_25_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        let sent = (0..40)
            .filter(|i| {
                !matches!(
                    c.observe(ev("p", "R", &format!("{i}")), t0, "t"),
                    Outcome::Dropped
                )
            })
            .count();
        assert_eq!(sent, 25);
        let t1 = t0 + Duration::from_secs(300);
        assert!(!matches!(
            c.observe(ev("p", "R", "x"), t1, "t"),
            Outcome::Dropped
        ));
        assert!(matches!(
            c.observe(ev("p", "R", "y"), t1, "t"),
            Outcome::Dropped
        ));
        assert!(
            !matches!(c.observe(ev("other", "R", "x"), t1, "t"), Outcome::Dropped),
            "per object"
        );
    }
}
