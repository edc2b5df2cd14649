//! A node for the pod tests: kube-sim with the seed's RBAC steps, a real containerd, and the
//! agent serving 10250 with the seed's authn/authz; waiting on conditions, not on time.

use super::runtime::RuntimeEnv;
use super::{Agent, Seed};

pub fn wait<T>(agent: &mut Agent, what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
    super::wait_until(what, secs, &mut || agent.log_so_far(), f)
}

/// The node's IP for the pod tests: this machine's address on its default route. Not
/// loopback: the real API server refuses to proxy (`kubectl logs`, `nodes/n1/proxy`) to a node
/// whose address is a loopback one ("address not allowed").
pub fn node_ip() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "route", "get", "1.1.1.1"])
        .output()
        .unwrap_or_else(|e| panic!("ip route get: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut w = text.split_whitespace();
    while let Some(x) = w.next() {
        if x == "src"
            && let Some(ip) = w.next()
        {
            return ip.to_string();
        }
    }
    panic!("no source address for the default route in {text:?}: the pod tests need one");
}

/// The seed's RBAC steps: bootstrappers, CSR auto-approval, and (step 4) the API server's
/// identity on the kubelet API (kubectl logs/exec).
pub fn seed_steps(seed: &Seed) {
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    seed.kubectl(&[
        "create",
        "clusterrolebinding",
        "kube-apiserver:kubelet-apis",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kubernetes-master",
    ]);
}

/// The agent's flags for node n1 on `env`'s runtime with config `cfg` and root dir `root`.
pub fn node_args(
    seed: &Seed,
    env: &RuntimeEnv,
    cfg: &std::path::Path,
    root: &std::path::Path,
    v: bool,
) -> Vec<String> {
    let mut extra = vec![
        format!("--config={}", cfg.display()),
        format!("--node-ip={}", node_ip()),
        format!(
            "--container-runtime-endpoint=unix://{}",
            env.endpoint().path()
        ),
        format!("--root-dir={}", root.display()),
    ];
    if v {
        extra.push("--v=2".into());
    }
    seed.agent_args("n1", &extra)
}

/// A KubeletConfiguration serving 10250's API on a free local port as the seed does (webhook
/// authn/authz, a serving certificate by CSR), pods on `env`'s runtime, plus `extra` lines and
/// [`super::build_machine_disk`]'s thresholds.
pub fn serving_config(
    seed: &Seed,
    env: &RuntimeEnv,
    logs: &std::path::Path,
    extra: &str,
) -> String {
    let port = super::https::free_port();
    let ip = node_ip();
    format!(
        "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n\
         address: {ip}\nport: {port}\nhealthzPort: 0\nserverTLSBootstrap: true\n\
         authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: {}\n\
         authorization:\n  mode: Webhook\n\
         nodeStatusUpdateFrequency: 1s\npodLogsDir: {}\ncgroupRoot: {}\n{extra}{}",
        seed.sim_dir.join("ca.pem").display(),
        logs.display(),
        env.cgroup_parent(),
        super::build_machine_disk(extra)
    )
}

/// A registered node: kube-sim after the seed's RBAC steps, and the agent serving 10250 on
/// `env`'s containerd with pod logs in `<tmp>/pod-logs` and its root dir in `<tmp>/root`.
pub struct PodNode {
    pub seed: Seed,
    pub agent: Agent,
    pub logs: std::path::PathBuf,
    /// The 10250 port.
    pub port: u16,
    /// The agent's flags (to start it again).
    pub args: Vec<String>,
}

impl PodNode {
    pub fn start(env: &RuntimeEnv, tmp: &std::path::Path, extra: &str, verbose: bool) -> PodNode {
        PodNode::start_with_sim(env, tmp, &[], extra, verbose)
    }

    /// [`PodNode::start`] with more flags for kube-sim.
    pub fn start_with_sim(
        env: &RuntimeEnv,
        tmp: &std::path::Path,
        sim_args: &[&str],
        extra: &str,
        verbose: bool,
    ) -> PodNode {
        let mut args = vec!["--approve-serving-csrs"];
        args.extend_from_slice(sim_args);
        let seed = Seed::start(tmp, &args);
        seed_steps(&seed);
        let logs = tmp.join("pod-logs");
        let cfg = tmp.join("kubelet-config.yaml");
        let config = serving_config(&seed, env, &logs, extra);
        super::write(&cfg, &config);
        let port = config
            .lines()
            .find_map(|l| l.strip_prefix("port: "))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {config}"));
        let args = node_args(&seed, env, &cfg, &tmp.join("root"), verbose);
        let mut agent = Agent::start(&args);
        agent.expect("Successfully registered node \"n1\"");
        PodNode {
            seed,
            agent,
            logs,
            port,
            args,
        }
    }
}
