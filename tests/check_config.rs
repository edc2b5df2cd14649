//! `tinylet check-config` against the seed deployment's files and against broken ones.

mod common;

use std::path::Path;

use common::*;

/// The seed unit's flags, pointed at `dir` instead of /etc/kubernetes and ${K8S_DIR}.
fn seed_flags(dir: &Path) -> Vec<String> {
    let unit = read(&repo().join("tests/fixtures/seed/kubelet.service.template"));
    unit_flags(&unit)
        .into_iter()
        .map(|f| {
            f.replace("/etc/kubernetes/", &format!("{}/", dir.display()))
                .replace("${K8S_DIR}", &dir.join("k8s").display().to_string())
                .replace("##NODE_NAME##", "zhangjun-k8s-01")
        })
        .collect()
}

/// A temp dir holding the seed's config (kubeAPIOPS fixed or not) and a kubectl-written
/// bootstrap kubeconfig, as /etc/kubernetes holds them on a seed node.
fn seed_node(fix_typo: bool) -> common::TempDir {
    let dir = tempdir();
    let mut cfg = seed_config();
    if fix_typo {
        cfg = cfg.replace("kubeAPIOPS", "kubeAPIQPS");
    }
    write(&dir.path().join("kubelet-config.yaml"), &cfg);
    let ca = make_ca(dir.path());
    kubectl_bootstrap_kubeconfig(
        &dir.path().join("kubelet-bootstrap.kubeconfig"),
        &ca,
        "https://172.27.138.251:6443",
        "2sb8wy.euialqfpxfbcljby",
    );
    dir
}

fn check_config(flags: &[String]) -> std::process::Output {
    let mut args = vec!["check-config".to_string()];
    args.extend(flags.iter().cloned());
    run(std::process::Command::new(bin()).args(&args))
}

#[test]
fn seed_template_with_seed_unit_flags_passes() {
    let dir = seed_node(true);
    let out = check_config(&seed_flags(dir.path()));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr:\n{stderr}");
    // The effective config carries the seed's values and upstream defaults for the rest.
    for want in [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        "address: 127.0.0.1",
        "kubeAPIQPS: 1000",
        "kubeAPIBurst: 2000",
        "maxPods: 220",
        "podPidsLimit: -1",
        "runtimeRequestTimeout: 10m0s",
        "nodeStatusReportFrequency: 1m0s",
        "containerLogMaxSize: 20Mi",
        "  memory.available: 100Mi",
        "  nodefs.available: 10%",
        "    clientCAFile: /etc/kubernetes/cert/ca.pem",
        // Defaults the seed does not set.
        "nodeLeaseDurationSeconds: 40",
        "streamingConnectionIdleTimeout: 4h0m0s",
        "    cacheTTL: 2m0s",
        "    cacheAuthorizedTTL: 5m0s",
        // Flags override the file.
        "containerRuntimeEndpoint: unix:///var/run/containerd/containerd.sock",
        "  verbosity: 2",
        "# node name: zhangjun-k8s-01",
        "# api server: https://172.27.138.251:6443 (from ",
    ] {
        assert!(
            stdout.lines().any(|l| l == want
                || (want.ends_with(' ') || want.starts_with('#')) && l.starts_with(want)),
            "missing {want:?} in:\n{stdout}"
        );
    }
    // One warning per removed flag of the seed unit, naming the replacement.
    for flag in [
        "network-plugin=cni",
        "cni-conf-dir=/etc/cni/net.d",
        "container-runtime=remote",
        "image-pull-progress-deadline=15m",
        "logtostderr=true",
    ] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&format!("--{flag} is not supported")))
            .collect();
        assert_eq!(lines.len(), 1, "{flag}: {stderr}");
    }
    assert!(stderr.contains("--container-runtime=remote is not supported: removed in Kubernetes 1.27; every runtime is remote now: use --container-runtime-endpoint"));
}

#[test]
fn effective_config_loads_back_unchanged() {
    let dir = seed_node(true);
    let flags = seed_flags(dir.path());
    let first = check_config(&flags);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let effective = dir.path().join("effective.yaml");
    write(&effective, &text(&first.stdout));
    let again: Vec<String> = flags
        .iter()
        .map(|f| {
            if f.starts_with("--config=") {
                format!("--config={}", effective.display())
            } else {
                f.clone()
            }
        })
        .collect();
    let second = check_config(&again);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&first.stdout), text(&second.stdout));
}

#[test]
fn unknown_field_is_an_error_naming_file_line_and_field() {
    let dir = seed_node(false);
    let cfg = dir.path().join("kubelet-config.yaml");
    let line = line_of(&read(&cfg), "kubeAPIOPS");
    let out = check_config(&seed_flags(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let want = format!(
        "{}:{line}: kubeAPIOPS: unknown field (did you mean \"kubeAPIQPS\"?)",
        cfg.display()
    );
    assert!(
        stderr.lines().any(|l| l.trim() == want),
        "want {want:?} in:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is printed as effective config on error"
    );
}

#[test]
fn every_bad_value_is_reported_with_its_line() {
    let dir = tempdir();
    let cfg_path = dir.path().join("kubelet.yaml");
    let cfg = seed_config()
        .replace("kubeAPIOPS", "kubeAPIQPS")
        .replace("memory.available: \"100Mi\"", "memory.available: \"100MB\"")
        .replace("syncFrequency: 1m", "syncFrequency: 1minute")
        .replace("maxPods: 220", "maxPods: many")
        .replace("port: 10250", "port: 70000")
        .replace("cgroupDriver: cgroupfs", "cgroupDriver: cgroupz")
        .replace(
            "  webhook:\n    enabled: true",
            "  webhook:\n    enabled: true\n    cacheTTl: 2m",
        );
    write(&cfg_path, &cfg);
    let out = tinylet(&[
        "check-config",
        &format!("--config={}", cfg_path.display()),
        "--hostname-override=n1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let file = cfg_path.display().to_string();
    for (prefix, field, msg) in [
        (
            "  memory.available",
            "evictionHard.memory.available",
            "invalid quantity \"100MB\"",
        ),
        (
            "syncFrequency",
            "syncFrequency",
            "invalid duration \"1minute\"",
        ),
        ("maxPods", "maxPods", "invalid type: string \"many\""),
        ("port:", "port", "invalid value: integer `70000`"),
        ("cgroupDriver", "cgroupDriver", "unknown variant `cgroupz`"),
        (
            "    cacheTTl",
            "authentication.webhook.cacheTTl",
            "unknown field (did you mean \"cacheTTL\"?)",
        ),
    ] {
        let want = format!("{file}:{}: {field}: {msg}", line_of(&cfg, prefix));
        assert!(
            stderr.lines().any(|l| l.trim().starts_with(&want)),
            "want {want:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.starts_with("tinylet: invalid configuration (6 problems):"),
        "{stderr}"
    );
}

#[test]
fn cross_field_rules_are_checked() {
    let dir = tempdir();
    let cfg_path = dir.path().join("kubelet.yaml");
    let cfg = seed_config()
        .replace("kubeAPIOPS", "kubeAPIQPS")
        .replace(
            "imageGCLowThresholdPercent: 80",
            "imageGCLowThresholdPercent: 90",
        )
        .replace(
            "evictionSoft: {}",
            "evictionSoft:\n  memory.available: 200Mi",
        )
        .replace(
            "containerLogMaxFiles: 10",
            "containerLogMaxFiles: 1\ncontainerLogMonitorInterval: 2s",
        );
    write(&cfg_path, &cfg);
    let out = tinylet(&[
        "check-config",
        &format!("--config={}", cfg_path.display()),
        "--hostname-override=n1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let file = cfg_path.display();
    for want in [
        format!(
            "{file}:{}: imageGCLowThresholdPercent: 90 must be less than imageGCHighThresholdPercent (85)",
            line_of(&cfg, "imageGCLowThresholdPercent")
        ),
        format!(
            "{file}:{}: evictionSoft: grace period must be specified for the soft eviction threshold memory.available",
            line_of(&cfg, "evictionSoft")
        ),
        format!(
            "{file}:{}: containerLogMaxFiles: 1 must be greater than 1",
            line_of(&cfg, "containerLogMaxFiles")
        ),
        format!(
            "{file}:{}: containerLogMonitorInterval: must be a positive time duration greater than or equal to 3s",
            line_of(&cfg, "containerLogMonitorInterval")
        ),
    ] {
        assert!(
            stderr.lines().any(|l| l.trim() == want),
            "want {want:?} in:\n{stderr}"
        );
    }
}

#[test]
fn missing_files_and_bad_kubeconfigs_are_named() {
    let dir = tempdir();
    let missing = dir.path().join("nope.yaml");
    let out = tinylet(&[
        "check-config",
        &format!("--config={}", missing.display()),
        "--hostname-override=n1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "{}: cannot read the config file: No such file or directory",
            missing.display()
        )),
        "{}",
        text(&out.stderr)
    );

    let kc = dir.path().join("bootstrap.kubeconfig");
    write(&kc, "apiVersion: v1\nkind: Config\ncurrent-context: gone\n");
    let out = tinylet(&[
        "check-config",
        &format!("--bootstrap-kubeconfig={}", kc.display()),
        &format!("--kubeconfig={}/kubelet.kubeconfig", dir.path().display()),
        "--hostname-override=n1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("--bootstrap-kubeconfig: kubeconfig {}: context \"gone\" (current-context) is not defined", kc.display())), "{}", text(&out.stderr));

    let out = tinylet(&[
        "check-config",
        &format!("--kubeconfig={}/absent.kubeconfig", dir.path().display()),
        "--hostname-override=n1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not exist and no --bootstrap-kubeconfig was given"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_flags_exit_2_naming_each() {
    let out = tinylet(&[
        "check-config",
        "--no-such-flag",
        "--node-ip=1.2.3",
        "--register-with-taints=a=b:Never",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("flag --no-such-flag: unknown flag"),
        "{stderr}"
    );
    assert!(
        stderr.contains("flag --node-ip: \"1.2.3\" is not an IP address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("effect \"Never\" must be NoSchedule, PreferNoSchedule or NoExecute"),
        "{stderr}"
    );
}

#[test]
fn version_and_help() {
    let out = tinylet(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tinylet {} (Kubernetes v1.32.0)", env!("CARGO_PKG_VERSION"))
    );
    let out = tinylet(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for f in [
        "--config",
        "--bootstrap-kubeconfig",
        "--node-ip",
        "--register-with-taints",
        "--network-plugin",
    ] {
        assert!(help.contains(f), "{f} missing from --help");
    }
}
