//! Faults (issue 14), each in real Envoy, in the harness and in the
//! reference data path (`meshward-data-path`), short and
//! bounded: a filter that traps (fail closed: every affected request 503,
//! none let through; fail open only where configured, and then the
//! authorization filter still decides), an invalid configuration (refused
//! with a logged reason; under LDS the last valid configuration is kept), a
//! configuration change under load (no request failed, each decided wholly
//! by the old or the new configuration), and Envoy restarted under load (no
//! request allowed that policy denies).
//!
//! Traps come from a test guest (`tests/guests/fault-filter`) placed in
//! the chain, never from a hook in the shipped filters. The data path runs
//! on the Envoy rig's port and certificates, so the same probes and client
//! reach it; for the restart it runs in a process of its own, killed and
//! started again under load.

#[path = "faults/data_path.rs"]
pub(crate) mod data_path;
#[path = "faults/rig.rs"]
pub(crate) mod rig;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meshward_data_path::DataPath;
use meshward_filter_glue::PEER_ID_PROPERTY;
use meshward_harness::{Error, Host, LogLevel, PluginConfig, Properties, Request};
use meshward_tests::{authz_filter_config, filter_wasm};

use self::rig::{
    FRONTEND, Listener, ORDERS, PROBES, Peer, Probe, Rig, authz_filter, fault_filter,
    identity_filter,
};

const TRAP: (&str, &str) = ("x-fault", "trap");

// ---------------------------------------------------------------- harness

fn fault_plugin(fail_open: bool) -> meshward_harness::Plugin {
    Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-fault-filter"))
        .unwrap()
        .start(
            PluginConfig::new()
                .configuration("trap-on-header")
                .fail_open(fail_open),
        )
        .unwrap()
}

fn authz_plugin(policies: &str) -> Result<meshward_harness::Plugin, Error> {
    Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap()
        .start(
            PluginConfig::new()
                .configuration(rig::authz_config_or_text(policies))
                .properties(&Properties::istio_inbound_mtls(FRONTEND, "")),
        )
}

fn harness_request(probe: &Probe, trap: bool) -> Request {
    let peer = match probe.peer {
        Peer::Frontend => FRONTEND,
        Peer::Backend => rig::BACKEND,
    };
    let mut req = Request::new(probe.method, probe.path).property(PEER_ID_PROPERTY, peer);
    for (k, v) in probe.headers {
        req = req.header(k, v);
    }
    if trap {
        req = req.header(TRAP.0, TRAP.1);
    }
    req
}

/// The fault filter then the authorization filter, as Envoy chains them:
/// the second sees the request only if the first let it through. Returns
/// the status and whether the application got the request.
fn through_chain(
    fault: &mut meshward_harness::Plugin,
    authz: &mut meshward_harness::Plugin,
    probe: &Probe,
    trap: bool,
) -> (u16, bool) {
    let first = fault.send(harness_request(probe, trap));
    if !first.forwarded() {
        return (first.status(), false);
    }
    let second = authz.send(harness_request(probe, trap));
    (second.status(), second.forwarded())
}

#[test]
fn a_trap_fails_closed_in_the_harness() {
    let mut fault = fault_plugin(false);
    let mut authz = authz_plugin(ORDERS).unwrap();
    for p in PROBES {
        assert_eq!(
            through_chain(&mut fault, &mut authz, p, false).1,
            p.allowed,
            "{p:?}"
        );
    }
    let allowed = PROBES[0];
    assert_eq!(
        through_chain(&mut fault, &mut authz, &allowed, true),
        (503, false)
    );
    assert!(fault.failure().is_some());
    // The VM has failed for good: every later request, allowed by policy
    // or not, is answered 503 and reaches nobody.
    for p in PROBES.iter().cycle().take(3 * PROBES.len()) {
        assert_eq!(
            through_chain(&mut fault, &mut authz, p, false),
            (503, false),
            "{p:?}"
        );
    }
}

#[test]
fn a_trap_fails_open_only_where_configured_and_authz_still_decides() {
    let mut fault = fault_plugin(true);
    let mut authz = authz_plugin(ORDERS).unwrap();
    let e = fault.send(harness_request(&PROBES[0], true));
    // Counted: the exchange reports the failure it let through.
    assert!(e.failure.is_some() && e.forwarded());
    let passed_before = fault.metric_value("fault_filter_passed");
    for p in PROBES.iter().cycle().take(2 * PROBES.len()) {
        let (status, forwarded) = through_chain(&mut fault, &mut authz, p, false);
        assert_eq!(
            forwarded, p.allowed,
            "{p:?}: the failed filter let a denial through"
        );
        assert_eq!(status, if p.allowed { 200 } else { 403 }, "{p:?}");
    }
    // The failed filter no longer runs: its own counter stands still.
    assert_eq!(fault.metric_value("fault_filter_passed"), passed_before);
}

#[test]
fn a_trap_while_configuring_fails_the_plugin_in_the_harness() {
    let err = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-fault-filter"))
        .unwrap()
        .start(PluginConfig::new().configuration("trap-on-configure"))
        .map(|_| ())
        .expect_err("a plugin whose configure traps must not start");
    assert!(matches!(err, Error::Failed(_)), "{err}");
}

#[test]
fn an_invalid_configuration_is_refused_with_its_reason_in_the_harness() {
    // Authorization: a policy that fails strict validation, and a
    // configuration that is not even the expected JSON.
    for policies in [
        "permit(principal, action, resource) when { context.nope };",
        "permit(",
    ] {
        match authz_plugin(policies) {
            Err(Error::ConfigureRejected) => {}
            Err(e) => panic!("{policies}: refused as {e}, not by the filter"),
            Ok(_) => panic!("{policies}: accepted"),
        }
    }
    // Identity: refused too, and the reason is logged.
    let host = Host::new().unwrap();
    let filter = host
        .load_file(filter_wasm("meshward-identity-filter"))
        .unwrap();
    for bad in [
        r#"{"allowed_trust_domains": "example.org"}"#,
        "{",
        r#"{"allowed_trust_domains": ["example.org"], "nope": 1}"#,
    ] {
        assert!(
            matches!(
                filter.start(
                    PluginConfig::new()
                        .configuration(bad)
                        .log_level(LogLevel::Trace)
                ),
                Err(Error::ConfigureRejected)
            ),
            "{bad}: accepted"
        );
    }
}

// ---------------------------------------------------------------- Envoy

/// Sends every probe once; returns the statuses.
async fn probe_all(rig: &Rig) -> Vec<(Probe, Result<u16, String>)> {
    let mut out = Vec::new();
    for p in PROBES {
        out.push((*p, rig.send(p).await));
    }
    out
}

fn assert_decided_by_policy(what: &str, results: &[(Probe, Result<u16, String>)]) {
    for (p, r) in results {
        let want = if p.allowed { 200 } else { 403 };
        assert_eq!(r.as_ref().ok(), Some(&want), "{what}: {p:?} got {r:?}");
    }
}

async fn envoy_trap(fail_open: bool) -> (Rig, meshward_envoy::Envoy) {
    let mut rig = Rig::new().await;
    rig.fail_open = fail_open;
    let config = rig.bootstrap(
        &[fault_filter("trap-on-header"), authz_filter_connection()],
        Listener::Static,
    );
    let envoy = rig.start(&config).await;
    assert_decided_by_policy("before the trap", &probe_all(&rig).await);
    let trap: Probe = Probe {
        headers: &[TRAP],
        ..PROBES[0]
    };
    // Failing closed, the trapping request is answered 503; failing open,
    // it may go on to the authorization filter, which allows it.
    let status = rig.send(&trap).await;
    let expected: &[u16] = if fail_open { &[200, 503] } else { &[503] };
    assert!(
        status.as_ref().is_ok_and(|s| expected.contains(s)),
        "the trapping request: {status:?}\n{}",
        envoy.logs()
    );
    (rig, envoy)
}

/// The authorization filter deciding on the mTLS peer itself, for chains
/// without the identity filter.
fn authz_filter_connection() -> meshward_envoy::FilterSpec {
    meshward_envoy::FilterSpec {
        plugin_config: authz_filter_config(&serde_json::json!({"cedar": {"policies": ORDERS}})),
        ..authz_filter(ORDERS)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_closed_in_envoy() {
    let (rig, envoy) = envoy_trap(false).await;
    for _ in 0..3 {
        for (p, r) in probe_all(&rig).await {
            assert_eq!(r, Ok(503), "{p:?} after the trap");
        }
    }
    // Envoy names the failed callback, not the plugin.
    assert!(
        envoy
            .logs()
            .contains("proxy_on_request_headers failed: Uncaught RuntimeError"),
        "{}",
        envoy.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_open_only_where_configured_in_envoy() {
    let (rig, envoy) = envoy_trap(true).await;
    let stat = |name: &'static str| {
        let envoy = &envoy;
        async move { envoy.stat(name).await.unwrap().unwrap_or(0) }
    };
    let passed = stat("wasmcustom.fault_filter_passed").await;
    let decided = stat("wasmcustom.meshward_authz_allowed").await
        + stat("wasmcustom.meshward_authz_denied").await;
    // The failed filter is skipped; the authorization filter still decides
    // every request, so nothing policy denies gets through.
    for _ in 0..3 {
        assert_decided_by_policy("after the trap, fail open", &probe_all(&rig).await);
    }
    // Counted: every request since the trap skipped the failed filter (its
    // own counter stands still) and was decided by the authorization filter.
    assert_eq!(stat("wasmcustom.fault_filter_passed").await, passed);
    let decided_after = stat("wasmcustom.meshward_authz_allowed").await
        + stat("wasmcustom.meshward_authz_denied").await;
    assert_eq!(decided_after - decided, 3 * PROBES.len() as u64);
}

/// What one load worker saw: each probe with its status or error.
type Answers = Vec<(Probe, Result<u16, String>)>;

/// Runs `workers` clients sending the probes in turn until `stop`, each
/// request on a new connection; returns every (probe, result) in order per
/// worker.
fn load(
    rig: &Arc<Rig>,
    workers: usize,
    stop: &Arc<AtomicBool>,
    max: usize,
) -> Vec<tokio::task::JoinHandle<Answers>> {
    (0..workers)
        .map(|w| {
            let rig = rig.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for p in PROBES.iter().cycle().skip(w).take(max) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = rig.send(p).await;
                    if r.is_err() {
                        // Nothing listens (a restart): do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    out.push((*p, r));
                }
                out
            })
        })
        .collect()
}

/// A policy that also lets the backend read `/api/*`.
fn orders_and_backend() -> String {
    format!(
        "{ORDERS}\n@id(\"backend-reads-api\")\npermit (principal == Mesh::Workload::\"{}\", action in Mesh::Action::\"read\", resource)\nwhen {{ context.path like \"/api/*\" }};\n",
        rig::BACKEND
    )
}

async fn wait_stat(envoy: &meshward_envoy::Envoy, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if envoy.stat(name).await.unwrap().unwrap_or(0) >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {at_least}:\n{}",
            envoy.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks what the load workers saw across a change from the orders
/// policy (A) to [`orders_and_backend`] (B): no request failed, and each was
/// decided wholly by A or by B, A before B.
async fn assert_decided_by_a_then_b(workers: Vec<tokio::task::JoinHandle<Answers>>) {
    let mut total = 0;
    for w in workers {
        let results = w.await.unwrap();
        total += results.len();
        let mut seen_b = false;
        for (p, r) in &results {
            // Each request is decided wholly by A or by B: the backend's
            // read is the only request they differ on, whatever identity
            // header it forges (the filters ignore it).
            let differs = p.peer == Peer::Backend && p.method == "GET" && p.path == "/api/orders";
            let status = r
                .as_ref()
                .unwrap_or_else(|e| panic!("{p:?} failed under a config change: {e}"));
            if differs {
                assert!(matches!(status, 200 | 403), "{p:?}: {status}");
                if *status == 200 {
                    seen_b = true;
                } else {
                    // Once a new connection got B, later ones never get A.
                    assert!(!seen_b, "{p:?} decided by the old policy after the new one");
                }
            } else {
                assert_eq!(*status, if p.allowed { 200 } else { 403 }, "{p:?}");
            }
        }
        assert!(seen_b, "the new policy never applied");
    }
    assert!(total >= 20, "only {total} requests under load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_change_under_load_fails_no_request_in_envoy() {
    let rig = Arc::new(Rig::new().await);
    let identity =
        || identity_filter(serde_json::json!({"allowed_trust_domains": ["example.org"]}));
    let config = rig.bootstrap(&[identity(), authz_filter(ORDERS)], Listener::Lds);
    let envoy = rig.start(&config).await;
    wait_stat(&envoy, "listener_manager.lds.update_success", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&rig, 2, &stop, 400);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A -> B: the backend may now read the API.
    let b = orders_and_backend();
    rig.write_lds(&[identity(), authz_filter(&b)]);
    wait_stat(&envoy, "listener_manager.lds.update_success", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // B -> invalid: refused, B kept.
    rig.write_lds(&[
        identity(),
        authz_filter("permit(principal, action, resource) when { context.nope };"),
    ]);
    wait_stat(&envoy, "listener_manager.lds.update_rejected", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    assert_decided_by_a_then_b(workers).await;
    assert!(
        envoy.logs().contains("context.nope") || envoy.logs().contains("configuration refused"),
        "{}",
        envoy.logs()
    );
    // After the rejected update, still B.
    let backend_read = PROBES
        .iter()
        .find(|p| p.peer == Peer::Backend && p.headers.is_empty())
        .unwrap();
    assert_eq!(rig.send(backend_read).await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_allows_nothing_policy_denies_in_envoy() {
    let rig = Arc::new(Rig::new().await);
    let config = rig.bootstrap(
        &[
            identity_filter(serde_json::json!({"allowed_trust_domains": ["example.org"]})),
            authz_filter(ORDERS),
        ],
        Listener::Static,
    );
    let envoy = rig.start(&config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&rig, 2, &stop, 4000);
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(envoy);
    // The clients keep sending while nothing listens and while the new
    // Envoy starts, compiles its filters and opens the listener.
    let envoy = rig.start(&config).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    assert_nothing_denied_allowed_across_a_restart(workers).await;
    assert_decided_by_policy("after the restart", &probe_all(&rig).await);
    drop(envoy);
}

/// Checks what the load workers saw across a restart: every answer is the
/// policy's (or a 503 while the proxy starts), never a 200 the policy
/// denies; some requests found nothing listening, and some were answered
/// after that.
async fn assert_nothing_denied_allowed_across_a_restart(
    workers: Vec<tokio::task::JoinHandle<Answers>>,
) {
    let (mut ok, mut refused, mut after_gap) = (0, 0, 0);
    for w in workers {
        let mut gap = false;
        for (p, r) in w.await.unwrap() {
            match r {
                Ok(status) => {
                    assert!(p.allowed || status != 200, "{p:?} allowed across a restart");
                    assert!(matches!(status, 200 | 403 | 503), "{p:?}: {status}");
                    ok += 1;
                    if gap {
                        after_gap += 1;
                    }
                }
                // Refused or reset while no Envoy listened: no decision.
                Err(_) => {
                    refused += 1;
                    gap = true;
                }
            }
        }
    }
    assert!(
        ok >= 10 && refused > 0,
        "{ok} answered, {refused} refused: no restart seen"
    );
    assert!(
        after_gap > 0,
        "no request answered after the restart ({ok} answered before)"
    );
}

// ---------------------------------------------------------------- data path

/// The probe with the trap header (instead of its own headers: a trapping
/// request is answered by the host, whatever else it carries).
fn trapping(p: &Probe) -> Probe {
    Probe {
        headers: &[TRAP],
        ..*p
    }
}

/// The data path with the fault filter then the authorization filter,
/// deciding the probes by policy before any trap.
async fn data_path_trap(fail_open: bool) -> (Rig, DataPath) {
    let rig = Rig::new().await;
    let dp = DataPath::start(data_path::config(
        &rig,
        vec![
            data_path::filter(&fault_filter("trap-on-header"), fail_open),
            data_path::filter(&authz_filter_connection(), false),
        ],
    ))
    .await
    .unwrap();
    assert_decided_by_policy("before the trap", &probe_all(&rig).await);
    (rig, dp)
}

fn policy_status(p: &Probe) -> u16 {
    if p.allowed { 200 } else { 403 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_closed_in_the_data_path() {
    let (rig, dp) = data_path_trap(false).await;
    let forwarded = dp.metrics().requests("forwarded");
    let rounds = 3;
    for _ in 0..rounds {
        for p in PROBES {
            // The trapping request is answered 503 and reaches nobody,
            // whatever the policy says of it.
            assert_eq!(rig.send(&trapping(p)).await, Ok(503), "{p:?} with a trap");
            // The failed instance is replaced, not reused: the next
            // request is decided by policy again.
            assert_eq!(
                rig.send(p).await,
                Ok(policy_status(p)),
                "{p:?} after a trap"
            );
        }
    }
    let allowed = PROBES.iter().filter(|p| p.allowed).count() as u64;
    assert_eq!(
        dp.metrics().requests("forwarded") - forwarded,
        rounds * allowed,
        "a trapping request reached the application"
    );
    // Counted, as failures and as the reason for the denials.
    let trapped = rounds * PROBES.len() as u64;
    let text = dp.metrics().render();
    assert!(
        text.contains(&format!(
            "meshward_filter_failures_total{{filter=\"meshward_fault\",fail_open=\"false\"}} {trapped}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "meshward_decisions_total{{decision=\"deny\",reason=\"filter_failed\"}} {trapped}"
        )),
        "{text}"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_open_only_where_configured_in_the_data_path() {
    let (rig, dp) = data_path_trap(true).await;
    for _ in 0..2 {
        for p in PROBES {
            // Past the failed filter the authorization filter still
            // decides: nothing the policy denies gets through.
            assert_eq!(
                rig.send(&trapping(p)).await,
                Ok(policy_status(p)),
                "{p:?} with a trap, fail open"
            );
        }
    }
    let text = dp.metrics().render();
    assert!(
        text.contains(&format!(
            "meshward_filter_failures_total{{filter=\"meshward_fault\",fail_open=\"true\"}} {}",
            2 * PROBES.len()
        )),
        "{text}"
    );
    assert!(!text.contains("fail_open=\"false\""), "{text}");
    assert!(!text.contains("filter_failed"), "{text}");
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_is_refused_and_the_last_valid_kept_in_the_data_path() {
    let rig = Rig::new().await;
    let identity = |config: serde_json::Value| data_path::filter(&identity_filter(config), false);
    let good_identity = || identity(serde_json::json!({"allowed_trust_domains": ["example.org"]}));
    let authz = |policies: &str| data_path::filter(&authz_filter(policies), false);
    let bad_policy = "permit(principal, action, resource) when { context.nope };";
    // At start: refused with the filter's name and reason; nothing listens.
    let e = DataPath::start(data_path::config(
        &rig,
        vec![good_identity(), authz(bad_policy)],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("filter `meshward_authz`"), "{e}");
    assert!(rig.send(&PROBES[0]).await.is_err(), "something listens");
    let dp = DataPath::start(data_path::config(
        &rig,
        vec![good_identity(), authz(ORDERS)],
    ))
    .await
    .unwrap();
    assert_decided_by_policy("at start", &probe_all(&rig).await);
    // On reload: each refused whole, with the filter that refused it; the
    // running configuration decides every request meanwhile.
    let refused = [
        vec![good_identity(), authz(bad_policy)],
        vec![
            identity(serde_json::json!({"allowed_trust_domains": "example.org"})),
            authz(ORDERS),
        ],
        vec![
            data_path::filter(&fault_filter("reject"), false),
            good_identity(),
            authz(ORDERS),
        ],
        vec![
            data_path::filter(&fault_filter("trap-on-configure"), true),
            good_identity(),
            authz(ORDERS),
        ],
    ];
    let n = refused.len();
    for (i, filters) in refused.into_iter().enumerate() {
        let e = dp
            .reload(data_path::config(&rig, filters))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("filter `meshward_"), "{i}: {e}");
        assert_decided_by_policy(&format!("after refused reload {i}"), &probe_all(&rig).await);
    }
    let text = dp.metrics().render();
    assert!(
        text.contains(&format!(
            "meshward_config_reloads_total{{result=\"failed\"}} {n}"
        )),
        "{text}"
    );
    assert!(
        text.contains("meshward_config_reloads_total{result=\"ok\"} 0"),
        "{text}"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_change_under_load_fails_no_request_in_the_data_path() {
    let rig = Arc::new(Rig::new().await);
    let chain = |policies: &str| {
        vec![
            data_path::filter(
                &identity_filter(serde_json::json!({"allowed_trust_domains": ["example.org"]})),
                false,
            ),
            data_path::filter(&authz_filter(policies), false),
        ]
    };
    let dp = DataPath::start(data_path::config(&rig, chain(ORDERS)))
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&rig, 2, &stop, 4000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A -> B: the backend may now read the API.
    dp.reload(data_path::config(&rig, chain(&orders_and_backend())))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // B -> invalid: refused, B kept.
    dp.reload(data_path::config(
        &rig,
        chain("permit(principal, action, resource) when { context.nope };"),
    ))
    .await
    .unwrap_err();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    assert_decided_by_a_then_b(workers).await;
    let backend_read = PROBES
        .iter()
        .find(|p| p.peer == Peer::Backend && p.headers.is_empty())
        .unwrap();
    assert_eq!(rig.send(backend_read).await, Ok(200));
    let text = dp.metrics().render();
    assert!(
        text.contains("meshward_config_reloads_total{result=\"ok\"} 1")
            && text.contains("meshward_config_reloads_total{result=\"failed\"} 1"),
        "{text}"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_allows_nothing_policy_denies_in_the_data_path() {
    let rig = Arc::new(Rig::new().await);
    let filters = [
        (
            identity_filter(serde_json::json!({"allowed_trust_domains": ["example.org"]})),
            false,
        ),
        (authz_filter(ORDERS), false),
    ];
    let max = Duration::from_secs(600);
    let first = tokio::task::block_in_place(|| data_path::Process::start(&rig, &filters, max));
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&rig, 2, &stop, 4000);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Killed (SIGKILL, no drain) under load; the clients keep sending while
    // nothing listens and while the new process compiles its filters.
    drop(first);
    let second = tokio::task::block_in_place(|| data_path::Process::start(&rig, &filters, max));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    assert_nothing_denied_allowed_across_a_restart(workers).await;
    assert_decided_by_policy("after the restart", &probe_all(&rig).await);
    drop(second);
}
