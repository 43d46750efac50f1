//! The authorization module's other root ids in the wasmtime harness: the
//! identity filter (`meshward_identity`, so two plugins can share one VM)
//! and identity plus authorization in one HTTP context (`meshward`), and
//! the per-connection cache of connection facts.

use meshward_filter_glue::{Handover, PEER_ID_PROPERTY};
use meshward_filter_modules::{CHAIN, IDENTITY_IN_AUTHZ};
use meshward_harness::{Filter, Host, Plugin, PluginConfig, Properties, Request};
use std::sync::OnceLock;

const PEER: &str = "spiffe://example.org/ns/web/sa/frontend";

fn module() -> &'static Filter {
    static FILTER: OnceLock<Filter> = OnceLock::new();
    FILTER.get_or_init(|| Host::new().unwrap().load(CHAIN.bytes).unwrap())
}

/// The chain's configuration, its authz part compiled as `meshward
/// compile` compiles an authorization filter's.
fn chain_config(authz: serde_json::Value) -> String {
    let authz: serde_json::Value = serde_json::from_str(&crate::compiled(authz)).unwrap();
    serde_json::json!({
        "identity": {"allowed_trust_domains": ["example.org"]},
        "authz": authz,
    })
    .to_string()
}

fn chain(policies: &str, peer: &str) -> Plugin {
    let config =
        chain_config(serde_json::json!({"cedar": {"policies": policies}, "decision_log": "all"}));
    module()
        .start(
            PluginConfig::new()
                .root_id(CHAIN.root_id)
                .configuration(config)
                .properties(&Properties::istio_inbound_mtls(peer, "")),
        )
        .unwrap()
}

const ONLY_FRONTEND: &str = r#"@id("frontend") permit(principal == Mesh::Workload::"spiffe://example.org/ns/web/sa/frontend", action, resource);"#;

#[test]
fn the_chain_verifies_then_decides_in_one_context() {
    let mut plugin = chain(ONLY_FRONTEND, PEER);
    let allowed = plugin.send(
        Request::get("/a")
            .header("x-meshward-peer-id", "spiffe://example.org/ns/x/sa/admin")
            .header("x_meshward_peer_id", "spiffe://example.org/ns/x/sa/admin"),
    );
    assert!(allowed.forwarded(), "{}", allowed.body_text());
    assert_eq!(allowed.upstream_header("x-meshward-peer-id"), Some(PEER));
    assert_eq!(allowed.upstream_header("x_meshward_peer_id"), None);
    assert_eq!(plugin.metric_value("meshward_identity_allowed"), Some(1));
    assert_eq!(plugin.metric_value("meshward_authz_allowed"), Some(1));

    // A peer the policy does not name: the identity stage admits it, the
    // decision denies it, with the authorization filter's reason.
    let mut plugin = chain(ONLY_FRONTEND, "spiffe://example.org/ns/web/sa/other");
    let denied = plugin.send(Request::get("/a"));
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.response_header("x-meshward-deny-reason"),
        Some("no_permit")
    );
    assert_eq!(plugin.metric_value("meshward_authz_denied"), Some(1));
}

#[test]
fn the_chain_denies_at_the_identity_stage_before_any_policy() {
    let everyone = r#"@id("all") permit(principal, action, resource);"#;
    // A trust domain the identity stage does not allow.
    let mut plugin = chain(everyone, "spiffe://evil.org/ns/web/sa/frontend");
    let denied = plugin.send(Request::get("/a"));
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.response_header("x-meshward-deny-reason"),
        Some("trust_domain_not_allowed")
    );
    assert_eq!(plugin.metric_value("meshward_identity_denied"), Some(1));
    assert_eq!(plugin.metric_value("meshward_authz_allowed"), Some(0));

    // A certificate Envoy did not validate is no identity, whatever the
    // policy says.
    let mut plugin = chain(everyone, PEER);
    let denied = plugin.send(
        Request::get("/a")
            .property("connection.id", 8_u64)
            .property("connection.peer_certificate_valid", false),
    );
    assert_eq!(
        denied.response_header("x-meshward-deny-reason"),
        Some("peer_certificate_unverified")
    );

    // A configuration missing either part is refused outright.
    let refused = module().start(
        PluginConfig::new()
            .root_id(CHAIN.root_id)
            .configuration(r#"{"authz": {"cedar": {"policies": ""}}}"#),
    );
    assert!(refused.is_err());
}

#[test]
fn connection_facts_are_kept_per_connection_only() {
    let everyone = r#"@id("all") permit(principal, action, resource);"#;
    let mut plugin = chain(everyone, PEER);
    // Connection 1 is a verified mTLS peer.
    let first = Request::get("/a").property("connection.id", 1_u64);
    assert!(plugin.send(first).forwarded());
    // Connection 2 presents no certificate: nothing of connection 1 may
    // leak into it.
    let other = Request::get("/a")
        .property("connection.id", 2_u64)
        .property("connection.mtls", false)
        .property("connection.peer_certificate_valid", false);
    let denied = plugin.send(other);
    assert_eq!(
        denied.response_header("x-meshward-deny-reason"),
        Some("no_peer_identity")
    );
    // Many connections later, connection 2 is still what it was: the cache
    // forgets, it never answers for another connection.
    for id in 100..100 + 3 * meshward_filter_glue::CAPACITY as u64 {
        assert!(
            plugin
                .send(Request::get("/a").property("connection.id", id))
                .forwarded()
        );
    }
    let again = Request::get("/a")
        .property("connection.id", 2_u64)
        .property("connection.mtls", false)
        .property("connection.peer_certificate_valid", false);
    assert_eq!(plugin.send(again).status(), 403);
    // Without a connection id (another host) nothing is cached at all.
    let mut props = Properties::istio_inbound_mtls(PEER, "");
    props.remove("connection.id");
    let mut plugin = module()
        .start(
            PluginConfig::new()
                .root_id(CHAIN.root_id)
                .configuration(chain_config(
                    serde_json::json!({"cedar": {"policies": everyone}}),
                ))
                .properties(&props),
        )
        .unwrap();
    assert!(plugin.send(Request::get("/a")).forwarded());
    let unverified = Request::get("/a").property("connection.peer_certificate_valid", false);
    assert_eq!(plugin.send(unverified).status(), 403);
}

#[test]
fn the_authz_module_serves_the_identity_root_id() {
    let mut plugin = module()
        .start(
            PluginConfig::new()
                .root_id(IDENTITY_IN_AUTHZ.root_id)
                .configuration(r#"{"allowed_trust_domains": ["example.org"]}"#)
                .properties(&Properties::istio_inbound_mtls(PEER, "")),
        )
        .unwrap();
    let allowed = plugin.send(Request::get("/a"));
    assert!(allowed.forwarded());
    assert_eq!(allowed.upstream_header("x-meshward-peer-id"), Some(PEER));
    assert_eq!(plugin.metric_value("meshward_identity_allowed"), Some(1));
    // The identity filter's configuration is no authorization
    // configuration: under the authz root id it is refused.
    assert!(
        module()
            .start(
                PluginConfig::new()
                    .root_id("meshward_authz")
                    .configuration(r#"{"allowed_trust_domains": ["example.org"]}"#),
            )
            .is_err()
    );
}

#[test]
fn the_hand_over_is_one_property() {
    let mut claims = serde_json::Map::new();
    claims.insert("groups".into(), serde_json::json!(["admins"]));
    let h = Handover {
        peer: PEER.parse().unwrap(),
        jwt_claims: Some(claims),
    };
    let config = serde_json::json!({
        "cedar": {"policies": r#"@id("admins") permit(principal, action, resource) when { context has user && context.user.hasTag("groups") && context.user.getTag("groups").contains("admins") };"#},
        "peer_from": "identity_filter",
    });
    let mut plugin = module()
        .start(PluginConfig::new().configuration(crate::compiled(config)))
        .unwrap();
    let allowed = plugin.send(Request::get("/a").property(PEER_ID_PROPERTY, h.encode()));
    assert!(allowed.forwarded(), "{}", allowed.body_text());
    let without_claims = Handover {
        jwt_claims: None,
        ..h
    };
    let denied =
        plugin.send(Request::get("/a").property(PEER_ID_PROPERTY, without_claims.encode()));
    assert_eq!(denied.status(), 403);
}
