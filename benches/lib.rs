//! Shared inputs for meshward's criterion benches.
