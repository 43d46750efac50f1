//! Support for meshward's integration tests.
