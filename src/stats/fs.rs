//! Filesystem figures for the summary: what the runtime says of its image filesystem and each
//! container's writable layer (CRI `ImageFsInfo`, `ListContainerStats`), and the disk usage of
//! log and volume directories, walked as the kubelet's `du` walks them (lstat only, no symlink
//! followed, no other filesystem entered, hard links counted once) and cached for
//! `volumeStatsAggPeriod`.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cri::api::{FilesystemUsage, ImageFsInfoResponse, ListContainerStatsResponse};

/// Bytes and inodes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// The runtime's image filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFs {
    pub mountpoint: PathBuf,
    pub used: Usage,
}

/// What the runtime told of its filesystems, for one summary.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFs {
    pub image_fs: Option<ImageFs>,
    /// Each container's writable layer, by runtime id.
    pub writable: HashMap<String, Usage>,
}

fn usage(u: &FilesystemUsage) -> Usage {
    Usage {
        bytes: u.used_bytes.as_ref().map_or(0, |v| v.value),
        inodes: u.inodes_used.as_ref().map_or(0, |v| v.value),
    }
}

impl RuntimeFs {
    /// The runtime's image filesystem and the containers' writable layers (two CRI calls).
    pub fn fetch(rt: &crate::cri::Runtime) -> Result<RuntimeFs, crate::cri::CriError> {
        let image = rt.image_fs_info(&Default::default())?;
        let layers = rt.list_container_stats(&Default::default())?;
        Ok(RuntimeFs::from_cri(&image, &layers))
    }

    pub fn from_cri(image: &ImageFsInfoResponse, stats: &ListContainerStatsResponse) -> RuntimeFs {
        RuntimeFs {
            image_fs: image.image_filesystems.first().map(|f| ImageFs {
                mountpoint: f
                    .fs_id
                    .as_ref()
                    .map(|i| PathBuf::from(&i.mountpoint))
                    .unwrap_or_default(),
                used: usage(f),
            }),
            writable: stats
                .stats
                .iter()
                .filter_map(|s| {
                    let id = s.attributes.as_ref()?.id.clone();
                    Some((id, usage(s.writable_layer.as_ref()?)))
                })
                .collect(),
        }
    }
}

/// The disk usage under `root` (itself included); None when it does not exist. Blocks are
/// counted (`st_blocks` x 512), as du; an entry that vanishes mid-walk is skipped.
pub fn du(root: &Path) -> Option<Usage> {
    let top = std::fs::symlink_metadata(root).ok()?;
    let dev = top.dev();
    let mut seen = HashSet::new();
    let mut total = Usage::default();
    let mut stack = vec![(root.to_path_buf(), top)];
    while let Some((path, meta)) = stack.pop() {
        if !seen.insert(meta.ino()) {
            continue;
        }
        total.bytes = total
            .bytes
            .saturating_add(meta.blocks().saturating_mul(512));
        total.inodes += 1;
        if !meta.is_dir() || meta.dev() != dev {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                // Another filesystem mounted inside (a tmpfs emptyDir) is counted by itself.
                if m.dev() == dev || !m.is_dir() {
                    stack.push((p, m));
                }
            }
        }
    }
    Some(total)
}

/// [`du`] results kept for a period, so a scrape does not walk every pod's directories.
pub struct DuCache {
    period: Duration,
    entries: Mutex<HashMap<PathBuf, (Instant, Option<Usage>)>>,
}

impl DuCache {
    pub fn new(period: Duration) -> DuCache {
        DuCache {
            period,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The usage of `dir`, walked again once the last walk is older than the period.
    pub fn usage(&self, dir: &Path) -> Option<Usage> {
        let now = Instant::now();
        if let Some((at, u)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dir)
            && now.duration_since(*at) < self.period
        {
            return *u;
        }
        // Walked without the lock: another scrape may walk the same dir meanwhile.
        let u = du(dir);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_path_buf(), (now, u));
        u
    }

    /// Forgets the directories not in `keep` (pods gone).
    pub fn retain(&self, keep: &HashSet<PathBuf>) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::api::{ContainerAttributes, ContainerStats, FilesystemIdentifier, UInt64Value};

    #[test]
    fn du_counts_blocks_once_per_inode_and_follows_no_symlink() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = d.path().join("vol");
        std::fs::create_dir_all(root.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("sub/a"), vec![7u8; 100_000]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::hard_link(root.join("sub/a"), root.join("b")).unwrap_or_else(|e| panic!("{e}"));
        // A symlink to a big file outside: counted as the link, never its target.
        let outside = d.path().join("outside");
        std::fs::write(&outside, vec![1u8; 4_000_000]).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap_or_else(|e| panic!("{e}"));
        let u = du(&root).unwrap_or_else(|| panic!("no usage"));
        assert_eq!(u.inodes, 4, "vol, sub, a (= b), link");
        assert!(
            (100_000..1_000_000).contains(&u.bytes),
            "{} bytes: the file once, not the link's target",
            u.bytes
        );
        assert_eq!(du(&d.path().join("missing")), None);
    }

    #[test]
    fn the_cache_walks_again_only_after_its_period() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = DuCache::new(Duration::from_secs(3600));
        let first = c.usage(d.path()).unwrap_or_default();
        std::fs::write(d.path().join("f"), vec![0u8; 50_000]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.usage(d.path()), Some(first), "cached");
        let fresh = DuCache::new(Duration::ZERO);
        assert!(fresh.usage(d.path()).is_some_and(|u| u.inodes == 2));
        c.retain(&HashSet::new());
        assert!(
            c.usage(d.path()).is_some_and(|u| u.inodes == 2),
            "forgotten, walked"
        );
    }

    #[test]
    fn runtime_figures_from_the_cri_answers() {
        let fs = |used: u64, inodes: u64| FilesystemUsage {
            timestamp: 1,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: "/var/lib/containerd/snap".into(),
            }),
            used_bytes: Some(UInt64Value { value: used }),
            inodes_used: Some(UInt64Value { value: inodes }),
        };
        let r = RuntimeFs::from_cri(
            &ImageFsInfoResponse {
                image_filesystems: vec![fs(5000, 50)],
                container_filesystems: vec![],
            },
            &ListContainerStatsResponse {
                stats: vec![
                    ContainerStats {
                        attributes: Some(ContainerAttributes {
                            id: "c1".into(),
                            ..ContainerAttributes::default()
                        }),
                        writable_layer: Some(fs(12, 3)),
                        ..ContainerStats::default()
                    },
                    ContainerStats::default(),
                ],
            },
        );
        assert_eq!(
            r.image_fs,
            Some(ImageFs {
                mountpoint: "/var/lib/containerd/snap".into(),
                used: Usage {
                    bytes: 5000,
                    inodes: 50
                }
            })
        );
        assert_eq!(r.writable.len(), 1);
        assert_eq!(
            r.writable["c1"],
            Usage {
                bytes: 12,
                inodes: 3
            }
        );
    }
}
