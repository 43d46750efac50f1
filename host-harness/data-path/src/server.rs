//! The listener, the per-connection and per-request work, reload and
//! shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use meshward_harness::{Headers, Host, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

use crate::chain::{Chain, ChainOutcome, ChainRequest, ModuleCache};
use crate::config::{Config, Limits};
use crate::error::Error;
use crate::metrics::{Metrics, RequestResult};
use crate::tls::PeerInfo;
use crate::upstream::{Outgoing, UpstreamClient, UpstreamError};

/// Everything one configuration built: what new connections and requests
/// use until the next reload.
struct Generation {
    tls: TlsAcceptor,
    chain: Chain,
    upstream: UpstreamClient,
    limits: Limits,
}

impl Generation {
    fn build(host: &Host, cache: &ModuleCache, config: &Config) -> Result<Self, Error> {
        Ok(Self {
            tls: TlsAcceptor::from(crate::tls::server_config(&config.tls)?),
            chain: Chain::new(host, cache, &config.filters)?,
            upstream: UpstreamClient::new(&config.upstream, &config.limits)?,
            limits: config.limits.clone(),
        })
    }
}

struct Shared {
    current: RwLock<Arc<Generation>>,
    metrics: Arc<Metrics>,
    host: Host,
    modules: ModuleCache,
    connection_ids: AtomicU64,
    open: AtomicUsize,
    closed: Notify,
    listen: SocketAddr,
}

impl Shared {
    fn current(&self) -> Option<Arc<Generation>> {
        self.current.read().ok().map(|g| g.clone())
    }
}

/// A running data path. Dropping it stops accepting; [`DataPath::shutdown`]
/// also lets open connections finish.
pub struct DataPath {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for DataPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPath")
            .field("local_addr", &self.local_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

impl DataPath {
    /// Compiles and starts the filter chain, loads the certificates, binds
    /// the listener (and the metrics endpoint) and starts serving. Must be
    /// called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let host = meshward_harness::Host::with_limits(
            meshward_harness::Limits::default().deadline(config.limits.filter_deadline),
        )
        .map_err(|e| Error::Config(format!("the wasm engine did not start: {e}")))?;
        let modules = ModuleCache::default();
        let (generation, host, modules, config) = tokio::task::spawn_blocking(move || {
            let g = Generation::build(&host, &modules, &config);
            (g, host, modules, config)
        })
        .await
        .map_err(|e| Error::Config(format!("building the configuration failed: {e}")))?;
        let generation = generation?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { addr, source })?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let shared = Arc::new(Shared {
            current: RwLock::new(Arc::new(generation)),
            metrics: Arc::new(Metrics::default()),
            host,
            modules,
            connection_ids: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            listen: config.listen,
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(shared.clone(), listener, stopped.clone()));
        if let Some(l) = metrics_listener {
            tokio::spawn(metrics_loop(shared.metrics.clone(), l, stopped));
        }
        tracing::info!(%local_addr, ?metrics_addr, filters = config.filters.len(), "data path listening");
        Ok(Self {
            shared,
            local_addr,
            metrics_addr,
            stop,
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics endpoint's address, if it has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The metrics, as the endpoint serves them.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Replaces the filter chain, certificates, trust bundles, upstream and
    /// limits. Nothing is dropped: requests already in the chain finish
    /// with the old one; new connections, and new requests on open
    /// connections, get the new one. A configuration that does not build is
    /// refused and the old one stays. The listen addresses cannot change.
    /// Every refusal is logged (`configuration refused; the previous one
    /// stays`, with the reason) and counted in
    /// `meshward_config_reloads_total{result="failed"}`.
    pub async fn reload(&self, config: Config) -> Result<(), Error> {
        if config.listen != self.shared.listen {
            let e = Error::Config("a reload cannot change the listen address".to_owned());
            self.reload_refused(&e);
            return Err(e);
        }
        let shared = self.shared.clone();
        let built = tokio::task::spawn_blocking(move || {
            Generation::build(&shared.host, &shared.modules, &config)
        })
        .await
        .map_err(|e| Error::Config(format!("building the configuration failed: {e}")))
        .and_then(|g| g);
        match built {
            Ok(generation) => {
                if let Ok(mut current) = self.shared.current.write() {
                    *current = Arc::new(generation);
                }
                self.shared.metrics.reload(true);
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.reload_refused(&e);
                Err(e)
            }
        }
    }

    /// Records a reload that was refused before it reached
    /// [`DataPath::reload`] (a configuration file that does not parse, a
    /// policy that does not validate), as a refused reload is: logged with
    /// its reason, counted, the running configuration kept.
    pub fn reload_refused(&self, reason: &dyn std::fmt::Display) {
        self.shared.metrics.reload(false);
        tracing::warn!(error = %reason, "configuration refused; the previous one stays");
    }

    /// Stops accepting, lets open connections finish their requests (HTTP/2
    /// GOAWAY, HTTP/1.1 `connection: close`) for up to the drain timeout,
    /// then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let drain = self
            .shared
            .current()
            .map(|g| g.limits.drain_timeout)
            .unwrap_or_default();
        let wait = async {
            loop {
                let closed = self.shared.closed.notified();
                if self.shared.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                closed.await;
            }
        };
        let _ = tokio::time::timeout(drain, wait).await;
    }
}

impl Drop for DataPath {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    shared.open.fetch_add(1, Ordering::AcqRel);
                    let shared = shared.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        shared.metrics.connection_opened();
                        connection(&shared, tcp, peer, stop).await;
                        shared.metrics.connection_closed();
                        if shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
                            shared.closed.notify_waiters();
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep going.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn connection(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let Some(generation) = shared.current() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().unwrap_or(shared.listen);
    let limits = generation.limits.clone();
    let accepted = tokio::time::timeout(limits.handshake_timeout, generation.tls.accept(tcp)).await;
    drop(generation);
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.handshake(false);
            tracing::info!(%peer, error = %e, "tls handshake refused");
            return;
        }
        Err(_) => {
            shared.metrics.handshake(false);
            tracing::info!(%peer, "tls handshake timed out");
            return;
        }
    };
    shared.metrics.handshake(true);
    let info = PeerInfo::of(tls.get_ref().1);
    let id = shared.connection_ids.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, peer_id = info.spiffe_id.as_deref().unwrap_or("-"), "connection");
    let properties: Arc<[(&'static str, Value)]> =
        connection_properties(&info, peer, local, id).into();
    let service_shared = shared.clone();
    let service = hyper::service::service_fn(move |request| {
        let shared = service_shared.clone();
        let properties = properties.clone();
        async move { handle(&shared, &properties, request).await }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.drain_timeout, conn.as_mut()).await;
        }
    }
}

/// The properties Envoy shows a filter for a connection.
fn connection_properties(
    info: &PeerInfo,
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
) -> Vec<(&'static str, Value)> {
    let mtls = info.cert_pem.is_some();
    let mut p: Vec<(&'static str, Value)> = vec![
        ("connection.mtls", Value::Bool(mtls)),
        ("connection.id", Value::Uint(id)),
        ("source.address", Value::string(peer.to_string())),
        ("source.port", Value::Int(i64::from(peer.port()))),
        ("destination.address", Value::string(local.to_string())),
        ("destination.port", Value::Int(i64::from(local.port()))),
    ];
    if mtls {
        // A certificate that did not verify fails the handshake, so one
        // that is here is valid: Envoy's verdict under full verification.
        p.push(("connection.peer_certificate_valid", Value::Bool(true)));
    }
    let mut text = |name: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            p.push((name, Value::string(v.clone())));
        }
    };
    text("connection.uri_san_peer_certificate", &info.spiffe_id);
    text("connection.peer_certificate", &info.cert_pem);
    text("connection.sha256_peer_certificate_digest", &info.sha256);
    text("connection.subject_peer_certificate", &info.subject);
    text("connection.requested_server_name", &info.sni);
    if let Some(v) = info.tls_version {
        p.push(("connection.tls_version", Value::string(v)));
    }
    p
}

type Reply = Response<Full<Bytes>>;

/// A stream reset, as a filter asked for: hyper closes the stream (HTTP/2
/// RST_STREAM) or the connection (HTTP/1.1) without a response.
#[derive(Debug, thiserror::Error)]
#[error("the filter chain reset the stream")]
struct StreamReset;

async fn handle(
    shared: &Shared,
    properties: &[(&'static str, Value)],
    request: Request<Incoming>,
) -> Result<Reply, StreamReset> {
    let start = Instant::now();
    let Some(generation) = shared.current() else {
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "no configuration\n"));
    };
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let (result, response) = decide_and_forward(shared, &generation, properties, request).await?;
    let took = start.elapsed();
    shared.metrics.request(result, took);
    tracing::info!(
        target: "meshward::access",
        %method,
        path = %path,
        status = response.status().as_u16(),
        peer = properties.iter().find(|(k, _)| *k == "connection.uri_san_peer_certificate").map(|(_, v)| String::from_utf8_lossy(&v.encode()).into_owned()).unwrap_or_else(|| "-".to_owned()),
        micros = took.as_micros() as u64,
    );
    Ok(response)
}

async fn decide_and_forward(
    shared: &Shared,
    generation: &Generation,
    properties: &[(&'static str, Value)],
    request: Request<Incoming>,
) -> Result<(RequestResult, Reply), StreamReset> {
    let limits = &generation.limits;
    if request.headers().len() > limits.max_headers {
        return Ok((
            RequestResult::Rejected,
            plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many headers\n",
            ),
        ));
    }
    let (parts, body) = request.into_parts();
    let Some(authority) = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
    else {
        return Ok((
            RequestResult::Rejected,
            plain(StatusCode::BAD_REQUEST, "missing host\n"),
        ));
    };
    let mut headers: Headers = Vec::with_capacity(parts.headers.len() + 4);
    headers.push((":authority".into(), authority.into()));
    headers.push((
        ":path".into(),
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .into(),
    ));
    headers.push((":method".into(), parts.method.as_str().into()));
    headers.push((":scheme".into(), "https".into()));
    for (name, value) in &parts.headers {
        if *name == hyper::header::HOST {
            continue;
        }
        let Ok(value) = value.to_str() else {
            return Ok((
                RequestResult::Rejected,
                plain(StatusCode::BAD_REQUEST, "a header value is not text\n"),
            ));
        };
        headers.push((name.as_str().to_owned(), value.into()));
    }
    let body = match Limited::new(body, limits.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok((
                RequestResult::Rejected,
                plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            ));
        }
        Err(_) => {
            return Ok((
                RequestResult::Rejected,
                plain(StatusCode::BAD_REQUEST, "the request body broke off\n"),
            ));
        }
    };

    let chain_start = Instant::now();
    let (outcome, failures) = generation.chain.run(ChainRequest {
        headers,
        body: body.to_vec(),
        properties,
    });
    let chain_took = chain_start.elapsed();
    let mut failed_closed = false;
    for f in &failures {
        shared.metrics.filter_failure(&f.filter, f.fail_open);
        failed_closed |= !f.fail_open;
        tracing::error!(
            filter = %f.filter,
            fail_open = f.fail_open,
            error = %f.message,
            "filter failed; {}",
            if f.fail_open { "the request goes on without it (fail_open)" } else { "the request is answered 503" }
        );
    }
    match outcome {
        ChainOutcome::Forward { headers, body } => {
            shared.metrics.decision(true, "allowed", chain_took);
            let outgoing = outgoing(&headers, body)?;
            match generation.upstream.send(&outgoing).await {
                Ok(response) => Ok((RequestResult::Forwarded, downstream(response))),
                Err(e) => {
                    tracing::warn!(error = %e, "upstream failed");
                    let status = match e {
                        UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                        _ => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    Ok((
                        RequestResult::UpstreamError,
                        plain(status, &format!("{e}\n")),
                    ))
                }
            }
        }
        ChainOutcome::Reply {
            status,
            headers,
            body,
        } => {
            // A filter that failed closed answered for the host: that is
            // the reason, whatever the reply carries.
            let reason = if failed_closed {
                "filter_failed".to_owned()
            } else {
                meshward_harness_header(&headers, "x-meshward-deny-reason")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("local_reply_{status}"))
            };
            shared.metrics.decision(false, &reason, chain_took);
            Ok((
                RequestResult::LocalReply,
                local_reply(status, &headers, body),
            ))
        }
        ChainOutcome::Reset => {
            shared.metrics.decision(false, "reset", chain_took);
            Err(StreamReset)
        }
        ChainOutcome::Stalled => {
            shared.metrics.decision(false, "stalled", chain_took);
            Ok((
                RequestResult::FilterError,
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "a filter paused the request and never resumed it\n",
                ),
            ))
        }
        ChainOutcome::Unavailable(e) => {
            shared
                .metrics
                .decision(false, "filter_unavailable", chain_took);
            tracing::error!(error = %e, "no filter instance");
            Ok((
                RequestResult::FilterError,
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "filter chain unavailable\n",
                ),
            ))
        }
    }
}

fn meshward_harness_header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.to_str())
}

/// Hop-by-hop headers, which belong to one connection and are never
/// forwarded (RFC 9110 section 7.6.1), plus `content-length`, which hyper
/// recomputes from the body it sends.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

fn outgoing(headers: &Headers, body: Vec<u8>) -> Result<Outgoing, StreamReset> {
    let mut method = Method::GET;
    let mut path = "/".to_owned();
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        match name.as_str() {
            ":method" => method = Method::from_bytes(value.as_bytes()).map_err(|_| StreamReset)?,
            ":path" => path = String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ":authority" => {
                if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                    map.insert(hyper::header::HOST, v);
                }
            }
            n if n.starts_with(':') || hop_by_hop(n) => {}
            n => {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_bytes(value.as_bytes()),
                ) {
                    map.append(k, v);
                }
            }
        }
    }
    map.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    Ok(Outgoing {
        method,
        path,
        headers: map,
        body: Bytes::from(body),
    })
}

fn downstream(response: Response<Bytes>) -> Reply {
    let (mut parts, body) = response.into_parts();
    let hop: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|k| hop_by_hop(k.as_str()))
        .cloned()
        .collect();
    for k in hop {
        parts.headers.remove(k);
    }
    Response::from_parts(parts, Full::new(body))
}

fn local_reply(status: u16, headers: &Headers, body: Vec<u8>) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    for (name, value) in headers {
        if name.starts_with(':') || hop_by_hop(name) {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

fn plain(status: StatusCode, body: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

async fn metrics_loop(
    metrics: Arc<Metrics>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let response = if request.uri().path() == "/metrics" {
                        let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        plain(StatusCode::NOT_FOUND, "only /metrics here\n")
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
