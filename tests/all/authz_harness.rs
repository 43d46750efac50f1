//! The authorization filter's denial paths in the wasmtime harness, where a
//! test controls exactly what the host hands the filter.

use meshward_harness::{Filter, Host, PluginConfig, Properties, Request};
use meshward_tests::filter_wasm;
use std::sync::OnceLock;

const PEER: &str = "spiffe://example.org/ns/web/sa/frontend";

fn filter() -> &'static Filter {
    static FILTER: OnceLock<Filter> = OnceLock::new();
    FILTER.get_or_init(|| {
        Host::new()
            .unwrap()
            .load_file(filter_wasm("meshward-authz-filter"))
            .unwrap()
    })
}

fn config(policies: &str) -> String {
    crate::compiled(serde_json::json!({"cedar": {"policies": policies}}))
}

#[test]
fn an_evaluation_error_denies_and_is_counted() {
    // Strict validation rules out most evaluation errors (an unguarded tag
    // read, a missing attribute); Long overflow is one it cannot. The permit
    // errors on port 8080, so it is not satisfied and the request is denied,
    // with the error logged and counted; on port 0 it does not overflow.
    let policy = r#"@id("overflows") permit(principal, action, resource) when { context.port * 4611686018427387904 >= 0 };"#;
    let mut plugin = filter()
        .start(
            PluginConfig::new()
                .configuration(config(policy))
                .properties(&Properties::istio_inbound_mtls(PEER, "")),
        )
        .unwrap();

    let denied = plugin.send(Request::get("/"));
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.response_header("x-meshward-deny-reason"),
        Some("no_permit")
    );
    let line = plugin
        .logs()
        .iter()
        .find_map(|l| l.message.strip_prefix("meshward-authz decision "))
        .unwrap()
        .to_owned();
    let logged: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(logged["errors"].as_array().unwrap().len(), 1, "{line}");
    assert!(
        logged["errors"][0].as_str().unwrap().contains("overflows"),
        "{line}"
    );
    assert_eq!(plugin.metric_value("meshward_authz_errors"), Some(1));
    assert_eq!(plugin.metric_value("meshward_authz_denied"), Some(1));

    // Another port is another connection (the filter keeps connection
    // facts per `connection.id`, as Envoy numbers connections).
    let allowed = plugin.send(
        Request::get("/")
            .property("connection.id", 8_u64)
            .property("destination.port", 0_i64),
    );
    assert!(allowed.forwarded());
    assert_eq!(plugin.metric_value("meshward_authz_errors"), Some(1));
}

#[test]
fn an_erroring_forbid_denies_even_next_to_a_permit() {
    // Cedar would skip a forbid whose condition errors; meshward fails
    // closed (`policy_error`), since the filter cannot re-check what it is
    // handed: alone or next to a permit, the request is denied.
    let forbid = r#"@id("f") forbid(principal, action, resource) when { context.port * 4611686018427387904 >= 0 };"#;
    let mut alone = filter()
        .start(
            PluginConfig::new()
                .configuration(config(forbid))
                .properties(&Properties::istio_inbound_mtls(PEER, "")),
        )
        .unwrap();
    assert_eq!(alone.send(Request::get("/")).status(), 403);

    let both = format!(r#"{forbid} @id("p") permit(principal, action, resource);"#);
    let mut plugin = filter()
        .start(
            PluginConfig::new()
                .configuration(config(&both))
                .properties(&Properties::istio_inbound_mtls(PEER, "")),
        )
        .unwrap();
    let denied = plugin.send(Request::get("/"));
    assert_eq!(denied.status(), 403);
    assert!(
        denied.body_text().contains("policy_error"),
        "{}",
        denied.body_text()
    );
}

#[test]
fn no_peer_identity_is_denied_before_any_policy() {
    let mut plugin = filter()
        .start(PluginConfig::new().configuration(config("permit(principal, action, resource);")))
        .unwrap();
    let exchange = plugin.send(Request::get("/").header("x-meshward-peer-id", PEER));
    assert_eq!(
        exchange.status(),
        403,
        "a header is no identity when peer_from is the connection"
    );
    assert_eq!(
        exchange.response_header("x-meshward-deny-reason"),
        Some("no_peer_identity")
    );

    // A verified connection whose URI SAN is not a SPIFFE ID is no identity
    // either.
    let mut plugin = filter()
        .start(
            PluginConfig::new()
                .configuration(config("permit(principal, action, resource);"))
                .properties(&Properties::istio_inbound_mtls(
                    "https://example.org/not-spiffe",
                    "",
                )),
        )
        .unwrap();
    assert_eq!(plugin.send(Request::get("/")).status(), 403);
}

#[test]
fn a_refused_configuration_stops_the_plugin() {
    // The filter refuses a configuration that does not parse in
    // on_configure; the host then refuses the plugin, as Envoy does, so no
    // stream ever reaches a filter without policies. (The filter's own deny
    // for streams without a configuration is unit-tested in outcome.rs.)
    match filter().start(PluginConfig::new().configuration(r#"{"cedar": {"policies": "permit("}}"#))
    {
        Err(meshward_harness::Error::ConfigureRejected) => {}
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a plugin with an unparsable policy started"),
    }
}
