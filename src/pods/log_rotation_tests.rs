//! Unit tests of log rotation: the plan over file names, and passes over the fake runtime
//! with real files (rename, reopen, gzip, the file limit, an undone rename).

use super::*;
use crate::pods::fake::FakeCri;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_plan_tidies_limits_and_compresses() {
    let rows: Vec<(Vec<&str>, usize, Plan)> = vec![
        // The first rotation: nothing before it.
        (vec!["0.log"], 5, Plan::default()),
        // The newest rotated file is still plain: compressed now.
        (
            vec!["0.log", "0.log.20261204-010000"],
            5,
            Plan {
                remove: vec![],
                compress: names(&["0.log.20261204-010000"]),
            },
        ),
        // A left-over temporary and a plain file whose .gz is there go; another log's files
        // are not this one's.
        (
            vec![
                "0.log",
                "0.log.20261204-010000.gz",
                "0.log.20261204-010000",
                "0.log.20261204-010100.gz.tmp",
                "1.log.20261204-010000",
            ],
            5,
            Plan {
                remove: names(&["0.log.20261204-010000", "0.log.20261204-010100.gz.tmp"]),
                compress: vec![],
            },
        ),
        // maxFiles 3: the live log, the one rotated now and one more; the oldest go first.
        (
            vec![
                "0.log",
                "0.log.20261204-010300",
                "0.log.20261204-010100.gz",
                "0.log.20261204-010200.gz",
            ],
            3,
            Plan {
                remove: names(&["0.log.20261204-010100.gz", "0.log.20261204-010200.gz"]),
                compress: names(&["0.log.20261204-010300"]),
            },
        ),
        // maxFiles 2: no rotated file is kept beyond the one rotated now.
        (
            vec!["0.log", "0.log.20261204-010000.gz"],
            2,
            Plan {
                remove: names(&["0.log.20261204-010000.gz"]),
                compress: vec![],
            },
        ),
    ];
    for (i, (files, max, want)) in rows.into_iter().enumerate() {
        assert_eq!(plan("0.log", &names(&files), max), want, "row {i}");
    }
}

#[test]
fn rotated_names_carry_the_utc_time() {
    let t = UNIX_EPOCH + Duration::from_secs(1_796_346_245);
    assert_eq!(rotated_name("0.log", t), "0.log.20261204-010405");
}

/// A running container of the fake runtime whose log lives in `dir`/c/0.log.
fn container(cri: &FakeCri, dir: &Path) -> (String, PathBuf) {
    let sb = cri
        .run_pod_sandbox(&RunPodSandboxRequest {
            config: Some(PodSandboxConfig {
                log_directory: dir.display().to_string(),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .pod_sandbox_id;
    let id = cri
        .create_container(&CreateContainerRequest {
            pod_sandbox_id: sb,
            config: Some(ContainerConfig {
                log_path: "c/0.log".into(),
                ..Default::default()
            }),
            sandbox_config: None,
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .container_id;
    cri.start_container(&StartContainerRequest {
        container_id: id.clone(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.join("c")).unwrap_or_else(|e| panic!("{e}"));
    (id, dir.join("c/0.log"))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn passes_rotate_compress_and_keep_at_most_max_files() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cri = FakeCri::default();
    let (_, log) = container(&cri, d.path());
    let policy = Policy {
        max_size: 1000,
        max_files: 3,
        every: Duration::from_secs(10),
    };
    let line = "2026-12-04T01:00:00.000000000Z stdout F 0123456789\n";
    // Below the limit: left alone.
    std::fs::write(&log, line).unwrap_or_else(|e| panic!("{e}"));
    pass(&cri, &policy);
    assert_eq!(listing(&log.with_file_name("")), ["0.log"]);
    assert_eq!(cri.count("ReopenContainerLog"), 0);
    // Past it, four times (each in a second of its own, as rotations are named by the second).
    let t0 = SystemTime::now();
    for round in 0..4u64 {
        std::fs::write(&log, line.repeat(30)).unwrap_or_else(|e| panic!("{e}"));
        // Through the pass for the first, then at chosen times (the reopen stood in for).
        if round == 0 {
            pass(&cri, &policy);
        } else {
            rotate(&log, 3, t0 + Duration::from_secs(round * 60), &|| {
                std::fs::write(&log, "").map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let files = listing(&log.with_file_name(""));
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[0], "0.log");
    assert!(
        files[1].ends_with(".gz") && !files[2].ends_with(".gz"),
        "{files:?}"
    );
    assert_eq!(cri.count("ReopenContainerLog"), 1);
    // The compressed file holds the log as it was.
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(log.with_file_name(&files[1])).unwrap_or_else(|e| panic!("{e}")),
    )
    .read_to_string(&mut text)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text, line.repeat(30));
}

#[test]
fn a_failed_reopen_undoes_the_rename_and_a_gone_log_is_reopened() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = d.path().join("0.log");
    std::fs::write(&log, "x".repeat(2000)).unwrap_or_else(|e| panic!("{e}"));
    let e = rotate(&log, 5, SystemTime::now(), &|| {
        Err("the runtime said no".into())
    })
    .err()
    .unwrap_or_default();
    assert_eq!(e, "the runtime said no");
    assert_eq!(listing(d.path()), ["0.log"]);
    assert_eq!(std::fs::metadata(&log).map(|m| m.len()).ok(), Some(2000));

    let cri = FakeCri::default();
    let (_, log) = container(&cri, d.path());
    assert!(!log.exists());
    pass(
        &cri,
        &Policy {
            max_size: 1000,
            max_files: 5,
            every: Duration::from_secs(10),
        },
    );
    assert_eq!(cri.count("ReopenContainerLog"), 1);
    assert!(log.exists(), "reopened");
}

/// The CRC-32 of gzip (RFC 1952's check value), and a gzip file any decoder reads back.
#[test]
fn the_gzip_is_standard() {
    assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
    assert_eq!(crc32(crc32(0, b"12345"), b"6789"), 0xcbf4_3926);
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = d.path().join("0.log.20261204-010000");
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&f, &text).unwrap_or_else(|e| panic!("{e}"));
    gzip(&f).unwrap_or_else(|e| panic!("{e}"));
    assert!(!f.exists());
    let gz = d.path().join("0.log.20261204-010000.gz");
    let mut back = String::new();
    // flate2's decoder checks the CRC and the length.
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap_or_else(|e| panic!("{e}")))
        .read_to_string(&mut back)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, text);
    let out = std::process::Command::new("gzip")
        .args(["-t", &gz.display().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("gzip: {e}"));
    assert!(out.success(), "gzip -t");
}
