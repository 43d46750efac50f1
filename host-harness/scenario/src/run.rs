//! Runs a scenario through the harness and compares what it saw with the
//! expectations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshward_harness::{
    End, Exchange, Host, HttpCallReply, HttpCallRequest, HttpStream, LogLevel, LogRecord, Plugin,
    PluginConfig, Response,
};

use crate::ScenarioError;
use crate::bootstrap::{Bootstrap, WasmEntry};
use crate::front;
use crate::outcome::Outcome;
use crate::spec::{Bytes, CalloutSpec, PluginSpec, ResponseSpec, Scenario, StepSpec};

/// Which module and plugin settings a scenario runs with.
#[derive(Clone, Debug, Default)]
pub struct Source {
    wasm: Option<PathBuf>,
    bootstrap: Option<Bootstrap>,
}

impl Source {
    /// The module and bootstrap the scenario names, relative to `base`
    /// (the scenario file's folder).
    pub fn from_scenario(scenario: &Scenario, base: &Path) -> Result<Self, ScenarioError> {
        let mut source = Self {
            wasm: scenario.wasm.as_ref().map(|w| base.join(w)),
            bootstrap: None,
        };
        if let Some(b) = &scenario.bootstrap {
            source = source.with_bootstrap(&base.join(b))?;
        }
        Ok(source)
    }

    /// Takes the plugin settings from the `envoy.filters.http.wasm`
    /// entries of an Envoy bootstrap (and, unless `--wasm` gives one, the
    /// module from the first); entries with the same vm key share a VM.
    pub fn with_bootstrap(mut self, path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let bootstrap = Bootstrap::parse(&text)?;
        if self.wasm.is_none()
            && let Some(file) = bootstrap.filters.first().and_then(|f| f.filename.clone())
            && !file.contains("{{")
        {
            let base = path.parent().unwrap_or(Path::new("."));
            self.wasm = Some(base.join(file));
        }
        self.bootstrap = Some(bootstrap);
        Ok(self)
    }

    /// Uses this module, whatever the scenario or bootstrap says.
    pub fn with_wasm(mut self, path: &Path) -> Self {
        self.wasm = Some(path.to_owned());
        self
    }
}

/// What one step showed and how it differed from its expectation.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The step's name (or its number).
    pub name: String,
    /// What the harness showed.
    pub seen: Outcome,
    /// How many fields were compared.
    pub compared: usize,
    /// `(field, readable difference)` for each field that differed.
    pub differences: Vec<(String, String)>,
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The filter's start-up log lines.
    pub startup_logs: Vec<String>,
    /// One entry per step.
    pub steps: Vec<StepReport>,
}

impl Report {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.differences.is_empty())
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for step in &self.steps {
            if step.differences.is_empty() {
                writeln!(f, "ok    {} ({} fields)", step.name, step.compared)?;
                continue;
            }
            writeln!(f, "FAIL  {}", step.name)?;
            for (field, diff) in &step.differences {
                writeln!(f, "  {field}: {}", diff.replace('\n', "\n  "))?;
            }
        }
        let failed = self
            .steps
            .iter()
            .filter(|s| !s.differences.is_empty())
            .count();
        writeln!(
            f,
            "{} steps, {} failed, {} fields compared",
            self.steps.len(),
            failed,
            self.steps.iter().map(|s| s.compared).sum::<usize>()
        )
    }
}

/// The answer Envoy's async client gives a callout whose connection was
/// refused (Envoy 1.40, recorded).
fn connect_failure() -> Response {
    let body = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
    Response::new(503)
        .header("content-length", body.len().to_string())
        .header("content-type", "text/plain")
        .body(body)
}

/// What a callout to a cluster scripted by `spec` gets.
fn callout_reply(spec: &CalloutSpec) -> Result<HttpCallReply, ScenarioError> {
    Ok(match spec.fail.as_deref() {
        Some("timeout") => HttpCallReply::Timeout,
        Some("reset") => HttpCallReply::Failure,
        Some("connect") => HttpCallReply::Response(connect_failure()),
        Some(other) => return Err(ScenarioError::CalloutFailure(other.to_owned())),
        None => {
            let body = spec.body.clone().unwrap_or_default().0;
            let mut r = Response::new(spec.status.unwrap_or(200));
            for (k, v) in &spec.headers {
                r = r.header(k, v.as_bytes());
            }
            // The router stamps a callout's answer as any upstream's.
            r = r
                .header("content-length", body.len().to_string())
                .header("x-envoy-upstream-service-time", "0");
            HttpCallReply::Response(r.body(body))
        }
    })
}

/// Callouts are held when made and answered once the client's request
/// (or the upstream's response) has been fed in whole: over a network the
/// answer comes after the bytes the client wrote with the headers, so
/// Envoy holds that body for a filter waiting on its callout.
fn held(_: &HttpCallRequest) -> HttpCallReply {
    HttpCallReply::Pending
}

/// How many rounds of callouts one answer may start before the run stops
/// answering (a filter calling out from every answer would never end).
const CALLOUT_ROUNDS: usize = 64;

/// Answers the callouts `stream`'s plugin holds with `replies`, round
/// after round (an answer may start another callout).
fn answer_stream(stream: &mut HttpStream<'_>, replies: &BTreeMap<String, HttpCallReply>) {
    for _ in 0..CALLOUT_ROUNDS {
        let pending = stream.pending_http_calls();
        if pending.is_empty() {
            return;
        }
        for (token, request) in pending {
            let reply = replies
                .get(&request.upstream)
                .cloned()
                .unwrap_or(HttpCallReply::Failure);
            let _ = stream.complete_http_call(token, reply);
        }
    }
}

/// Answers the callouts `plugin` holds outside a stream (ticks).
fn answer_plugin(plugin: &mut Plugin, replies: &BTreeMap<String, HttpCallReply>) {
    for _ in 0..CALLOUT_ROUNDS {
        let pending = plugin.pending_http_calls();
        if pending.is_empty() {
            return;
        }
        for (token, request) in pending {
            let reply = replies
                .get(&request.upstream)
                .cloned()
                .unwrap_or(HttpCallReply::Failure);
            let _ = plugin.complete_http_call(token, reply);
        }
    }
}

/// What makes Envoy share a VM: `vm_id`, VM configuration and module.
type VmKey = (String, String, Option<String>);

/// The plugins of a run, as Envoy would hold them in its worker: one VM
/// per vm key (`vm_id`, VM configuration and module), each wasm filter of
/// the bootstrap a plugin (root context) in its key's VM.
struct Vms {
    vms: Vec<Plugin>,
    /// Per wasm filter, in bootstrap order: its VM, root context id and
    /// listener.
    filters: Vec<(usize, u32, String)>,
    /// How each callout cluster answers now.
    replies: BTreeMap<String, HttpCallReply>,
}

impl Vms {
    fn start(scenario: &Scenario, source: &Source, wasm: &Path) -> Result<Self, ScenarioError> {
        let filter = Host::new()?.load_file(wasm)?;
        let entries = source
            .bootstrap
            .as_ref()
            .map(|b| b.filters.clone())
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| vec![WasmEntry::default()]);
        let pick = |a: &Option<String>, b: &String| a.clone().unwrap_or_else(|| b.clone());
        let mut groups: Vec<(VmKey, Vec<PluginConfig>)> = Vec::new();
        let mut filters = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            // The scenario's plugin settings are the first filter's.
            let p = if i == 0 {
                scenario.plugin.clone()
            } else {
                PluginSpec::default()
            };
            let vm_id = pick(&p.vm_id, &e.vm_id);
            let vm_configuration = pick(&p.vm_configuration, &e.vm_configuration);
            let mut config = PluginConfig::new()
                .name(&pick(&p.name, &e.name))
                .root_id(&pick(&p.root_id, &e.root_id))
                .vm_id(&vm_id)
                .configuration(pick(&p.configuration, &e.configuration))
                .vm_configuration(vm_configuration.clone())
                .fail_open(p.fail_open || e.fail_open)
                .log_level(LogLevel::Info)
                .envoy_startup(scenario.front)
                .trace(true);
            for cluster in scenario.callouts.keys() {
                config = config.http_upstream(cluster, held);
            }
            // Envoy shares a VM between plugins with the same vm key.
            let key = (vm_id, vm_configuration, e.filename.clone());
            let vm = match groups.iter().position(|(k, _)| *k == key) {
                Some(vm) => vm,
                None => {
                    groups.push((key, Vec::new()));
                    groups.len() - 1
                }
            };
            let Some((_, configs)) = groups.get_mut(vm) else {
                continue;
            };
            configs.push(config);
            filters.push((vm, configs.len() as u32, e.listener.clone()));
        }
        let vms = groups
            .into_iter()
            .map(|(_, configs)| filter.start_vm(configs))
            .collect::<Result<_, _>>()?;
        let mut replies = BTreeMap::new();
        for (cluster, spec) in &scenario.callouts {
            replies.insert(cluster.clone(), callout_reply(spec)?);
        }
        Ok(Self {
            vms,
            filters,
            replies,
        })
    }

    /// The VM and root context of the filter a request to `listener`
    /// reaches (the first filter when none is named).
    fn pick(&mut self, listener: Option<&str>) -> Result<&mut Plugin, ScenarioError> {
        let found = self
            .filters
            .iter()
            .find(|(_, _, l)| listener.is_none_or(|want| want == l))
            .cloned();
        let Some((vm, root, _)) = found else {
            return Err(ScenarioError::Bootstrap(format!(
                "no wasm filter on listener `{}`",
                listener.unwrap_or_default()
            )));
        };
        let plugin = self
            .vms
            .get_mut(vm)
            .ok_or(ScenarioError::Bootstrap("no VM for the filter".into()))?;
        plugin.select_root(root)?;
        Ok(plugin)
    }

    fn set_http_upstream(
        &mut self,
        cluster: &str,
        spec: &CalloutSpec,
    ) -> Result<(), ScenarioError> {
        self.replies
            .insert(cluster.to_owned(), callout_reply(spec)?);
        for vm in &mut self.vms {
            vm.set_http_upstream(cluster, held);
        }
        Ok(())
    }

    /// The log lines of every VM since the last call, VM by VM.
    fn logs(&mut self) -> Vec<String> {
        self.vms.iter_mut().flat_map(info_logs).collect()
    }

    /// The start-up log lines in Envoy's order: what each VM key's
    /// main-thread passes logged, key by key, then the workers' VMs. (Exact
    /// when the filters of one key are next to each other in the chain
    /// order, as Envoy interleaves keys filter by filter.)
    fn startup_logs(&mut self) -> Vec<String> {
        let mut main = Vec::new();
        let mut workers = Vec::new();
        for vm in &mut self.vms {
            let mut logs = vm.take_logs();
            let worker = logs.split_off(vm.main_thread_log_count().min(logs.len()));
            main.extend(info(logs));
            workers.extend(info(worker));
        }
        main.append(&mut workers);
        main
    }
}

/// Runs `scenario` with `source` and compares every step.
pub fn run(scenario: &Scenario, source: &Source) -> Result<Report, ScenarioError> {
    let wasm = source.wasm.as_ref().ok_or(ScenarioError::NoModule)?;
    let mut vms = Vms::start(scenario, source, wasm)?;
    let mut report = Report {
        startup_logs: vms.startup_logs(),
        steps: Vec::new(),
    };
    if let Some(startup) = &scenario.startup {
        let expect = Outcome {
            logs: Some(startup.clone()),
            ..Outcome::default()
        };
        let seen = Outcome {
            logs: Some(report.startup_logs.clone()),
            ..Outcome::default()
        };
        report.steps.push(StepReport {
            name: "start-up".into(),
            differences: expect.differences(&seen, &[]),
            seen,
            compared: 1,
        });
    }
    let default_upstream = scenario.upstream.clone().unwrap_or_default();
    for (i, step) in scenario.steps.iter().enumerate() {
        for (cluster, spec) in &step.callouts {
            vms.set_http_upstream(cluster, spec)?;
        }
        if let Some(ms) = step.advance_ms {
            for vm in &mut vms.vms {
                vm.advance(Duration::from_millis(ms));
                answer_plugin(vm, &vms.replies);
            }
        }
        let mut seen = match &step.request {
            Some(_) => {
                let replies = vms.replies.clone();
                let plugin = vms.pick(step.listener.as_deref())?;
                send(plugin, scenario, source, step, &default_upstream, &replies)
            }
            None => Outcome::default(),
        };
        seen.logs = Some(vms.logs());
        for cluster in step.callouts.keys() {
            if let Some(spec) = scenario.callouts.get(cluster) {
                vms.set_http_upstream(cluster, spec)?;
            }
        }
        let expect = step.expect.clone().unwrap_or_default();
        let compared = count(&expect);
        report.steps.push(StepReport {
            name: step
                .name
                .clone()
                .unwrap_or_else(|| format!("step {}", i + 1)),
            differences: expect.differences(&seen, &[]),
            seen,
            compared,
        });
    }
    Ok(report)
}

fn count(o: &Outcome) -> usize {
    [
        o.status.is_some(),
        o.headers.is_some(),
        o.body.is_some(),
        o.reset.is_some(),
        o.logs.is_some(),
        o.forwarded.is_some(),
        o.upstream_headers.is_some(),
        o.upstream_body.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count()
}

/// The filter's log lines at `info` and above (what Envoy prints at its
/// default level), taken from the plugin.
fn info_logs(plugin: &mut Plugin) -> Vec<String> {
    info(plugin.take_logs())
}

fn info(logs: Vec<LogRecord>) -> Vec<String> {
    logs.into_iter()
        .filter(|l| l.level >= LogLevel::Info)
        .map(|l| l.message)
        .collect()
}

fn send(
    plugin: &mut Plugin,
    scenario: &Scenario,
    source: &Source,
    step: &StepSpec,
    default_upstream: &ResponseSpec,
    replies: &BTreeMap<String, HttpCallReply>,
) -> Outcome {
    let Some(request) = &step.request else {
        return Outcome::default();
    };
    let head = request.method.eq_ignore_ascii_case("HEAD");
    let upstream = step.upstream.clone().unwrap_or(default_upstream.clone());
    let direct = source
        .bootstrap
        .as_ref()
        .and_then(|b| b.direct_response(&request.path))
        .filter(|_| scenario.front)
        .cloned();
    let headers = if scenario.front {
        front::request_headers(request)
    } else {
        let mut h = meshward_harness::headers([
            (":method", request.method.as_str()),
            (":path", request.path.as_str()),
        ]);
        h.extend(front::to_harness(&request.headers));
        h
    };
    let body = request.body.clone().unwrap_or_default().0;
    let mut stream = plugin.stream();
    let has_body = !body.is_empty() || request.chunked;
    stream.request_headers(headers, !has_body);
    if has_body {
        if !body.is_empty() {
            stream.request_body(&body, false);
        }
        if request.trailers.is_empty() {
            // Envoy's HTTP/1 codec ends a body with an empty data frame.
            stream.request_body(&[], true);
        } else {
            stream.request_trailers(front::to_harness(&request.trailers));
        }
    }
    answer_stream(&mut stream, replies);
    let forwarded = stream.request_complete() && direct.is_none();
    if stream.request_complete() {
        let response = match &direct {
            Some(d) => Response::new(d.status)
                .header("content-length", d.body.len().to_string())
                .header("content-type", "text/plain")
                .body(if head { String::new() } else { d.body.clone() }),
            None => front::upstream_response(&upstream, head),
        };
        let has_trailers = !response.trailers.is_empty();
        let has_body = !response.body.is_empty();
        let mut map = vec![(":status".to_owned(), response.status.to_string().into())];
        map.extend(response.headers.iter().cloned());
        stream.response_headers(map, !has_body && !has_trailers);
        if has_body && direct.is_some() {
            // A direct response is one frame, not the codec's data + end.
            stream.response_body(&response.body, !has_trailers);
        } else if has_body {
            // Envoy's HTTP/1 codec ends a body with an empty data frame.
            stream.response_body(&response.body, false);
            if !has_trailers {
                stream.response_body(&[], true);
            }
        }
        if has_trailers {
            stream.response_trailers(response.trailers.clone());
        }
        answer_stream(&mut stream, replies);
    }
    let exchange: Exchange = stream.finish();
    observe(scenario.front, &exchange, forwarded, head)
}

/// What the client and upstream saw (the logs are gathered by the caller).
fn observe(front_on: bool, exchange: &Exchange, forwarded: bool, head: bool) -> Outcome {
    let forwarded = forwarded && exchange.forwarded();
    let (status, headers, body) = match &exchange.response {
        Some(r) => {
            let headers = if front_on {
                front::client_headers(r, forwarded && exchange.local_reply.is_none(), head)
            } else {
                front::from_harness(&r.headers)
            };
            (r.status, headers, Bytes::from(r.body.clone()))
        }
        None => (0, Vec::new(), Bytes::default()),
    };
    let upstream = exchange.upstream_request.as_ref().filter(|_| forwarded);
    Outcome {
        status: Some(status),
        headers: Some(headers),
        body: Some(body),
        reset: Some(exchange.end != End::Completed),
        logs: None,
        forwarded: Some(forwarded),
        upstream_headers: upstream.map(|m| {
            if front_on {
                let mut h = front::upstream_wire(&m.headers);
                h.extend(front::from_harness(&m.trailers));
                h
            } else {
                front::from_harness(&m.headers)
            }
        }),
        upstream_body: upstream.map(|m| Bytes::from(m.body.clone())),
    }
}
