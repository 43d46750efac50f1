//! One request through both stages, over a small host trait: the same steps
//! as the wasm chain (`filters/authz-filter/src/chain.rs`), in the same
//! order, so the two forms reach the same decision on the same request.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meshward_identity::{AuthnConfig, Identity, PeerFacts, SpiffeId, authenticate};
use meshward_policy::RequestFacts;
use serde_json::{Map, Value};

use crate::chain::ChainConfig;
use crate::config::{FilterConfig, PathNotNormal};
use crate::outcome::{IdentityOutcome, Level, Outcome, Reply, Subject};

/// What the module asks of Envoy while it decides one request.
pub(crate) trait Host {
    /// Every request header, pseudo-headers included, in order.
    fn request_headers(&self) -> Vec<(String, Vec<u8>)>;
    /// Replaces (or, with `None`, removes) request header `name`.
    fn set_request_header(&self, name: &str, value: Option<&[u8]>);
    /// What Envoy knows of the downstream connection.
    fn connection(&self) -> Connection;
    /// Whether a line at `level` would be kept.
    fn log_enabled(&self, level: Level) -> bool;
    fn log(&self, level: Level, line: &str);
    /// Answers the request locally.
    fn reply(&self, reply: &Reply);
    fn now(&self) -> SystemTime;
}

/// The downstream connection's facts, as Envoy's attributes give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Connection {
    /// A client certificate was presented (`connection.mtls`); `None` on a
    /// connection without TLS.
    pub(crate) mtls: Option<bool>,
    /// The first URI SAN of the peer certificate.
    pub(crate) uri_san: Option<Vec<u8>>,
    /// `source.address`: `ip:port`, or the bare IP with `source_port`.
    pub(crate) source_address: Option<Vec<u8>>,
    pub(crate) source_port: Option<u64>,
    pub(crate) destination_port: Option<u64>,
    pub(crate) requested_server_name: Option<Vec<u8>>,
}

impl Connection {
    /// A certificate was presented. Envoy hands a dynamic module no verdict
    /// on its chain (the wasm filters read `connection.peer_certificate_valid`);
    /// the listener's TLS context verifies it, which is Envoy's default, and
    /// the documented requirement for this form.
    fn presented(&self) -> bool {
        self.mtls == Some(true)
    }

    fn source(&self) -> Option<SocketAddr> {
        let text = std::str::from_utf8(self.source_address.as_deref()?).ok()?;
        text.parse::<SocketAddr>().ok().or_else(|| {
            let ip = text.parse::<IpAddr>().ok()?;
            let port = u16::try_from(self.source_port?).ok()?;
            Some(SocketAddr::new(ip, port))
        })
    }
}

/// Whether the request continues upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Continue,
    Stop,
}

/// Decides one request and acts on it: a local reply, or the request
/// continues with its path in the decided form and the verified identity in
/// the application's headers.
pub(crate) fn on_request_headers(config: &ChainConfig, host: &impl Host) -> Action {
    let headers = host.request_headers();
    let conn = host.connection();
    let request_id =
        || header(&headers, "x-request-id").map(|b| String::from_utf8_lossy(b).into_owned());
    let verdict = identify(&config.identity, &headers, &conn, host.now());
    if host.log_enabled(verdict.level()) {
        host.log(verdict.level(), &verdict.log_line(request_id().as_deref()));
    }
    let identity = match verdict {
        IdentityOutcome::Allowed(identity) => identity,
        denied => {
            if let Some(reply) = denied.reply() {
                host.reply(&reply);
            }
            return Action::Stop;
        }
    };
    let handover = Handover {
        peer: identity.peer.clone(),
        jwt_claims: identity.end_user.as_ref().map(|u| u.claims.clone()),
    };
    let mut facts = facts(&config.authz, &headers, &conn, host.now());
    facts.peer = Some(handover.peer.clone());
    facts.jwt_claims = handover.jwt_claims.clone().map(Value::Object);
    let outcome = decide(&config.authz, &facts);
    if let Some(level) = outcome.log_level(config.authz.decision_log)
        && host.log_enabled(level)
    {
        let request_id = request_id();
        let subject = Subject {
            principal: facts.peer.as_ref().map(SpiffeId::as_str),
            action: &facts.method,
            resource: &facts.host,
            path: &facts.path,
            request_id: request_id.as_deref(),
        };
        host.log(level, &outcome.log_line(&subject));
    }
    if let Some(reply) = outcome.reply(&config.authz.deny) {
        host.reply(&reply);
        return Action::Stop;
    }
    if let Some(path) = facts.rewritten_path() {
        host.set_request_header(":path", Some(path.as_bytes()));
    }
    forward_identity(host, &config.identity, &identity, &handover, &headers);
    let ours = &config.authz.identity_headers;
    let theirs = config.identity.forward();
    if ours.peer_id != theirs.peer_id || ours.jwt_claims != theirs.jwt_claims {
        let names = IdentityHeaders {
            peer_id: &ours.peer_id,
            jwt_claims: &ours.jwt_claims,
            others: &[],
        };
        names.scrub(host, &headers);
        names.write(host, &handover);
    }
    Action::Continue
}

fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The identity check, from the headers the configuration names and the
/// connection's facts.
fn identify(
    config: &AuthnConfig,
    headers: &[(String, Vec<u8>)],
    conn: &Connection,
    now: SystemTime,
) -> IdentityOutcome {
    let wanted = config.request_headers();
    let mut text = Vec::new();
    for (name, value) in headers {
        if wanted.iter().any(|w| w.eq_ignore_ascii_case(name)) {
            let Ok(value) = String::from_utf8(value.clone()) else {
                return IdentityOutcome::NotText(name.clone());
            };
            text.push((name.clone(), value));
        }
    }
    let facts = PeerFacts {
        mtls: conn.mtls.map(|m| vec![u8::from(m)]),
        uri_san: conn.uri_san.clone(),
        // Envoy gives a dynamic module no peer certificate: a configuration
        // that checks it finds none and denies.
        peer_certificate: None,
        headers: text,
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match authenticate(config, &facts, now) {
        Ok(identity) => IdentityOutcome::Allowed(Box::new(identity)),
        Err(denial) => IdentityOutcome::Denied(denial),
    }
}

/// The engine's verdict, or the refusal of a path not in normal form.
fn decide(config: &FilterConfig, facts: &RequestFacts) -> Outcome {
    if facts.rewritten_path().is_some() && config.path_not_normal == PathNotNormal::Refuse {
        Outcome::NotNormal
    } else {
        Outcome::new(config.engine.decide(facts), config.engine.mode())
    }
}

/// Everything the engine may look at but the peer.
fn facts(
    config: &FilterConfig,
    headers: &[(String, Vec<u8>)],
    conn: &Connection,
    now: SystemTime,
) -> RequestFacts {
    let pseudo = |name: &str| header(headers, name).unwrap_or_default();
    let mut facts = RequestFacts::from_raw(
        pseudo(":method"),
        pseudo(":authority"),
        pseudo(":path"),
        &config.path_normalization,
    );
    let ours = IdentityHeaders {
        peer_id: &config.identity_headers.peer_id,
        jwt_claims: &config.identity_headers.jwt_claims,
        others: &[],
    };
    let copies = ours.client_copies(headers);
    // A client's copy of an identity header is no fact: the verified
    // identity is the principal, and the copy is removed before forwarding.
    // Headers no policy reads cannot change the decision: not copying them
    // keeps a request's cost from growing with its headers.
    facts.headers = config.engine.headers_read(headers, &copies);
    facts.mtls = conn.presented();
    facts.port = conn
        .destination_port
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    facts.source = conn.source();
    facts.sni = conn
        .requested_server_name
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    facts.time = now;
    facts
}

/// The verified identity, as the wasm filters hand it over.
struct Handover {
    peer: SpiffeId,
    jwt_claims: Option<Map<String, Value>>,
}

/// Client copies of every header the identity stage vouches for are
/// removed, then the verified values set.
fn forward_identity(
    host: &impl Host,
    config: &AuthnConfig,
    identity: &Identity,
    handover: &Handover,
    headers: &[(String, Vec<u8>)],
) {
    let names = IdentityHeaders {
        peer_id: &config.forward().peer_id,
        jwt_claims: &config.forward().jwt_claims,
        others: &identity.headers_to_remove,
    };
    names.scrub(host, headers);
    names.write(host, handover);
    for (name, value) in &identity.headers_to_set {
        host.set_request_header(name, Some(value.as_bytes()));
    }
}

/// Whether header name `actual` is a spelling of `name`: equal up to ASCII
/// case with `_` and `-` interchangeable, as servers that fold both into one
/// variable read them (the wasm filters' rule).
fn spells(actual: &str, name: &str) -> bool {
    let fold = |b: u8| {
        if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    actual.len() == name.len()
        && actual
            .bytes()
            .zip(name.bytes())
            .all(|(a, n)| fold(a) == fold(n))
}

/// The names of the identity headers for the application.
struct IdentityHeaders<'a> {
    peer_id: &'a str,
    jwt_claims: &'a str,
    others: &'a [String],
}

impl IdentityHeaders<'_> {
    fn client_copies<'h>(&self, present: &'h [(String, Vec<u8>)]) -> Vec<&'h str> {
        let mut names: Vec<&str> = present
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                spells(n, self.peer_id)
                    || spells(n, self.jwt_claims)
                    || self.others.iter().any(|o| spells(n, o))
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    fn scrub(&self, host: &impl Host, present: &[(String, Vec<u8>)]) {
        for name in self.client_copies(present) {
            host.set_request_header(name, None);
        }
        host.set_request_header(self.peer_id, None);
        host.set_request_header(self.jwt_claims, None);
    }

    fn write(&self, host: &impl Host, handover: &Handover) {
        host.set_request_header(self.peer_id, Some(handover.peer.as_str().as_bytes()));
        if let Some(claims) = &handover.jwt_claims {
            let json = Value::Object(claims.clone()).to_string();
            host.set_request_header(
                self.jwt_claims,
                Some(URL_SAFE_NO_PAD.encode(json).as_bytes()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    struct Fake {
        headers: Vec<(String, Vec<u8>)>,
        conn: Connection,
        set: RefCell<Vec<(String, Option<Vec<u8>>)>>,
        replies: RefCell<Vec<Reply>>,
        logs: RefCell<Vec<String>>,
    }

    impl Host for Fake {
        fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
            self.headers.clone()
        }
        fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
            self.set
                .borrow_mut()
                .push((name.to_owned(), value.map(<[u8]>::to_vec)));
        }
        fn connection(&self) -> Connection {
            self.conn.clone()
        }
        fn log_enabled(&self, _: Level) -> bool {
            true
        }
        fn log(&self, _: Level, line: &str) {
            self.logs.borrow_mut().push(line.to_owned());
        }
        fn reply(&self, reply: &Reply) {
            self.replies.borrow_mut().push(reply.clone());
        }
        fn now(&self) -> SystemTime {
            SystemTime::now()
        }
    }

    fn config(policies: &str) -> ChainConfig {
        let authz = meshward_policy_cedar::compile_filter_config(
            &serde_json::json!({"cedar": {"policies": policies}}).to_string(),
        )
        .unwrap();
        let json = format!(
            r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {authz}}}"#
        );
        ChainConfig::from_json("meshward", json.as_bytes()).unwrap()
    }

    fn request(peer: Option<&str>, path: &str) -> Fake {
        Fake {
            headers: vec![
                (":method".to_owned(), b"GET".to_vec()),
                (":authority".to_owned(), b"app".to_vec()),
                (":path".to_owned(), path.as_bytes().to_vec()),
                (
                    "x_meshward_peer_id".to_owned(),
                    b"spiffe://example.org/forged".to_vec(),
                ),
            ],
            conn: Connection {
                mtls: Some(peer.is_some()),
                uri_san: peer.map(|p| p.as_bytes().to_vec()),
                source_address: Some(b"127.0.0.1".to_vec()),
                source_port: Some(4000),
                destination_port: Some(15006),
                requested_server_name: None,
            },
            ..Fake::default()
        }
    }

    const ADMIN: &str =
        r#"@id("admin") permit(principal, action, resource) when { context.path like "/admin*" };"#;

    #[test]
    fn allows_forwards_the_verified_peer_and_scrubs_forgeries() {
        let c = config(ADMIN);
        let host = request(Some("spiffe://example.org/ns/a/sa/b"), "/admin/x");
        assert_eq!(on_request_headers(&c, &host), Action::Continue);
        assert!(host.replies.borrow().is_empty());
        let set = host.set.borrow();
        assert!(set.contains(&("x_meshward_peer_id".to_owned(), None)));
        assert_eq!(
            set.last().unwrap(),
            &(
                "x-meshward-peer-id".to_owned(),
                Some(b"spiffe://example.org/ns/a/sa/b".to_vec())
            )
        );
        assert!(
            host.logs
                .borrow()
                .iter()
                .any(|l| l.contains(r#""determining":["admin"]"#))
        );
    }

    #[test]
    fn denies_as_the_wasm_filters_answer() {
        let c = config(ADMIN);
        let host = request(Some("spiffe://example.org/ns/a/sa/b"), "/other");
        assert_eq!(on_request_headers(&c, &host), Action::Stop);
        let reply = host.replies.borrow()[0].clone();
        assert_eq!(reply.status, 403);
        assert_eq!(reply.body, "meshward: access denied: no_permit\n");

        // No certificate: the identity stage denies before any policy.
        let host = request(None, "/admin");
        assert_eq!(on_request_headers(&c, &host), Action::Stop);
        let reply = host.replies.borrow()[0].clone();
        assert_eq!(reply.status, 403);
        assert!(host.logs.borrow()[0].starts_with("meshward-identity decision "));
        assert!(host.set.borrow().is_empty());
    }

    #[test]
    fn source_address_reads_both_spellings() {
        let mut c = Connection {
            source_address: Some(b"10.0.0.1:7".to_vec()),
            ..Connection::default()
        };
        assert_eq!(c.source(), "10.0.0.1:7".parse().ok());
        c.source_address = Some(b"::1".to_vec());
        c.source_port = Some(9);
        assert_eq!(c.source(), "[::1]:9".parse().ok());
        c.source_port = None;
        assert_eq!(c.source(), None);
    }
}
