//! Oracles for the harness-level fuzz targets, shared with the regression
//! tests in `tests/all/fuzz_regressions.rs` (which include these files).

pub mod abi_guest;
#[path = "../../../../tests/support/src/authz_config.rs"]
pub mod authz_config;
pub mod authz_diff;
