//! The harness's ABI boundary under a hostile guest: fuzz input becomes a
//! wasm module that calls every host function the harness provides with
//! arbitrary pointers, sizes, ids and enum values, from four callbacks, and
//! whose allocator may answer with pointers outside its memory.
//!
//! The oracle: every host call returns a status the ABI defines (the guest
//! traps otherwise, and a trap is a failure here), the plugin starts and
//! serves two requests without a VM failure, and nothing panics. Shared by
//! the `abi_boundary` fuzz target and the regression test in `tests/all`.

use std::fmt::Write as _;

use meshward_harness::{Host, PluginConfig, Request};

/// A host function as the guest imports it: module, name, parameter types
/// (`true` for `i64`); every one returns an `i32` status or errno.
type Import = (&'static str, &'static str, &'static [bool]);

const I: bool = false;
const L: bool = true;

/// Every function the harness links, except the three that do not return a
/// status (`proc_exit` ends the VM by design; `pthread_equal` and
/// `emscripten_notify_memory_growth` are emscripten shims).
const IMPORTS: &[Import] = &[
    ("env", "proxy_log", &[I, I, I]),
    ("env", "proxy_get_log_level", &[I]),
    ("env", "proxy_get_current_time_nanoseconds", &[I]),
    ("env", "proxy_set_tick_period_milliseconds", &[I]),
    ("env", "proxy_get_property", &[I, I, I, I]),
    ("env", "proxy_set_property", &[I, I, I, I]),
    ("env", "proxy_get_configuration", &[I, I]),
    ("env", "proxy_continue_stream", &[I]),
    ("env", "proxy_continue_request", &[]),
    ("env", "proxy_continue_response", &[]),
    ("env", "proxy_close_stream", &[I]),
    ("env", "proxy_clear_route_cache", &[]),
    (
        "env",
        "proxy_send_local_response",
        &[I, I, I, I, I, I, I, I],
    ),
    ("env", "proxy_get_header_map_value", &[I, I, I, I, I]),
    ("env", "proxy_add_header_map_value", &[I, I, I, I, I]),
    ("env", "proxy_replace_header_map_value", &[I, I, I, I, I]),
    ("env", "proxy_remove_header_map_value", &[I, I, I]),
    ("env", "proxy_get_header_map_pairs", &[I, I, I]),
    ("env", "proxy_set_header_map_pairs", &[I, I, I]),
    ("env", "proxy_get_header_map_size", &[I, I]),
    ("env", "proxy_get_buffer_bytes", &[I, I, I, I, I]),
    ("env", "proxy_get_buffer_status", &[I, I, I]),
    ("env", "proxy_set_buffer_bytes", &[I, I, I, I, I]),
    ("env", "proxy_http_call", &[I, I, I, I, I, I, I, I, I, I]),
    (
        "env",
        "proxy_dispatch_http_call",
        &[I, I, I, I, I, I, I, I, I, I],
    ),
    (
        "env",
        "proxy_grpc_call",
        &[I, I, I, I, I, I, I, I, I, I, I, I],
    ),
    ("env", "proxy_grpc_stream", &[I, I, I, I, I, I, I, I, I]),
    ("env", "proxy_grpc_send", &[I, I, I, I]),
    ("env", "proxy_grpc_cancel", &[I]),
    ("env", "proxy_grpc_close", &[I]),
    ("env", "proxy_get_status", &[I, I, I]),
    ("env", "proxy_call_foreign_function", &[I, I, I, I, I, I]),
    ("env", "proxy_get_shared_data", &[I, I, I, I, I]),
    ("env", "proxy_set_shared_data", &[I, I, I, I, I]),
    ("env", "proxy_register_shared_queue", &[I, I, I]),
    ("env", "proxy_resolve_shared_queue", &[I, I, I, I, I]),
    ("env", "proxy_enqueue_shared_queue", &[I, I, I]),
    ("env", "proxy_dequeue_shared_queue", &[I, I, I]),
    ("env", "proxy_define_metric", &[I, I, I, I]),
    ("env", "proxy_increment_metric", &[I, L]),
    ("env", "proxy_record_metric", &[I, L]),
    ("env", "proxy_get_metric", &[I, I]),
    ("env", "proxy_set_effective_context", &[I]),
    ("env", "proxy_done", &[]),
    ("wasi_snapshot_preview1", "fd_write", &[I, I, I, I]),
    ("wasi_snapshot_preview1", "fd_read", &[I, I, I, I]),
    ("wasi_snapshot_preview1", "fd_seek", &[I, L, I, I]),
    ("wasi_snapshot_preview1", "fd_close", &[I]),
    ("wasi_snapshot_preview1", "fd_fdstat_get", &[I, I]),
    ("wasi_snapshot_preview1", "fd_prestat_get", &[I, I]),
    ("wasi_snapshot_preview1", "fd_prestat_dir_name", &[I, I, I]),
    (
        "wasi_snapshot_preview1",
        "path_open",
        &[I, I, I, I, I, L, L, I, I],
    ),
    ("wasi_snapshot_preview1", "environ_sizes_get", &[I, I]),
    ("wasi_snapshot_preview1", "environ_get", &[I, I]),
    ("wasi_snapshot_preview1", "args_sizes_get", &[I, I]),
    ("wasi_snapshot_preview1", "args_get", &[I, I]),
    ("wasi_snapshot_preview1", "clock_time_get", &[I, L, I]),
    ("wasi_snapshot_preview1", "random_get", &[I, I]),
];

/// The largest proxy-wasm status and the largest WASI errno.
const MAX_STATUS: u32 = 12;
const MAX_ERRNO: u32 = 76;

/// The guest's memory: one 64 KiB page, never grown.
const PAGE: u32 = 0x1_0000;

/// The callbacks the calls are made from, with their signatures and what
/// they return after the calls.
const CALLBACKS: [(&str, &str, &str); 4] = [
    (
        "proxy_on_vm_start",
        "(param i32 i32) (result i32)",
        "(i32.const 1)",
    ),
    (
        "proxy_on_configure",
        "(param i32 i32) (result i32)",
        "(i32.const 1)",
    ),
    ("proxy_on_context_create", "(param i32 i32)", ""),
    (
        "proxy_on_request_headers",
        "(param i32 i32 i32) (result i32)",
        "(i32.const 0)",
    ),
];

/// At most this many calls per module, so one input stays fast.
const MAX_CALLS: usize = 64;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn word(&mut self, n: usize) -> u32 {
        (0..n).fold(0, |acc, i| acc | u32::from(self.byte()) << (8 * i))
    }

    /// An argument: mostly the values where bounds checks go wrong.
    fn arg(&mut self) -> i64 {
        let v = match self.byte() % 10 {
            0 => self.word(1),
            1 => self.word(2),
            2 => PAGE - self.word(1),
            3 => PAGE + self.word(1),
            4 => self.word(4),
            5 => 0,
            6 => u32::MAX,
            7 => i32::MAX as u32,
            8 => 0x8000_0000,
            _ => 0x100 + self.word(1),
        };
        i64::from(v as i32)
    }
}

/// The module for `data`, as wasm text.
pub fn module(data: &[u8]) -> String {
    let mut input = Input(data);
    let allocator = match input.byte() % 4 {
        // A bump allocator inside the page, null when full.
        0 => {
            "(local $p i32) (local.set $p (global.get $bump)) \
              (if (i32.gt_u (local.get 0) (i32.sub (i32.const 65536) (local.get $p))) \
                (then (return (i32.const 0)))) \
              (global.set $bump (i32.add (local.get $p) (local.get 0))) (local.get $p)"
        }
        // Outside memory.
        1 => "(i32.const -16)",
        // Always null.
        2 => "(i32.const 0)",
        // The last byte of memory, whatever the size.
        _ => "(i32.const 65535)",
    };
    let mut bodies: [String; 4] = Default::default();
    let mut calls = 0;
    while !input.0.is_empty() && calls < MAX_CALLS {
        let op = input.byte();
        let n = usize::from(input.byte()) % IMPORTS.len();
        let Some((module, _, params)) = IMPORTS.get(n) else {
            break;
        };
        let Some(body) = bodies.get_mut(usize::from(op >> 6)) else {
            break;
        };
        let args: String = params
            .iter()
            .map(|wide| {
                let v = input.arg();
                if *wide {
                    format!("(i64.const {v}) ")
                } else {
                    format!("(i32.const {}) ", v as i32)
                }
            })
            .collect();
        let max = if *module == "env" {
            MAX_STATUS
        } else {
            MAX_ERRNO
        };
        let _ = write!(body, "(call $check (call $f{n} {args}) (i32.const {max})) ");
        calls += 1;
    }
    let mut wat = String::from("(module\n");
    for (n, (module, name, params)) in IMPORTS.iter().enumerate() {
        let ps: String = params
            .iter()
            .map(|w| if *w { " i64" } else { " i32" })
            .collect();
        let _ = writeln!(
            wat,
            "  (import \"{module}\" \"{name}\" (func $f{n} (param{ps}) (result i32)))"
        );
    }
    let _ = writeln!(wat, "  (memory (export \"memory\") 1 1)");
    let _ = writeln!(wat, "  (global $bump (mut i32) (i32.const 32768))");
    let _ = writeln!(wat, "  (func (export \"proxy_abi_version_0_2_1\"))");
    let _ = writeln!(
        wat,
        "  (func (export \"proxy_on_memory_allocate\") (param i32) (result i32) {allocator})"
    );
    // A status outside the ABI's set is the host's bug: trap, and the
    // oracle reports it.
    let _ = writeln!(
        wat,
        "  (func $check (param i32 i32) (if (i32.gt_u (local.get 0) (local.get 1)) (then unreachable)))"
    );
    for ((name, sig, ret), body) in CALLBACKS.iter().zip(&bodies) {
        let _ = writeln!(wat, "  (func (export \"{name}\") {sig} {body}{ret})");
    }
    wat.push(')');
    wat
}

/// Runs the module for `data` in the harness and checks the oracle; panics
/// with what went wrong.
pub fn check(host: &Host, data: &[u8]) {
    let wat = module(data);
    let filter = host
        .load(wat.as_bytes())
        .unwrap_or_else(|e| panic!("the generated module does not load: {e}"));
    let mut plugin = filter
        .start(PluginConfig::new().configuration(data.to_vec()))
        .unwrap_or_else(|e| panic!("the plugin did not start: {e}\n{wat}"));
    for path in ["/a", "/b"] {
        let exchange = plugin.send(Request::get(path));
        assert!(
            exchange.failure.is_none(),
            "the VM failed: {:?}\n{wat}",
            exchange.failure
        );
    }
    assert!(
        plugin.failure().is_none(),
        "the VM failed: {:?}",
        plugin.failure()
    );
}
