//! meshward's integration tests, in one binary.
