//! Unit tests of the host itself, with small WAT filters.

use std::time::{Duration, Instant};

use crate::{End, Error, FailureKind, Host, Limits, LogLevel, PluginConfig, Request, Step};

/// A filter skeleton: memory, a bump allocator, the 0.2.1 marker, a
/// `log` helper (level 2) over static strings, and `body` spliced in.
fn module(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "create")
  (data (i32.const 32) "vm_start")
  (data (i32.const 48) "configure")
  (data (i32.const 64) "request_headers")
  (data (i32.const 80) "response_headers")
  (data (i32.const 112) "done")
  (data (i32.const 128) "log")
  (data (i32.const 144) "delete")
  (data (i32.const 160) "after reply")
  (data (i32.const 192) "denied")
  (func $log (param i32 i32) (drop (call $proxy_log (i32.const 2) (local.get 0) (local.get 1))))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (global.get $heap)
    (global.set $heap (i32.add (global.get $heap) (local.get 0))))
  {body}
)"#
    )
}

const LIFECYCLE: &str = r#"
  (func (export "proxy_on_context_create") (param i32 i32) (call $log (i32.const 16) (i32.const 6)))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (call $log (i32.const 32) (i32.const 8)) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (call $log (i32.const 48) (i32.const 9)) (i32.const 1))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (call $log (i32.const 80) (i32.const 16)) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (call $log (i32.const 112) (i32.const 4)) (i32.const 1))
  (func (export "proxy_on_log") (param i32) (call $log (i32.const 128) (i32.const 3)))
  (func (export "proxy_on_delete") (param i32) (call $log (i32.const 144) (i32.const 6)))
"#;

fn with_request_headers(imports: &str, headers_body: &str) -> String {
    module(
        imports,
        &format!(
            r#"{LIFECYCLE}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $log (i32.const 64) (i32.const 15))
    {headers_body})"#
        ),
    )
}

fn host(limits: Limits) -> Host {
    Host::with_limits(limits).unwrap()
}

#[test]
fn unknown_import_is_named() {
    let wat = module(
        r#"(import "env" "proxy_does_not_exist" (func (param i32) (result i32)))"#,
        "",
    );
    let err = Host::new().unwrap().load(wat).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownImport { module, name } if module == "env" && name == "proxy_does_not_exist"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`env.proxy_does_not_exist`"),
        "{err}"
    );
}

#[test]
fn get_log_level_is_not_linked_for_abi_0_2_0() {
    let wat = module(
        r#"(import "env" "proxy_get_log_level" (func (param i32) (result i32)))"#,
        "",
    )
    .replace("proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0");
    let err = Host::new().unwrap().load(wat).unwrap_err();
    assert!(matches!(err, Error::UnknownImport { .. }), "{err:?}");
}

#[test]
fn missing_abi_marker_is_rejected() {
    let wat = module("", "").replace("(func (export \"proxy_abi_version_0_2_1\"))", "");
    let err = Host::new().unwrap().load(wat).unwrap_err();
    assert!(matches!(err, Error::MissingAbiVersion), "{err:?}");
}

#[test]
fn wrong_import_signature_is_named() {
    let wat = module(
        r#"(import "env" "proxy_done" (func (param i32) (result i32)))"#,
        "",
    );
    let err = Host::new().unwrap().load(wat).unwrap_err();
    assert!(
        matches!(&err, Error::ImportSignature { name, .. } if name == "proxy_done"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("(param i32) (result i32)"),
        "{err}"
    );
}

/// Guest pointers are checked against the memory's end: a range that
/// crosses it is `INVALID_MEMORY_ACCESS` (6) for proxy-wasm and `EFAULT`
/// (21) for WASI, and an empty range right at the end is fine.
#[test]
fn out_of_bounds_guest_memory_is_refused() {
    let wat = module(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#,
        r#"
  (data (i32.const 256) "\fe\ff\01\00\04\00\00\00")
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.and
      (i32.and
        (i32.eq (call $proxy_log (i32.const 2) (i32.const 0x1fffe) (i32.const 4)) (i32.const 6))
        (i32.eq (call $proxy_log (i32.const 2) (i32.const 0x20000) (i32.const 0)) (i32.const 0)))
      (i32.eq (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 512)) (i32.const 21))))"#,
    );
    let plugin = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new());
    assert!(plugin.is_ok(), "{plugin:?}");
}

#[test]
fn lifecycle_follows_envoy_order() {
    let wat = with_request_headers("", "(i32.const 0)");
    let mut plugin = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap();
    let exchange = plugin.send(Request::get("/"));
    assert_eq!(exchange.status(), 200);
    assert!(exchange.forwarded());
    let messages: Vec<_> = plugin
        .logs()
        .iter()
        .map(|l| (l.context_id, l.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (1, "create"),
            (1, "vm_start"),
            (1, "configure"),
            (2, "create"),
            (2, "request_headers"),
            (2, "response_headers"),
            // Envoy 1.40 runs the access log (`on_log`) before it destroys
            // the filter (`on_done`, `on_delete`): issue 13.
            (2, "log"),
            (2, "done"),
            (2, "delete"),
        ]
    );
    assert!(plugin.shutdown().unwrap());
    assert_eq!(plugin.logs_at(LogLevel::Info).last(), Some(&"delete"));
}

#[test]
fn configure_returning_false_is_an_error() {
    let wat = module(
        "",
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    let err = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap_err();
    assert!(matches!(err, Error::ConfigureRejected), "{err:?}");
}

const REPLY: &str = r#"(import "env" "proxy_send_local_response"
    (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;

#[test]
fn local_reply_is_deferred_until_the_callback_returns() {
    // Replies 403, keeps running (logs), then returns Continue: the reply
    // still wins, and the request never reaches the upstream.
    let wat = with_request_headers(
        REPLY,
        r#"(drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0)
              (i32.const 192) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
           (call $log (i32.const 160) (i32.const 11))
           (i32.const 0)"#,
    );
    let mut plugin = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap();
    let exchange = plugin.send(Request::get("/"));
    assert_eq!(exchange.status(), 403);
    assert_eq!(exchange.body_text(), "denied");
    assert!(!exchange.forwarded());
    assert_eq!(exchange.local_reply.as_ref().unwrap().status, 403);
    assert_eq!(exchange.response_header("content-type"), Some("text/plain"));
    assert!(plugin.logs_at(LogLevel::Info).contains(&"after reply"));
    // Envoy runs the filter's response callback on its own local reply.
    assert!(plugin.logs_at(LogLevel::Info).contains(&"response_headers"));
}

#[test]
fn pause_without_resume_stalls() {
    let wat = with_request_headers("", "(i32.const 1)");
    let mut plugin = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap();
    let mut stream = plugin.stream();
    let step = stream.request_headers(Request::get("/").headers, true);
    assert_eq!(step, Step::Pause);
    let exchange = stream.finish();
    assert_eq!(exchange.end, End::Stalled);
    assert!(!exchange.forwarded());
}

#[test]
fn trap_fails_closed_with_503() {
    let wat = with_request_headers("", "(unreachable)");
    let filter = Host::new().unwrap().load(wat).unwrap();
    let mut plugin = filter.start(PluginConfig::new()).unwrap();
    let exchange = plugin.send(Request::get("/"));
    assert_eq!(exchange.status(), 503);
    assert!(!exchange.forwarded());
    assert_eq!(
        exchange.local_reply.as_ref().unwrap().details,
        "wasm_fail_stream"
    );
    let failure = exchange.failure.unwrap();
    assert_eq!(failure.callback, "proxy_on_request_headers");
    assert!(matches!(failure.kind, FailureKind::Trap(_)), "{failure:?}");
    // The VM stays failed: later streams fail closed without running it.
    assert_eq!(plugin.send(Request::get("/")).status(), 503);
}

#[test]
fn trap_fails_open_when_configured() {
    let wat = with_request_headers("", "(unreachable)");
    let filter = Host::new().unwrap().load(wat).unwrap();
    let mut plugin = filter.start(PluginConfig::new().fail_open(true)).unwrap();
    let exchange = plugin.send(Request::get("/"));
    assert_eq!(exchange.status(), 200);
    assert!(exchange.forwarded());
    assert!(exchange.failure.is_some());
    assert!(plugin.send(Request::get("/again")).forwarded());
}

const SPIN: &str = "(loop $l (br $l)) (i32.const 0)";

#[test]
fn infinite_loop_hits_the_deadline_within_a_second() {
    let wat = with_request_headers("", SPIN);
    let host = host(Limits::default().deadline(Duration::from_millis(100)));
    let mut plugin = host.load(wat).unwrap().start(PluginConfig::new()).unwrap();
    let started = Instant::now();
    let exchange = plugin.send(Request::get("/"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exchange.status(), 503);
    let failure = exchange.failure.unwrap();
    assert_eq!(
        failure.kind,
        FailureKind::Deadline(Duration::from_millis(100))
    );
    assert!(failure.to_string().contains("runaway loop"), "{failure}");
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let wat = with_request_headers("", SPIN);
    let host = host(Limits::default().fuel(Some(1_000_000)));
    let mut plugin = host.load(wat).unwrap().start(PluginConfig::new()).unwrap();
    let started = Instant::now();
    let exchange = plugin.send(Request::get("/"));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        exchange.failure.unwrap().kind,
        FailureKind::OutOfFuel(1_000_000)
    );
}

#[test]
fn default_deadline_stops_a_loop_in_configure() {
    let wat = module(
        "",
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (loop $l (br $l)) (i32.const 1))"#,
    );
    let started = Instant::now();
    let err = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap_err();
    // The deadline's kind is the property; the time bound only catches a
    // deadline that no longer applies by default, and is loose because a
    // loaded CI machine stretches wall-clock time many times over.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, Error::Failed(f) if matches!(f.kind, FailureKind::Deadline(_))),
        "{err:?}"
    );
}

#[test]
fn memory_growth_past_the_cap_fails() {
    let wat = with_request_headers(
        "",
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i32.const 0)",
    );
    let host = host(Limits::default().memory_bytes(4 << 20));
    let mut plugin = host.load(wat).unwrap().start(PluginConfig::new()).unwrap();
    let exchange = plugin.send(Request::get("/"));
    assert_eq!(exchange.status(), 503);
    assert_eq!(
        exchange.failure.unwrap().kind,
        FailureKind::MemoryLimit(4 << 20)
    );
}

#[test]
fn proc_exit_fails_the_vm() {
    let wat = with_request_headers(
        r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
        "(call $exit (i32.const 3)) (i32.const 0)",
    );
    let mut plugin = Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap();
    let exchange = plugin.send(Request::get("/"));
    assert_eq!(exchange.failure.unwrap().kind, FailureKind::ProcExit(3));
}

fn reply_plugin(config: PluginConfig) -> crate::Plugin {
    // Replies 403 with body `denied` and header `x-a: b` (the pair
    // encoding at 512: one pair, lengths 3 and 1).
    let wat = with_request_headers(
        REPLY,
        r#"(drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0)
              (i32.const 192) (i32.const 6) (i32.const 512) (i32.const 19) (i32.const -1)))
           (i32.const 0)"#,
    )
    .replace(
        "(data (i32.const 192) \"denied\")",
        "(data (i32.const 192) \"denied\")\n  (data (i32.const 512) \"\\01\\00\\00\\00\\03\\00\\00\\00\\01\\00\\00\\00x-a\\00b\\00\")",
    );
    Host::new()
        .unwrap()
        .load(wat)
        .unwrap()
        .start(config)
        .unwrap()
}

#[test]
fn local_reply_headers_come_in_envoys_order_and_head_gets_no_body() {
    let mut plugin = reply_plugin(PluginConfig::new());
    let exchange = plugin.send(Request::get("/"));
    let names: Vec<&str> = exchange
        .response
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(names, ["x-a", "content-length", "content-type"]);
    let head = plugin.send(Request::new("HEAD", "/"));
    assert_eq!(head.status(), 403);
    assert_eq!(head.body_text(), "");
    assert_eq!(head.response_header("content-length"), Some("6"));
}

#[test]
fn the_trace_shows_callback_order_and_envoy_startup_runs_three_times() {
    // Envoy 1.40 starts a plugin in the configuration canary, in the main
    // thread's VM and in the worker's (tests/data/fidelity recording).
    let mut plugin = reply_plugin(PluginConfig::new().trace(true).envoy_startup(true));
    let starts = plugin
        .trace()
        .iter()
        .filter(|c| c.callback == "proxy_on_vm_start")
        .count();
    assert_eq!(starts, 3);
    assert_eq!(
        plugin.logs_at(LogLevel::Info),
        ["create", "vm_start", "configure"].repeat(3)
    );
    assert_eq!(plugin.main_thread_log_count(), 6);
    plugin.take_trace();
    plugin.send(Request::get("/"));
    let calls: Vec<String> = plugin.trace().iter().map(|c| c.callback.clone()).collect();
    assert_eq!(
        calls,
        [
            "proxy_on_context_create",
            "proxy_on_request_headers",
            "proxy_on_response_headers",
            "proxy_on_log",
            "proxy_on_done",
            "proxy_on_delete"
        ]
    );
}

#[test]
fn request_defaults_are_explicit_and_set_header_keeps_position() {
    let bare = Request::bare("GET", "/p");
    assert_eq!(bare.headers().len(), 2);
    let r = Request::get("/").header("x-a", "1").header("x-b", "2");
    let r = r.set_header("x-a", "3");
    let names: Vec<String> = r.headers().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [":authority", ":path", ":method", ":scheme", "x-a", "x-b"]
    );
}

#[test]
fn plugins_sharing_a_vm_get_a_root_context_each() {
    let wat = with_request_headers("", "(i32.const 0)");
    let filter = host(Limits::default()).load(wat).unwrap();
    let configs = [("a", "A"), ("b", "B")]
        .map(|(name, c)| PluginConfig::new().name(name).configuration(c).trace(true));
    let mut vm = filter.start_vm(configs).unwrap();
    assert_eq!(vm.root_ids(), [1, 2]);
    let starts: Vec<(String, Vec<i32>)> = vm
        .take_trace()
        .into_iter()
        .map(|c| (c.callback, c.args))
        .collect();
    assert_eq!(
        starts,
        [
            ("proxy_on_context_create".to_owned(), vec![1, 0]),
            ("proxy_on_vm_start".to_owned(), vec![1, 0]),
            ("proxy_on_configure".to_owned(), vec![1, 1]),
            ("proxy_on_context_create".to_owned(), vec![2, 0]),
            ("proxy_on_vm_start".to_owned(), vec![2, 0]),
            ("proxy_on_configure".to_owned(), vec![2, 1]),
        ]
    );
    vm.select_root(2).unwrap();
    assert_eq!(vm.root_context_id(), 2);
    vm.send(Request::get("/"));
    let created = vm.trace().first().map(|c| c.args.clone());
    assert_eq!(created, Some(vec![3, 2]));
    assert!(vm.select_root(3).is_err());
    // One module instance: both plugins' log lines are the VM's.
    assert_eq!(vm.logs_at(LogLevel::Info).len(), 6 + 6);
}
