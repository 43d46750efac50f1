//! A decision through the compiled authorization filter in the harness
//! equals the native engine's for the same request. Fuzz input picks the
//! peer, method, authority, headers and a path built from the pieces that
//! walk-arounds are made of; the policies are the shipped walk-around set.
//! Shared by the `authz_differential` fuzz target and the regression test
//! in `tests/all`.

use meshward_harness::{Filter, Plugin, PluginConfig, Properties, Request};
use meshward_identity::SpiffeId;
use meshward_policy::{PathOptions, PolicyEngine, RequestFacts};

/// The policies both sides decide with.
pub const POLICIES: &str = include_str!("../../../../policies/walkaround.cedar");

/// Where the identity filter hands the peer over (`meshward_filter_glue::PEER_ID_PROPERTY`;
/// the fuzz crate does not link the glue).
const PEER_PROPERTY: &str = "meshward.peer_id";

const PEERS: [Option<&str>; 4] = [
    None,
    Some("spiffe://example.org/ns/shop/sa/web"),
    Some("spiffe://example.org/ns/other/sa/web"),
    Some("spiffe://example.org/ns/shop/../sa"),
];
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "DELETE", "get", "PROPFIND", "OPTIONS", "TRACE",
];
const AUTHORITIES: [&str; 6] = [
    "catalog.shop.svc",
    "CATALOG.shop.svc.",
    "catalog.shop.svc:8080",
    "admin.example.com:8443",
    "user@admin.example.com",
    "localhost:8443",
];
const PIECES: [&str; 20] = [
    "/",
    "admin",
    "..",
    ".",
    "%2e",
    "%2E%2e",
    "%2F",
    "%5C",
    "//",
    "api",
    "?",
    "admin=1",
    "&",
    "%61dmin",
    "%",
    ";",
    "a=1",
    "admin%3D1",
    "#",
    "\\",
];
const HEADER_NAMES: [&str; 6] = [
    "x-debug",
    "x-debug",
    "x_debug",
    "x-meshward-peer-id",
    "x-user",
    "accept",
];
const HEADER_VALUES: [&str; 6] = [
    "1",
    "0",
    "0,1",
    " 1 ",
    "1, 1",
    "spiffe://example.org/ns/shop/sa/web",
];

/// One request, as both sides see it.
#[derive(Debug)]
pub struct Case {
    peer: Option<&'static str>,
    method: &'static str,
    authority: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
}

fn pick<T: Copy>(list: &[T], b: u8) -> T {
    let i = usize::from(b) % list.len();
    *list
        .get(i)
        .unwrap_or_else(|| unreachable!("index is reduced mod the length"))
}

impl Case {
    /// Decodes `data`; every input is a case.
    pub fn new(data: &[u8]) -> Self {
        let mut it = data.iter().copied();
        let mut next = || it.next().unwrap_or(0);
        let peer = pick(&PEERS, next());
        let method = pick(&METHODS, next());
        let authority = pick(&AUTHORITIES, next());
        let headers = (0..next() % 4)
            .map(|_| (pick(&HEADER_NAMES, next()), pick(&HEADER_VALUES, next())))
            .collect();
        let mut path = String::from("/");
        for _ in 0..next() % 12 {
            path.push_str(pick(&PIECES, next()));
        }
        Self {
            peer,
            method,
            authority,
            path,
            headers,
        }
    }

    fn native(&self) -> RequestFacts {
        let mut facts = RequestFacts::from_raw(
            self.method.as_bytes(),
            self.authority.as_bytes(),
            self.path.as_bytes(),
            &PathOptions::default(),
        );
        if let Some(peer) = self.peer.and_then(|p| SpiffeId::parse(p).ok()) {
            facts = facts.with_peer(peer);
        }
        facts.mtls = true;
        for (k, v) in &self.headers {
            // The filter removes client copies of its identity headers in
            // every spelling; they are no fact.
            if k.replace('_', "-") != "x-meshward-peer-id" {
                facts.headers.push(*k, *v);
            }
        }
        facts
    }
}

/// The authorization filter's configuration for the walk-around policies,
/// through the tests' one configuration function.
pub fn config(authz_filter_config: fn(&serde_json::Value) -> String) -> String {
    authz_filter_config(&serde_json::json!({
        "cedar": {"policies": POLICIES},
        "peer_from": "identity_filter",
    }))
}

/// Starts the compiled filter with `config` on an mTLS connection.
pub fn plugin(filter: &Filter, config: &str) -> Plugin {
    filter
        .start(
            PluginConfig::new()
                .configuration(config.to_owned())
                .properties(&Properties::istio_inbound_mtls(
                    "spiffe://example.org/ns/shop/sa/web",
                    "",
                )),
        )
        .unwrap_or_else(|e| panic!("the authorization filter did not start: {e}"))
}

/// Decides `data`'s request natively and in `plugin`, and panics if they
/// differ.
pub fn check(engine: &PolicyEngine, plugin: &mut Plugin, data: &[u8]) {
    let case = Case::new(data);
    let facts = case.native();
    let native = engine.decide(&facts);
    let mut req = Request::new(case.method, &case.path).set_header(":authority", case.authority);
    for (k, v) in &case.headers {
        req = req.header(k, v);
    }
    if let Some(peer) = case.peer {
        req = req.property(PEER_PROPERTY, peer);
    }
    let exchange = plugin.send(req);
    assert!(
        exchange.failure.is_none(),
        "{case:?}: the VM failed: {:?}",
        exchange.failure
    );
    assert_eq!(
        exchange.forwarded(),
        native.allowed,
        "{case:?}: the filter and the engine disagree; native {native:?}, filter {} {}",
        exchange.status(),
        exchange.body_text()
    );
    if native.allowed {
        let sent = facts.rewritten_path().unwrap_or(&case.path);
        assert_eq!(
            exchange.upstream_header(":path"),
            Some(sent),
            "{case:?}: forwarded another path"
        );
    } else {
        assert!(
            matches!(exchange.status(), 400..=599),
            "{case:?}: denied with {}",
            exchange.status()
        );
    }
}
