//! The pod machinery's series on `/metrics`, as the kubelet's PLEG and pod workers record them:
//! `kubelet_running_pods` (pods with a ready sandbox) and `kubelet_running_containers` by
//! state, both from each relist, and `kubelet_pod_start_duration_seconds` (from the agent
//! first seeing a pod to its status first saying Running), and
//! `kubelet_image_garbage_collected_total` by reason.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cri::api::{Container, ContainerState, PodSandbox, PodSandboxState};
use crate::prom::{Histogram, header};

/// The kubelet's `podStartupDurationBuckets`.
const START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// What one relist found in the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeCounts {
    /// Pods (by uid label) with a ready sandbox.
    pub running_pods: u64,
    /// Containers by the kubelet's `container_state` (created, running, exited, unknown).
    pub containers: BTreeMap<&'static str, u64>,
}

impl RuntimeCounts {
    pub fn of(sandboxes: &[PodSandbox], containers: &[Container]) -> RuntimeCounts {
        let running: HashSet<&str> = sandboxes
            .iter()
            .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
            .map(|s| {
                s.labels
                    .get(super::layout::POD_UID_LABEL)
                    .map_or(s.id.as_str(), String::as_str)
            })
            .collect();
        let mut by_state = BTreeMap::new();
        for c in containers {
            let state = match ContainerState::try_from(c.state) {
                Ok(ContainerState::ContainerCreated) => "created",
                Ok(ContainerState::ContainerRunning) => "running",
                Ok(ContainerState::ContainerExited) => "exited",
                _ => "unknown",
            };
            *by_state.entry(state).or_insert(0) += 1;
        }
        RuntimeCounts {
            running_pods: running.len() as u64,
            containers: by_state,
        }
    }
}

#[derive(Debug)]
pub struct PodMetrics {
    counts: Mutex<Option<RuntimeCounts>>,
    start: Histogram,
    /// Images removed by the image GC: for age, for space.
    images_collected: [AtomicU64; 2],
    /// Pods evicted, by eviction signal.
    evictions: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for PodMetrics {
    fn default() -> Self {
        PodMetrics {
            counts: Mutex::new(None),
            start: Histogram::new(START_BUCKETS.to_vec()),
            images_collected: Default::default(),
            evictions: Mutex::default(),
        }
    }
}

impl PodMetrics {
    pub fn set_counts(&self, c: RuntimeCounts) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// A pod first reported Running `secs` after the agent first saw it.
    pub fn pod_started(&self, secs: f64) {
        self.start.observe(secs);
    }

    /// The image GC removed an image.
    pub fn image_collected(&self, why: super::image_gc::Why) {
        self.images_collected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The eviction manager evicted a pod for `signal`.
    pub fn evicted(&self, signal: &'static str) {
        let mut e = self.evictions.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(signal).or_default() += 1;
    }

    pub fn render(&self, out: &mut String) {
        if let Some(c) = &*self.counts.lock().unwrap_or_else(|p| p.into_inner()) {
            header(
                out,
                "kubelet_running_pods",
                "gauge",
                "[ALPHA] Number of pods that have a running pod sandbox",
            );
            let _ = writeln!(out, "kubelet_running_pods {}", c.running_pods);
            header(
                out,
                "kubelet_running_containers",
                "gauge",
                "[ALPHA] Number of containers currently running",
            );
            for (state, n) in &c.containers {
                let _ = writeln!(
                    out,
                    "kubelet_running_containers{{container_state=\"{state}\"}} {n}"
                );
            }
        }
        header(
            out,
            "kubelet_pod_start_duration_seconds",
            "histogram",
            "[ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
        );
        self.start
            .write(out, "kubelet_pod_start_duration_seconds", "");
        // A labelled counter shows once it has a series, as client_golang's.
        use super::image_gc::Why;
        let collected: Vec<(Why, u64)> = [Why::Age, Why::Space]
            .into_iter()
            .map(|w| (w, self.images_collected[w as usize].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if !collected.is_empty() {
            header(
                out,
                "kubelet_image_garbage_collected_total",
                "counter",
                "[ALPHA] Total number of images garbage collected by the kubelet, whether through disk usage or image age.",
            );
            for (w, n) in collected {
                let _ = writeln!(
                    out,
                    "kubelet_image_garbage_collected_total{{reason=\"{}\"}} {n}",
                    w.label()
                );
            }
        }
        let evictions = self.evictions.lock().unwrap_or_else(|p| p.into_inner());
        if !evictions.is_empty() {
            header(
                out,
                "kubelet_evictions",
                "counter",
                "[ALPHA] Cumulative number of pod evictions by eviction signal",
            );
            for (signal, n) in evictions.iter() {
                let _ = writeln!(out, "kubelet_evictions{{eviction_signal=\"{signal}\"}} {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(uid: &str, ready: bool) -> PodSandbox {
        let mut s = PodSandbox {
            id: format!("sb-{uid}-{ready}"),
            state: if ready {
                PodSandboxState::SandboxReady
            } else {
                PodSandboxState::SandboxNotready
            } as i32,
            ..PodSandbox::default()
        };
        s.labels
            .insert(super::super::layout::POD_UID_LABEL.into(), uid.into());
        s
    }

    fn container(state: i32) -> Container {
        Container {
            state,
            ..Container::default()
        }
    }

    #[test]
    fn running_pods_count_a_pod_once_and_only_with_a_ready_sandbox() {
        let c = RuntimeCounts::of(
            &[
                sandbox("a", true),
                sandbox("a", false),
                sandbox("b", false),
                sandbox("c", true),
            ],
            &[
                container(ContainerState::ContainerRunning as i32),
                container(ContainerState::ContainerRunning as i32),
                container(ContainerState::ContainerExited as i32),
                container(ContainerState::ContainerCreated as i32),
                container(7),
            ],
        );
        assert_eq!(c.running_pods, 2);
        let want: BTreeMap<&str, u64> = [
            ("created", 1),
            ("exited", 1),
            ("running", 2),
            ("unknown", 1),
        ]
        .into();
        assert_eq!(c.containers, want);
        let m = PodMetrics::default();
        m.set_counts(c);
        m.pod_started(1.5);
        let mut out = String::new();
        m.render(&mut out);
        for want in [
            "kubelet_running_pods 2\n",
            "kubelet_running_containers{container_state=\"running\"} 2\n",
            "kubelet_pod_start_duration_seconds_bucket{le=\"1\"} 0\n",
            "kubelet_pod_start_duration_seconds_bucket{le=\"2\"} 1\n",
            "kubelet_pod_start_duration_seconds_count 1\n",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
    }

    #[test]
    fn no_gauges_before_the_first_relist() {
        let mut out = String::new();
        PodMetrics::default().render(&mut out);
        assert!(!out.contains("kubelet_running_pods"));
        assert!(out.contains("kubelet_pod_start_duration_seconds_count 0\n"));
    }
}
