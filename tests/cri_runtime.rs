//! The CRI client against a real containerd 1.6 (scripts/runtime-env): every call the agent makes,
//! on real sandboxes and containers. Skipped loudly when not root; CI runs them as root.

// A test that expects a value states what it expected; the panic is the failure report.
#![allow(clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::runtime::RuntimeEnv;
use tinylet::cri::api::*;
use tinylet::cri::{Code, CriError, Options, Runtime};

const BUSYBOX: &str = "docker.io/library/busybox:1.36";

fn ok<T>(r: Result<T, CriError>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn image(name: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: name.to_string(),
        ..Default::default()
    })
}

/// A sandbox config for pod `name`, its logs under the env's `pod-logs` directory.
fn sandbox_config(env: &RuntimeEnv, name: &str, host_network: bool) -> PodSandboxConfig {
    let uid = format!("uid-{name}");
    let log_dir = env
        .dir()
        .join("pod-logs")
        .join(format!("default_{name}_{uid}"));
    std::fs::create_dir_all(&log_dir).unwrap_or_else(|e| panic!("{e}"));
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: if host_network {
            String::new()
        } else {
            name.into()
        },
        log_directory: log_dir.display().to_string(),
        labels: [("io.kubernetes.pod.name".to_string(), name.to_string())].into(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/pod{uid}", env.cgroup_parent()),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: if host_network {
                        NamespaceMode::Node
                    } else {
                        NamespaceMode::Pod
                    } as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn run_sandbox(rt: &Runtime, config: &PodSandboxConfig) -> String {
    ok(
        rt.run_pod_sandbox(&RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }),
        "RunPodSandbox",
    )
    .pod_sandbox_id
}

fn container_config(
    name: &str,
    command: &[&str],
    resources: Option<LinuxContainerResources>,
) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: image(BUSYBOX),
        command: command.iter().map(|s| s.to_string()).collect(),
        envs: vec![KeyValue {
            key: "GREETING".into(),
            value: "hello from tinylet".into(),
        }],
        log_path: format!("{name}/0.log"),
        labels: [("io.kubernetes.container.name".to_string(), name.to_string())].into(),
        linux: Some(LinuxContainerConfig {
            resources,
            security_context: None,
        }),
        ..Default::default()
    }
}

fn create(
    rt: &Runtime,
    sandbox: &str,
    sandbox_config: &PodSandboxConfig,
    c: ContainerConfig,
) -> String {
    ok(
        rt.create_container(&CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(c),
            sandbox_config: Some(sandbox_config.clone()),
        }),
        "CreateContainer",
    )
    .container_id
}

fn start(rt: &Runtime, id: &str) {
    ok(
        rt.start_container(&StartContainerRequest {
            container_id: id.into(),
        }),
        "StartContainer",
    );
}

fn status(rt: &Runtime, id: &str) -> ContainerStatus {
    ok(
        rt.container_status(&ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        }),
        "ContainerStatus",
    )
    .status
    .unwrap_or_else(|| panic!("ContainerStatus of {id}: no status"))
}

/// Polls until the container has exited (up to 30 s).
fn wait_exited(rt: &Runtime, id: &str) -> ContainerStatus {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(rt, id);
        if s.state == ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(
            Instant::now() < until,
            "container {id} still {:?} after 30 s",
            s.state
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn remove_sandbox(rt: &Runtime, id: &str) {
    ok(
        rt.stop_pod_sandbox(&StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        }),
        "StopPodSandbox",
    );
    ok(
        rt.remove_pod_sandbox(&RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        }),
        "RemovePodSandbox",
    );
}

#[test]
fn version_status_and_unimplemented_calls() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let rt = env.client();
    let v = ok(
        rt.version(&VersionRequest {
            version: "v1".into(),
        }),
        "Version",
    );
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(v.runtime_api_version, "v1");
    assert!(v.runtime_version.starts_with("1.6."), "{v:?}");

    let s = ok(rt.status(&StatusRequest { verbose: true }), "Status");
    let conditions = s.status.map(|s| s.conditions).unwrap_or_default();
    for want in ["RuntimeReady", "NetworkReady"] {
        let c = conditions.iter().find(|c| c.r#type == want);
        assert!(
            c.is_some_and(|c| c.status),
            "{want} not true in {conditions:?}"
        );
    }
    assert!(
        s.info.contains_key("config"),
        "verbose Status carries the runtime config"
    );

    // The kubelet pushes the node's pod CIDR; without a CNI template containerd accepts and
    // keeps its own config.
    ok(
        rt.update_runtime_config(&UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig {
                    pod_cidr: "10.250.0.0/24".into(),
                }),
            }),
        }),
        "UpdateRuntimeConfig",
    );

    // containerd 1.6 lacks RuntimeConfig: a typed, recognisable error.
    let e = rt
        .runtime_config(&RuntimeConfigRequest {})
        .expect_err("RuntimeConfig is not in 1.6");
    assert!(e.is_unimplemented(), "{e}");
    assert!(
        e.to_string()
            .starts_with("CRI RuntimeService/RuntimeConfig: rpc error: code = Unimplemented"),
        "{e}"
    );
}

#[test]
fn images_list_status_pull_with_and_without_auth_remove_fs_info() {
    let Some(env) = RuntimeEnv::start(true) else {
        return;
    };
    let rt = env.client();
    let list = ok(rt.list_images(&ListImagesRequest::default()), "ListImages");
    let tags: Vec<&str> = list
        .images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    for want in [
        BUSYBOX,
        "docker.io/library/busybox:latest",
        "registry.k8s.io/pause:3.9",
    ] {
        assert!(tags.contains(&want), "{want} not in {tags:?}");
    }
    let busybox = ok(
        rt.image_status(&ImageStatusRequest {
            image: image(BUSYBOX),
            verbose: false,
        }),
        "ImageStatus",
    );
    let busybox = busybox.image.expect("busybox is imported");
    assert!(
        busybox.id.starts_with("sha256:") && busybox.size > 500_000,
        "{busybox:?}"
    );
    let missing = ok(
        rt.image_status(&ImageStatusRequest {
            image: image("example.invalid/none:1"),
            verbose: false,
        }),
        "ImageStatus",
    );
    assert_eq!(
        missing.image, None,
        "a missing image is OK with no image, as the CRI says"
    );

    let fs = ok(rt.image_fs_info(&ImageFsInfoRequest {}), "ImageFsInfo");
    let first = fs.image_filesystems.first().expect("one image filesystem");
    assert!(
        first
            .fs_id
            .as_ref()
            .is_some_and(|f| f.mountpoint.starts_with(&env.dir().display().to_string())),
        "{first:?}"
    );
    assert!(
        first.used_bytes.is_some() && first.inodes_used.is_some(),
        "{first:?}"
    );

    // Anonymous pull from the local registry.
    let anon = format!("{}/library/busybox:1.36", env.var("REGISTRY"));
    let pulled = ok(
        rt.pull_image(&PullImageRequest {
            image: image(&anon),
            ..Default::default()
        }),
        "PullImage",
    );
    assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
    assert_eq!(
        pulled.image_ref, busybox.id,
        "the same image, by its config digest"
    );

    // The auth registry refuses an anonymous pull with the runtime's reason...
    let private = format!("{}/library/busybox:1.36", env.var("AUTH_REGISTRY"));
    let e = rt
        .pull_image(&PullImageRequest {
            image: image(&private),
            ..Default::default()
        })
        .expect_err("anonymous pull from the auth registry");
    assert_eq!(e.code(), Code::Unknown, "{e}");
    assert!(e.to_string().contains("401 Unauthorized"), "{e}");
    // ...a wrong password too, and takes the right one.
    let auth = |password: &str| AuthConfig {
        username: env.var("AUTH_USER").into(),
        password: password.into(),
        // containerd 1.6 parses this as a URL and matches its host against the image's.
        server_address: format!("http://{}", env.var("AUTH_REGISTRY")),
        ..Default::default()
    };
    let e = rt
        .pull_image(&PullImageRequest {
            image: image(&private),
            auth: Some(auth("wrong")),
            sandbox_config: None,
        })
        .expect_err("wrong password");
    assert!(e.to_string().contains("401 Unauthorized"), "{e}");
    let ok_pull = ok(
        rt.pull_image(&PullImageRequest {
            image: image(&private),
            auth: Some(auth(env.var("AUTH_PASSWORD"))),
            sandbox_config: None,
        }),
        "PullImage with auth",
    );
    assert_eq!(ok_pull.image_ref, busybox.id);
    let after = ok(
        rt.image_status(&ImageStatusRequest {
            image: image(&private),
            verbose: false,
        }),
        "ImageStatus",
    );
    assert!(after.image.is_some_and(|i| i.repo_tags.contains(&private)));

    // Remove by name: the tag goes, the image stays under its other names until the last one.
    ok(
        rt.remove_image(&RemoveImageRequest {
            image: image(&anon),
        }),
        "RemoveImage",
    );
    let gone = ok(
        rt.image_status(&ImageStatusRequest {
            image: image(&anon),
            verbose: false,
        }),
        "ImageStatus",
    );
    assert_eq!(
        gone.image, None,
        "after RemoveImage the name no longer resolves"
    );
}

#[test]
fn sandboxes_containers_exit_codes_logs_exec_sync_and_listing() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let rt = env.client();

    // Pod network: an address from the private range.
    let cfg = sandbox_config(&env, "web", false);
    let sb = run_sandbox(&rt, &cfg);
    let st = ok(
        rt.pod_sandbox_status(&PodSandboxStatusRequest {
            pod_sandbox_id: sb.clone(),
            verbose: false,
        }),
        "PodSandboxStatus",
    );
    let st = st.status.expect("sandbox status");
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    let prefix = env.var("SUBNET").trim_end_matches("0/24").to_string();
    assert!(
        ip.starts_with(&prefix),
        "pod IP {ip:?} not in {}",
        env.var("SUBNET")
    );
    assert_eq!(st.metadata.map(|m| m.name), Some("web".to_string()));

    // Host network: no IP of its own from CNI.
    let host_cfg = sandbox_config(&env, "hostnet", true);
    let host_sb = run_sandbox(&rt, &host_cfg);
    let host_st = ok(
        rt.pod_sandbox_status(&PodSandboxStatusRequest {
            pod_sandbox_id: host_sb.clone(),
            verbose: false,
        }),
        "PodSandboxStatus",
    );
    let ns = host_st
        .status
        .and_then(|s| s.linux)
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options);
    assert_eq!(ns.map(|o| o.network), Some(NamespaceMode::Node as i32));

    // A container that logs to stdout and stderr and exits 3.
    let c = create(
        &rt,
        &sb,
        &cfg,
        container_config(
            "talker",
            &["sh", "-c", "echo \"$GREETING\"; echo oops >&2; exit 3"],
            None,
        ),
    );
    assert_eq!(
        status(&rt, &c).state,
        ContainerState::ContainerCreated as i32
    );
    start(&rt, &c);
    let done = wait_exited(&rt, &c);
    assert_eq!(
        (done.exit_code, done.reason.as_str()),
        (3, "Error"),
        "{done:?}"
    );
    // Both set. Not ordered: for a container that exits at once containerd 1.6 records
    // started_at after the exit (seen: finished_at 0.4 ms before started_at).
    assert!(done.started_at > 0 && done.finished_at > 0, "{done:?}");
    assert!(
        (done.finished_at - done.started_at).abs() < 60_000_000_000,
        "{done:?}"
    );
    let log_path = PathBuf::from(&cfg.log_directory).join("talker/0.log");
    assert_eq!(PathBuf::from(&done.log_path), log_path);
    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
    // CRI format: RFC 3339 nano timestamp, stream, tag (F = full line), content.
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{log}");
    let mut seen: Vec<(&str, &str, &str)> = lines.iter().map(|p| (p[1], p[2], p[3])).collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("stderr", "F", "oops"),
            ("stdout", "F", "hello from tinylet")
        ]
    );
    for p in &lines {
        assert!(
            p[0].len() > 20 && p[0].contains('T') && p[0].ends_with('Z') || p[0].contains('+'),
            "{p:?}"
        );
    }

    // A long-running one: ExecSync with output, exit code and its own timeout.
    let sleeper = create(
        &rt,
        &sb,
        &cfg,
        container_config("sleeper", &["sleep", "3600"], None),
    );
    start(&rt, &sleeper);
    assert_eq!(
        status(&rt, &sleeper).state,
        ContainerState::ContainerRunning as i32
    );
    let out = ok(
        rt.exec_sync(&ExecSyncRequest {
            container_id: sleeper.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "echo $GREETING; echo err >&2; exit 7".into(),
            ],
            timeout: 10,
        }),
        "ExecSync",
    );
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"hello from tinylet\n"[..], &b"err\n"[..], 7)
    );
    let e = rt.exec_sync(&ExecSyncRequest {
        container_id: sleeper.clone(),
        cmd: vec!["sleep".into(), "30".into()],
        timeout: 1,
    });
    match e {
        Err(e) => assert_eq!(e.code(), Code::DeadlineExceeded, "{e}"),
        Ok(r) => panic!("a 30 s command with a 1 s timeout returned {r:?}"),
    }

    // Log rotation: the runtime reopens the running container's log file at the same path.
    let sleeper_log = PathBuf::from(&cfg.log_directory).join("sleeper/0.log");
    std::fs::rename(&sleeper_log, sleeper_log.with_extension("rotated"))
        .unwrap_or_else(|e| panic!("rotate {}: {e}", sleeper_log.display()));
    ok(
        rt.reopen_container_log(&ReopenContainerLogRequest {
            container_id: sleeper.clone(),
        }),
        "ReopenContainerLog",
    );
    assert!(
        sleeper_log.exists(),
        "ReopenContainerLog recreated {}",
        sleeper_log.display()
    );

    // Listing with filters.
    let all = ok(
        rt.list_containers(&ListContainersRequest::default()),
        "ListContainers",
    );
    assert_eq!(all.containers.len(), 2);
    let running = ok(
        rt.list_containers(&ListContainersRequest {
            filter: Some(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        }),
        "ListContainers",
    );
    assert_eq!(
        running
            .containers
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec![sleeper.as_str()]
    );
    let by_label = ok(
        rt.list_containers(&ListContainersRequest {
            filter: Some(ContainerFilter {
                label_selector: [(
                    "io.kubernetes.container.name".to_string(),
                    "talker".to_string(),
                )]
                .into(),
                ..Default::default()
            }),
        }),
        "ListContainers",
    );
    assert_eq!(by_label.containers.len(), 1);
    assert_eq!(
        by_label.containers[0]
            .metadata
            .as_ref()
            .map(|m| m.name.as_str()),
        Some("talker")
    );
    let sandboxes = ok(
        rt.list_pod_sandbox(&ListPodSandboxRequest::default()),
        "ListPodSandbox",
    );
    assert_eq!(sandboxes.items.len(), 2);

    // Stop with a grace period: sleep ignores nothing, SIGTERM ends it (exit by signal 15 -> 143).
    ok(
        rt.stop_container(&StopContainerRequest {
            container_id: sleeper.clone(),
            timeout: 5,
        }),
        "StopContainer",
    );
    let stopped = status(&rt, &sleeper);
    assert_eq!(stopped.state, ContainerState::ContainerExited as i32);
    assert_eq!(stopped.exit_code, 143, "{stopped:?}");
    // An exited container has no log to reopen: the runtime says so.
    let e = rt
        .reopen_container_log(&ReopenContainerLogRequest {
            container_id: c.clone(),
        })
        .expect_err("ReopenContainerLog on an exited container");
    assert!(e.to_string().contains("running"), "{e}");
    ok(
        rt.remove_container(&RemoveContainerRequest {
            container_id: c.clone(),
        }),
        "RemoveContainer",
    );
    let e = rt
        .container_status(&ContainerStatusRequest {
            container_id: c.clone(),
            verbose: false,
        })
        .expect_err("removed");
    assert!(e.is_not_found(), "{e}");

    remove_sandbox(&rt, &sb);
    remove_sandbox(&rt, &host_sb);
    let left = ok(
        rt.list_pod_sandbox(&ListPodSandboxRequest::default()),
        "ListPodSandbox",
    );
    assert!(left.items.is_empty(), "{:?}", left.items);
    let left = ok(
        rt.list_containers(&ListContainersRequest::default()),
        "ListContainers",
    );
    assert!(
        left.containers.is_empty(),
        "removing the sandbox removes its containers"
    );
}

#[test]
fn memory_limit_oom_kill_update_resources_and_stats() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let rt = env.client();
    let cfg = sandbox_config(&env, "limits", false);
    let sb = run_sandbox(&rt, &cfg);

    let limit = 24 << 20;
    let res = LinuxContainerResources {
        memory_limit_in_bytes: limit,
        cpu_shares: 256,
        ..Default::default()
    };
    // Allocates far more than its limit in one go.
    let hog = create(
        &rt,
        &sb,
        &cfg,
        container_config(
            "hog",
            &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
            Some(res.clone()),
        ),
    );
    start(&rt, &hog);
    let st = wait_exited(&rt, &hog);
    assert_eq!(
        (st.reason.as_str(), st.exit_code),
        ("OOMKilled", 137),
        "{st:?}"
    );

    let idle = create(
        &rt,
        &sb,
        &cfg,
        container_config("idle", &["sleep", "3600"], Some(res)),
    );
    start(&rt, &idle);
    let mem_file = cgroup_file(
        &cfg,
        &idle,
        "memory",
        &["memory.limit_in_bytes", "memory.max"],
    );
    assert_eq!(
        std::fs::read_to_string(&mem_file)
            .map(|s| s.trim().to_string())
            .ok(),
        Some(limit.to_string())
    );
    let bigger = 48 << 20;
    ok(
        rt.update_container_resources(&UpdateContainerResourcesRequest {
            container_id: idle.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: bigger,
                cpu_shares: 512,
                ..Default::default()
            }),
            annotations: Default::default(),
        }),
        "UpdateContainerResources",
    );
    assert_eq!(
        std::fs::read_to_string(&mem_file)
            .map(|s| s.trim().to_string())
            .ok(),
        Some(bigger.to_string()),
        "{}",
        mem_file.display()
    );
    let shown = status(&rt, &idle).resources.and_then(|r| r.linux);
    assert_eq!(shown.map(|l| l.memory_limit_in_bytes), Some(bigger));

    // Stats: per container, listed, per sandbox.
    let cs = ok(
        rt.container_stats(&ContainerStatsRequest {
            container_id: idle.clone(),
        }),
        "ContainerStats",
    );
    let cs = cs.stats.expect("stats");
    assert_eq!(
        cs.attributes.as_ref().map(|a| a.id.as_str()),
        Some(idle.as_str())
    );
    let ws = cs
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value);
    assert!(
        ws.is_some_and(|w| w > 0 && w < bigger as u64),
        "working set {ws:?}"
    );
    assert!(
        cs.cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .is_some_and(|v| v.value > 0),
        "{cs:?}"
    );
    let listed = ok(
        rt.list_container_stats(&ListContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                pod_sandbox_id: sb.clone(),
                ..Default::default()
            }),
        }),
        "ListContainerStats",
    );
    assert!(
        listed
            .stats
            .iter()
            .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == idle)),
        "{listed:?}"
    );
    let ps = ok(
        rt.pod_sandbox_stats(&PodSandboxStatsRequest {
            pod_sandbox_id: sb.clone(),
        }),
        "PodSandboxStats",
    );
    let ps = ps.stats.expect("sandbox stats");
    assert_eq!(ps.attributes.map(|a| a.id), Some(sb.clone()));
    let linux = ps.linux.expect("linux stats");
    assert!(
        linux
            .memory
            .and_then(|m| m.working_set_bytes)
            .is_some_and(|v| v.value > 0)
    );
    let lps = ok(
        rt.list_pod_sandbox_stats(&ListPodSandboxStatsRequest::default()),
        "ListPodSandboxStats",
    );
    assert_eq!(lps.stats.len(), 1);

    remove_sandbox(&rt, &sb);
}

/// The cgroup file of a container: v1 `<controller>/<parent>/<id>/<file>` or v2 `<parent>/<id>/<file>`.
fn cgroup_file(cfg: &PodSandboxConfig, id: &str, controller: &str, names: &[&str]) -> PathBuf {
    let parent = cfg
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.clone())
        .unwrap_or_default();
    let parent = parent.trim_start_matches('/');
    let v1 = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(parent)
        .join(id);
    let v2 = PathBuf::from("/sys/fs/cgroup").join(parent).join(id);
    for dir in [v1, v2] {
        for n in names {
            let f = dir.join(n);
            if f.exists() {
                return f;
            }
        }
    }
    panic!("no {names:?} for container {id} under /sys/fs/cgroup");
}

#[test]
fn exec_url_streams_output_over_websocket() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let rt = env.client();
    let cfg = sandbox_config(&env, "shell", false);
    let sb = run_sandbox(&rt, &cfg);
    let c = create(
        &rt,
        &sb,
        &cfg,
        container_config("sh", &["sleep", "3600"], None),
    );
    start(&rt, &c);
    let url = ok(
        rt.exec(&ExecRequest {
            container_id: c.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "echo out-$GREETING; echo err >&2; exit 4".into(),
            ],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        }),
        "Exec",
    )
    .url;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (stdout, stderr, status) = websocket_exec(&url);
    assert_eq!(stdout, "out-hello from tinylet\n");
    assert_eq!(stderr, "err\n");
    assert!(
        status.contains("\"status\":\"Failure\"")
            && status.contains("\"ExitCode\"")
            && status.contains("\"4\""),
        "{status}"
    );

    let attach = ok(
        rt.attach(&AttachRequest {
            container_id: c.clone(),
            stdin: false,
            tty: false,
            stdout: true,
            stderr: true,
        }),
        "Attach",
    )
    .url;
    assert!(attach.contains("/attach/"), "{attach}");
    let pf = ok(
        rt.port_forward(&PortForwardRequest {
            pod_sandbox_id: sb.clone(),
            port: vec![80],
        }),
        "PortForward",
    )
    .url;
    assert!(pf.contains("/portforward/"), "{pf}");
    remove_sandbox(&rt, &sb);
}

/// Runs a CRI streaming exec URL with the `v4.channel.k8s.io` WebSocket protocol.
fn websocket_exec(url: &str) -> (String, String, String) {
    use tungstenite::client::IntoClientRequest;
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url
        .as_str()
        .into_client_request()
        .unwrap_or_else(|e| panic!("{e}"));
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let (mut ws, resp) =
        tungstenite::connect(req).unwrap_or_else(|e| panic!("websocket {ws_url}: {e}"));
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.as_bytes()),
        Some(&b"v4.channel.k8s.io"[..])
    );
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) if !b.is_empty() => match b[0] {
                1 => out.extend_from_slice(&b[1..]),
                2 => err.extend_from_slice(&b[1..]),
                3 => status.extend_from_slice(&b[1..]),
                _ => {}
            },
            Ok(tungstenite::Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(tungstenite::Error::Protocol(_)) | Err(tungstenite::Error::Io(_)) => break,
            Err(e) => panic!("websocket read: {e}"),
        }
    }
    let s = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    (s(out), s(err), s(status))
}

#[test]
fn slow_call_does_not_block_others() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let rt = std::sync::Arc::new(env.client());
    let cfg = sandbox_config(&env, "slow", false);
    let sb = run_sandbox(&rt, &cfg);
    let c = create(
        &rt,
        &sb,
        &cfg,
        container_config("c", &["sleep", "3600"], None),
    );
    start(&rt, &c);
    let (tx, rx) = mpsc::channel();
    let slow_rt = rt.clone();
    let slow = std::thread::spawn(move || {
        let r = slow_rt.exec_sync(&ExecSyncRequest {
            container_id: c,
            cmd: vec!["sleep".into(), "3".into()],
            timeout: 30,
        });
        let _ = tx.send(());
        r
    });
    // While the exec runs, other calls on the same connection answer.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        ok(rt.version(&VersionRequest::default()), "Version");
        ok(
            rt.list_containers(&ListContainersRequest::default()),
            "ListContainers",
        );
    }
    assert!(
        rx.try_recv().is_err(),
        "the 3 s exec was still running while 40 calls completed"
    );
    let r = slow
        .join()
        .unwrap_or_else(|_| panic!("exec thread panicked"));
    assert_eq!(ok(r, "ExecSync").exit_code, 0);
    remove_sandbox(&rt, &sb);
}

#[test]
fn reconnects_after_a_runtime_restart_and_fails_clearly_while_it_is_down() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let timeout = Duration::from_secs(5);
    let rt = env.client_with(Options::new(timeout));
    ok(rt.version(&VersionRequest::default()), "Version");
    env.stop_containerd();

    let asked = Instant::now();
    let e = rt
        .version(&VersionRequest::default())
        .expect_err("containerd is down");
    assert!(asked.elapsed() < timeout, "failed within its deadline");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("RuntimeService/Version")
            && msg.contains(env.var("CONTAINERD_SOCK"))
            && msg.contains("is the container runtime running?"),
        "{msg}"
    );

    env.start_containerd();
    let v = rt
        .version(&VersionRequest::default())
        .unwrap_or_else(|e| panic!("after restart: {e}\n{}", env.log()));
    assert_eq!(v.runtime_name, "containerd");
    // And again after a restart the client did not see happen between two calls.
    env.stop_containerd();
    env.start_containerd();
    ok(
        rt.status(&StatusRequest::default()),
        "Status after a second restart",
    );
}

/// Image GC on a real containerd: with the image filesystem past the high threshold, an image
/// nobody uses is removed; busybox (a container's, not even started) and the pause image (the
/// sandbox's, which containerd 1.6 does not pin) stay; the shortfall is the kubelet's error.
#[test]
fn image_gc_removes_what_no_container_or_sandbox_uses() {
    use tinylet::pods::image_gc::{self, GcError, Policy, Records, Why};
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let rt = env.client();
    // A third image, made with the scripts' own OCI tooling.
    let work = env.dir().join("junk-image");
    std::fs::create_dir_all(work.join("root")).expect("junk root");
    std::fs::write(work.join("root/junk"), "junk\n").expect("junk file");
    let script = format!(
        ". {}/scripts/lib.sh && oci_image example.com/junk:1 {root} '\"Cmd\":[\"/junk\"]' {tar} && \
         ctr --address {sock} -n k8s.io images import {tar}",
        common::repo().display(),
        root = work.join("root").display(),
        tar = work.join("junk.tar").display(),
        sock = env.var("CONTAINERD_SOCK"),
    );
    let out = common::run(std::process::Command::new("bash").args(["-c", &script]));
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let ids = |rt: &Runtime| -> Vec<(String, Vec<String>)> {
        ok(rt.list_images(&ListImagesRequest::default()), "ListImages")
            .images
            .into_iter()
            .map(|i| (i.id, i.repo_tags))
            .collect()
    };
    let id_of = |tag: &str| {
        ids(&rt)
            .into_iter()
            .find(|(_, tags)| tags.iter().any(|t| t == tag))
            .map(|(id, _)| id)
            .unwrap_or_else(|| panic!("no image {tag}"))
    };
    let (junk, busybox, pause) = (
        id_of("example.com/junk:1"),
        id_of(BUSYBOX),
        id_of("registry.k8s.io/pause:3.9"),
    );
    let config = sandbox_config(&env, "gc", false);
    let sb = run_sandbox(&rt, &config);
    create(&rt, &sb, &config, container_config("c", &["true"], None));

    let policy = Policy {
        high_percent: 1,
        low_percent: 0,
        min_age: Duration::ZERO,
        max_age: Duration::ZERO,
    };
    let mut records = Records::new(0);
    let now = tinylet::pods::execute::now_ms();
    let sandboxes = ["registry.k8s.io/pause:3.9".to_string()];
    let fs = image_gc::host_fs;
    let (report, done) = image_gc::pass(&mut records, &rt, &sandboxes, &fs, &policy, now);
    assert_eq!(report.removed, [(junk.clone(), Why::Space)]);
    assert!(
        matches!(done, Err(GcError::NotEnough { freed, .. }) if freed == report.freed && freed > 0),
        "{done:?}"
    );
    let left: Vec<String> = ids(&rt).into_iter().map(|(id, _)| id).collect();
    assert!(!left.contains(&junk), "{left:?}");
    assert!(left.contains(&busybox) && left.contains(&pause), "{left:?}");
    remove_sandbox(&rt, &sb);
}
