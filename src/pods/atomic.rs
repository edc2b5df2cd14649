//! Volume contents written as the kubelet's AtomicWriter does: a timestamped directory, the
//! `..data` symlink swapped in one rename, one symlink per visible name, so a reader sees the
//! old set or the new one, never a mix; nothing is written when the content is unchanged.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

pub(super) fn mkdir(p: &Path, mode: u32) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .map_err(|e| format!("creating {}: {e}", p.display()))
}

/// The files of a volume: relative path -> (content, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// What `dir` holds now (through its `..data` link), as `Files`.
fn current(dir: &Path) -> Option<Files> {
    let data = dir.join("..data");
    std::fs::symlink_metadata(&data).ok()?;
    let mut out = Files::new();
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if e.file_type().ok()?.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&data).ok()?.to_string_lossy().into_owned();
                let mode = e.metadata().ok()?.permissions().mode() & 0o7777;
                out.insert(rel, (std::fs::read(&p).ok()?, mode));
            }
        }
    }
    Some(out)
}

/// Writes `files` into `dir` atomically: readers see the old set or the new one, never a mix.
/// Nothing is written when the content is what `dir` holds already; a file whose bytes did not
/// change keeps its modification time (a token's age is read from it).
pub fn write_atomic(dir: &Path, files: &Files) -> Result<(), String> {
    mkdir(dir, 0o755)?;
    let before = current(dir);
    if before.as_ref() == Some(files) {
        return Ok(());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let ts = format!("..{nanos}");
    let data = dir.join(&ts);
    mkdir(&data, 0o755)?;
    for (rel, (content, mode)) in files {
        let path = data.join(rel);
        if let Some(parent) = path.parent() {
            mkdir(parent, 0o755)?;
        }
        std::fs::write(&path, content).map_err(|e| format!("writing {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        let same = before
            .as_ref()
            .and_then(|b| b.get(rel))
            .is_some_and(|(old, _)| old == content);
        if same
            && let Ok(t) =
                std::fs::metadata(dir.join("..data").join(rel)).and_then(|m| m.modified())
        {
            let _ = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(t));
        }
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp).map_err(|e| format!("symlink {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("..data"))
        .map_err(|e| format!("swapping {}/..data: {e}", dir.display()))?;
    let tops: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|k| k.split('/').next()).collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), &link)
                .map_err(|e| format!("symlink {}: {e}", link.display()))?;
        }
    }
    // Names no longer in the set lose their link; the old data dir goes.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !tops.contains(name.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != ts.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

/// The pod's `fsGroup` over a volume, as the kubelet's SetVolumeOwnership: everything under
/// `dir` (symlinks not followed) is given group `gid`, files the group's read bits (`readonly`:
/// 0440; else read and write, 0660), directories those and the search bits with set-group-id,
/// so what is made in them keeps the group.
pub fn own(dir: &Path, gid: u32, readonly: bool) -> Result<(), String> {
    let mask = if readonly { 0o440 } else { 0o660 };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta =
            std::fs::symlink_metadata(&p).map_err(|e| format!("stat {}: {e}", p.display()))?;
        std::os::unix::fs::lchown(&p, None, Some(gid))
            .map_err(|e| format!("chgrp {gid} {}: {e}", p.display()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mut mode = meta.permissions().mode() & 0o7777 | mask;
        if meta.is_dir() {
            mode |= 0o2000 | 0o110;
            for e in std::fs::read_dir(&p).map_err(|e| format!("reading {}: {e}", p.display()))? {
                stack.push(
                    e.map_err(|e| format!("reading {}: {e}", p.display()))?
                        .path(),
                );
            }
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn atomic_writes_swap_the_data_link_and_drop_old_names() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = d.path().join("vol");
        let files = Files::from([
            ("a".to_string(), (b"1".to_vec(), 0o644)),
            ("sub/b".to_string(), (b"2".to_vec(), 0o600)),
        ]);
        write_atomic(&dir, &files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(dir.join("a")).unwrap_or_default(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/b")).unwrap_or_default(),
            "2"
        );
        let mode = std::fs::metadata(dir.join("sub/b"))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_link(dir.join("a")).is_ok_and(|t| t == Path::new("..data/a")));
        let first = std::fs::read_link(dir.join("..data")).unwrap_or_default();
        write_atomic(
            &dir,
            &Files::from([("a".to_string(), (b"3".to_vec(), 0o644))]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(dir.join("a")).unwrap_or_default(),
            "3"
        );
        assert!(
            !dir.join("sub").exists(),
            "a name gone from the set is unlinked"
        );
        assert!(!dir.join(first).exists(), "the old data dir is removed");
    }

    #[test]
    fn unchanged_content_is_not_rewritten_and_tokens_keep_their_age() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = d.path().join("vol");
        let tok = |t: &[u8]| {
            Files::from([
                ("token".to_string(), (t.to_vec(), 0o644)),
                ("ns".to_string(), (b"default".to_vec(), 0o644)),
            ])
        };
        write_atomic(&dir, &tok(b"t1")).unwrap_or_else(|e| panic!("{e}"));
        let first = std::fs::read_link(dir.join("..data")).unwrap_or_default();
        write_atomic(&dir, &tok(b"t1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_link(dir.join("..data")).unwrap_or_default(),
            first,
            "the same content: nothing written"
        );
        // Another part changing keeps the token file's age.
        let now = std::time::SystemTime::now();
        let file = dir.join("..data/token");
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(now - std::time::Duration::from_secs(100)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut changed = tok(b"t1");
        changed.insert("ns".into(), (b"other".to_vec(), 0o644));
        write_atomic(&dir, &changed).unwrap_or_else(|e| panic!("{e}"));
        let age = std::fs::metadata(dir.join("..data/token"))
            .and_then(|m| m.modified())
            .map(|m| now.duration_since(m).unwrap_or_default().as_secs())
            .unwrap_or(0);
        assert!((99..=101).contains(&age), "token age {age}");
    }

    /// fsGroup ownership: the group's read bits on files, set-group-id on directories, and a
    /// symlink's target outside the volume left as it is.
    #[test]
    fn an_fs_group_owns_the_volume_without_following_links() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let vol = d.path().join("vol");
        let outside = d.path().join("host-file");
        std::fs::write(&outside, "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let files = Files::from([("sub/key".to_string(), (b"v".to_vec(), 0o400))]);
        write_atomic(&vol, &files).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&outside, vol.join("escape")).unwrap_or_else(|e| panic!("{e}"));
        // Our own group (the temp dir's): chgrp to it needs no privilege.
        let gid = std::os::unix::fs::MetadataExt::gid(
            &std::fs::metadata(d.path()).unwrap_or_else(|e| panic!("{e}")),
        );
        own(&vol, gid, true).unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::symlink_metadata(p)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(mode(&vol.join("..data/sub/key")), 0o440);
        assert_eq!(mode(&vol.join("..data/sub")), 0o2755);
        assert_eq!(mode(&vol), 0o2755);
        assert_eq!(
            mode(&outside),
            0o600,
            "the link's target is not the volume's"
        );
        let rw = d.path().join("rw");
        mkdir(&rw, 0o700).unwrap_or_else(|e| panic!("{e}"));
        own(&rw, gid, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&rw), 0o2770);
    }
}
