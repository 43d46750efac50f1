//! The one way tests, fuzz targets and the soak build the authorization
//! filter's configuration.
//!
//! They are written against the authoring form (Cedar policy text under
//! `cedar.policies`); the filter loads only compiled policies, so the Cedar
//! part is compiled here, on the host, as `meshward compile` does. The fuzz
//! crates include this file by path, so it depends on `serde_json` and
//! `meshward-policy-cedar` alone.

/// The authorization filter's plugin configuration for `authoring`, a JSON
/// object of the authoring form:
/// `{"cedar": {"policies": "<cedar text>", ...}, "peer_from": ..., ...}`,
/// with its `cedar` member compiled. Panics if the policies do not compile:
/// a test's fixed policies are expected to.
pub fn authz_filter_config(authoring: &serde_json::Value) -> String {
    try_authz_filter_config(authoring)
        .unwrap_or_else(|e| panic!("the test policies do not compile: {e}"))
}

/// [`authz_filter_config`] for policies that may not compile (fuzz inputs):
/// the compiler's error, as text, instead of a panic.
pub fn try_authz_filter_config(authoring: &serde_json::Value) -> Result<String, String> {
    meshward_policy_cedar::compile_filter_config(&authoring.to_string()).map_err(|e| e.to_string())
}
