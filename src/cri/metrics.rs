//! What the CRI client did, for `/metrics`: every call counted and timed by the kubelet's
//! operation type (`kubelet_runtime_operations_total`, `_duration_seconds`, `_errors_total`,
//! as its instrumented runtime service records them).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::prom::{Histogram, exponential, header};

/// The kubelet's `operation_type` of a CRI method (its `instrumented_services.go` names).
pub fn operation_type(method: &str) -> &'static str {
    match method.rsplit('/').next().unwrap_or(method) {
        "Version" => "version",
        "Status" => "status",
        "RunPodSandbox" => "run_podsandbox",
        "StopPodSandbox" => "stop_podsandbox",
        "RemovePodSandbox" => "remove_podsandbox",
        "PodSandboxStatus" => "podsandbox_status",
        "ListPodSandbox" => "list_podsandbox",
        "CreateContainer" => "create_container",
        "StartContainer" => "start_container",
        "StopContainer" => "stop_container",
        "RemoveContainer" => "remove_container",
        "ListContainers" => "list_containers",
        "ContainerStatus" => "container_status",
        "UpdateContainerResources" => "update_container",
        "ReopenContainerLog" => "reopen_container_log",
        "ExecSync" => "exec_sync",
        "Exec" => "exec",
        "Attach" => "attach",
        "PortForward" => "port_forward",
        "ContainerStats" => "container_stats",
        "ListContainerStats" => "list_container_stats",
        "PodSandboxStats" => "podsandbox_stats",
        "ListPodSandboxStats" => "list_podsandbox_stats",
        "UpdateRuntimeConfig" => "update_runtime_config",
        "RuntimeConfig" => "runtime_config",
        "ListImages" => "list_images",
        "ImageStatus" => "image_status",
        "PullImage" => "pull_image",
        "RemoveImage" => "remove_image",
        "ImageFsInfo" => "image_fs_info",
        _ => "other",
    }
}

struct Op {
    errors: u64,
    took: Histogram,
}

/// Calls by operation type.
#[derive(Default)]
pub struct Operations {
    ops: Mutex<BTreeMap<&'static str, Op>>,
}

impl Operations {
    /// One call of `method` that took `took` and failed or not.
    pub fn record(&self, method: &str, took: Duration, failed: bool) {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let op = ops.entry(operation_type(method)).or_insert_with(|| Op {
            errors: 0,
            took: Histogram::new(exponential(0.005, 2.5, 14)),
        });
        op.took.observe(took.as_secs_f64());
        op.errors += u64::from(failed);
    }

    /// The three families, in the text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        header(
            out,
            "kubelet_runtime_operations_total",
            "counter",
            "[ALPHA] Cumulative number of runtime operations by operation type.",
        );
        for (t, op) in ops.iter() {
            let _ = writeln!(
                out,
                "kubelet_runtime_operations_total{{operation_type=\"{t}\"}} {}",
                op.took.count()
            );
        }
        header(
            out,
            "kubelet_runtime_operations_duration_seconds",
            "histogram",
            "[ALPHA] Duration in seconds of runtime operations. Broken down by operation type.",
        );
        for (t, op) in ops.iter() {
            op.took.write(
                out,
                "kubelet_runtime_operations_duration_seconds",
                &format!("operation_type=\"{t}\""),
            );
        }
        header(
            out,
            "kubelet_runtime_operations_errors_total",
            "counter",
            "[ALPHA] Cumulative number of runtime operation errors by operation type.",
        );
        for (t, op) in ops.iter().filter(|(_, op)| op.errors > 0) {
            let _ = writeln!(
                out,
                "kubelet_runtime_operations_errors_total{{operation_type=\"{t}\"}} {}",
                op.errors
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kubelet's names (`pkg/kubelet/kuberuntime/instrumented_services.go`, v1.34).
    const UPSTREAM: &[&str] = &[
        "version",
        "status",
        "create_container",
        "start_container",
        "stop_container",
        "remove_container",
        "list_containers",
        "container_status",
        "update_container",
        "reopen_container_log",
        "exec_sync",
        "exec",
        "attach",
        "run_podsandbox",
        "stop_podsandbox",
        "remove_podsandbox",
        "podsandbox_status",
        "list_podsandbox",
        "container_stats",
        "list_container_stats",
        "podsandbox_stats",
        "list_podsandbox_stats",
        "port_forward",
        "update_runtime_config",
        "list_images",
        "image_status",
        "pull_image",
        "remove_image",
        "image_fs_info",
        "runtime_config",
    ];

    #[test]
    fn every_call_has_the_kubelets_operation_type() {
        for (method, _, _) in super::super::RPCS {
            let t = operation_type(method);
            assert!(UPSTREAM.contains(&t), "{method} -> {t}");
        }
    }

    #[test]
    fn calls_are_counted_timed_and_errors_only_where_some_failed() {
        let ops = Operations::default();
        ops.record(
            "RuntimeService/ListPodSandbox",
            Duration::from_millis(3),
            false,
        );
        ops.record(
            "RuntimeService/ListPodSandbox",
            Duration::from_millis(40),
            true,
        );
        ops.record("ImageService/PullImage", Duration::from_secs(2), false);
        let mut out = String::new();
        ops.render(&mut out);
        for want in [
            "kubelet_runtime_operations_total{operation_type=\"list_podsandbox\"} 2\n",
            "kubelet_runtime_operations_total{operation_type=\"pull_image\"} 1\n",
            "kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"list_podsandbox\",le=\"0.005\"} 1\n",
            "kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"list_podsandbox\",le=\"0.078125\"} 2\n",
            "kubelet_runtime_operations_duration_seconds_count{operation_type=\"pull_image\"} 1\n",
            "kubelet_runtime_operations_errors_total{operation_type=\"list_podsandbox\"} 1\n",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
        assert!(!out.contains("errors_total{operation_type=\"pull_image\"}"));
    }
}
