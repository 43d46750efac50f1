use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::process::EnvoyError;

/// One HTTP/1.1 request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// A `GET` of `path` with no extra headers.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A request with this method and path, no extra headers and no body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to `addr`, over TLS with `tls` (whose client certificate,
/// if any, is presented) or in plain text when `tls` is `None`. The whole
/// exchange is bounded by a timeout so a stuck peer fails the caller.
pub async fn send(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    request: &Request,
) -> Result<Response, EnvoyError> {
    tokio::time::timeout(TIMEOUT, async {
        let tcp = TcpStream::connect(addr).await?;
        match tls {
            None => exchange(tcp, addr, request).await,
            Some(config) => {
                let name = ServerName::try_from("localhost")
                    .map_err(|e| EnvoyError::Client(e.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                exchange(stream, addr, request).await
            }
        }
    })
    .await
    .map_err(|_| EnvoyError::Client(format!("no response from {addr} within {TIMEOUT:?}")))?
}

async fn exchange<S>(stream: S, addr: SocketAddr, request: &Request) -> Result<Response, EnvoyError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client_err = |e: hyper::Error| EnvoyError::Client(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(client_err)?;
    let conn = tokio::spawn(conn);
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str())
        .header(hyper::header::HOST, format!("localhost:{}", addr.port()));
    for (k, v) in &request.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| EnvoyError::Client(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(client_err)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(client_err)?
        .to_bytes()
        .to_vec();
    conn.abort();
    Ok(Response {
        status,
        headers,
        body,
    })
}
