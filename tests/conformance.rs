//! Kubernetes' own e2e conformance tests (`e2e.test` of the pinned release, run by the ginkgo
//! CLI) against one kubeadm node on the real control plane, with a real containerd holding the
//! suite's images (`scripts/e2e-images`). `ci_subset_on_tinylet` runs a fixed, fast subset on
//! tinylet and wants every spec of it passed; `full_run` (ignored: `scripts/conformance` runs
//! it once per kubelet) runs the kubelet-facing suite and writes its JUnit and JSON reports and
//! `specs.tsv` to `<target>/conformance/<kubelet>/`, which the script sets side by side.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::kubeadm::{KernelTunables, KubeadmNode, get, kubeadm_cluster_side, node_patch};
use common::runtime::RuntimeEnv;
use common::upstream::{self, ControlPlane};
use common::*;
use serde::Deserialize;

/// The kubelet-facing specs: node conformance, and the conformance specs of sig-node and
/// sig-storage (one node suffices for them).
const FOCUS: &str =
    r"\[NodeConformance\]|\[sig-node\].*\[Conformance\]|\[sig-storage\].*\[Conformance\]";

/// What this harness does not run: serial and disruptive specs (the suite runs in parallel on
/// a shared node), flaky and feature-gated ones, and the three that pull from a registry
/// (no registry is reachable and no packet may leave the machine; "should not be able to
/// pull" would ask the machine's resolver for invalid.registry.k8s.io).
const SKIP: &str = r"\[Serial\]|\[Disruptive\]|\[Flaky\]|\[Feature:[^\]]+\]|\[FeatureGate:[^\]]+\]|when running a container with a new image should (be able|not be able) to pull";

/// The CI subset: fast specs across what a kubelet does (pod lifecycle, probes, hooks, init
/// containers, the downward API, configMap/secret/emptyDir/projected volumes, security
/// contexts, /etc/hosts, container output), each under a minute on this machine.
const CI_SUBSET: &[&str] = &[
    "[sig-node] Pods should get a host IP [NodeConformance] [Conformance]",
    "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
    "[sig-node] Containers should use the image defaults if command and args are blank [NodeConformance] [Conformance]",
    "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [NodeConformance] [Conformance]",
    "[sig-node] Variable Expansion should allow composing env vars into new env vars [NodeConformance] [Conformance]",
    "[sig-node] InitContainer [NodeConformance] should invoke init containers on a RestartNever pod [Conformance]",
    "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart exec hook properly [NodeConformance] [Conformance]",
    "[sig-node] Probing container with readiness probe that fails should never be ready and never restart [NodeConformance] [Conformance]",
    "[sig-node] KubeletManagedEtcHosts should test kubelet managed /etc/hosts file [NodeConformance] [Conformance]",
    "[sig-node] Security Context When creating a container with runAsUser should run the container with uid 65534 [LinuxOnly] [NodeConformance] [Conformance]",
    "[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]",
    "[sig-storage] Secrets should be consumable from pods in volume [NodeConformance] [Conformance]",
    "[sig-storage] EmptyDir volumes should support (root,0644,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
    "[sig-storage] Projected downwardAPI should provide container's cpu limit [NodeConformance] [Conformance]",
];

/// One spec's outcome from ginkgo's JSON report.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SpecReport {
    #[serde(default, deserialize_with = "null_is_empty")]
    container_hierarchy_texts: Vec<String>,
    #[serde(default)]
    leaf_node_text: String,
    #[serde(default)]
    leaf_node_type: String,
    state: String,
    #[serde(default)]
    failure: Option<Failure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Failure {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuiteReport {
    #[serde(default, deserialize_with = "null_is_empty")]
    spec_reports: Vec<SpecReport>,
}

/// ginkgo writes `null` for an empty list.
fn null_is_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl SpecReport {
    fn name(&self) -> String {
        let mut parts = self.container_hierarchy_texts.clone();
        parts.push(self.leaf_node_text.clone());
        parts.join(" ")
    }
}

/// The `It` specs the run selected (filtered-out specs are reported as skipped without a
/// failure message; a spec that skipped itself at run time says why).
fn selected(report: &Path) -> Vec<SpecReport> {
    let raw = read(report);
    let suites: Vec<SuiteReport> =
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    suites
        .into_iter()
        .flat_map(|s| s.spec_reports)
        .filter(|s| s.leaf_node_type == "It")
        .filter(|s| s.state != "skipped" || s.failure.is_some())
        .collect()
}

/// ginkgo's regex for these spec names (to their end; ginkgo matches a text that does not
/// start with the first container's, so no `^`).
fn exact(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{}$", regex_escape(n)))
        .collect::<Vec<_>>()
        .join("|")
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = r"\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Runs the suite on a fresh node of `agent`: the reports land in `out`; returns the specs.
fn run_suite(agent: &Path, focus: &str, skip: &str, out: &Path) -> Vec<SpecReport> {
    let env = RuntimeEnv::start(false)
        .unwrap_or_else(|| panic!("the conformance suite needs a real containerd (root)"));
    let tmp = tempdir();
    let images = run(Command::new(repo().join("scripts/e2e-images"))
        .arg(tmp.path().join("images"))
        .arg(env.endpoint().path()));
    assert!(
        images.status.success(),
        "scripts/e2e-images: {}{}",
        text(&images.stdout),
        text(&images.stderr)
    );
    // As kubeadm's API server, it does not verify kubelets' serving certificates.
    let cp = ControlPlane::up(&tmp.path().join("cp"), &["--no-kubelet-ca"]);
    let token = kubeadm_cluster_side(&cp, tmp.path());
    // No image GC and no disk pressure on either kubelet (node_patch's build_machine_disk): the
    // e2e images were imported and cannot be pulled again (no registry is reachable).
    let patch = node_patch(&env, tmp.path(), false);
    let _tunables = KernelTunables::save();
    let node = KubeadmNode::join(&cp, &env, tmp.path(), &token, agent, &patch);
    assert_eq!(node.joined(), 0, "kubeadm join failed:\n{}", node.log());
    let kc = cp.kubeconfig();
    let mut log = || node.log();
    wait_until("node n1 Ready", 90, &mut log, || {
        get(&kc, &["node", "n1"]).filter(node_ready)
    });
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    // The sources e2e.test was built from (its fixtures), as `scripts/upstream build --e2e`
    // found them.
    let k8s_src = read(&upstream::bin("k8s-src"));
    let procs = std::env::var("CONFORMANCE_PROCS").unwrap_or_else(|_| "4".into());
    let ginkgo = Command::new(upstream::bin("ginkgo"))
        .arg(format!("--procs={procs}"))
        .args(["--timeout=4h", "--no-color", "--poll-progress-after=10m"])
        .arg(format!("--output-dir={}", out.display()))
        .args(["--junit-report=junit.xml", "--json-report=report.json"])
        .arg(format!("--focus={focus}"))
        .arg(format!("--skip={skip}"))
        .arg(upstream::bin("e2e.test"))
        .arg("--")
        .arg(format!("--kubeconfig={}", kc.display()))
        .args(["--provider=skeleton", "--node-os-distro=debian"])
        .arg(format!(
            "--kubectl-path={}",
            upstream::bin("kubectl").display()
        ))
        .arg(format!("--repo-root={}", k8s_src.trim()))
        .arg("--disable-log-dump")
        .stdout(std::fs::File::create(out.join("e2e.log")).unwrap_or_else(|e| panic!("{e}")))
        .stderr(std::process::Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("ginkgo: {e}"));
    let report = out.join("report.json");
    assert!(
        report.exists(),
        "ginkgo ({ginkgo}) wrote no report; see {}",
        out.join("e2e.log").display()
    );
    std::fs::write(out.join("agent.log"), node.log()).unwrap_or_else(|e| panic!("{e}"));
    selected(&report)
}

fn out_dir(kubelet: &str) -> PathBuf {
    upstream::target().join("conformance").join(kubelet)
}

#[test]
fn ci_subset_on_tinylet() {
    let out = out_dir("ci-tinylet");
    let specs = run_suite(Path::new(bin()), &exact(CI_SUBSET), "^$", &out);
    let ran: Vec<String> = specs.iter().map(SpecReport::name).collect();
    for want in CI_SUBSET {
        assert!(
            ran.iter().any(|r| r == want),
            "{want} did not run (is it named so in this release?); ran: {ran:#?}"
        );
    }
    let failed: Vec<String> = specs
        .iter()
        .filter(|s| s.state != "passed")
        .map(|s| {
            format!(
                "{} [{}]: {}",
                s.name(),
                s.state,
                s.failure.as_ref().map_or("", |f| f.message.as_str())
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "on tinylet ({}):\n{}",
        out.display(),
        failed.join("\n")
    );
}

/// The whole kubelet-facing suite on `CONFORMANCE_KUBELET` (tinylet or upstream), focused by
/// `CONFORMANCE_FOCUS` when set; the reports are compared by `scripts/conformance`.
#[test]
#[ignore = "long: scripts/conformance runs it"]
fn full_run() {
    let kubelet = std::env::var("CONFORMANCE_KUBELET").unwrap_or_else(|_| "tinylet".into());
    let agent = match kubelet.as_str() {
        "tinylet" => PathBuf::from(bin()),
        "upstream" => upstream::bin("kubelet"),
        other => panic!("CONFORMANCE_KUBELET={other}: want tinylet or upstream"),
    };
    let focus = std::env::var("CONFORMANCE_FOCUS").unwrap_or_else(|_| FOCUS.into());
    let skip = std::env::var("CONFORMANCE_SKIP").unwrap_or_else(|_| SKIP.into());
    let out = out_dir(&kubelet);
    let specs = run_suite(&agent, &focus, &skip, &out);
    assert!(!specs.is_empty(), "no spec matched {focus}");
    // What scripts/conformance sets side by side: each spec and its outcome, a line each.
    let tsv: String = specs
        .iter()
        .map(|s| format!("{}\t{}\n", s.name().replace(['\t', '\n'], " "), s.state))
        .collect();
    write(&out.join("specs.tsv"), &tsv);
}

#[test]
fn spec_names_are_escaped_for_ginkgos_regex() {
    assert_eq!(
        exact(&["[sig-node] Pods x (a.b)"]),
        r"\[sig-node\] Pods x \(a\.b\)$"
    );
}
