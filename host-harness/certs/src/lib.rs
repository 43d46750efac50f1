//! SPIFFE CAs and X.509-SVIDs issued with rcgen, for tests and demos.
