//! Image garbage collection, as the kubelet's image GC manager: at the agent's start and every
//! 5 minutes the runtime's images are looked at (first seen, last used by a container);
//! images unused for longer than `imageMaximumGCAge` go (once the agent has run that long);
//! when the image filesystem is `imageGCHighThresholdPercent` full, unused images go, least
//! recently used first, until it is down to `imageGCLowThresholdPercent`, never one younger
//! than `imageMinimumGCAge`, pinned by the runtime, or used by a container or a pod sandbox
//! (the pause image too, which containerd 1.6 does not pin). A pure record and plan, a thin
//! pass over CRI.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::seams::Cri;
use crate::cri::api::*;

/// How often the kubelet collects (`ImageGCPeriod`).
pub const PERIOD: Duration = Duration::from_secs(300);

/// `imageGCHighThresholdPercent`, `imageGCLowThresholdPercent`, `imageMinimumGCAge`,
/// `imageMaximumGCAge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub high_percent: u32,
    pub low_percent: u32,
    pub min_age: Duration,
    pub max_age: Duration,
}

impl Policy {
    /// Off when the high threshold is 100 and there is no maximum age, as in the kubelet.
    pub fn enabled(&self) -> bool {
        !(self.high_percent >= 100 && self.max_age.is_zero())
    }

    /// The bytes to free on a filesystem of `capacity` with `available` left: enough to get
    /// down to the low threshold once usage has reached the high one; None below it.
    pub fn to_free(&self, capacity: u64, available: u64) -> Option<u64> {
        let available = available.min(capacity);
        let used_percent = 100 - available.saturating_mul(100) / capacity.max(1);
        let keep_free = u128::from(capacity) * u128::from(100 - self.low_percent.min(100)) / 100;
        (used_percent >= u64::from(self.high_percent))
            .then(|| (keep_free as u64).saturating_sub(available))
    }
}

/// What the agent remembers of one image (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    first_detected: u64,
    /// 0 when no container was seen using it.
    last_used: u64,
    size: u64,
    pinned: bool,
}

/// The images' records across passes.
#[derive(Debug, Default)]
pub struct Records {
    by_id: BTreeMap<String, Record>,
    /// When the agent began collecting.
    began: u64,
}

/// Why an image was removed: the `reason` label of `kubelet_image_garbage_collected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Age,
    Space,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::Age => "age",
            Why::Space => "space",
        }
    }
}

impl Records {
    pub fn new(began_ms: u64) -> Records {
        Records {
            by_id: BTreeMap::new(),
            began: began_ms,
        }
    }

    /// The runtime's images now, and the IDs in use: new ones recorded as first seen now, the
    /// ones in use as used now, the gone forgotten.
    pub fn detect(&mut self, images: &[Image], in_use: &HashSet<String>, now_ms: u64) {
        let current: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.by_id.retain(|id, _| current.contains(id.as_str()));
        for i in images {
            let r = self.by_id.entry(i.id.clone()).or_insert(Record {
                first_detected: now_ms,
                last_used: 0,
                size: 0,
                pinned: false,
            });
            if in_use.contains(&i.id) {
                r.last_used = now_ms;
            }
            r.size = i.size;
            r.pinned = i.pinned;
        }
    }

    /// The images that may go, in the order they go: not in use, not pinned, least recently
    /// used first, then the first seen first.
    pub fn eviction_order(&self, in_use: &HashSet<String>) -> Vec<String> {
        let mut v: Vec<(&String, &Record)> = self
            .by_id
            .iter()
            .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
            .collect();
        v.sort_by_key(|(_, r)| (r.last_used, r.first_detected));
        v.into_iter().map(|(id, _)| id.clone()).collect()
    }

    /// Of `order`, those unused for longer than the maximum age, once the agent has run that
    /// long.
    pub fn too_old(&self, order: &[String], now_ms: u64, policy: &Policy) -> Vec<String> {
        let max = policy.max_age.as_millis() as u64;
        if max == 0 || now_ms.saturating_sub(self.began) <= max {
            return Vec::new();
        }
        order
            .iter()
            .filter(|id| {
                self.by_id
                    .get(*id)
                    .is_some_and(|r| now_ms.saturating_sub(r.last_used) > max)
            })
            .cloned()
            .collect()
    }

    /// Of `order`, those old enough to go for space, with their sizes.
    pub fn for_space(&self, order: &[String], now_ms: u64, policy: &Policy) -> Vec<(String, u64)> {
        let min = policy.min_age.as_millis() as u64;
        order
            .iter()
            .filter_map(|id| {
                let r = self.by_id.get(id)?;
                (now_ms.saturating_sub(r.first_detected) >= min).then(|| (id.clone(), r.size))
            })
            .collect()
    }

    pub fn forget(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// The image IDs in use: every container's (of any state; by its image ref, or its image
/// name) and every pod sandbox's image, by name, tag or digest.
pub fn in_use(
    images: &[Image],
    containers: &[Container],
    sandbox_images: &[String],
) -> HashSet<String> {
    let names: Vec<&str> = containers
        .iter()
        .flat_map(|c| {
            [
                c.image_ref.as_str(),
                c.image.as_ref().map_or("", |i| i.image.as_str()),
            ]
        })
        .chain(sandbox_images.iter().map(String::as_str))
        .filter(|n| !n.is_empty())
        .collect();
    images
        .iter()
        .filter(|i| {
            names.iter().any(|n| {
                i.id == *n
                    || i.repo_tags.iter().any(|t| t == n)
                    || i.repo_digests.iter().any(|d| d == n)
            })
        })
        .map(|i| i.id.clone())
        .collect()
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub removed: Vec<(String, Why)>,
    /// Bytes the space rule asked for (0 below the high threshold) and the bytes it freed.
    pub wanted: u64,
    pub freed: u64,
}

/// Why a pass failed, as the kubelet's texts (the events' messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcError {
    #[error("{0}")]
    Runtime(String),
    #[error("invalid capacity 0 on image filesystem")]
    InvalidCapacity,
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
    )]
    NotEnough { wanted: u64, freed: u64 },
}

impl GcError {
    /// The node event the kubelet records for it, if any.
    pub fn event_reason(&self) -> Option<&'static str> {
        match self {
            GcError::Runtime(_) => None,
            GcError::InvalidCapacity => Some("InvalidDiskCapacity"),
            GcError::NotEnough { .. } => Some("FreeDiskSpaceFailed"),
        }
    }
}

/// Collects at once and then every `PERIOD` until stopped, as the kubelet's image GC loop:
/// the failure's event each time, `ImageGCFailed` when it failed twice in a row.
pub fn run(
    cri: &dyn Cri,
    policy: &Policy,
    sandbox_images: &dyn Fn() -> Vec<String>,
    removed: &dyn Fn(Why),
    events: Option<&crate::events::Recorder>,
    stop: &crate::stop::Stop,
) {
    use crate::node::status::NodeEvent;
    let fs = host_fs;
    let mut records = Records::new(super::execute::now_ms());
    let mut failed_before = false;
    loop {
        let now = super::execute::now_ms();
        let (report, done) = pass(&mut records, cri, &sandbox_images(), &fs, policy, now);
        for (_, why) in &report.removed {
            removed(*why);
        }
        match done {
            Ok(()) => failed_before = false,
            Err(e) => {
                let warn = |reason: &str| NodeEvent::warning(reason, e.to_string());
                if let (Some(ev), Some(reason)) = (events, e.event_reason()) {
                    ev.record(warn(reason));
                }
                if failed_before {
                    crate::error!("Image garbage collection failed multiple times in a row: {e}");
                    if let Some(ev) = events {
                        ev.record(warn("ImageGCFailed"));
                    }
                } else {
                    crate::warn!("Image garbage collection failed once: {e}");
                }
                failed_before = true;
            }
        }
        if stop.sleep(PERIOD) {
            return;
        }
    }
}

/// The capacity and available bytes of the filesystem mounted at a path.
pub type FsStats = dyn Fn(&str) -> Result<(u64, u64), String>;

/// The images of the pods' sandboxes (in use: containerd 1.6 does not pin the pause image).
pub fn sandbox_images(pods: &super::Snapshot) -> Vec<String> {
    pods.read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|v| v.sandbox_image.clone())
        .filter(|i| !i.is_empty())
        .collect()
}

/// [`FsStats`] of this host (statfs).
pub fn host_fs(mountpoint: &str) -> Result<(u64, u64), String> {
    crate::node::host::fs_stats(std::path::Path::new(mountpoint))
        .map(|s| (s.capacity_bytes, s.available_bytes))
        .map_err(|e| e.to_string())
}

/// One collection: images too old go, then, past the high threshold, images for space.
/// `fs(mountpoint)` gives the image filesystem's capacity and available bytes. Removals that
/// fail are logged and the pass goes on, as the kubelet's.
pub fn pass(
    records: &mut Records,
    cri: &dyn Cri,
    sandbox_images: &[String],
    fs: &FsStats,
    policy: &Policy,
    now_ms: u64,
) -> (Report, Result<(), GcError>) {
    let mut report = Report::default();
    let runtime = |e: crate::cri::CriError| GcError::Runtime(e.to_string());
    let listed = cri
        .list_images(&ListImagesRequest::default())
        .map_err(runtime)
        .and_then(|i| {
            let c = cri
                .list_containers(&ListContainersRequest::default())
                .map_err(runtime)?;
            Ok((i.images, c.containers))
        });
    let (images, containers) = match listed {
        Ok(l) => l,
        Err(e) => return (report, Err(e)),
    };
    let used = in_use(&images, &containers, sandbox_images);
    records.detect(&images, &used, now_ms);
    let order = records.eviction_order(&used);
    let remove = |records: &mut Records, report: &mut Report, id: &str, why: Why| {
        if remove_image(cri, id, why) {
            records.forget(id);
            report.removed.push((id.to_string(), why));
            return true;
        }
        false
    };
    let old = records.too_old(&order, now_ms, policy);
    for id in &old {
        remove(records, &mut report, id, Why::Age);
    }
    if policy.high_percent >= 100 {
        return (report, Ok(()));
    }
    let stats = cri
        .image_fs_info(&ImageFsInfoRequest::default())
        .map_err(runtime)
        .and_then(|i| {
            let m = i
                .image_mountpoint()
                .ok_or_else(|| GcError::Runtime("the runtime names no image filesystem".into()))?;
            fs(&m).map_err(GcError::Runtime)
        });
    let (capacity, available) = match stats {
        Ok(s) => s,
        Err(e) => return (report, Err(e)),
    };
    if capacity == 0 {
        return (report, Err(GcError::InvalidCapacity));
    }
    let Some(wanted) = policy.to_free(capacity, available) else {
        return (report, Ok(()));
    };
    report.wanted = wanted;
    let left: Vec<String> = order.into_iter().filter(|id| !old.contains(id)).collect();
    for (id, size) in records.for_space(&left, now_ms, policy) {
        if report.freed >= wanted {
            break;
        }
        if remove(records, &mut report, &id, Why::Space) {
            report.freed += size;
        }
    }
    let done = if report.freed < wanted {
        Err(GcError::NotEnough {
            wanted,
            freed: report.freed,
        })
    } else {
        Ok(())
    };
    (report, done)
}

/// Asks the runtime to remove the image `id`; false (logged) when it refuses.
fn remove_image(cri: &dyn Cri, id: &str, why: Why) -> bool {
    let r = cri.remove_image(&RemoveImageRequest {
        image: Some(ImageSpec {
            image: id.to_string(),
            ..Default::default()
        }),
    });
    match r {
        Ok(_) => {
            crate::info!("Removing image to free bytes: {id} ({})", why.label());
            true
        }
        Err(e) => {
            crate::warn!("removing image {id}: {e}");
            false
        }
    }
}

#[cfg(test)]
#[path = "image_gc_tests.rs"]
mod tests;
