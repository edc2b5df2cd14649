//! The floor for `scripts/bench-pods`: the same sandbox and container a pod gets (the agent's own
//! security-context builders on the same pod spec), started with bare CRI calls (RunPodSandbox,
//! CreateContainer, StartContainer; image present), timed, then removed. Prints one line per run
//! and the mean in milliseconds.
//!   cargo run --release --example bare_pod -- unix:///run/containerd/containerd.sock <runs> <cgroup-parent> <log-dir>

use std::time::{Duration, Instant};

use tinylet::config::kubelet::RuntimeEndpoint;
use tinylet::cri::api::*;
use tinylet::cri::{Options, Runtime};

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("bare_pod: {what}: {e}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ep, runs, parent, logs] = args.as_slice() else {
        fail(
            "usage",
            "bare_pod <endpoint> <runs> <cgroup-parent> <log-dir>",
        )
    };
    let ep = RuntimeEndpoint::parse(ep).unwrap_or_else(|e| fail("endpoint", e));
    let runs: u32 = runs.parse().unwrap_or_else(|e| fail("runs", e));
    let rt = Runtime::new(&ep, None, Options::new(Duration::from_secs(60)))
        .unwrap_or_else(|e| fail("runtime", e));
    let token_dir = std::path::PathBuf::from(logs).join("token");
    std::fs::create_dir_all(&token_dir).unwrap_or_else(|e| fail("token dir", e));
    let mut total = Duration::ZERO;
    for i in 0..runs {
        let uid = format!("bare-{}-{i}", std::process::id());
        let pod = tinylet::pods::spec::Pod::from_value(serde_json::json!({
            "metadata": {"name": format!("bare{i}"), "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "app", "image": "docker.io/library/busybox:1.36",
                                     "command": ["sleep", "3600"]}]}
        }))
        .unwrap_or_else(|e| fail("pod", e));
        let (security_context, sysctls) = tinylet::pods::security::sandbox(&pod);
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: format!("bare{i}"),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: format!("bare{i}"),
            log_directory: format!("{logs}/default_bare{i}_{uid}"),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("{parent}/kubepods/besteffort/pod{uid}"),
                security_context: Some(security_context),
                sysctls,
                ..Default::default()
            }),
            ..Default::default()
        };
        let t0 = Instant::now();
        let sb = rt
            .run_pod_sandbox(&RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .unwrap_or_else(|e| fail("RunPodSandbox", e));
        let c = rt
            .create_container(&CreateContainerRequest {
                pod_sandbox_id: sb.pod_sandbox_id.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "app".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: "docker.io/library/busybox:1.36".into(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "3600".into()],
                    log_path: "app/0.log".into(),
                    // The ServiceAccount token volume every API pod has.
                    mounts: vec![Mount {
                        container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                        host_path: token_dir.display().to_string(),
                        readonly: true,
                        ..Default::default()
                    }],
                    linux: Some(LinuxContainerConfig {
                        resources: tinylet::pods::resources::linux(
                            &serde_json::Value::Null,
                            tinylet::pods::pod_resources::oom_score_adj(&pod.raw, "app", 0),
                            true,
                        )
                        .ok(),
                        security_context: Some(tinylet::pods::security::container(
                            &pod,
                            "app",
                            std::path::Path::new("/var/lib/kubelet"),
                            false,
                        )),
                    }),
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .unwrap_or_else(|e| fail("CreateContainer", e));
        rt.start_container(&StartContainerRequest {
            container_id: c.container_id.clone(),
        })
        .unwrap_or_else(|e| fail("StartContainer", e));
        let took = t0.elapsed();
        total += took;
        println!("run {i}: {:.1} ms", took.as_secs_f64() * 1000.0);
        let _ = rt.stop_pod_sandbox(&StopPodSandboxRequest {
            pod_sandbox_id: sb.pod_sandbox_id.clone(),
        });
        let _ = rt.remove_pod_sandbox(&RemovePodSandboxRequest {
            pod_sandbox_id: sb.pod_sandbox_id,
        });
    }
    println!(
        "mean: {:.1} ms",
        total.as_secs_f64() * 1000.0 / f64::from(runs.max(1))
    );
}
