//! The one way tests, fuzz targets and the soak build the authorization
//! filter's configuration.
//!
//! They are written against the authoring form (Cedar policy text under
//! `cedar.policies`); this function turns it into the bytes the filter is
//! given. Today that is the same JSON; when the filter takes another form
//! (policies compiled on the host), only this function changes. The fuzz
//! crates include this file by path, so it depends on `serde_json` alone.

/// The authorization filter's plugin configuration for `authoring`, a JSON
/// object of today's authoring form:
/// `{"cedar": {"policies": "<cedar text>", ...}, "peer_from": ..., ...}`.
pub fn authz_filter_config(authoring: &serde_json::Value) -> String {
    authoring.to_string()
}
