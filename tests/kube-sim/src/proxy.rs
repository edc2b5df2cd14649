//! Proxying to kubelets, as the apiserver does for `pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward` and `nodes/proxy`: TLS to the node's InternalIP and kubelet port, verified
//! against the cluster CA, authenticated with `kubernetes.pem` (CN kubernetes-master); upgraded
//! connections (SPDY, WebSocket) are spliced through byte for byte.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::api::ApiError;

/// The TLS client identity the simulator uses towards kubelets.
pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

impl KubeletClient {
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<KubeletClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| e.to_string())?;
        Ok(KubeletClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        })
    }
}

/// Where a node's kubelet listens: InternalIP (else the first address) and
/// daemonEndpoints.kubeletEndpoint.Port.
pub fn kubelet_endpoint(node: &Value) -> Result<(IpAddr, u16), ApiError> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let addrs = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ip = addrs
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| {
            addrs.iter().find(|a| {
                a["address"]
                    .as_str()
                    .is_some_and(|s| s.parse::<IpAddr>().is_ok())
            })
        })
        .and_then(|a| a["address"].as_str())
        .and_then(|s| s.parse::<IpAddr>().ok())
        .ok_or_else(|| {
            ApiError::new(
                500,
                "InternalError",
                format!("node \"{name}\" has no IP address to reach its kubelet"),
            )
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    let port = u16::try_from(port).map_err(|_| {
        ApiError::new(
            500,
            "InternalError",
            format!("node \"{name}\" has an invalid kubelet port {port}"),
        )
    })?;
    Ok((ip, port))
}

const HOP_BY_HOP: &[&str] = &[
    "host",
    "authorization",
    "impersonate-user",
    "impersonate-group",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];

/// Sends `method path_and_query` to the kubelet at `endpoint` and relays the answer. With an
/// upgrade on both sides, the two connections are joined.
pub async fn forward(
    client: &KubeletClient,
    endpoint: (IpAddr, u16),
    method: &str,
    path_and_query: &str,
    headers: &hyper::HeaderMap,
    body: Bytes,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<crate::server::Body>, ApiError> {
    let unavailable = |e: String| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error dialing backend: {e}"),
        )
    };
    let tcp = tokio::net::TcpStream::connect(endpoint)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let tls = client
        .tls
        .connect(ServerName::IpAddress(endpoint.0.into()), tcp)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Full<Bytes>>(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", format!("{}:{}", endpoint.0, endpoint.1));
    for (k, v) in headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            req = req.header(k, v);
        }
    }
    let req = req
        .body(http_body_util::Full::new(body))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut resp: Response<Incoming> = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_up) = client_upgrade else {
            return Err(ApiError::new(
                502,
                "InternalError",
                "the kubelet upgraded a connection the client did not ask to upgrade",
            ));
        };
        let backend_up = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = (client_up.await, backend_up.await) {
                let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            }
        });
        let mut out = Response::new(crate::server::Body::Full(None));
        *out.status_mut() = resp.status();
        *out.headers_mut() = resp.headers().clone();
        return Ok(out);
    }
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(crate::server::Body::Incoming(body));
    *out.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if k != "transfer-encoding" && k != "connection" {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}
