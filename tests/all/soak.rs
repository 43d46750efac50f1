//! The soak (issue 14): real Envoy with both filters, and the reference
//! data path with the same two, each under bounded load on 127.0.0.1, then
//! the same probes as at the start. Checked: no status but the policy's
//! (200 or 403) and no failed request; the proxy's resident memory within a
//! stated bound of its value after warm-up (and Envoy's allocator heap, and
//! the data path's filters' resident linear memory); the same decision for
//! every probe at the end as at the start. For Envoy the filters' linear
//! memory is bounded in the harness (`harness_soak`): Envoy 1.40 reports no
//! per-VM memory, and V8 maps linear memory outside Envoy's allocator, so
//! it shows only in the resident figure.
//!
//! `MESHWARD_SOAK_SECS` sets the duration (30 s here; `scripts/soak` runs
//! 10 minutes); the figures are printed (`--nocapture`) for the record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meshward_filter_glue::PEER_ID_PROPERTY;
use meshward_harness::{FailureKind, Host, Limits, PluginConfig, Properties, Request};
use meshward_tests::{authz_filter_config, filter_wasm};

use crate::faults::data_path::Process;
use crate::faults::rig::{
    BACKEND, FRONTEND, Listener, ORDERS, PROBES, Peer, Rig, authz_filter, identity_filter,
};

/// Growth allowed over the warmed-up figures, for the whole soak.
const RSS_BOUND: u64 = 64 << 20;
const HEAP_BOUND: u64 = 32 << 20;
/// Growth allowed in the data path's filters' linear memory (the bytes
/// grown to, all VMs together) over its warmed-up figure.
const LINEAR_BOUND: u64 = 32 << 20;
/// The cap on each filter's linear memory in the harness soak.
const LINEAR_MEMORY_CAP: usize = 32 << 20;

fn soak_secs() -> u64 {
    std::env::var("MESHWARD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// Envoy's resident set in bytes, from `/proc` (the process whose command
/// line names this Envoy's configuration folder).
fn envoy_rss(envoy: &meshward_envoy::Envoy) -> Option<u64> {
    let dir = envoy.dir().display().to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&dir) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let kb: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            return Some(kb * 1024);
        }
    }
    None
}

async fn heap(envoy: &meshward_envoy::Envoy) -> u64 {
    envoy
        .stat("server.memory_allocated")
        .await
        .unwrap()
        .unwrap_or(0)
}

async fn decisions(rig: &Rig) -> Vec<Result<u16, String>> {
    let mut out = Vec::new();
    for p in PROBES {
        out.push(rig.send(p).await);
    }
    out
}

const MIB: f64 = 1048576.0;

/// What the soak's clients saw: requests sent, and every answer that was
/// not the policy's.
type LoadResult = (u64, Vec<String>);

/// Two clients sending the probes in turn, each on a new connection, until
/// `stop` (bounded in count as well as in time).
fn spawn_load(
    rig: &Arc<Rig>,
    secs: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<LoadResult>> {
    (0..2)
        .map(|w| {
            let rig = rig.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut n, mut bad) = (0_u64, Vec::new());
                for p in PROBES
                    .iter()
                    .cycle()
                    .skip(w)
                    .take(2_000 * usize::try_from(secs).unwrap())
                {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let want = if p.allowed { 200 } else { 403 };
                    match rig.send(p).await {
                        Ok(s) if s == want => {}
                        other => bad.push(format!("{p:?}: {other:?}")),
                    }
                    n += 1;
                }
                (n, bad)
            })
        })
        .collect()
}

async fn join_load(workers: Vec<tokio::task::JoinHandle<LoadResult>>) -> LoadResult {
    let (mut total, mut bad) = (0, Vec::new());
    for w in workers {
        let (n, b) = w.await.unwrap();
        total += n;
        bad.extend(b);
    }
    (total, bad)
}

fn assert_policy_decisions(start: &[Result<u16, String>]) {
    for (p, r) in PROBES.iter().zip(start) {
        assert_eq!(
            r.as_ref().ok(),
            Some(&if p.allowed { 200 } else { 403 }),
            "{p:?}"
        );
    }
}

/// Warm-up: a fifth of the run (at most a minute) before the baseline.
fn warm_up(secs: u64) -> Duration {
    Duration::from_secs((secs / 5).clamp(2, 60))
}

fn the_two_filters() -> [meshward_envoy::FilterSpec; 2] {
    [
        identity_filter(serde_json::json!({"allowed_trust_domains": ["example.org"]})),
        authz_filter(ORDERS),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_soak() {
    let secs = soak_secs();
    let rig = Arc::new(Rig::new().await);
    let config = rig.bootstrap(&the_two_filters(), Listener::Static);
    let envoy = rig.start(&config).await;
    let start = decisions(&rig).await;
    assert_policy_decisions(&start);
    let begun = Instant::now();
    let deadline = begun + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_load(&rig, secs, &stop);
    tokio::time::sleep(warm_up(secs)).await;
    let (rss0, heap0) = (envoy_rss(&envoy).unwrap(), heap(&envoy).await);
    let (mut rss_max, mut heap_max) = (rss0, heap0);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(envoy_rss(&envoy).unwrap());
        heap_max = heap_max.max(heap(&envoy).await);
    }
    stop.store(true, Ordering::Relaxed);
    let (total, bad) = join_load(workers).await;
    let took = begun.elapsed().as_secs_f64();
    let (rss1, heap1) = (envoy_rss(&envoy).unwrap(), heap(&envoy).await);
    let end = decisions(&rig).await;
    eprintln!(
        "soak (Envoy): {took:.0} s, {total} requests ({:.0}/s), {} unexpected; Envoy RSS {:.1} MiB after warm-up, {:.1} MiB max, {:.1} MiB at end; heap {:.1} -> {:.1} MiB (max {:.1})",
        total as f64 / took,
        bad.len(),
        rss0 as f64 / MIB,
        rss_max as f64 / MIB,
        rss1 as f64 / MIB,
        heap0 as f64 / MIB,
        heap1 as f64 / MIB,
        heap_max as f64 / MIB,
    );
    assert!(
        bad.is_empty(),
        "{} unexpected answers, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(start, end, "the decisions changed during the soak");
    assert!(
        rss_max <= rss0 + RSS_BOUND,
        "Envoy's RSS grew from {rss0} to {rss_max}"
    );
    assert!(
        heap_max <= heap0 + HEAP_BOUND,
        "Envoy's heap grew from {heap0} to {heap_max}"
    );
    assert!(total >= secs, "only {total} requests in {secs} s");
    assert!(
        !envoy.logs().contains("Function: proxy_on"),
        "a filter failed:\n{}",
        envoy.logs()
    );
}

/// A counter's value in Prometheus text (0 when absent).
fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The reference data path under the same load and probes, in a process
/// of its own (this test binary run again serving only the data path,
/// `faults/data_path.rs`), so that its memory is its own. Measured from
/// outside: its resident set (`/proc/<pid>/status`), and the filters'
/// linear memory as the resident pages of wasmtime's 4 GiB linear-memory
/// reservations (`/proc/<pid>/smaps`), both within stated bounds of their
/// values after warm-up; request counts from its `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_path_soak() {
    let secs = soak_secs();
    let rig = Arc::new(Rig::new().await);
    let filters = the_two_filters().map(|f| (f, false));
    let dp = tokio::task::block_in_place(|| {
        Process::start(&rig, &filters, Duration::from_secs(secs + 600))
    });
    let start = decisions(&rig).await;
    assert_policy_decisions(&start);
    let begun = Instant::now();
    let deadline = begun + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_load(&rig, secs, &stop);
    tokio::time::sleep(warm_up(secs)).await;
    let (rss0, linear0) = (dp.rss(), dp.linear_memory());
    let (mut rss_max, mut linear_max) = (rss0, linear0);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(dp.rss());
        let linear = dp.linear_memory();
        linear_max.count = linear_max.count.max(linear.count);
        linear_max.size = linear_max.size.max(linear.size);
        linear_max.resident = linear_max.resident.max(linear.resident);
    }
    stop.store(true, Ordering::Relaxed);
    let (total, bad) = join_load(workers).await;
    let took = begun.elapsed().as_secs_f64();
    let (rss1, linear1) = (dp.rss(), dp.linear_memory());
    let end = decisions(&rig).await;
    let metrics = dp.metrics_text().await;
    let forwarded = counter(&metrics, "meshward_requests_total{result=\"forwarded\"}");
    let local = counter(&metrics, "meshward_requests_total{result=\"local_reply\"}");
    let failures: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("meshward_filter_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let mib = |b: u64| b as f64 / MIB;
    eprintln!(
        "soak (data path): {took:.0} s, {total} requests ({:.0}/s), {} unexpected; data path: {forwarded} forwarded (200), {local} answered by a filter (403), {failures} filter failures; RSS {:.1} MiB after warm-up, {:.1} MiB max, {:.1} MiB at end; linear memory: {} VMs, {:.2} MiB grown ({:.2} MiB resident) after warm-up, {} VMs, {:.2} MiB ({:.2} MiB resident) max, {} VMs, {:.2} MiB ({:.2} MiB resident) at end",
        total as f64 / took,
        bad.len(),
        mib(rss0),
        mib(rss_max),
        mib(rss1),
        linear0.count,
        mib(linear0.size),
        mib(linear0.resident),
        linear_max.count,
        mib(linear_max.size),
        mib(linear_max.resident),
        linear1.count,
        mib(linear1.size),
        mib(linear1.resident),
    );
    assert!(
        bad.is_empty(),
        "{} unexpected answers, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(start, end, "the decisions changed during the soak");
    assert_eq!(failures, 0, "a filter failed:\n{metrics}");
    // Every request the clients sent was decided by the filters: the
    // probes, the start and end decisions and the load.
    assert!(
        forwarded + local >= total,
        "{forwarded} + {local} decided, {total} sent"
    );
    // The measurement sees the filters' memories (two filters, at least
    // one instance each), or it measures nothing.
    assert!(
        linear0.count >= 2 && linear0.resident > 0,
        "no linear memory found in the data path's maps: {linear0:?}"
    );
    assert!(
        rss_max <= rss0 + RSS_BOUND,
        "the data path's RSS grew from {rss0} to {rss_max}"
    );
    assert!(
        linear_max.size <= linear0.size + LINEAR_BOUND,
        "the filters' linear memory grew from {linear0:?} to {linear_max:?}"
    );
    assert!(total >= secs, "only {total} requests in {secs} s");
}

/// The authorization filter under the same probes in the harness, with
/// its linear memory capped: growth past the cap fails the VM, and so the
/// test. A tenth of the Envoy soak's duration in requests per second.
#[test]
fn harness_soak() {
    let host = Host::with_limits(Limits::default().memory_bytes(LINEAR_MEMORY_CAP)).unwrap();
    let mut plugin = host
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap()
        .start(
            PluginConfig::new()
                .configuration(authz_filter_config(&serde_json::json!({
                    "cedar": {"policies": ORDERS},
                    "peer_from": "identity_filter",
                })))
                .properties(&Properties::istio_inbound_mtls(FRONTEND, "")),
        )
        .unwrap();
    let rounds = soak_secs() * 20;
    let mut first = Vec::new();
    for round in 0..rounds {
        for (i, p) in PROBES.iter().enumerate() {
            let peer = if p.peer == Peer::Frontend {
                FRONTEND
            } else {
                BACKEND
            };
            let mut req = Request::new(p.method, p.path).property(PEER_ID_PROPERTY, peer);
            for (k, v) in p.headers {
                req = req.header(k, v);
            }
            let e = plugin.send(req);
            if let Some(f) = &e.failure {
                assert!(
                    !matches!(f.kind, FailureKind::MemoryLimit(_)),
                    "linear memory grew past the cap"
                );
                panic!("the VM failed: {f}");
            }
            assert_eq!(e.forwarded(), p.allowed, "{p:?}");
            if round == 0 {
                first.push(e.status());
            } else {
                assert_eq!(
                    e.status(),
                    first[i],
                    "{p:?}: a different answer in round {round}"
                );
            }
        }
    }
}
