//! Container log rotation, as the kubelet's container log manager: every
//! `containerLogMonitorInterval` the running containers' logs are looked at; one past
//! `containerLogMaxSize` is renamed to `<log>.<YYYYMMDD-hhmmss>` and the runtime reopens it
//! (`ReopenContainerLog`), the rotated files before it are gzipped (`.gz`), and the oldest go
//! so that at most `containerLogMaxFiles` files remain, the live one included. A pure plan over
//! the file names, a thin pass over the runtime and the files.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::seams::Cri;
use crate::cri::api::*;
use crate::{vinfo, warn};

/// `containerLogMaxSize`, `containerLogMaxFiles`, `containerLogMonitorInterval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_size: u64,
    pub max_files: usize,
    pub every: Duration,
}

/// What to do with the rotated files of one log before the live one is rotated.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Left-over temporaries, plain files whose `.gz` is there, and the oldest beyond the limit.
    pub remove: Vec<String>,
    /// Rotated files still plain (the newest of the last rotation), to be gzipped.
    pub compress: Vec<String>,
}

/// The plan for the log named `log` among `siblings` (the names in its directory), keeping at
/// most `max_files` (the live log, the one about to be rotated and the older ones): the
/// kubelet's cleanupUnusedLogs, removeExcessLogs and compressLog, in that order.
pub fn plan(log: &str, siblings: &[String], max_files: usize) -> Plan {
    let prefix = format!("{log}.");
    let rotated: BTreeSet<&str> = siblings
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let mut out = Plan::default();
    let mut kept = Vec::new();
    for n in &rotated {
        let gz_of_it = format!("{n}.gz");
        if n.ends_with(".tmp") || rotated.contains(gz_of_it.as_str()) {
            out.remove.push((*n).to_string());
        } else {
            kept.push(*n);
        }
    }
    // The names sort by their timestamp (`.gz` or not), oldest first.
    kept.sort_by_key(|n| n.strip_suffix(".gz").unwrap_or(n));
    let room = max_files.saturating_sub(2);
    let excess = kept.len().saturating_sub(room);
    out.remove
        .extend(kept[..excess].iter().map(|n| n.to_string()));
    out.compress.extend(
        kept[excess..]
            .iter()
            .filter(|n| !n.ends_with(".gz"))
            .map(|n| n.to_string()),
    );
    out
}

/// `<log>.<YYYYMMDD-hhmmss>` (UTC) for a rotation at `now`.
pub fn rotated_name(log: &str, now: std::time::SystemTime) -> String {
    let c = crate::timefmt::Civil::from_system(now);
    format!(
        "{log}.{:04}{:02}{:02}-{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// One pass over the running containers: each log past the size limit is rotated; a log file
/// that is gone is reopened. Failures are logged per container and the pass goes on.
pub fn pass(cri: &dyn Cri, policy: &Policy) {
    let running = ListContainersRequest {
        filter: Some(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        }),
    };
    let containers = match cri.list_containers(&running) {
        Ok(r) => r.containers,
        Err(e) => {
            warn!("log rotation: listing the running containers: {e}");
            return;
        }
    };
    for c in containers {
        if let Err(e) = check(cri, policy, &c.id) {
            warn!("log rotation of container {}: {e}", c.id);
        }
    }
}

fn check(cri: &dyn Cri, policy: &Policy, id: &str) -> Result<(), String> {
    let st = cri
        .container_status(&ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        })
        .map_err(|e| e.to_string())?
        .status
        .unwrap_or_default();
    if st.log_path.is_empty() {
        return Ok(());
    }
    let log = PathBuf::from(&st.log_path);
    let reopen = || {
        cri.reopen_container_log(&ReopenContainerLogRequest {
            container_id: id.to_string(),
        })
        .map(|_| ())
        .map_err(|e| format!("reopening {}: {e}", log.display()))
    };
    match std::fs::symlink_metadata(&log) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => reopen(),
        Err(e) => Err(format!("{}: {e}", log.display())),
        Ok(m) if m.len() < policy.max_size => Ok(()),
        Ok(_) => rotate(
            &log,
            policy.max_files,
            std::time::SystemTime::now(),
            &reopen,
        ),
    }
}

/// Rotates `log`: its rotated files tidied and compressed by the plan, then it is renamed and
/// the runtime reopens it; if the reopen fails the rename is undone.
pub fn rotate(
    log: &Path,
    max_files: usize,
    now: std::time::SystemTime,
    reopen: &dyn Fn() -> Result<(), String>,
) -> Result<(), String> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Err(format!("{}: not a log file path", log.display()));
    };
    let siblings: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("listing {}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let p = plan(name, &siblings, max_files);
    for n in &p.remove {
        let f = dir.join(n);
        std::fs::remove_file(&f).map_err(|e| format!("removing {}: {e}", f.display()))?;
    }
    for n in &p.compress {
        gzip(&dir.join(n))?;
    }
    let rotated = dir.join(rotated_name(name, now));
    std::fs::rename(log, &rotated)
        .map_err(|e| format!("renaming {} to {}: {e}", log.display(), rotated.display()))?;
    if let Err(e) = reopen() {
        let _ = std::fs::rename(&rotated, log);
        return Err(e);
    }
    vinfo!(2, "rotated {} to {}", log.display(), rotated.display());
    Ok(())
}

/// A gzip member's header: deflate, no name, no time, from Unix.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// The CRC-32 (IEEE) table, made at compile time (flate2's own CRC crate carries a 16 KiB one;
/// this keeps the static binary in its size budget).
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for b in data {
        crc = CRC_TABLE[((crc ^ u32::from(*b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `file` to `file.gz` (through `file.gz.tmp`, with its mode), streamed: the gzip header, the
/// deflated bytes, the CRC-32 and length; then `file` goes.
fn gzip(file: &Path) -> Result<(), String> {
    use std::io::Read;
    let name = file.display();
    let gz = PathBuf::from(format!("{}.gz", file.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", file.display()));
    let at = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let mut src = std::fs::File::open(file).map_err(|e| at("opening", file, e))?;
    let mode = src
        .metadata()
        .map_err(|e| at("reading", file, e))?
        .permissions();
    let mut out = std::fs::File::create(&tmp).map_err(|e| at("creating", &tmp, e))?;
    let done = out.write_all(&GZIP_HEADER).and_then(|()| {
        let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::default());
        let (mut crc, mut len) = (0u32, 0u64);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            crc = crc32(crc, &buf[..n]);
            len += n as u64;
            enc.write_all(&buf[..n])?;
        }
        let mut f = enc.finish()?;
        f.write_all(&crc.to_le_bytes())?;
        // ISIZE: the length modulo 2^32, as gzip keeps it.
        f.write_all(&((len & 0xffff_ffff) as u32).to_le_bytes())?;
        f.flush()?;
        f.set_permissions(mode)
    });
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("compressing {name}: {e}"));
    }
    std::fs::rename(&tmp, &gz).map_err(|e| at("renaming to", &gz, e))?;
    std::fs::remove_file(file).map_err(|e| at("removing", file, e))
}

#[cfg(test)]
#[path = "log_rotation_tests.rs"]
mod tests;
