//! A real containerd for one test (`scripts/runtime-env`), torn down when dropped.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tinylet::config::kubelet::RuntimeEndpoint;
use tinylet::cri::{Options, Runtime};

use super::{repo, run, tempdir, text};

pub struct RuntimeEnv {
    dir: super::TempDir,
    vars: BTreeMap<String, String>,
}

impl RuntimeEnv {
    /// Starts containerd (and with `registry`, the local registries). Returns None, loudly, when
    /// the test cannot run here (not root); with `TINYLET_REQUIRE_RUNTIME=1` (CI) it fails instead.
    pub fn start(registry: bool) -> Option<RuntimeEnv> {
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX);
        if uid != 0 {
            let msg = "needs root for a real containerd (runc, CNI, cgroups)";
            if std::env::var_os("TINYLET_REQUIRE_RUNTIME").is_some() {
                panic!("{msg}, and TINYLET_REQUIRE_RUNTIME is set");
            }
            eprintln!("\n*** SKIPPED: {msg} ***\n");
            return None;
        }
        let dir = tempdir();
        let mut cmd = Command::new(repo().join("scripts/runtime-env"));
        cmd.arg("start").arg(dir.path());
        if registry {
            cmd.arg("--registry");
        }
        let out = run(&mut cmd);
        let mut env = RuntimeEnv {
            vars: BTreeMap::new(),
            dir,
        };
        assert!(
            out.status.success(),
            "runtime-env start failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        env.vars = text(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(env)
    }

    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("runtime-env did not print {name}"))
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn endpoint(&self) -> RuntimeEndpoint {
        RuntimeEndpoint::parse(&format!("unix://{}", self.var("CONTAINERD_SOCK")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn client(&self) -> Runtime {
        self.client_with(Options::new(Duration::from_secs(30)))
    }

    pub fn client_with(&self, options: Options) -> Runtime {
        Runtime::new(&self.endpoint(), None, options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The cgroup parent under which the test's pods live (removed at teardown).
    pub fn cgroup_parent(&self) -> &str {
        self.var("CGROUP_PARENT")
    }

    fn script(&self, verb: &str) {
        let out = run(Command::new(repo().join("scripts/runtime-env"))
            .arg(verb)
            .arg(self.dir.path()));
        assert!(
            out.status.success(),
            "runtime-env {verb}: {}",
            text(&out.stderr)
        );
    }

    /// Stops containerd alone (shims and containers keep running).
    pub fn stop_containerd(&self) {
        self.script("containerd-stop");
    }

    pub fn start_containerd(&self) {
        self.script("containerd-start");
    }

    /// containerd's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for RuntimeEnv {
    fn drop(&mut self) {
        if self.vars.is_empty() && !self.dir.path().join("env").exists() {
            return;
        }
        let out = Command::new(repo().join("scripts/runtime-env"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("runtime-env stop failed: {}", text(&o.stderr)),
            Err(e) => eprintln!("cannot run runtime-env stop: {e}"),
        }
    }
}
