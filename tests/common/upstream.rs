//! The upstream Kubernetes tools (`scripts/upstream build`) and a real control plane for one
//! test (`scripts/upstream up`), stopped when dropped (and by its reaper if the test dies).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{repo, run, text};

/// `target/upstream/bin/<name>` (beside the tinylet binary under test). Missing, the test fails:
/// `scripts/test` builds them first.
pub fn bin(name: &str) -> PathBuf {
    let p = target().join("upstream/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/upstream build (scripts/test does)",
        p.display()
    );
    p
}

/// The cargo target directory the tinylet binary under test was built in.
pub fn target() -> PathBuf {
    Path::new(super::bin())
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"))
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

/// A client certificate for user `cn` signed by the control plane's CA (`<dir>/pki`), in
/// `<dir>/pki/<cn>.pem` and `<cn>-key.pem`: an identity RBAC knows nothing about.
pub fn client_cert(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let pki = dir.join("pki");
    let (cert, key) = (
        pki.join(format!("{cn}.pem")),
        pki.join(format!("{cn}-key.pem")),
    );
    let csr = pki.join(format!("{cn}.csr"));
    let ok = |c: &mut Command| {
        let out = run(c);
        assert!(out.status.success(), "openssl: {}", text(&out.stderr));
    };
    ok(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .args(["-subj", &format!("/CN={cn}")])
        .arg("-out")
        .arg(&csr));
    // v3 (webpki takes no v1 certificate), for client authentication.
    let ext = pki.join(format!("{cn}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ok(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-extfile"])
        .arg(&ext)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(pki.join("ca.pem"))
        .arg("-CAkey")
        .arg(pki.join("ca-key.pem"))
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(&cert));
    (cert, key)
}
