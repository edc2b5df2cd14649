//! The HTTP/2 side of the CRI client: one h2 connection per unix socket, driven on the client's
//! executor thread (smol), re-dialled when the runtime goes away. Calls are independent HTTP/2
//! streams, so one slow call does not hold up the others.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use smol::{Async, Executor};

use super::CriError;
use super::grpc::{self, Code, Decoder};

/// Size limits for one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest response message accepted.
    pub receive: usize,
}

/// One runtime socket and its (lazily dialled) connection.
pub(crate) struct Transport {
    pub endpoint: String,
    path: PathBuf,
    limits: Limits,
    conn: smol::lock::Mutex<Option<Conn>>,
}

#[derive(Clone)]
struct Conn {
    send: SendRequest<Bytes>,
    alive: Arc<AtomicBool>,
}

impl Transport {
    pub fn new(endpoint: String, path: PathBuf, limits: Limits) -> Transport {
        Transport {
            endpoint,
            path,
            limits,
            conn: smol::lock::Mutex::new(None),
        }
    }

    /// One unary call: `body` is the framed request; the answer is the response message bytes.
    /// Deadlines are the caller's (the future is dropped, which resets the stream).
    pub async fn unary(
        &self,
        ex: &Weak<Executor<'static>>,
        method: &'static str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Vec<u8>, CriError> {
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://localhost/runtime.v1.{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", grpc::timeout_value(timeout))
            .header("user-agent", concat!("tinylet/", env!("CARGO_PKG_VERSION")))
            .body(())
            .map_err(|e| self.protocol(method, format!("cannot build the request: {e}")))?;

        // A stream that could not be opened was never seen by the runtime: dial again once.
        let mut attempt = 0;
        let (response, mut stream) = loop {
            attempt += 1;
            let conn = self.connection(ex, method).await?;
            let opened = match conn.send.clone().ready().await {
                Ok(mut send) => send.send_request(request.clone(), false),
                Err(e) => Err(e),
            };
            match opened {
                Ok(pair) => break pair,
                Err(e) => {
                    conn.alive.store(false, Ordering::Release);
                    if attempt >= 2 {
                        return Err(self.transport(method, e));
                    }
                }
            }
        };
        stream
            .send_data(body, true)
            .map_err(|e| self.transport(method, e))?;

        let response = response.await.map_err(|e| self.transport(method, e))?;
        let (parts, mut recv) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(self.protocol(method, format!("HTTP status {}", parts.status)));
        }
        let content_type = parts.headers.get("content-type").map(|v| v.as_bytes());
        if !content_type.is_some_and(|v| v.starts_with(b"application/grpc")) {
            return Err(self.protocol(
                method,
                format!(
                    "content-type {:?}, want application/grpc",
                    content_type
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default()
                ),
            ));
        }
        let status_in_headers = self.status(method, &parts.headers)?;

        let mut decoder = Decoder::new(self.limits.receive);
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| self.transport(method, e))?;
            decoder
                .push(&chunk)
                .map_err(|err| CriError::Frame { method, err })?;
            // Give the window back so large answers keep flowing.
            let _ = recv.flow_control().release_capacity(chunk.len());
        }
        let trailers = recv
            .trailers()
            .await
            .map_err(|e| self.transport(method, e))?;
        let status = match trailers {
            Some(t) => self.status(method, &t)?,
            None => status_in_headers,
        };
        match status {
            None => Err(self.protocol(method, "the response carries no grpc-status".into())),
            Some(s) if s.code != Code::Ok => Err(CriError::Status {
                method,
                code: s.code,
                message: s.message,
            }),
            Some(_) => decoder
                .finish_unary()
                .map_err(|err| CriError::Frame { method, err }),
        }
    }

    fn status(
        &self,
        method: &'static str,
        headers: &http::HeaderMap,
    ) -> Result<Option<grpc::Status>, CriError> {
        grpc::status(
            headers.get("grpc-status").map(|v| v.as_bytes()),
            headers.get("grpc-message").map(|v| v.as_bytes()),
        )
        .map_err(|e| self.protocol(method, e.to_string()))
    }

    /// The live connection, dialled if there is none.
    async fn connection(
        &self,
        ex: &Weak<Executor<'static>>,
        method: &'static str,
    ) -> Result<Conn, CriError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && c.alive.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        *slot = None;
        let stream = Async::<UnixStream>::connect(&self.path)
            .await
            .map_err(|err| CriError::Connect {
                method,
                endpoint: self.endpoint.clone(),
                err,
            })?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .max_header_list_size(64 << 10)
            .handshake::<_, Bytes>(Io::new(stream))
            .await
            .map_err(|e| self.transport(method, e))?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let Some(ex) = ex.upgrade() else {
            return Err(CriError::Closed);
        };
        ex.spawn(async move {
            let _ = connection.await;
            flag.store(false, Ordering::Release);
        })
        .detach();
        let conn = Conn { send, alive };
        *slot = Some(conn.clone());
        Ok(conn)
    }

    fn transport(&self, method: &'static str, err: h2::Error) -> CriError {
        CriError::Transport {
            method,
            endpoint: self.endpoint.clone(),
            err,
        }
    }

    fn protocol(&self, method: &'static str, detail: String) -> CriError {
        CriError::Protocol {
            method,
            endpoint: self.endpoint.clone(),
            detail,
        }
    }
}

/// A smol socket seen through the tokio I/O traits h2 is written against. After a short read
/// the socket is taken as drained and the next read waits for readiness first, which saves the
/// `EAGAIN` read that would otherwise end every burst (tokio does the same). Unix sockets for
/// CRI, TCP for gRPC probes.
pub(crate) struct Io<S> {
    sock: Async<S>,
    drained: bool,
}

impl<S> Io<S> {
    pub(crate) fn new(sock: Async<S>) -> Io<S> {
        Io {
            sock,
            drained: false,
        }
    }
}

impl<S> tokio::io::AsyncRead for Io<S>
where
    for<'a> &'a S: io::Read,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.drained {
                match self.sock.poll_readable(cx) {
                    Poll::Ready(Ok(())) => self.drained = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let dst = buf.initialize_unfilled();
            let want = dst.len();
            match io::Read::read(&mut self.sock.get_ref(), dst) {
                Ok(n) => {
                    buf.advance(n);
                    self.drained = n < want;
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S> tokio::io::AsyncWrite for Io<S>
where
    Async<S>: smol::io::AsyncWrite,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        smol::io::AsyncWrite::poll_write(Pin::new(&mut self.sock), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        smol::io::AsyncWrite::poll_flush(Pin::new(&mut self.sock), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        smol::io::AsyncWrite::poll_close(Pin::new(&mut self.sock), cx)
    }
}
