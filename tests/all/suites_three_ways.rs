//! Every case of every policy suite in `policies/`, three ways: through
//! `meshward test`'s runner (the compiled authorization filter in the
//! wasmtime harness, [`meshward_cli::CompiledAuthz`]), through meshward's
//! data path over real mTLS, and through real Envoy; the last two run the
//! identity filter and the authorization filter with the suite's compiled
//! policies, as deployed. Case by case, all three must answer with the
//! same status and the same deny reason (`x-meshward-deny-reason`, none
//! when forwarded).
//!
//! A live request cannot say everything a case says: the loopback client's
//! address and the clock decide `source` and `time` live, and a peer always
//! comes with mTLS. Those cases are run by the harness only, and the test
//! says how many. Where the hosts differ for a reason of their own (the
//! identity filter in front, an HTTP codec refusing a request first), the
//! difference is pinned in [`KNOWN`] with each host's answer. JWT claims go live as a token signed by a test issuer the
//! identity filter trusts; the data path trusts each trust domain's own CA,
//! while the Envoy rig trusts one CA, which issues every peer there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use meshward_certs::{SpiffeCa, Svid, anonymous_client_config};
use meshward_cli::{CompiledAuthz, SuiteFile};
use meshward_data_path::{
    ClientAuth, Config, DataPath, EchoUpstream, FilterSpec, Limits, TlsSettings, TrustBundle,
    Upstream,
};
use meshward_envoy::{BootstrapEdits, Sidecar, SidecarSpec, workspace_root};
use meshward_harness::Host;
use meshward_policy::Case;
use meshward_tests::filter_wasm;

use crate::adversarial::client::{Raw, Version, send};

const ISSUER: &str = "https://idp.example.com";
const TRUST_DOMAINS: [&str; 2] = ["cluster.local", "partner.example"];

/// What a client saw: the status and the deny reason header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    reason: Option<String>,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            self.reason.as_deref().unwrap_or("-")
        )
    }
}

/// Where the three answer differently, found by this test and pinned: each
/// with what the harness, the data path and Envoy answer (`status reason`),
/// so that any other difference, or a change in one of these, fails.
const KNOWN: &[(&str, &str, [&str; 3], &str)] = &[
    // The suite lets a request without a peer reach the policies
    // (`require_peer_identity: false`); deployed behind the identity
    // filter, which always needs a peer, it never gets there.
    (
        "frontend-backend",
        "an unauthenticated health check",
        ["200 -", "403 no_peer_identity", "403 no_peer_identity"],
        "the identity filter refuses a request without a peer first",
    ),
    (
        "frontend-backend",
        "an unauthenticated request elsewhere",
        [
            "403 no_permit",
            "403 no_peer_identity",
            "403 no_peer_identity",
        ],
        "the identity filter refuses a request without a peer first",
    ),
    // `/x#/../admin`: hyper's URI parser drops the fragment, so the data
    // path's filters and upstream both see `/x` (consistent, no walk-around);
    // Envoy's codec refuses the request.
    (
        "walkaround",
        "a fragment is refused",
        ["403 invalid_request", "200 -", "400 -"],
        "hyper drops a fragment; Envoy's codec refuses it",
    ),
    // Envoy's HTTP/1 codec refuses a method that is not upper case, and
    // CONNECT with a path, before any filter: also closed.
    (
        "walkaround",
        "lower-case delete is a write",
        ["403 forbidden", "403 forbidden", "400 -"],
        "Envoy's codec refuses the method",
    ),
    (
        "walkaround",
        "mixed-case DeLeTe is a write",
        ["403 forbidden", "403 forbidden", "400 -"],
        "Envoy's codec refuses the method",
    ),
    (
        "walkaround",
        "lower-case get is a write, not a read",
        ["403 forbidden", "403 forbidden", "400 -"],
        "Envoy's codec refuses the method",
    ),
    (
        "walkaround",
        "CONNECT is a write",
        ["403 forbidden", "403 forbidden", "400 -"],
        "Envoy's codec refuses CONNECT with a path",
    ),
];

/// Why a case cannot be sent as a live request, if it cannot.
fn not_live(case: &Case) -> Option<&'static str> {
    let r = &case.request;
    if r.source.is_some() {
        Some("source address")
    } else if r.time.is_some() {
        Some("time")
    } else if r.mtls == Some(false) && r.peer.is_some() {
        Some("a peer without mTLS")
    } else if r.sni.is_some() || r.port != 80 {
        Some("SNI or port")
    } else {
        None
    }
}

/// The suites and their files, by name.
fn suites() -> Vec<(String, SuiteFile)> {
    let dir = workspace_root().join("policies");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".cases.json") {
            found.push((stem.to_owned(), SuiteFile::load(&path).unwrap()));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        found.len() >= 4,
        "the policy library's suites in {}",
        dir.display()
    );
    found
}

/// An end-user token issuer the identity filter trusts.
struct Issuer {
    key: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
}

impl Issuer {
    fn new() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)
            .unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = "suites".into();
        Self { key, jwk }
    }

    /// A token with the case's claims, valid for an hour.
    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut claims = claims.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        claims["exp"] = (now + 3600).into();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("suites".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }

    fn identity_config(&self) -> String {
        serde_json::json!({
            "allowed_trust_domains": TRUST_DOMAINS,
            "jwt": {"required": false, "providers": [{"issuer": ISSUER, "jwks": {"keys": [self.jwk]}}]},
        })
        .to_string()
    }
}

/// A live host: where it listens and how a peer connects to it.
struct Live<'a> {
    addr: SocketAddr,
    /// The CA that signs the server certificate.
    server_ca: &'a SpiffeCa,
    /// The CA that issues a peer of each trust domain (else `server_ca`).
    issuers: BTreeMap<String, &'a SpiffeCa>,
    svids: BTreeMap<String, Svid>,
}

impl Live<'_> {
    fn tls(&mut self, peer: Option<&str>) -> rustls::ClientConfig {
        let Some(peer) = peer else {
            return (*anonymous_client_config(self.server_ca).unwrap()).clone();
        };
        let domain = peer
            .strip_prefix("spiffe://")
            .and_then(|p| p.split('/').next())
            .unwrap();
        let ca = self.issuers.get(domain).copied().unwrap_or(self.server_ca);
        let svid = self
            .svids
            .entry(peer.to_owned())
            .or_insert_with(|| ca.issue(peer, &[]).unwrap());
        (*svid.client_config(self.server_ca).unwrap()).clone()
    }

    async fn send(&mut self, case: &Case, issuer: &Issuer) -> Seen {
        let r = &case.request;
        let tls = self.tls(r.peer.as_ref().map(|p| p.as_str()));
        let mut raw = Raw::new(&r.method, &r.path);
        raw.authority = Some(r.host.as_bytes().to_vec());
        for (k, v) in &r.headers {
            raw = raw.header(k, v);
        }
        if let Some(claims) = &r.jwt {
            raw = raw.header("authorization", format!("Bearer {}", issuer.sign(claims)));
        }
        let reply = send(self.addr, &tls, Version::H1, &raw).await;
        Seen {
            status: reply.status,
            reason: reply.header("x-meshward-deny-reason").map(str::to_owned),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suite_case_gets_the_same_answer_from_the_harness_the_data_path_and_envoy() {
    let issuer = Issuer::new();
    let identity_wasm = std::fs::read(filter_wasm("meshward-identity-filter")).unwrap();
    let authz_wasm = std::fs::read(filter_wasm("meshward-authz-filter")).unwrap();
    let filter = Host::new().unwrap().load(&authz_wasm).unwrap();
    let cas: BTreeMap<String, SpiffeCa> = TRUST_DOMAINS
        .iter()
        .map(|d| ((*d).to_owned(), SpiffeCa::new(d).unwrap()))
        .collect();
    let mesh_ca = &cas["cluster.local"];
    let server = mesh_ca
        .issue_local_server("spiffe://cluster.local/ns/default/sa/app")
        .unwrap();
    let upstream = EchoUpstream::start().await.unwrap();

    let (mut compared, mut harness_only, mut known) = (0, 0, 0);
    let mut differ = Vec::new();
    for (name, file) in suites() {
        // (a) `meshward test`'s runner.
        let mut harness = CompiledAuthz::new(&filter, file.authz_config.clone());

        // (b) the data path, with the identity and authorization filters.
        let filters = vec![
            FilterSpec {
                name: "identity".into(),
                wasm: Arc::from(identity_wasm.as_slice()),
                root_id: "meshward_identity".into(),
                vm_id: String::new(),
                configuration: issuer.identity_config(),
                fail_open: false,
            },
            FilterSpec {
                name: "authz".into(),
                wasm: Arc::from(authz_wasm.as_slice()),
                root_id: "meshward_authz".into(),
                vm_id: String::new(),
                configuration: file.authz_config.clone(),
                fail_open: false,
            },
        ];
        let data_path = DataPath::start(Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            tls: TlsSettings {
                cert_chain_pem: server.cert_pem.clone(),
                key_pem: server.key_pem.clone(),
                trust_bundles: cas
                    .iter()
                    .map(|(domain, ca)| TrustBundle {
                        trust_domain: domain.clone(),
                        ca_pem: ca.cert_pem(),
                    })
                    .collect(),
                // As Envoy's sidecar: a client without a certificate reaches
                // the filters, which decide.
                client_auth: ClientAuth::Optional,
            },
            filters,
            upstream: Upstream::Http {
                addr: upstream.addr().to_string(),
            },
            limits: Limits::default(),
        })
        .await
        .unwrap();
        let mut dp = Live {
            addr: data_path.local_addr(),
            server_ca: mesh_ca,
            issuers: cas.iter().map(|(d, ca)| (d.clone(), ca)).collect(),
            svids: BTreeMap::new(),
        };

        // (c) real Envoy with the same two filters, its own path
        // normalisation off so that the filters see what the client sent,
        // as they do in the harness and the data path.
        let sidecar = Sidecar::start_with(
            &SidecarSpec {
                filters: vec![
                    meshward_envoy::FilterSpec {
                        wasm: filter_wasm("meshward-identity-filter"),
                        root_id: "meshward_identity".to_owned(),
                        plugin_config: issuer.identity_config(),
                    },
                    meshward_envoy::FilterSpec {
                        wasm: filter_wasm("meshward-authz-filter"),
                        root_id: "meshward_authz".to_owned(),
                        plugin_config: file.authz_config.clone(),
                    },
                ],
                trust_domain: "cluster.local".to_owned(),
            },
            &BootstrapEdits {
                envoy_path_normalization_off: true,
                ..BootstrapEdits::default()
            },
        )
        .await
        .unwrap();
        let mut envoy = Live {
            addr: sidecar.listener_addr(),
            server_ca: &sidecar.ca,
            issuers: BTreeMap::new(),
            svids: BTreeMap::new(),
        };

        for case in &file.suite.cases {
            let facts = case.request.to_facts().unwrap();
            let a = harness.run(&facts).unwrap();
            let a = Seen {
                status: a.status,
                reason: a.deny_reason,
            };
            if not_live(case).is_some() {
                harness_only += 1;
                continue;
            }
            let b = dp.send(case, &issuer).await;
            let c = envoy.send(case, &issuer).await;
            let seen = [a.to_string(), b.to_string(), c.to_string()];
            let agreed = match KNOWN
                .iter()
                .find(|(suite, case_name, _, _)| *suite == name && *case_name == case.name)
            {
                Some((_, _, pinned, _)) => {
                    known += 1;
                    seen == *pinned
                }
                None => a == b && a == c,
            };
            if !agreed {
                differ.push(format!(
                    "{name}: `{}`: harness {a}, data path {b}, envoy {c}",
                    case.name
                ));
            }
            compared += 1;
        }
        data_path.shutdown().await;
    }
    eprintln!(
        "{compared} cases compared three ways ({known} of them known differences), \
         {harness_only} run in the harness only"
    );
    assert_eq!(known, KNOWN.len(), "a pinned difference names no case");
    assert!(
        differ.is_empty(),
        "{} of {compared} cases differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(compared >= 50, "only {compared} cases compared");
}
