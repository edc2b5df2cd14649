//! `/metrics/cadvisor`'s block I/O on a fixture host: a container's counters per device and
//! operation (v1 throttle files), the root's filesystems from mountinfo, statfs and diskstats,
//! and no I/O family at all where nothing was accounted.

use super::tests::{at, pod, proc_files, tree};
use super::*;

/// This machine's files (see blkio.rs and mounts.rs): 8 MiB written and read with O_DIRECT.
const BYTES: &str = "254:0 Read 8388608\n254:0 Write 8388608\n254:0 Sync 16777216\n\
    254:0 Async 0\n254:0 Discard 0\n254:0 Total 16777216\nTotal 16777216\n";
const IOS: &str = "254:0 Read 16\n254:0 Write 16\n254:0 Sync 32\n254:0 Async 0\n\
    254:0 Discard 0\n254:0 Total 32\nTotal 32\n";
const DISKSTATS: &str = " 254       0 vda 54695 7766 3230770 19156 21522 70678 8021720 48397 0 11988 68637 7232 1 960888 967 1997 116\n";

fn host(with_io: bool) -> (tempfile::TempDir, Collector) {
    let mut files = proc_files("0::/\n");
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    let pd = "kubepods/besteffort/podu1";
    files.extend([
        cg("cpuacct/cpuacct.usage", "9000000000\n"),
        cg("memory/memory.usage_in_bytes", "4096\n"),
        cg(&format!("cpuacct/{pd}/c1/cpuacct.usage"), "5000\n"),
        cg(&format!("memory/{pd}/c1/memory.usage_in_bytes"), "100\n"),
        ("sys/block/vda/dev".into(), "254:0\n".into()),
        ("sys/block/loop0/dev".into(), "7:0\n".into()),
        ("proc/diskstats".into(), DISKSTATS.into()),
    ]);
    if with_io {
        let dir = format!("blkio/{pd}/c1");
        files.extend([
            cg(
                &format!("{dir}/blkio.bfq.io_serviced_recursive"),
                "Total 0\n",
            ),
            cg(&format!("{dir}/blkio.throttle.io_serviced_recursive"), IOS),
            cg(
                &format!("{dir}/blkio.throttle.io_service_bytes_recursive"),
                BYTES,
            ),
            cg("blkio/blkio.throttle.io_serviced_recursive", "Total 0\n"),
        ]);
    }
    let (d, roots) = tree(&files);
    // The root filesystem is the fixture's own directory (something statfs can answer for).
    let root = d.path().join("fs");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    let mounts = if with_io {
        format!(
            "22 1 254:0 / {} rw - ext4 /dev/vda rw\n23 22 0:5 / /proc rw - proc proc rw\n",
            root.display()
        )
    } else {
        String::new()
    };
    std::fs::write(roots.proc_.join("self/mountinfo"), mounts).unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    (d, c)
}

#[test]
fn block_io_of_a_container_and_of_the_roots_filesystems() {
    let (d, c) = host(true);
    let text = c
        .cadvisor(&[pod()], at(1_796_173_210))
        .unwrap_or_else(|e| panic!("{e}"));
    let ms = 1_796_173_210_000u64;
    let ctr = |extra: &str| {
        format!(
            "container=\"app\",device=\"/dev/vda\",id=\"/kubepods/besteffort/podu1/c1\",image=\"\",{extra}name=\"c1\",namespace=\"default\""
        )
    };
    let root =
        "container=\"\",device=\"/dev/vda\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"";
    let fs = crate::node::host::fs_stats(&d.path().join("fs")).unwrap_or_else(|e| panic!("{e}"));
    for line in [
        "# HELP container_blkio_device_usage_total Blkio Device bytes usage".to_string(),
        "# TYPE container_blkio_device_usage_total counter".into(),
        format!(
            "container_blkio_device_usage_total{{{},operation=\"Read\",pod=\"web\"}} 8388608 {ms}",
            ctr("major=\"254\",minor=\"0\",")
        ),
        format!(
            "container_blkio_device_usage_total{{{},operation=\"Total\",pod=\"web\"}} 16777216 {ms}",
            ctr("major=\"254\",minor=\"0\",")
        ),
        "# HELP container_fs_writes_bytes_total Cumulative count of bytes written".into(),
        format!(
            "container_fs_writes_bytes_total{{{},pod=\"web\"}} 8388608 {ms}",
            ctr("")
        ),
        format!(
            "container_fs_reads_total{{{},pod=\"web\"}} 16 {ms}",
            ctr("")
        ),
        // The root: its filesystem's figures (v1 accounts nothing at the root).
        format!("container_fs_reads_total{{{root}}} 54695 {ms}"),
        format!("container_fs_writes_merged_total{{{root}}} 70678 {ms}"),
        format!("container_fs_io_time_seconds_total{{{root}}} 0.000011988 {ms}"),
        "# TYPE container_fs_io_current gauge".into(),
        "# TYPE container_fs_inodes_total gauge".into(),
        format!(
            "container_fs_limit_bytes{{{root}}} {} {ms}",
            fs.capacity_bytes
        ),
        format!("container_fs_inodes_total{{{root}}} {} {ms}", fs.inodes),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    for absent in [
        "container_fs_reads_bytes_total{container=\"\",device=\"/dev/vda\",id=\"/\"",
        "device=\"/proc\"",
        "/dev/loop0",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    let usage = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("container_fs_usage_bytes{{{root}}} ")))
        .and_then(|v| v.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no root usage in\n{text}"));
    assert!(usage > 0 && usage <= fs.capacity_bytes, "{usage}");
}

#[test]
fn no_block_io_family_without_series() {
    let (_d, c) = host(false);
    let text = c
        .cadvisor(&[pod()], at(1_796_173_210))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !text.contains("container_fs_") && !text.contains("blkio"),
        "{text}"
    );
}
