//! The object store: every object as JSON, one global resourceVersion counter, a bounded event
//! history for watch resumption (410 Gone beyond it) and a broadcast for live watchers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::api::{ApiError, Res};

/// (api group + resource, namespace, name)
pub type Key = (String, String, String);

/// Past events to replay and a receiver for the live ones.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: &'static str,
    pub gr: String,
    pub namespace: String,
    pub object: Value,
    /// The object before a MODIFIED (a watch with a selector turns a change that makes it
    /// enter or leave the selection into ADDED or DELETED, as the API server's cache does).
    pub prev: Option<Value>,
}

pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
    history_len: usize,
    /// `--persist`: every change is written here (as etcd keeps an apiserver's state across
    /// restarts); the watch history is not, so watches from before get 410 Gone.
    persist: Option<std::path::PathBuf>,
}

pub fn gr(r: &Res) -> String {
    format!("{}/{}", r.group, r.resource)
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// `history_len`: how many events watches can resume from (older: 410 Gone).
    pub fn new(history_len: usize) -> Store {
        let (tx, _) = broadcast::channel(4096);
        Store {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            tx,
            history_len: history_len.max(1),
            persist: None,
        }
    }

    /// Keeps the objects in `path` from now on, loading what is there first; whether anything
    /// was loaded.
    pub fn persist_to(&mut self, path: std::path::PathBuf) -> Result<bool, String> {
        let loaded = match std::fs::read(&path) {
            Ok(bytes) => {
                let v: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                self.rv = v["rv"].as_u64().unwrap_or(1);
                for o in v["objects"].as_array().into_iter().flatten() {
                    let part = |i: usize| o[i].as_str().unwrap_or("").to_string();
                    self.objects
                        .insert((part(0), part(1), part(2)), o[3].clone());
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        self.persist = Some(path);
        Ok(loaded)
    }

    fn save(&self) {
        let Some(path) = &self.persist else {
            return;
        };
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|((g, ns, name), o)| json!([g, ns, name, o]))
            .collect();
        let tmp = path.with_extension("tmp");
        let body = json!({"rv": self.rv, "objects": objects}).to_string();
        if let Err(e) = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path)) {
            eprintln!("kube-sim: saving {}: {e}", path.display());
        }
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    fn key(r: &Res, ns: &str, name: &str) -> Key {
        (
            gr(r),
            if r.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    pub fn get(&self, r: &Res, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&Self::key(r, ns, name))
    }

    /// Objects of a resource, optionally in one namespace, in name order.
    pub fn list(&self, r: &Res, ns: &str) -> Vec<&Value> {
        let g = gr(r);
        self.objects
            .iter()
            .filter(|((kg, kns, _), _)| *kg == g && (ns.is_empty() || !r.namespaced || kns == ns))
            .map(|(_, v)| v)
            .collect()
    }

    fn new_uid() -> String {
        let mut b = [0u8; 16];
        rand::fill(&mut b[..]);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_be_bytes([b[4], b[5]]),
            u16::from_be_bytes([b[6], b[7]]) & 0xfff,
            u16::from_be_bytes([b[8], b[9]]) & 0xfff,
            u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
        )
    }

    fn publish(
        &mut self,
        kind: &'static str,
        r: &Res,
        ns: &str,
        object: Value,
        prev: Option<Value>,
    ) {
        let ev = Arc::new(Event {
            rv: self.rv,
            kind,
            gr: gr(r),
            namespace: ns.to_string(),
            object,
            prev,
        });
        self.history.push_back(ev.clone());
        if self.history.len() > self.history_len {
            self.history.pop_front();
        }
        self.save();
        let _ = self.tx.send(ev);
    }

    /// Creates an object: fills uid, creationTimestamp, resourceVersion, generateName.
    pub fn create(&mut self, r: &Res, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("metadata is required"))?;
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    r,
                    "",
                    &[(
                        "metadata.name",
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| ALNUM[rand::random_range(0..ALNUM.len())] as char)
                .collect();
            name = format!("{prefix}{suffix}");
            meta.insert("name".into(), json!(name));
        }
        if r.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        let key = Self::key(r, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(r, &name));
        }
        self.rv += 1;
        let uid = Self::new_uid();
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        if obj.get("kind").is_none() || obj["kind"].is_null() {
            obj["kind"] = json!(r.kind);
        }
        obj["apiVersion"] = json!(r.api_version());
        self.objects.insert(key, obj.clone());
        self.publish("ADDED", r, ns, obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object. A non-empty resourceVersion in `obj` must match (optimistic
    /// concurrency); uid and creationTimestamp are kept.
    pub fn update(
        &mut self,
        r: &Res,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let key = Self::key(r, ns, name);
        let old = self
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let want_rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !want_rv.is_empty()
            && want_rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("")
        {
            return Err(ApiError::conflict(r, name));
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old["metadata"].get(k) {
                Some(v) => obj["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        if old == &obj {
            return Ok(obj);
        }
        obj["metadata"]["name"] = json!(name);
        if r.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        }
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind);
        Ok(self.store_modified(key, r, ns, obj))
    }

    /// Stores a changed object under a new resourceVersion and tells the watchers.
    fn store_modified(&mut self, key: Key, r: &Res, ns: &str, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let prev = self.objects.insert(key, obj.clone());
        self.publish("MODIFIED", r, ns, obj.clone(), prev);
        obj
    }

    /// Marks an object as being deleted (deletionTimestamp set by the caller): stored and
    /// published as MODIFIED, bypassing update's preservation of deletion fields.
    pub fn set_deletion(
        &mut self,
        r: &Res,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let key = Self::key(r, ns, name);
        if !self.objects.contains_key(&key) {
            return Err(ApiError::not_found(r, name));
        }
        Ok(self.store_modified(key, r, ns, obj))
    }

    /// Removes an object now.
    pub fn remove(&mut self, r: &Res, ns: &str, name: &str) -> Result<Value, ApiError> {
        let mut obj = self
            .objects
            .remove(&Self::key(r, ns, name))
            .ok_or_else(|| ApiError::not_found(r, name))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.publish("DELETED", r, ns, obj.clone(), None);
        Ok(obj)
    }

    /// Events after `rv` for one resource (and namespace), and a receiver for later ones; `None`
    /// if `rv` is older than the history kept (the client must re-list: 410 Gone).
    pub fn watch_from(&self, r: &Res, ns: &str, rv: u64) -> Option<WatchStart> {
        let oldest = self.history.front().map(|e| e.rv).unwrap_or(self.rv + 1);
        if rv + 1 < oldest && rv < self.rv {
            return None;
        }
        let g = gr(r);
        let past = self
            .history
            .iter()
            .filter(|e| {
                e.rv > rv && e.gr == g && (ns.is_empty() || !r.namespaced || e.namespace == ns)
            })
            .cloned()
            .collect();
        Some((past, self.tx.subscribe()))
    }
}
