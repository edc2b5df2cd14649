//! The agent's effective configuration: flags + `KubeletConfiguration` file + kubeconfigs,
//! loaded and validated the same way for `check-config` and for startup.

pub mod config_flags;
pub mod duration;
pub mod flags;
pub mod kubeconfig;
pub mod kubelet;
pub mod labels;
pub mod quantity;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use flags::Flags;
use kubeconfig::{ApiServer, Kubeconfig};
use kubelet::KubeletConfiguration;
use yaml::{Ctx, Problem};

/// How unknown fields in the config file are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Startup: like the kubelet's lenient fallback, unknown fields become warnings.
    Lenient,
    /// `check-config`: unknown fields are errors.
    Strict,
}

/// Top-level config fields tinylet acts on today. Everything else in [`kubelet::FIELDS`] is
/// accepted, kept, printed by `check-config`, and reported once at startup when set.
pub const IMPLEMENTED_FIELDS: &[&str] = &[
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "apiVersion",
    "kind",
    "logging",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "rotateCertificates",
    "serverTLSBootstrap",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsMinVersion",
    "tlsCipherSuites",
    "enableServer",
    "address",
    "port",
    "healthzPort",
    "healthzBindAddress",
    "authentication",
    "authorization",
    "enableDebuggingHandlers",
    "failSwapOn",
    "maxOpenFiles",
    "allowedUnsafeSysctls",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "runtimeRequestTimeout",
    "registerNode",
    "registerWithTaints",
    "providerID",
    "enableControllerAttachDetach",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeStatusMaxImages",
    "nodeLeaseDurationSeconds",
    "maxPods",
    "podsPerCore",
    "systemReserved",
    "kubeReserved",
    "eventRecordQPS",
    "eventBurst",
    "podLogsDir",
    "cgroupRoot",
    "clusterDNS",
    "clusterDomain",
    "podPidsLimit",
    "cpuCFSQuota",
    "staticPodPath",
    "fileCheckFrequency",
    "syncFrequency",
    "resolvConf",
    "seccompDefault",
    "registryPullQPS",
    "registryBurst",
    "cgroupDriver",
    "volumeStatsAggPeriod",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "containerLogMonitorInterval",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "evictionPressureTransitionPeriod",
    "localStorageCapacityIsolation",
    "enforceNodeAllocatable",
    "mergeDefaultEvictionSettings",
];

/// Supported flags tinylet does not act on yet (parsed and validated only).
pub const FLAGS_NOT_IMPLEMENTED: &[&str] = &["volume-plugin-dir"];

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub flags: Flags,
    pub kubelet: KubeletConfiguration,
    pub config_file: Option<PathBuf>,
    /// The node's name: `--hostname-override`, else the lowercased hostname.
    pub node_name: String,
    /// The API server to talk to: from `--kubeconfig` if it exists (and, when a bootstrap
    /// kubeconfig is given, its client certificate is valid), else from
    /// `--bootstrap-kubeconfig`; `None` runs standalone.
    pub api_server: Option<ApiServer>,
    /// `api_server` came from `--bootstrap-kubeconfig`: the TLS bootstrap must run first.
    pub bootstrapping: bool,
    /// Top-level fields written in the file.
    pub fields_set: Vec<String>,
    /// Unknown fields (warnings in lenient mode).
    pub unknown_fields: Vec<Problem>,
}

/// Every problem found, each naming file, line and field (or flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Loads the file named by `--config` (if any), applies the flags over it, resolves the node
/// name and kubeconfigs, and validates it all. `hostname` is injected for tests.
pub fn load(
    flags: Flags,
    strictness: Strictness,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<Settings, ConfigError> {
    let mut problems: Vec<String> = Vec::new();
    let mut kubelet = KubeletConfiguration::default();
    let mut fields_set = Vec::new();
    let mut unknown_fields = Vec::new();
    // The file, then the drop-ins of --config-dir in name order, each over what came before.
    let mut files: Vec<PathBuf> = flags.config.iter().cloned().collect();
    if let Some(dir) = &flags.config_dir {
        match drop_ins(dir) {
            Ok(d) => files.extend(d),
            Err(e) => problems.push(e),
        }
    }
    for (i, path) in files.iter().enumerate() {
        match read_config(path, kubelet.clone()) {
            Ok(r) => {
                kubelet = r.config;
                // As the kubelet's loadConfigFile, for the --config file only: the defaults of
                // the thresholds it does not name, with mergeDefaultEvictionSettings.
                let main = i == 0 && flags.config.is_some();
                if main
                    && kubelet.merge_default_eviction_settings == Some(true)
                    && r.fields_set.iter().any(|f| f == "evictionHard")
                {
                    for (s, t) in kubelet::default_eviction_hard() {
                        kubelet.eviction_hard.entry(s).or_insert(t);
                    }
                }
                fields_set.extend(r.fields_set);
                problems.extend(r.problems.iter().map(ToString::to_string));
                match strictness {
                    Strictness::Strict => {
                        problems.extend(r.unknown.iter().map(ToString::to_string))
                    }
                    Strictness::Lenient => unknown_fields.extend(r.unknown),
                }
            }
            Err(p) => problems.push(p.to_string()),
        }
    }
    if !flags.config_flags.is_empty() {
        match apply_config_flags(&flags.config_flags, kubelet.clone()) {
            Ok(k) => kubelet = k,
            Err(p) => problems.extend(p),
        }
    }
    if files.len() > 1 || !flags.config_flags.is_empty() {
        // The rules once more on what the drop-ins and flags made of it.
        for (field, msg) in kubelet::validate(&kubelet) {
            let p = format!("{field}: {msg}");
            if !problems.iter().any(|q| q.ends_with(&p)) {
                problems.push(format!("effective configuration: {p}"));
            }
        }
    }
    if let Some(e) = &flags.container_runtime_endpoint {
        kubelet.container_runtime_endpoint = e.clone();
    }
    if let Some(t) = &flags.register_with_taints {
        kubelet.register_with_taints = t.clone();
    }
    if let Some(d) = &flags.volume_plugin_dir {
        kubelet.volume_plugin_dir = d.clone();
    }
    if let Some(v) = flags.verbosity {
        kubelet.logging.verbosity = v;
    }

    let node_name = match &flags.hostname_override {
        Some(n) => n.clone(),
        None => match hostname() {
            Ok(h) => {
                let n = h.trim().to_ascii_lowercase();
                if let Err(e) = labels::validate_dns_subdomain(&n) {
                    problems.push(format!(
                        "node name from the hostname: {e}; set --hostname-override"
                    ));
                }
                n
            }
            Err(e) => {
                problems.push(format!(
                    "node name: cannot read the hostname ({e}); set --hostname-override"
                ));
                String::new()
            }
        },
    };

    let (api_server, bootstrapping) = match resolve_api_server(&flags) {
        Ok(a) => a,
        Err(e) => {
            problems.push(e);
            (None, false)
        }
    };

    if problems.is_empty() {
        Ok(Settings {
            config_file: flags.config.clone(),
            flags,
            kubelet,
            node_name,
            api_server,
            bootstrapping,
            fields_set,
            unknown_fields,
        })
    } else {
        Err(ConfigError { problems })
    }
}

struct ReadConfig {
    config: KubeletConfiguration,
    fields_set: Vec<String>,
    problems: Vec<Problem>,
    unknown: Vec<Problem>,
}

/// The `*.conf` files of a `--config-dir`, in name order (the kubelet's drop-ins).
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| format!("--config-dir: reading {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The config flags decoded over `base` as one more document; problems name the flag.
fn apply_config_flags(
    given: &[(String, String)],
    base: KubeletConfiguration,
) -> Result<KubeletConfiguration, Vec<String>> {
    let mut doc = serde_yaml::Mapping::new();
    let mut problems = Vec::new();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for (name, text) in given {
        let Some((field, kind, _)) = config_flags::find(name) else {
            continue;
        };
        match config_flags::value(kind, text) {
            Ok(v) => config_flags::set_path(&mut doc, field, v),
            Err(e) => problems.push(format!("flag --{name}: {e}")),
        }
        fields.push((field, name));
    }
    config_flags::set_path(&mut doc, "apiVersion", kubelet::API_VERSION.into());
    config_flags::set_path(&mut doc, "kind", kubelet::KIND.into());
    let text = serde_yaml::to_string(&doc).map_err(|e| vec![format!("flags: {e}")])?;
    let origin = Path::new("command-line flags");
    let (mut ctx, top) = Ctx::parse(origin, &text).map_err(|p| vec![p.to_string()])?;
    let config = kubelet::decode_onto(&mut ctx, top, base, false);
    for p in ctx.problems.iter().chain(ctx.unknown.iter()) {
        let flag = fields
            .iter()
            .rev()
            .find(|(f, _)| {
                p.field == *f
                    || p.field.starts_with(&format!("{f}."))
                    || p.field.starts_with(&format!("{f}["))
            })
            .map(|(_, n)| *n)
            .unwrap_or("?");
        problems.push(format!("flag --{flag}: {}: {}", p.field, p.message));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn read_config(path: &Path, base: KubeletConfiguration) -> Result<ReadConfig, Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| Problem {
        file: path.to_path_buf(),
        line: None,
        field: String::new(),
        message: format!("cannot read the config file: {e}"),
    })?;
    let (mut ctx, top) = Ctx::parse(path, &text)?;
    let fields_set: Vec<String> = kubelet::FIELDS
        .iter()
        .filter(|f| top.has(f))
        .map(|f| f.to_string())
        .collect();
    let config = kubelet::decode_onto(&mut ctx, top, base, true);
    // Cross-field rules only make sense once every field decoded.
    if ctx.problems.is_empty() {
        for (field, msg) in kubelet::validate(&config) {
            ctx.invalid(field, msg);
        }
    }
    Ok(ReadConfig {
        config,
        fields_set,
        problems: ctx.problems,
        unknown: ctx.unknown,
    })
}

/// `--kubeconfig` if the file exists and (when there is a bootstrap kubeconfig to fall back on)
/// its client certificate is valid; else `--bootstrap-kubeconfig`, which must then exist and
/// needs `--kubeconfig` to know where to write; neither given: standalone. The bool says
/// whether the bootstrap must run.
fn resolve_api_server(flags: &Flags) -> Result<(Option<ApiServer>, bool), String> {
    let load = |p: &Path, flag: &str| {
        Kubeconfig::load(p)
            .and_then(|k| k.resolve(p))
            .map_err(|e| format!("--{flag}: {e}"))
    };
    match (&flags.kubeconfig, &flags.bootstrap_kubeconfig) {
        (Some(k), b) if k.exists() && (b.is_none() || crate::certs::bootstrap::kubeconfig_usable(k)) => {
            Ok((Some(load(k, "kubeconfig")?), false))
        }
        (Some(_), Some(b)) => Ok((Some(load(b, "bootstrap-kubeconfig")?), true)),
        (None, Some(_)) => Err("--bootstrap-kubeconfig needs --kubeconfig: the path where the client kubeconfig is written after the bootstrap".into()),
        (Some(k), None) => Err(format!(
            "--kubeconfig: {} does not exist and no --bootstrap-kubeconfig was given to create it",
            k.display()
        )),
        (None, None) => Ok((None, false)),
    }
}

/// The effective `KubeletConfiguration` as YAML, loadable again as a config file.
pub fn effective_yaml(c: &KubeletConfiguration) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        kind: &'static str,
        #[serde(flatten)]
        config: &'a KubeletConfiguration,
    }
    let doc = Doc {
        api_version: kubelet::API_VERSION,
        kind: kubelet::KIND,
        config: c,
    };
    // Every field type serializes to plain YAML; an error here would be a bug in a Serialize impl.
    serde_yaml::to_string(&doc)
        .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

impl Settings {
    /// Fields and flags that were set but that tinylet does not act on yet.
    pub fn not_implemented(&self) -> Vec<String> {
        let fields = self
            .fields_set
            .iter()
            .filter(|f| !IMPLEMENTED_FIELDS.contains(&f.as_str()))
            .cloned();
        let flags = self
            .flags
            .given
            .iter()
            .filter(|(n, _)| FLAGS_NOT_IMPLEMENTED.contains(&n.as_str()))
            .map(|(n, _)| format!("--{n}"));
        fields.chain(flags).collect()
    }

    /// The header `check-config` prints above the YAML: the flag-level settings as comments.
    pub fn summary_comment(&self) -> String {
        let mut s =
            String::from("# tinylet check-config: effective configuration (defaults applied)\n");
        s.push_str(&format!("# node name: {}\n", self.node_name));
        match &self.api_server {
            Some(a) => s.push_str(&format!(
                "# api server: {} (from {})\n",
                a.server,
                a.file.display()
            )),
            None => s.push_str("# api server: none (standalone)\n"),
        }
        s.push_str(&format!(
            "# cert dir: {}\n# root dir: {}\n",
            self.flags.cert_dir.display(),
            self.flags.root_dir.display()
        ));
        if !self.flags.node_ip.is_empty() {
            let ips: Vec<String> = self.flags.node_ip.iter().map(ToString::to_string).collect();
            s.push_str(&format!("# node ip: {}\n", ips.join(",")));
        }
        if !self.flags.node_labels.is_empty() {
            let l: Vec<String> = self
                .flags
                .node_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("# node labels: {}\n", l.join(",")));
        }
        s
    }
}
