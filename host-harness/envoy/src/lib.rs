//! Finds, configures, starts and stops a real Envoy process for meshward's demo, tests and benches.
