//! meshward's workspace integration tests live in `all/` (one test binary).
//! What they share is the test rig's `meshward-test-support`, re-exported
//! here so the tests name it as `meshward_tests`.

#![forbid(unsafe_code)]

pub use meshward_test_support::*;
