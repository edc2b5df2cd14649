//! The root's filesystems as cAdvisor reports them on `/metrics/cadvisor` (`id="/"`): the mounts
//! of the types it supports, listed once at start as cAdvisor's processMounts does (a device's
//! first mount; tmpfs named by its mount point, overlay by its device number), and at each
//! scrape their statfs figures and the device's `/proc/diskstats` counters. Parsing is pure.

use std::path::{Path, PathBuf};

/// One filesystem cAdvisor knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The `device` label: the mount source, the mount point for tmpfs, `overlay_<maj>-<min>`.
    pub device: String,
    pub mountpoint: PathBuf,
    pub major: u32,
    pub minor: u32,
}

/// `\040`-style octal escapes of mountinfo undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match oct {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n * 8 + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The partitions of a `mountinfo` text, in cAdvisor's choice, sorted by device label.
pub fn partitions(mountinfo: &str) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(dash) = f.iter().position(|w| *w == "-") else {
            continue;
        };
        let (Some(mm), Some(mountpoint), Some(fstype), Some(source)) =
            (f.get(2), f.get(4), f.get(dash + 1), f.get(dash + 2))
        else {
            continue;
        };
        let supported = ["btrfs", "overlay", "tmpfs", "xfs", "zfs"].contains(fstype)
            || fstype.starts_with("ext")
            || fstype.starts_with("nfs");
        let Some((major, minor)) = mm
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        else {
            continue;
        };
        if !supported {
            continue;
        }
        // cAdvisor skips a source it has (a bind mount) before renaming tmpfs and overlay
        // sources, so those are never skipped: a later mount of the same name replaces.
        let renamed = matches!(*fstype, "tmpfs" | "overlay");
        let mountpoint = unescape(mountpoint);
        let device = match *fstype {
            "tmpfs" => mountpoint.clone(),
            "overlay" => format!("{}_{major}-{minor}", unescape(source)),
            _ => unescape(source),
        };
        let p = Partition {
            device,
            mountpoint: PathBuf::from(mountpoint),
            major,
            minor,
        };
        match out.iter_mut().find(|q| q.device == p.device) {
            Some(q) if renamed => *q = p,
            Some(_) => {}
            None => out.push(p),
        }
    }
    out.sort_by(|a, b| a.device.cmp(&b.device));
    out
}

/// `/proc/diskstats`' 11 counters of a device (reads, reads merged, sectors read, ms reading,
/// the same four for writes, I/Os in progress, ms doing I/O, weighted ms).
pub type Counters = [u64; 11];

/// The devices cAdvisor takes from `/proc/diskstats` (sd*, vd*, xvd*, dm-*): (`/dev/<name>`,
/// major, minor, counters). A malformed line is skipped.
pub fn diskstats(text: &str) -> Vec<(String, u32, u32, Counters)> {
    let named = |n: &str| {
        let disk = ["sd", "vd", "xvd"].iter().find_map(|p| n.strip_prefix(p));
        match disk {
            Some(rest) => {
                let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
                !letters.is_empty() && letters.bytes().all(|c| c.is_ascii_lowercase())
            }
            None => n
                .strip_prefix("dm-")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())),
        }
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 || !named(f[2]) {
            continue;
        }
        let (Ok(major), Ok(minor)) = (f[0].parse(), f[1].parse()) else {
            continue;
        };
        let mut c = [0u64; 11];
        if f[3..14]
            .iter()
            .zip(c.iter_mut())
            .all(|(w, v)| w.parse().map(|n| *v = n).is_ok())
        {
            out.push((format!("/dev/{}", f[2]), major, minor, c));
        }
    }
    out
}

/// A filesystem's figures at one scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub device: String,
    /// Capacity (cAdvisor's Limit) and capacity - free (Usage), in bytes.
    pub limit: u64,
    pub usage: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    pub disk: Counters,
}

/// Each partition's figures now; one whose mount point cannot be statfs'd is left out, as
/// cAdvisor does. `diskstats` is `/proc/diskstats`' text; a device is matched by name, then by
/// number.
pub fn figures(parts: &[Partition], diskstats_text: &str) -> Vec<Figures> {
    let disks = diskstats(diskstats_text);
    parts
        .iter()
        .filter_map(|p| {
            let s = crate::node::host::fs_stats(&p.mountpoint).ok()?;
            let disk = disks
                .iter()
                .find(|d| d.0 == p.device)
                .or_else(|| disks.iter().find(|d| (d.1, d.2) == (p.major, p.minor)))
                .map_or([0; 11], |d| d.3);
            Some(Figures {
                device: p.device.clone(),
                limit: s.capacity_bytes,
                usage: s.capacity_bytes.saturating_sub(s.free_bytes),
                inodes: s.inodes,
                inodes_free: s.inodes_free,
                disk,
            })
        })
        .collect()
}

/// The partitions under `proc_` (its `self/mountinfo`), as at the agent's start.
pub fn at_start(proc_: &Path) -> Vec<Partition> {
    std::fs::read_to_string(proc_.join("self/mountinfo"))
        .map_or_else(|_| Vec::new(), |t| partitions(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's machine's mountinfo (trimmed), and a kubeadm node's containerd mounts.
    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
24 22 0:23 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
25 22 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
26 22 254:0 /var/lib/x /mnt/bind rw - ext4 /dev/vda rw
27 22 0:27 / /dev/shm rw - tmpfs tmpfs rw
28 22 0:61 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw - overlay overlay rw,lowerdir=/a
29 22 0:62 / /var/lib/kubelet/pods/u/volumes/kubernetes.io~projected/kube\\040api rw - tmpfs tmpfs rw
30 22 0:40 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
31 22 8:1 / /data rw shared:1 master:2 - xfs /dev/sda1 rw
";

    #[test]
    fn mounts_are_chosen_as_cadvisor_does() {
        let p = partitions(MOUNTINFO);
        let got: Vec<(&str, &str, u32)> = p
            .iter()
            .map(|p| {
                (
                    p.device.as_str(),
                    p.mountpoint.to_str().unwrap_or(""),
                    p.minor,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/dev/sda1", "/data", 1),
                ("/dev/shm", "/dev/shm", 27),
                ("/dev/vda", "/", 0),
                ("/sys/fs/cgroup", "/sys/fs/cgroup", 28),
                (
                    "/var/lib/kubelet/pods/u/volumes/kubernetes.io~projected/kube api",
                    "/var/lib/kubelet/pods/u/volumes/kubernetes.io~projected/kube api",
                    62
                ),
                (
                    "overlay_0-61",
                    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
                    61
                ),
            ]
        );
    }

    #[test]
    fn diskstats_as_cadvisor_reads_them() {
        // This machine's /proc/diskstats (vda; zram and loop devices are not disks to cAdvisor).
        let text = " 254       0 vda 54695 7766 3230770 19156 21522 70678 8021720 48397 0 11988 68637 7232 1 960888 967 1997 116\n\
             253       0 zram0 4 0 32 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0\n\
             259       0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11\n 252 0 dm-0 1 2 3 4 5 6 7 8 9 10 11\n   8 1 sda1 1 2 3\n";
        let d = diskstats(text);
        assert_eq!(
            d.iter()
                .map(|(n, ma, mi, _)| (n.as_str(), *ma, *mi))
                .collect::<Vec<_>>(),
            [("/dev/vda", 254, 0), ("/dev/dm-0", 252, 0)]
        );
        assert_eq!(
            d[0].3,
            [
                54695, 7766, 3230770, 19156, 21522, 70678, 8021720, 48397, 0, 11988, 68637
            ]
        );
    }

    #[test]
    fn figures_of_this_machines_root() {
        let parts = partitions(
            "22 1 254:0 / / rw - ext4 /dev/vda rw\n23 22 0:99 / /nonexistent-tl rw - tmpfs tmpfs rw\n",
        );
        let f = figures(&parts, "254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n");
        assert_eq!(
            f.len(),
            1,
            "a mount point that is not there is left out: {f:?}"
        );
        let root = crate::node::host::fs_stats(Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f[0].limit, root.capacity_bytes);
        assert!(f[0].usage > 0 && f[0].usage <= f[0].limit);
        assert_eq!(f[0].disk[10], 11, "matched by name");
        let f = figures(&parts, "254 0 vdz 1 2 3 4 5 6 7 8 9 10 12\n");
        assert_eq!(f[0].disk[10], 12, "matched by number");
        assert_eq!(unescape("a\\040b\\134c\\9"), "a b\\c\\9");
    }
}
