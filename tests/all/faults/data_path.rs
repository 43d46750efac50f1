//! The reference data path (`meshward-data-path`) on the fault rig's port,
//! certificates and application, so the same probes and client reach it as
//! reach Envoy: in the test process ([`config`]), or in a process of its
//! own ([`Process`]: this test binary run again with only
//! [`serve_process`]), which can be killed under load and whose memory is
//! its own, not the test runner's.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use meshward_data_path::{
    ClientAuth, Config, DataPath, FilterSpec, Limits, TlsSettings, TrustBundle, Upstream,
};

use super::rig::{Rig, TRUST_DOMAIN};

/// The environment variable that hands [`serve_process`] its configuration
/// file; without it that test does nothing.
const PROCESS_ENV: &str = "MESHWARD_DATA_PATH_PROCESS";
/// What [`serve_process`] prints once it listens.
const READY: &str = "meshward-data-path: listening on";

/// The data path's chain entry for one of the rig's (Envoy) filters.
pub(crate) fn filter(spec: &meshward_envoy::FilterSpec, fail_open: bool) -> FilterSpec {
    FilterSpec {
        name: spec.root_id.clone(),
        wasm: Arc::from(std::fs::read(&spec.wasm).unwrap()),
        root_id: spec.root_id.clone(),
        vm_id: String::new(),
        configuration: spec.plugin_config.clone(),
        fail_open,
    }
}

fn read(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A data path on the rig's port, with the rig's server certificate, its
/// trust domain's bundle (client certificates required) and its
/// application, running `filters`.
pub(crate) fn config(rig: &Rig, filters: Vec<FilterSpec>) -> Config {
    Config {
        listen: rig.addr(),
        metrics_listen: None,
        tls: TlsSettings {
            cert_chain_pem: read(rig.file("server.pem")),
            key_pem: read(rig.file("server-key.pem")),
            trust_bundles: vec![TrustBundle {
                trust_domain: TRUST_DOMAIN.to_owned(),
                ca_pem: read(rig.file("ca.pem")),
            }],
            client_auth: ClientAuth::Required,
        },
        filters,
        upstream: Upstream::Http {
            addr: rig.upstream_addr().to_string(),
        },
        limits: Limits::default(),
    }
}

/// The data path in a process of its own; killed when dropped.
pub(crate) struct Process {
    child: Child,
    /// Its Prometheus endpoint.
    pub(crate) metrics: SocketAddr,
}

impl Process {
    /// Starts the data path for `filters` (each with its `fail_open`) on
    /// the rig's port in a new process, and waits until it listens. The
    /// process ends when this handle is dropped, or after `max` at the
    /// latest.
    pub(crate) fn start(
        rig: &Rig,
        filters: &[(meshward_envoy::FilterSpec, bool)],
        max: Duration,
    ) -> Self {
        let spec = serde_json::json!({
            "listen": rig.addr().to_string(),
            "cert": rig.file("server.pem"),
            "key": rig.file("server-key.pem"),
            "ca": rig.file("ca.pem"),
            "upstream": rig.upstream_addr().to_string(),
            "max_secs": max.as_secs(),
            "filters": filters.iter().map(|(f, fail_open)| serde_json::json!({
                "wasm": f.wasm,
                "root_id": f.root_id,
                "configuration": f.plugin_config,
                "fail_open": fail_open,
            })).collect::<Vec<_>>(),
        });
        let file = rig.file("data-path.json");
        std::fs::write(&file, spec.to_string()).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "faults::data_path::serve_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROCESS_ENV, &file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Lines are read on a thread of their own (so the wait is bounded),
        // which keeps draining the pipe after the ready line.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let metrics = loop {
            match rx.recv_timeout(Duration::from_secs(180)) {
                Ok(line) => {
                    // libtest prints the test's name first, on the same
                    // line.
                    if let Some((_, rest)) = line.split_once(READY) {
                        let metrics = rest.split_whitespace().last().unwrap();
                        break metrics.parse().unwrap();
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("the data-path process never listened: {e}");
                }
            }
        };
        Self { child, metrics }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident set, bytes.
    pub(crate) fn rss(&self) -> u64 {
        rss(self.pid()).unwrap()
    }

    /// The filters' linear memories (see [`linear_memory`]).
    pub(crate) fn linear_memory(&self) -> LinearMemory {
        linear_memory(self.pid()).unwrap()
    }

    /// Its metrics, as the endpoint serves them.
    pub(crate) async fn metrics_text(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: metrics\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGKILL: the restart test wants a crash, not a drain.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident set in bytes, from `/proc/<pid>/status`.
pub(crate) fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The smallest mapping taken for the inaccessible rest of a linear
/// memory's reservation: wasmtime reserves 4 GiB of address space plus
/// guard regions for each 32-bit linear memory on 64-bit hosts, maps the
/// bytes the memory has grown to read-write at the start and leaves the
/// rest `PROT_NONE`; nothing else in the process maps that much at once.
const LINEAR_RESERVATION: u64 = 4 << 30;

/// The filters' linear memories in a process, from `/proc/<pid>/smaps`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LinearMemory {
    /// How many (one per VM).
    pub(crate) count: usize,
    /// The bytes they have grown to, all together (their read-write part).
    pub(crate) size: u64,
    /// How much of that is resident: pages the filters touched and hold.
    pub(crate) resident: u64,
}

/// Measured from outside, as the kernel sees it: each linear memory is the
/// run of read-write mappings right before a `PROT_NONE` mapping of at
/// least [`LINEAR_RESERVATION`] (its reservation's rest), back to the
/// previous `PROT_NONE` mapping (its guard region, or the previous
/// memory's reservation).
pub(crate) fn linear_memory(pid: u32) -> Option<LinearMemory> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    // (start, end, accessible, rss) per mapping.
    let mut maps: Vec<(u64, u64, bool, u64)> = Vec::new();
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Rss:") {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
            if let Some(last) = maps.last_mut() {
                last.3 = kb * 1024;
            }
            continue;
        }
        // A mapping's header: `start-end perms offset dev inode [path]`.
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let Some((start, end)) = range.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            && perms.len() == 4
        {
            maps.push((start, end, perms != "---p", 0));
        }
    }
    let mut out = LinearMemory::default();
    for (i, &(start, end, accessible, _)) in maps.iter().enumerate() {
        if accessible || end - start < LINEAR_RESERVATION {
            continue;
        }
        out.count += 1;
        let mut next_start = start;
        for &(s, e, accessible, rss) in maps[..i].iter().rev() {
            if !accessible || e != next_start {
                break;
            }
            out.size += e - s;
            out.resident += rss;
            next_start = s;
        }
    }
    Some(out)
}

/// The data-path process of [`Process`]: serves the configuration named by
/// `MESHWARD_DATA_PATH_PROCESS` until its standard input closes (the test
/// that started it ended or dropped it) or its time is up.
#[test]
#[ignore = "the data-path process the fault and soak tests start; does nothing alone"]
fn serve_process() {
    let Ok(file) = std::env::var(PROCESS_ENV) else {
        return;
    };
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let text = |key: &str| spec[key].as_str().unwrap().to_owned();
    let file = |key: &str| std::fs::read_to_string(text(key)).unwrap();
    let filters = spec["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| FilterSpec {
            name: f["root_id"].as_str().unwrap().to_owned(),
            wasm: Arc::from(std::fs::read(f["wasm"].as_str().unwrap()).unwrap()),
            root_id: f["root_id"].as_str().unwrap().to_owned(),
            vm_id: String::new(),
            configuration: f["configuration"].as_str().unwrap().to_owned(),
            fail_open: f["fail_open"].as_bool().unwrap(),
        })
        .collect();
    let config = Config {
        listen: text("listen").parse().unwrap(),
        metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        tls: TlsSettings {
            cert_chain_pem: file("cert"),
            key_pem: file("key"),
            trust_bundles: vec![TrustBundle {
                trust_domain: TRUST_DOMAIN.to_owned(),
                ca_pem: file("ca"),
            }],
            client_auth: ClientAuth::Required,
        },
        filters,
        upstream: Upstream::Http {
            addr: text("upstream"),
        },
        limits: Limits::default(),
    };
    let max = Duration::from_secs(spec["max_secs"].as_u64().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dp = DataPath::start(config).await.unwrap();
        println!(
            "{READY} {} metrics {}",
            dp.local_addr(),
            dp.metrics_addr().unwrap()
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            // Returns at end of input: the parent closed the pipe or died.
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = tx.send(());
        });
        tokio::select! {
            _ = rx => {}
            () = tokio::time::sleep(max) => {}
        }
        dp.shutdown().await;
    });
}
