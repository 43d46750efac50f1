use meshward_identity::SpiffeId;
use meshward_policy::{Decision, PolicyEngine, Reason, RequestFacts};
use meshward_policy_cedar::CedarEngine;

use super::*;

/// The options the tests translate with: header conditions translated,
/// failing closed where they cannot be exact.
fn options() -> ImportOptions {
    ImportOptions {
        headers_fail_closed: true,
        ..ImportOptions::default()
    }
}

fn translate(yaml: &str) -> Imported {
    import(yaml, &options()).unwrap_or_else(|e| panic!("{e}"))
}

/// The engine as a filter would run it for Istio fidelity: requests without a
/// peer identity are evaluated, as Istio evaluates plaintext requests.
fn engine(yaml: &str) -> Engines {
    let cedar = translate(yaml).cedar;
    engines(&serde_json::json!({"policies": cedar, "require_peer_identity": false}))
}

/// Cedar and the filter's evaluator for one authoring configuration.
fn engines(config: &serde_json::Value) -> Engines {
    let reference = CedarEngine::from_config(config.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    let evaluator = PolicyEngine::from_compiled(&reference.compiled().unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    Engines {
        reference,
        evaluator,
    }
}

/// The filter's evaluator, checked against Cedar on every decision.
struct Engines {
    reference: CedarEngine,
    evaluator: PolicyEngine,
}

impl Engines {
    fn decide(&self, f: &RequestFacts) -> Decision {
        let d = self.evaluator.decide(f);
        let c = self.reference.decide_unindexed(f);
        assert_eq!(
            (d.allowed, d.reason, &d.determining, d.errors.len()),
            (c.allowed, c.reason, &c.determining, c.errors.len()),
            "{f:?}"
        );
        assert_eq!(c, self.reference.decide(f));
        d
    }
}

fn req(peer: Option<&str>, method: &str, host: &str, path: &str) -> RequestFacts {
    let mut f = RequestFacts::new(method, host, path);
    f.peer = peer.map(|p| SpiffeId::parse(&format!("spiffe://{p}")).unwrap());
    f.mtls = f.peer.is_some();
    f.port = 8080;
    f
}

fn allowed(e: &Engines, f: &RequestFacts) -> bool {
    let d = e.decide(f);
    assert!(d.errors.is_empty(), "{d:?}");
    d.allowed
}

const PRODUCTPAGE: &str = "cluster.local/ns/bookinfo/sa/productpage";

#[test]
fn allow_principal_methods_paths() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/bookinfo/sa/productpage"]
    to:
    - operation:
        methods: ["GET", "HEAD"]
        paths: ["/reviews/*", "/health"]
"#,
    );
    let p = Some(PRODUCTPAGE);
    assert!(allowed(&e, &req(p, "GET", "reviews", "/reviews/1?x=1")));
    assert!(allowed(&e, &req(p, "HEAD", "reviews", "/health")));
    assert!(!allowed(&e, &req(p, "POST", "reviews", "/reviews/1")));
    assert!(!allowed(&e, &req(p, "GET", "reviews", "/ratings/1")));
    assert!(!allowed(&e, &req(p, "GET", "reviews", "/healthz")));
    assert!(!allowed(
        &e,
        &req(
            Some("cluster.local/ns/bookinfo/sa/details"),
            "GET",
            "reviews",
            "/reviews/1"
        )
    ));
    assert!(!allowed(&e, &req(None, "GET", "reviews", "/reviews/1")));
    let d = e.decide(&req(p, "GET", "reviews", "/reviews/1"));
    assert_eq!(d.determining[0].as_str(), "bookinfo/reviews-viewer/0");
}

#[test]
fn the_exact_principal_goes_into_the_scope() {
    let cedar = translate(
        r#"
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: a, namespace: n}
spec:
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bookinfo/sa/productpage"]}}]
  - from: [{source: {namespaces: ["web"]}}]
"#,
    )
    .cedar;
    assert!(cedar.contains(r#"permit (principal == Mesh::Workload::"spiffe://cluster.local/ns/bookinfo/sa/productpage", action, resource);"#), "{cedar}");
    assert!(
        cedar.contains(r#"when { principal.spiffe_id like "*/ns/web/*" };"#),
        "{cedar}"
    );
}

#[test]
fn deny_with_not_namespaces_overrides_allow_all() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: bookinfo}
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-bookinfo, namespace: bookinfo}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: ["bookinfo"]}}]
"#,
    );
    assert!(allowed(&e, &req(Some(PRODUCTPAGE), "DELETE", "h", "/")));
    let d = e.decide(&req(Some("cluster.local/ns/web/sa/x"), "GET", "h", "/"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::Forbidden);
    assert_eq!(d.determining[0].as_str(), "bookinfo/only-bookinfo/0");
    // A plaintext request has no namespace, so it is "not in bookinfo".
    assert!(!allowed(&e, &req(None, "GET", "h", "/")));
}

#[test]
fn ip_blocks_hosts_ports_and_not_paths() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: net, namespace: ns}
spec:
  rules:
  - from: [{source: {ipBlocks: ["10.0.0.0/8", "192.168.1.7"], notIpBlocks: ["10.1.0.0/16"]}}]
    to: [{operation: {hosts: ["*.Example.com"], ports: ["8080"], notPaths: ["/private*"]}}]
"#,
    );
    let at = |ip: &str, host: &str, port: u16, path: &str| {
        let mut f = req(Some(PRODUCTPAGE), "GET", host, path);
        f.source = Some(format!("{ip}:5000").parse().unwrap());
        f.port = port;
        f
    };
    assert!(allowed(&e, &at("10.2.3.4", "api.example.com", 8080, "/x")));
    assert!(allowed(
        &e,
        &at("192.168.1.7", "API.EXAMPLE.COM", 8080, "/x")
    ));
    // Istio compares the authority as sent: a port is part of it.
    assert!(!allowed(
        &e,
        &at("192.168.1.7", "api.example.com:8080", 8080, "/x")
    ));
    assert!(!allowed(
        &e,
        &at("192.168.1.8", "api.example.com", 8080, "/x")
    ));
    assert!(!allowed(&e, &at("10.1.3.4", "api.example.com", 8080, "/x")));
    assert!(!allowed(&e, &at("10.2.3.4", "example.org", 8080, "/x")));
    assert!(!allowed(&e, &at("10.2.3.4", "api.example.com", 9090, "/x")));
    assert!(!allowed(
        &e,
        &at("10.2.3.4", "api.example.com", 8080, "/private/key")
    ));
    // No source address known: the ipBlocks cannot match.
    assert!(!allowed(
        &e,
        &req(Some(PRODUCTPAGE), "GET", "api.example.com", "/x")
    ));
}

#[test]
fn request_principals_claims_and_headers() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: ns}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["https://idp.example.com/*"]}}]
    when:
    - key: request.auth.claims[groups]
      values: ["admins", "ops"]
    - key: request.auth.claims[realm][roles]
      values: ["editor"]
    - key: request.headers[X-Env]
      notValues: ["prod*"]
"#,
    );
    let with = |claims: serde_json::Value, env: Option<&str>| {
        let mut f = req(Some(PRODUCTPAGE), "GET", "h", "/");
        f.jwt_claims = Some(claims);
        if let Some(env) = env {
            f.headers.push("x-env", env);
        }
        f
    };
    let good = serde_json::json!({"iss": "https://idp.example.com", "sub": "alice",
        "groups": ["staff", "ops"], "realm": {"roles": ["editor"]}});
    assert!(allowed(&e, &with(good.clone(), None)));
    assert!(allowed(&e, &with(good.clone(), Some("staging"))));
    assert!(!allowed(&e, &with(good.clone(), Some("production"))));
    let mut other_issuer = good.clone();
    other_issuer["iss"] = "https://evil.example.com".into();
    assert!(!allowed(&e, &with(other_issuer, None)));
    let mut no_group = good.clone();
    no_group["groups"] = serde_json::json!(["staff"]);
    assert!(!allowed(&e, &with(no_group, None)));
    let mut string_group = good.clone();
    string_group["groups"] = "admins".into();
    assert!(allowed(&e, &with(string_group, None)));
    let mut no_role = good;
    no_role["realm"] = serde_json::json!({"roles": []});
    assert!(!allowed(&e, &with(no_role, None)));
    assert!(!allowed(&e, &req(Some(PRODUCTPAGE), "GET", "h", "/")));
}

#[test]
fn other_conditions_and_wildcard_principals() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: conds, namespace: ns}
spec:
  rules:
  - from: [{source: {principals: ["*/sa/productpage", "cluster.local/ns/admin/*"]}}]
    when:
    - {key: source.ip, values: ["10.0.0.0/8"]}
    - {key: destination.port, notValues: ["9090"]}
    - {key: connection.sni, values: ["*.svc.cluster.local"]}
    - {key: source.namespace, notValues: ["legacy"]}
    - {key: request.auth.audiences, values: ["api"]}
    - {key: request.auth.presenter, values: ["web-app"]}
"#,
    );
    let f = |peer: &str, port: u16, sni: Option<&str>| {
        let mut f = req(Some(peer), "GET", "h", "/");
        f.source = Some("10.0.0.1:1".parse().unwrap());
        f.port = port;
        f.sni = sni.map(str::to_owned);
        f.jwt_claims = Some(
            serde_json::json!({"iss": "i", "sub": "s", "aud": ["api", "x"], "azp": "web-app"}),
        );
        f
    };
    let sni = Some("reviews.bookinfo.svc.cluster.local");
    assert!(allowed(&e, &f(PRODUCTPAGE, 8080, sni)));
    assert!(allowed(&e, &f("cluster.local/ns/admin/sa/root", 8080, sni)));
    assert!(!allowed(
        &e,
        &f("cluster.local/ns/legacy/sa/productpage", 8080, sni)
    ));
    assert!(!allowed(
        &e,
        &f("cluster.local/ns/web/sa/frontend", 8080, sni)
    ));
    assert!(!allowed(&e, &f(PRODUCTPAGE, 9090, sni)));
    assert!(!allowed(&e, &f(PRODUCTPAGE, 8080, None)));
    assert!(!allowed(
        &e,
        &f(PRODUCTPAGE, 8080, Some("reviews.example.com"))
    ));
}

#[test]
fn any_authenticated_and_deny_plaintext() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mtls-only, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {notPrincipals: ["*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: authenticated, namespace: ns}
spec:
  rules:
  - from: [{source: {principals: ["*"]}}, {source: {ipBlocks: ["127.0.0.1"]}}]
    to: [{operation: {methods: ["GET"]}}, {operation: {paths: ["/public"]}}]
"#,
    );
    assert!(allowed(&e, &req(Some(PRODUCTPAGE), "GET", "h", "/x")));
    assert!(allowed(&e, &req(Some(PRODUCTPAGE), "POST", "h", "/public")));
    assert!(!allowed(&e, &req(Some(PRODUCTPAGE), "POST", "h", "/x")));
    let mut plain = req(None, "GET", "h", "/x");
    plain.source = Some("127.0.0.1:1".parse().unwrap());
    let d = e.decide(&plain);
    assert!(!d.allowed);
    assert_eq!(d.determining[0].as_str(), "istio-system/mtls-only/0");
}

#[test]
fn istio_defaults() {
    // Only DENY policies: everything else is allowed.
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: ns}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
"#,
    );
    assert!(allowed(&e, &req(Some(PRODUCTPAGE), "GET", "h", "/")));
    assert!(allowed(&e, &req(None, "GET", "h", "/")));
    assert!(!allowed(
        &e,
        &req(Some(PRODUCTPAGE), "GET", "h", "/admin/x")
    ));
    // An ALLOW policy without rules allows nothing, and disables the default.
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: ns}
spec: {}
"#,
    );
    let d = e.decide(&req(Some(PRODUCTPAGE), "GET", "h", "/"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::NoPermit);
    // Deny-all.
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: ns}
spec: {action: DENY, rules: [{}]}
"#,
    );
    assert!(!allowed(&e, &req(Some(PRODUCTPAGE), "GET", "h", "/")));
}

#[test]
fn untranslatable_policies_are_errors() {
    let policy = |spec: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n{spec}"
        )
    };
    let cases = [
        (
            "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n",
            "action `CUSTOM` cannot be translated",
        ),
        ("  action: AUDIT\n  rules: [{}]\n", "action `AUDIT`"),
        (
            "  rules: [{from: [{source: {remoteIpBlocks: [\"1.2.3.4\"]}}]}]\n",
            "remoteIpBlocks",
        ),
        (
            "  rules: [{from: [{source: {ipBlocks: [\"10.0.0.0/33\"]}}]}]\n",
            "`ipBlocks` value `10.0.0.0/33` is not an IP address",
        ),
        (
            "  rules: [{to: [{operation: {ports: [\"http\"]}}]}]\n",
            "`ports` value `http` is not a port number",
        ),
        (
            "  rules: [{to: [{operation: {paths: [\"/a/{*}/b\"]}}]}]\n",
            "path template",
        ),
        (
            "  rules: [{to: [{operation: {hosts: [\"a.com:http\"]}}]}]\n",
            "`hosts` value `a.com:http` has a port that is not a number",
        ),
        (
            "  rules: [{to: [{operation: {hosts: [\"*.a.com:80\"]}}]}]\n",
            "host suffix `*.a.com:80`",
        ),
        (
            "  rules: [{from: [{source: {trustDomains: [\"td\"]}}]}]\n",
            "`trustDomains`/`notTrustDomains` (not a field",
        ),
        (
            "  rules: [{from: [{source: {serviceAccounts: [\"a\"], principals: [\"x\"]}}]}]\n",
            "`serviceAccounts` with `principals` or `namespaces`",
        ),
        (
            "  rules: [{from: [{source: {serviceAccounts: [\"ns/a*\"]}}]}]\n",
            "`serviceAccounts` value `ns/a*` is not `<namespace>/<name>`",
        ),
        (
            "  rules: [{from: [{source: {notNamespaces: [\"a.b\"]}}]}]\n",
            "`notNamespaces` value `a.b` is not a namespace name",
        ),
        (
            "  rules: [{when: [{key: \"request.auth.claims[level]\", values: [\"3\"]}]}]\n",
            "value `3` on `request.auth.claims[level]`",
        ),
        (
            "  rules: [{when: [{key: \"request.auth.claims[admin]\", values: [\"true\"]}]}]\n",
            "value `true`",
        ),
        (
            "  rules: [{when: [{key: \"request.auth.claims[g]\", values: [\"*\"]}]}]\n",
            "presence match `*` on `request.auth.claims[g]`",
        ),
        (
            "  rules: [{when: [{key: \"request.auth.audiences\", values: [\"*\"]}]}]\n",
            "presence match `*` on `request.auth.audiences`",
        ),
        (
            "  rules: [{from: [{source: {requestPrincipals: [\"issuer-only\"]}}]}]\n",
            "`requestPrincipals` value `issuer-only` names an empty issuer or subject",
        ),
        (
            "  rules: [{when: [{key: \"request.auth.claims[groups]\", values: [\"adm*\"]}]}]\n",
            "prefix or suffix match `adm*`",
        ),
        (
            "  rules: [{when: [{key: \"experimental.envoy.filters.a\", values: [\"x\"]}]}]\n",
            "condition on `experimental.envoy.filters.a`",
        ),
        (
            "  rules: [{when: [{key: \"remote.ip\", values: [\"1.2.3.4\"]}]}]\n",
            "`remote.ip`",
        ),
        (
            "  rules: [{when: [{key: \"request.headers[x]\"}]}]\n",
            "neither `values` nor `notValues`",
        ),
        (
            "  targetRefs: [{kind: Gateway, name: gw}]\n  rules: [{}]\n",
            "targetRef",
        ),
        (
            "  rules: [{from: [{source: {principal: [\"typo\"]}}]}]\n",
            "unknown field `principal`",
        ),
    ];
    for (spec, want) in cases {
        let err = import(&policy(spec), &ImportOptions::default())
            .map(|i| i.cedar)
            .expect_err(spec);
        assert!(err.to_string().contains(want), "{spec}: {err}");
        assert!(
            err.to_string().contains("`ns/p`") || matches!(err, ImportError::Yaml(_)),
            "{err}"
        );
    }
}

#[test]
fn workload_selection_lists_and_other_kinds() {
    let yaml = r#"
apiVersion: v1
kind: List
items:
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata: {name: mesh-wide, namespace: istio-system}
  spec: {action: DENY, rules: [{to: [{operation: {paths: ["/debug*"]}}]}]}
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata: {name: reviews, namespace: bookinfo}
  spec:
    selector: {matchLabels: {app: reviews}}
    rules: [{from: [{source: {namespaces: ["bookinfo"]}}]}]
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata: {name: ratings, namespace: bookinfo}
  spec:
    selector: {matchLabels: {app: ratings}}
    rules: [{}]
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata: {name: elsewhere, namespace: web}
  spec: {rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"#;
    let options = ImportOptions {
        workload: Some(Workload::new(
            "bookinfo",
            [
                ("app".to_owned(), "reviews".to_owned()),
                ("version".to_owned(), "v2".to_owned()),
            ],
        )),
        ..ImportOptions::default()
    };
    let imported = import(yaml, &options).unwrap();
    assert_eq!(
        imported.translated,
        ["istio-system/mesh-wide", "bookinfo/reviews"]
    );
    assert_eq!(imported.skipped.len(), 3, "{:?}", imported.skipped);
    assert!(
        imported
            .skipped
            .iter()
            .any(|s| s.contains("PeerAuthentication"))
    );
    // Without a workload, every policy is translated.
    assert_eq!(
        import(yaml, &ImportOptions::default())
            .unwrap()
            .translated
            .len(),
        4
    );
}

#[test]
fn strings_are_escaped() {
    let e = engine(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: esc, namespace: ns}
spec:
  rules:
  - to: [{operation: {paths: ["/a\"b\\c*", "/q\"*", "/star*literal"]}}]
"#,
    );
    assert!(allowed(&e, &req(Some(PRODUCTPAGE), "GET", "h", "/q\"x")));
    // The backslash is escaped into valid Cedar, but no request can match
    // it: a raw backslash in a path is refused before any policy runs.
    let d = e.decide(&req(Some(PRODUCTPAGE), "GET", "h", "/a\"b\\cd"));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::InvalidRequest);
    assert!(allowed(
        &e,
        &req(Some(PRODUCTPAGE), "GET", "h", "/star*literal")
    ));
    assert!(!allowed(
        &e,
        &req(Some(PRODUCTPAGE), "GET", "h", "/starXliteral")
    ));
}

#[test]
fn not_yaml_is_an_error() {
    assert!(matches!(
        import("{ not: [yaml", &ImportOptions::default()),
        Err(ImportError::Yaml(_))
    ));
}

/// `policies/istio/bookinfo-reviews.cedar` is this importer's output for
/// `bookinfo.yaml` and the reviews workload; its cases run with the other
/// policy suites. Set `MESHWARD_BLESS=1` to regenerate it.
#[test]
fn the_istio_library_translation_is_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/istio");
    let yaml = std::fs::read_to_string(dir.join("bookinfo.yaml")).unwrap();
    let options = ImportOptions {
        workload: Some(Workload::new(
            "bookinfo",
            [
                ("app".to_owned(), "reviews".to_owned()),
                ("version".to_owned(), "v2".to_owned()),
            ],
        )),
        ..ImportOptions::default()
    };
    let options = ImportOptions {
        headers_fail_closed: true,
        ..options
    };
    let imported = import(&yaml, &options).unwrap();
    let header = "// Generated by meshward-istio-import from bookinfo.yaml for the reviews\n\
                  // workloads (namespace bookinfo, app=reviews). Do not edit: regenerate with\n\
                  // MESHWARD_BLESS=1 cargo test -p meshward-istio-import\n\n";
    let generated = format!("{header}{}", imported.cedar);
    let path = dir.join("bookinfo-reviews.cedar");
    if std::env::var_os("MESHWARD_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk, generated,
        "run with MESHWARD_BLESS=1 to regenerate"
    );
    assert_eq!(imported.skipped.len(), 2, "{:?}", imported.skipped);
}

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: shop}}\nspec:\n{spec}"
    )
}

#[test]
fn namespaces_match_anywhere_in_the_spiffe_id() {
    let e = engine(&policy(
        "  rules: [{from: [{source: {namespaces: [\"web\", \"team-*\"]}}]}]\n",
    ));
    let at = |p: &str| allowed(&e, &req(Some(p), "GET", "h", "/"));
    assert!(at("cluster.local/ns/web/sa/frontend"));
    // Istio's regex `.*/ns/web/.*`: any ID with `/ns/web/` in it.
    assert!(at("cluster.local/region/eu/ns/web/sa/frontend"));
    assert!(at("example.org/ns/web/workload/x"));
    assert!(at("cluster.local/ns/team-a/sa/x"));
    assert!(!at("cluster.local/ns/webx/sa/frontend"));
    assert!(!at("cluster.local/ns/web"));
    assert!(!at("cluster.local/sa/web/ns/api"));
    assert!(!allowed(&e, &req(None, "GET", "h", "/")));
    // `notNamespaces` holds for a plaintext peer, which has no namespace.
    let e = engine(&policy(
        "  rules: [{from: [{source: {notNamespaces: [\"web\"]}}]}]\n",
    ));
    assert!(allowed(&e, &req(None, "GET", "h", "/")));
    assert!(!allowed(
        &e,
        &req(Some("td/x/ns/web/sa/y"), "GET", "h", "/")
    ));
}

#[test]
fn service_accounts_default_to_the_policy_namespace() {
    let e = engine(&policy(
        "  rules: [{from: [{source: {serviceAccounts: [\"cart\", \"web/frontend\"]}}]}]\n",
    ));
    let at = |p: &str| allowed(&e, &req(Some(p), "GET", "h", "/"));
    assert!(at("cluster.local/ns/shop/sa/cart"));
    assert!(at("other.td/ns/web/sa/frontend"));
    assert!(at("td/ns/shop/cluster/c1/sa/cart"));
    assert!(at("td/ns/shop/sa/cart/extra"));
    assert!(!at("td/ns/shop/sa/cart-x"));
    assert!(!at("td/ns/web/sa/cart"));
    assert!(!at("td/ns/other/sa/frontend"));
    let e = engine(&policy(
        "  action: DENY\n  rules: [{from: [{source: {notServiceAccounts: [\"cart\"]}}]}]\n",
    ));
    assert!(allowed(
        &e,
        &req(Some("td/ns/shop/sa/cart"), "GET", "h", "/")
    ));
    assert!(!allowed(&e, &req(Some("td/ns/shop/sa/x"), "GET", "h", "/")));
    assert!(!allowed(&e, &req(None, "GET", "h", "/")));
}

#[test]
fn request_principals_split_at_the_last_slash() {
    let with_jwt = |e: &Engines, iss: serde_json::Value, sub: serde_json::Value| {
        let mut f = req(Some(PRODUCTPAGE), "GET", "h", "/");
        f.jwt_claims = Some(serde_json::json!({"iss": iss, "sub": sub}));
        allowed(e, &f)
    };
    let rp = |v: &str| {
        engine(&policy(&format!(
            "  rules: [{{from: [{{source: {{requestPrincipals: [\"{v}\"]}}}}]}}]\n"
        )))
    };
    let e = rp("https://example.com/*");
    assert!(with_jwt(&e, "https://example.com".into(), "alice".into()));
    // The joined `https://example.com/tenant1/alice` starts with the
    // pattern, but the issuer is not `https://example.com`.
    assert!(!with_jwt(
        &e,
        "https://example.com/tenant1".into(),
        "alice".into()
    ));
    assert!(!with_jwt(&e, "https://example.com".into(), "".into()));
    let e = rp("*/alice");
    assert!(with_jwt(&e, "https://a.example".into(), "alice".into()));
    assert!(!with_jwt(
        &e,
        "https://a.example".into(),
        "bob/alice".into()
    ));
    let e = rp("*.example.com/alice");
    assert!(with_jwt(
        &e,
        "https://idp.example.com".into(),
        "alice".into()
    ));
    assert!(!with_jwt(
        &e,
        "https://idp.example.org".into(),
        "alice".into()
    ));
    let e = rp("https://idp/ali*");
    assert!(with_jwt(&e, "https://idp".into(), "alice".into()));
    assert!(!with_jwt(&e, "https://idp".into(), "bob".into()));
    let e = rp("*");
    assert!(with_jwt(&e, "i".into(), "s".into()));
    assert!(!with_jwt(&e, "i".into(), 3.into()));
    let e = rp("https://idp/alice");
    assert!(with_jwt(&e, "https://idp".into(), "alice".into()));
    assert!(!with_jwt(&e, "https://idp/alice".into(), "".into()));
    // No `/`: a prefix of the issuer, any subject; a suffix of the subject.
    let e = rp("https:*");
    assert!(with_jwt(&e, "https://x/y".into(), "s".into()));
    let e = rp("*ice");
    assert!(with_jwt(&e, "anything".into(), "alice".into()));
    assert!(!with_jwt(&e, "alice".into(), "bob".into()));
}

#[test]
fn hosts_compare_the_authority_as_sent() {
    let e = engine(&policy(
        "  rules: [{to: [{operation: {hosts: [\"Example.com\", \"api.example.com:8080\", \"*.svc\", \"web.*\", \"*:9090\", \"local:80*\"]}}]}]\n",
    ));
    let at = |h: &str| allowed(&e, &req(Some(PRODUCTPAGE), "GET", h, "/"));
    assert!(at("example.com"));
    assert!(at("EXAMPLE.com"));
    assert!(!at("example.com:80"));
    assert!(!at("example.com."));
    assert!(at("api.example.com:8080"));
    assert!(at("API.example.com:8080"));
    assert!(!at("api.example.com"));
    assert!(!at("api.example.com:18080"));
    assert!(!at("api.example.com.:8080"));
    assert!(at("reviews.svc"));
    assert!(!at("reviews.svc:80"));
    assert!(!at("reviews.svc."));
    assert!(at("web.shop"));
    assert!(at("WEB.shop:443"));
    assert!(at("other:9090"));
    assert!(!at("other:19091"));
    assert!(at("LOCAL:8080"));
    assert!(at("local:80"));
    assert!(!at("local.:80"));
    assert!(!at("local:90"));
    assert!(!at("local"));
}

#[test]
fn header_conditions_are_exact_on_single_values_and_fail_closed_otherwise() {
    let allow = policy(
        "  rules: [{when: [{key: \"request.headers[x-a]\", values: [\"*\"]}, {key: \"request.headers[x-b]\", values: [\"1\", \"v*\"]}]}]\n",
    );
    let e = engine(&allow);
    let with = |e: &Engines, headers: &[(&str, &str)]| {
        let mut f = req(Some(PRODUCTPAGE), "GET", "h", "/");
        for (k, v) in headers {
            f.headers.push(*k, *v);
        }
        allowed(e, &f)
    };
    // `*` is presence, even of an empty value.
    assert!(with(&e, &[("x-a", ""), ("x-b", "v1")]));
    assert!(!with(&e, &[("x-b", "v1")]));
    assert!(with(&e, &[("x-a", "y"), ("x-b", "1")]));
    assert!(!with(&e, &[("x-a", "y"), ("x-b", "2")]));
    // Repeated or comma-separated: Envoy would match `v` on its own; an
    // ALLOW rule here does not.
    assert!(!with(&e, &[("x-a", "y"), ("x-b", "v"), ("x-b", "x")]));
    assert!(!with(&e, &[("x-a", "y"), ("x-b", "1,2")]));
    // A DENY rule does: on `values`, and on `notValues` turned around.
    let deny = policy(
        "  action: DENY\n  rules: [{when: [{key: \"request.headers[x-debug]\", values: [\"1\"]}]}, {when: [{key: \"request.headers[x-env]\", notValues: [\"prod\"]}]}]\n",
    );
    let e = engine(&deny);
    assert!(with(&e, &[("x-debug", "0"), ("x-env", "prod")]));
    assert!(!with(&e, &[("x-debug", "1")]));
    assert!(!with(&e, &[("x-debug", "0"), ("x-debug", "2")]));
    assert!(!with(&e, &[("x-env", "prod"), ("x-env", "prod")]));
    assert!(!with(&e, &[("x-env", "dev")]));
    // Without the option, only presence translates.
    let err = import(&allow, &ImportOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("value `1` on `request.headers[x-b]`"),
        "{err}"
    );
    let present = policy("  rules: [{when: [{key: \"request.headers[x-a]\", values: [\"*\"]}]}]\n");
    assert!(import(&present, &ImportOptions::default()).is_ok());
}

#[test]
fn trust_domain_aliases_rewrite_principals() {
    let yaml = policy(
        "  rules: [{from: [{source: {principals: [\"cluster.local/ns/a/sa/b\", \"old-td/ns/c/sa/d\", \"other/ns/e/sa/f\"]}}]}]\n",
    );
    let options = ImportOptions {
        trust_domain: "new-td".to_owned(),
        trust_domain_aliases: vec!["old-td".to_owned()],
        ..ImportOptions::default()
    };
    let cedar = import(&yaml, &options).unwrap().cedar;
    let config = serde_json::json!({"policies": cedar, "require_peer_identity": false});
    let e = engines(&config);
    let at = |p: &str| allowed(&e, &req(Some(p), "GET", "h", "/"));
    for p in [
        "new-td/ns/a/sa/b",
        "old-td/ns/a/sa/b",
        "new-td/ns/c/sa/d",
        "old-td/ns/c/sa/d",
        "other/ns/e/sa/f",
    ] {
        assert!(at(p), "{p}\n{cedar}");
    }
    // `cluster.local` stands for the mesh's domains, not for itself.
    assert!(!at("cluster.local/ns/a/sa/b"));
    assert!(!at("new-td/ns/e/sa/f"));
    // Without aliases, the default trust domain changes nothing.
    let e = engine(&yaml);
    assert!(allowed(
        &e,
        &req(Some("cluster.local/ns/a/sa/b"), "GET", "h", "/")
    ));
}

#[test]
fn dry_run_policies_become_a_dry_run_configuration() {
    let dry = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: d\n  namespace: ns\n  annotations: {\"istio.io/dry-run\": \"true\"}\nspec: {action: DENY, rules: [{}]}\n";
    let imported = import(dry, &ImportOptions::default()).unwrap();
    assert!(imported.dry_run);
    let config = imported.engine_config();
    assert_eq!(config["mode"], "dry_run");
    assert_eq!(config["require_peer_identity"], false);
    let e = engines(&config);
    let d = e.decide(&req(Some(PRODUCTPAGE), "GET", "h", "/"));
    assert!(!d.allowed, "the engine decides; the filter reports it");
    assert_eq!(e.evaluator.mode(), meshward_policy::Mode::DryRun);
    let both = format!(
        "{dry}---\n{}",
        policy("  action: DENY\n  rules: [{to: [{operation: {paths: [\"/x\"]}}]}]\n")
    );
    let err = import(&both, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("istio.io/dry-run"), "{err}");
    let bad = dry.replace("\"true\"", "\"yes\"");
    assert!(import(&bad, &ImportOptions::default()).is_err());
    let enforced = import(&policy("  rules: [{}]\n"), &ImportOptions::default()).unwrap();
    assert!(!enforced.dry_run);
    assert_eq!(enforced.engine_config()["mode"], "enforce");
}

#[test]
fn plaintext_peers_are_evaluated_as_in_permissive_mode() {
    let imported = import(
        &policy("  rules: [{to: [{operation: {paths: [\"/public\"]}}]}]\n"),
        &ImportOptions::default(),
    )
    .unwrap();
    let e = engines(&imported.engine_config());
    assert!(allowed(&e, &req(None, "GET", "h", "/public")));
    assert!(!allowed(&e, &req(None, "GET", "h", "/private")));
}
