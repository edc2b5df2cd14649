//! Size probe for `scripts/bench-cri`: a binary that reaches every CRI call, so its size minus
//! `no_cri_probe`'s is what the CRI client adds to a static build. Also a handy smoke check:
//!   cargo run --example cri_probe -- unix:///run/containerd/containerd.sock

use std::time::Duration;

use tinylet::config::kubelet::RuntimeEndpoint;
use tinylet::cri::{Options, Runtime};

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let ep = match RuntimeEndpoint::parse(&arg) {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("cri_probe: {e}");
            std::process::exit(2)
        }
    };
    let rt = match Runtime::new(&ep, None, Options::new(Duration::from_secs(10))) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cri_probe: {e}");
            std::process::exit(1)
        }
    };
    let results: Vec<(&str, Result<String, String>)> = vec![
        (
            "Version",
            rt.version(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "Status",
            rt.status(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "RuntimeConfig",
            rt.runtime_config(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ListPodSandbox",
            rt.list_pod_sandbox(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "PodSandboxStatus",
            rt.pod_sandbox_status(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "RunPodSandbox",
            rt.run_pod_sandbox(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "StopPodSandbox",
            rt.stop_pod_sandbox(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "RemovePodSandbox",
            rt.remove_pod_sandbox(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "CreateContainer",
            rt.create_container(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "StartContainer",
            rt.start_container(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "StopContainer",
            rt.stop_container(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "RemoveContainer",
            rt.remove_container(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ListContainers",
            rt.list_containers(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ContainerStatus",
            rt.container_status(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "UpdateContainerResources",
            rt.update_container_resources(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ReopenContainerLog",
            rt.reopen_container_log(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ExecSync",
            rt.exec_sync(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "Exec",
            rt.exec(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "Attach",
            rt.attach(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "PortForward",
            rt.port_forward(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ContainerStats",
            rt.container_stats(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ListContainerStats",
            rt.list_container_stats(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "PodSandboxStats",
            rt.pod_sandbox_stats(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ListPodSandboxStats",
            rt.list_pod_sandbox_stats(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "UpdateRuntimeConfig",
            rt.update_runtime_config(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ListImages",
            rt.list_images(&Default::default())
                .map(|r| format!("{} images", r.images.len()))
                .map_err(|e| e.to_string()),
        ),
        (
            "ImageStatus",
            rt.image_status(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "PullImage",
            rt.pull_image(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "RemoveImage",
            rt.remove_image(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "ImageFsInfo",
            rt.image_fs_info(&Default::default())
                .map(|_| "ok".to_string())
                .map_err(|e| e.to_string()),
        ),
    ];
    for (name, r) in results {
        match r {
            Ok(v) => println!("{name}: {}", v.chars().take(160).collect::<String>()),
            Err(e) => println!("{name}: error: {e}"),
        }
    }
}
