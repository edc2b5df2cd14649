//! The seam between the node log query and journald: which units journald knows
//! (`journalctl --field _SYSTEMD_UNIT`) and a journalctl run streamed with its stderr, as the
//! kubelet's kubelet_server_journal_linux.go runs them, under the query's deadline. The real one
//! runs `journalctl`; tests use a fake.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a journalctl run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// It ran (whatever its exit status: the kubelet writes nothing more then).
    Ran,
    /// It could not be started (or read), or the deadline killed it.
    Failed,
}

pub trait Journal: Send + Sync {
    /// The combined output of `journalctl --field _SYSTEMD_UNIT`; None when it fails.
    fn units(&self) -> Option<String>;
    /// journalctl with `args`, its stdout and stderr handed to `out` as they come (until `out`
    /// says stop); killed at `deadline`.
    fn run(&self, args: &[String], deadline: Instant, out: &mut dyn FnMut(&[u8]) -> bool)
    -> RunEnd;
}

/// The machine's journalctl.
pub struct Journalctl {
    pub bin: std::path::PathBuf,
}

impl Default for Journalctl {
    fn default() -> Self {
        Journalctl {
            bin: "journalctl".into(),
        }
    }
}

impl Journal for Journalctl {
    fn units(&self) -> Option<String> {
        let out = Command::new(&self.bin)
            .args(["--field", "_SYSTEMD_UNIT"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Some(text)
    }

    fn run(
        &self,
        args: &[String],
        deadline: Instant,
        out: &mut dyn FnMut(&[u8]) -> bool,
    ) -> RunEnd {
        let Ok((mut reader, writer)) = std::io::pipe() else {
            return RunEnd::Failed;
        };
        let Ok(err_writer) = writer.try_clone() else {
            return RunEnd::Failed;
        };
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(err_writer);
        let Ok(mut child) = cmd.spawn() else {
            return RunEnd::Failed;
        };
        // The pipe's write ends live in the child only now (cmd holds copies until dropped).
        drop(cmd);
        let done = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        let watchdog = {
            let (done, killed) = (done.clone(), killed.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if Instant::now() >= deadline {
                        killed.store(true, Ordering::Release);
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut failed = false;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if !out(&buf[..n]) {
                        let _ = child.kill();
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    let _ = child.kill();
                    break;
                }
            }
        }
        let _ = child.wait();
        done.store(true, Ordering::Release);
        let _ = watchdog.join();
        if failed || killed.load(Ordering::Acquire) {
            RunEnd::Failed
        } else {
            RunEnd::Ran
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn collect(j: &Journalctl, args: &[&str], deadline: Instant) -> (RunEnd, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut got = Vec::new();
        let end = j.run(&args, deadline, &mut |b| {
            got.extend_from_slice(b);
            true
        });
        (end, String::from_utf8_lossy(&got).into_owned())
    }

    #[test]
    fn a_run_streams_stdout_and_stderr_and_the_deadline_kills_it() {
        let sh = Journalctl {
            bin: "/bin/sh".into(),
        };
        let soon = Instant::now() + Duration::from_secs(20);
        let (end, out) = collect(&sh, &["-c", "echo out; echo err >&2; exit 3"], soon);
        assert_eq!(end, RunEnd::Ran, "an exit status is not a failure");
        assert_eq!(out, "out\nerr\n");
        let started = Instant::now();
        let (end, out) = collect(
            &sh,
            &["-c", "echo first; exec sleep 30"],
            started + Duration::from_millis(300),
        );
        assert_eq!((end, out.as_str()), (RunEnd::Failed, "first\n"));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "killed at its deadline"
        );
        let missing = Journalctl {
            bin: "/nonexistent/journalctl".into(),
        };
        assert_eq!(collect(&missing, &[], soon).0, RunEnd::Failed);
        assert_eq!(missing.units(), None);
    }

    #[test]
    fn the_machines_journalctl_answers_the_units_question() {
        // CI installs systemd's journalctl; journald need not run (then it knows no units).
        let units = Journalctl::default().units();
        assert!(
            units.is_some(),
            "journalctl --field _SYSTEMD_UNIT failed: is systemd's journalctl installed?"
        );
    }
}
