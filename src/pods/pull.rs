//! Image pull credentials from a pod's `imagePullSecrets` (`kubernetes.io/dockerconfigjson` and
//! the older `kubernetes.io/dockercfg`), matched to the image's registry as the kubelet's keyring
//! does, in the form CRI's PullImage takes.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::cri::api::AuthConfig;

/// The registry host (with its port) of an image reference; Docker Hub is `docker.io`.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => normalize(first),
        _ => "docker.io".into(),
    }
}

/// A docker config key (`https://index.docker.io/v1/`, `127.0.0.1:5000`, `http://r.example/x`)
/// as a registry host.
fn normalize(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or("").to_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// `*.example.com` matches one label in front of `example.com`, as the kubelet's keyring.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

/// The `auths` of one secret's data, or why it holds none.
fn auths(data: &BTreeMap<String, Vec<u8>>) -> Result<serde_json::Map<String, Value>, String> {
    if let Some(b) = data.get(".dockerconfigjson") {
        let v: Value = serde_json::from_slice(b).map_err(|e| format!(".dockerconfigjson: {e}"))?;
        return v["auths"]
            .as_object()
            .cloned()
            .ok_or_else(|| ".dockerconfigjson has no \"auths\" object".into());
    }
    if let Some(b) = data.get(".dockercfg") {
        let v: Value = serde_json::from_slice(b).map_err(|e| format!(".dockercfg: {e}"))?;
        return v
            .as_object()
            .cloned()
            .ok_or_else(|| ".dockercfg is not an object".into());
    }
    Err("neither .dockerconfigjson nor .dockercfg in its data".into())
}

/// The credentials of `secrets` (each a name and its decoded data) that apply to `image`, in
/// the secrets' order; the problems found on the way (a secret that is not a docker config),
/// to be reported without stopping the pull.
pub fn credentials(
    secrets: &[(String, BTreeMap<String, Vec<u8>>)],
    image: &str,
) -> (Vec<AuthConfig>, Vec<String>) {
    let registry = registry_of(image);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (name, data) in secrets {
        let entries = match auths(data) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("image pull secret {name:?}: {e}"));
                continue;
            }
        };
        for (key, entry) in entries {
            if !host_matches(&normalize(&key), &registry) {
                continue;
            }
            let (mut username, mut password) = (
                entry["username"].as_str().unwrap_or("").to_string(),
                entry["password"].as_str().unwrap_or("").to_string(),
            );
            if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                match decoded.as_deref().and_then(|d| d.split_once(':')) {
                    Some((u, p)) => (username, password) = (u.to_string(), p.to_string()),
                    None => {
                        problems.push(format!(
                            "image pull secret {name:?}: the \"auth\" of {key:?} is not base64 of user:password"
                        ));
                        continue;
                    }
                }
            }
            // server_address stays empty: containerd 1.6 parses it as a URL and drops the
            // credentials when its host differs from the one it dials (a mirror, a bare
            // host:port key); the match was made here.
            out.push(AuthConfig {
                username,
                password,
                identity_token: entry["identitytoken"].as_str().unwrap_or("").to_string(),
                registry_token: entry["registrytoken"].as_str().unwrap_or("").to_string(),
                ..Default::default()
            });
        }
    }
    (out, problems)
}

/// The credentials of the pod's `imagePullSecrets` for `image`, read from the API. Secrets that
/// cannot be read are reported (the kubelet's FailedToRetrieveImagePullSecret event) and the
/// pull goes on without them.
pub fn credentials_of(
    x: &super::execute::Executor,
    pod: &super::spec::Pod,
    container: &str,
    image: &str,
) -> Vec<AuthConfig> {
    let names: Vec<&str> = pod.raw["spec"]["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let ns = &pod.metadata.namespace;
    let mut secrets = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match super::volumes::object_data(&*x.api, ns, "secret", n) {
            Ok(Some(d)) => secrets.push((n.to_string(), d)),
            Ok(None) => missing.push(format!("{ns}/{n}")),
            Err(e) => missing.push(format!("{ns}/{n}: {e}")),
        }
    }
    let (creds, problems) = credentials(&secrets, image);
    missing.extend(problems);
    if !missing.is_empty() {
        x.event(
            pod,
            Some(container),
            true,
            super::error::Reason::FailedToRetrieveImagePullSecret,
            format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            ),
        );
    }
    creds
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(key: &str, json: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_string(), json.as_bytes().to_vec())])
    }

    #[test]
    fn registries_of_images() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1.36"), "docker.io");
        assert_eq!(registry_of("docker.io/library/busybox"), "docker.io");
        assert_eq!(
            registry_of("127.0.0.1:5000/library/busybox:1.36"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(
            registry_of("Registry.Example.com/team/app@sha256:ab"),
            "registry.example.com"
        );
    }

    #[test]
    fn matching_credentials_in_order() {
        let a = base64::engine::general_purpose::STANDARD.encode("bob:pw2");
        let secrets = vec![
            (
                "one".to_string(),
                secret(
                    ".dockerconfigjson",
                    r#"{"auths": {"127.0.0.1:5000": {"username": "alice", "password": "pw1"},
                                  "https://index.docker.io/v1/": {"username": "hub", "password": "h"}}}"#,
                ),
            ),
            (
                "two".to_string(),
                secret(
                    ".dockercfg",
                    &format!(r#"{{"http://127.0.0.1:5000/v2/": {{"auth": "{a}"}}}}"#),
                ),
            ),
            ("three".to_string(), secret("token", "x")),
            (
                "four".to_string(),
                secret(
                    ".dockerconfigjson",
                    r#"{"auths": {"*.example.com": {"username": "w", "password": "p"}}}"#,
                ),
            ),
        ];
        let (creds, problems) = credentials(&secrets, "127.0.0.1:5000/library/busybox:1.36");
        let users: Vec<(&str, &str)> = creds
            .iter()
            .map(|c| (c.username.as_str(), c.password.as_str()))
            .collect();
        assert_eq!(users, [("alice", "pw1"), ("bob", "pw2")]);
        assert!(creds.iter().all(|c| c.server_address.is_empty()));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("\"three\""), "{problems:?}");
        let (hub, _) = credentials(&secrets, "busybox");
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].username, "hub");
        assert_eq!(credentials(&secrets, "eu.example.com/app").0.len(), 1);
        assert_eq!(credentials(&secrets, "a.b.example.com/app").0.len(), 0);
        assert_eq!(credentials(&secrets, "127.0.0.1:5001/app").0.len(), 0);
    }

    #[test]
    fn broken_auth_is_reported() {
        let s = vec![(
            "bad".to_string(),
            secret(
                ".dockerconfigjson",
                r#"{"auths": {"r.io": {"auth": "!!"}}}"#,
            ),
        )];
        let (creds, problems) = credentials(&s, "r.io/app");
        assert!(creds.is_empty());
        assert!(problems[0].contains("not base64"), "{problems:?}");
        let s = vec![("bad".to_string(), secret(".dockerconfigjson", "{"))];
        assert!(credentials(&s, "r.io/app").1[0].contains(".dockerconfigjson"));
    }
}
