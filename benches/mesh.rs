//! The mesh policy model the benches share: generated Cedar policy sets of
//! any size and a request one of their policies permits. Included as a
//! module by `policy.rs` and `instructions.rs`.

use std::fmt::Write as _;

use meshward_identity::SpiffeId;
use meshward_policy::RequestFacts;

pub(crate) fn policy_set(n: usize) -> String {
    let namespaces = (n / 20).max(1);
    let mut text = String::new();
    text.push_str(
        "@id(\"global-ip\") forbid(principal, action, resource) when { context has source_ip && context.source_ip.isInRange(ip(\"203.0.113.0/24\")) };\n\
         @id(\"global-debug\") forbid(principal, action, resource) when { context.headers.hasTag(\"x-debug\") && context.headers.getTag(\"x-debug\") == \"on\" };\n\
         @id(\"global-admin\") forbid(principal, action, resource) when { context.path like \"/admin/*\" } unless { context has user && context.user.hasTag(\"groups\") && context.user.getTag(\"groups\").contains(\"admins\") };\n",
    );
    for i in 3..n {
        let ns = i % namespaces;
        let host = format!("svc{}.ns{ns}.svc.cluster.local", i % 7);
        let group = if i % 3 == 0 { "write" } else { "read" };
        match i % 10 {
            0 => writeln!(
                text,
                "@id(\"p{i}\") forbid(principal == Mesh::Workload::\"spiffe://cluster.local/ns/ns{ns}/sa/sa{i}\", action, resource);"
            ),
            1 => writeln!(
                text,
                "@id(\"p{i}\") permit(principal in Mesh::Namespace::\"ns{ns}\", action in Mesh::Action::\"read\", resource == Mesh::Host::\"{host}\") when {{ context.path like \"/public/{i}/*\" }};"
            ),
            _ => writeln!(
                text,
                "@id(\"p{i}\") permit(principal in Mesh::ServiceAccount::\"ns{ns}/sa{i}\", action in Mesh::Action::\"{group}\", resource == Mesh::Host::\"{host}\") when {{ context.path like \"/api/{i}/*\" && context.mtls }};"
            ),
        }
        .unwrap_or_default();
    }
    text
}

/// A request that one policy of the set permits (`p5`'s service account,
/// host and path), against which every other policy must be checked.
pub(crate) fn request(n: usize) -> RequestFacts {
    let namespaces = (n / 20).max(1);
    let i = 5;
    let ns = i % namespaces;
    let peer = SpiffeId::parse(&format!("spiffe://cluster.local/ns/ns{ns}/sa/sa{i}"))
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut facts = RequestFacts::new(
        "GET",
        &format!("svc{}.ns{ns}.svc.cluster.local:8080", i % 7),
        &format!("/api/{i}/items?page=2"),
    )
    .with_peer(peer)
    .with_header("user-agent", "bench");
    facts.mtls = true;
    facts.port = 8080;
    facts.source = "10.0.0.9:41000".parse().ok();
    facts
}
