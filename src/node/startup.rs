//! Start-up checks and hand-offs to the init system: failSwapOn, the open-files limit
//! (maxOpenFiles), the data directories with their modes, and systemd's `sd_notify`: READY=1,
//! and WATCHDOG=1 while the pod sync loop is healthy.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::host::{self, Roots};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "running with swap on is not supported, please disable swap or set --fail-swap-on flag to false. /proc/swaps contained: {0:?}"
    )]
    SwapOn(Vec<String>),
    #[error("failed to check swap: {0}")]
    Swaps(host::HostError),
    #[error("creating directory {path} (mode {mode:o}): {err}")]
    Dir {
        path: PathBuf,
        mode: u32,
        err: std::io::Error,
    },
}

/// The kubelet's `failSwapOn` check.
pub fn check_swap(fail_swap_on: bool, roots: &Roots) -> Result<(), StartupError> {
    if !fail_swap_on {
        return Ok(());
    }
    let on = host::swaps(roots).map_err(StartupError::Swaps)?;
    if on.is_empty() {
        Ok(())
    } else {
        Err(StartupError::SwapOn(on))
    }
}

/// `maxOpenFiles`: the process's open-files limit (soft and hard), as the kubelet sets it.
/// Without the privilege to raise the hard limit, the soft one goes up to the hard one (as Go
/// does for every program). The limit in force is returned; the kubelet fails on an error, an
/// agent on a box is better off running with the limit it has: the caller warns.
pub fn open_files_limit(max_open_files: i64) -> Result<u64, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = u64::try_from(max_open_files).unwrap_or(0);
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("reading RLIMIT_NOFILE: {e}"))?;
    if want == 0 || (soft >= want && hard >= want) {
        return Ok(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)) {
        Ok(()) => Ok(want),
        Err(first) => {
            let soft = want.min(hard);
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard)
                .map_err(|e| format!("setting RLIMIT_NOFILE to {want}: {first}; to {soft}: {e}"))?;
            Err(format!(
                "setting RLIMIT_NOFILE to {want}: {first}; running with {soft}"
            ))
        }
    }
}

/// Creates `path` (and parents) with `mode` when missing; an existing directory keeps its
/// mode unless it is writable by others, which is tightened to `mode`.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), StartupError> {
    let err = |err| StartupError::Dir {
        path: path.to_path_buf(),
        mode,
        err,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(err)?;
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.permissions().mode() & 0o002 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

/// The kubelet's data directories: the root dir and its `pods` and `plugins` (0750), and the
/// pod log dir (0755, read by log shippers). The cert dir is made by the certificate store when
/// it first writes (a failure there is retried with the bootstrap, as the kubelet's).
pub fn data_dirs(root_dir: &Path, pod_logs_dir: &Path) -> Result<(), StartupError> {
    ensure_dir(root_dir, 0o750)?;
    ensure_dir(&root_dir.join("pods"), 0o750)?;
    ensure_dir(&root_dir.join("plugins"), 0o750)?;
    ensure_dir(pod_logs_dir, 0o755)
}

/// Tells systemd (`Type=notify`) the service is up, when `NOTIFY_SOCKET` names a socket
/// (a path, or `@name` for the abstract namespace). Quietly nothing otherwise.
pub fn sd_notify(state: &str) -> std::io::Result<bool> {
    notify_to(std::env::var_os("NOTIFY_SOCKET"), state)
}

fn notify_to(target: Option<std::ffi::OsString>, state: &str) -> std::io::Result<bool> {
    let Some(target) = target else {
        return Ok(false);
    };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let target = target.to_string_lossy().into_owned();
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &target)?;
    }
    Ok(true)
}

/// systemd's watchdog, when the unit asks for it (`WatchdogSec=`, seen as `WATCHDOG_USEC`): a
/// thread sends WATCHDOG=1 every half interval while `healthy()` says so (the pod sync loop's
/// check), so a stuck loop gets the agent restarted. None when no watchdog is asked for.
pub fn watchdog(
    healthy: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let Some(every) = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|u| u.parse::<u64>().ok())
        .map(|u| std::time::Duration::from_micros(u) / 2)
    else {
        return Ok(None);
    };
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                if healthy()
                    && let Err(e) = sd_notify("WATCHDOG=1")
                {
                    crate::warn!("sd_notify WATCHDOG=1: {e}");
                }
                std::thread::sleep(every);
            }
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_on_refuses_with_the_kubelet_message() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let roots = Roots {
            proc_: dir.path().to_path_buf(),
            ..Roots::host()
        };
        let e = check_swap(true, &roots).map_or_else(|e| e.to_string(), |_| String::new());
        assert!(e.starts_with("failed to check swap: reading "), "{e}");
        std::fs::write(
            dir.path().join("swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n",
        )
        .unwrap_or_default();
        let e = check_swap(true, &roots).map_or_else(|e| e.to_string(), |_| String::new());
        assert!(
            e.starts_with("running with swap on is not supported, please disable swap or set --fail-swap-on flag to false. /proc/swaps contained: [\"/swapfile file 1024 0 -2\"]"),
            "{e}"
        );
        assert!(check_swap(false, &roots).is_ok());
    }

    #[test]
    fn dirs_get_safe_modes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("var/lib/kubelet");
        let logs = dir.path().join("var/log/pods");
        std::fs::create_dir_all(&logs).unwrap_or_default();
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777)).unwrap_or_default();
        data_dirs(&root, &logs).unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&root), 0o750);
        assert_eq!(mode(&root.join("pods")), 0o750);
        assert_eq!(mode(&logs), 0o755, "world-writable log dir tightened");
        std::fs::write(dir.path().join("file"), "").unwrap_or_default();
        let e = ensure_dir(&dir.path().join("file/sub"), 0o750)
            .map_or_else(|e| e.to_string(), |_| String::new());
        assert!(e.contains("file/sub (mode 750)"), "{e}");
    }

    #[test]
    fn notify_reaches_a_datagram_socket() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("notify");
        let listener =
            std::os::unix::net::UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!notify_to(None, "READY=1").unwrap_or(true));
        let sent = notify_to(Some(path.clone().into_os_string()), "READY=1");
        assert!(sent.unwrap_or(false));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap_or(0);
        assert_eq!(&buf[..n], b"READY=1");
    }
}
