#!/usr/bin/env python3
"""The data path against Envoy: the same filters, the same mTLS workload.

Run through scripts/bench-data-path. wrk sends HTTP/1.1 keep-alive requests
to a client Envoy, which originates mTLS with a client SVID to the server
under test: either a real Envoy running meshward's identity and
authorization filters (V8), or `meshward serve` running the same modules
with the same configurations (wasmtime). Both forward allowed requests to
the same plain-HTTP upstream (an Envoy answering from its route), so the
server's work is the same: TLS, HTTP, two filters, one upstream hop. The
two servers alternate within every round.

Per server: CPU time per request (utime+stime of the server process over
the requests it served; requests per CPU-second is "req/s per core"),
throughput, p50/p99 from wrk, and resident memory (VmRSS) after the load.
Pieces come from benches/envoy/bench.py (imported, not changed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benches" / "envoy"))
import bench as eb  # noqa: E402  (benches/envoy/bench.py, read-only)

UPSTREAM = """
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: app
    address: {socket_address: {address: 127.0.0.1, port_value: {{PORT}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: app
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "ok\\n"}}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"""

SERVER = """
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: inbound_mtls
    address: {socket_address: {address: 127.0.0.1, port_value: {{LISTEN_PORT}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true
          common_tls_context:
            alpn_protocols: ["h2", "http/1.1"]
            tls_certificates:
            - certificate_chain: {filename: "{{CERT}}"}
              private_key: {filename: "{{KEY}}"}
            validation_context:
              trusted_ca: {filename: "{{CA}}"}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes: [{match: {prefix: "/"}, route: {cluster: app}}]
          http_filters: {{HTTP_FILTERS}}
  clusters:
  - name: app
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{UPSTREAM_PORT}}}}}
"""


def process_cpu_seconds(pid: int) -> float:
    """utime+stime of the whole process, exited threads included.

    Not the per-thread schedstat sum of benches/envoy/bench.py: the data
    path compiles its modules on a tokio blocking thread that exits when
    idle, and its CPU time would leave the sum mid-measurement (negative
    CPU per request). Clock ticks (10 ms) are fine over 10 s rounds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(text: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    return text


class DataPath:
    """`meshward serve` as a process, with Envoy's measuring methods."""

    def __init__(self, meshward: Path, workdir: Path, config: dict, threads: int):
        path = workdir / "data-path.json"
        path.write_text(json.dumps(config))
        self.log_path = workdir / "data-path.log"
        self.started = time.monotonic()
        env = dict(os.environ, TOKIO_WORKER_THREADS=str(threads), RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [str(meshward), "serve", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"), env=env, text=True,
        )
        self.name = "data-path"

    def wait_ready(self, timeout: float = 120.0) -> float:
        assert self.proc.stdout is not None
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"meshward serve exited:\n{self.log_path.read_text()}")
            if line.startswith("meshward: mTLS listener on"):
                return time.monotonic() - self.started
        raise RuntimeError("meshward serve not ready")

    status_kib = eb.Envoy.status_kib

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--certs", type=Path, required=True)
    ap.add_argument("--envoy", type=Path, required=True)
    ap.add_argument("--meshward", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--policies", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="one short round")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 2.0
    workdir = ROOT / "target" / "bench-data-path"
    workdir.mkdir(parents=True, exist_ok=True)
    certs = args.certs.resolve()
    wasm = ROOT / "target" / "wasm32-wasip1" / "filter"
    identity, authz = wasm / "meshward_identity_filter.wasm", wasm / "meshward_authz_filter.wasm"
    authz_cfg = eb.authz_config(args.policies, "identity_filter")
    upstream_port, server_port, client_port = eb.free_port(), eb.free_port(), eb.free_port()
    upstream = eb.Envoy(args.envoy, workdir, "upstream", fill(UPSTREAM, {"PORT": str(upstream_port)}), 1)
    upstream.wait_ready()
    client = eb.Envoy(args.envoy, workdir, "client", eb.fill(eb.HERE / "client.yaml", {
        "LISTEN_PORT": str(client_port), "SERVER_PORT": str(server_port),
        "CA": str(certs / "ca.pem"), "CERT": str(certs / "svid-0.pem"), "KEY": str(certs / "svid-0-key.pem"),
    }), 1)
    client.wait_ready()
    filters = [
        eb.wasm_filter(identity, "meshward_identity", eb.IDENTITY_CONFIG),
        eb.wasm_filter(authz, "meshward_authz", authz_cfg),
        eb.ROUTER,
    ]
    envoy_config = fill(SERVER, {
        "LISTEN_PORT": str(server_port), "UPSTREAM_PORT": str(upstream_port),
        "CA": str(certs / "ca.pem"), "CERT": str(certs / "svid-1.pem"), "KEY": str(certs / "svid-1-key.pem"),
        "HTTP_FILTERS": json.dumps(filters),
    })
    dp_config = {
        "listen": f"127.0.0.1:{server_port}",
        "tls": {"cert": str(certs / "svid-1.pem"), "key": str(certs / "svid-1-key.pem"),
                "trust_bundles": {eb.TRUST_DOMAIN: str(certs / "ca.pem")}},
        "filters": [
            {"module": str(identity), "root_id": "meshward_identity", "configuration": eb.IDENTITY_CONFIG},
            {"module": str(authz), "root_id": "meshward_authz", "configuration": authz_cfg},
        ],
        "upstream": f"127.0.0.1:{upstream_port}",
    }
    results: dict[str, list[dict]] = {"envoy": [], "data-path": []}
    try:
        for rnd in range(args.rounds):
            for name in ["envoy", "data-path"] if rnd % 2 == 0 else ["data-path", "envoy"]:
                if name == "envoy":
                    server = eb.Envoy(args.envoy, workdir, "server", envoy_config, 1)
                else:
                    server = DataPath(args.meshward, workdir, dp_config, 1)
                try:
                    ready = server.wait_ready()
                    # Warm-up: VM instances, connection pools, V8 tiers.
                    eb.wrk(client_port, args.connections, 1.0)
                    cpu0 = process_cpu_seconds(server.proc.pid)
                    load = eb.wrk(client_port, args.connections, args.seconds)
                    cpu = process_cpu_seconds(server.proc.pid) - cpu0
                    rss = server.status_kib("VmRSS")
                finally:
                    server.stop()
                ok = load.requests - load.non_2xx
                if load.non_2xx or load.errors or ok <= 0:
                    raise SystemExit(f"bench-data-path: {name}: {load.non_2xx} non-2xx, {load.errors} errors")
                r = {"round": rnd, "ready_s": ready, "requests": load.requests, "rps": load.rps,
                     "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "cpu_us_per_req": cpu / ok * 1e6,
                     "req_per_cpu_s": ok / cpu if cpu else 0.0, "rss_mib": rss / 1024}
                results[name].append(r)
                print(f"round {rnd} {name:9}: {r['rps']:8.0f} req/s  {r['req_per_cpu_s']:8.0f} req/CPU-s  "
                      f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  RSS {r['rss_mib']:.0f} MiB", flush=True)
    finally:
        client.stop()
        upstream.stop()
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    med = lambda xs: statistics.median(xs) if xs else 0.0  # noqa: E731
    print()
    print(f"| server (identity + authz, {args.policies} policies, 1 worker) | req/s | req per CPU-second | p50 ms | p99 ms | RSS MiB | ready s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in results.items():
        print(f"| {name} | {med([r['rps'] for r in rows]):.0f} | {med([r['req_per_cpu_s'] for r in rows]):.0f} | "
              f"{med([r['p50_ms'] for r in rows]):.2f} | {med([r['p99_ms'] for r in rows]):.2f} | "
              f"{med([r['rss_mib'] for r in rows]):.0f} | {med([r['ready_s'] for r in rows]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
