//! The Istio deployment: the manifests of `envoy-config/istio/` against
//! Istio's CRD schemas (`tests/data/istio/`), the OCI images
//! `scripts/build-image` writes, and the manifests it renders with their
//! digests.
//!
//! The committed WasmPlugins carry an all-zero `sha256` (a module rebuild
//! changes the digest, so a committed one could not stay true); the rendered
//! copies must name the digest of the image built from the current modules.

use meshward_filter_modules::{AUTHZ, IDENTITY, Module};
use meshward_harness::{Host, PluginConfig, Properties, Request};
use meshward_tests::workspace_root;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const LAYER_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
const CONFIG_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const PEER: &str = "spiffe://example.org/ns/web/sa/frontend";

/// The image `scripts/build-image` names after each shipped filter.
fn image_name(module: &Module) -> &'static str {
    module.package
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every YAML document of every manifest file in `dir`, with its file name.
fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

/// Istio's CRD schemas, by `apiVersion` and `kind`.
struct Crds {
    schemas: boon::Schemas,
    by_kind: BTreeMap<(String, String), boon::SchemaIndex>,
}

impl Crds {
    fn load() -> Self {
        let dir = workspace_root().join("tests/data/istio");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let mut by_kind = BTreeMap::new();
        for file in [
            "wasmplugin.extensions.istio.io.v1alpha1.schema.json",
            "peerauthentication.security.istio.io.v1.schema.json",
        ] {
            let schema: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
            let key = (
                schema["properties"]["apiVersion"]["const"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                schema["properties"]["kind"]["const"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            let url = format!("file:///istio/{file}");
            compiler.add_resource(&url, schema).unwrap();
            by_kind.insert(key, compiler.compile(&url, &mut schemas).unwrap());
        }
        Crds { schemas, by_kind }
    }

    /// The CRD's verdict on one resource: its OpenAPI schema, then the CEL
    /// rules (`x-kubernetes-validations`) the schema file cannot carry.
    fn check(&self, doc: &Value) -> Result<(), String> {
        let key = (
            doc["apiVersion"].as_str().unwrap_or_default().to_owned(),
            doc["kind"].as_str().unwrap_or_default().to_owned(),
        );
        let index = self
            .by_kind
            .get(&key)
            .ok_or_else(|| format!("no Istio CRD for {key:?}"))?;
        self.schemas
            .validate(doc, *index)
            .map_err(|e| format!("{e:#}"))?;
        let spec = &doc["spec"];
        let selectors = ["selector", "targetRef", "targetRefs"]
            .iter()
            .filter(|k| spec.get(**k).is_some())
            .count();
        if selectors > 1 {
            return Err("only one of targetRefs or selector can be set".into());
        }
        if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
            for (k, v) in labels {
                if k.is_empty() || k.contains('*') || v.as_str().unwrap_or("").contains('*') {
                    return Err(format!("label selector {k:?}: {v} is not allowed"));
                }
            }
        }
        if let Some(url) = spec["url"].as_str() {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            if !["", "http", "https", "file", "oci"].contains(&scheme) {
                return Err(format!(
                    "url {url:?} must have scheme one of [http, https, file, oci]"
                ));
            }
        }
        Ok(())
    }
}

/// Runs `scripts/build-image` on the modules this test binary embeds, into a
/// fresh folder; returns it.
fn build_images() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("scripts/build-image"))
        .arg("--out")
        .arg(dir.path().join("oci"));
    for module in [IDENTITY, AUTHZ] {
        let path = dir.path().join(format!("{}.wasm", module.package));
        std::fs::write(&path, module.bytes).unwrap();
        cmd.arg("--module")
            .arg(format!("{}={}", image_name(&module), path.display()));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "build-image failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    for module in [IDENTITY, AUTHZ] {
        assert!(
            printed.contains(&sha256_hex(module.bytes)),
            "build-image does not print the module sha256 of {}:\n{printed}",
            module.package
        );
    }
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The blob a descriptor names, checked against the descriptor's digest,
/// size and media type.
fn blob(layout: &Path, desc: &Value, media_type: &str) -> Vec<u8> {
    assert_eq!(desc["mediaType"], media_type, "{desc}");
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let data = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256_hex(&data),
        hex,
        "blob {digest} does not hash to its name"
    );
    assert_eq!(desc["size"].as_u64(), Some(data.len() as u64), "{desc}");
    data
}

/// Checks one image layout and returns its manifest digest and layer.
fn check_layout(layout: &Path) -> (String, Vec<u8>) {
    assert_eq!(
        read_json(&layout.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], INDEX_TYPE);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert!(manifests[0]["annotations"]["org.opencontainers.image.ref.name"].is_string());
    let manifest_bytes = blob(layout, &manifests[0], MANIFEST_TYPE);
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
    let config = blob(layout, &manifest["config"], CONFIG_TYPE);
    serde_json::from_slice::<Value>(&config).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the compat variant has exactly one layer");
    let layer = blob(layout, &layers[0], LAYER_TYPE);
    // Nothing else in the layout: three blobs (config, layer, manifest).
    let blobs = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3);
    let digest = manifests[0]["digest"].as_str().unwrap().to_owned();
    (digest, layer)
}

/// The regular files of a ustar archive, by name.
fn tar_files(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= data.len() && data[at..at + 512].iter().any(|b| *b != 0) {
        let header = &data[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .unwrap();
        let body = at + 512;
        if header[156] == b'0' || header[156] == 0 {
            files.insert(name, data[body..body + size].to_vec());
        }
        at = body + size.div_ceil(512) * 512;
    }
    files
}

/// The layout folder's files, by path relative to it.
fn folder_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn image_layouts_are_well_formed_and_reproducible() {
    let first = build_images();
    let second = build_images();
    for module in [IDENTITY, AUTHZ] {
        let layout = first.path().join("oci").join(image_name(&module));
        let (digest, layer) = check_layout(&layout);
        assert!(
            layer == module.bytes,
            "the layer of {} is not its module",
            module.package
        );
        let tarball = std::fs::read(layout.with_extension("tar")).unwrap();
        assert_eq!(
            tar_files(&tarball),
            folder_files(&layout),
            "the tarball of {} differs from its layout",
            module.package
        );
        let (again, _) = check_layout(&second.path().join("oci").join(image_name(&module)));
        assert_eq!(
            digest, again,
            "the image of {} is not reproducible",
            module.package
        );
    }
}

#[test]
fn committed_manifests_match_the_istio_crds() {
    let crds = Crds::load();
    let docs = documents(&workspace_root().join("envoy-config/istio"));
    assert!(!docs.is_empty());
    for (file, doc) in &docs {
        crds.check(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    let of_kind = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .map(|(_, d)| d)
            .filter(|d| d["kind"] == kind)
            .collect()
    };
    let peer_auth = of_kind("PeerAuthentication");
    assert_eq!(peer_auth.len(), 1);
    assert_eq!(peer_auth[0]["spec"]["mtls"]["mode"], "STRICT");
    let selector = &peer_auth[0]["spec"]["selector"];

    let plugins = of_kind("WasmPlugin");
    assert_eq!(plugins.len(), 2);
    for (module, phase) in [(IDENTITY, "AUTHN"), (AUTHZ, "AUTHZ")] {
        let spec = &plugins
            .iter()
            .find(|p| p["spec"]["pluginName"] == module.root_id)
            .unwrap_or_else(|| panic!("no WasmPlugin with pluginName {}", module.root_id))["spec"];
        assert_eq!(spec["phase"], phase);
        assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
        assert_eq!(
            &spec["selector"], selector,
            "the plugins cover the STRICT workload"
        );
        let url = spec["url"].as_str().unwrap();
        assert!(url.starts_with("oci://"), "{url}");
        assert!(url.contains(&format!("/{}:", image_name(&module))), "{url}");
    }

    let authz = &plugins
        .iter()
        .find(|p| p["spec"]["pluginName"] == AUTHZ.root_id)
        .unwrap()["spec"]["pluginConfig"];
    assert_eq!(authz["peer_from"], "identity_filter");
    // The shipped plugin carries the demo policy compiled, exactly as
    // `meshward compile policies/demo/orders.cedar` writes it.
    let demo =
        std::fs::read_to_string(workspace_root().join("policies/demo/orders.cedar")).unwrap();
    let compiled: serde_json::Value =
        serde_json::from_str(&crate::compiled(serde_json::json!({ "policies": demo }))).unwrap();
    assert_eq!(
        authz["cedar"].clone(),
        compiled,
        "envoy-config/istio/wasmplugin-authz.yaml: `cedar` is not policies/demo/orders.cedar compiled"
    );
}

#[test]
fn rendered_manifests_pin_the_built_images() {
    let crds = Crds::load();
    let built = build_images();
    let oci = built.path().join("oci");
    let docs = documents(&oci.join("istio"));
    let mut pinned = 0;
    for (file, doc) in &docs {
        crds.check(doc)
            .unwrap_or_else(|e| panic!("rendered {file}: {e}"));
        if doc["kind"] != "WasmPlugin" {
            continue;
        }
        let spec = &doc["spec"];
        let module = [IDENTITY, AUTHZ]
            .into_iter()
            .find(|m| m.root_id == spec["pluginName"])
            .unwrap();
        let (digest, layer) = check_layout(&oci.join(image_name(&module)));
        assert_eq!(
            Some(digest.trim_start_matches("sha256:")),
            spec["sha256"].as_str(),
            "rendered {file}: sha256 is not the image's manifest digest"
        );
        assert!(layer == module.bytes);
        pinned += 1;
    }
    assert_eq!(pinned, 2);
}

#[test]
fn the_plugin_configurations_are_accepted_by_the_filters() {
    let docs = documents(&workspace_root().join("envoy-config/istio"));
    let config = |module: &Module| -> String {
        docs.iter()
            .find(|(_, d)| d["spec"]["pluginName"] == module.root_id)
            .unwrap()
            .1["spec"]["pluginConfig"]
            .to_string()
    };
    let host = Host::new().unwrap();
    let props = Properties::istio_inbound_mtls(PEER, "");

    let identity = host.load(IDENTITY.bytes).unwrap();
    let mut plugin = identity
        .start(
            PluginConfig::new()
                .configuration(config(&IDENTITY))
                .properties(&props),
        )
        .unwrap();
    assert_eq!(plugin.send(Request::get("/api/orders")).status(), 200);

    let authz = host.load(AUTHZ.bytes).unwrap();
    let mut plugin = authz
        .start(
            PluginConfig::new()
                .configuration(config(&AUTHZ))
                .properties(&props),
        )
        .unwrap();
    // The peer comes from the identity filter through filter state, as in
    // the sidecar; a client's header names nobody.
    let forged = Request::get("/api/orders").header("x-meshward-peer-id", PEER);
    assert_eq!(plugin.send(forged).status(), 403);
    let allowed =
        Request::get("/api/orders").property(meshward_filter_glue::PEER_ID_PROPERTY, PEER);
    assert_eq!(plugin.send(allowed).status(), 200);
    let admin = Request::get("/admin").property(meshward_filter_glue::PEER_ID_PROPERTY, PEER);
    assert_eq!(plugin.send(admin).status(), 403);
}

/// One way to spoil a valid manifest.
type Breakage = fn(&mut Value);

#[test]
fn the_crd_check_refuses_a_broken_manifest() {
    let crds = Crds::load();
    let docs = documents(&workspace_root().join("envoy-config/istio"));
    let plugin = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "WasmPlugin")
        .unwrap();
    crds.check(plugin).unwrap();
    let breakages: [(&str, Breakage); 6] = [
        ("an unknown failStrategy", |d| {
            d["spec"]["failStrategy"] = "FAIL_SHUT".into()
        }),
        ("an upper-case sha256", |d| {
            d["spec"]["sha256"] = "AB".repeat(32).into()
        }),
        ("a misspelt field", |d| d["spec"]["pluginname"] = "x".into()),
        ("an unknown phase", |d| {
            d["spec"]["phase"] = "AUTHORIZE".into()
        }),
        ("no url", |d| {
            d["spec"].as_object_mut().unwrap().remove("url");
        }),
        ("a docker:// url", |d| {
            d["spec"]["url"] = "docker://r/i:1".into()
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = plugin.clone();
        breakage(&mut broken);
        assert!(crds.check(&broken).is_err(), "{what} passed the CRD check");
    }
}
