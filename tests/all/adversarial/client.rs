//! A client that sends exactly the bytes a test asks for, over TLS to the
//! sidecar: HTTP/1.1 written by hand (`--path-as-is` paths, any method
//! spelling, any header bytes) and HTTP/2 through hyper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    H1,
    H2,
}

/// One request, as bytes.
#[derive(Debug, Clone)]
pub struct Raw {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    /// `None`: `localhost:<port>`.
    pub authority: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Raw {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.as_bytes().to_vec(),
            path: path.as_bytes().to_vec(),
            authority: None,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_ref().to_vec()));
        self
    }
}

/// What came back; `status` 0 when the server closed or reset the stream
/// without a response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The echo application's view of the request, when it was forwarded.
    pub fn echoed(&self) -> Option<serde_json::Value> {
        if self.status != 200 {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn send(
    addr: SocketAddr,
    tls: &rustls::ClientConfig,
    version: Version,
    req: &Raw,
) -> Reply {
    tokio::time::timeout(TIMEOUT, async {
        let mut config = tls.clone();
        config.alpn_protocols = match version {
            Version::H1 => vec![b"http/1.1".to_vec()],
            Version::H2 => vec![b"h2".to_vec()],
        };
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        match version {
            Version::H1 => h1(stream, addr, req).await,
            Version::H2 => h2(stream, addr, req).await,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no response within {TIMEOUT:?} to {req:?}"))
}

async fn h1<S>(mut stream: S, addr: SocketAddr, req: &Raw) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    out.extend_from_slice(&req.method);
    out.push(b' ');
    out.extend_from_slice(&req.path);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match &req.authority {
        Some(a) => out.extend_from_slice(a),
        None => out.extend_from_slice(format!("localhost:{}", addr.port()).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (k, v) in &req.headers {
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    stream.write_all(&out).await.unwrap();
    let mut all = Vec::new();
    // A reset after the response is still a response.
    let _ = stream.read_to_end(&mut all).await;
    parse_h1(&all)
}

fn parse_h1(all: &[u8]) -> Reply {
    let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply {
            status: 0,
            headers: Vec::new(),
            body: all.to_vec(),
        };
    };
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = all[end + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Reply {
        status,
        headers,
        body,
    }
}

async fn h2<S>(stream: S, addr: SocketAddr, req: &Raw) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let authority = match &req.authority {
        Some(a) => String::from_utf8_lossy(a).into_owned(),
        None => format!("localhost:{}", addr.port()),
    };
    let uri = format!("https://{authority}{}", String::from_utf8_lossy(&req.path));
    let mut builder = hyper::Request::builder()
        .method(hyper::Method::from_bytes(&req.method).unwrap())
        .uri(uri.as_str());
    for (k, v) in &req.headers {
        builder = builder.header(
            hyper::header::HeaderName::from_bytes(k).unwrap(),
            hyper::header::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    let request = builder.body(Empty::<Bytes>::new()).unwrap();
    let reply = match sender.send_request(request).await {
        Ok(resp) => {
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
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            Reply {
                status,
                headers,
                body,
            }
        }
        // A stream reset (Envoy refusing a malformed request) has no status.
        Err(e) => Reply {
            status: 0,
            headers: Vec::new(),
            body: e.to_string().into_bytes(),
        },
    };
    conn.abort();
    reply
}
