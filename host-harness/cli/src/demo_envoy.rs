//! `meshward demo --envoy`: the same demo through a real Envoy, found on
//! this machine, with a bootstrap rendered here from the shipped chain
//! template (compiled in) and the embedded modules written to a temporary
//! folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshward_certs::SpiffeCa;
use meshward_data_path::EchoUpstream;
use meshward_filter_modules::{AUTHZ, IDENTITY};

use crate::demo::{
    TRUST_DOMAIN, authz_demo_config, finish, identity_config, print_chain, run_cases,
};

const TEMPLATE: &str = include_str!("../../../envoy-config/sidecar-inbound-chain.yaml");
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Envoy to run: the flag, `$MESHWARD_ENVOY`, `envoy` on the PATH, or
/// a project virtual environment here or above.
pub(crate) fn find_envoy(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("no Envoy at `{}`", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("MESHWARD_ENVOY") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("no Envoy at `{}` ($MESHWARD_ENVOY)", p.display()))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("envoy");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Ok(here) = std::env::current_dir() {
        for dir in here.ancestors() {
            for rel in [".venv/lib/envoy-bin/envoy", ".venv/bin/envoy"] {
                let p = dir.join(rel);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
    }
    Err("no Envoy found: pass --envoy-bin, set MESHWARD_ENVOY, or put `envoy` on the PATH".into())
}

struct Running {
    child: Child,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

pub(crate) async fn run(flag: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let envoy = find_envoy(flag)?;
    println!(
        "meshward demo: a SPIFFE CA for `{TRUST_DOMAIN}`, real Envoy ({}), two meshward filters",
        envoy.display()
    );
    print_chain();
    let dir = std::env::temp_dir().join(format!("meshward-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<String, String> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("cannot write `{}`: {e}", p.display()))?;
        Ok(p.display().to_string())
    };
    let ca = SpiffeCa::new(TRUST_DOMAIN)?;
    let server = ca.issue_local_server("spiffe://example.org/ns/orders/sa/orders")?;
    let upstream = EchoUpstream::start().await?;
    let values = [
        ("{{CA}}", write("ca.pem", ca.cert_pem().as_bytes())?),
        ("{{CERT}}", write("server.pem", server.cert_pem.as_bytes())?),
        (
            "{{KEY}}",
            write("server-key.pem", server.key_pem.as_bytes())?,
        ),
        ("{{WASM_0}}", write("identity.wasm", IDENTITY.bytes)?),
        ("{{WASM_1}}", write("authz.wasm", AUTHZ.bytes)?),
        ("{{ROOT_ID_0}}", IDENTITY.root_id.to_owned()),
        ("{{ROOT_ID_1}}", AUTHZ.root_id.to_owned()),
        ("{{PLUGIN_CONFIG_0}}", quote(&identity_config())),
        ("{{PLUGIN_CONFIG_1}}", quote(&authz_demo_config()?)),
        ("{{UPSTREAM_PORT}}", upstream.addr().port().to_string()),
    ];
    let mut config = TEMPLATE.to_owned();
    for (k, v) in &values {
        config = config.replace(k, v);
    }
    let config_path = write("envoy.yaml", config.as_bytes())?;
    let admin_path = dir.join("admin-address");
    let log_path = dir.join("envoy.log");
    eprintln!("meshward: starting Envoy (compiling the filters in V8 takes a few seconds)");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(&envoy)
        .arg("--config-path")
        .arg(&config_path)
        .args([
            "--concurrency",
            "1",
            "--log-level",
            "info",
            "--disable-hot-restart",
        ])
        .arg("--admin-address-path")
        .arg(&admin_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", envoy.display()))?;
    let mut running = Running {
        child,
        dir: dir.clone(),
    };
    let admin = wait_ready(&mut running, &admin_path, &log_path).await?;
    let listener = listener(admin).await?;
    println!(
        "  Envoy: mTLS listener on {listener}, echo application behind it on {}",
        upstream.addr()
    );
    println!();
    let wrong = run_cases(&ca, listener).await?;
    println!();
    println!("decisions logged by the filters inside Envoy:");
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    for line in logs.lines() {
        for tag in ["meshward-identity decision ", "meshward-authz decision "] {
            if let Some((_, json)) = line.split_once(tag) {
                println!("  {}{json}", tag.trim_end_matches("decision "));
            }
        }
    }
    drop(running);
    finish(wrong)
}

async fn wait_ready(
    running: &mut Running,
    admin_path: &Path,
    log_path: &Path,
) -> Result<std::net::SocketAddr, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_note = Instant::now();
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!(
                "Envoy exited ({status}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("Envoy was not ready after {READY_TIMEOUT:?}"));
        }
        if last_note.elapsed() > Duration::from_secs(5) {
            eprintln!("meshward: still waiting for Envoy");
            last_note = Instant::now();
        }
        if let Ok(text) = std::fs::read_to_string(admin_path)
            && let Ok(addr) = text.trim().parse()
            && let Ok(body) = admin_get(addr, "/ready").await
            && body.trim() == "LIVE"
        {
            return Ok(addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tcp.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or("no response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    if chunked {
        dechunk(body).ok_or_else(|| "a malformed chunked answer".to_owned())
    } else {
        Ok(body.to_owned())
    }
}

/// The body of a chunked HTTP/1.1 answer (Envoy's admin chunks even small
/// ones); `None` if the framing is broken.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

async fn listener(admin: std::net::SocketAddr) -> Result<std::net::SocketAddr, String> {
    let body = admin_get(admin, "/listeners").await?;
    // `inbound_mtls::127.0.0.1:PORT`
    body.lines()
        .find_map(|l| l.strip_prefix("inbound_mtls::"))
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("Envoy has no `inbound_mtls` listener: {body}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunked_admin_answers_are_decoded() {
        assert_eq!(
            super::dechunk("5\r\nLIVE\n\r\n0\r\n\r\n").as_deref(),
            Some("LIVE\n")
        );
        assert_eq!(super::dechunk("9\r\nLIVE\r\n"), None);
    }
}
