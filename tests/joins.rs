//! Three joins on the real control plane (`scripts/upstream up`), each with a real containerd:
//! (a) the seed guide's node, (b) a kubeadm node (`kubeadm init phase ...` on the cluster side,
//! the upstream `kubeadm join` on the node, tinylet started on what it wrote), and (c) the
//! upstream kubelet on the same kubeadm harness, the reference the other two are held to, and
//! (d) tinylet on (c)'s node exactly (cgroupfs), whose stats `scripts/side-by-side` holds to
//! (c)'s. Each node runs a pod the real scheduler places.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::https::{cert_args, curl_at, free_port};
use common::kubeadm::{
    KernelTunables, KubeadmNode, get, kubeadm_cluster_side, kubectl, node_patch,
};
use common::pods::{node_ip, seed_steps};
use common::runtime::RuntimeEnv;
use common::upstream::ControlPlane;
use common::*;
use serde_json::Value;

/// `key: value` in place of the top-level `key:` line of a config.
fn set_line(cfg: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key}:");
    assert!(
        cfg.lines().any(|l| l.starts_with(&prefix)),
        "no {key} in the config"
    );
    cfg.lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{key}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A Deployment of one busybox pod, placed by the real scheduler; waits for it to run on n1
/// and returns the pod.
fn scheduled_pod(kc: &Path, log: &mut dyn FnMut() -> String) -> Value {
    kubectl(
        kc,
        &[
            "create",
            "deployment",
            "web",
            "--image=docker.io/library/busybox:1.36",
            "--",
            "sh",
            "-c",
            "echo hello from $(hostname); exec sleep 3600",
        ],
    )
    .unwrap_or_else(|| panic!("kubectl create deployment"));
    wait_until("the scheduled pod to run", 90, log, || {
        get(kc, &["pods", "-l", "app=web"])?["items"]
            .as_array()?
            .iter()
            .find(|p| p["status"]["phase"] == "Running")
            .cloned()
    })
}

// ---- (a) the seed guide's node ----

#[test]
fn a_the_seed_guides_node_joins_the_real_control_plane() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    // Seed::start on the real control plane (no approver: the serving CSR waits for an admin).
    let seed = Seed::start(tmp.path(), &[]);
    assert!(seed.upstream(), "joins run on the real control plane only");
    seed_steps(&seed);
    let ip = node_ip();
    let port = free_port();
    let cfg = seed.node.join("kubelet-config.yaml");
    // The seed guide's template, for this machine: its address, a free port, the test's CA,
    // cgroup parent and log dir, swap tolerated.
    let mut config = seed_config().replace("kubeAPIOPS", "kubeAPIQPS");
    for (k, v) in [
        ("address", ip.as_str()),
        ("port", &port.to_string()),
        ("healthzPort", "0"),
        ("failSwapOn", "false"),
        ("cgroupRoot", env.cgroup_parent()),
    ] {
        config = set_line(&config, k, v);
    }
    let config = config.replace(
        "/etc/kubernetes/cert/ca.pem",
        &seed.sim_dir.join("ca.pem").display().to_string(),
    ) + &format!("podLogsDir: {}\n", tmp.path().join("pod-logs").display());
    write(&cfg, &config);
    let mut agent = Agent::start(&seed.agent_args(
        "n1",
        &[
            format!("--config={}", cfg.display()),
            format!("--node-ip={ip}"),
            format!(
                "--container-runtime-endpoint=unix://{}",
                env.endpoint().path()
            ),
            format!("--root-dir={}", tmp.path().join("root").display()),
        ],
    ));
    // Step 5/6: the client certificate by auto-approval; the serving one waits for an admin.
    agent.expect("bootstrap done: client certificate");
    let sent = agent.expect("(kubernetes.io/kubelet-serving)");
    let csr = csr_name_in(&sent);
    seed.kubectl(&["certificate", "approve", &csr]);
    agent.expect("kubelet-server: certificate rotated");
    let ca = seed.sim_dir.join("ca.pem");
    // Step 7 with curl, at the node's address.
    let code = |path: &str, extra: &[String]| curl_at(&ip, port, path, &ca, extra).0;
    assert_eq!(code("/metrics", &[]), "401");
    assert_eq!(
        curl_at(&ip, port, "/metrics", &ca, &cert_args(&seed.sim_dir, "kube-controller-manager")),
        ("403".into(), "Forbidden (user=system:kube-controller-manager, verb=get, resource=nodes, subresource=metrics)".into())
    );
    assert_eq!(code("/metrics", &cert_args(&seed.sim_dir, "admin")), "200");
    // ... `/metrics/cadvisor` in Prometheus text, with the admin certificate and with a
    // ServiceAccount token bound to system:kubelet-api-admin.
    let (c, body) = curl_at(
        &ip,
        port,
        "/metrics/cadvisor",
        &ca,
        &cert_args(&seed.sim_dir, "admin"),
    );
    assert_eq!(c, "200", "{body}");
    assert!(
        body.contains("# TYPE container_cpu_usage_seconds_total counter\n"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE machine_memory_bytes gauge\n"),
        "{body}"
    );
    seed.kubectl(&["create", "serviceaccount", "scraper"]);
    seed.kubectl(&[
        "create",
        "clusterrolebinding",
        "scraper",
        "--clusterrole=system:kubelet-api-admin",
        "--serviceaccount=default:scraper",
    ]);
    let token = seed.kubectl(&["create", "token", "scraper"]);
    let (c, body) = curl_at(
        &ip,
        port,
        "/metrics/cadvisor",
        &ca,
        &common::https::bearer(token.trim()),
    );
    assert_eq!(c, "200", "a bound ServiceAccount token: {body}");
    assert!(
        body.contains("container_cpu_usage_seconds_total{"),
        "{body}"
    );

    let kc = seed.sim_dir.join("admin.kubeconfig");
    let mut log = || agent.log_so_far();
    let pod = scheduled_pod(&kc, &mut log);
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(pod["spec"]["nodeName"], "n1", "placed by the scheduler");
    // kubectl logs, exec and port-forward through the real API server.
    // Running can be reported before the container's first line reaches its log file.
    let logs = wait_until("kubectl logs", 30, &mut log, || {
        Some(seed.kubectl(&["logs", &name])).filter(|l| !l.is_empty())
    });
    assert_eq!(logs, format!("hello from {name}\n"));
    assert_eq!(
        seed.kubectl(&["exec", &name, "--", "echo", "exec", "works"]),
        "exec works\n"
    );
    let local = free_port();
    let mut pf = Command::new("kubectl")
        .arg(format!(
            "--kubeconfig={}",
            seed.sim_dir.join("admin.kubeconfig").display()
        ))
        .args([
            "port-forward",
            &format!("pod/{name}"),
            &format!("{local}:8080"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    seed.kubectl(&[
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "mkdir -p /srv && echo served > /srv/index.html && (httpd -p 8080 -h /srv || busybox httpd -p 8080 -h /srv)",
    ]);
    wait_until("port-forward to answer", 30, &mut log, || {
        let out = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{local}/index.html")])
            .output()
            .ok()?;
        (text(&out.stdout) == "served\n").then_some(())
    });
    let _ = pf.kill();
    let _ = pf.wait();
    drop(agent);
}

// ---- (b) and (c): a kubeadm node ----

/// How the node under test is run.
struct Under {
    agent: PathBuf,
    name: &'static str,
    /// kubeadm's default cgroupDriver (systemd) kept: pods go in slices of the test's parent.
    systemd: bool,
    /// The side-by-side figures are taken (on cgroupfs only: with the systemd driver here,
    /// containerd's cgroupfs mode puts containers at the slice names taken as paths, so no
    /// agent's cgroup figures are the pods').
    measure: bool,
}

fn kubeadm_join(under: Under) {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    // As kubeadm's API server, it does not verify kubelets' serving certificates (a kubeadm
    // node serves a self-signed one).
    let cp = ControlPlane::up(&tmp.path().join("cp"), &["--no-kubelet-ca"]);
    let token = kubeadm_cluster_side(&cp, tmp.path());
    let patch = node_patch(&env, tmp.path(), under.systemd);
    let _tunables = KernelTunables::save();
    let node = KubeadmNode::join(&cp, &env, tmp.path(), &token, &under.agent, &patch);
    assert_eq!(
        node.joined(),
        0,
        "kubeadm join with {} failed:\n{}",
        under.name,
        node.log()
    );
    let join_log = std::fs::read_to_string(node.dir.join("join.log")).unwrap_or_default();
    assert!(
        join_log.contains("This node has joined the cluster"),
        "{join_log}"
    );
    // What kubeadm wrote, as on every kubeadm node.
    let written = read(&node.dir.join("config.yaml"));
    for want in [
        "kind: KubeletConfiguration",
        "flushFrequency: 0",
        "syncFrequency: 0s",
    ] {
        assert!(
            written.contains(want),
            "{want:?} not in kubeadm's config.yaml:\n{written}"
        );
    }
    assert!(read(&node.dir.join("kubeadm-flags.env")).starts_with("KUBELET_KUBEADM_ARGS="));
    let kc = cp.kubeconfig();
    let mut log = || node.log();
    wait_until("node n1 Ready", 90, &mut log, || {
        get(&kc, &["node", "n1"]).filter(node_ready)
    });
    let pod = scheduled_pod(&kc, &mut log);
    assert_eq!(pod["spec"]["nodeName"], "n1", "placed by the scheduler");
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        // Running can be reported before the container's first line reaches its log file.
        wait_until("kubectl logs", 30, &mut log, || kubectl(
            &kc,
            &["logs", &name]
        )
        .filter(|l| !l.is_empty())),
        format!("hello from {name}\n")
    );
    // The kubernetes service's environment reaches every container, as client-go's
    // in-cluster config needs it.
    let env_out = wait_until("kubectl exec env", 30, &mut log, || {
        kubectl(&kc, &["exec", &name, "--", "env"])
    });
    for want in [
        "KUBERNETES_SERVICE_HOST=10.254.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_SERVICE_PORT_HTTPS=443",
        "KUBERNETES_PORT=tcp://10.254.0.1:443",
        "KUBERNETES_PORT_443_TCP=tcp://10.254.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO=tcp",
        "KUBERNETES_PORT_443_TCP_PORT=443",
        "KUBERNETES_PORT_443_TCP_ADDR=10.254.0.1",
    ] {
        assert!(
            env_out.lines().any(|l| l == want),
            "{want} not in the container's env:\n{env_out}"
        );
    }
    // The container's hash annotation, the same value from either agent (so that one taking
    // over a node from the other keeps its containers): the upstream kubelet's is the truth.
    let spec = &pod["spec"]["containers"][0];
    let (c_name, c_image) = (
        spec["name"].as_str().unwrap_or_default(),
        spec["image"].as_str().unwrap_or_default(),
    );
    let rt = env.client();
    let made = rt
        .list_containers(&tinylet::cri::api::ListContainersRequest {
            filter: Some(tinylet::cri::api::ContainerFilter {
                label_selector: [("io.kubernetes.pod.name".to_string(), name.clone())].into(),
                ..Default::default()
            }),
        })
        .unwrap_or_else(|e| panic!("ListContainers: {e}"))
        .containers;
    let status = rt
        .container_status(&tinylet::cri::api::ContainerStatusRequest {
            container_id: made.first().map(|c| c.id.clone()).unwrap_or_default(),
            verbose: false,
        })
        .unwrap_or_else(|e| panic!("ContainerStatus: {e}"))
        .status
        .unwrap_or_default();
    assert_eq!(
        status
            .annotations
            .get("io.kubernetes.container.hash")
            .map(String::as_str),
        Some(tinylet::pods::layout::container_hash(c_name, c_image).as_str()),
        "{} wrote another hash for {c_name} ({c_image})",
        under.name
    );
    if under.measure {
        side_by_side(&kc, under.name, &mut log);
    }
    if under.systemd {
        // Pod cgroups as the systemd driver names them, under the test's slice.
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .replace('-', "_");
        let slice = env
            .var("SYSTEMD_SLICE")
            .trim_end_matches(".slice")
            .to_string();
        let dir = format!(
            "/sys/fs/cgroup/memory/{slice}.slice/{slice}-kubepods.slice/{slice}-kubepods-besteffort.slice/{slice}-kubepods-besteffort-pod{uid}.slice"
        );
        assert!(Path::new(&dir).is_dir(), "{dir} is not there");
    }
}

/// Two pods of known appetite: `burn` spins under a 200m CPU limit, `hold` keeps 32 MiB in
/// tmpfs (charged to its memory cgroup, in the working set).
const APPETITES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: burn}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "while :; do :; done"]
    resources: {limits: {cpu: 200m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: hold}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "head -c 33554432 /dev/zero > /dev/shm/f && echo held && exec sleep 3600"]
"#;

/// For item 5 of the stats issue (`scripts/side-by-side`): the same two pods measured by the
/// agent under test through the API server's node proxy (`/stats/summary`, what metrics-server
/// and dashboards see), averaged over 5 samples 4 s apart after a 12 s settle; written to
/// `<target>/side-by-side/<agent>.json` for the script to hold the two agents to each other.
fn side_by_side(kc: &Path, agent: &str, log: &mut dyn FnMut() -> String) {
    let manifest = std::env::temp_dir().join(format!("appetites-{}.yaml", std::process::id()));
    write(&manifest, APPETITES);
    kubectl(kc, &["apply", "-f", &manifest.display().to_string()])
        .unwrap_or_else(|| panic!("kubectl apply the appetite pods"));
    let _ = std::fs::remove_file(&manifest);
    wait_until("hold to fill its tmpfs", 90, log, || {
        kubectl(kc, &["logs", "hold"]).filter(|l| l.contains("held"))
    });
    wait_until("burn to run", 90, log, || {
        get(kc, &["pod", "burn"]).filter(|p| p["status"]["phase"] == "Running")
    });
    std::thread::sleep(Duration::from_secs(12));
    let mut sums = [0f64; 4];
    let samples = 5;
    for i in 0..samples {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(4));
        }
        let raw = wait_until("the summary through the node proxy", 30, log, || {
            kubectl(
                kc,
                &["get", "--raw", "/api/v1/nodes/n1/proxy/stats/summary"],
            )
        });
        let s: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
        let figure = |pod: &str, path: [&str; 2]| -> f64 {
            let c = s["pods"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["podRef"]["name"] == pod)
                .map(|p| &p["containers"][0][path[0]])
                .filter(|f| f.is_object())
                .unwrap_or_else(|| panic!("no {pod} {} from {agent}: {raw}", path[0]));
            // An idle container may have no CPU rate at all (omitempty): none is zero.
            match (c[path[1]].as_f64(), path[1]) {
                (Some(v), _) => v,
                (None, "usageNanoCores") if pod == "hold" => 0.0,
                _ => panic!("no {pod} {path:?} from {agent}: {raw}"),
            }
        };
        sums[0] += figure("burn", ["cpu", "usageNanoCores"]);
        sums[1] += figure("burn", ["memory", "workingSetBytes"]);
        sums[2] += figure("hold", ["cpu", "usageNanoCores"]);
        sums[3] += figure("hold", ["memory", "workingSetBytes"]);
    }
    let avg = sums.map(|v| v / samples as f64);
    assert!(
        avg[0] > 0.0 && avg[3] > (32 << 20) as f64,
        "{agent}: {avg:?}"
    );
    let out = upstream::target().join("side-by-side");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    let name = if agent.contains("upstream") {
        "upstream"
    } else {
        "tinylet"
    };
    // The cAdvisor families and their label names, as `scripts/side-by-side` compares them
    // (the upstream kubelet's are the fixture tinylet is held to).
    let cadvisor = wait_until("/metrics/cadvisor through the node proxy", 30, log, || {
        kubectl(
            kc,
            &["get", "--raw", "/api/v1/nodes/n1/proxy/metrics/cadvisor"],
        )
    });
    write(&out.join(format!("{name}-cadvisor.txt")), &cadvisor);
    let families = prometheus_label_names(&cadvisor);
    write(
        &out.join(format!("{name}-cadvisor-families.txt")),
        &(families.join("\n") + "\n"),
    );
    if name == "tinylet" {
        covers_the_upstream_cadvisor_families(&families);
    }
    write(
        &out.join(format!("{name}.json")),
        &serde_json::json!({
            "agent": agent,
            "burn": {"cpuNanoCores": avg[0], "workingSetBytes": avg[1]},
            "hold": {"cpuNanoCores": avg[2], "workingSetBytes": avg[3]},
        })
        .to_string(),
    );
}

/// Families either agent serves only where the kernel accounted a cgroup's block I/O (on a v1
/// kernel, once a throttle was set on the disk: tests/cgroup_readers.rs sets one).
const WHEN_ACCOUNTED: &[&str] = &[
    "container_blkio_device_usage",
    "container_fs_reads_bytes",
    "container_fs_writes_bytes",
];

/// Every cAdvisor family the upstream kubelet (v1.34, join (c)) served for the same two pods
/// on this harness, with the same label names, is served by tinylet (but WHEN_ACCOUNTED ones):
/// `tests/fixtures/upstream-cadvisor-families.txt` (`name type labels` as the Prometheus
/// parser reads them; `scripts/side-by-side` writes the upstream kubelet's anew in
/// `target/side-by-side/`).
fn covers_the_upstream_cadvisor_families(ours: &[String]) {
    let fixture = read(&repo().join("tests/fixtures/upstream-cadvisor-families.txt"));
    let missing: Vec<&str> = fixture
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !ours.iter().any(|o| o == l))
        .filter(|l| {
            let name = l.split(' ').next().unwrap_or_default();
            !WHEN_ACCOUNTED.contains(&name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "upstream families tinylet does not serve (or with other labels):\n{}\ntinylet's:\n{}",
        missing.join("\n"),
        ours.join("\n")
    );
}

#[test]
fn b_a_kubeadm_node_joins_with_tinylet() {
    kubeadm_join(Under {
        agent: PathBuf::from(bin()),
        name: "tinylet",
        systemd: true,
        measure: false,
    });
}

#[test]
fn c_the_upstream_kubelet_joins_the_same_way() {
    // The kubelet's systemd driver needs systemd itself to make slices with (there is none
    // here): cgroupfs, as the runtime is.
    kubeadm_join(Under {
        agent: upstream::bin("kubelet"),
        name: "the upstream kubelet",
        systemd: false,
        measure: true,
    });
}

/// Tinylet on exactly the upstream kubelet's node of (c) (cgroupfs), for the side-by-side
/// figures (`scripts/side-by-side`).
#[test]
fn d_tinylet_on_the_upstream_kubelets_node() {
    kubeadm_join(Under {
        agent: PathBuf::from(bin()),
        name: "tinylet",
        systemd: false,
        measure: true,
    });
}
