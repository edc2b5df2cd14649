//! One cgroup's block I/O per device, as runc's readers hand it to cAdvisor: on v1 the first
//! `blkio` pair of files that has entries (BFQ, CFQ, the throttle files recursive, then not),
//! on v2 `io.stat`; and the device names cAdvisor gives them (`/dev/<name>` from `/sys/block`).
//! Parsing is pure, on the files' text.

use std::path::Path;

use super::cgroup::{CgroupFs, Hierarchy, StatsError, read};

/// The operations of a blkio line, in the kernel's order (v2 has Read and Write only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Sync,
    Async,
    Discard,
    Total,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Read,
        Op::Write,
        Op::Sync,
        Op::Async,
        Op::Discard,
        Op::Total,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "Read",
            Op::Write => "Write",
            Op::Sync => "Sync",
            Op::Async => "Async",
            Op::Discard => "Discard",
            Op::Total => "Total",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// One device's counters per operation (None: the file had no such line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceIo {
    pub major: u32,
    pub minor: u32,
    /// Bytes (`io_service_bytes`; v2 `rbytes`, `wbytes`).
    pub bytes: [Option<u64>; 6],
    /// Completed I/Os (`io_serviced`; v2 `rios`, `wios`).
    pub ios: [Option<u64>; 6],
}

impl DeviceIo {
    /// A figure cAdvisor reads from its per-device map: 0 when absent.
    pub fn get(counts: &[Option<u64>; 6], op: Op) -> u64 {
        counts[op as usize].unwrap_or(0)
    }
}

fn device(devices: &mut Vec<DeviceIo>, major: u32, minor: u32) -> &mut DeviceIo {
    let at = match devices
        .iter()
        .position(|d| (d.major, d.minor) == (major, minor))
    {
        Some(i) => i,
        None => {
            devices.push(DeviceIo {
                major,
                minor,
                ..DeviceIo::default()
            });
            devices.len() - 1
        }
    };
    &mut devices[at]
}

fn bad(path: &Path, line: &str) -> StatsError {
    StatsError::Parse {
        path: path.to_path_buf(),
        what: format!("not a blkio line: {line:?}"),
    }
}

fn major_minor(path: &Path, line: &str, field: &str) -> Result<(u32, u32), StatsError> {
    let (a, b) = field.split_once(':').ok_or_else(|| bad(path, line))?;
    match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        _ => Err(bad(path, line)),
    }
}

/// A v1 blkio file (`8:0 Read 4096` lines and a last `Total 4096`) into `devices`, the
/// bytes or the I/Os; whether it had a device line (runc moves on to the next files if not).
/// An operation the kernel may add later is skipped.
pub fn parse_v1(
    path: &Path,
    text: &str,
    bytes: bool,
    devices: &mut Vec<DeviceIo>,
) -> Result<bool, StatsError> {
    let mut any = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Total", _] => {}
            [dev, op, value] => {
                let (major, minor) = major_minor(path, line, dev)?;
                let value: u64 = value.parse().map_err(|_| bad(path, line))?;
                any = true;
                if let Some(op) = Op::parse(op) {
                    let d = device(devices, major, minor);
                    let counts = if bytes { &mut d.bytes } else { &mut d.ios };
                    counts[op as usize] = Some(value);
                }
            }
            _ => return Err(bad(path, line)),
        }
    }
    Ok(any)
}

/// A v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`): the keys runc maps
/// to v1's tables; the others skipped, as runc does.
pub fn parse_v2(path: &Path, text: &str) -> Result<Vec<DeviceIo>, StatsError> {
    let mut devices = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let dev = f.next().ok_or_else(|| bad(path, line))?;
        let (major, minor) = major_minor(path, line, dev)?;
        let d = device(&mut devices, major, minor);
        for kv in f {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad(path, line))?;
            let v: u64 = v.parse().map_err(|_| bad(path, line))?;
            match k {
                "rbytes" => d.bytes[Op::Read as usize] = Some(v),
                "wbytes" => d.bytes[Op::Write as usize] = Some(v),
                "rios" => d.ios[Op::Read as usize] = Some(v),
                "wios" => d.ios[Op::Write as usize] = Some(v),
                _ => {}
            }
        }
    }
    Ok(devices)
}

/// runc's v1 order: (I/Os file, bytes file) of BFQ, CFQ, throttle recursive, throttle.
const V1_FILES: [(&str, &str); 4] = [
    (
        "blkio.bfq.io_serviced_recursive",
        "blkio.bfq.io_service_bytes_recursive",
    ),
    (
        "blkio.io_serviced_recursive",
        "blkio.io_service_bytes_recursive",
    ),
    (
        "blkio.throttle.io_serviced_recursive",
        "blkio.throttle.io_service_bytes_recursive",
    ),
    (
        "blkio.throttle.io_serviced",
        "blkio.throttle.io_service_bytes",
    ),
];

impl CgroupFs {
    /// The cgroup's I/O per device, sorted by device number; empty when it does not exist or
    /// nothing was accounted (v1 accounts only where a throttle is set, on recent kernels).
    pub fn io(&self, cgroup: &str) -> Result<Vec<DeviceIo>, StatsError> {
        let mut devices = Vec::new();
        match self.hierarchy {
            Hierarchy::V1 => {
                let dir = self.dir("blkio", cgroup);
                for (ios, bytes) in V1_FILES {
                    let path = dir.join(ios);
                    let Some(text) = read(&path)? else { continue };
                    if !parse_v1(&path, &text, false, &mut devices)? {
                        continue;
                    }
                    let path = dir.join(bytes);
                    let text = read(&path)?.unwrap_or_default();
                    parse_v1(&path, &text, true, &mut devices)?;
                    break;
                }
            }
            Hierarchy::V2 => {
                let path = self.dir("", cgroup).join("io.stat");
                if let Some(text) = read(&path)? {
                    devices = parse_v2(&path, &text)?;
                }
            }
        }
        devices.sort_by_key(|d| (d.major, d.minor));
        Ok(devices)
    }
}

/// The block devices by number, named as cAdvisor names them (`/dev/vda`), from
/// `<sys>/block/*/dev`; loop, ram and sr devices left out, as cAdvisor does.
pub fn device_names(sys: &Path) -> Vec<((u32, u32), String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(sys.join("block")).into_iter().flatten() {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "sr"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let Ok(dev) = std::fs::read_to_string(e.path().join("dev")) else {
            continue;
        };
        let path = e.path();
        if let Ok(mm) = major_minor(&path, &dev, dev.trim()) {
            out.push((mm, format!("/dev/{name}")));
        }
    }
    out.sort();
    out
}

/// The name of device `major:minor`, or "" (cAdvisor's when it does not know it).
pub fn name_of(names: &[((u32, u32), String)], major: u32, minor: u32) -> &str {
    names
        .iter()
        .find(|(mm, _)| *mm == (major, minor))
        .map_or("", |(_, n)| n.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::tests::tree;
    use super::*;

    /// Captured on this project's machine (kernel 6.18, cgroup v1, mq-deadline): a cgroup
    /// with a read and a write throttle set, after 8 MiB written and read with O_DIRECT.
    const V1_BYTES: &str = "254:0 Read 8388608\n254:0 Write 8388608\n254:0 Sync 16777216\n\
        254:0 Async 0\n254:0 Discard 0\n254:0 Total 16777216\nTotal 16777216\n";
    const V1_IOS: &str = "254:0 Read 16\n254:0 Write 16\n254:0 Sync 32\n254:0 Async 0\n\
        254:0 Discard 0\n254:0 Total 32\nTotal 32\n";

    #[test]
    fn v1_takes_the_first_files_with_entries() {
        // BFQ's files are there (the scheduler is built in) but empty, as on this machine.
        let d = tree(&[
            ("blkio/k/p/blkio.bfq.io_serviced_recursive", "Total 0\n"),
            (
                "blkio/k/p/blkio.bfq.io_service_bytes_recursive",
                "Total 0\n",
            ),
            ("blkio/k/p/blkio.throttle.io_serviced_recursive", V1_IOS),
            (
                "blkio/k/p/blkio.throttle.io_service_bytes_recursive",
                V1_BYTES,
            ),
            ("blkio/k/p/blkio.throttle.io_serviced", "8:0 Read 1\n"),
            (
                "blkio/k/q/blkio.throttle.io_serviced_recursive",
                "Total 0\n",
            ),
        ]);
        let fs = CgroupFs::at(d.path());
        let io = fs.io("/k/p").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(io.len(), 1, "{io:?}");
        let dev = io[0];
        assert_eq!((dev.major, dev.minor), (254, 0));
        assert_eq!(DeviceIo::get(&dev.bytes, Op::Read), 8 << 20);
        assert_eq!(DeviceIo::get(&dev.bytes, Op::Total), 16 << 20);
        assert_eq!(DeviceIo::get(&dev.ios, Op::Write), 16);
        assert_eq!(dev.ios[Op::Discard as usize], Some(0));
        assert!(
            fs.io("/k/q").is_ok_and(|v| v.is_empty()),
            "nothing accounted"
        );
        assert!(fs.io("/gone").is_ok_and(|v| v.is_empty()));
    }

    #[test]
    fn v2_io_stat_maps_as_runc() {
        let d = tree(&[
            ("cgroup.controllers", "cpu io memory\n"),
            (
                "k/p/io.stat",
                "259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n\
                 8:0 rbytes=10 wbytes=20 rios=30 wios=40 dbytes=0 dios=0 cost.usage=7\n",
            ),
        ]);
        let io = CgroupFs::at(d.path())
            .io("/k/p")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            io.iter().map(|d| (d.major, d.minor)).collect::<Vec<_>>(),
            [(8, 0), (259, 0)]
        );
        assert_eq!(io[1].bytes[..2], [Some(1), Some(2)]);
        assert_eq!(io[1].ios[..2], [Some(3), Some(4)]);
        assert_eq!(io[0].bytes[Op::Discard as usize], None, "not mapped");
    }

    #[test]
    fn bad_lines_name_the_file() {
        let mut v = Vec::new();
        let p = Path::new("/x/blkio.throttle.io_serviced");
        for text in ["8:0 Read lots\n", "8-0 Read 1\n", "8:0 Read\n", "what\n"] {
            let e = parse_v1(p, text, false, &mut v)
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.starts_with("/x/blkio.throttle.io_serviced: not a blkio")),
                "{text:?}: {e:?}"
            );
        }
        let e = parse_v2(Path::new("/y/io.stat"), "8:0 rbytes\n").err();
        assert!(e.is_some_and(|e| e.to_string().starts_with("/y/io.stat: ")));
        assert!(parse_v1(p, "8:0 Frobnicate 1\n", true, &mut v).is_ok_and(|any| any));
    }

    #[test]
    fn devices_are_named_from_sys_block() {
        let d = tree(&[
            ("block/vda/dev", "254:0\n"),
            ("block/loop0/dev", "7:0\n"),
            ("block/nvme0n1/dev", "259:0\n"),
            ("block/zram0/dev", "253:0\n"),
        ]);
        let names = device_names(d.path());
        assert_eq!(name_of(&names, 254, 0), "/dev/vda");
        assert_eq!(name_of(&names, 259, 0), "/dev/nvme0n1");
        assert_eq!(name_of(&names, 7, 0), "", "loop devices are left out");
        assert_eq!(names.len(), 3);
    }
}
