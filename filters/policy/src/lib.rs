//! Zero-trust L7 authorization in Cedar (to be built: see the policy issue).

#![forbid(unsafe_code)]
