//! The seed guide's cluster for a test: a control plane (the real one, or kube-sim for what
//! only it gives), a bootstrap token and the node's bootstrap kubeconfig written with kubectl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

/// A control plane in a directory that holds `address`, `ca.pem` and `admin.kubeconfig`:
/// the real one (`scripts/upstream up`) unless the test needs kube-sim or
/// `TINYLET_CONTROL_PLANE=sim`.
pub enum Plane {
    Sim(std::cell::RefCell<Proc>, Vec<String>),
    Upstream(upstream::ControlPlane, Option<Approver>),
}

impl Plane {
    /// The real control plane in `dir` when `sim_args` ask for nothing only kube-sim gives,
    /// else kube-sim with `sim_args`.
    pub fn start(dir: &Path, sim_args: &[&str]) -> Plane {
        match upstream_args(sim_args).filter(|_| upstream::wanted()) {
            Some(args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let cp = upstream::ControlPlane::up(dir, &args);
                let approver = sim_args
                    .contains(&"--approve-serving-csrs")
                    .then(|| Approver::start(cp.kubeconfig()));
                Plane::Upstream(cp, approver)
            }
            None => Plane::start_sim(dir, sim_args),
        }
    }

    /// Always kube-sim: for what the real control plane cannot give.
    pub fn start_sim(dir: &Path, sim_args: &[&str]) -> Plane {
        Plane::Sim(
            std::cell::RefCell::new(start_sim_with(dir, sim_args)),
            sim_args.iter().map(|a| a.to_string()).collect(),
        )
    }

    /// Whether this is the real control plane.
    pub fn upstream(&self) -> bool {
        matches!(self, Plane::Upstream(..))
    }

    /// The API server goes away.
    pub fn stop_api(&self) {
        match self {
            Plane::Sim(sim, _) => {
                let mut sim = sim.borrow_mut();
                let _ = sim.0.kill();
                let _ = sim.0.wait();
            }
            Plane::Upstream(cp, _) => cp.component("stop", "kube-apiserver"),
        }
    }

    /// The API server comes back on the same address (`dir` and `server`).
    pub fn start_api(&self, dir: &Path, server: &str) {
        match self {
            Plane::Sim(sim, sim_args) => {
                let mut sim = sim.borrow_mut();
                let listen = server.trim_start_matches("https://").to_string();
                let mut args: Vec<&str> = sim_args.iter().map(String::as_str).collect();
                args.extend(["--listen", &listen]);
                let _ = std::fs::remove_file(dir.join("address"));
                *sim = start_sim_with(dir, &args);
            }
            Plane::Upstream(cp, _) => cp.component("start", "kube-apiserver"),
        }
    }

    /// A bootstrap token as the guide makes it (`kubeadm token create --groups ...
    /// --description ...`; kube-sim's own `token create` on kube-sim).
    pub fn token(&self, dir: &Path, groups: &str, description: &str) -> String {
        let tool = match self {
            Plane::Sim(..) => kube_sim_bin(),
            Plane::Upstream(..) => upstream::bin("kubeadm"),
        };
        let tok = run(Command::new(tool)
            .args([
                "token",
                "create",
                "--groups",
                groups,
                "--description",
                description,
            ])
            .arg("--kubeconfig")
            .arg(dir.join("admin.kubeconfig")));
        assert!(tok.status.success(), "token create: {}", text(&tok.stderr));
        text(&tok.stdout).trim().to_string()
    }
}

/// kube-sim flags the real control plane has an equivalent for (`--approve-serving-csrs`: an
/// approver in the test; `--persist`: etcd; `--signing-duration`: the controller-manager's
/// `--cluster-signing-duration`). A test with any other kube-sim flag (`--backdate`,
/// `--watch-history`, `--max-token-expiration`, ...) needs what only kube-sim gives.
fn upstream_args(sim_args: &[&str]) -> Option<Vec<String>> {
    // A node that stops posting status goes Unknown after 20 s instead of the default 50 s,
    // as kube-sim's lease-based stand-in does quickly (the tests wait for it).
    let mut out = vec![
        "--controller-manager-arg".to_string(),
        "--node-monitor-grace-period=20s".to_string(),
    ];
    let mut it = sim_args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--approve-serving-csrs" | "--persist" => {}
            "--signing-duration" => {
                out.push("--signing-duration".to_string());
                out.push(it.next()?.to_string());
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Approves every pending kubelet-serving CSR until dropped, as kube-sim's
/// `--approve-serving-csrs` does (an admin's `kubectl certificate approve`, in a loop).
pub struct Approver {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Approver {
    fn start(kubeconfig: PathBuf) -> Approver {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let kc = format!("--kubeconfig={}", kubeconfig.display());
            while !s.load(Ordering::Relaxed) {
                let pending = Command::new("kubectl")
                    .args([&kc, "get", "csr", "-o"])
                    .arg("jsonpath={range .items[?(@.spec.signerName==\"kubernetes.io/kubelet-serving\")]}{.metadata.name} {.status.conditions[*].type}{\"\\n\"}{end}")
                    .output();
                if let Ok(out) = pending {
                    for line in text(&out.stdout).lines() {
                        let mut w = line.split_whitespace();
                        if let (Some(name), None) = (w.next(), w.next()) {
                            let _ = Command::new("kubectl")
                                .args([&kc, "certificate", "approve", name])
                                .output();
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Approver {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Approver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A control plane plus one node's bootstrap kubeconfig, as the seed guide's step 1 leaves
/// them.
pub struct Seed {
    plane: Plane,
    /// The control plane's directory: `address`, `ca.pem`, `admin.kubeconfig`.
    pub sim_dir: PathBuf,
    pub server: String,
    pub node: PathBuf,
    pub bootstrap: PathBuf,
}

impl Seed {
    /// Starts the control plane in `<tmp>/sim` ([`Plane::start`]), makes a bootstrap token
    /// for node n1 and writes `<tmp>/node/bootstrap.kubeconfig` with kubectl.
    pub fn start(tmp: &Path, sim_args: &[&str]) -> Seed {
        let dir = tmp.join("sim");
        Seed::finish(Plane::start(&dir, sim_args), tmp, dir)
    }

    /// Always kube-sim: for what the real control plane cannot give.
    pub fn start_sim(tmp: &Path, sim_args: &[&str]) -> Seed {
        let dir = tmp.join("sim");
        Seed::finish(Plane::start_sim(&dir, sim_args), tmp, dir)
    }

    fn finish(plane: Plane, tmp: &Path, sim_dir: PathBuf) -> Seed {
        let token = plane.token(
            &sim_dir,
            "system:bootstrappers:n1",
            "kubelet-bootstrap-token",
        );
        let server = std::fs::read_to_string(sim_dir.join("address"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let node = tmp.join("node");
        let bootstrap = node.join("bootstrap.kubeconfig");
        kubectl_bootstrap_kubeconfig(&bootstrap, &sim_dir.join("ca.pem"), &server, &token);
        Seed {
            plane,
            sim_dir,
            server,
            node,
            bootstrap,
        }
    }

    /// Whether this is the real control plane.
    pub fn upstream(&self) -> bool {
        self.plane.upstream()
    }

    /// The real control plane's component log (for failure messages); empty on kube-sim.
    pub fn plane_log(&self, component: &str) -> String {
        match &self.plane {
            Plane::Upstream(cp, _) => cp.log(component),
            Plane::Sim(..) => String::new(),
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        admin_kubectl(&self.sim_dir, args)
    }

    /// Stops the API server and starts it again on the same address; the objects survive
    /// (etcd; kube-sim must be started with `--persist`).
    pub fn restart_sim(&self) {
        self.stop_sim();
        self.start_sim_again();
    }

    /// The API server goes away (kube-sim is killed; the real kube-apiserver stopped, etcd and
    /// the other components keep running).
    pub fn stop_sim(&self) {
        self.plane.stop_api();
    }

    /// Starts the API server again on the same directory and address.
    pub fn start_sim_again(&self) {
        self.plane.start_api(&self.sim_dir, &self.server);
    }

    /// kubectl as admin; its output, None when it fails (not found, not yet...).
    pub fn try_kubectl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                self.sim_dir.join("admin.kubeconfig").display()
            ))
            .args(args)
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }

    /// `kubectl get <args> -o json` as admin; None when it fails (not found, not yet...).
    pub fn try_get(&self, args: &[&str]) -> Option<serde_json::Value> {
        let out = Command::new("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                self.sim_dir.join("admin.kubeconfig").display()
            ))
            .arg("get")
            .args(args)
            .args(["-o", "json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())?
    }

    /// Step 4: `kubectl create clusterrolebinding kubelet-bootstrap ...`.
    pub fn bind_bootstrappers(&self) {
        bind_bootstrappers(&self.sim_dir);
    }

    /// Step 5: `kubectl apply -f csr-crb.yaml`.
    pub fn apply_csr_crb(&self) {
        let f = repo().join("tests/kube-sim/tests/fixtures/csr-crb.yaml");
        self.kubectl(&["apply", "-f", &f.display().to_string()]);
    }

    /// Writes `<node>/kubelet-config.yaml`: a KubeletConfiguration with `fields` (YAML lines) and
    /// the listeners off; returns its path.
    pub fn config(&self, fields: &str) -> PathBuf {
        let cfg = self.node.join("kubelet-config.yaml");
        write(
            &cfg,
            &without_listeners(&format!(
                "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n{fields}"
            )),
        );
        cfg
    }

    pub fn cert_dir(&self) -> PathBuf {
        self.node.join("cert")
    }

    /// The agent's flags for this node, plus `extra`.
    pub fn agent_args(&self, node_name: &str, extra: &[String]) -> Vec<String> {
        let mut a = vec![
            format!("--bootstrap-kubeconfig={}", self.bootstrap.display()),
            format!(
                "--kubeconfig={}",
                self.node.join("kubelet.kubeconfig").display()
            ),
            format!("--cert-dir={}", self.cert_dir().display()),
            format!("--hostname-override={node_name}"),
        ];
        a.extend(extra.iter().cloned());
        a
    }
}
