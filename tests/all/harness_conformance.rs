//! The conformance filter through the harness: every proxy-wasm ABI 0.2.1
//! host function (and the WASI preview1 functions filters use) is exercised
//! here at least once; the comment on each test names the calls it covers.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use meshward_harness::{
    End, Error, FailureKind, Filter, GrpcReply, Host, HttpCallReply, HttpCallRequest, Limits,
    LogLevel, MetricKind, Plugin, PluginConfig, Properties, Request, Response, Shared, Step,
};
use meshward_tests::{filter_wasm, import_allowed};

fn wasm_bytes() -> Vec<u8> {
    std::fs::read(filter_wasm("meshward-conformance-filter")).unwrap()
}

/// Compiled once per test binary; every test starts its own VM from it.
fn filter() -> &'static Filter {
    static FILTER: OnceLock<Filter> = OnceLock::new();
    FILTER.get_or_init(|| Host::new().unwrap().load(wasm_bytes()).unwrap())
}

fn start(config: PluginConfig) -> Plugin {
    filter().start(config).unwrap()
}

fn plugin() -> Plugin {
    start(PluginConfig::new())
}

fn logged(plugin: &Plugin, needle: &str) -> bool {
    plugin.logs().iter().any(|l| l.message.contains(needle))
}

#[test]
fn imports_only_proxy_and_wasi_functions() {
    for payload in wasmparser::Parser::new(0).parse_all(&wasm_bytes()) {
        if let wasmparser::Payload::ImportSection(reader) = payload.unwrap() {
            for import in reader {
                let import = import.unwrap();
                assert!(
                    import_allowed(import.module, import.name),
                    "unexpected import {}.{}",
                    import.module,
                    import.name
                );
            }
        }
    }
}

/// proxy_log, proxy_get_buffer_bytes (VM and plugin configuration),
/// proxy_get_buffer_status, proxy_get_log_level, proxy_define_metric,
/// proxy_register_shared_queue, proxy_get_property.
#[test]
fn starts_with_vm_and_plugin_configuration() {
    let plugin = start(
        PluginConfig::new()
            .vm_configuration("vm-conf")
            .configuration("hello")
            .log_level(LogLevel::Info),
    );
    assert!(
        logged(&plugin, "vm_start config=vm-conf"),
        "{:?}",
        plugin.logs()
    );
    assert!(logged(
        &plugin,
        "configure config=hello size=5 buffer_status=Ok(5)"
    ));
    assert!(logged(&plugin, "queue=Ok(1) log_level=Ok(Info)"));
    let kinds: Vec<_> = plugin
        .metrics()
        .iter()
        .map(|m| (m.name.as_str(), m.kind))
        .collect();
    assert!(kinds.contains(&("conformance_histogram", MetricKind::Histogram)));
}

#[test]
fn configure_can_reject() {
    let err = filter()
        .start(PluginConfig::new().configuration("reject"))
        .unwrap_err();
    assert!(matches!(err, Error::ConfigureRejected), "{err:?}");
}

/// proxy_get_header_map_value, proxy_add_header_map_value,
/// proxy_replace_header_map_value, proxy_remove_header_map_value,
/// proxy_get_header_map_pairs, proxy_get_header_map_size; the response
/// callbacks; proxy_on_log.
#[test]
fn edits_request_and_response_headers() {
    let mut plugin = plugin();
    let exchange = plugin.send(
        Request::get("/op/basic")
            .header("x-in", "v")
            .header("x-replace", "old")
            .header("x-remove", "gone"),
    );
    assert_eq!(exchange.status(), 200);
    assert_eq!(exchange.upstream_header("x-conf-in"), Some("v"));
    assert_eq!(exchange.upstream_header("x-added"), Some("1"));
    assert_eq!(exchange.upstream_header("x-replace"), Some("new"));
    assert_eq!(exchange.upstream_header("x-remove"), None);
    assert_eq!(exchange.upstream_header("x-conf-count"), Some("11"));
    let size = exchange.upstream_header("x-conf-map-size").unwrap();
    assert!(size.starts_with("Ok(") && size != "Ok(0)", "{size}");
    assert_eq!(
        exchange.upstream_header("x-conf-trailers-size"),
        Some("Err(BadArgument)")
    );
    assert_eq!(exchange.upstream_header("x-conf-context"), Some("2 7 true"));
    assert_eq!(exchange.response_header("x-conf-response"), Some("1 true"));
    assert!(
        exchange
            .response_header("x-conf-response-size")
            .unwrap()
            .starts_with("Ok(")
    );
    assert!(logged(&plugin, "access /op/basic 200"));
}

/// proxy_set_header_map_pairs.
#[test]
fn replaces_all_request_headers() {
    let exchange = plugin().send(Request::get("/op/pairs").header("x-drop", "1"));
    assert_eq!(exchange.upstream_header("x-drop"), None);
    assert_eq!(exchange.upstream_header("x-set-pairs"), Some("1"));
    assert_eq!(exchange.upstream_header(":path"), Some("/op/pairs"));
}

/// proxy_get_property (Envoy encodings, path into maps), proxy_set_property.
#[test]
fn reads_istio_mtls_properties() {
    let peer = "spiffe://cluster.local/ns/default/sa/client";
    let mut plugin = start(
        PluginConfig::new()
            .name("conformance")
            .root_id("root")
            .properties(&Properties::istio_inbound_mtls(
                peer,
                "-----BEGIN CERTIFICATE-----",
            )),
    );
    let e = plugin.send(Request::get("/op/props"));
    assert_eq!(
        e.upstream_header("x-conf-p-plugin-name"),
        Some("conformance")
    );
    assert_eq!(e.upstream_header("x-conf-p-plugin-root-id"), Some("root"));
    assert_eq!(e.upstream_header("x-conf-p-peer"), Some(peer));
    assert_eq!(
        e.upstream_header("x-conf-p-source"),
        Some("127.0.0.1:52240")
    );
    assert_eq!(e.upstream_header("x-conf-p-mtls"), Some("01"));
    assert_eq!(e.upstream_header("x-conf-p-port"), Some("10cc000000000000"));
    assert_eq!(e.upstream_header("x-conf-p-path"), Some("/op/props"));
    assert_eq!(e.upstream_header("x-conf-p-namespace"), Some("default"));
    assert_eq!(e.upstream_header("x-conf-p-missing"), Some("none"));
    assert_eq!(e.upstream_header("x-conf-p-set"), Some("Ok(())"));
    // As in Envoy (tests/all/adversarial.rs measures it): a property set at
    // a path of two segments is stored where no read finds it.
    assert_eq!(e.upstream_header("x-conf-p-get-set"), Some("none"));
}

/// proxy_log at every level, fd_write (stdout, stderr), environ_sizes_get
/// and environ_get, args_sizes_get, clock_time_get (both clocks),
/// random_get, proxy_get_current_time_nanoseconds, proxy_get_log_level.
#[test]
fn logs_clock_environment_and_randomness() {
    let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut plugin = start(
        PluginConfig::new()
            .env("CONFORMANCE_ENV", "yes")
            .log_level(LogLevel::Warn)
            .time(time),
    );
    let e = plugin.send(Request::get("/op/env"));
    for (level, text) in [
        (LogLevel::Trace, "level trace"),
        (LogLevel::Debug, "level debug"),
        (LogLevel::Info, "level info"),
        (LogLevel::Warn, "level warn"),
        (LogLevel::Error, "level error"),
        (LogLevel::Critical, "level critical"),
        (LogLevel::Info, "stdout line"),
        (LogLevel::Error, "stderr line"),
    ] {
        assert!(
            plugin.logs_at(level).contains(&text),
            "{text}: {:?}",
            plugin.logs()
        );
    }
    assert_eq!(e.upstream_header("x-conf-log-level"), Some("Ok(Warn)"));
    assert_eq!(e.upstream_header("x-conf-env"), Some("yes"));
    assert_eq!(e.upstream_header("x-conf-args"), Some("0"));
    assert_eq!(e.upstream_header("x-conf-time-proxy"), Some("1700000000"));
    assert_eq!(e.upstream_header("x-conf-time-wasi"), Some("1700000000"));
    assert_eq!(e.upstream_header("x-conf-monotonic"), Some("0"));
    assert_eq!(e.upstream_header("x-conf-random"), Some("ok"));
}

/// proxy_send_local_response, deferred until the callback returns.
#[test]
fn answers_locally() {
    let mut plugin = plugin();
    let e = plugin.send(Request::get("/op/reply"));
    assert_eq!(e.status(), 418);
    assert_eq!(e.body_text(), "teapot");
    assert_eq!(e.response_header("x-conf-reply"), Some("1"));
    assert!(!e.forwarded());
    assert_eq!(e.end, End::Completed);
    // Envoy runs the filter's response callbacks on its own local reply.
    assert_eq!(e.response_header("x-conf-response"), Some("4 false"));
    let e = plugin.send(Request::get("/op/reply-continue"));
    assert_eq!(e.status(), 401);
    assert!(!e.forwarded());
}

/// proxy_get_buffer_bytes, proxy_set_buffer_bytes (replace, prepend,
/// append) and proxy_get_buffer_status on a request body buffered across
/// chunks while the filter pauses.
#[test]
fn buffers_and_rewrites_the_request_body() {
    let mut plugin = plugin();
    let e = plugin.send(Request::post("/op/body").body("ab").body("cd"));
    // The headers went on before the body (a filter holding them would get
    // no body callback in Envoy), so the body's report header is too late.
    assert_eq!(e.upstream_header("x-conf-body"), None);
    assert_eq!(e.upstream_request.unwrap().body, b"<ABCD>");
}

#[test]
fn body_steps_pause_until_the_end_of_stream() {
    let mut plugin = plugin();
    let mut s = plugin.stream();
    assert_eq!(
        s.request_headers(Request::post("/op/body").headers(), false),
        Step::Continue
    );
    assert_eq!(s.request_body(b"ab", false), Step::Pause);
    assert_eq!(s.request_body(b"cd", true), Step::Continue);
    assert!(s.request_complete());
    let e = s.finish();
    assert_eq!(e.upstream_request.unwrap().body, b"<ABCD>");
    assert_eq!(e.end, End::Stalled, "no response was given");
}

/// Request and response trailers; proxy_continue_stream from a trailers
/// callback.
#[test]
fn sees_and_adds_trailers() {
    let e = plugin().send(
        Request::post("/op/trailers-hold")
            .body("x")
            .trailer("t1", "v")
            .upstream_response(Response::new(200).body("ok").trailer("r1", "v")),
    );
    let upstream = e.upstream_request.clone().unwrap();
    assert!(
        upstream
            .trailers
            .contains(&("x-conf-trailer".into(), "1 1".into()))
    );
    let response = e.response.unwrap();
    assert!(
        response
            .trailers
            .contains(&("x-conf-trailer".into(), "1".into()))
    );
}

/// proxy_get_buffer_bytes and proxy_set_buffer_bytes on the response body.
#[test]
fn rewrites_the_response_body() {
    let e = plugin().send(
        Request::get("/op/response-body").upstream_response(Response::new(200).body("hello")),
    );
    assert_eq!(e.body_text(), "HELLO");
}

fn auth_upstream(seen: Arc<Mutex<Vec<HttpCallRequest>>>) -> PluginConfig {
    PluginConfig::new()
        .http_upstream("auth", move |req| {
            seen.lock().unwrap().push(req.clone());
            HttpCallReply::Response(Response::new(200).body("allowed").trailer("t", "1"))
        })
        .http_upstream("broken", |_| HttpCallReply::Failure)
        .http_upstream("deny", |_| HttpCallReply::Response(Response::new(401)))
        .http_upstream("slow", |_| HttpCallReply::Pending)
}

/// proxy_http_call, proxy_get_header_map_value and proxy_get_header_map_pairs
/// on the callout response, proxy_get_buffer_bytes on its body,
/// proxy_get_status, proxy_set_effective_context (by the SDK),
/// proxy_continue_stream.
#[test]
fn http_callout_resumes_the_request() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut plugin = start(auth_upstream(seen.clone()));
    let e = plugin.send(Request::get("/op/callout"));
    assert_eq!(e.status(), 200);
    assert_eq!(e.upstream_header("x-conf-callout-body"), Some("allowed"));
    assert_eq!(e.upstream_header("x-conf-callout-trailers"), Some("1 1"));
    assert!(
        e.upstream_header("x-conf-callout-status")
            .unwrap()
            .starts_with("Ok((0,")
    );
    let calls = seen.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header(":path"), Some("/check"));
    assert_eq!(calls[0].body, b"callout body");
    assert_eq!(
        calls[0].trailers,
        vec![("x-callout-trailer".to_owned(), "1".into())]
    );
    assert_eq!(calls[0].timeout, Duration::from_secs(1));
}

#[test]
fn http_callout_failures_and_denials() {
    let mut plugin = start(auth_upstream(Arc::default()));
    let failed = plugin.send(Request::get("/op/callout-fail"));
    assert_eq!(failed.status(), 503);
    assert_eq!(failed.response_header("x-conf-callout"), Some("failed"));
    let denied = plugin.send(Request::get("/op/callout-deny"));
    assert_eq!(denied.status(), 403);
    assert!(!denied.forwarded());
    let unknown = plugin.send(Request::get("/op/callout-unknown"));
    assert_eq!(
        unknown.upstream_header("x-conf-callout-error"),
        Some("Err(BadArgument)")
    );
}

#[test]
fn pending_callout_is_answered_by_the_test() {
    let mut plugin = start(auth_upstream(Arc::default()));
    let mut s = plugin.stream();
    assert_eq!(
        s.request_headers(Request::get("/op/callout-pending").headers(), true),
        Step::Pause
    );
    let pending = s.pending_http_calls();
    assert_eq!(pending.len(), 1);
    let step = s
        .complete_http_call(pending[0].0, HttpCallReply::Response(Response::new(200)))
        .unwrap();
    assert_eq!(step, Step::Continue);
    assert!(s.finish().forwarded());
}

/// proxy_continue_stream for the response, after a callout made while
/// response headers were paused.
#[test]
fn response_pauses_for_a_callout() {
    let mut plugin = start(auth_upstream(Arc::default()));
    let e = plugin.send(Request::get("/op/pause-response"));
    assert_eq!(e.status(), 200);
    assert_eq!(e.response_header("x-conf-callout"), Some("200"));
}

fn grpc_config() -> PluginConfig {
    PluginConfig::new()
        .grpc_upstream("grpc", |req| GrpcReply {
            initial_metadata: vec![("a".into(), "1".into())],
            messages: vec![if req.message == b"ping" {
                b"pong".to_vec()
            } else {
                req.message.clone()
            }],
            trailing_metadata: vec![("t".into(), "1".into())],
            status: 0,
            status_message: String::new(),
        })
        .grpc_upstream("grpc-fail", |_| GrpcReply::error(7, "denied"))
}

/// proxy_grpc_call (success, failure, unknown upstream), proxy_get_status.
#[test]
fn grpc_unary_calls() {
    let mut plugin = start(grpc_config());
    let ok = plugin.send(Request::get("/op/grpc"));
    assert!(
        ok.upstream_header("x-conf-grpc")
            .unwrap()
            .starts_with("0 pong"),
        "{ok:?}"
    );
    let failed = plugin.send(Request::get("/op/grpc-fail"));
    let header = failed.upstream_header("x-conf-grpc").unwrap();
    assert!(
        header.starts_with("7 none Ok((7, Some(\"denied\")))"),
        "{header}"
    );
    let unknown = plugin.send(Request::get("/op/grpc-unknown"));
    assert_eq!(
        unknown.upstream_header("x-conf-grpc-error"),
        Some("Err(ParseFailure)")
    );
}

/// proxy_grpc_stream, proxy_grpc_send, and the stream callbacks.
#[test]
fn grpc_streams() {
    let e = start(grpc_config()).send(Request::get("/op/grpc-stream"));
    let header = e.upstream_header("x-conf-grpc-stream").unwrap();
    assert!(
        header.starts_with("initial:1:1 message:one message:two trailing:1:1 close:0:"),
        "{header}"
    );
}

/// proxy_grpc_cancel, proxy_grpc_close.
#[test]
fn grpc_cancel_and_close() {
    let e = start(grpc_config()).send(Request::get("/op/grpc-stop"));
    assert_eq!(
        e.upstream_header("x-conf-grpc-stop"),
        Some("Ok(Ok(())) Ok(Ok(())) Err(NotFound)")
    );
}

/// proxy_get_shared_data and proxy_set_shared_data with CAS, across VMs.
#[test]
fn shared_data_with_cas_across_vms() {
    let shared = Shared::new();
    let mut a = start(PluginConfig::new().vm_id("vm").shared(&shared));
    let mut b = start(PluginConfig::new().vm_id("vm").shared(&shared));
    let e = a.send(Request::get("/op/shared"));
    assert_eq!(e.upstream_header("x-conf-shared-before"), Some("None"));
    assert_eq!(
        e.upstream_header("x-conf-shared"),
        Some("Ok(()) v1 Ok(()) Err(CasMismatch) v2")
    );
    let e = b.send(Request::get("/op/shared"));
    assert_ne!(e.upstream_header("x-conf-shared-before"), Some("None"));
    assert_eq!(shared.get("vm", b"conformance_key").unwrap().0, b"v2");
    let other =
        start(PluginConfig::new().vm_id("other").shared(&shared)).send(Request::get("/op/shared"));
    assert_eq!(other.upstream_header("x-conf-shared-before"), Some("None"));
}

/// proxy_register_shared_queue, proxy_resolve_shared_queue (the SDK maps
/// `EMPTY` to `Ok(None)`),
/// proxy_enqueue_shared_queue, proxy_dequeue_shared_queue and
/// proxy_on_queue_ready, in one VM and across two.
#[test]
fn shared_queues() {
    let shared = Shared::new();
    let mut a = start(PluginConfig::new().vm_id("vm").shared(&shared));
    let e = a.send(Request::get("/op/queue"));
    assert_eq!(
        e.upstream_header("x-conf-queue"),
        Some("Ok(true) Ok(None) Some(Ok(())) Err(NotFound)")
    );
    assert!(
        logged(&a, "queue_ready item=item again=Ok(None)"),
        "{:?}",
        a.logs()
    );
    // The queue's owner is the last VM that registered it.
    let mut b = start(PluginConfig::new().vm_id("vm").shared(&shared));
    a.take_logs();
    a.send(Request::get("/op/queue"));
    assert!(!logged(&a, "queue_ready"));
    b.poll();
    assert!(logged(&b, "queue_ready item=item"), "{:?}", b.logs());
}

/// proxy_increment_metric, proxy_record_metric, proxy_get_metric.
#[test]
fn metrics_are_readable() {
    let mut plugin = plugin();
    let e = plugin.send(Request::get("/op/metrics"));
    assert_eq!(
        e.upstream_header("x-conf-metrics"),
        Some("Ok(()) Ok(()) Ok(2) Ok(3) Err(BadArgument) Err(BadArgument) Err(NotFound)")
    );
    assert_eq!(plugin.metric_value("conformance_requests"), Some(2));
    assert_eq!(plugin.metric_value("conformance_gauge"), Some(3));
    assert_eq!(
        plugin.metric("conformance_histogram").unwrap().samples,
        vec![42]
    );
}

/// proxy_call_foreign_function.
#[test]
fn foreign_functions() {
    let e = start(PluginConfig::new().foreign_function("echo", |args| Some(args.to_vec())))
        .send(Request::get("/op/foreign"));
    assert_eq!(
        e.upstream_header("x-conf-foreign"),
        Some("abc Err(NotFound)")
    );
}

/// proxy_set_effective_context.
#[test]
fn effective_context() {
    let e = plugin().send(Request::get("/op/effective"));
    assert_eq!(
        e.upstream_header("x-conf-effective"),
        Some("Err(BadArgument) Ok(())")
    );
}

/// proxy_close_stream.
#[test]
fn close_resets_the_stream() {
    let e = plugin().send(Request::get("/op/close"));
    assert_eq!(e.end, End::Reset);
    assert!(!e.forwarded());
    assert!(e.response.is_none());
}

/// proxy_set_tick_period_milliseconds and proxy_on_tick on the virtual clock.
#[test]
fn ticks_follow_the_virtual_clock() {
    let mut plugin = start(PluginConfig::new().configuration("tick"));
    assert_eq!(plugin.tick_period(), Some(Duration::from_secs(1)));
    let before = plugin.now();
    plugin.advance(Duration::from_millis(3500));
    assert_eq!(plugin.metric_value("conformance_ticks"), Some(3));
    assert_eq!(
        plugin.now().duration_since(before).unwrap(),
        Duration::from_millis(3500)
    );
}

/// proxy_done after proxy_on_done returned false.
#[test]
fn root_finishes_later_with_proxy_done() {
    let mut plugin = start(PluginConfig::new().configuration("defer-done"));
    assert!(!plugin.shutdown().unwrap());
    plugin.advance(Duration::from_millis(20));
    assert!(logged(&plugin, "proxy_done=Ok(())"), "{:?}", plugin.logs());
}

#[test]
fn traps_fail_closed_and_open() {
    let e = plugin().send(Request::get("/op/trap"));
    assert_eq!(e.status(), 503);
    assert!(matches!(e.failure.unwrap().kind, FailureKind::Trap(_)));
    let e = start(PluginConfig::new().fail_open(true)).send(Request::get("/op/trap"));
    assert!(e.forwarded());
    assert_eq!(e.status(), 200);
}

/// proc_exit.
#[test]
fn exit_fails_the_vm() {
    let e = plugin().send(Request::get("/op/exit"));
    assert_eq!(e.status(), 503);
    assert_eq!(e.failure.unwrap().kind, FailureKind::ProcExit(7));
}

#[test]
fn runaway_filters_are_stopped() {
    let host = Host::with_limits(
        Limits::default()
            .deadline(Duration::from_millis(200))
            .memory_bytes(64 << 20),
    )
    .unwrap();
    let filter = host.load(wasm_bytes()).unwrap();
    let started = Instant::now();
    let e = filter
        .start(PluginConfig::new())
        .unwrap()
        .send(Request::get("/op/spin"));
    // The failure kind proves the deadline stopped it; the wall-clock bound
    // only catches a deadline that no longer applies, loosely, because a
    // loaded machine stretches time many times over.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        e.failure.unwrap().kind,
        FailureKind::Deadline(Duration::from_millis(200))
    );
    // The memory limit alone, with a deadline no loaded machine reaches
    // while the filter allocates its way up to it.
    let host = Host::with_limits(
        Limits::default()
            .deadline(Duration::from_secs(60))
            .memory_bytes(64 << 20),
    )
    .unwrap();
    let e = host
        .load(wasm_bytes())
        .unwrap()
        .start(PluginConfig::new())
        .unwrap()
        .send(Request::get("/op/hog"));
    assert_eq!(e.status(), 503);
    assert_eq!(e.failure.unwrap().kind, FailureKind::MemoryLimit(64 << 20));
}

/// In `proxy_on_log` a map that never arrived reads as `NOT_FOUND` (the
/// Rust SDK would trap on `BAD_ARGUMENT`), as in Envoy's access-log phase.
#[test]
fn on_log_sees_missing_response_as_not_found() {
    let mut plugin = plugin();
    let mut s = plugin.stream();
    s.request_headers(Request::get("/op/basic").headers(), true);
    let e = s.finish();
    assert!(e.failure.is_none(), "{:?}", e.failure);
    assert!(logged(&plugin, "access /op/basic "), "{:?}", plugin.logs());
}
