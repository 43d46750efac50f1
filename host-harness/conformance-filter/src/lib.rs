//! A proxy-wasm filter that exercises every host call, to test hosts against each other.
