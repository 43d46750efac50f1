//! Requests spelt, split or repeated so as to walk around a forbid (issue 9):
//! each must be decided as the forbid means, by every way of deciding.

use super::*;
use meshward_identity::SpiffeId;

fn web() -> SpiffeId {
    SpiffeId::parse("spiffe://cluster.local/ns/shop/sa/web").unwrap()
}

fn engine(policies: &str) -> CedarEngine {
    CedarEngine::from_policies(policies).unwrap_or_else(|e| panic!("{e}"))
}

/// The decision, checked to be the same indexed, unindexed and by plain
/// Cedar with nothing cached or filtered. The reference reads every header
/// and parameter, so it also refuses those no policy reads when they are not
/// text; otherwise it must agree.
fn decide(e: &CedarEngine, f: &RequestFacts) -> Decision {
    let d = e.decide_both(f);
    assert_eq!(d, e.decide_unindexed(f), "{f:?}");
    let reference = e.decide_reference(f);
    if reference.reason != Reason::InvalidRequest || d.reason == Reason::InvalidRequest {
        assert_eq!(d, reference, "{f:?}");
    }
    d
}

fn req(method: &str, host: &str, path: &str) -> RequestFacts {
    RequestFacts::new(method, host, path).with_peer(web())
}

#[track_caller]
fn denied(e: &CedarEngine, f: &RequestFacts, reason: Reason) {
    let d = decide(e, f);
    assert!(!d.allowed, "{f:?} allowed");
    assert_eq!(d.reason, reason, "{f:?}: {d:?}");
}

#[track_caller]
fn allowed(e: &CedarEngine, f: &RequestFacts) {
    let d = decide(e, f);
    assert!(d.allowed, "{f:?}: {d:?}");
}

const NO_ADMIN_PATH: &str = r#"
    @id("all") permit(principal, action, resource);
    @id("no-admin") forbid(principal, action, resource) when { context.path like "/admin*" };
"#;

#[test]
fn paths_are_decided_in_normal_form() {
    let e = engine(NO_ADMIN_PATH);
    allowed(&e, &req("GET", "h", "/api/users"));
    for p in [
        "/admin/users",
        "/api/../admin/users",
        "/api/%2e%2e/admin/users",
        "/api/%2E./admin/users",
        "//admin/users",
        "/./admin",
        "/%61dmin",
        "/api/./../admin?x=1",
    ] {
        denied(&e, &req("GET", "h", p), Reason::Forbidden);
    }
    for p in [
        "/api/..%2Fadmin",
        "/api%5C..%5Cadmin",
        "/api\\..\\admin",
        "/api/..;/admin",
        "/admin\0",
        "/x#/../admin",
        "/%zz",
        "admin",
    ] {
        denied(&e, &req("GET", "h", p), Reason::InvalidRequest);
    }
}

#[test]
fn a_path_set_by_hand_must_be_normal() {
    let e = engine(NO_ADMIN_PATH);
    let mut f = req("GET", "h", "/api");
    f.path = "/api/../admin".to_owned();
    let d = decide(&e, &f);
    assert_eq!(d.reason, Reason::InvalidRequest);
    assert_eq!(d.errors, ["path is not in normal form"]);
}

#[test]
fn unknown_and_miscased_methods_are_writes() {
    let e = engine(
        r#"@id("all") permit(principal, action, resource);
           @id("no-writes") forbid(principal, action in Mesh::Action::"write", resource);"#,
    );
    allowed(&e, &req("GET", "h", "/"));
    allowed(&e, &req("HEAD", "h", "/"));
    for m in [
        "DELETE", "delete", "DeLeTe", "Get", "get", "PROPFIND", "MKCOL", "", "CONNECT",
    ] {
        denied(&e, &req(m, "h", "/"), Reason::Forbidden);
    }
    // And nothing but the exact spelling is a read.
    let reads = engine(r#"permit(principal, action in Mesh::Action::"read", resource);"#);
    allowed(&reads, &req("GET", "h", "/"));
    for m in ["get", "Get", "GET ", "OPTIONS2"] {
        denied(&reads, &req(m, "h", "/"), Reason::NoPermit);
    }
}

#[test]
fn hosts_are_canonical() {
    let e = engine(
        r#"@id("all") permit(principal, action, resource);
           @id("no-admin-host") forbid(principal, action, resource == Mesh::Host::"admin.example.com");"#,
    );
    allowed(&e, &req("GET", "api.example.com", "/"));
    for h in [
        "admin.example.com",
        "ADMIN.example.com",
        "admin.example.com.",
        "Admin.Example.Com.:443",
        "admin.example.com:8080",
    ] {
        denied(&e, &req("GET", h, "/"), Reason::Forbidden);
    }
    for h in [
        "x@admin.example.com",
        "admin.example.com..",
        "admin.example.com:x",
        "%61dmin.example.com",
    ] {
        denied(&e, &req("GET", h, "/"), Reason::InvalidRequest);
    }
    let d = decide(&e, &req("GET", "x@admin.example.com", "/"));
    assert_eq!(d.errors, ["authority has userinfo (`@`)"]);
}

#[test]
fn authority_as_sent_and_its_port() {
    let e = engine(
        r#"permit(principal, action, resource) when {
             context.host == "api.example.com" && context.authority == "API.example.com.:8443" &&
             context has authority_port && context.authority_port == 8443 };"#,
    );
    allowed(&e, &req("GET", "API.example.com.:8443", "/"));
    denied(&e, &req("GET", "api.example.com", "/"), Reason::NoPermit);
    let ipv6 = engine(r#"permit(principal, action, resource == Mesh::Host::"[::1]");"#);
    allowed(&ipv6, &req("GET", "[0:0::1]:80", "/"));
}

#[test]
fn repeated_headers_cannot_escape_a_forbid_on_the_value_set() {
    let e = engine(
        r#"@id("all") permit(principal, action, resource);
           @id("no-x-v") forbid(principal, action, resource) when {
             context.header_values.hasTag("x") && context.header_values.getTag("x").contains("v") };"#,
    );
    allowed(&e, &req("GET", "h", "/").with_header("x", "a"));
    allowed(&e, &req("GET", "h", "/"));
    for headers in [
        &[("x", "v")][..],
        &[("x", "v"), ("x", "v")],
        &[("x", "a"), ("x", "v")],
        &[("x", "a,v")],
        &[("x", "a , v ")],
        &[("X", "v")],
        &[("X", "a"), ("x", "v")],
    ] {
        let mut f = req("GET", "h", "/");
        for (k, v) in headers {
            f = f.with_header(k, v);
        }
        denied(&e, &f, Reason::Forbidden);
    }
}

#[test]
fn a_permit_on_the_joined_value_fails_closed_when_repeated() {
    let e = engine(
        r#"permit(principal, action, resource) when {
             context.headers.hasTag("x") && context.headers.getTag("x") == "v" };"#,
    );
    allowed(&e, &req("GET", "h", "/").with_header("X", "v"));
    let twice = req("GET", "h", "/")
        .with_header("x", "v")
        .with_header("x", "v");
    denied(&e, &twice, Reason::NoPermit);
}

#[test]
fn query_parameters_cannot_escape_a_forbid() {
    let e = engine(
        r#"@id("all") permit(principal, action, resource);
           @id("no-admin-param") forbid(principal, action, resource) when {
             context.param_values.hasTag("admin") && context.param_values.getTag("admin").contains("1") };
           @id("no-admin-joined") forbid(principal, action, resource) when {
             context.params.hasTag("admin") && context.params.getTag("admin") like "*1*" };"#,
    );
    allowed(&e, &req("GET", "h", "/?admin=0"));
    allowed(&e, &req("GET", "h", "/?other=1"));
    for q in [
        "admin=1",
        "Admin=1",
        "ADMIN=1",
        "%61dmin=1",
        "%41dmin=1",
        "admin=0&admin=1",
        "admin=1&admin=0",
        "admin=0%2C1",
        "admin=%31",
        "x=2&admin=1&y",
    ] {
        let d = decide(&e, &req("GET", "h", &format!("/p?{q}")));
        assert!(!d.allowed, "{q}");
        assert!(
            d.determining.iter().any(|p| p.as_str() == "no-admin-param"),
            "{q}: {d:?}"
        );
    }
}

#[test]
fn bytes_that_are_not_text_deny_only_when_read() {
    let e = engine(
        r#"@id("all") permit(principal, action, resource);
           @id("no-x-v") forbid(principal, action, resource) when {
             context.header_values.hasTag("x") && context.header_values.getTag("x").contains("v") };"#,
    );
    let ignored = req("GET", "h", "/").with_header("y", b"\xff\xfe".as_slice());
    allowed(&e, &ignored);
    let read = req("GET", "h", "/").with_header("X", b"v\xff".as_slice());
    let d = decide(&e, &read);
    assert_eq!(d.reason, Reason::InvalidRequest);
    assert_eq!(d.errors, ["header `x` is not valid UTF-8"]);

    let params =
        engine(r#"permit(principal, action, resource) when { !context.params.hasTag("q") };"#);
    allowed(&params, &req("GET", "h", "/?z=%ff"));
    let d = decide(&params, &req("GET", "h", "/?Q=%ff"));
    assert_eq!(d.errors, ["query parameter `q` is not valid UTF-8"]);

    for (m, a, p, err) in [
        (
            &b"G\xffT"[..],
            &b"h"[..],
            &b"/"[..],
            "method is not valid UTF-8",
        ),
        (b"GET", b"h\xff", b"/", "authority is not valid UTF-8"),
        (b"GET", b"h", b"/\xff", "path is not valid UTF-8"),
    ] {
        let f = RequestFacts::from_raw(m, a, p, &meshward_policy::PathOptions::default())
            .with_peer(web());
        let d = decide(&e, &f);
        assert_eq!(
            (d.reason, d.errors.as_slice()),
            (Reason::InvalidRequest, &[err.to_owned()][..])
        );
    }
}

#[test]
fn arbitrary_bytes_always_get_a_decision() {
    use proptest::prelude::*;
    let e = engine(
        r#"@id("all") permit(principal, action, resource) when {
             context.headers.hasTag("a") || context.param_values.hasTag("b") };"#,
    );
    let bytes = || proptest::collection::vec(any::<u8>(), 0..12);
    proptest!(|(m in bytes(), a in bytes(), p in bytes(), v in bytes())| {
        let f = RequestFacts::from_raw(&m, &a, &p, &meshward_policy::PathOptions::default())
            .with_peer(web())
            .with_header("a", &v);
        let d = decide(&e, &f);
        prop_assert_eq!(d.allowed, d.reason == Reason::Permitted);
    });
}
