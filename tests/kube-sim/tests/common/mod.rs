//! The harness the kube-sim tests share: a simulator process on a directory, kubectl and openssl.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running kube-sim, killed on drop.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts kube-sim on `dir` and waits for its `address` file.
pub fn start_in(dir: &Path, extra: &[&str]) -> Proc {
    let _ = std::fs::remove_file(dir.join("address"));
    let child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn kube-sim: {e}"));
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("address").exists() {
        assert!(
            Instant::now() < deadline,
            "kube-sim did not write its address"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proc
}

/// kube-sim on a fresh temporary directory.
pub struct Sim {
    _proc: Proc,
    pub dir: tempfile::TempDir,
    pub addr: String,
}

impl Sim {
    pub fn start(extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let proc = start_in(dir.path(), extra);
        let addr = std::fs::read_to_string(dir.path().join("address")).unwrap_or_default();
        Sim {
            _proc: proc,
            dir,
            addr,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn admin(&self) -> PathBuf {
        self.path("admin.kubeconfig")
    }

    /// kubectl as admin.
    pub fn k(&self, args: &[&str]) -> Output {
        kubectl(Some(&self.admin()), args, None)
    }

    /// kubectl as admin; must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.admin(), args, None)
    }

    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs kubectl (with `--kubeconfig` when given), feeding `stdin`.
pub fn kubectl(kubeconfig: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    if let Some(k) = kubeconfig {
        cmd.arg(format!("--kubeconfig={}", k.display()));
    }
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("kubectl: {e}"));
    if let (Some(input), Some(mut si)) = (stdin, child.stdin.take()) {
        let _ = si.write_all(input.as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kubectl: {e}"))
}

/// kubectl that must succeed; its stdout.
pub fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = kubectl(Some(kubeconfig), args, stdin);
    assert!(
        o.status.success(),
        "kubectl {args:?} failed:\n{}",
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// openssl that must succeed; its stdout.
pub fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// An EC P-256 key `dir/<name>.key` and a PKCS#10 request `dir/<name>.csr` for `subject`, with
/// `subjectAltName=<sans>` when given.
pub fn key_and_csr(
    dir: &Path,
    name: &str,
    subject: &str,
    sans: Option<&str>,
) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let (k, c) = (key.display().to_string(), csr.display().to_string());
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &k,
    ]);
    let san = sans.map(|s| format!("subjectAltName={s}"));
    let mut args = vec!["req", "-new", "-key", &k, "-subj", subject, "-out", &c];
    if let Some(s) = &san {
        args.extend(["-addext", s.as_str()]);
    }
    openssl(&args);
    (key, csr)
}

/// Signs `csr` with kube-sim's CA in `dir` (as a human with ca-key.pem would), adding the
/// extensions in `ext` (openssl extfile lines); writes and returns `dir/<name>.pem`.
pub fn sign_with_ca(dir: &Path, csr: &Path, name: &str, ext: &str) -> PathBuf {
    let d = |n: &str| dir.join(n).display().to_string();
    let extfile = dir.join(format!("{name}.ext"));
    std::fs::write(&extfile, ext).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join(format!("{name}.pem"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr.display().to_string(),
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca-key.pem"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &extfile.display().to_string(),
        "-out",
        &out.display().to_string(),
    ]);
    out
}
