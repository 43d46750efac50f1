//! Translates Istio AuthorizationPolicy YAML into equivalent Cedar policies.
