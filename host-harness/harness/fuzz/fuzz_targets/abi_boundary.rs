//! The harness's ABI boundary: a guest calling every host function with
//! arbitrary pointers, sizes and ids gets statuses, never a host crash
//! (see `src/abi_guest.rs` for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_harness::Host;
use meshward_harness_fuzz::abi_guest;

thread_local! {
    static HOST: Host = Host::new().expect("a wasm engine");
}

fuzz_target!(|data: &[u8]| {
    HOST.with(|host| abi_guest::check(host, data));
});
