//! Every Envoy configuration shipped in `envoy-config/` passes
//! `envoy --mode validate` once its placeholders are filled in with real
//! files.

use std::collections::BTreeMap;

use meshward_certs::SpiffeCa;
use meshward_envoy::{Template, validate, workspace_root, yaml_quote};
use meshward_tests::filter_wasm;

#[test]
fn every_shipped_config_validates() {
    let dir = tempfile_dir();
    let ca = SpiffeCa::new("example.org").unwrap();
    let svid = ca
        .issue_local_server("spiffe://example.org/ns/default/sa/app")
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let known: BTreeMap<&str, String> = [
        ("CA", write("ca.pem", &ca.cert_pem())),
        ("CERT", write("cert.pem", &svid.cert_pem)),
        ("KEY", write("key.pem", &svid.key_pem)),
        (
            "WASM_0",
            filter_wasm("meshward-identity-filter").display().to_string(),
        ),
        ("ROOT_ID_0", "meshward_identity".to_owned()),
        (
            "PLUGIN_CONFIG_0",
            yaml_quote(r#"{"allowed_trust_domains": ["example.org"]}"#),
        ),
        (
            "WASM_1",
            filter_wasm("meshward-authz-filter").display().to_string(),
        ),
        ("ROOT_ID_1", "meshward_authz".to_owned()),
        (
            "PLUGIN_CONFIG_1",
            yaml_quote(&crate::compiled(
                r#"{"cedar": {"policies": "permit(principal, action, resource);"}, "peer_from": "identity_filter"}"#,
            )),
        ),
        ("UPSTREAM_PORT", "8080".to_owned()),
    ]
    .into_iter()
    .collect();

    let mut checked = 0;
    for entry in std::fs::read_dir(workspace_root().join("envoy-config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") || !is_envoy_bootstrap(&path) {
            continue;
        }
        let template = Template::load(&path).unwrap();
        let values = template
            .placeholders()
            .unwrap()
            .into_iter()
            .map(|name| {
                let value = known.get(name.as_str()).unwrap_or_else(|| {
                    panic!("{}: no test value for placeholder {name}", path.display())
                });
                (*known.keys().find(|k| **k == name).unwrap(), value.clone())
            })
            .collect();
        let rendered = dir.join(path.file_name().unwrap());
        std::fs::write(&rendered, template.render(&values).unwrap()).unwrap();
        if let Err(e) = validate(&rendered) {
            panic!("{}: {e}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected both sidecar bootstraps in envoy-config/, checked {checked}"
    );
}

#[test]
fn validation_rejects_a_broken_config() {
    let dir = tempfile_dir();
    let path = dir.join("broken.yaml");
    std::fs::write(
        &path,
        "static_resources: { listeners: [ { name: x, address: 42 } ] }\n",
    )
    .unwrap();
    assert!(validate(&path).is_err());
}

// Istio manifests live beside the bootstraps; only bootstraps go to Envoy.
fn is_envoy_bootstrap(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("static_resources:"))
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "meshward-config-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
