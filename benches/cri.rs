//! CRI client benchmark (not a test): tinylet's client against the reference client (k8s-cri's
//! generated tonic client) on the same real containerd, in one run, printed as ratios.
//! Run it through `scripts/bench-cri`, which starts a private containerd and passes its socket:
//!   cargo bench --bench cri -- SOCKET
//! Child modes used for memory figures: `rss-ours SOCKET`, `rss-reference SOCKET`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_cri::v1 as reference;
use tinylet::config::kubelet::RuntimeEndpoint;
use tinylet::cri::api::*;
use tinylet::cri::{Options, Runtime};

type Ref = reference::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("bench-cri: {what}: {e}");
    std::process::exit(1)
}

fn ours(sock: &str) -> Runtime {
    let ep =
        RuntimeEndpoint::parse(&format!("unix://{sock}")).unwrap_or_else(|e| fail("endpoint", e));
    Runtime::new(&ep, None, Options::new(Duration::from_secs(60)))
        .unwrap_or_else(|e| fail("client", e))
}

fn reference_client(rt: &tokio::runtime::Runtime, sock: &str) -> Ref {
    let path = PathBuf::from(sock);
    let channel = rt
        .block_on(
            tonic::transport::Endpoint::from_static("http://localhost").connect_with_connector(
                tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }),
            ),
        )
        .unwrap_or_else(|e| fail("reference connect", e));
    Ref::new(channel)
}

/// Median and p99 of per-call latencies in microseconds.
fn summary(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// Runs each client's closure in alternating rounds, `rounds` x `per_round` calls each, and
/// prints p50/p99 per client and tinylet's ratios to each reference.
fn compare(name: &str, rounds: usize, per_round: usize, clients: &mut [(&str, &mut dyn FnMut())]) {
    let mut times: Vec<Vec<Duration>> = clients.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, f)) in clients.iter_mut().enumerate() {
            for _ in 0..per_round {
                let t = Instant::now();
                f();
                times[i].push(t.elapsed());
            }
        }
    }
    let stats: Vec<(f64, f64)> = times.into_iter().map(summary).collect();
    println!("{name}");
    for ((label, _), (p50, p99)) in clients.iter().zip(&stats) {
        let (o50, o99) = stats[0];
        let ratio = if *label == clients[0].0 {
            String::new()
        } else {
            format!(
                "   tinylet/this: p50 {:.3}  p99 {:.3}",
                o50 / p50,
                o99 / p99
            )
        };
        println!("  {label:<28} p50 {p50:>10.1} us  p99 {p99:>10.1} us{ratio}");
    }
}

/// The reference client behind its own runtime thread, the caller blocking on the answer: the
/// same shape as tinylet's synchronous facade.
struct Threaded {
    rt: tokio::runtime::Runtime,
    client: Ref,
}

impl Threaded {
    fn new(sock: &str) -> Threaded {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail("rt", e));
        let client = reference_client(&rt, sock);
        Threaded { rt, client }
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Ref) -> std::pin::Pin<Box<dyn Future<Output = T> + Send>>,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.client.clone());
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|e| fail("reference thread", e))
    }
}

fn sandbox(name: &str, parent: &str, dir: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: format!("{dir}/{name}"),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{parent}/pod-{name}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(name: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "docker.io/library/busybox:1.36".into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// Converts one of our messages to the reference's type through the wire format.
fn to_ref<A: prost::Message, B: prost::Message + Default>(a: &A) -> B {
    B::decode(a.encode_to_vec().as_slice()).unwrap_or_else(|e| fail("convert", e))
}

fn vm(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.as_slice() {
        [mode, sock] if mode == "rss-ours" => {
            let before = vm("VmRSS:");
            let c = ours(sock);
            for _ in 0..1000 {
                c.version(&VersionRequest::default())
                    .unwrap_or_else(|e| fail("Version", e));
                c.list_containers(&Default::default())
                    .unwrap_or_else(|e| fail("List", e));
            }
            println!("{before} -> {} (peak {})", vm("VmRSS:"), vm("VmHWM:"));
        }
        [mode, sock] if mode == "rss-reference" => {
            let before = vm("VmRSS:");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| fail("rt", e));
            let mut c = reference_client(&rt, sock);
            for _ in 0..1000 {
                rt.block_on(c.version(reference::VersionRequest::default()))
                    .unwrap_or_else(|e| fail("Version", e));
                rt.block_on(c.list_containers(reference::ListContainersRequest::default()))
                    .unwrap_or_else(|e| fail("List", e));
            }
            println!("{before} -> {} (peak {})", vm("VmRSS:"), vm("VmHWM:"));
        }
        [sock, parent, dir] => run(sock, parent, dir),
        _ => fail(
            "usage",
            "cri SOCKET CGROUP_PARENT LOG_DIR | rss-ours SOCKET | rss-reference SOCKET",
        ),
    }
}

fn run(sock: &str, parent: &str, dir: &str) {
    let c = ours(sock);
    let inline_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail("rt", e));
    let mut inline = reference_client(&inline_rt, sock);
    let threaded = Threaded::new(sock);
    const OURS: &str = "tinylet";
    const THREADED: &str = "reference, runtime thread";
    const INLINE: &str = "reference, caller's thread";

    compare(
        "Version",
        10,
        200,
        &mut [
            (OURS, &mut || {
                c.version(&VersionRequest::default())
                    .unwrap_or_else(|e| fail("Version", e));
            }),
            (THREADED, &mut || {
                threaded
                    .call(|mut r| {
                        Box::pin(
                            async move { r.version(reference::VersionRequest::default()).await },
                        )
                    })
                    .unwrap_or_else(|e| fail("ref Version", e));
            }),
            (INLINE, &mut || {
                inline_rt
                    .block_on(inline.version(reference::VersionRequest::default()))
                    .unwrap_or_else(|e| fail("ref Version", e));
            }),
        ],
    );

    // 20 running containers in one sandbox, then ListContainers.
    let sb_cfg = sandbox("list", parent, dir);
    let sb = c
        .run_pod_sandbox(&RunPodSandboxRequest {
            config: Some(sb_cfg.clone()),
            runtime_handler: String::new(),
        })
        .unwrap_or_else(|e| fail("RunPodSandbox", e))
        .pod_sandbox_id;
    for i in 0..20 {
        let id = c
            .create_container(&CreateContainerRequest {
                pod_sandbox_id: sb.clone(),
                config: Some(container(&format!("c{i}"))),
                sandbox_config: Some(sb_cfg.clone()),
            })
            .unwrap_or_else(|e| fail("CreateContainer", e))
            .container_id;
        c.start_container(&StartContainerRequest { container_id: id })
            .unwrap_or_else(|e| fail("StartContainer", e));
    }
    let n = c
        .list_containers(&Default::default())
        .unwrap_or_else(|e| fail("List", e))
        .containers
        .len();
    compare(
        &format!("ListContainers ({n} containers)"),
        10,
        50,
        &mut [
            (OURS, &mut || {
                c.list_containers(&Default::default())
                    .unwrap_or_else(|e| fail("ListContainers", e));
            }),
            (THREADED, &mut || {
                threaded
                    .call(|mut r| {
                        Box::pin(async move {
                            r.list_containers(reference::ListContainersRequest::default())
                                .await
                        })
                    })
                    .unwrap_or_else(|e| fail("ref ListContainers", e));
            }),
            (INLINE, &mut || {
                inline_rt
                    .block_on(inline.list_containers(reference::ListContainersRequest::default()))
                    .unwrap_or_else(|e| fail("ref ListContainers", e));
            }),
        ],
    );
    clean(&c);

    // Sandbox + container start, end to end through each client.
    let mut k = std::cell::Cell::new(0);
    let next = |k: &std::cell::Cell<u32>, who: &str| {
        k.set(k.get() + 1);
        sandbox(&format!("{who}{}", k.get()), parent, dir)
    };
    compare(
        "RunPodSandbox+CreateContainer+StartContainer",
        5,
        2,
        &mut [
            (OURS, &mut || {
                let cfg = next(&k, "ours");
                let sb = c
                    .run_pod_sandbox(&RunPodSandboxRequest {
                        config: Some(cfg.clone()),
                        runtime_handler: String::new(),
                    })
                    .unwrap_or_else(|e| fail("RunPodSandbox", e))
                    .pod_sandbox_id;
                let id = c
                    .create_container(&CreateContainerRequest {
                        pod_sandbox_id: sb,
                        config: Some(container("app")),
                        sandbox_config: Some(cfg),
                    })
                    .unwrap_or_else(|e| fail("CreateContainer", e))
                    .container_id;
                c.start_container(&StartContainerRequest { container_id: id })
                    .unwrap_or_else(|e| fail("StartContainer", e));
            }),
            (THREADED, &mut || {
                let cfg: reference::PodSandboxConfig = to_ref(&next(&k, "threaded"));
                threaded.call(move |mut r| {
                    Box::pin(async move {
                        let sb = r
                            .run_pod_sandbox(reference::RunPodSandboxRequest {
                                config: Some(cfg.clone()),
                                runtime_handler: String::new(),
                            })
                            .await
                            .unwrap_or_else(|e| fail("ref RunPodSandbox", e))
                            .into_inner()
                            .pod_sandbox_id;
                        let id = r
                            .create_container(reference::CreateContainerRequest {
                                pod_sandbox_id: sb,
                                config: Some(to_ref(&container("app"))),
                                sandbox_config: Some(cfg),
                            })
                            .await
                            .unwrap_or_else(|e| fail("ref CreateContainer", e))
                            .into_inner()
                            .container_id;
                        r.start_container(reference::StartContainerRequest { container_id: id })
                            .await
                            .unwrap_or_else(|e| fail("ref StartContainer", e));
                    })
                });
            }),
            (INLINE, &mut || {
                let cfg: reference::PodSandboxConfig = to_ref(&next(&k, "inline"));
                let sb = inline_rt
                    .block_on(inline.run_pod_sandbox(reference::RunPodSandboxRequest {
                        config: Some(cfg.clone()),
                        runtime_handler: String::new(),
                    }))
                    .unwrap_or_else(|e| fail("ref RunPodSandbox", e))
                    .into_inner()
                    .pod_sandbox_id;
                let id = inline_rt
                    .block_on(inline.create_container(reference::CreateContainerRequest {
                        pod_sandbox_id: sb,
                        config: Some(to_ref(&container("app"))),
                        sandbox_config: Some(cfg),
                    }))
                    .unwrap_or_else(|e| fail("ref CreateContainer", e))
                    .into_inner()
                    .container_id;
                inline_rt
                    .block_on(
                        inline
                            .start_container(reference::StartContainerRequest { container_id: id }),
                    )
                    .unwrap_or_else(|e| fail("ref StartContainer", e));
            }),
        ],
    );
    let _ = k.get_mut();
    clean(&c);
}

/// Stops and removes every sandbox (and so every container).
fn clean(c: &Runtime) {
    let all = c
        .list_pod_sandbox(&Default::default())
        .unwrap_or_else(|e| fail("ListPodSandbox", e));
    for sb in all.items {
        let _ = c.stop_pod_sandbox(&StopPodSandboxRequest {
            pod_sandbox_id: sb.id.clone(),
        });
        let _ = c.remove_pod_sandbox(&RemovePodSandboxRequest {
            pod_sandbox_id: sb.id,
        });
    }
}
