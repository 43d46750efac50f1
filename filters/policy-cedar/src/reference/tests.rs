use super::*;
use meshward_identity::SpiffeId;
use meshward_policy::PolicyId;

fn peer(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn web() -> SpiffeId {
    peer("spiffe://cluster.local/ns/shop/sa/web")
}

fn get(path: &str) -> RequestFacts {
    RequestFacts::new("GET", "cart.shop.svc:8080", path).with_peer(web())
}

fn engine(policies: &str) -> CedarEngine {
    CedarEngine::from_policies(policies).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(d: &Decision) -> Vec<&str> {
    d.determining.iter().map(PolicyId::as_str).collect()
}

#[test]
fn default_deny() {
    let d = engine("").decide_both(&get("/"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::NoPermit);
    assert!(d.determining.is_empty());
}

#[test]
fn permit_names_its_policy() {
    let e = engine(
        r#"@id("shop-reads") permit(principal in Mesh::Namespace::"shop", action in Mesh::Action::"read", resource);"#,
    );
    let d = e.decide_both(&get("/"));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.reason, Reason::Permitted);
    assert_eq!(ids(&d), ["shop-reads"]);
    let post = RequestFacts::new("POST", "cart", "/").with_peer(web());
    assert!(!e.decide_both(&post).allowed);
}

#[test]
fn unnamed_policies_get_positional_ids() {
    let e = engine("permit(principal, action, resource);\npermit(principal, action, resource);");
    assert_eq!(
        e.policy_ids(),
        [PolicyId::from("policy0"), PolicyId::from("policy1")]
    );
    assert_eq!(ids(&e.decide_both(&get("/"))), ["policy0", "policy1"]);
}

#[test]
fn forbid_overrides_permit() {
    let e = engine(
        r#"@id("all") permit(principal, action, resource);
           @id("no-admin") forbid(principal, action, resource) when { context.path like "/admin*" };"#,
    );
    let d = e.decide_both(&get("/admin/users"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::Forbidden);
    assert_eq!(ids(&d), ["no-admin"]);
    assert!(e.decide_both(&get("/public")).allowed);
}

#[test]
fn no_identity_is_denied_before_any_policy() {
    let e = engine(r#"permit(principal, action, resource);"#);
    let d = e.decide_both(&RequestFacts::new("GET", "h", "/"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::NoPeerIdentity);
}

#[test]
fn anonymous_principal_when_identity_is_optional() {
    let config = serde_json::json!({
        "policies": r#"@id("health") permit(principal, action, resource) when { context.path == "/healthz" };
                       @id("authn-only") permit(principal, action, resource) when { principal.authenticated };"#,
        "require_peer_identity": false,
    });
    let e = CedarEngine::from_config(config.to_string().as_bytes()).unwrap();
    let anon = |p| RequestFacts::new("GET", "h", p);
    assert_eq!(ids(&e.decide_both(&anon("/healthz"))), ["health"]);
    let d = e.decide_both(&anon("/x"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::NoPermit);
    assert_eq!(ids(&e.decide_both(&get("/x"))), ["authn-only"]);
}

#[test]
fn evaluation_error_never_allows() {
    // Overflows for any port above 0: passes validation, errors at runtime.
    let e = engine(
        r#"@id("overflow") permit(principal, action, resource) when { context.port + 9223372036854775807 > 0 };"#,
    );
    let mut facts = get("/");
    facts.port = 8080;
    let d = e.decide_both(&facts);
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::NoPermit);
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("`overflow`"), "{d:?}");
    assert_eq!(e.decide_unindexed(&facts), d);
}

#[test]
fn erroring_forbid_denies_and_erroring_permit_does_not_allow() {
    let e = engine(
        r#"@id("ok") permit(principal, action, resource);
           @id("bad-forbid") forbid(principal, action, resource) when { context.port + 9223372036854775807 > 0 };"#,
    );
    let mut facts = get("/");
    facts.port = 1;
    let d = e.decide_both(&facts);
    // Cedar would skip the erroring forbid and let the permit stand; meshward
    // fails closed: a forbid that cannot be evaluated might have applied.
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::PolicyError);
    assert_eq!(ids(&d), ["bad-forbid"]);
    assert_eq!(d.errors.len(), 1);
    // No overflow, no error: the forbid holds.
    facts.port = 0;
    let d = e.decide_both(&facts);
    assert_eq!((d.reason, ids(&d)), (Reason::Forbidden, vec!["bad-forbid"]));
    // A satisfied forbid is the reason over a failed one.
    let e = engine(
        r#"@id("ok") permit(principal, action, resource);
           @id("no") forbid(principal, action, resource);
           @id("bad-forbid") forbid(principal, action, resource) when { context.port + 9223372036854775807 > 0 };"#,
    );
    facts.port = 1;
    let d = e.decide_both(&facts);
    assert_eq!((d.reason, ids(&d)), (Reason::Forbidden, vec!["no"]));
}

#[test]
fn request_attributes_reach_policies() {
    let e = engine(
        r#"@id("td") permit(principal in Mesh::TrustDomain::"cluster.local", action == Mesh::Action::"PUT", resource);
           @id("sa") permit(principal in Mesh::ServiceAccount::"shop/web", action == Mesh::Action::"DELETE", resource == Mesh::Host::"cart.shop.svc");
           @id("hdr") permit(principal, action == Mesh::Action::"PATCH", resource)
             when { context.headers.hasTag("x-debug") && context.headers.getTag("x-debug") == "1" };
           @id("ip") permit(principal, action == Mesh::Action::"OPTIONS", resource)
             when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };
           @id("claims") permit(principal, action == Mesh::Action::"POST", resource)
             when { context has user && context.user.hasTag("realm_access.roles")
                    && context.user.getTag("realm_access.roles").contains("admin") };
           @id("param") permit(principal, action == Mesh::Action::"HEAD", resource)
             when { context.params.hasTag("q") && context.params.getTag("q") == "a b" && context.query == "q=a+b" };
           @id("time") permit(principal, action == Mesh::Action::"TRACE", resource)
             when { context.time > datetime("2024-01-01") && principal has namespace && principal.namespace == "shop" && context.mtls };
           @id("other") permit(principal, action == Mesh::Action::"OTHER", resource) when { context.method == "BREW" };"#,
    );
    let req = |m: &str| RequestFacts::new(m, "Cart.Shop.Svc:8080", "/p?q=a+b").with_peer(web());
    let allowed = |f: &RequestFacts| {
        let d = e.decide_both(f);
        assert_eq!(d, e.decide_unindexed(f));
        d.allowed
    };
    assert!(allowed(&req("PUT")));
    assert!(allowed(&req("DELETE")));
    assert!(!allowed(&req("PATCH")));
    assert!(allowed(&req("PATCH").with_header("X-Debug", "1")));
    assert!(!allowed(&req("OPTIONS")));
    let mut f = req("OPTIONS");
    f.source = Some("10.1.2.3:5555".parse().unwrap());
    assert!(allowed(&f));
    assert!(!allowed(&req("POST")));
    let mut f = req("POST");
    f.jwt_claims =
        Some(serde_json::json!({"iss": "i", "sub": "s", "realm_access": {"roles": ["admin"]}}));
    assert!(allowed(&f));
    assert!(allowed(&req("HEAD")));
    let mut f = req("TRACE");
    assert!(!allowed(&f));
    f.mtls = true;
    f.time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_750_000_000);
    assert!(allowed(&f));
    assert!(allowed(&req("BREW")));
    assert!(!allowed(&req("get")));
    // Another trust domain, same namespace: not in the trust domain.
    let other =
        RequestFacts::new("PUT", "h", "/").with_peer(peer("spiffe://other.org/ns/shop/sa/web"));
    assert!(!allowed(&other));
}

#[test]
fn validation_errors_name_policy_line_and_column() {
    let text = "@id(\"fine\") permit(principal, action, resource);\n\n@id(\"typo\") permit(principal, action, resource)\n  when { context.pathh == \"/\" };\n";
    let err = CedarEngine::from_policies(text).unwrap_err();
    let ConfigError::Validation(errors) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The place and the policy are data, not only text.
    assert_eq!(errors[0].locations[0].line, 4, "{errors:?}");
    assert_eq!(errors[0].policy_id.as_deref(), Some("typo"), "{errors:?}");
    assert!(errors[0].message.contains("pathh"), "{errors:?}");
    assert!(
        errors[0]
            .actions
            .iter()
            .any(|a| a == r#"Mesh::Action::"GET""#),
        "{errors:?}"
    );
    let line = errors[0].to_string();
    assert!(line.starts_with("4:"), "{line}");
    assert_eq!(line.matches("policy `typo`").count(), 1, "{line}");
    assert!(line.contains(r#"Mesh::Action::"GET""#), "{line}");
}

#[test]
fn unknown_entity_types_fail_validation() {
    let err =
        CedarEngine::from_policies(r#"permit(principal == User::"alice", action, resource);"#)
            .unwrap_err();
    assert!(matches!(err, ConfigError::Validation(_)), "{err}");
}

#[test]
fn parse_errors_have_locations() {
    let err = CedarEngine::from_policies(
        "permit(principal, action, resource);\npermit(principal action);",
    )
    .unwrap_err();
    let ConfigError::Parse(errors) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(errors[0].locations[0].line, 2, "{errors:?}");
    assert!(errors[0].to_string().starts_with("2:"), "{errors:?}");
}

#[test]
fn bad_configurations_are_refused() {
    type Check = fn(&ConfigError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("not json", |e| matches!(e, ConfigError::Json(_))),
        (r#"{"policies": "", "mdoe": "dry_run"}"#, |e| {
            matches!(e, ConfigError::Json(_))
        }),
        (r#"{"policies": "", "mode": "audit"}"#, |e| {
            matches!(e, ConfigError::Json(_))
        }),
        (r#"{"policies": "", "schema": "entity"}"#, |e| {
            matches!(e, ConfigError::Schema(_))
        }),
        (
            r#"{"policies": "", "schema": "namespace Mesh { entity Workload; }"}"#,
            |e| matches!(e, ConfigError::SchemaMismatch(_)),
        ),
        (
            r#"{"policies": "@id(\"a\") permit(principal, action, resource); @id(\"a\") forbid(principal, action, resource);"}"#,
            |e| matches!(e, ConfigError::DuplicateId(id) if id == "a"),
        ),
        (
            r#"{"policies": "permit(principal == ?principal, action, resource);"}"#,
            |e| matches!(e, ConfigError::Template(_)),
        ),
    ];
    for (config, check) in cases {
        match CedarEngine::from_config(config.as_bytes()) {
            Ok(_) => panic!("accepted {config}"),
            Err(e) => assert!(check(&e), "{config}: {e:?}"),
        }
    }
}

#[test]
fn config_fields() {
    let e = CedarEngine::from_config(
        br#"{"policies": "permit(principal, action, resource);", "mode": "dry_run", "schema": null}"#,
    )
    .unwrap();
    assert_eq!(e.mode(), Mode::DryRun);
}

#[test]
fn error_messages_follow_the_style() {
    let e = ConfigError::DuplicateId("x".into());
    assert_eq!(e.to_string(), "two policies have the id `x`");
}
