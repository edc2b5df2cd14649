//! A kubeadm node on the real control plane, shared by the joins and the conformance suite: the
//! cluster side as `kubeadm init` makes it, the upstream `kubeadm join` in a private mount
//! namespace, the agent under test started as kubeadm's drop-in starts the kubelet, and
//! kubectl helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::https::free_port;
use super::runtime::RuntimeEnv;
use super::upstream::{self, ControlPlane};
use super::{run, text, write};

pub fn kubectl(kc: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kc.display()))
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("kubectl {args:?}: {}", text(&out.stderr).trim());
    }
    out.status.success().then(|| text(&out.stdout))
}

pub fn get(kc: &Path, args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(kc, &a)?).ok()
}

/// The cluster side of a kubeadm cluster on this control plane: the bootstrap token, the
/// cluster-info ConfigMap, the kubeadm-config and kubelet-config ConfigMaps and their RBAC,
/// made by the upstream `kubeadm init phase ...` as `kubeadm init` makes them.
pub fn kubeadm_cluster_side(cp: &ControlPlane, tmp: &Path) -> String {
    let port = cp.server.rsplit(':').next().unwrap_or_default();
    let token = "abcdef.0123456789abcdef";
    let cfg = tmp.join("kubeadm.yaml");
    write(
        &cfg,
        &format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: {token}\n  ttl: 1h\n---\n\
             apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.4\n\
             controlPlaneEndpoint: 127.0.0.1:{port}\nnetworking:\n  serviceSubnet: 10.254.0.0/16\n"
        ),
    );
    for phase in [
        &["bootstrap-token"][..],
        &["upload-config", "kubeadm"],
        &["upload-config", "kubelet"],
    ] {
        let out = run(Command::new(upstream::bin("kubeadm"))
            .args(["init", "phase"])
            .args(phase)
            .arg(format!("--config={}", cfg.display()))
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display())));
        assert!(
            out.status.success(),
            "kubeadm init phase {phase:?}: {}",
            text(&out.stderr)
        );
    }
    // kubeadm's API server reaches kubelets as a cluster admin; this one's identity
    // (kubernetes-master) gets the same rights on the kubelet API the seed guide's way.
    kubectl(
        &cp.kubeconfig(),
        &[
            "create",
            "clusterrolebinding",
            "kube-apiserver:kubelet-apis",
            "--clusterrole=system:kubelet-api-admin",
            "--user=kubernetes-master",
        ],
    )
    .unwrap_or_else(|| panic!("the kubelet-apis binding"));
    token.to_string()
}

/// sha256 of the CA's public key, as `--discovery-token-ca-cert-hash` wants it.
fn ca_hash(ca: &Path) -> String {
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | sha256sum",
        ca.display()
    )));
    format!(
        "sha256:{}",
        text(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
    )
}

/// A kubeadm node in a private mount namespace (an overlay on /etc, /var/lib/kubelet bound to
/// `<tmp>/varlib`: this machine's /etc and /var are untouched): the upstream `kubeadm join`
/// writes bootstrap-kubelet.conf, /var/lib/kubelet/config.yaml and kubeadm-flags.env, and
/// `agent` is started as kubeadm's systemd drop-in starts the kubelet:
/// `$KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS`,
/// with `--root-dir=<tmp>/varlib` as the extra args (so containerd, outside the namespace,
/// sees the pod directories at the same path). `patch` is kubeadm's kubeletconfiguration
/// patch (`--patches`): the ports, log dir and cgroup root of this test.
pub struct KubeadmNode {
    child: Child,
    pub dir: PathBuf,
}

impl KubeadmNode {
    pub fn join(
        cp: &ControlPlane,
        env: &RuntimeEnv,
        tmp: &Path,
        token: &str,
        agent: &Path,
        patch: &str,
    ) -> KubeadmNode {
        let dir = tmp.join("kubeadm-node");
        for d in ["etc-up", "etc-work", "varlib", "patches", "logs"] {
            std::fs::create_dir_all(dir.join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        write(&dir.join("patches/kubeletconfiguration+merge.yaml"), patch);
        // The pod directories' own mounts (emptyDir `medium: Memory`, subPath binds) must reach
        // containerd, outside the namespace: `varlib` is a shared mount of its own, the one
        // mount the namespace shares; every other is private in it (/etc and /var/lib/kubelet
        // stay the namespace's).
        let varlib = dir.join("varlib");
        let v = varlib.display().to_string();
        for args in [vec!["--bind", &v, &v], vec!["--make-shared", &v]] {
            let out = run(Command::new("mount").args(&args));
            assert!(
                out.status.success(),
                "mount {args:?}: {}",
                text(&out.stderr)
            );
        }
        let script = format!(
            r#"set -eu
# (A mount that goes meanwhile, another test's, cannot be made private: what is left is checked.)
findmnt -rn -o TARGET | while read -r m; do
    [ "$m" = {d}/varlib ] || mount --make-private "$m" 2>/dev/null || true
done
if findmnt -rn -o TARGET,PROPAGATION | grep -v '^{d}/varlib ' | grep -q ' shared'; then
    echo "mounts still shared in the node's namespace:" >&2
    findmnt -rn -o TARGET,PROPAGATION | grep ' shared' >&2
    exit 1
fi
mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc-up,workdir={d}/etc-work /etc
mkdir -p /etc/kubernetes
mkdir -p /var/lib/kubelet
mount --bind {d}/varlib /var/lib/kubelet
( {kubeadm} join {server} --token {token} --discovery-token-ca-cert-hash {hash} \
    --node-name n1 --cri-socket unix://{sock} --patches {d}/patches \
    --ignore-preflight-errors=all >{d}/join.log 2>&1; echo $? >{d}/join.rc ) &
while [ ! -f /var/lib/kubelet/kubeadm-flags.env ] || [ ! -f /var/lib/kubelet/config.yaml ]; do
    [ ! -f {d}/join.rc ] || {{ cat {d}/join.log >&2; exit 1; }}
    sleep 0.2
done
sleep 0.5
cp /var/lib/kubelet/config.yaml /var/lib/kubelet/kubeadm-flags.env {d}/
# kubeadm's 10-kubeadm.conf drop-in, with /etc/default/kubelet's KUBELET_EXTRA_ARGS.
KUBELET_KUBECONFIG_ARGS="--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
KUBELET_CONFIG_ARGS="--config=/var/lib/kubelet/config.yaml"
. /var/lib/kubelet/kubeadm-flags.env
KUBELET_EXTRA_ARGS="--root-dir={d}/varlib --v=2"
exec {agent} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"#,
            d = dir.display(),
            kubeadm = upstream::bin("kubeadm").display(),
            server = cp.server.trim_start_matches("https://"),
            hash = ca_hash(&cp.ca()),
            sock = env.endpoint().path(),
            agent = agent.display(),
        );
        let log = std::fs::File::create(dir.join("agent.log")).unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::process::CommandExt;
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "unchanged", "bash", "-c", &script])
            // A group of its own: dropping the node kills kubeadm join and the agent with it.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("unshare: {e}"));
        KubeadmNode { child, dir }
    }

    pub fn log(&self) -> String {
        format!(
            "--- kubeadm join:\n{}\n--- agent:\n{}",
            std::fs::read_to_string(self.dir.join("join.log")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
        )
    }

    /// Waits for `kubeadm join` to end; its exit code.
    pub fn joined(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(rc) = std::fs::read_to_string(self.dir.join("join.rc")) {
                return rc.trim().parse().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "kubeadm join did not end:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for KubeadmNode {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = nix::mount::umount2(&self.dir.join("varlib"), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The kernel settings the upstream kubelet sets at start (protectKernelDefaults off:
/// vm.overcommit_memory, vm.panic_on_oom, kernel.panic, kernel.panic_on_oops and the root key
/// quotas), put back as they were when dropped: a test must not leave the machine changed.
pub struct KernelTunables(Vec<(PathBuf, String)>);

impl KernelTunables {
    pub fn save() -> KernelTunables {
        KernelTunables(
            [
                "vm/overcommit_memory",
                "vm/panic_on_oom",
                "kernel/panic",
                "kernel/panic_on_oops",
                "kernel/keys/root_maxkeys",
                "kernel/keys/root_maxbytes",
            ]
            .iter()
            .filter_map(|k| {
                let p = Path::new("/proc/sys").join(k);
                std::fs::read_to_string(&p).ok().map(|v| (p, v))
            })
            .collect(),
        )
    }
}

impl Drop for KernelTunables {
    fn drop(&mut self) {
        for (p, v) in &self.0 {
            let _ = std::fs::write(p, v);
        }
    }
}

/// kubeadm's kubeletconfiguration patch for a node of this machine: free ports, swap allowed,
/// the pod logs under `tmp`, the cgroups under the runtime's own parent, with the systemd
/// driver (kubeadm's default: the parent as a slice) or cgroupfs, and
/// [`super::build_machine_disk`]'s thresholds.
pub fn node_patch(env: &RuntimeEnv, tmp: &Path, systemd: bool) -> String {
    let (port, healthz) = (free_port(), free_port());
    let cgroups = if systemd {
        format!("cgroupRoot: {}\n", env.var("SYSTEMD_SLICE"))
    } else {
        // The kubelet wants its cgroupRoot to exist in every hierarchy already (runtime-env
        // stop removes these with the rest).
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            if h.path().join("cgroup.procs").exists() {
                let _ = std::fs::create_dir_all(
                    h.path().join(env.cgroup_parent().trim_start_matches('/')),
                );
            }
        }
        format!(
            "cgroupDriver: cgroupfs\ncgroupRoot: {}\n",
            env.cgroup_parent()
        )
    };
    format!(
        "port: {port}\nhealthzPort: {healthz}\nfailSwapOn: false\npodLogsDir: {}\n{cgroups}{}",
        tmp.join("kubeadm-node/logs").display(),
        super::build_machine_disk(""),
    )
}
