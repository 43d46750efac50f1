//! The evaluator the filter runs against Cedar itself, on a generated
//! corpus: seeded policy sets over meshward's schema (every operator the
//! evaluator implements, and the edge cases: unicode, empty strings, `*`
//! in patterns and data, IPv4 and IPv6 ranges, long overflow, missing
//! attributes and tags, datetime boundaries) decided for seeded requests by
//! Cedar's authorizer (`CedarEngine`) and by the compiled evaluator
//! (`PolicyEngine`). Allowed, reason, determining policies and the number
//! of errors must be identical.
//!
//! Validated sets are what `meshward compile` hands the filter; sets that
//! fail validation (ill-typed, unguarded optional attributes and tags) are
//! decided without validation, since the filter must agree with Cedar on
//! whatever it is handed.
//!
//! `MESHWARD_DIFF_SETS=20000 cargo test -p meshward-policy-cedar --release
//! --test differential` runs a longer corpus (`scripts/policy-differential`).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use meshward_identity::SpiffeId;
use meshward_policy::{PolicyEngine, Reason, RequestFacts};
use meshward_policy_cedar::CedarEngine;

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

const STRINGS: &[&str] = &[
    "",
    "a",
    "*",
    "é",
    "ü/ß",
    "/admin",
    "/admin/x",
    "GET",
    "get",
    "h1",
    "h1:8080",
    "x-h",
    "1",
    "1, 2",
    "shop",
    "cluster.local",
    "/ns/shop/sa/web",
    "spiffe://cluster.local/ns/shop/sa/web",
    "i/s",
    "https://idp/alice",
    "aud1",
    "admins",
    "a*b",
    "\u{1F600}",
    "x\\y",
    "\"q\"",
];
const PATTERNS: &[&str] = &[
    "*",
    "",
    "/admin*",
    "/admin/*",
    "/a*b*",
    "*é*",
    "\\*",
    "*.example",
    "h*",
    "*\\**",
    "a",
    "**",
    "/*/*",
    "\u{1F600}*",
    "*1",
];
const LONGS: &[&str] = &[
    "0",
    "1",
    "-1",
    "80",
    "8080",
    "443",
    "9223372036854775807",
    "4611686018427387904",
    "3037000500",
    "-9223372036854775807",
];
const IPS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.1.1",
    "127.0.0.1",
    "127.0.0.0/8",
    "0.0.0.0/0",
    "192.168.0.0/16",
    "224.0.0.1",
    "::1",
    "::/0",
    "2001:db8::/32",
    "2001:db8::5",
    "ff02::1",
    "10.1.1.0/24",
    "203.0.113.0/24",
    "::1/127",
];
const DATETIMES: &[&str] = &[
    "2025-06-01T00:00:00Z",
    "2025-06-01",
    "2025-05-31T23:59:59Z",
    "2025-06-01T00:00:01Z",
    "1970-01-01",
    "2025-06-01T02:00:00+0200",
    "2025-05-31T23:59:59.999Z",
    "2024-02-29",
    "9999-12-31T23:59:59Z",
];
const DURATIONS: &[&str] = &[
    "1s",
    "-1s",
    "1d",
    "0ms",
    "1h30m",
    "2d3h4m5s6ms",
    "-1ms",
    "60s",
];
const NSS: &[&str] = &["shop", "a", "é"];
const HOSTS: &[&str] = &["h1", "h2", "", "é.example"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "BREW", "get", ""];
const PATHS: &[&str] = &["/", "/admin", "/admin/x", "/a/b", "/é", "/%2A", ""];

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Gen<'r> {
    r: &'r mut Rng,
}

impl Gen<'_> {
    fn string(&mut self, d: u32) -> String {
        let r = &mut *self.r;
        match r.below(if d == 0 { 2 } else { 14 }) {
            0 | 1 => quote(r.pick(STRINGS)),
            2 => "context.path".into(),
            3 => "context.method".into(),
            4 => "context.host".into(),
            5 => "context.authority".into(),
            6 => "context.query".into(),
            7 => "principal.spiffe_id".into(),
            8 => "principal.trust_domain".into(),
            9 => "resource.name".into(),
            10 => "principal.path".into(),
            11 => format!(
                "(if {} then {} else {})",
                self.boolean(d - 1),
                self.string(d - 1),
                self.string(d - 1)
            ),
            // Unguarded: errors when absent (and fails validation).
            12 => "principal.namespace".into(),
            _ => "context.headers.getTag(\"x-h\")".into(),
        }
    }

    fn long(&mut self, d: u32) -> String {
        let r = &mut *self.r;
        match r.below(if d == 0 { 2 } else { 10 }) {
            0 => r.pick(LONGS).to_owned(),
            1 => "context.port".into(),
            2 => format!("({} + {})", self.long(d - 1), self.long(d - 1)),
            3 => format!("({} - {})", self.long(d - 1), self.long(d - 1)),
            4 => format!("({} * {})", self.long(d - 1), self.long(d - 1)),
            5 => format!("(-{})", self.long(d - 1)),
            6 => format!(
                "(if {} then {} else {})",
                self.boolean(d - 1),
                self.long(d - 1),
                self.long(d - 1)
            ),
            7 => format!("{{a: {}, b: {}}}.a", self.long(d - 1), self.string(d - 1)),
            8 => "context.authority_port".into(),
            _ => "context.source_port".into(),
        }
    }

    fn set(&mut self, d: u32) -> String {
        let r = &mut *self.r;
        match r.below(6) {
            0 => format!("[{}, {}]", self.string(d), self.string(d)),
            1 => format!("[{}]", self.string(d)),
            2 => "context.header_values.getTag(\"x-h\")".into(),
            3 => "context.param_values.getTag(\"admin\")".into(),
            4 => "context.user.audiences".into(),
            _ => "context.user.getTag(\"groups\")".into(),
        }
    }

    fn entity(&mut self) -> String {
        let r = &mut *self.r;
        match r.below(8) {
            0 => format!("Mesh::Namespace::{}", quote(r.pick(NSS))),
            1 => format!("Mesh::ServiceAccount::{}", quote("shop/web")),
            2 => format!("Mesh::TrustDomain::{}", quote("cluster.local")),
            3 => format!(
                "Mesh::Workload::{}",
                quote("spiffe://cluster.local/ns/shop/sa/web")
            ),
            4 => format!("Mesh::Host::{}", quote(r.pick(HOSTS))),
            5 => "Mesh::Action::\"read\"".into(),
            6 => "Mesh::Workload::\"anonymous\"".into(),
            _ => "Mesh::Action::\"write\"".into(),
        }
    }

    fn boolean(&mut self, d: u32) -> String {
        let r = &mut *self.r;
        let cmp = |r: &mut Rng| r.pick(&["<", "<=", ">", ">="]).to_owned();
        if d == 0 {
            return r
                .pick(&["true", "false", "context.mtls", "principal.authenticated"])
                .into();
        }
        let d1 = d - 1;
        match r.below(34) {
            0 => format!("{} == {}", self.string(d1), self.string(d1)),
            1 => format!("{} != {}", self.string(d1), self.string(d1)),
            2 => {
                let c = cmp(self.r);
                format!("{} {c} {}", self.long(d1), self.long(d1))
            }
            3 => format!("{} == {}", self.long(d1), self.long(d1)),
            4 => format!("{} like {}", self.string(d1), quote_pattern(self.r.pick(PATTERNS))),
            5 => {
                let a = self
                    .r
                    .pick(&["source_ip", "sni", "user", "authority_port", "source_port", "nope"]);
                format!("context has {a}")
            }
            6 => format!("({} && {})", self.boolean(d1), self.boolean(d1)),
            7 => format!("({} || {})", self.boolean(d1), self.boolean(d1)),
            8 => format!("!({})", self.boolean(d1)),
            9 => format!(
                "(if {} then {} else {})",
                self.boolean(d1),
                self.boolean(d1),
                self.boolean(d1)
            ),
            10 => format!("{}.contains({})", self.set(d1), self.string(d1)),
            11 => format!("{}.containsAll({})", self.set(d1), self.set(d1)),
            12 => format!("{}.containsAny({})", self.set(d1), self.set(d1)),
            13 => format!("{}.isEmpty()", self.set(d1)),
            14 => format!("principal in {}", self.entity()),
            15 => format!("principal in [{}, {}]", self.entity(), self.entity()),
            16 => format!("action in {}", self.entity()),
            17 => format!("{} == principal", self.entity()),
            18 => format!("resource is Mesh::Host in {}", self.entity()),
            19 => "principal has namespace && principal.namespace == \"shop\"".into(),
            20 => {
                let t = self.r.pick(&["headers", "params", "header_values", "param_values"]);
                let n = self.r.pick(&["x-h", "admin", "X-H", ""]);
                format!("context.{t}.hasTag({})", quote(n))
            }
            21 => "context.headers.hasTag(\"x-h\") && context.headers.getTag(\"x-h\") == \"1\""
                .into(),
            22 => "context.param_values.hasTag(\"admin\") && context.param_values.getTag(\"admin\").contains(\"1\")".into(),
            23 => {
                let f = self.r.pick(&["isIpv4", "isIpv6", "isLoopback", "isMulticast"]);
                if self.r.chance(50) {
                    format!("context has source_ip && context.source_ip.{f}()")
                } else {
                    format!("ip({}).{f}()", quote(self.r.pick(IPS)))
                }
            }
            24 => format!(
                "context has source_ip && context.source_ip.isInRange(ip({}))",
                quote(self.r.pick(IPS))
            ),
            25 => format!(
                "ip({}).isInRange(ip({}))",
                quote(self.r.pick(IPS)),
                quote(self.r.pick(IPS))
            ),
            26 => format!("ip({}) == ip({})", quote(self.r.pick(IPS)), quote(self.r.pick(IPS))),
            27 => {
                let c = cmp(self.r);
                format!("context.time {c} datetime({})", quote(self.r.pick(DATETIMES)))
            }
            28 => {
                let c = cmp(self.r);
                format!(
                    "duration({}) {c} duration({})",
                    quote(self.r.pick(DURATIONS)),
                    quote(self.r.pick(DURATIONS))
                )
            }
            29 => format!(
                "datetime({}) == datetime({})",
                quote(self.r.pick(DATETIMES)),
                quote(self.r.pick(DATETIMES))
            ),
            30 => "context has user && context.user.hasTag(\"groups\") && context.user.getTag(\"groups\").contains(\"admins\")".into(),
            31 => format!(
                "context has user && context.user.request_principal == {}",
                self.string(d1)
            ),
            32 => format!(
                "{{a: {}, b: {}}} == {{b: {}, a: {}}}",
                self.long(d1),
                self.string(d1),
                self.string(d1),
                self.long(d1)
            ),
            _ => format!("context has sni && context.sni like {}", quote_pattern(self.r.pick(PATTERNS))),
        }
    }
}

/// A pattern for `like`: `\*` is a literal star, `*` a wildcard; other
/// characters as in a string literal.
fn quote_pattern(p: &str) -> String {
    let mut out = String::from("\"");
    for c in p.chars() {
        match c {
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scope(r: &mut Rng, which: &str) -> String {
    match (which, r.below(6)) {
        (_, 0..=2) => which.to_owned(),
        ("principal", 3) => format!("principal in Mesh::Namespace::{}", quote(r.pick(NSS))),
        ("principal", 4) => {
            "principal == Mesh::Workload::\"spiffe://cluster.local/ns/shop/sa/web\"".into()
        }
        ("principal", _) => {
            "principal is Mesh::Workload in Mesh::TrustDomain::\"cluster.local\"".into()
        }
        ("action", 3) => "action in Mesh::Action::\"write\"".into(),
        ("action", 4) => "action == Mesh::Action::\"GET\"".into(),
        ("action", _) => "action in [Mesh::Action::\"read\", Mesh::Action::\"OTHER\"]".into(),
        (_, 3) => format!("resource == Mesh::Host::{}", quote(r.pick(HOSTS))),
        (_, 4) => "resource is Mesh::Host".into(),
        _ => format!("resource in Mesh::Host::{}", quote(r.pick(HOSTS))),
    }
}

fn policy_set(r: &mut Rng) -> String {
    let mut text = String::new();
    for i in 0..1 + r.below(5) {
        let effect = if r.chance(40) { "forbid" } else { "permit" };
        let (p, a, res) = (
            scope(r, "principal"),
            scope(r, "action"),
            scope(r, "resource"),
        );
        let mut conds = String::new();
        for _ in 0..r.below(3) {
            let kind = if r.chance(70) { "when" } else { "unless" };
            let body = Gen { r }.boolean(3);
            write!(conds, " {kind} {{ {body} }}").unwrap();
        }
        writeln!(text, "@id(\"p{i}\") {effect}({p}, {a}, {res}){conds};").unwrap();
    }
    text
}

fn request(r: &mut Rng, anonymous_allowed: bool) -> RequestFacts {
    let mut f = RequestFacts::new(
        r.pick(METHODS),
        r.pick(&["h1", "h1:8080", "H2.", "", "é.example", "[::1]:80"]),
        &format!(
            "{}{}",
            r.pick(PATHS),
            r.pick(&[
                "",
                "?admin=1",
                "?ADMIN=1&admin=2",
                "?x=%ff",
                "?admin=%C3%A9"
            ])
        ),
    );
    f.peer = match r.below(6) {
        0 if anonymous_allowed => None,
        1 => Some(
            SpiffeId::parse("spiffe://other.org/ns/é/sa/x")
                .unwrap_or_else(|_| SpiffeId::parse("spiffe://other.org/ns/a/sa/x").unwrap()),
        ),
        2 => Some(SpiffeId::parse("spiffe://cluster.local/job").unwrap()),
        3 => Some(SpiffeId::parse("spiffe://cluster.local/ns/a/sa/web").unwrap()),
        _ => Some(SpiffeId::parse("spiffe://cluster.local/ns/shop/sa/web").unwrap()),
    };
    f.port = [0u16, 80, 8080, 65535][r.below(4)];
    f.mtls = r.chance(70);
    for _ in 0..r.below(3) {
        let name = r.pick(&["x-h", "X-H", "x-other"]);
        let value: &[u8] = [&b"1"[..], b"1, 2", b"", "é".as_bytes(), b"\xff", b"2"][r.below(6)];
        f.headers.push(name, value);
    }
    if r.chance(50) {
        let s = r.pick(&[
            "10.1.1.1:1",
            "127.0.0.1:2",
            "192.168.3.4:5",
            "224.0.0.1:1",
            "[::1]:1",
            "[2001:db8::5]:1",
            "[ff02::1]:1",
            "[::ffff:1.2.3.4]:1",
            "203.0.113.9:1",
        ]);
        f.source = Some(s.parse().unwrap());
    }
    if r.chance(30) {
        f.sni = Some(r.pick(&["a.example", "", "é"]).to_owned());
    }
    if r.chance(40) {
        let groups: Vec<&str> = match r.below(3) {
            0 => vec!["admins"],
            1 => vec![],
            _ => vec!["users", "admins"],
        };
        let mut claims = serde_json::json!({"iss": "i", "sub": "s", "groups": groups});
        if r.chance(50) {
            claims["aud"] = serde_json::json!(["aud1"]);
        }
        if r.chance(20) {
            claims = serde_json::json!({"sub": "é"});
        }
        f.jwt_claims = Some(claims);
    }
    let boundary = 1_748_736_000u64; // 2025-06-01T00:00:00Z
    f.time = UNIX_EPOCH
        + Duration::from_secs(match r.below(6) {
            0 => 0,
            1 => boundary - 1,
            2 => boundary,
            3 => boundary + 1,
            4 => 253_402_300_799,
            _ => 253_402_300_800, // year 10000: no Cedar datetime
        });
    f
}

#[derive(Default)]
struct Tally {
    sets: usize,
    unvalidated: usize,
    refused: usize,
    decisions: usize,
    allowed: usize,
    forbidden: usize,
    policy_error: usize,
    errors: usize,
}

fn config(policies: &str, anonymous: bool) -> String {
    serde_json::json!({"policies": policies, "require_peer_identity": !anonymous}).to_string()
}

fn run(seed: u64, sets: usize) -> Tally {
    let mut r = Rng(seed);
    let mut t = Tally::default();
    for set in 0..sets {
        let text = policy_set(&mut r);
        let anonymous = r.chance(30);
        let json = config(&text, anonymous);
        let cedar = match CedarEngine::from_config(json.as_bytes()) {
            Ok(e) => e,
            Err(_) => {
                t.unvalidated += 1;
                CedarEngine::from_config_unvalidated(json.as_bytes())
                    .unwrap_or_else(|e| panic!("set {set} does not parse: {e}\n{text}"))
            }
        };
        let compiled = match cedar.compiled() {
            Ok(c) => c,
            Err(e) => {
                // Refusing is allowed only for what the evaluator leaves out.
                assert!(
                    matches!(e, meshward_policy::ConfigError::Unsupported { .. }),
                    "set {set}: {e}\n{text}"
                );
                t.refused += 1;
                continue;
            }
        };
        let evaluator = PolicyEngine::from_compiled(&compiled).unwrap();
        t.sets += 1;
        for _ in 0..12 {
            let facts = request(&mut r, anonymous);
            let want = cedar.decide_unindexed(&facts);
            let got = evaluator.decide(&facts);
            assert_eq!(
                (
                    want.allowed,
                    want.reason,
                    &want.determining,
                    want.errors.len()
                ),
                (got.allowed, got.reason, &got.determining, got.errors.len()),
                "set {set}, seed {seed:#x}\n{text}\nrequest {facts:?}\ncedar {want:?}\nevaluator {got:?}"
            );
            assert_eq!(
                cedar.decide(&facts),
                want,
                "cedar's index, set {set}\n{text}"
            );
            t.decisions += 1;
            t.allowed += usize::from(got.allowed);
            t.forbidden += usize::from(got.reason == Reason::Forbidden);
            t.policy_error += usize::from(got.reason == Reason::PolicyError);
            t.errors += usize::from(!got.errors.is_empty());
        }
    }
    t
}

#[test]
fn the_evaluator_decides_as_cedar_on_a_generated_corpus() {
    let sets: usize = std::env::var("MESHWARD_DIFF_SETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let t = run(0x5EED_CEDA_2026_1129, sets);
    eprintln!(
        "{} sets compared ({} only unvalidated, {} refused), {} decisions: {} allowed, {} forbidden, {} policy errors, {} with errors",
        t.sets,
        t.unvalidated,
        t.refused,
        t.decisions,
        t.allowed,
        t.forbidden,
        t.policy_error,
        t.errors
    );
    // The corpus must exercise every outcome, or agreement proves little.
    assert!(t.sets > sets / 2, "too few sets compiled");
    assert!(t.unvalidated > sets / 10 && t.sets - t.unvalidated > sets / 4);
    for (what, n) in [
        ("allowed", t.allowed),
        ("forbidden", t.forbidden),
        ("policy errors", t.policy_error),
        ("errors", t.errors),
    ] {
        assert!(n > t.decisions / 50, "{what}: {n} of {}", t.decisions);
    }
}
