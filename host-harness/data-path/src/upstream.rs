//! The upstream client: HTTP/1.1, plain or mTLS, over a small pool of
//! kept-alive connections.

use std::sync::Mutex;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{Limits, Upstream};
use crate::error::Error;

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream connect error: {0}")]
    Connect(String),
    #[error("upstream reset: {0}")]
    Reset(String),
    #[error("upstream response body over the limit")]
    TooLarge,
}

pub(crate) struct UpstreamClient {
    addr: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
    max_body: usize,
}

/// At most this many idle connections are kept.
const MAX_IDLE: usize = 256;

impl UpstreamClient {
    pub(crate) fn new(upstream: &Upstream, limits: &Limits) -> Result<Self, Error> {
        let (addr, tls) = match upstream {
            Upstream::Http { addr } => (addr.clone(), None),
            Upstream::Mtls {
                addr,
                server_name,
                ca_pem,
                cert_chain_pem,
                key_pem,
            } => {
                let config = crate::tls::client_config(ca_pem, cert_chain_pem, key_pem)?;
                let name = ServerName::try_from(server_name.clone())
                    .map_err(|_| Error::Config(format!("`{server_name}` is not a server name")))?;
                (addr.clone(), Some((TlsConnector::from(config), name)))
            }
        };
        Ok(Self {
            addr,
            tls,
            idle: Mutex::new(Vec::new()),
            timeout: limits.upstream_timeout,
            max_body: limits.max_body_bytes,
        })
    }

    /// Sends `request` and reads the whole response.
    pub(crate) async fn send(
        &self,
        request: &Outgoing,
    ) -> Result<hyper::Response<Bytes>, UpstreamError> {
        tokio::time::timeout(self.timeout, self.send_inner(request))
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    async fn send_inner(
        &self,
        request: &Outgoing,
    ) -> Result<hyper::Response<Bytes>, UpstreamError> {
        let pooled = self.pooled();
        let (mut sender, reused) = match pooled {
            Some(s) => (s, true),
            None => (self.connect().await?, false),
        };
        let response = match sender.send_request(request.build()).await {
            Ok(r) => r,
            // A kept-alive connection the upstream closed meanwhile: the
            // request was not taken, so one fresh connection may try again.
            Err(e) if reused && e.is_canceled() => {
                sender = self.connect().await?;
                sender
                    .send_request(request.build())
                    .await
                    .map_err(|e| UpstreamError::Reset(e.to_string()))?
            }
            Err(e) => return Err(UpstreamError::Reset(e.to_string())),
        };
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    UpstreamError::TooLarge
                } else {
                    UpstreamError::Reset(e.to_string())
                }
            })?
            .to_bytes();
        if !sender.is_closed()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
        }
        Ok(hyper::Response::from_parts(parts, body))
    }

    fn pooled(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| UpstreamError::Connect(format!("{}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| UpstreamError::Connect(format!("{}: tls: {e}", self.addr)))?;
                handshake(tls).await
            }
        }
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| UpstreamError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}

/// A request for the upstream, kept whole so it can be sent again on a
/// fresh connection.
pub(crate) struct Outgoing {
    pub(crate) method: hyper::Method,
    pub(crate) path: String,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Bytes,
}

impl Outgoing {
    fn build(&self) -> hyper::Request<Full<Bytes>> {
        let mut request = hyper::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        if let Ok(uri) = self.path.parse() {
            *request.uri_mut() = uri;
        }
        *request.headers_mut() = self.headers.clone();
        request
    }
}
