#!/usr/bin/env python3
"""The Envoy load bench: what meshward's filters cost inside real Envoy.

Run through scripts/bench-envoy, which builds the filters and issues the
SVIDs first. A load generator on 127.0.0.1 sends HTTP/1.1 keep-alive
requests to a client Envoy, which originates mTLS with a client SVID to a
server Envoy running one variant's filters; the server answers from the
route (direct_response), so no application adds noise. Variants alternate
within every round, so the ratios between them come from one run on one
machine state, which is what counts on a shared machine.

Per variant and server `--concurrency` it records: server CPU time per
request (utime+stime of the server process from /proc over the requests the
server counted), p50/p99 latency and throughput (from the generator),
resident memory after warm-up (VmRSS), Envoy's own `/memory` (what its
allocator holds), and the time from starting the process until admin
`/ready` answers LIVE. Standard library only.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WASM_DIR = ROOT / "target" / "wasm32-wasip1" / "filter"
TRUST_DOMAIN = "cluster.local"
CLIENT_ID = "spiffe://cluster.local/ns/ns0/sa/sa5"
SERVER_ID = "spiffe://cluster.local/ns/bench/sa/server"
# The request every variant must allow: policy p5's service account, host
# and path (see mesh_policies).
HOST = "svc5.ns0.svc.cluster.local:8080"
PATH = "/api/5/items?page=2"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- policies -------------------------------------------------------------


@dataclass
class Rule:
    """One policy of the mesh model, in a form both Cedar and RBAC render."""

    id: str
    effect: str  # "permit" | "forbid"
    cedar: str
    rbac_principal: dict
    rbac_permission: dict


def _any():
    return {"any": True}


def _header(name: str, match: dict) -> dict:
    return {"header": {"name": name, "string_match": match}}


def _methods(group: str) -> dict:
    names = ["GET", "HEAD", "OPTIONS"] if group == "read" else ["POST", "PUT", "PATCH", "DELETE"]
    return {"or_rules": {"rules": [_header(":method", {"exact": m}) for m in names]}}


def _host(host: str) -> dict:
    # Cedar's resource is the authority without its port; RBAC sees the
    # authority as sent.
    return {
        "or_rules": {
            "rules": [
                _header(":authority", {"exact": host}),
                _header(":authority", {"prefix": host + ":"}),
            ]
        }
    }


def _path_prefix(prefix: str) -> dict:
    return {"url_path": {"path": {"prefix": prefix}}}


def _principal_name(match: dict) -> dict:
    return {"authenticated": {"principal_name": match}}


def mesh_policies(n: int) -> list[Rule]:
    """The policy sets of benches/policy.rs (per-service-account permits on a
    host and path prefix, a tenth namespace-wide read permits, a tenth
    single-workload forbids, three global forbids), with namespaces assigned
    per ten policies so the permitted request (p5's) is the same at every
    size, and each policy also written as an Envoy RBAC policy.

    The RBAC form of `global-admin` denies every `/admin/` path: its JWT
    exception needs Envoy's jwt_authn metadata, and no bench request carries a
    token, so the two agree on every request sent here.
    """
    namespaces = max(1, n // 20)
    rules = [
        Rule(
            "global-ip",
            "forbid",
            '@id("global-ip") forbid(principal, action, resource) when { context has source_ip && context.source_ip.isInRange(ip("203.0.113.0/24")) };',
            {"direct_remote_ip": {"address_prefix": "203.0.113.0", "prefix_len": 24}},
            _any(),
        ),
        Rule(
            "global-debug",
            "forbid",
            '@id("global-debug") forbid(principal, action, resource) when { context.headers.hasTag("x-debug") && context.headers.getTag("x-debug") == "on" };',
            {"any": True},
            _header("x-debug", {"exact": "on"}),
        ),
        Rule(
            "global-admin",
            "forbid",
            '@id("global-admin") forbid(principal, action, resource) when { context.path like "/admin/*" } unless { context has user && context.user.hasTag("groups") && context.user.getTag("groups").contains("admins") };',
            {"any": True},
            _path_prefix("/admin/"),
        ),
    ]
    for i in range(3, n):
        ns = (i // 10) % namespaces
        host = f"svc{i % 7}.ns{ns}.svc.cluster.local"
        group = "write" if i % 3 == 0 else "read"
        if i % 10 == 0:
            spiffe = f"spiffe://cluster.local/ns/ns{ns}/sa/sa{i}"
            rules.append(
                Rule(
                    f"p{i}",
                    "forbid",
                    f'@id("p{i}") forbid(principal == Mesh::Workload::"{spiffe}", action, resource);',
                    _principal_name({"exact": spiffe}),
                    _any(),
                )
            )
        elif i % 10 == 1:
            rules.append(
                Rule(
                    f"p{i}",
                    "permit",
                    f'@id("p{i}") permit(principal in Mesh::Namespace::"ns{ns}", action in Mesh::Action::"read", resource == Mesh::Host::"{host}") when {{ context.path like "/public/{i}/*" }};',
                    _principal_name({"safe_regex": {"regex": f"spiffe://[^/]+/ns/ns{ns}/.*"}}),
                    {"and_rules": {"rules": [_methods("read"), _host(host), _path_prefix(f"/public/{i}/")]}},
                )
            )
        else:
            rules.append(
                Rule(
                    f"p{i}",
                    "permit",
                    f'@id("p{i}") permit(principal in Mesh::ServiceAccount::"ns{ns}/sa{i}", action in Mesh::Action::"{group}", resource == Mesh::Host::"{host}") when {{ context.path like "/api/{i}/*" && context.mtls }};',
                    # An authenticated principal is an mTLS peer.
                    _principal_name({"suffix": f"/ns/ns{ns}/sa/sa{i}"}),
                    {"and_rules": {"rules": [_methods(group), _host(host), _path_prefix(f"/api/{i}/")]}},
                )
            )
    return rules


def cedar_text(rules: list[Rule]) -> str:
    return "\n".join(r.cedar for r in rules) + "\n"


def rbac_filters(rules: list[Rule]) -> list[dict]:
    """Cedar's forbid-overrides-permit, default deny: a DENY filter holding
    the forbids in front of an ALLOW filter holding the permits."""

    def rbac(action: str, effect: str) -> dict:
        policies = {
            r.id: {"permissions": [r.rbac_permission], "principals": [r.rbac_principal]}
            for r in rules
            if r.effect == effect
        }
        return {
            "name": "envoy.filters.http.rbac",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": action, "policies": policies},
            },
        }

    return [rbac("DENY", "forbid"), rbac("ALLOW", "permit")]


# --- variants -------------------------------------------------------------

ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def wasm_filter(wasm: Path, root_id: str, config: str, vm_id: str | None = None) -> dict:
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": root_id,
                "root_id": root_id,
                "fail_open": False,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": config,
                },
                "vm_config": {
                    "vm_id": vm_id or root_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm)}},
                },
            },
        },
    }


IDENTITY_CONFIG = json.dumps({"allowed_trust_domains": [TRUST_DOMAIN]})


# The `meshward` binary (`scripts/bench-envoy` builds it): the filter loads
# compiled policies, made by `meshward compile`.
MESHWARD = Path(os.environ.get("MESHWARD_BIN", ROOT / "target" / "debug" / "meshward"))


@functools.cache
def authz_config(n: int, peer_from: str) -> str:
    # Istio sidecars log at `warning`; denials only, as a production setting.
    config = json.dumps(
        {
            "cedar": {"policies": cedar_text(mesh_policies(n))},
            "peer_from": peer_from,
            "decision_log": "denies",
        }
    )
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(config)
        f.flush()
        out = subprocess.run([str(MESHWARD), "compile", f.name], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"meshward compile: {out.stderr.strip()}")
    return json.dumps(json.loads(out.stdout))


def chain_config(n: int) -> str:
    return json.dumps({"identity": json.loads(IDENTITY_CONFIG), "authz": json.loads(authz_config(n, "identity_filter"))})


# meshward's Envoy dynamic module (`scripts/build-native-module`): the same
# chain as `chain-10` natively, from the same JSON configuration.
NATIVE_MODULE = Path(os.environ.get("MESHWARD_NATIVE_MODULE",
                                    ROOT / "target" / "release" / "libmeshward_dynamic_module.so"))


def native_filter(config: str) -> dict:
    return {
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {
                "name": "meshward_dynamic_module",
                "do_not_close": True,
                "module": {"local": {"filename": str(NATIVE_MODULE)}},
            },
            "filter_name": "meshward",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": config},
        },
    }


@dataclass
class Variant:
    name: str
    label: str
    filters: list[dict]
    modules: list[Path] = field(default_factory=list)
    # Whether a request with `x-debug: on` must be denied (policy variants).
    enforces: bool = False


def variants(wasm_dir: Path, alts: list[tuple[str, Path]] = ()) -> list[Variant]:
    trivial = wasm_dir / "meshward_bench_trivial_filter.wasm"
    identity = wasm_dir / "meshward_identity_filter.wasm"
    authz = wasm_dir / "meshward_authz_filter.wasm"
    # The same filters without in-filter certificate and token checks
    # (`meshward-mtls-filter`): what a mesh whose peers Envoy verifies needs.
    mtls = wasm_dir / "meshward_mtls_filter.wasm"

    def idf():
        return wasm_filter(identity, "meshward_identity", IDENTITY_CONFIG)

    def azf(n, peer_from):
        return wasm_filter(authz, "meshward_authz", authz_config(n, peer_from))

    def shared_pair(n, module=authz):
        # Both plugins load the authorization module, which also serves the
        # identity root id: same code, vm_id and VM configuration, so Envoy
        # runs them in one VM.
        return [
            wasm_filter(module, "meshward_identity", IDENTITY_CONFIG, "meshward"),
            wasm_filter(module, "meshward_authz", authz_config(n, "identity_filter"), "meshward"),
        ]

    def chain(n, module=authz):
        # One plugin, one HTTP context: identity, then authorization.
        return [wasm_filter(module, "meshward", chain_config(n), "meshward")]

    # Experiments (`--experiments`): the same chain with other builds of the
    # modules (`--alt label=dir`), and with one vm_id for both plugins.
    extra = [
        Variant(
            "both-10-one-vm-id",
            "identity + authz, 10 policies, one vm_id",
            [
                wasm_filter(identity, "meshward_identity", IDENTITY_CONFIG, "meshward"),
                wasm_filter(authz, "meshward_authz", authz_config(10, "identity_filter"), "meshward"),
            ],
            [identity, authz],
            True,
        )
    ]
    # What a second VM of one module costs, and what sharing one saves:
    # the identity filter twice in the chain, in two VMs or in one (same
    # code, vm_id and VM configuration make Envoy reuse the VM).
    for name, label, ids in (
        ("identity-twice", "identity filter twice, two VMs", ("meshward_identity_a", "meshward_identity_b")),
        ("identity-twice-one-vm", "identity filter twice, one VM", ("meshward_identity", "meshward_identity")),
    ):
        extra.append(Variant(name, label, [wasm_filter(identity, "meshward_identity", IDENTITY_CONFIG, i) for i in ids],
                             [identity, identity]))
    for label, d in alts:
        ai, aa, at = (d / p.name for p in (identity, authz, trivial))
        if at.is_file():
            extra.append(Variant(f"trivial@{label}", f"trivial wasm filter, {label}",
                                 [wasm_filter(at, "bench_trivial", "")], [at]))
        if ai.is_file():
            extra.append(Variant(f"identity@{label}", f"identity filter, {label}",
                                 [wasm_filter(ai, "meshward_identity", IDENTITY_CONFIG)], [ai]))
        if aa.is_file():
            extra.append(Variant(f"chain-10@{label}", f"identity + authz in one context, 10 policies, {label}",
                                 chain(10, aa), [aa], True))
        if not (ai.is_file() and aa.is_file()):
            continue
        extra.append(
            Variant(
                f"both-10@{label}",
                f"identity + authz, 10 policies, {label}",
                [
                    wasm_filter(ai, "meshward_identity", IDENTITY_CONFIG),
                    wasm_filter(aa, "meshward_authz", authz_config(10, "identity_filter")),
                ],
                [ai, aa],
                True,
            )
        )
    return [
        Variant("none", "no filter", []),
        Variant("rbac-10", "Envoy RBAC, 10 policies", rbac_filters(mesh_policies(10)), enforces=True),
        Variant("rbac-1000", "Envoy RBAC, 1,000 policies", rbac_filters(mesh_policies(1000)), enforces=True),
        Variant(
            "trivial",
            "trivial wasm filter (sets one header)",
            [wasm_filter(trivial, "bench_trivial", "")],
            [trivial],
        ),
        Variant("identity", "identity filter", [idf()], [identity]),
        Variant("authz-10", "authz filter, 10 policies", [azf(10, "connection")], [authz], True),
        Variant(
            "both-10",
            "identity + authz, 10 policies",
            [idf(), azf(10, "identity_filter")],
            [identity, authz],
            True,
        ),
        Variant(
            "both-1000",
            "identity + authz, 1,000 policies",
            [idf(), azf(1000, "identity_filter")],
            [identity, authz],
            True,
        ),
        Variant("both-10-shared", "identity + authz, 10 policies, one module, one VM", shared_pair(10),
                [authz], True),
        Variant("chain-10", "identity + authz in one context (root id `meshward`), 10 policies", chain(10),
                [authz], True),
        Variant("chain-1000", "identity + authz in one context, 1,000 policies", chain(1000), [authz], True),
        Variant("mtls-10", "identity + authz in one context, mTLS-only module, 10 policies", chain(10, mtls),
                [mtls], True),
        Variant("mtls-1000", "identity + authz in one context, mTLS-only module, 1,000 policies",
                chain(1000, mtls), [mtls], True),
        Variant("native-10", "native dynamic module (identity + authz), 10 policies",
                [native_filter(chain_config(10))], [NATIVE_MODULE], True),
        Variant("native-1000", "native dynamic module, 1,000 policies",
                [native_filter(chain_config(1000))], [NATIVE_MODULE], True),
    ] + extra


# --- processes ------------------------------------------------------------


def fill(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{[A-Z_0-9]+\}\}", text)
    if left:
        raise SystemExit(f"bench-envoy: {template.name}: unfilled placeholders {sorted(set(left))}")
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Envoy:
    """One Envoy process, its admin address read from --admin-address-path."""

    def __init__(self, binary: Path, workdir: Path, name: str, config: str, concurrency: int):
        self.workdir = workdir
        self.name = name
        cfg = workdir / f"{name}.yaml"
        cfg.write_text(config)
        self.admin_path = workdir / f"{name}.admin"
        self.admin_path.unlink(missing_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--config-path", str(cfg),
                "--concurrency", str(concurrency),
                "--log-level", "warning",
                "--disable-hot-restart",
                "--admin-address-path", str(self.admin_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "wb"),
        )
        self.admin: tuple[str, int] | None = None

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from process start until admin /ready says LIVE."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            if self.admin is None and self.admin_path.exists():
                text = self.admin_path.read_text().strip()
                if text:
                    host, _, port = text.rpartition(":")
                    self.admin = (host, int(port))
            if self.admin is not None:
                try:
                    status, body = self.get("/ready")
                    if status == 200 and body.strip() == b"LIVE":
                        return time.monotonic() - self.started
                except OSError:
                    pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready within {timeout} s:\n{self.log_tail()}")

    def get(self, path: str) -> tuple[int, bytes]:
        assert self.admin is not None
        conn = http.client.HTTPConnection(*self.admin, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def counter(self, name: str) -> int:
        _, body = self.get(f"/stats?filter=^{re.escape(name)}$")
        for line in body.decode().splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def memory(self) -> dict:
        _, body = self.get("/memory")
        return {k: int(v) for k, v in json.loads(body).items()}

    def cpu_seconds(self) -> float:
        """utime+stime of the whole process. Summed from each thread's
        schedstat (the same CPU time in nanoseconds) when the kernel has it,
        since /proc/<pid>/stat counts in clock ticks (10 ms): too coarse for
        a few thousand requests of tens of microseconds."""
        total, tasks = 0, Path(f"/proc/{self.proc.pid}/task")
        try:
            for t in tasks.iterdir():
                total += int((t / "schedstat").read_text().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            pass
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        # Fields after the command name, which may hold spaces: utime and
        # stime are the 14th and 15th fields overall.
        rest = stat.rpartition(")")[2].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK

    def status_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def request(port: int, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", PATH, headers={"Host": HOST, **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


# --- load -----------------------------------------------------------------


@dataclass
class Load:
    requests: int
    non_2xx: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"wrk latency `{text}`")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(port: int, connections: int, seconds: float, pause_ms: int = 0) -> Load:
    script = []
    if pause_ms:
        # wrk waits this long after each response before the connection's
        # next request: a paced load, see `--pause-ms`.
        lua = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-envoy-pause-{pause_ms}.lua"
        lua.write_text(f"function delay() return {pause_ms} end\n")
        script = ["-s", str(lua)]
    out = subprocess.run(
        [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "5s", *script, "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}{PATH}",
        ],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not (total and rps and "50" in pct and "99" in pct):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return Load(
        requests=int(total.group(1)),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(g) for g in errs.groups()) if errs else 0,
        rps=float(rps.group(1)),
        p50_ms=_ms(pct["50"]),
        p99_ms=_ms(pct["99"]),
    )


def pygen(port: int, connections: int, seconds: float, pause_ms: int = 0) -> Load:
    """A fallback closed-loop generator when wrk is missing: slower than wrk
    (it saturates near a few thousand requests per second), so its
    throughput and latency are its own; CPU per request stays comparable."""
    latencies: list[float] = []
    bad = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        mine: list[float] = []
        nb, ne = 0, 0
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                conn.request("GET", PATH, headers={"Host": HOST})
                resp = conn.getresponse()
                resp.read()
                if not 200 <= resp.status < 400:
                    nb += 1
            except (OSError, http.client.HTTPException):
                ne += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                continue
            mine.append((time.perf_counter() - t) * 1e3)
            if pause_ms:
                time.sleep(pause_ms / 1e3)
        conn.close()
        with lock:
            latencies.extend(mine)
            bad[0] += nb
            bad[1] += ne

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    n = len(latencies)

    def q(p):
        return latencies[min(n - 1, int(p * n))] if n else 0.0

    return Load(n + bad[0], bad[0], bad[1], (n + bad[0]) / elapsed, q(0.5), q(0.99))


# --- the run --------------------------------------------------------------


@dataclass
class Sample:
    variant: str
    concurrency: int
    round: int
    load_avg: float
    ready_s: float
    rss_mib: float
    hwm_mib: float
    allocated_mib: float
    heap_mib: float
    server_requests: int
    cpu_us_per_request: float
    closed_cpu_us_per_request: float
    paced_rps: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


def measure(args, binary, workdir, v: Variant, conc: int, rnd: int, server_port: int,
            client_port: int, certs: Path, generate) -> Sample:
    config = fill(
        HERE / "server.yaml",
        {
            "LISTEN_PORT": str(server_port),
            "CA": str(certs / "ca.pem"),
            "CERT": str(certs / "svid-1.pem"),
            "KEY": str(certs / "svid-1-key.pem"),
            "HTTP_FILTERS": json.dumps(v.filters + [ROUTER]),
        },
    )
    load_avg = os.getloadavg()[0]
    server = Envoy(binary, workdir, f"server-{v.name}-c{conc}", config, conc)
    try:
        ready = server.wait_ready(args.ready_timeout)
        # The client's pooled connections to the previous server are gone;
        # the first requests may fail until it reconnects.
        deadline = time.monotonic() + 10
        status = 0
        while time.monotonic() < deadline:
            status = request(client_port)
            if status == 200:
                break
            time.sleep(0.05)
        if status != 200:
            raise RuntimeError(f"{v.name}: the bench request got {status}, not 200:\n{server.log_tail()}")
        if v.enforces:
            denied = request(client_port, {"x-debug": "on"})
            if denied != 403:
                raise RuntimeError(f"{v.name}: a request the policy forbids got {denied}, not 403")
        connections = args.connections_per_worker * conc
        generate(client_port, connections, args.warmup)
        rss = server.status_kib("VmRSS") / 1024
        mem = server.memory()
        # CPU per request and latency at a paced load, as Istio's own
        # benchmarks measure sidecars at a fixed rate: every variant then
        # handles requests one wake-up at a time, so the per-request cost
        # compares like for like, where a saturated closed loop lets a
        # faster server batch more requests per wake-up.
        before_cpu = server.cpu_seconds()
        before_rq = server.counter("http.inbound.downstream_rq_total")
        paced = generate(client_port, connections, args.duration, args.pause_ms)
        cpu = server.cpu_seconds() - before_cpu
        served = server.counter("http.inbound.downstream_rq_total") - before_rq
        # Then the most it serves, closed loop, and its CPU per request
        # then (lower: more requests per wake-up).
        before_cpu = server.cpu_seconds()
        before_rq = server.counter("http.inbound.downstream_rq_total")
        full = generate(client_port, connections, args.saturate) if args.saturate > 0 else paced
        full_cpu = server.cpu_seconds() - before_cpu
        full_served = server.counter("http.inbound.downstream_rq_total") - before_rq
        hwm = server.status_kib("VmHWM") / 1024
    finally:
        server.stop()
    for load in (paced, full):
        if load.non_2xx or load.errors:
            raise RuntimeError(f"{v.name}: {load.non_2xx} non-2xx responses and {load.errors} errors under load")
    return Sample(
        v.name, conc, rnd, load_avg, ready, rss, hwm,
        mem.get("allocated", 0) / 2**20, mem.get("heap_size", 0) / 2**20,
        served, cpu / max(served, 1) * 1e6, full_cpu / max(full_served, 1) * 1e6, paced.rps, full.rps, paced.p50_ms, paced.p99_ms,
        paced.non_2xx + full.non_2xx, paced.errors + full.errors,
    )


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# The variants issue 10's targets are read on (both filters, 10 policies),
# and the 1,000-policy variant each scales to.
HEADLINE = (("both-10", "both-1000"), ("both-10-shared", None), ("chain-10", "chain-1000"),
            ("mtls-10", "mtls-1000"),
            ("native-10", "native-1000"))


def targets(samples: list[Sample], vs: list[Variant], args) -> list[str]:
    """Issue 10's targets for each way of running both filters, from the
    same rounds: added CPU and resident memory over the trivial filter's
    (medians of added over medians of added), time to ready, module size,
    and the CPU at 1,000 policies over that at 10."""
    by = {}
    for s in samples:
        by.setdefault((s.concurrency, s.round), {})[s.variant] = s
    modules = {v.name: v.modules for v in vs}
    labels = {v.name: v.label for v in vs}

    def ratio(conc, name, base, key):
        pairs = []
        for (c, _), r in by.items():
            if c == conc and name in r and base in r and "none" in r:
                pairs.append((getattr(r[name], key) - getattr(r["none"], key),
                              getattr(r[base], key) - getattr(r["none"], key)))
        if not pairs or med([b for _, b in pairs]) <= 0:
            return None
        return med([a for a, _ in pairs]) / med([b for _, b in pairs])

    def fmt(x, limit):
        return "n/a" if x is None else f"{x:.1f} ×{' ✓' if x <= limit else ' ✗'}"

    out = ["### Issue 10's targets (both filters; ✓ met, ✗ not met in this run)", "",
           "| variant | conc | CPU × trivial, paced (≤ 3) | closed loop (≤ 3) | RSS gain × trivial (≤ 2) "
           "| ready s (≤ 1) | largest module MB (≤ 1.5) | 1,000 / 10 policies CPU, paced (≤ 1.5) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, big in HEADLINE:
        if name not in labels:
            continue
        size = max((m.stat().st_size for m in modules[name] if m.is_file()), default=0) / 1e6
        for conc in args.concurrency:
            ready = [r[name].ready_s for (c, _), r in by.items() if c == conc and name in r]
            if not ready:
                continue
            scale = ratio(conc, big, name, "cpu_us_per_request") if big else None
            out.append(
                f"| {labels[name]} | {conc} | {fmt(ratio(conc, name, 'trivial', 'cpu_us_per_request'), 3)} | "
                f"{fmt(ratio(conc, name, 'trivial', 'closed_cpu_us_per_request'), 3)} | "
                f"{fmt(ratio(conc, name, 'trivial', 'rss_mib'), 2)} | "
                f"{med(ready):.2f}{' ✓' if med(ready) <= 1 else ' ✗'} | "
                f"{size:.2f}{' ✓' if size <= 1.5 else ' ✗'} | {fmt(scale, 1.5) if big else ''} |"
            )
    out.append("")
    return out


def native_targets(samples: list[Sample], vs: list[Variant], args) -> list[str]:
    """Issue 15's targets for the native module with 10 policies, from the
    same rounds: added CPU per request at most the trivial wasm filter's,
    added resident memory at most 5 MiB, ready within 0.2 s."""
    names = {v.name for v in vs}
    if not {"native-10", "trivial", "none"} <= names:
        return []
    by = {}
    for s in samples:
        by.setdefault((s.concurrency, s.round), {})[s.variant] = s
    out = ["### Issue 15's targets (native module, 10 policies; ✓ met, ✗ not met in this run)", "",
           "| conc | added CPU µs/req, paced | trivial's | closed loop | trivial's | added RSS MiB (≤ 5) "
           "| ready s added (≤ 0.2) | ready s, native / none |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for conc in args.concurrency:
        rs = [r for (c, _), r in by.items() if c == conc and {"native-10", "trivial", "none"} <= r.keys()]
        if not rs:
            continue

        def added(name, key):
            return med([getattr(r[name], key) - getattr(r["none"], key) for r in rs])

        cpu, tcpu = added("native-10", "cpu_us_per_request"), added("trivial", "cpu_us_per_request")
        closed = added("native-10", "closed_cpu_us_per_request")
        tclosed = added("trivial", "closed_cpu_us_per_request")
        rss = added("native-10", "rss_mib")
        # Envoy's own start is the same with or without the module: the
        # target is on what the module adds to it.
        ready = added("native-10", "ready_s")
        out.append(
            f"| {conc} | {cpu:+.1f}{' ✓' if cpu <= tcpu else ' ✗'} | {tcpu:+.1f} | "
            f"{closed:+.1f}{' ✓' if closed <= tclosed else ' ✗'} | {tclosed:+.1f} | "
            f"{rss:+.1f}{' ✓' if rss <= 5 else ' ✗'} | {ready:+.2f}{' ✓' if ready <= 0.2 else ' ✗'} | "
            f"{med([r['native-10'].ready_s for r in rs]):.2f} / {med([r['none'].ready_s for r in rs]):.2f} |"
        )
    out.append("")
    return out


def report(samples: list[Sample], vs: list[Variant], args, header: str) -> str:
    by = {}
    for s in samples:
        by.setdefault((s.concurrency, s.round), {})[s.variant] = s
    names = [v.name for v in vs]
    out = [header, ""]
    for conc in args.concurrency:
        rounds = [by[k] for k in sorted(by) if k[0] == conc]
        out.append(f"### Server `--concurrency {conc}` ({len(rounds)} rounds, medians)")
        out.append("")
        out.append(
            "| variant | module KB | CPU µs/req | added | × trivial | × RBAC "
            "| closed-loop CPU µs/req | added | × trivial | p50 ms | p99 ms "
            "| max req/s | RSS MiB | added MiB | × trivial | allocated MiB | ready s | load |"
        )
        out.append("|---|" + "---:|" * 17)
        for v in vs:
            rs = [r for r in rounds if v.name in r]
            if not rs:
                continue

            # Differences and ratios within each round, then the median.
            def added(r, name, key):
                if name not in r or "none" not in r:
                    return None
                return getattr(r[name], key) - getattr(r["none"], key)

            def ratios(key, base):
                # The median of this variant's added cost over the median of
                # the base's, both over the same rounds of this run (a ratio
                # per round swings with a small, noisy denominator).
                if v.name in ("none", base):
                    return ""
                pairs = [(a, b) for r in rs
                         if (a := added(r, v.name, key)) is not None
                         and (b := added(r, base, key)) is not None]
                if not pairs or med([b for _, b in pairs]) <= 0:
                    return ""
                return f"{med([a for a, _ in pairs]) / med([b for _, b in pairs]):.1f}"

            add_cpu = [a for r in rs if (a := added(r, v.name, "cpu_us_per_request")) is not None]
            add_closed = [
                a for r in rs if (a := added(r, v.name, "closed_cpu_us_per_request")) is not None
            ]
            add_rss = [a for r in rs if (a := added(r, v.name, "rss_mib")) is not None]
            size = f"{sum(m.stat().st_size for m in v.modules) / 1000:,.0f}" if v.modules else ""
            col = lambda key: med([getattr(r[v.name], key) for r in rs])  # noqa: E731
            out.append(
                f"| {v.label} | {size} | {col('cpu_us_per_request'):.1f} | "
                f"{med(add_cpu):+.1f} | {ratios('cpu_us_per_request', 'trivial')} | "
                f"{ratios('cpu_us_per_request', 'rbac-10')} | {col('closed_cpu_us_per_request'):.1f} | "
                f"{med(add_closed):+.1f} | {ratios('closed_cpu_us_per_request', 'trivial')} | "
                f"{col('p50_ms'):.2f} | {col('p99_ms'):.2f} | {col('rps'):,.0f} | {col('rss_mib'):.0f} | {med(add_rss):+.0f} | "
                f"{ratios('rss_mib', 'trivial')} | {col('allocated_mib'):.0f} | {col('ready_s'):.2f} | "
                f"{col('load_avg'):.1f} |"
            )
        out.append("")
    out.extend(targets(samples, vs, args))
    out.extend(native_targets(samples, vs, args))
    out.append(
        "CPU µs/req, p50, p99: at the paced load (each connection pauses `--pause-ms` after "
        "each response); CPU is the server's utime+stime over the requests it counted. max req/s: "
        "closed loop, `--saturate` seconds, with the server's CPU per request then. added: "
        "minus `no filter` in the same round, median over rounds. × trivial, × RBAC: median "
        "added over the trivial filter's or RBAC-10's median added, same rounds. RSS: VmRSS after warm-up. allocated: "
        "Envoy admin /memory `allocated`. ready: process start to admin /ready LIVE. "
        "load: 1-minute load average before the measurement."
    )
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envoy", type=Path, default=Path(os.environ.get("MESHWARD_ENVOY", ROOT / ".venv/lib/envoy-bin/envoy")))
    p.add_argument("--certs", type=Path, required=True, help="meshward certs output: ca.pem, svid-0 (client), svid-1 (server)")
    p.add_argument("--wasm-dir", type=Path, default=WASM_DIR)
    p.add_argument("--out", type=Path, default=ROOT / "target" / "bench-envoy")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4, help="seconds of paced load per variant (CPU, latency)")
    p.add_argument("--pause-ms", type=int, default=1,
                   help="pause after each response on each connection in the paced load (0: closed loop)")
    p.add_argument("--saturate", type=float, default=2, help="seconds of closed-loop load (req/s); 0 skips it")
    p.add_argument("--warmup", type=float, default=1, help="seconds of load before measuring")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--connections-per-worker", type=int, default=2)
    p.add_argument("--variants", type=lambda s: s.split(","),
                   help="names to run (default: all but the experiments); `none` always runs")
    p.add_argument("--alt", action="append", default=[], metavar="LABEL=DIR",
                   help="experiment: variants `both-10@LABEL` (`trivial@`, `identity@`) with the modules in DIR")
    p.add_argument("--ready-timeout", type=float, default=300,
                   help="seconds a server may take to become ready (V8 compiling on a busy machine)")
    p.add_argument("--report-from", type=Path, metavar="SAMPLES_JSON",
                   help="only print the table of an earlier run's samples.json (with its --alt, --concurrency)")
    p.add_argument("--smoke", action="store_true", help="one round, concurrency 1, 1 s: checks that every variant runs")
    args = p.parse_args()
    # Stop the Envoys (the `finally` blocks) when stopped ourselves.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.saturate, args.concurrency = 1, 1, 1, 1, [1]

    alts = [(a.partition("=")[0], Path(a.partition("=")[2])) for a in args.alt]
    vs = variants(args.wasm_dir, alts)
    if args.report_from:
        pass
    elif not args.variants:
        vs = [v for v in vs if "@" not in v.name and v.name not in
              ("both-10-one-vm-id", "identity-twice", "identity-twice-one-vm")]
    else:
        unknown = set(args.variants) - {v.name for v in vs}
        if unknown:
            raise SystemExit(f"bench-envoy: unknown variants {sorted(unknown)}")
        vs = [v for v in vs if v.name in args.variants or v.name == "none"]
    if args.report_from:
        samples = [Sample(**d) for d in json.loads(args.report_from.read_text())]
        ran = {s.variant for s in samples}
        args.concurrency = sorted({s.concurrency for s in samples})
        print(report(samples, [v for v in vs if v.name in ran], args, f"Samples from {args.report_from}"))
        return 0
    for v in vs:
        for m in v.modules:
            if not m.is_file():
                raise SystemExit(f"bench-envoy: {m} is missing: run scripts/build-wasm")
    if not args.envoy.is_file():
        raise SystemExit(f"bench-envoy: no Envoy at {args.envoy}: run scripts/setup")
    generate = wrk if shutil.which("wrk") else pygen
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "run"
    workdir.mkdir(exist_ok=True)

    server_port, client_port = free_port(), free_port()
    client = Envoy(
        args.envoy, workdir, "client",
        fill(HERE / "client.yaml", {
            "LISTEN_PORT": str(client_port),
            "SERVER_PORT": str(server_port),
            "CA": str(args.certs / "ca.pem"),
            "CERT": str(args.certs / "svid-0.pem"),
            "KEY": str(args.certs / "svid-0-key.pem"),
        }),
        2,
    )
    samples: list[Sample] = []
    failures: list[str] = []
    started = time.time()
    version = subprocess.run([str(args.envoy), "--version"], capture_output=True, text=True).stdout
    version = re.search(r"version: \S+", version)
    try:
        client.wait_ready()
        for rnd in range(args.rounds):
            for conc in args.concurrency:
                # Rotate the order every round so no variant always runs
                # first (after the machine was idle) or last.
                k = rnd % len(vs)
                for v in vs[k:] + vs[:k]:
                    try:
                        s = measure(args, args.envoy, workdir, v, conc, rnd, server_port, client_port,
                                    args.certs, generate)
                    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                        # One variant failing must not lose the others' data.
                        failures.append(f"round {rnd + 1} c{conc} {v.name}: {e}")
                        print(f"bench-envoy: FAILED {failures[-1]}", file=sys.stderr, flush=True)
                        continue
                    samples.append(s)
                    (args.out / "samples.json").write_text(json.dumps([asdict(x) for x in samples], indent=1))
                    print(
                        f"bench-envoy: round {rnd + 1} c{conc} {v.name:<10} {s.cpu_us_per_request:6.1f} µs/req "
                        f"{s.paced_rps:6.0f} paced, {s.rps:6.0f} max req/s p50 {s.p50_ms:.2f} ms p99 {s.p99_ms:.2f} ms "
                        f"RSS {s.rss_mib:.0f} MiB ready {s.ready_s:.2f} s (load {s.load_avg:.1f})",
                        file=sys.stderr, flush=True,
                    )
    finally:
        client.stop()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    header = (
        f"Envoy load bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{version.group(0) if version else 'envoy'}, {os.cpu_count()} CPUs, "
        f"generator {generate.__name__}, {args.rounds} rounds × ({args.warmup:g} s warm-up, "
        f"{args.duration:g} s paced with {args.pause_ms} ms pauses, {args.saturate:g} s closed loop), "
        f"{args.connections_per_worker} connections per server worker; "
        f"after the run: `{uptime}`"
    )
    text = report(samples, vs, args, header)
    (args.out / "report.md").write_text(text)
    (args.out / "samples.json").write_text(json.dumps([asdict(s) for s in samples], indent=1))
    print(text)
    print(f"bench-envoy: wrote {args.out / 'report.md'} and samples.json", file=sys.stderr)
    for f in failures:
        print(f"bench-envoy: FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
