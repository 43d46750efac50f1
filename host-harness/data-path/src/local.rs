//! The two ends a local demo or test needs around a data path: an echo
//! application to forward to, and an mTLS client that presents an SVID.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// An HTTP/1.1 application on 127.0.0.1 that answers every request with
/// `200` and a JSON echo of its method, path and headers. Stops when
/// dropped.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoUpstream {
    /// Binds a free port and starts answering.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(echo))
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut json = String::from("{\"method\":");
    push_json_string(&mut json, request.method().as_str());
    json.push_str(",\"path\":");
    push_json_string(
        &mut json,
        request.uri().path_and_query().map_or("/", |p| p.as_str()),
    );
    json.push_str(",\"headers\":{");
    for (i, (k, v)) in request.headers().iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, k.as_str());
        json.push(':');
        push_json_string(&mut json, &String::from_utf8_lossy(v.as_bytes()));
    }
    json.push_str("}}");
    let mut response = Response::new(Full::new(Bytes::from(json)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A response as a [`Client`] received it.
#[derive(Clone, Debug)]
pub struct ClientResponse {
    /// The status.
    pub status: u16,
    /// The headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The HTTP version spoken (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
}

impl ClientResponse {
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

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One TLS connection to a data path (or Envoy), HTTP/2 when the server
/// agrees to it by ALPN and the client asked for it, HTTP/1.1 otherwise.
pub struct Client {
    sender: Sender,
    authority: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr`, verifying the server as `server_name`, with
    /// `config` (which decides the client certificate, if any).
    pub async fn connect(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
        http2: bool,
    ) -> Result<Self, String> {
        let mut config = (*config).clone();
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| format!("`{server_name}` is not a server name"))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let sender = if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("http/2: {e}"))?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http/1.1: {e}"))?;
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(Self {
            sender,
            authority: format!("{server_name}:{}", addr.port()),
        })
    }

    /// Sends one request and reads the whole response. A server that
    /// closes the connection or resets the stream is an error.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<ClientResponse, String> {
        let mut builder = Request::builder().method(method);
        builder = match self.sender {
            Sender::H1(_) => builder.uri(path).header("host", &self.authority),
            Sender::H2(_) => builder.uri(format!("https://{}{path}", self.authority)),
        };
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(request).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(request).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let version = format!("{:?}", response.version());
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(ClientResponse {
            status,
            headers,
            body,
            version,
        })
    }
}
