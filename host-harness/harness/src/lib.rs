//! A wasmtime host that runs any proxy-wasm filter the way Envoy does, for tests and benches.
