//! The data path's Prometheus metrics, kept in atomics and written out in
//! the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets (seconds).
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b)
            && let Some(c) = self.counts.get(i)
        {
            c.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// How a request ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RequestResult {
    /// Forwarded and answered by the upstream.
    Forwarded,
    /// Answered by a filter (or the host failing closed).
    LocalReply,
    /// The upstream failed (503) or timed out (504).
    UpstreamError,
    /// The request was refused before the filters (too large, not text).
    Rejected,
    /// The filter chain reset, stalled or could not run.
    FilterError,
}

impl RequestResult {
    fn label(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::LocalReply => "local_reply",
            Self::UpstreamError => "upstream_error",
            Self::Rejected => "rejected",
            Self::FilterError => "filter_error",
        }
    }
}

/// Every metric the data path exports.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestResult, u64>>,
    decisions: Mutex<BTreeMap<(bool, String), u64>>,
    filter_failures: Mutex<BTreeMap<(String, bool), u64>>,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    connections: AtomicI64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    request_latency: Histogram,
    filter_latency: Histogram,
}

impl Metrics {
    pub(crate) fn request(&self, result: RequestResult, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry(result).or_default() += 1;
        }
        self.request_latency.observe(took);
    }

    /// A decision of the filter chain: allowed, or denied with `reason`.
    pub(crate) fn decision(&self, allowed: bool, reason: &str, took: Duration) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((allowed, reason.to_owned())).or_default() += 1;
        }
        self.filter_latency.observe(took);
    }

    /// A filter's VM failed on a request; `fail_open` says whether the
    /// request went on without it.
    pub(crate) fn filter_failure(&self, filter: &str, fail_open: bool) {
        if let Ok(mut m) = self.filter_failures.lock() {
            *m.entry((filter.to_owned(), fail_open)).or_default() += 1;
        }
    }

    pub(crate) fn handshake(&self, ok: bool) {
        if ok {
            self.handshakes_ok.fetch_add(1, Relaxed);
        } else {
            self.handshakes_failed.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    pub(crate) fn reload(&self, ok: bool) {
        if ok {
            self.reloads.fetch_add(1, Relaxed);
        } else {
            self.reload_failures.fetch_add(1, Relaxed);
        }
    }

    /// The number of requests that ended with `result`-like label
    /// (`forwarded`, `local_reply`, ...), for tests and tools.
    pub fn requests(&self, label: &str) -> u64 {
        self.requests
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.label() == label)
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP meshward_requests_total Requests by how they ended.\n# TYPE meshward_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(
                    out,
                    "meshward_requests_total{{result=\"{}\"}} {v}",
                    k.label()
                );
            }
        }
        out.push_str("# HELP meshward_decisions_total Filter chain decisions, with the deny reason the filter named.\n# TYPE meshward_decisions_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            for ((allowed, reason), v) in m.iter() {
                let decision = if *allowed { "allow" } else { "deny" };
                let _ = writeln!(
                    out,
                    "meshward_decisions_total{{decision=\"{decision}\",reason=\"{}\"}} {v}",
                    escape(reason)
                );
            }
        }
        out.push_str("# HELP meshward_filter_failures_total Filter VMs that failed on a request (trap, deadline, memory cap), by filter and by whether the request then went on (fail_open) or was answered 503.\n# TYPE meshward_filter_failures_total counter\n");
        if let Ok(m) = self.filter_failures.lock() {
            for ((filter, fail_open), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "meshward_filter_failures_total{{filter=\"{}\",fail_open=\"{fail_open}\"}} {v}",
                    escape(filter)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP meshward_tls_handshakes_total TLS handshakes on the listener.\n# TYPE meshward_tls_handshakes_total counter\nmeshward_tls_handshakes_total{{result=\"ok\"}} {}\nmeshward_tls_handshakes_total{{result=\"failed\"}} {}",
            self.handshakes_ok.load(Relaxed),
            self.handshakes_failed.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP meshward_connections_active Open downstream connections.\n# TYPE meshward_connections_active gauge\nmeshward_connections_active {}",
            self.connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP meshward_config_reloads_total Configuration reloads.\n# TYPE meshward_config_reloads_total counter\nmeshward_config_reloads_total{{result=\"ok\"}} {}\nmeshward_config_reloads_total{{result=\"failed\"}} {}",
            self.reloads.load(Relaxed),
            self.reload_failures.load(Relaxed)
        );
        self.request_latency.write(
            &mut out,
            "meshward_request_duration_seconds",
            "Time from request headers to the response, upstream included.",
        );
        self.filter_latency.write(
            &mut out,
            "meshward_filter_chain_duration_seconds",
            "Time spent in the filter chain per request.",
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request(RequestResult::Forwarded, Duration::from_micros(300));
        m.request(RequestResult::LocalReply, Duration::from_millis(3));
        m.decision(false, "no_permit", Duration::from_micros(50));
        m.filter_failure("fault", false);
        let text = m.render();
        assert!(
            text.contains("meshward_requests_total{result=\"forwarded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("meshward_decisions_total{decision=\"deny\",reason=\"no_permit\"} 1")
        );
        assert!(
            text.contains("meshward_filter_failures_total{filter=\"fault\",fail_open=\"false\"} 1"),
            "{text}"
        );
        assert!(text.contains("meshward_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("meshward_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("meshward_request_duration_seconds_count 2"));
        assert_eq!(m.requests("forwarded"), 1);
    }
}
