//! Unit tests of image GC: the thresholds, the records and their order, and passes over the
//! fake runtime.

use super::*;
use crate::pods::fake::{FAKE_IMAGE_SIZE, FAKE_PAUSE, FakeCri};

const MIN: u64 = 60_000;

fn policy(high: u32, low: u32, min_age_s: u64, max_age_s: u64) -> Policy {
    Policy {
        high_percent: high,
        low_percent: low,
        min_age: Duration::from_secs(min_age_s),
        max_age: Duration::from_secs(max_age_s),
    }
}

fn image(id: &str, size: u64, pinned: bool) -> Image {
    Image {
        id: id.into(),
        repo_tags: vec![format!("{id}:tag")],
        size,
        pinned,
        ..Default::default()
    }
}

fn set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn thresholds_as_the_kubelets() {
    let p = policy(85, 80, 120, 0);
    // (capacity, available, to free)
    for (cap, avail, want) in [
        (1000, 500, None),
        (1000, 161, None),
        // The percent in integers, as the kubelet's: 84.9% used counts as 85%.
        (1000, 151, Some(49)),
        // 85% used: down to 80% used, 200 available.
        (1000, 150, Some(50)),
        (1000, 0, Some(200)),
        // Available past capacity counts as capacity.
        (1000, 5000, None),
    ] {
        assert_eq!(p.to_free(cap, avail), want, "{cap} {avail}");
    }
    // No overflow on large filesystems.
    assert_eq!(
        p.to_free(u64::MAX / 2, 0),
        Some((u128::from(u64::MAX / 2) * 20 / 100) as u64)
    );
    assert!(p.enabled());
    assert!(!policy(100, 80, 120, 0).enabled());
    assert!(policy(100, 80, 120, 3600).enabled());
}

#[test]
fn records_order_least_recently_used_first_and_skip_pinned_and_used() {
    let mut r = Records::new(0);
    let all = [
        image("a", 10, false),
        image("b", 10, false),
        image("c", 10, true),
        image("d", 10, false),
    ];
    // a used at first; b, c, d seen later; a unused since.
    r.detect(&all[..1], &set(&["a"]), MIN);
    r.detect(&all, &set(&["d"]), 2 * MIN);
    assert_eq!(r.eviction_order(&set(&["d"])), ["b", "a"]);
    r.detect(&all, &set(&[]), 3 * MIN);
    // d was used last: after b (never used) and a.
    assert_eq!(r.eviction_order(&set(&[])), ["b", "a", "d"]);
    // Gone from the runtime: forgotten.
    r.detect(&all[1..], &set(&[]), 4 * MIN);
    assert_eq!(r.eviction_order(&set(&[])), ["b", "d"]);

    // Minimum age from first seen; maximum age from last use, once the agent ran that long.
    let order = r.eviction_order(&set(&[]));
    let p = policy(85, 80, 150, 90);
    assert_eq!(r.for_space(&order, 4 * MIN + 29_000, &p), []);
    assert_eq!(
        r.for_space(&order, 4 * MIN + 30_000, &p),
        [("b".to_string(), 10), ("d".to_string(), 10)]
    );
    assert_eq!(r.too_old(&order, MIN, &p), Vec::<String>::new());
    // d was last used at 2 minutes, b never.
    assert_eq!(r.too_old(&order, 3 * MIN + 20_000, &p), ["b"]);
    assert_eq!(r.too_old(&order, 5 * MIN, &p), ["b", "d"]);
}

#[test]
fn in_use_by_id_tag_or_digest_and_by_sandboxes() {
    let mut digested = image("sha256:dd", 1, false);
    digested.repo_digests = vec!["r/d@sha256:1".into()];
    let images = [
        image("sha256:aa", 1, false),
        image("sha256:bb", 1, false),
        image("sha256:pp", 1, false),
        digested,
        image("sha256:free", 1, false),
    ];
    let containers = [
        Container {
            image_ref: "sha256:aa".into(),
            ..Default::default()
        },
        Container {
            image: Some(ImageSpec {
                image: "sha256:bb:tag".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Container {
            image_ref: "r/d@sha256:1".into(),
            ..Default::default()
        },
    ];
    let used = in_use(&images, &containers, &["sha256:pp:tag".into()]);
    assert_eq!(
        used,
        set(&["sha256:aa", "sha256:bb", "sha256:pp", "sha256:dd"])
    );
}

/// A fake runtime with `images`, one pod whose sandbox runs the pause image and whose
/// container runs `busybox`.
fn runtime(images: &[&str]) -> FakeCri {
    let cri = FakeCri::with_images(images);
    let sb = cri
        .run_pod_sandbox(&RunPodSandboxRequest::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .pod_sandbox_id;
    cri.create_container(&CreateContainerRequest {
        pod_sandbox_id: sb,
        config: Some(ContainerConfig {
            image: Some(ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        sandbox_config: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cri
}

#[test]
fn a_pass_frees_space_down_to_the_low_threshold() {
    let cri = runtime(&["busybox", FAKE_PAUSE, "old", "older", "new"]);
    let mut r = Records::new(0);
    // "new" is pulled after the first pass.
    cri.remove_image(&RemoveImageRequest {
        image: Some(ImageSpec {
            image: "new".into(),
            ..Default::default()
        }),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let full = |_: &str| Ok((1000 * FAKE_IMAGE_SIZE, 100 * FAKE_IMAGE_SIZE));
    let p = policy(85, 80, 120, 0);
    let sandboxes = [FAKE_PAUSE.to_string()];
    // First seen now: too young to go.
    let (rep, done) = pass(&mut r, &cri, &sandboxes, &full, &p, 0);
    assert!(rep.removed.is_empty());
    assert_eq!(
        done,
        Err(GcError::NotEnough {
            wanted: 100 * FAKE_IMAGE_SIZE,
            freed: 0
        })
    );
    cri.pull_image(&PullImageRequest {
        image: Some(ImageSpec {
            image: "new".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // 3 minutes on: "old" and "older" may go, "new" not yet; never busybox (a container's)
    // or the pause image (a sandbox's).
    let (rep, done) = pass(&mut r, &cri, &sandboxes, &full, &p, 3 * MIN);
    let removed: Vec<&str> = rep.removed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(removed, ["sha256:old", "sha256:older"]);
    assert!(rep.removed.iter().all(|(_, w)| *w == Why::Space));
    assert_eq!(rep.freed, 2 * FAKE_IMAGE_SIZE);
    assert!(matches!(done, Err(GcError::NotEnough { .. })));
    let left: Vec<String> = cri
        .list_images(&ListImagesRequest::default())
        .map(|l| l.images.into_iter().map(|i| i.id).collect())
        .unwrap_or_default();
    assert_eq!(
        left,
        [
            "sha256:busybox",
            &format!("sha256:{FAKE_PAUSE}"),
            "sha256:new"
        ]
    );
    // Below the high threshold nothing goes.
    let roomy = |_: &str| Ok((1000 * FAKE_IMAGE_SIZE, 900 * FAKE_IMAGE_SIZE));
    let (rep, done) = pass(&mut r, &cri, &sandboxes, &roomy, &p, 10 * MIN);
    assert_eq!((rep, done), (Report::default(), Ok(())));
    // A filesystem of no size is the kubelet's InvalidDiskCapacity.
    let (_, done) = pass(&mut r, &cri, &sandboxes, &|_| Ok((0, 0)), &p, 11 * MIN);
    assert_eq!(done, Err(GcError::InvalidCapacity));
}

#[test]
fn a_pass_removes_images_past_the_maximum_age() {
    let cri = runtime(&["busybox", FAKE_PAUSE, "stale"]);
    let mut r = Records::new(0);
    let roomy = |_: &str| Ok((1000, 900));
    let p = policy(100, 80, 0, 600);
    let sandboxes = [FAKE_PAUSE.to_string()];
    let (rep, done) = pass(&mut r, &cri, &sandboxes, &roomy, &p, 0);
    assert_eq!((rep, done), (Report::default(), Ok(())));
    // Not before the agent has run for the maximum age.
    let (rep, _) = pass(&mut r, &cri, &sandboxes, &roomy, &p, 10 * MIN);
    assert!(rep.removed.is_empty());
    let (rep, done) = pass(&mut r, &cri, &sandboxes, &roomy, &p, 11 * MIN);
    assert_eq!(rep.removed, [("sha256:stale".to_string(), Why::Age)]);
    assert_eq!(done, Ok(()));
    // high 100: no filesystem look at all.
    assert_eq!(cri.count("ImageFsInfo"), 0);
}
