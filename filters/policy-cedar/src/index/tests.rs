//! The index must give exactly Cedar's decision, determining policies and
//! errors: checked on generated policy sets and requests against full
//! evaluation of the same set.

use std::fmt::Write as _;

use meshward_identity::SpiffeId;

use crate::CedarEngine;
use meshward_policy::RequestFacts;

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const TDS: &[&str] = &["cluster.local", "other.org"];
const NSS: &[&str] = &["a", "b", "c"];
const SAS: &[&str] = &["x", "y", "z"];
const HOSTS: &[&str] = &["h1", "h2", "h3"];
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW",
];
const GROUPS: &[&str] = &["read", "write"];
const PATHS: &[&str] = &["/p1", "/p2/x", "/admin", "/"];

fn workload(r: &mut Rng) -> String {
    format!(
        "spiffe://{}/ns/{}/sa/{}",
        r.pick(TDS),
        r.pick(NSS),
        r.pick(SAS)
    )
}

fn principal_scope(r: &mut Rng) -> String {
    match r.below(8) {
        0 | 1 => "principal".into(),
        2 => format!("principal == Mesh::Workload::\"{}\"", workload(r)),
        3 => format!("principal in Mesh::Namespace::\"{}\"", r.pick(NSS)),
        4 => format!(
            "principal in Mesh::ServiceAccount::\"{}/{}\"",
            r.pick(NSS),
            r.pick(SAS)
        ),
        5 => format!("principal in Mesh::TrustDomain::\"{}\"", r.pick(TDS)),
        6 => "principal is Mesh::Workload".into(),
        _ => format!(
            "principal is Mesh::Workload in Mesh::Namespace::\"{}\"",
            r.pick(NSS)
        ),
    }
}

fn action_scope(r: &mut Rng) -> String {
    let m = |r: &mut Rng| r.pick(&METHODS[..7]).to_owned();
    match r.below(6) {
        0 | 1 => "action".into(),
        2 => format!("action == Mesh::Action::\"{}\"", m(r)),
        3 => format!("action in Mesh::Action::\"{}\"", r.pick(GROUPS)),
        4 => format!(
            "action in [Mesh::Action::\"read\", Mesh::Action::\"{}\"]",
            m(r)
        ),
        _ => format!(
            "action in [Mesh::Action::\"{}\", Mesh::Action::\"{}\"]",
            m(r),
            m(r)
        ),
    }
}

fn resource_scope(r: &mut Rng) -> String {
    match r.below(4) {
        0 | 1 => "resource".into(),
        2 => format!("resource == Mesh::Host::\"{}\"", r.pick(HOSTS)),
        _ => format!("resource in Mesh::Host::\"{}\"", r.pick(HOSTS)),
    }
}

fn condition(r: &mut Rng) -> String {
    match r.below(10) {
        0..=2 => String::new(),
        3 => format!("when {{ context.path like \"{}*\" }}", r.pick(PATHS)),
        4 => "when { context.headers.hasTag(\"x-h\") && context.headers.getTag(\"x-h\") == \"1\" }".into(),
        5 => "when { context has user && context.user.hasTag(\"groups\") && context.user.getTag(\"groups\").contains(\"admins\") }".into(),
        6 => "when { context has source_ip && context.source_ip.isInRange(ip(\"10.0.0.0/8\")) }".into(),
        // Errors at runtime whenever the port is positive.
        7 => "when { context.port + 9223372036854775807 > 0 }".into(),
        8 => format!("unless {{ principal has namespace && principal.namespace == \"{}\" }}", r.pick(NSS)),
        _ => "when { context.mtls }".into(),
    }
}

fn policy_set(r: &mut Rng, n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let effect = if r.chance(30) { "forbid" } else { "permit" };
        writeln!(
            text,
            "@id(\"p{i}\") {effect}({}, {}, {}) {};",
            principal_scope(r),
            action_scope(r),
            resource_scope(r),
            condition(r)
        )
        .unwrap();
    }
    text
}

fn request(r: &mut Rng) -> RequestFacts {
    let mut f = RequestFacts::new(r.pick(METHODS), r.pick(HOSTS), r.pick(PATHS));
    f.peer = Some(SpiffeId::parse(&workload(r)).unwrap());
    f.port = if r.chance(20) { 0 } else { 8080 };
    f.mtls = r.chance(70);
    if r.chance(40) {
        f.headers.push("X-H", "1");
    }
    if r.chance(40) {
        // Unread by any policy: filtered out of the entities.
        f.headers.push("x-request-id", r.next().to_string());
    }
    if r.chance(40) {
        f.source = Some(
            if r.chance(50) {
                "10.1.1.1:1"
            } else {
                "192.168.0.1:1"
            }
            .parse()
            .unwrap(),
        );
    }
    if r.chance(40) {
        let groups = if r.chance(50) {
            vec!["admins"]
        } else {
            vec!["users"]
        };
        f.jwt_claims = Some(serde_json::json!({"iss": "i", "sub": "s", "groups": groups}));
    }
    f
}

#[test]
fn index_gives_cedars_decisions_on_a_generated_corpus() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut allowed, mut forbidden, mut errored, mut total) = (0, 0, 0, 0);
    for set in 0..150 {
        let n = 1 + r.below(60);
        let text = policy_set(&mut r, n);
        let engine = CedarEngine::from_policies(&text)
            .unwrap_or_else(|e| panic!("set {set} does not validate: {e}\n{text}"));
        for _ in 0..40 {
            let facts = request(&mut r);
            let fast = engine.decide(&facts);
            let full = engine.decide_unindexed(&facts);
            assert_eq!(fast, full, "set {set}, request {facts:?}\n{text}");
            let reference = engine.decide_reference(&facts);
            assert_eq!(fast, reference, "set {set}, request {facts:?}\n{text}");
            total += 1;
            allowed += usize::from(fast.allowed);
            forbidden += usize::from(fast.reason == meshward_policy::Reason::Forbidden);
            errored += usize::from(!fast.errors.is_empty());
        }
    }
    // The corpus must exercise every outcome, or the comparison proves little.
    assert!(allowed > total / 10, "{allowed} of {total} allowed");
    assert!(forbidden > total / 10, "{forbidden} of {total} forbidden");
    assert!(errored > total / 10, "{errored} of {total} with errors");
}

#[test]
fn computed_tag_names_keep_every_tag() {
    let engine = CedarEngine::from_policies(
        r#"@id("dyn") permit(principal, action, resource)
             when { context.headers.hasTag(context.query) && context.headers.getTag(context.query) == "1" };"#,
    )
    .unwrap();
    let facts = RequestFacts::new("GET", "h", "/?x-any")
        .with_peer(SpiffeId::parse("spiffe://td/ns/a/sa/b").unwrap())
        .with_header("X-Any", "1");
    assert!(engine.decide(&facts).allowed);
    assert_eq!(engine.decide(&facts), engine.decide_reference(&facts));
}

#[test]
fn cached_entities_follow_the_request() {
    let engine = CedarEngine::from_policies(
        r#"@id("hdr") permit(principal, action, resource)
             when { context.headers.hasTag("x-h") && context.headers.getTag("x-h") == "1" };
           @id("claim") forbid(principal, action, resource)
             when { context has user && context.user.hasTag("groups") && context.user.getTag("groups").contains("blocked") };"#,
    )
    .unwrap();
    let peer = SpiffeId::parse("spiffe://td/ns/a/sa/b").unwrap();
    let base = RequestFacts::new("GET", "h", "/").with_peer(peer);
    for _ in 0..3 {
        assert!(!engine.decide(&base).allowed);
        assert!(engine.decide(&base.clone().with_header("x-h", "1")).allowed);
        assert!(!engine.decide(&base.clone().with_header("x-h", "2")).allowed);
        let mut blocked = base.clone().with_header("x-h", "1");
        blocked.jwt_claims =
            Some(serde_json::json!({"iss": "i", "sub": "s", "groups": ["blocked"]}));
        assert!(!engine.decide(&blocked).allowed);
        blocked.jwt_claims = Some(serde_json::json!({"iss": "i", "sub": "s", "groups": ["ok"]}));
        assert!(engine.decide(&blocked).allowed);
    }
}

#[test]
fn index_visits_only_matching_leaves() {
    // 200 policies for other service accounts and one for ours: the index
    // must not evaluate the others (checked through the leaf count).
    let mut text = String::new();
    for i in 0..200 {
        writeln!(text, "@id(\"other{i}\") permit(principal in Mesh::ServiceAccount::\"ns{i}/sa\", action, resource);").unwrap();
    }
    text.push_str(
        "@id(\"mine\") permit(principal in Mesh::ServiceAccount::\"a/x\", action, resource);",
    );
    let engine = CedarEngine::from_policies(&text).unwrap();
    let facts = RequestFacts::new("GET", "h1", "/")
        .with_peer(SpiffeId::parse("spiffe://cluster.local/ns/a/sa/x").unwrap());
    let d = engine.decide(&facts);
    assert_eq!(d.determining.len(), 1);
    assert_eq!(engine.reachable_policies(&facts), 1);
}
