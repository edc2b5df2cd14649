//! Size probe for `scripts/bench-cri`: a binary that reaches every CRI call, so its size minus
//! `no_cri_probe`'s is what the CRI client adds to a static build. Also a handy smoke check:
//!   cargo run --example cri_probe -- unix:///run/containerd/containerd.sock

use std::time::Duration;

use tinylet::config::kubelet::RuntimeEndpoint;
use tinylet::cri::{CriError, Options, Runtime};

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
    show(
        "Version",
        rt.version(&Default::default()).map(|_| "ok".to_string()),
    );
    show(
        "Status",
        rt.status(&Default::default()).map(|_| "ok".to_string()),
    );
    show(
        "RuntimeConfig",
        rt.runtime_config(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ListPodSandbox",
        rt.list_pod_sandbox(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "PodSandboxStatus",
        rt.pod_sandbox_status(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "RunPodSandbox",
        rt.run_pod_sandbox(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "StopPodSandbox",
        rt.stop_pod_sandbox(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "RemovePodSandbox",
        rt.remove_pod_sandbox(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "CreateContainer",
        rt.create_container(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "StartContainer",
        rt.start_container(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "StopContainer",
        rt.stop_container(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "RemoveContainer",
        rt.remove_container(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ListContainers",
        rt.list_containers(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ContainerStatus",
        rt.container_status(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "UpdateContainerResources",
        rt.update_container_resources(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ReopenContainerLog",
        rt.reopen_container_log(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ExecSync",
        rt.exec_sync(&Default::default()).map(|_| "ok".to_string()),
    );
    show(
        "Exec",
        rt.exec(&Default::default()).map(|_| "ok".to_string()),
    );
    show(
        "Attach",
        rt.attach(&Default::default()).map(|_| "ok".to_string()),
    );
    show(
        "PortForward",
        rt.port_forward(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ContainerStats",
        rt.container_stats(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ListContainerStats",
        rt.list_container_stats(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "PodSandboxStats",
        rt.pod_sandbox_stats(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ListPodSandboxStats",
        rt.list_pod_sandbox_stats(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "UpdateRuntimeConfig",
        rt.update_runtime_config(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ListImages",
        rt.list_images(&Default::default())
            .map(|r| format!("{} images", r.images.len())),
    );
    show(
        "ImageStatus",
        rt.image_status(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "PullImage",
        rt.pull_image(&Default::default()).map(|_| "ok".to_string()),
    );
    show(
        "RemoveImage",
        rt.remove_image(&Default::default())
            .map(|_| "ok".to_string()),
    );
    show(
        "ImageFsInfo",
        rt.image_fs_info(&Default::default())
            .map(|_| "ok".to_string()),
    );
}

fn show(name: &str, result: Result<String, CriError>) {
    match result {
        Ok(v) => println!("{name}: {v}"),
        Err(e) => println!("{name}: error: {e}"),
    }
}
