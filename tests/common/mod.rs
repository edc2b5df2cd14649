//! Helpers shared by the integration tests: the built binary, the repo's scripts and fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tinylet")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn run(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {cmd:?}: {e}"),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Polls `f` every 250 ms until it returns Some; after `secs`, fails naming `what`, with
/// `log()` (the log of whatever the test waits on).
pub fn wait_until<T>(
    what: &str,
    secs: u64,
    log: &mut dyn FnMut() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `name type samples` per family, as the Prometheus project's own Python parser (Debian's
/// python3-prometheus-client, which scripts/test installs) reads the exposition; fails the test
/// when it refuses it, or when `promtool check metrics` (built by scripts/upstream) reports a
/// problem.
pub fn prometheus_families(body: &str) -> Vec<String> {
    promtool_check(body);
    python_families(body, "len(f.samples)")
}

/// `name type label,label,...` per family (the label names of all its samples, sorted), as
/// the same parser reads them.
pub fn prometheus_label_names(body: &str) -> Vec<String> {
    python_families(
        body,
        "','.join(sorted({k for s in f.samples for k in s.labels}))",
    )
}

/// Each family's name, type and `detail` (a Python expression of `f`), by the Python parser.
fn python_families(body: &str, detail: &str) -> Vec<String> {
    let script = format!(
        "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\nfor f in p(sys.stdin.read()):\n    print(f.name, f.type, {detail})\n"
    );
    let out = piped(
        Command::new("/usr/bin/python3").args(["-c", &script]),
        body,
        "/usr/bin/python3 (install python3-prometheus-client)",
    );
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition:\n{}\n{body}",
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(String::from).collect()
}

/// Runs `cmd` with `body` on its standard input: its output.
fn piped(cmd: &mut Command, body: &str, what: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body.as_bytes())
            .unwrap_or_else(|e| panic!("write to {what}: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// What promtool's linter says of names that are cAdvisor's own (the upstream kubelet serves
/// them so, and dashboards query them so): not problems of tinylet's.
const CADVISOR_LINT: &[&str] = &[
    "cadvisor_version_info label names should be written in 'snake_case' not 'camelCase'",
    "container_cpu_load_d_average_10s metric names should not contain abbreviated units",
    "container_fs_inodes_total non-counter metrics should not have \"_total\" suffix",
    "container_memory_failcnt counter metrics should have \"_total\" suffix",
];

/// `promtool check metrics` on `body`: the Prometheus server's own parser and linter (names,
/// units, types, HELP, duplicates); fails the test with what it says, but for CADVISOR_LINT
/// (a lint finding is exit status 3; a parse error 1).
pub fn promtool_check(body: &str) {
    let out = piped(
        Command::new(upstream::bin("promtool")).args(["check", "metrics"]),
        body,
        "promtool",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let only_cadvisors = out.status.code() == Some(3)
        && said
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| CADVISOR_LINT.contains(&l.trim()));
    assert!(
        out.status.success() || only_cadvisors,
        "promtool check metrics ({}): {said}\n{body}",
        out.status
    );
}

/// Runs `tinylet ARGS...`.
pub fn tinylet(args: &[&str]) -> Output {
    run(Command::new(bin()).args(args))
}

pub fn write(path: &Path, content: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A test's temporary directory. Dropped, it unmounts what is mounted under it first (the
/// subPath binds and tmpfs of an agent's pods, when the test ends with pods still there), so a
/// test leaves no mount on the machine and the directory goes with everything in it.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.0.path().display());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        // The deepest first; a detach takes what is mounted below with it.
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

pub fn tempdir() -> TempDir {
    TempDir(tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")))
}

/// The seed's config template with its variables filled as the guide's environment.sh would.
pub fn seed_config() -> String {
    read(&repo().join("tests/fixtures/seed/kubelet-config.yaml.template"))
        .replace("##NODE_IP##", "127.0.0.1")
        .replace("${CLUSTER_DNS_DOMAIN}", "cluster.local")
        .replace("${CLUSTER_DNS_SVC_IP}", "10.254.0.2")
        .replace("${CLUSTER_CIDR}", "172.30.0.0/16")
}

/// A config with the agent's listeners off (`enableServer: false`, `healthzPort: 0`), for tests
/// that run the agent in parallel and are not about the servers.
pub fn without_listeners(cfg: &str) -> String {
    let mut out: String = cfg
        .lines()
        .filter(|l| !l.starts_with("enableServer:") && !l.starts_with("healthzPort:"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("enableServer: false\nhealthzPort: 0\n");
    out
}

/// 1-based line of the first line of `text` that starts with `prefix`.
pub fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
}

/// A self-signed CA made with openssl, at `dir/ca.pem`.
pub fn make_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("ca.pem");
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
        ])
        .arg("-keyout")
        .arg(dir.join("ca-key.pem"))
        .arg("-out")
        .arg(&ca));
    assert!(out.status.success(), "openssl: {}", text(&out.stderr));
    ca
}

/// A bootstrap kubeconfig written by the real kubectl, exactly as the seed guide does.
pub fn kubectl_bootstrap_kubeconfig(path: &Path, ca: &Path, server: &str, token: &str) {
    let kc = format!("--kubeconfig={}", path.display());
    let steps: [Vec<String>; 4] = [
        vec![
            "config".into(),
            "set-cluster".into(),
            "kubernetes".into(),
            format!("--certificate-authority={}", ca.display()),
            "--embed-certs=true".into(),
            format!("--server={server}"),
            kc.clone(),
        ],
        vec![
            "config".into(),
            "set-credentials".into(),
            "kubelet-bootstrap".into(),
            format!("--token={token}"),
            kc.clone(),
        ],
        vec![
            "config".into(),
            "set-context".into(),
            "default".into(),
            "--cluster=kubernetes".into(),
            "--user=kubelet-bootstrap".into(),
            kc.clone(),
        ],
        vec!["config".into(), "use-context".into(), "default".into(), kc],
    ];
    for args in steps {
        let out = run(Command::new("kubectl").args(&args));
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// The flags of a systemd unit's ExecStart (with continuations), as scripts/lib.sh reads them.
pub fn unit_flags(unit: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut in_exec = false;
    for line in unit.lines() {
        if !in_exec && !line.starts_with("ExecStart=") {
            continue;
        }
        in_exec = true;
        let body = line.trim_end_matches('\\');
        flags.extend(
            body.split_whitespace()
                .filter(|w| w.starts_with("--"))
                .map(String::from),
        );
        if !line.ends_with('\\') {
            break;
        }
    }
    flags
}

// ---- kube-sim and the agent as processes (bootstrap and rotation tests) ----

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// kube-sim from the same target directory as the tinylet binary under test (built by
/// `cargo nextest run --workspace`).
pub fn kube_sim_bin() -> PathBuf {
    let p = Path::new(bin()).with_file_name("kube-sim");
    assert!(
        p.exists(),
        "{} is missing: run the tests with --workspace so kube-sim is built",
        p.display()
    );
    p
}

pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_sim(dir: &Path) -> Proc {
    start_sim_with(dir, &[])
}

pub fn start_sim_with(dir: &Path, extra: &[&str]) -> Proc {
    let child = Command::new(kube_sim_bin())
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let serving =
        || std::fs::read_to_string(dir.join("address")).is_ok_and(|a| a.starts_with("https://"));
    while !serving() {
        assert!(Instant::now() < deadline, "kube-sim did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

pub fn admin_kubectl(sim: &Path, args: &[&str]) -> String {
    let out = run(Command::new("kubectl")
        .arg(format!(
            "--kubeconfig={}",
            sim.join("admin.kubeconfig").display()
        ))
        .args(args));
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The agent with its stderr lines arriving on a channel.
pub struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    _root: Option<TempDir>,
}

/// `args` plus `--root-dir` in a fresh temporary directory unless the args name one, so test
/// agents never write under /var/lib/kubelet.
pub fn with_root_dir(args: &[String]) -> (Vec<String>, Option<TempDir>) {
    let mut a = args.to_vec();
    if a.iter().any(|x| x.starts_with("--root-dir")) {
        return (a, None);
    }
    let t = tempdir();
    a.push(format!("--root-dir={}", t.path().join("root").display()));
    (a, Some(t))
}

impl Drop for Agent {
    /// A failing test must not leave the agent running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    pub fn start(args: &[String]) -> Agent {
        Agent::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[String], env: &[(&str, &Path)]) -> Agent {
        let (args, root) = with_root_dir(args);
        let mut child = Command::new(bin())
            .args(&args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Agent {
            child,
            lines,
            log: Vec::new(),
            _root: root,
        }
    }

    /// Waits for a line containing `needle`; returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Everything logged so far (for failure messages).
    pub fn log_so_far(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
        self.log.join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM` the peak).
    pub fn status_kib(&self, field: &str) -> u64 {
        read(&PathBuf::from(format!("/proc/{}/status", self.pid())))
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} for the agent"))
    }

    /// SIGKILL, as a power cut or an OOM kill would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.log.push(l);
        }
        (status.code(), std::mem::take(&mut self.log))
    }
}

/// The seed's step 4 as admin: `kubectl create clusterrolebinding kubelet-bootstrap
/// --clusterrole=system:node-bootstrapper --group=system:bootstrappers`.
pub fn bind_bootstrappers(sim_dir: &Path) {
    admin_kubectl(
        sim_dir,
        &[
            "create",
            "clusterrolebinding",
            "kubelet-bootstrap",
            "--clusterrole=system:node-bootstrapper",
            "--group=system:bootstrappers",
        ],
    );
}

/// The `node-csr-...` name in a "sent certificate signing request" log line.
pub fn csr_name_in(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("node-csr-"))
        .unwrap_or_default()
        .to_string()
}
/// The condition of type `kind` in an object's (a node's, a pod's) status; Null when it has none
/// (yet), so a wait can poll on it.
pub fn condition(obj: &serde_json::Value, kind: &str) -> serde_json::Value {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or_default()
}

/// Whether a node object is Ready.
pub fn node_ready(n: &serde_json::Value) -> bool {
    condition(n, "Ready")["status"] == "True"
}

/// Eviction and image GC settings for a node on a build machine, added to a test node's
/// KubeletConfiguration unless `extra` sets them itself. The machine's disk holds tens of GB of
/// build output and its filesystem reports far more blocks than it makes available: the
/// default `nodefs.available: 10%` / `imagefs.available: 15%` would set DiskPressure there and
/// refuse or evict the tests' pods, and image GC at the default 85% would remove the images the
/// tests imported. The disk signals stay on with absolute floors; memory keeps its default.
pub fn build_machine_disk(extra: &str) -> String {
    let mut s = String::new();
    if !extra.contains("evictionHard:") {
        s.push_str(
            "evictionHard:\n  memory.available: 100Mi\n  nodefs.available: 1Gi\n  nodefs.inodesFree: 5%\n  \
             imagefs.available: 1Gi\n  imagefs.inodesFree: 5%\n",
        );
    }
    if !extra.contains("imageGCHighThresholdPercent:") {
        s.push_str("imageGCHighThresholdPercent: 100\n");
    }
    s
}

pub mod https;
pub mod kubeadm;
pub mod pods;
pub mod proxy;
pub mod runtime;
pub mod seed;
pub mod upstream;

#[allow(unused_imports)] // not every test uses both
pub use seed::{Plane, Seed};
