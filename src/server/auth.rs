//! Authentication and authorization for the 10250 API, in the kubelet's order: a verified client
//! certificate (user = CN, groups = O), else a bearer token checked by TokenReview, else
//! anonymous when enabled; then SubjectAccessReview on `nodes/<subresource>` for this node, with
//! the kubelet's TTL caches (successes only for tokens).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::kubelet::{AuthorizationMode, KubeletConfiguration};
use crate::kube::Client;
use crate::kube::Lazy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What the connection's client certificate says (see `tls`): none, a user whose chain the
/// client CA verifies, or why it does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cert {
    None,
    Verified(User),
    Invalid(String),
}

/// The token of an `Authorization` header, as apiserver's bearer token authenticator reads it:
/// trimmed, split on single spaces into at most three parts, the scheme `bearer` in any case,
/// the token the second part (`Bearer  x`, with two spaces, has an empty one: none).
pub fn bearer_token(header: &str) -> Option<&str> {
    let mut parts = header.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Every authenticated user is in `system:authenticated` (apiserver's AuthenticatedGroupAdder).
fn with_authenticated_group(mut u: User) -> User {
    let all = ["system:authenticated", "system:unauthenticated"];
    if u.name != "system:anonymous" && !u.groups.iter().any(|g| all.contains(&g.as_str())) {
        u.groups.push("system:authenticated".into());
    }
    u
}

/// The attributes of a request, as the kubelet maps them (pkg/kubelet/server/auth.go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: &'static str,
    pub subresource: &'static str,
}

/// HTTP method -> verb.
pub fn verb(method: &str) -> &'static str {
    match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "get",
    }
}

/// Path prefix -> subresource (exact match or followed by `/`).
pub fn subresource(path: &str) -> &'static str {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/checkpoint") {
        "checkpoint"
    } else if under("/spec") {
        "spec"
    } else {
        "proxy"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(User),
    /// 401 `Unauthorized`.
    Unauthenticated,
    /// 403 `Forbidden (user=..., verb=..., resource=nodes, subresource=...)`.
    Forbidden(String),
    /// 500 `Authorization error (...)`.
    Error(String),
}

/// (user, groups, verb, subresource): what an authorization decision is cached under.
type DecisionKey = (String, Vec<String>, &'static str, &'static str);

#[derive(Default)]
pub struct Counters {
    pub authn_cache_hits: std::sync::atomic::AtomicU64,
    pub authz_cache_hits: std::sync::atomic::AtomicU64,
}

pub struct Auth {
    node: String,
    anonymous: bool,
    webhook_authn: bool,
    mode: AuthorizationMode,
    ttl_authn: Duration,
    ttl_allowed: Duration,
    ttl_denied: Duration,
    client: Lazy,
    tokens: Mutex<HashMap<String, (User, Instant)>>,
    decisions: Mutex<HashMap<DecisionKey, (bool, Instant)>>,
    pub counters: Counters,
}

/// The decision needs the API server (a TokenReview or SubjectAccessReview).
#[derive(Debug)]
struct NeedsIo;

fn describe(u: &User, a: &Attributes) -> String {
    format!(
        "user={}, verb={}, resource=nodes, subresource={}",
        u.name, a.verb, a.subresource
    )
}

impl Auth {
    /// The node's name (the one node-scoped requests are checked against).
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn new(node: &str, c: &KubeletConfiguration, kubeconfig: Option<PathBuf>) -> Auth {
        Auth {
            node: node.to_string(),
            anonymous: c.authentication.anonymous.enabled,
            webhook_authn: c.authentication.webhook.enabled,
            mode: c.authorization.mode,
            ttl_authn: c.authentication.webhook.cache_ttl.as_std(),
            ttl_allowed: c.authorization.webhook.cache_authorized_ttl.as_std(),
            ttl_denied: c.authorization.webhook.cache_unauthorized_ttl.as_std(),
            client: Lazy::new(kubeconfig, 50, 100),
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// The API client (rebuilt after a failure).
    fn client(&self) -> Result<Arc<Client>, String> {
        self.client.get()
    }

    fn forget_client(&self) {
        self.client.forget();
    }

    /// Who is asking, as the kubelet's authenticator chain: the union of the x509 and bearer
    /// token authenticators (the first to succeed wins), then anonymous when enabled, but only
    /// if none of them failed (a certificate that does not verify, a token the API server does
    /// not accept: 401). `Err(NeedsIo)` when that takes a TokenReview and `io` is false.
    fn authenticate(
        &self,
        cert: Cert,
        authorization: Option<&str>,
        io: bool,
    ) -> Result<Option<User>, NeedsIo> {
        let mut failed = false;
        match cert {
            Cert::Verified(u) => return Ok(Some(with_authenticated_group(u))),
            Cert::Invalid(why) => {
                crate::vinfo!(3, "x509 authentication failed: {why}");
                failed = true;
            }
            Cert::None => {}
        }
        if let (Some(token), true) = (authorization.and_then(bearer_token), self.webhook_authn) {
            match self.review_token(token, io)? {
                Some(u) => return Ok(Some(with_authenticated_group(u))),
                None => failed = true,
            }
        }
        Ok((self.anonymous && !failed).then(|| User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }))
    }

    fn review_token(&self, token: &str, io: bool) -> Result<Option<User>, NeedsIo> {
        if let Some((u, at)) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            && at.elapsed() < self.ttl_authn
        {
            self.counters
                .authn_cache_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(Some(u.clone()));
        }
        if !io {
            return Err(NeedsIo);
        }
        let Ok(client) = self.client() else {
            return Ok(None);
        };
        let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
        let answer: Value =
            match client.create("/apis/authentication.k8s.io/v1/tokenreviews", &review) {
                Ok(v) => v,
                Err(e) => {
                    crate::error!("TokenReview failed: {e}");
                    self.forget_client();
                    return Ok(None);
                }
            };
        if answer["status"]["authenticated"].as_bool() != Some(true) {
            return Ok(None);
        }
        let user = User {
            name: answer["status"]["user"]["username"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            groups: answer["status"]["user"]["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        };
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), (user.clone(), Instant::now()));
        Ok(Some(user))
    }

    /// The whole decision for one request (may call the API server).
    pub fn decide(
        &self,
        cert: Cert,
        authorization: Option<&str>,
        method: &str,
        path: &str,
    ) -> Decision {
        match self.decide_with(cert, authorization, method, path, true) {
            Ok(d) => d,
            Err(NeedsIo) => Decision::Unauthenticated,
        }
    }

    /// The decision when it can be made without the API server (a certificate or a cached
    /// token, AlwaysAllow or a cached review); `None` when a review is needed.
    pub fn decide_cached(
        &self,
        cert: Cert,
        authorization: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<Decision> {
        self.decide_with(cert, authorization, method, path, false)
            .ok()
    }

    fn decide_with(
        &self,
        cert: Cert,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        io: bool,
    ) -> Result<Decision, NeedsIo> {
        let Some(user) = self.authenticate(cert, authorization, io)? else {
            return Ok(Decision::Unauthenticated);
        };
        let attrs = Attributes {
            verb: verb(method),
            subresource: subresource(path),
        };
        if self.mode == AuthorizationMode::AlwaysAllow {
            return Ok(Decision::Allow(user));
        }
        let key = (
            user.name.clone(),
            user.groups.clone(),
            attrs.verb,
            attrs.subresource,
        );
        if let Some((allowed, at)) = self
            .decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
        {
            let ttl = if allowed {
                self.ttl_allowed
            } else {
                self.ttl_denied
            };
            if at.elapsed() < ttl {
                self.counters
                    .authz_cache_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(if allowed {
                    Decision::Allow(user)
                } else {
                    Decision::Forbidden(describe(&user, &attrs))
                });
            }
        }
        if !io {
            return Err(NeedsIo);
        }
        let sar = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user.name, "groups": user.groups,
                     "resourceAttributes": {"verb": attrs.verb, "resource": "nodes", "version": "v1", "subresource": attrs.subresource, "name": self.node}}
        });
        let answer: Result<Value, String> = self.client().and_then(|c| {
            c.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", &sar)
                .map_err(|e| e.to_string())
        });
        Ok(match answer {
            Ok(v) => {
                let allowed = v["status"]["allowed"].as_bool() == Some(true);
                self.decisions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, (allowed, Instant::now()));
                if allowed {
                    Decision::Allow(user)
                } else {
                    Decision::Forbidden(describe(&user, &attrs))
                }
            }
            Err(e) => {
                crate::error!("SubjectAccessReview failed: {e}");
                self.forget_client();
                Decision::Error(describe(&user, &attrs))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_decisions_never_need_the_api_server() {
        let admin = || {
            Cert::Verified(User {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            })
        };
        let mut c = KubeletConfiguration::default();
        c.authorization.mode = AuthorizationMode::Webhook;
        c.authentication.webhook.enabled = true;
        // No kubeconfig: anything that needed the API server would fail, not hang.
        let a = Auth::new("n1", &c, None);
        assert!(matches!(
            a.decide_cached(Cert::None, None, "GET", "/pods"),
            Some(Decision::Unauthenticated)
        ));
        assert!(
            a.decide_cached(admin(), None, "GET", "/pods").is_none(),
            "Webhook authz without a cached review needs the API server"
        );
        assert!(
            a.decide_cached(Cert::None, Some("Bearer abc"), "GET", "/pods")
                .is_none(),
            "a token without a cached review needs the API server"
        );
        a.decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (
                    "admin".into(),
                    vec!["system:masters".into(), "system:authenticated".into()],
                    "get",
                    "proxy",
                ),
                (true, Instant::now()),
            );
        assert!(matches!(
            a.decide_cached(admin(), None, "GET", "/pods"),
            Some(Decision::Allow(_))
        ));
        assert!(
            a.decide_cached(admin(), None, "POST", "/pods").is_none(),
            "another verb is another review"
        );
        c.authorization.mode = AuthorizationMode::AlwaysAllow;
        let a = Auth::new("n1", &c, None);
        assert!(matches!(
            a.decide_cached(admin(), None, "DELETE", "/pods"),
            Some(Decision::Allow(_))
        ));
    }

    #[test]
    fn bearer_tokens_as_apiserver_reads_them() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("  Bearer abc  "), Some("abc"));
        assert_eq!(bearer_token("Bearer abc def"), Some("abc"));
        assert_eq!(
            bearer_token("Bearer  abc"),
            None,
            "two spaces: an empty token"
        );
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token(""), None);
    }

    /// The union of authenticators, then anonymous unless one of them failed.
    #[test]
    fn failed_credentials_are_never_anonymous() {
        let mut c = KubeletConfiguration::default();
        c.authorization.mode = AuthorizationMode::AlwaysAllow;
        c.authentication.anonymous.enabled = true;
        c.authentication.webhook.enabled = true;
        let a = Auth::new("n1", &c, None);
        let allowed = |d: Option<Decision>| match d {
            Some(Decision::Allow(u)) => Some(u.name),
            _ => None,
        };
        assert_eq!(
            allowed(a.decide_cached(Cert::None, None, "GET", "/pods")).as_deref(),
            Some("system:anonymous")
        );
        assert_eq!(
            allowed(a.decide_cached(Cert::None, Some("Basic x"), "GET", "/pods")).as_deref(),
            Some("system:anonymous"),
            "not a bearer token: no authenticator answers"
        );
        assert!(matches!(
            a.decide_cached(Cert::Invalid("foreign CA".into()), None, "GET", "/pods"),
            Some(Decision::Unauthenticated)
        ));
        a.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(
            "good".into(),
            (
                User {
                    name: "sa".into(),
                    groups: vec!["system:authenticated".into()],
                },
                Instant::now(),
            ),
        );
        assert_eq!(
            allowed(a.decide_cached(
                Cert::Invalid("foreign CA".into()),
                Some("Bearer good"),
                "GET",
                "/pods"
            ))
            .as_deref(),
            Some("sa"),
            "a valid token on the same connection is honoured"
        );
        let u = match a.decide_cached(
            Cert::Verified(User {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            }),
            None,
            "GET",
            "/pods",
        ) {
            Some(Decision::Allow(u)) => u,
            other => panic!("{other:?}"),
        };
        assert_eq!(u.groups, ["system:masters", "system:authenticated"]);
    }

    #[test]
    fn the_kubelets_mapping() {
        assert_eq!(subresource("/metrics"), "metrics");
        assert_eq!(subresource("/metrics/cadvisor"), "metrics");
        assert_eq!(subresource("/metricsfoo"), "proxy");
        assert_eq!(subresource("/stats/summary"), "stats");
        assert_eq!(subresource("/logs/"), "log");
        assert_eq!(subresource("/pods"), "proxy");
        assert_eq!(subresource("/spec"), "spec");
        assert_eq!(
            (
                verb("GET"),
                verb("HEAD"),
                verb("POST"),
                verb("PUT"),
                verb("PATCH"),
                verb("DELETE")
            ),
            ("get", "get", "create", "update", "patch", "delete")
        );
    }
}
