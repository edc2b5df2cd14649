//! The cgroup readers on this machine's real hierarchies (as root): the v2 reader on the
//! unified mount (a hybrid host's `/sys/fs/cgroup/unified`), the v1 block I/O reader on the
//! `blkio` controller against what `dd` did with O_DIRECT, named as cAdvisor names the device.
#![allow(clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::text;
use tinylet::stats::blkio::{self, DeviceIo, Op};
use tinylet::stats::cgroup::{CgroupFs, Hierarchy};

/// Whether this runs as root; a skip is refused where CI requires the real thing.
fn root() -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var_os("TINYLET_REQUIRE_RUNTIME").is_none(),
            "must run as root (TINYLET_REQUIRE_RUNTIME is set)"
        );
        eprintln!("SKIPPED: not root, cannot make a cgroup");
    }
    root
}

/// The cgroup v2 reader on the real unified hierarchy (a hybrid host's `/sys/fs/cgroup/unified`,
/// or `/sys/fs/cgroup` on a v2 host): a busy process moved into a cgroup of its own is seen
/// using CPU.
#[test]
fn the_v2_reader_on_the_real_unified_hierarchy() {
    if !root() {
        return;
    }
    let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|m| Path::new(m).join("cgroup.controllers").exists())
        .expect("a cgroup v2 mount");
    let name = format!("tinylet-stats-test-{}", std::process::id());
    let dir = Path::new(mount).join(&name);
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    let mut busy = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("sh");
    std::fs::write(dir.join("cgroup.procs"), busy.id().to_string()).expect("move to cgroup");
    let fs = CgroupFs::at(mount);
    assert_eq!(fs.hierarchy, Hierarchy::V2);
    let cg = format!("/{name}");
    let a = fs
        .cpu_ns(&cg)
        .expect("cpu.stat")
        .expect("the cgroup exists");
    std::thread::sleep(Duration::from_millis(1500));
    let b = fs
        .cpu_ns(&cg)
        .expect("cpu.stat")
        .expect("the cgroup exists");
    let controllers = std::fs::read_to_string(Path::new(mount).join("cgroup.subtree_control"))
        .unwrap_or_default();
    let memory = fs.memory(&cg);
    let _ = busy.kill();
    let _ = busy.wait();
    let _ = std::fs::remove_dir(&dir);
    assert!(
        b > a + 100_000_000,
        "a busy loop used {} ns in 1.5 s",
        b.saturating_sub(a)
    );
    match memory {
        Ok(Some(m)) => assert!(m.usage > 0 && m.working_set <= m.usage, "{m:?}"),
        // A hybrid host's unified hierarchy has no memory controller: no memory figures.
        Ok(None) => assert!(
            !controllers.contains("memory"),
            "memory enabled but not read"
        ),
        Err(e) => panic!("{e}"),
    }
}

/// The disk `path` is on: its mount's device from mountinfo (the longest prefix), or that
/// partition's disk (blkio throttles and counts whole disks).
fn device_of(path: &Path) -> (u32, u32) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dev = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = f.get(2)?.split_once(':')?;
            Some((*f.get(4)?, (a.parse().ok()?, b.parse().ok()?)))
        })
        .filter(|(m, _)| path.starts_with(m))
        .max_by_key(|(m, _)| m.len())
        .map(|(_, d)| d)
        .expect("the mount of the path");
    let sys = Path::new("/sys/dev/block").join(format!("{}:{}", dev.0, dev.1));
    if !sys.join("partition").exists() {
        return dev;
    }
    let disk = std::fs::canonicalize(&sys).expect("the partition's sysfs dir");
    let text = std::fs::read_to_string(disk.parent().expect("its disk").join("dev"))
        .expect("the disk's dev");
    let (a, b) = text.trim().split_once(':').expect("major:minor");
    (a.parse().expect("major"), b.parse().expect("minor"))
}

/// On v1, recent kernels account a cgroup's I/O only where a throttle is set (so the kubelet's
/// cAdvisor reports none for pods here): a cgroup with a (never reached) 1 TiB/s throttle on
/// `/var/tmp`'s disk, where `dd` writes and reads 8 MiB with O_DIRECT. The reader gives those
/// bytes and I/Os per operation, and the disk's cAdvisor name.
#[test]
fn the_v1_block_io_reader_on_the_real_blkio_controller() {
    if !root() {
        return;
    }
    let mount = Path::new("/sys/fs/cgroup");
    let ctl = mount.join("blkio");
    assert!(ctl.is_dir(), "no v1 blkio controller on this machine");
    let tmp = Path::new("/var/tmp");
    let (major, minor) = device_of(tmp);
    let name = format!("tinylet-blkio-test-{}", std::process::id());
    let dir = ctl.join(&name);
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    let file = tmp.join(&name);
    let limit = format!("{major}:{minor} 1099511627776");
    let setup = [
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
    ]
    .iter()
    .try_for_each(|f| std::fs::write(dir.join(f), &limit));
    let script = format!(
        "echo $$ > {procs} && dd if=/dev/zero of={f} bs=1M count=8 oflag=direct 2>/dev/null && \
         dd if={f} of=/dev/null bs=1M iflag=direct 2>/dev/null",
        procs = dir.join("cgroup.procs").display(),
        f = file.display()
    );
    let ran = setup.map_err(|e| e.to_string()).and_then(|()| {
        std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .map_err(|e| e.to_string())
    });
    let io = CgroupFs::at(mount).io(&format!("/{name}"));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&dir);
    assert!(ran.as_ref().is_ok_and(|s| s.success()), "{ran:?}");
    let io = io.expect("blkio files");
    let disk = io
        .iter()
        .find(|d| (d.major, d.minor) == (major, minor))
        .unwrap_or_else(|| panic!("no {major}:{minor} in {io:?}"));
    // The 8 MiB each way, and what else the shell's processes read (a page of a binary).
    let (read, write) = (
        DeviceIo::get(&disk.bytes, Op::Read),
        DeviceIo::get(&disk.bytes, Op::Write),
    );
    let dd = (8 << 20)..(9 << 20);
    assert!(dd.contains(&read) && dd.contains(&write), "{disk:?}");
    assert!(DeviceIo::get(&disk.ios, Op::Write) >= 8, "{disk:?}");
    assert_eq!(
        DeviceIo::get(&disk.bytes, Op::Total),
        read + write,
        "{disk:?}"
    );
    let names = blkio::device_names(Path::new("/sys"));
    let named = blkio::name_of(&names, major, minor);
    assert!(
        named.starts_with("/dev/") && Path::new(named).exists(),
        "{named:?}"
    );
}
