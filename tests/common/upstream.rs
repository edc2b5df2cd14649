//! The upstream Kubernetes tools (`scripts/upstream build`) and a real control plane for one
//! test (`scripts/upstream up`), stopped when dropped (and by its reaper if the test dies).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{repo, run, text};

/// `target/upstream/bin/<name>` (beside the tinylet binary under test). Missing, the test fails:
/// `scripts/test` builds them first.
pub fn bin(name: &str) -> PathBuf {
    let target = Path::new(super::bin())
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"));
    let p = target.join("upstream/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/upstream build (scripts/test does)",
        p.display()
    );
    p
}

/// Which control plane the tests that can use either run against: `TINYLET_CONTROL_PLANE=sim`
/// picks kube-sim, anything else (and unset) the real one.
pub fn wanted() -> bool {
    std::env::var("TINYLET_CONTROL_PLANE").map_or(true, |v| v != "sim")
}

/// A running upstream control plane: etcd, kube-apiserver, kube-controller-manager and
/// kube-scheduler on loopback, with its own CA.
pub struct ControlPlane {
    pub dir: PathBuf,
    pub server: String,
}

impl ControlPlane {
    /// `scripts/upstream up <dir> <args>`; panics with the script's output when it fails.
    pub fn up(dir: &Path, args: &[&str]) -> ControlPlane {
        let out = run(Command::new(repo().join("scripts/upstream"))
            .arg("up")
            .arg(dir)
            .args(["--owner", &std::process::id().to_string()])
            .args(args));
        assert!(
            out.status.success(),
            "scripts/upstream up failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let server = std::fs::read_to_string(dir.join("address"))
            .unwrap_or_default()
            .trim()
            .to_string();
        ControlPlane {
            dir: dir.to_path_buf(),
            server,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `scripts/upstream stop|start <dir> <component>`.
    pub fn component(&self, verb: &str, name: &str) {
        let out = run(Command::new(repo().join("scripts/upstream"))
            .args([verb])
            .arg(&self.dir)
            .arg(name));
        assert!(
            out.status.success(),
            "scripts/upstream {verb} {name}: {}",
            text(&out.stderr)
        );
    }

    /// A component's log so far (for failure messages).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/upstream"))
            .arg("down")
            .arg(&self.dir)
            .output();
    }
}
