//! The eviction loop around the pure core: every `PERIOD` a summary of the node and its pods
//! (the same as `/stats/summary`), a round of the manager, and for a threshold to reclaim for:
//! a `EvictionThresholdMet` event, node-level reclaim first (for the disk signals, the unused
//! images older than `imageMinimumGCAge` go, as the kubelet's DeleteUnusedImages), then one pod
//! evicted through the pod owner, and a wait for its containers to stop.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Config, Manager, Observations, Resource};
use crate::pods::image_gc::{self, Records};
use crate::pods::msg::Inbox;
use crate::pods::view::State;
use crate::stats::Collector;
use crate::stats::fs::RuntimeFs;
use crate::stats::summary::Summary;
use crate::{info, vinfo, warn};

/// What the loop works with.
pub struct Deps {
    pub cfg: Config,
    pub stats: Arc<Collector>,
    pub runtime: Arc<crate::cri::Runtime>,
    pub pods: crate::pods::Snapshot,
    pub inbox: Inbox,
    pub events: Option<crate::events::Recorder>,
    pub health: Arc<crate::pods::runner::Health>,
    /// `imageMinimumGCAge`: images younger are not reclaimed.
    pub image_min_age: Duration,
    pub stop: Arc<crate::stop::Stop>,
}

/// How long the loop waits for an evicted pod's containers to stop, beyond its grace period.
const CLEANUP: Duration = Duration::from_secs(30);

/// Runs until stopped; returns at once when there is nothing to watch (no threshold, no local
/// storage isolation).
pub fn run(d: &Deps) {
    if d.cfg.thresholds.is_empty() && !d.cfg.local_storage {
        return;
    }
    let mut manager = Manager::default();
    let mut images = Records::new(crate::pods::execute::now_ms());
    let mut failing = String::new();
    // The pods evicted already (their status may not say so yet when the API is away).
    let mut evicted = HashSet::new();
    while !d.stop.sleep(super::PERIOD) {
        let (summary, dedicated) = match summary(d) {
            Ok(s) => {
                failing.clear();
                s
            }
            Err(e) => {
                if e != failing {
                    warn!("eviction manager: failed to get summary stats: {e}");
                    failing = e;
                }
                continue;
            }
        };
        let present: HashSet<String> = summary.pods.iter().map(|p| p.pod_ref.uid.clone()).collect();
        evicted.retain(|uid| present.contains(uid));
        if d.cfg.local_storage && evict_over_limits(d, &summary, dedicated, &mut evicted) {
            continue;
        }
        let o = super::observe(&summary);
        let now = crate::pods::execute::now_ms();
        let Some(i) = manager.round(&d.cfg, &o, now) else {
            vinfo!(3, "eviction manager: no resources are starved");
            continue;
        };
        let t = &d.cfg.thresholds[i];
        let Some(res) = super::resource(t.signal) else {
            continue;
        };
        info!("eviction manager: attempting to reclaim {}", res.as_str());
        if let Some(ev) = &d.events {
            ev.record(crate::node::status::NodeEvent::warning(
                "EvictionThresholdMet",
                format!("Attempting to reclaim {}", res.as_str()),
            ));
        }
        if matches!(res, Resource::EphemeralStorage | Resource::Inodes)
            && reclaim_images(d, &mut images)
        {
            info!(
                "eviction manager: able to reduce {} pressure without evicting pods",
                res.as_str()
            );
            continue;
        }
        evict_one(d, t, &o, &summary, dedicated, &mut evicted);
    }
}

/// The summary now, and whether the runtime's image filesystem is another device than the
/// node's root dir.
fn summary(d: &Deps) -> Result<(Summary, bool), String> {
    let rt = d
        .stats
        .runtime_fs(|| RuntimeFs::fetch(&d.runtime))
        .map_err(|e| format!("the runtime's filesystems: {e}"))?;
    let sources = crate::stats::sources(&d.pods);
    let s = d
        .stats
        .summary(&sources, false, &rt, std::time::SystemTime::now())
        .map_err(|e| e.line())?;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    let dedicated = rt
        .image_fs
        .as_ref()
        .is_some_and(|i| dev(&i.mountpoint) != dev(&d.stats.root_dir));
    Ok((s, dedicated))
}

/// The unused images go (not younger than the minimum age); true when no threshold is met any
/// more, its minimum reclaim included.
fn reclaim_images(d: &Deps, records: &mut Records) -> bool {
    let policy = image_gc::Policy {
        high_percent: 0,
        low_percent: 0,
        min_age: d.image_min_age,
        max_age: Duration::ZERO,
    };
    let sandbox_images = image_gc::sandbox_images(&d.pods);
    let now = crate::pods::execute::now_ms();
    let fs = image_gc::host_fs;
    let (report, _) = image_gc::pass(records, &*d.runtime, &sandbox_images, &fs, &policy, now);
    for _ in &report.removed {
        d.health.pods.image_collected(image_gc::Why::Space);
    }
    if report.removed.is_empty() {
        return false;
    }
    match summary(d) {
        Ok((s, _)) => {
            let o = super::observe(&s);
            !d.cfg.thresholds.iter().any(|t| super::met(t, &o, true))
        }
        Err(_) => false,
    }
}

/// The pods that may be evicted: those not finished nor evicted already, with their API
/// objects.
fn active(d: &Deps, evicted: &HashSet<String>) -> Vec<(String, serde_json::Value)> {
    d.pods
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|v| {
            !evicted.contains(&v.uid)
                && !matches!(
                    v.object["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                )
        })
        .map(|v| (v.uid.clone(), v.object.clone()))
        .collect()
}

/// Evicts, at once, every pod over its local storage limits (critical ones aside); whether
/// any was.
fn evict_over_limits(
    d: &Deps,
    s: &Summary,
    dedicated: bool,
    evicted: &mut HashSet<String>,
) -> bool {
    let mut any = false;
    for (uid, pod) in active(d, evicted) {
        let Some(stats) = s.pods.iter().find(|p| p.pod_ref.uid == uid) else {
            continue;
        };
        if super::critical(&pod) {
            continue;
        }
        if let Some((message, signal)) = super::over_local_limits(&pod, stats, dedicated) {
            let c = super::candidate(&pod, Some(stats), dedicated);
            let none = std::collections::BTreeMap::new();
            any |= evict(d, &c, message, none, super::HARD_GRACE_SECONDS, signal);
            evicted.insert(uid);
        }
    }
    any
}

/// Evicts the first pod in rank order for threshold `t` that may be, and waits for its
/// containers to stop.
fn evict_one(
    d: &Deps,
    t: &super::Threshold,
    o: &Observations,
    s: &Summary,
    dedicated: bool,
    evicted: &mut HashSet<String>,
) {
    let candidates: Vec<super::Candidate> = active(d, evicted)
        .iter()
        .map(|(uid, pod)| {
            let stats = s.pods.iter().find(|p| &p.pod_ref.uid == uid);
            super::candidate(pod, stats, dedicated)
        })
        .collect();
    if candidates.is_empty() {
        warn!(
            "eviction manager: eviction thresholds have been met, but no pods are active to evict"
        );
        return;
    }
    let Some((c, message, annotations, grace)) = super::choose(t, &d.cfg, o, candidates) else {
        info!("eviction manager: unable to evict any pods from the node");
        return;
    };
    evicted.insert(c.uid.clone());
    evict(d, &c, message, annotations, grace, t.signal.as_str());
}

/// Asks the owner to evict `c` (its Evicted event with `annotations`), counts it under `signal`
/// and waits for its containers to stop
/// (the kubelet waits for the termination, its grace period x 1.5 and at least 10 s, then for
/// the clean-up); false when the owner is gone.
fn evict(
    d: &Deps,
    c: &super::Candidate,
    message: String,
    annotations: std::collections::BTreeMap<String, String>,
    grace: i64,
    signal: &'static str,
) -> bool {
    info!(
        "eviction manager: evicting pod {} (grace {grace} s): {message}",
        c.key
    );
    if !d.inbox.evict(c.uid.clone(), message, annotations, grace) {
        return false;
    }
    d.health.pods.evicted(signal);
    let secs = u64::try_from(grace.max(1)).unwrap_or(1);
    let until = Instant::now() + Duration::from_millis(secs * 1500).max(Duration::from_secs(10));
    let until = until + CLEANUP;
    while Instant::now() < until {
        let running = d
            .pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|v| v.uid == c.uid)
            .is_some_and(|v| v.containers.iter().any(|k| k.state == State::Running));
        if !running {
            info!("eviction manager: pod {} is evicted", c.key);
            return true;
        }
        if d.stop.sleep(Duration::from_secs(1)) {
            return true;
        }
    }
    warn!(
        "eviction manager: timed out waiting for pod {} to be cleaned up",
        c.key
    );
    true
}
