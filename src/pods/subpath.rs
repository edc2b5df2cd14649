//! `subPath` and `subPathExpr` done safely, as the kubelet's pkg/volume/util/subpath (the fix
//! of CVE-2017-1002101): a pod may have put symlinks anywhere in its volume, so the subpath is
//! resolved once, checked to lie inside the volume, then opened one component at a time from
//! the volume's root with `openat(O_PATH | O_NOFOLLOW)` (a symlink met on that walk, swapped in
//! after the check, is refused); missing directories are made with `mkdirat` on the same walk.
//! The container gets a bind mount of the opened descriptor (`/proc/self/fd/N`) at
//! `<pod dir>/volume-subpaths/<volume>/<container>/<index>`, so nothing is resolved again after
//! the check. What the pod is told is the kubelet's text, which names no host path.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, mkdirat};

/// Where a subpath failed: making its missing directories, or opening and binding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Create,
    Prepare,
}

/// Why a subpath was refused, with the detail for the agent's log (the pod is told less).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubpathError {
    pub stage: Stage,
    pub detail: String,
}

impl SubpathError {
    /// The kubelet's text for the pod: no host path in it.
    pub fn message(&self, volume: &str, container: &str) -> String {
        match self.stage {
            Stage::Create => format!(
                "failed to create subPath directory for volumeMount {volume:?} of container {container:?}"
            ),
            Stage::Prepare => format!(
                "failed to prepare subPath for volumeMount {volume:?} of container {container:?}"
            ),
        }
    }
}

/// The checks on the subpath's text, before any file is touched (the kubelet's makeMounts).
pub fn check_text(sub: &str) -> Result<(), String> {
    if sub.starts_with('/') {
        return Err(format!(
            "error SubPath `{sub}` must not be an absolute path"
        ));
    }
    if sub.split('/').any(|c| c == "..") {
        return Err(format!(
            "unable to provision SubPath `{sub}`: must not contain '..'"
        ));
    }
    Ok(())
}

/// `subPathExpr` expanded with the container's environment; every variable it names must have
/// a non-empty value.
pub fn expand(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let mut missing = std::collections::BTreeSet::new();
    let out = super::env::expand_with(expr, &mut |name| {
        let v = env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty());
        if v.is_none() {
            missing.insert(name.to_string());
        }
        Some(v.unwrap_or_default())
    });
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// The path's components, all normal (no `.`, `..`, root).
fn components(p: &Path) -> Result<Vec<std::ffi::OsString>, String> {
    p.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(n) => Ok(n.to_os_string()),
            other => Err(format!("unexpected component {other:?} in {}", p.display())),
        })
        .collect()
}

/// What the walk found at the end of the subpath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Other,
}

fn kind_of(fd: &OwnedFd, at: &Path) -> Result<(Kind, bool), String> {
    let st = fstat(fd.as_fd()).map_err(|e| format!("fstat {}: {e}", at.display()))?;
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    Ok((
        if fmt == SFlag::S_IFDIR {
            Kind::Dir
        } else {
            Kind::Other
        },
        fmt == SFlag::S_IFLNK,
    ))
}

/// Opens `rel` under the volume root `root` (itself opened without following a symlink) one
/// component at a time, never following one; with `make`, missing directories are created
/// with `perm` on the way. Returns the descriptor of the last component and its kind.
fn walk(
    root: &Path,
    rel: &[std::ffi::OsString],
    make: Option<u32>,
) -> Result<(OwnedFd, Kind), String> {
    let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = nix::fcntl::open(root, path_flags | OFlag::O_DIRECTORY, Mode::empty())
        .map_err(|e| format!("cannot open directory {}: {e}", root.display()))?;
    let mut kind = Kind::Dir;
    let mut at = root.to_path_buf();
    for (i, seg) in rel.iter().enumerate() {
        at.push(seg);
        if kind != Kind::Dir {
            return Err(format!("{} is not a directory", at.display()));
        }
        let child = match openat(fd.as_fd(), seg.as_os_str(), path_flags, Mode::empty()) {
            Ok(c) => c,
            Err(nix::errno::Errno::ENOENT) if make.is_some() => {
                let perm = make.unwrap_or(0o755);
                mkdirat(fd.as_fd(), seg.as_os_str(), Mode::from_bits_truncate(perm))
                    .map_err(|e| format!("mkdirat {}: {e}", at.display()))?;
                // The umask cut the mode; a directory opened for reading can be fixed.
                let dir = openat(
                    fd.as_fd(),
                    seg.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("cannot open {}: {e}", at.display()))?;
                fchmod(dir.as_fd(), Mode::from_bits_truncate(perm))
                    .map_err(|e| format!("chmod {}: {e}", at.display()))?;
                dir
            }
            Err(e) => return Err(format!("cannot open {}: {e}", at.display())),
        };
        let (k, symlink) = kind_of(&child, &at)?;
        if symlink {
            return Err(format!("unexpected symlink found {}", at.display()));
        }
        if k != Kind::Dir && i + 1 < rel.len() {
            return Err(format!("{} is not a directory", at.display()));
        }
        kind = k;
        fd = child;
    }
    Ok((fd, kind))
}

/// Resolves subpath `sub` of the volume at `volume` and opens it safely (see the module),
/// creating missing directories with the volume root's mode. The descriptor stays valid for
/// what it names whatever the pod does to the path afterwards.
pub fn open(volume: &Path, sub: &str) -> Result<(OwnedFd, Kind), SubpathError> {
    let fail = |stage: Stage, detail: String| SubpathError { stage, detail };
    let prepare = Stage::Prepare;
    let root = std::fs::canonicalize(volume)
        .map_err(|e| fail(prepare, format!("resolving {}: {e}", volume.display())))?;
    let wanted = components(Path::new(sub)).map_err(|d| fail(prepare, d))?;
    // The longest prefix that exists, resolved as the host sees it (symlinks inside the volume
    // are fine: a configMap's names are links into its `..data`), must stay in the volume.
    let mut existing = wanted.len();
    while existing > 0 {
        let p: PathBuf = wanted[..existing]
            .iter()
            .fold(root.clone(), |p, c| p.join(c));
        if std::fs::symlink_metadata(&p).is_ok() {
            break;
        }
        existing -= 1;
    }
    let prefix: PathBuf = wanted[..existing]
        .iter()
        .fold(root.clone(), |p, c| p.join(c));
    let resolved = std::fs::canonicalize(&prefix).map_err(|e| {
        fail(
            prepare,
            format!("resolving {}: {e} (a dangling symlink?)", prefix.display()),
        )
    })?;
    let inside = resolved.strip_prefix(&root).map_err(|_| {
        fail(
            prepare,
            format!(
                "subpath {} resolves to {}, outside of the volume {}",
                sub,
                resolved.display(),
                root.display()
            ),
        )
    })?;
    let mut rel = components(inside).map_err(|d| fail(prepare, d))?;
    let missing = &wanted[existing..];
    let make = if missing.is_empty() {
        None
    } else {
        let meta = std::fs::metadata(&root)
            .map_err(|e| fail(Stage::Create, format!("{}: {e}", root.display())))?;
        Some(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777)
    };
    rel.extend(missing.iter().cloned());
    let stage = if make.is_some() {
        Stage::Create
    } else {
        Stage::Prepare
    };
    walk(&root, &rel, make).map_err(|d| fail(stage, d))
}

/// Bind-mounts the opened subpath `fd` (of `kind`) at `target`, made as a directory or an
/// empty file to match; a mount left there by an earlier start of the container is replaced.
pub fn bind(fd: &OwnedFd, kind: Kind, target: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = target.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    if super::volumes::is_mount_point(target) {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmounting {}: {e}", target.display()))?;
    }
    let _ = std::fs::remove_dir(target).or_else(|_| std::fs::remove_file(target));
    match kind {
        Kind::Dir => std::fs::create_dir(target),
        Kind::Other => std::fs::File::create(target).map(|_| ()),
    }
    .map_err(|e| format!("creating {}: {e}", target.display()))?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind-mounting {source} at {}: {e}", target.display()))
}

/// The host path a container mounts for subpath `sub` of volume `name` (at `volume`), its
/// `index`-th mount: checked, opened safely and bound under the pod's dir. Err is the
/// kubelet's text for the pod; the detail is logged.
pub fn prepare(
    volume: &Path,
    sub: &str,
    pod_dir: &Path,
    name: &str,
    container: &str,
    index: usize,
) -> Result<PathBuf, String> {
    check_text(sub)?;
    let target = pod_dir
        .join("volume-subpaths")
        .join(name)
        .join(container)
        .join(index.to_string());
    let failed = |e: SubpathError| {
        crate::warn!(
            "subPath {sub:?} of volume {name:?} for container {container:?}: {}",
            e.detail
        );
        e.message(name, container)
    };
    let (fd, kind) = open(volume, sub).map_err(failed)?;
    bind(&fd, kind, &target).map_err(|detail| {
        failed(SubpathError {
            stage: Stage::Prepare,
            detail,
        })
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn texts_are_checked_first() {
        assert_eq!(
            check_text("/etc"),
            Err("error SubPath `/etc` must not be an absolute path".into())
        );
        assert_eq!(
            check_text("a/../../x"),
            Err("unable to provision SubPath `a/../../x`: must not contain '..'".into())
        );
        assert!(check_text("a/b..c/./d").is_ok());
    }

    #[test]
    fn expressions_need_every_variable() {
        let env = vec![
            ("POD_NAME".to_string(), "web-0".to_string()),
            ("EMPTY".to_string(), String::new()),
        ];
        assert_eq!(expand("logs/$(POD_NAME)", &env), Ok("logs/web-0".into()));
        assert_eq!(
            expand("$(NOPE)/$(EMPTY)/$(POD_NAME)", &env),
            Err("missing value for EMPTY, NOPE".into())
        );
    }

    #[test]
    fn symlinks_out_of_the_volume_are_refused() {
        let d = tmp();
        let vol = d.path().join("vol");
        let host = d.path().join("host");
        std::fs::create_dir_all(vol.join("real/deeper")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&host).unwrap_or_else(|e| panic!("{e}"));
        symlink(&host, vol.join("escape")).unwrap_or_else(|e| panic!("{e}"));
        symlink("/", vol.join("root")).unwrap_or_else(|e| panic!("{e}"));
        symlink("../host", vol.join("relative")).unwrap_or_else(|e| panic!("{e}"));
        symlink("real", vol.join("inside")).unwrap_or_else(|e| panic!("{e}"));
        symlink("/nonexistent/x", vol.join("dangling")).unwrap_or_else(|e| panic!("{e}"));
        for sub in [
            "escape",
            "root",
            "relative",
            "escape/new",
            "dangling",
            "root/etc",
        ] {
            let e = open(&vol, sub).map(|_| ()).err();
            assert!(e.is_some(), "{sub} was opened");
        }
        assert!(!host.join("new").exists(), "nothing made outside");
        // A link that stays inside (a configMap's names are) is followed to its target.
        let (_, kind) = open(&vol, "inside/deeper").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(kind, Kind::Dir);
        // Missing directories are made inside, with the volume's mode.
        let (_, kind) = open(&vol, "new/a/b").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(kind, Kind::Dir);
        assert!(vol.join("new/a/b").is_dir());
        std::fs::write(vol.join("file"), b"x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(open(&vol, "file").map(|o| o.1), Ok(Kind::Other));
        assert!(
            open(&vol, "file/under").is_err(),
            "a file is not a directory"
        );
    }

    /// A symlink swapped in after the check is met on the walk and refused.
    #[test]
    fn the_walk_never_follows_a_link() {
        let d = tmp();
        let vol = d.path().join("vol");
        std::fs::create_dir_all(vol.join("a")).unwrap_or_else(|e| panic!("{e}"));
        symlink(d.path(), vol.join("b")).unwrap_or_else(|e| panic!("{e}"));
        let rel = vec!["b".into(), "vol".into()];
        let e = walk(&vol, &rel, None).map_or_else(|e| e, |_| String::new());
        assert!(e.starts_with("unexpected symlink found"), "{e}");
    }
}
