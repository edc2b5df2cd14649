//! tinylet's effective configuration held to the upstream kubelet's own loader
//! (`target/upstream/bin/kubelet-config`: decoding and v1beta1 defaulting of k8s.io/kubernetes
//! v1.34) for the files real nodes carry: what `kubeadm` writes, the seed guide's, ours.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_yaml::Value;

/// Every leaf of a YAML document by its dotted path.
fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default();
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Go's `omitempty`: what upstream leaves out when it is the zero value.
fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::Tagged(_) => false,
    }
}

fn leaves(yaml: &str, what: &str) -> BTreeMap<String, Value> {
    let v: Value = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{what}: {e}\n{yaml}"));
    let mut out = BTreeMap::new();
    flatten(&v, "", &mut out);
    out
}

/// Where the two may differ, and why.
const KNOWN: &[(&str, &str)] = &[
    // A pointer upstream defaults to false; tinylet keeps it unset (false).
    (
        "mergeDefaultEvictionSettings",
        "unset in tinylet means false",
    ),
    // component-base's defaults for its json/text log back-ends; tinylet has one klog-format
    // writer and keeps `options` as written.
    (
        "logging.options.",
        "log back-end options tinylet has no back-ends for",
    ),
];

/// The same value: equal, both empty, or the same duration written as Go text and as an
/// integer of nanoseconds (`logging.flushFrequency` takes either).
fn same(a: &Value, b: Option<&Value>) -> bool {
    let b = b.unwrap_or(&Value::Null);
    let nanos = |v: &Value| match v {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => tinylet::config::duration::KubeDuration::parse(s)
            .ok()
            .map(|d| d.as_std().as_nanos()),
        _ => None,
    };
    a == b
        || (empty(a) && empty(b))
        || (matches!(
            (a, b),
            (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_))
        ) && nanos(a).is_some()
            && nanos(a) == nanos(b))
}

/// Loads `file` both ways; every field upstream prints must be what tinylet prints, and
/// every field only tinylet prints must be one upstream omits as empty.
fn same_as_upstream(file: &Path) {
    let up = run(Command::new(upstream::bin("kubelet-config")).arg(file));
    assert!(
        up.status.success(),
        "the upstream loader refused {}: {}",
        file.display(),
        text(&up.stderr)
    );
    let ours = tinylet(&["check-config", &format!("--config={}", file.display())]);
    assert!(
        ours.status.success(),
        "tinylet refused {} (upstream loads it): {}",
        file.display(),
        text(&ours.stderr)
    );
    let (up, ours) = (
        leaves(&text(&up.stdout), "upstream"),
        leaves(&text(&ours.stdout), "tinylet"),
    );
    let known = |k: &str| KNOWN.iter().any(|(p, _)| k.starts_with(p));
    let mut diffs = Vec::new();
    for (k, v) in &up {
        if known(k) {
            continue;
        }
        if !same(v, ours.get(k)) {
            diffs.push(format!("{k}: upstream {v:?}, tinylet {:?}", ours.get(k)));
        }
    }
    for (k, v) in &ours {
        if !up.contains_key(k) && !known(k) && !empty(v) {
            diffs.push(format!("{k}: only tinylet has it, as {v:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{}: tinylet's effective config differs from the kubelet's:\n  {}",
        file.display(),
        diffs.join("\n  ")
    );
}

/// The KubeletConfiguration document `kubeadm` writes (to the kubelet-config ConfigMap, and
/// from it to /var/lib/kubelet/config.yaml on every node that joins): zero durations,
/// `flushFrequency: 0`, `containerRuntimeEndpoint: ""`, `cgroupDriver: systemd`.
fn kubeadm_kubelet_config() -> String {
    let out = run(Command::new(upstream::bin("kubeadm")).args([
        "config",
        "print",
        "init-defaults",
        "--component-configs",
        "KubeletConfiguration",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = text(&out.stdout);
    all.split("\n---\n")
        .find(|d| d.contains("kind: KubeletConfiguration"))
        .unwrap_or_else(|| panic!("no KubeletConfiguration in kubeadm's output:\n{all}"))
        .to_string()
}

#[test]
fn kubeadms_config_loads_as_the_kubelet_loads_it() {
    let dir = tempdir();
    let doc = kubeadm_kubelet_config();
    for want in [
        "flushFrequency: 0",
        "containerRuntimeEndpoint: \"\"",
        "syncFrequency: 0s",
        "cgroupDriver: systemd",
    ] {
        assert!(
            doc.contains(want),
            "kubeadm no longer writes {want:?}:\n{doc}"
        );
    }
    let f = dir.path().join("config.yaml");
    write(&f, &doc);
    same_as_upstream(&f);
}

#[test]
fn the_seed_guides_and_our_configs_load_as_the_kubelet_loads_them() {
    let dir = tempdir();
    let seed = dir.path().join("seed.yaml");
    write(&seed, &seed_config().replace("kubeAPIOPS", "kubeAPIQPS"));
    same_as_upstream(&seed);
    for arch in ["x86_64", "arm64"] {
        let out = dir.path().join(arch);
        let r = run(Command::new(repo().join("scripts/render-node"))
            .args([
                "--env",
                &format!("configs/{arch}/node.env"),
                "--arch",
                arch,
                "--out",
            ])
            .arg(&out)
            .current_dir(repo()));
        assert!(r.status.success(), "{}", text(&r.stderr));
        same_as_upstream(&out.join("kubelet-config.yaml"));
    }
}

/// A partial evictionHard replaces the defaults, unless mergeDefaultEvictionSettings fills in
/// the thresholds it does not name (as the kubelet's loadConfigFile).
#[test]
fn eviction_defaults_merge_on_request() {
    let dir = tempdir();
    for merge in [false, true] {
        let f = dir.path().join(format!("merge-{merge}.yaml"));
        write(
            &f,
            &format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
                 evictionHard:\n  memory.available: 200Mi\n\
                 mergeDefaultEvictionSettings: {merge}\n"
            ),
        );
        same_as_upstream(&f);
        let ours = leaves(
            &text(&tinylet(&["check-config", &format!("--config={}", f.display())]).stdout),
            "tinylet",
        );
        let hard: Vec<(&String, &Value)> = ours
            .iter()
            .filter(|(k, _)| k.starts_with("evictionHard."))
            .collect();
        let want = if merge { 5 } else { 1 };
        assert_eq!(hard.len(), want, "merge {merge}: {hard:?}");
        assert_eq!(
            ours.get("evictionHard.memory.available")
                .and_then(Value::as_str),
            Some("200Mi")
        );
    }
}

/// Only the update frequency set: the report frequency follows it (upstream's backward
/// compatibility rule), and explicit zeros elsewhere are the defaults.
#[test]
fn zero_values_and_the_report_frequency_rule() {
    let dir = tempdir();
    let f = dir.path().join("c.yaml");
    write(
        &f,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         nodeStatusUpdateFrequency: 20s\nport: 0\nmaxPods: 0\naddress: \"\"\n\
         logging:\n  flushFrequency: 2000000000\nhealthzPort: 0\nreadOnlyPort: 0\n",
    );
    same_as_upstream(&f);
    let ours = leaves(
        &text(&tinylet(&["check-config", &format!("--config={}", f.display())]).stdout),
        "tinylet",
    );
    let s = |k: &str| {
        ours.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(s("nodeStatusReportFrequency"), "20s");
    assert_eq!(s("logging.flushFrequency"), "2s");
    assert_eq!(ours.get("port").and_then(Value::as_u64), Some(10250));
    assert_eq!(
        ours.get("healthzPort").and_then(Value::as_u64),
        Some(0),
        "a pointer: 0 stays"
    );
}

/// A value of the type `kubelet --help` gives a flag.
fn sample(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "ip" => "127.0.0.1",
        "int" | "int32" | "int64" => "3",
        "duration" => "30s",
        "strings" | "string" => "x",
        "mapStringString" => "cpu=100m",
        "mapStringBool" => "AllAlpha=false",
        "quantity" => "0",
        "colonSeparatedMultimapStringString" => "X-Header:v",
        "[]v1.Taint" => "k=v:NoSchedule",
        "reserved-memory" => "0:memory=1Gi",
        "pattern=N,..." => "pods*=2",
        "version[=true]" => return None,
        _ => return None,
    })
}

/// Every flag the upstream kubelet has is accepted: its own, the deprecated config flags (each
/// setting its field, with the kubelet's deprecation warning), the logging flags, and those
/// that set nothing tinylet has (with a warning saying so). None is an "unknown flag".
#[test]
fn every_flag_of_the_kubelet_is_accepted() {
    let out = run(Command::new(upstream::bin("kubelet")).arg("--help"));
    let help = text(&out.stdout) + &text(&out.stderr);
    let mut seen = 0;
    let mut unknown = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let name = words.next().unwrap_or_default();
        if matches!(name, "help" | "version") {
            continue;
        }
        let ty = words.next().unwrap_or_default();
        let arg = match sample(ty) {
            Some(v) => format!("--{name}={v}"),
            None => format!("--{name}"),
        };
        seen += 1;
        let out = tinylet(&["check-config", &arg, "--hostname-override=n1"]);
        let err = text(&out.stderr);
        if err.contains("unknown flag") || err.contains("needs a value") {
            unknown.push(format!("{arg}: {}", err.trim()));
        }
    }
    assert!(seen > 140, "only {seen} flags in kubelet --help:\n{help}");
    assert!(unknown.is_empty(), "refused:\n{}", unknown.join("\n"));
}

/// Deprecated config flags set their fields over the file (flags win, as in the kubelet),
/// with the kubelet's warning; a bad value names its flag.
#[test]
fn deprecated_config_flags_set_their_fields() {
    let dir = tempdir();
    let f = dir.path().join("c.yaml");
    write(
        &f,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n",
    );
    let out = tinylet(&[
        "check-config",
        &format!("--config={}", f.display()),
        "--max-pods=220",
        "--cluster-dns=10.254.0.2",
        "--fail-swap-on=false",
        "--cgroup-driver",
        "systemd",
        "--eviction-hard=memory.available<200Mi",
        "--feature-gates=AllAlpha=false",
        "--cloud-provider=external",
        "--hostname-override=n1",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for want in [
        "maxPods: 220",
        "clusterDNS:\n- 10.254.0.2",
        "failSwapOn: false",
        "cgroupDriver: systemd",
        "memory.available: 200Mi",
    ] {
        assert!(stdout.contains(want), "{want:?} not in:\n{stdout}");
    }
    assert!(
        stderr.contains("Flag --max-pods has been deprecated, This parameter should be set via the config file specified by the Kubelet's --config flag."),
        "{stderr}"
    );
    assert!(
        stderr.contains("flag --cloud-provider=external has no effect in tinylet"),
        "{stderr}"
    );
    let out = tinylet(&[
        "check-config",
        "--max-pods=lots",
        "--cgroup-driver=upstart",
        "--hostname-override=n1",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("flag --max-pods: \"lots\" is not an integer"),
        "{stderr}"
    );
    assert!(
        stderr.contains("flag --cgroup-driver: cgroupDriver:"),
        "{stderr}"
    );
}

/// `--config-dir`: drop-ins over the file in name order, flags over both.
#[test]
fn config_dir_drop_ins_apply_in_name_order() {
    let dir = tempdir();
    let f = dir.path().join("c.yaml");
    let head = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";
    write(&f, &format!("{head}maxPods: 50\npodPidsLimit: 100\n"));
    let d = dir.path().join("conf.d");
    write(&d.join("20-b.conf"), &format!("{head}maxPods: 70\n"));
    write(
        &d.join("10-a.conf"),
        &format!("{head}maxPods: 60\npodPidsLimit: 200\n"),
    );
    write(&d.join("30-ignored.yaml"), &format!("{head}maxPods: 99\n"));
    let out = tinylet(&[
        "check-config",
        &format!("--config={}", f.display()),
        &format!("--config-dir={}", d.display()),
        "--hostname-override=n1",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("maxPods: 70\n") && stdout.contains("podPidsLimit: 200\n"),
        "{stdout}"
    );
}
