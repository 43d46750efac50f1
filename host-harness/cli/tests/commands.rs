//! Every `meshward` command, run as the installed binary would be: from an
//! empty folder, its successes and its failure paths (one clear line, a
//! non-zero exit, never a panic).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshward_certs::SpiffeCa;

const POLICY: &str = r#"@id("frontend-reads-api")
permit (principal == Mesh::Workload::"spiffe://example.org/ns/web/sa/frontend", action in Mesh::Action::"read", resource)
when { context.path like "/api/*" };
@id("no-admin-paths")
forbid (principal, action, resource) when { context.path like "/admin*" };
@id("never-used")
permit (principal == Mesh::Workload::"spiffe://example.org/ns/x/sa/y", action, resource);
"#;

fn suite(expect_delete: &str) -> String {
    format!(
        r#"{{"description": "d", "policies": ["p.cedar"], "cases": [
  {{"name": "reads", "request": {{"peer": "spiffe://example.org/ns/web/sa/frontend", "method": "GET", "host": "a", "path": "/api/x"}},
    "expect": {{"decision": "allow", "determining": ["frontend-reads-api"]}}}},
  {{"name": "admin", "request": {{"peer": "spiffe://example.org/ns/web/sa/frontend", "method": "GET", "host": "a", "path": "/admin"}},
    "expect": {{"decision": "deny", "reason": "forbidden"}}}},
  {{"name": "deletes", "request": {{"peer": "spiffe://example.org/ns/web/sa/frontend", "method": "DELETE", "host": "a", "path": "/api/x"}},
    "expect": {{"decision": "{expect_delete}"}}}}
]}}"#
    )
}

struct Run {
    ok: bool,
    code: Option<i32>,
    text: String,
}

fn meshward(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_meshward"))
        .current_dir(dir)
        .env_remove("CARGO_MANIFEST_DIR")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        text,
    }
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// A failure is one `meshward: ...` line naming `what`.
fn one_clear_line(run: &Run, what: &str) {
    assert!(!run.ok, "{}", run.text);
    assert_eq!(run.code, Some(1), "{}", run.text);
    let last = run.text.lines().last().unwrap_or_default();
    assert!(last.starts_with("meshward: "), "{}", run.text);
    assert!(last.contains(what), "`{what}` not in {last:?}");
}

#[test]
fn test_passes_a_suite_and_names_unexercised_policies() {
    let dir = folder(&[("p.cedar", POLICY), ("s.cases.json", &suite("deny"))]);
    let run = meshward(dir.path(), &["test", "s.cases.json"]);
    assert!(run.ok, "{}", run.text);
    assert!(run.text.contains("3 passed, 0 failed"), "{}", run.text);
    assert!(run.text.contains("never-used"), "{}", run.text);
    assert!(
        !run.text.contains("exercised (never determining): frontend"),
        "{}",
        run.text
    );
}

#[test]
fn test_fails_on_a_wrong_expectation() {
    let dir = folder(&[("p.cedar", POLICY), ("s.cases.json", &suite("allow"))]);
    let run = meshward(dir.path(), &["test", "s.cases.json"]);
    one_clear_line(&run, "1 case(s) failed");
    assert!(run.text.contains("FAIL case `deletes`"), "{}", run.text);
}

#[test]
fn test_failure_paths() {
    let dir = folder(&[
        (
            "bad.cedar",
            "permit(principal, action, resource) when { context.nope };",
        ),
        (
            "bad.cases.json",
            r#"{"description": "d", "policies": ["bad.cedar"], "cases": []}"#,
        ),
        (
            "gone.cases.json",
            r#"{"description": "d", "policies": ["gone.cedar"], "cases": []}"#,
        ),
        ("broken.cases.json", "{"),
    ]);
    one_clear_line(
        &meshward(dir.path(), &["test", "absent.cases.json"]),
        "absent.cases.json",
    );
    one_clear_line(
        &meshward(dir.path(), &["test", "gone.cases.json"]),
        "gone.cedar",
    );
    one_clear_line(
        &meshward(dir.path(), &["test", "broken.cases.json"]),
        "broken.cases.json",
    );
    one_clear_line(
        &meshward(dir.path(), &["test", "bad.cases.json"]),
        "refused",
    );
    one_clear_line(
        &meshward(
            dir.path(),
            &["test", "--filter", "nope.wasm", "bad.cases.json"],
        ),
        "nope.wasm",
    );
}

#[test]
fn explain_shows_decision_policies_and_what_cedar_saw() {
    let dir = folder(&[("p.cedar", POLICY)]);
    let peer = "spiffe://example.org/ns/web/sa/frontend";
    let run = meshward(
        dir.path(),
        &[
            "explain",
            "p.cedar",
            "--peer",
            peer,
            "--path",
            "/api/x",
            "--host",
            "Shop.example:8080",
            "--header",
            "x-a=1",
        ],
    );
    assert!(run.ok, "{}", run.text);
    assert!(
        run.text.contains("decision: ALLOW  (reason permitted)"),
        "{}",
        run.text
    );
    assert!(
        run.text
            .contains("determining policies: frontend-reads-api"),
        "{}",
        run.text
    );
    // The text form prints the same Cedar JSON.
    assert!(run.text.contains("\"Mesh::Namespace\""), "{}", run.text);
    let json = explain_json(
        dir.path(),
        &[
            "p.cedar",
            "--peer",
            peer,
            "--path",
            "/api/x",
            "--host",
            "Shop.example:8080",
        ],
    );
    let request = &json["request"];
    assert_eq!(
        request["resource"],
        serde_json::json!({"type": "Mesh::Host", "id": "shop.example"})
    );
    assert_eq!(request["context"]["authority_port"], 8080);
    assert_eq!(request["context"]["path"], "/api/x");
    let principal = &request["entities"][0];
    assert_eq!(principal["attrs"]["namespace"], "web");
    assert!(
        principal["parents"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"type": "Mesh::Namespace", "id": "web"})),
        "{principal}"
    );
    let run = meshward(
        dir.path(),
        &["explain", "p.cedar", "--peer", peer, "--path", "/admin"],
    );
    assert!(run.ok, "{}", run.text);
    assert!(
        run.text.contains("decision: DENY  (reason forbidden)"),
        "{}",
        run.text
    );
    assert!(run.text.contains("no-admin-paths"), "{}", run.text);
    let run = meshward(dir.path(), &["explain", "p.cedar", "--path", "/api/x"]);
    assert!(run.text.contains("no_peer_identity"), "{}", run.text);
    let run = meshward(
        dir.path(),
        &[
            "explain",
            "p.cedar",
            "--request",
            r#"{"peer": "spiffe://example.org/ns/web/sa/frontend", "method": "GET", "host": "a", "path": "/api/1"}"#,
        ],
    );
    assert!(run.text.contains("ALLOW"), "{}", run.text);
}

fn explain_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["explain", "--json"];
    all.extend_from_slice(args);
    let run = meshward(dir, &all);
    assert!(run.ok, "{}", run.text);
    let start = run.text.find('{').unwrap();
    let end = run.text.rfind('}').unwrap();
    serde_json::from_str(&run.text[start..=end]).unwrap()
}

/// Cedar's own decision on the request `explain` printed: it must be the
/// decision `explain` printed. What `explain` shows is then what the
/// engine decided on, and complete enough to decide it again.
fn cedar_decides(policies: &str, request: &serde_json::Value) -> (bool, Vec<String>, usize) {
    use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request};
    let set: PolicySet = policies.parse().unwrap();
    let entities = Entities::from_json_value(request["entities"].clone(), None).unwrap();
    let context = Context::from_json_value(request["context"].clone(), None).unwrap();
    let uid = |v: &serde_json::Value| EntityUid::from_json(v.clone()).unwrap();
    let req = Request::new(
        uid(&request["principal"]),
        uid(&request["action"]),
        uid(&request["resource"]),
        context,
        None,
    )
    .unwrap();
    let response = Authorizer::new().is_authorized(&req, &set, &entities);
    let mut determining: Vec<String> = response
        .diagnostics()
        .reason()
        .map(|id| {
            set.policy(id)
                .and_then(|p| p.annotation("id"))
                .map_or_else(|| id.to_string(), str::to_owned)
        })
        .collect();
    determining.sort();
    (
        response.decision() == Decision::Allow,
        determining,
        response.diagnostics().errors().count(),
    )
}

#[test]
fn explain_shows_what_the_engine_decided_on_for_every_suite_case() {
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&library).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".cases.json") {
            continue;
        }
        let suite: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut files = Vec::new();
        let mut text = Vec::new();
        for p in suite["policies"].as_array().unwrap() {
            let name = p.as_str().unwrap();
            let body = std::fs::read_to_string(library.join(name)).unwrap();
            std::fs::write(dir.path().join(name), &body).unwrap();
            files.push(name.to_owned());
            text.push(body);
        }
        let policies = text.join("\n");
        for case in suite["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let request = case["request"].to_string();
            let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
            args.extend(["--request", &request]);
            if suite["require_peer_identity"] == false {
                args.push("--allow-anonymous");
            }
            let shown = explain_json(dir.path(), &args);
            let Some(saw) = shown.get("request").filter(|r| !r.is_null()) else {
                // Decided before any policy: nothing was evaluated.
                assert_ne!(shown["decision"], "allow", "{name}: {shown}");
                continue;
            };
            let (allowed, determining, errors) = cedar_decides(&policies, saw);
            assert_eq!(
                allowed,
                shown["decision"] == "allow",
                "{}: `{name}`: Cedar on what explain showed decides otherwise\n{shown:#}",
                path.display()
            );
            if errors == 0 && shown["errors"].as_array().is_some_and(Vec::is_empty) {
                let mut printed: Vec<String> = shown["determining"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                printed.sort();
                assert_eq!(
                    determining,
                    printed,
                    "{}: `{name}`: determining policies\n{shown:#}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} cases explained");
}

#[test]
fn explain_failure_paths() {
    let dir = folder(&[("bad.cedar", "permit(")]);
    one_clear_line(
        &meshward(dir.path(), &["explain", "absent.cedar"]),
        "absent.cedar",
    );
    one_clear_line(&meshward(dir.path(), &["explain", "bad.cedar"]), "refused");
    let dir = folder(&[("p.cedar", POLICY)]);
    one_clear_line(
        &meshward(
            dir.path(),
            &["explain", "p.cedar", "--peer", "https://nope"],
        ),
        "request",
    );
    one_clear_line(
        &meshward(dir.path(), &["explain", "p.cedar", "--header", "novalue"]),
        "--header",
    );
}

#[test]
fn certs_writes_pem_files_and_refuses_a_non_spiffe_id() {
    let dir = folder(&[]);
    let run = meshward(
        dir.path(),
        &["certs", "--out", "out", "spiffe://example.org/ns/a/sa/b"],
    );
    assert!(run.ok, "{}", run.text);
    assert!(dir.path().join("out/ca.pem").is_file());
    assert!(dir.path().join("out/svid-0-key.pem").is_file());
    one_clear_line(
        &meshward(dir.path(), &["certs", "https://example.org/x"]),
        "SPIFFE",
    );
}

/// A command line clap refuses is one `meshward: ...` line too, with a
/// usage error's exit status, 2.
fn one_usage_line(run: &Run, what: &str) {
    assert_eq!(run.code, Some(2), "{}", run.text);
    let lines: Vec<&str> = run.text.lines().collect();
    let [line] = lines.as_slice() else {
        panic!("not one line: {}", run.text)
    };
    assert!(line.starts_with("meshward: "), "{}", run.text);
    assert!(line.contains(what), "`{what}` not in {line:?}");
}

/// The DER of the certificate in `path`.
fn cert_der(path: &Path) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[test]
fn certs_key_types_validity_and_their_errors() {
    let dir = folder(&[]);
    // The curve's (or Ed25519's) OID, DER-encoded, in the certificate.
    for (key_type, oid) in [
        (
            "ecdsa-p256",
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07][..],
        ),
        (
            "ecdsa-p384",
            &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22][..],
        ),
        ("ed25519", &[0x06, 0x03, 0x2b, 0x65, 0x70][..]),
    ] {
        let run = meshward(
            dir.path(),
            &[
                "certs",
                "--out",
                key_type,
                "--key-type",
                key_type,
                "spiffe://example.org/a",
            ],
        );
        assert!(run.ok, "{}", run.text);
        for file in ["ca.pem", "svid-0.pem"] {
            let der = cert_der(&dir.path().join(key_type).join(file));
            assert!(
                der.windows(oid.len()).any(|w| w == oid),
                "{key_type} {file}"
            );
        }
    }
    // A validity entirely in the past: an expired SVID, said so.
    let run = meshward(
        dir.path(),
        &[
            "certs",
            "--out",
            "expired",
            "--not-before",
            "2020-01-01",
            "--not-after",
            "2020-01-02T00:00:00Z",
            "spiffe://example.org/a",
        ],
    );
    assert!(run.ok, "{}", run.text);
    assert!(
        run.text.contains("valid 2020-01-01 to 2020-01-02, expired"),
        "{}",
        run.text
    );
    let run = meshward(
        dir.path(),
        &[
            "certs",
            "--out",
            "long",
            "--days",
            "90",
            "spiffe://example.org/a",
        ],
    );
    assert!(run.ok && !run.text.contains("expired"), "{}", run.text);

    one_usage_line(
        &meshward(
            dir.path(),
            &["certs", "--key-type", "rsa", "spiffe://example.org/a"],
        ),
        "`rsa` is not a key type (one of: ecdsa-p256, ecdsa-p384, ed25519)",
    );
    one_usage_line(
        &meshward(
            dir.path(),
            &["certs", "--days", "0", "spiffe://example.org/a"],
        ),
        "--days",
    );
    one_usage_line(
        &meshward(
            dir.path(),
            &[
                "certs",
                "--not-before",
                "yesterday",
                "spiffe://example.org/a",
            ],
        ),
        "`yesterday` is not a time",
    );
    one_usage_line(
        &meshward(
            dir.path(),
            &[
                "certs",
                "--days",
                "3",
                "--not-after",
                "2020-01-01",
                "spiffe://example.org/a",
            ],
        ),
        "cannot be used with",
    );
    one_usage_line(
        &meshward(dir.path(), &["certs", "--bogus", "spiffe://example.org/a"]),
        "unexpected argument '--bogus'",
    );
    one_clear_line(
        &meshward(
            dir.path(),
            &[
                "certs",
                "--out",
                "empty",
                "--not-before",
                "2020-01-02",
                "--not-after",
                "2020-01-01",
                "spiffe://example.org/a",
            ],
        ),
        "before it starts",
    );
    // Nothing written for a refused command.
    assert!(!dir.path().join("empty").exists());
}

#[test]
fn every_command_refuses_a_bad_flag_in_one_line() {
    let dir = folder(&[]);
    for command in [
        "certs",
        "validate",
        "compile",
        "istio-import",
        "test",
        "explain",
        "serve",
        "demo",
        "scenario",
    ] {
        one_usage_line(
            &meshward(dir.path(), &[command, "--no-such-flag"]),
            &format!("see `meshward {command} --help`"),
        );
    }
    one_usage_line(
        &meshward(dir.path(), &["nope"]),
        "unrecognized subcommand 'nope'",
    );
    // Help is not an error.
    let help = meshward(dir.path(), &["certs", "--help"]);
    assert!(help.ok && help.text.contains("--key-type"), "{}", help.text);
}

#[test]
fn istio_import_and_validate_fail_clearly_on_missing_files() {
    let dir = folder(&[]);
    one_clear_line(
        &meshward(dir.path(), &["istio-import", "absent.yaml"]),
        "absent.yaml",
    );
    one_clear_line(
        &meshward(dir.path(), &["validate", "absent.cedar"]),
        "absent.cedar",
    );
}

#[test]
fn demo_decides_real_mtls_traffic_on_the_data_path() {
    let dir = folder(&[]);
    let run = meshward(dir.path(), &["demo"]);
    assert!(run.ok, "{}", run.text);
    for want in [
        "-> ALLOWED 200 (the application saw x-meshward-peer-id: \"spiffe://example.org/ns/web/sa/frontend\")",
        "-> DENIED  403 no_permit",
        "-> DENIED  403 forbidden",
        "-> DENIED  403 no_peer_identity",
        "meshward_decisions_total{decision=\"allow\"",
    ] {
        assert!(run.text.contains(want), "`{want}` not in\n{}", run.text);
    }
}

#[test]
fn demo_envoy_without_an_envoy_says_so() {
    let dir = folder(&[]);
    one_clear_line(
        &meshward(
            dir.path(),
            &["demo", "--envoy", "--envoy-bin", "/nonexistent/envoy"],
        ),
        "no Envoy at `/nonexistent/envoy`",
    );
}

/// With a real Envoy on this machine (`MESHWARD_ENVOY`, or the checkout's
/// `.venv`), `demo --envoy` prints the same decisions.
#[test]
fn demo_through_real_envoy_when_one_is_installed() {
    let envoy = std::env::var_os("MESHWARD_ENVOY")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|d| d.join(".venv/lib/envoy-bin/envoy"))
                .find(|p| p.is_file())
        });
    let Some(envoy) = envoy.filter(|p| p.is_file()) else {
        eprintln!("no Envoy installed: skipped");
        return;
    };
    let dir = folder(&[]);
    let run = meshward(
        dir.path(),
        &["demo", "--envoy", "--envoy-bin", envoy.to_str().unwrap()],
    );
    assert!(run.ok, "{}", run.text);
    assert!(run.text.contains("-> ALLOWED 200"), "{}", run.text);
    assert!(
        run.text.contains("-> DENIED  403 forbidden"),
        "{}",
        run.text
    );
    assert!(run.text.contains("meshward-authz {"), "{}", run.text);
}

fn serve_files(dir: &Path, listen: &str, upstream: &str) {
    let ca = SpiffeCa::new("example.org").unwrap();
    let server = ca
        .issue_local_server("spiffe://example.org/ns/orders/sa/orders")
        .unwrap();
    let client = ca
        .issue("spiffe://example.org/ns/web/sa/frontend", &[])
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("server-key.pem"), &server.key_pem).unwrap();
    std::fs::write(dir.join("client.pem"), &client.cert_pem).unwrap();
    std::fs::write(dir.join("client-key.pem"), &client.key_pem).unwrap();
    std::fs::write(dir.join("p.cedar"), POLICY).unwrap();
    std::fs::write(
        dir.join("serve.yaml"),
        format!(
            "listen: {listen}\nmetrics: 127.0.0.1:0\ntls:\n  cert: server.pem\n  key: server-key.pem\n  trust_bundles:\n    example.org: ca.pem\nfilters:\n  - module: identity\n    configuration: {{allowed_trust_domains: [example.org]}}\n  - module: authz\n    policies: [p.cedar]\nupstream: {upstream}\n"
        ),
    )
    .unwrap();
}

#[test]
fn serve_runs_the_data_path_from_a_config_file() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt
        .block_on(meshward_data_path::EchoUpstream::start())
        .unwrap();
    let dir = folder(&[]);
    serve_files(dir.path(), "127.0.0.1:0", &upstream.addr().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshward"))
        .current_dir(dir.path())
        .args(["serve", "--config", "serve.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "serve never said where it listens"
        );
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.strip_prefix("meshward: mTLS listener on ") {
            break a.parse().unwrap();
        }
    };
    let client_config = {
        use rustls::pki_types::pem::PemObject;
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(&ca).unwrap())
            .unwrap();
        let cert = std::fs::read(dir.path().join("client.pem")).unwrap();
        let key = std::fs::read(dir.path().join("client-key.pem")).unwrap();
        std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from_pem_slice(&cert).unwrap()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap(),
            )
            .unwrap(),
        )
    };
    let (ok, denied) = rt.block_on(async {
        let mut c = meshward_data_path::Client::connect(addr, client_config, "localhost", true)
            .await
            .unwrap();
        let ok = c.send("GET", "/api/orders", &[]).await.unwrap();
        let denied = c.send("GET", "/admin", &[]).await.unwrap();
        (ok, denied)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(denied.header("x-meshward-deny-reason"), Some("forbidden"));
}

#[test]
fn serve_failure_paths() {
    let dir = folder(&[]);
    one_clear_line(
        &meshward(dir.path(), &["serve", "--config", "absent.yaml"]),
        "absent.yaml",
    );
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    serve_files(dir.path(), &port, "127.0.0.1:9");
    one_clear_line(
        &meshward(dir.path(), &["serve", "--config", "serve.yaml"]),
        "cannot listen on",
    );
    // A certificate that is not one.
    std::fs::write(dir.path().join("server.pem"), "garbage").unwrap();
    one_clear_line(
        &meshward(dir.path(), &["serve", "--config", "serve.yaml"]),
        "server certificate",
    );
    // A policy that does not validate.
    serve_files(dir.path(), "127.0.0.1:0", "127.0.0.1:9");
    std::fs::write(
        dir.path().join("p.cedar"),
        "permit(principal, action, resource) when { context.nope };",
    )
    .unwrap();
    one_clear_line(
        &meshward(dir.path(), &["serve", "--config", "serve.yaml"]),
        "filter `authz`",
    );
    // Flags without the required ones.
    one_clear_line(
        &meshward(dir.path(), &["serve", "--policy", "p.cedar"]),
        "--bundle",
    );
}
