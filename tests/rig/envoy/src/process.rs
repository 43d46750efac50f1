use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Request, send};
use crate::locate::envoy_binary;

/// Why Envoy could not be started, reached or asked something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvoyError {
    /// The binary is not where the project's setup puts it.
    #[error("no Envoy at `{}`: run scripts/setup (or set MESHWARD_ENVOY)", .0.display())]
    NotInstalled(PathBuf),
    /// Starting the process or a file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Envoy exited during start-up.
    #[error("Envoy exited during start-up ({status}); its log ends with:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Envoy did not become ready in time.
    #[error("Envoy was not ready within {timeout:?}; its log ends with:\n{log_tail}")]
    NotReady {
        /// How long we waited.
        timeout: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// The configuration failed `envoy --mode validate`.
    #[error("`{}` is not a valid Envoy configuration:\n{output}", path.display())]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// What Envoy said.
        output: String,
    },
    /// The admin interface answered something unexpected.
    #[error("Envoy admin: {0}")]
    Admin(String),
    /// A request through Envoy failed below HTTP.
    #[error("request failed: {0}")]
    Client(String),
}

// How long Envoy may take to become ready. V8 compiles each wasm module at
// start-up (about 4 s for the authorization filter on a quiet machine, see
// BENCHMARKS.md); on a loaded 2-core machine running several Envoys in
// parallel that stretches many times, and a slow start is not a failure.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running Envoy, stopped when dropped.
pub struct Envoy {
    child: Child,
    dir: tempfile::TempDir,
    admin: SocketAddr,
}

impl Envoy {
    /// Starts Envoy with `config` (YAML) and one worker thread, and waits
    /// until its admin interface reports it live.
    pub async fn start(config: &str) -> Result<Self, EnvoyError> {
        let binary = envoy_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("meshward-envoy-")
            .tempdir()?;
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config)?;
        let admin_path = dir.path().join("admin-address");
        let log_path = dir.path().join("envoy.log");
        let child = Command::new(binary)
            .arg("--config-path")
            .arg(&config_path)
            .args(["--concurrency", "1", "--log-level", "info"])
            // Hot restart would share memory between Envoys and stop tests
            // from running several at once.
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Envoy buffers its --log-path file for seconds; stderr is
            // written line by line, so tests can read decisions at once.
            .stderr(Stdio::from(std::fs::File::create(&log_path)?))
            .spawn()?;
        let mut envoy = Self {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        envoy.wait_ready().await?;
        Ok(envoy)
    }

    async fn wait_ready(&mut self) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let admin_path = self.dir.path().join("admin-address");
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(EnvoyError::Exited {
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if Instant::now() > deadline {
                return Err(EnvoyError::NotReady {
                    timeout: READY_TIMEOUT,
                    log_tail: self.log_tail(),
                });
            }
            if self.admin.port() == 0
                && let Ok(text) = std::fs::read_to_string(&admin_path)
                && let Ok(addr) = text.trim().parse()
            {
                self.admin = addr;
            }
            if self.admin.port() != 0
                && let Ok(body) = self.admin_get("/ready").await
                && body.trim() == "LIVE"
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address of the admin interface.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// GETs an admin path and returns the body, failing on a non-200.
    pub async fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let resp = send(self.admin, None, &Request::get(path)).await?;
        if resp.status != 200 {
            return Err(EnvoyError::Admin(format!(
                "{path} answered {}",
                resp.status
            )));
        }
        Ok(resp.text())
    }

    /// The address a named listener is bound to (ports are chosen by the
    /// kernel, so this is how callers learn them).
    pub async fn listener(&self, name: &str) -> Result<SocketAddr, EnvoyError> {
        let body = self.admin_get("/listeners?format=json").await?;
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| EnvoyError::Admin(e.to_string()))?;
        json.get("listener_statuses")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .find(|l| l.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|l| {
                let sa = l.pointer("/local_address/socket_address")?;
                let ip = sa.get("address")?.as_str()?.parse().ok()?;
                let port = u16::try_from(sa.get("port_value")?.as_u64()?).ok()?;
                Some(SocketAddr::new(ip, port))
            })
            .ok_or_else(|| EnvoyError::Admin(format!("no listener named `{name}`")))
    }

    /// The value of a counter or gauge from `/stats`, `None` if Envoy has no
    /// stat of that name.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>, EnvoyError> {
        let body = self
            .admin_get(&format!("/stats?filter=^{}$", regex_escape(name)))
            .await?;
        Ok(body.lines().find_map(|line| {
            let (k, v) = line.split_once(": ")?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        }))
    }

    /// Everything Envoy has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// The folder holding Envoy's configuration and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_tail(&self) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines
            .get(lines.len().saturating_sub(25)..)
            .unwrap_or_default()
            .join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = "\\.+*?()|[]{}^$".contains(c);
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Runs `envoy --mode validate` on a configuration file.
pub fn validate(config_path: &Path) -> Result<(), EnvoyError> {
    let out = Command::new(envoy_binary()?)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--log-level",
            "warning",
        ])
        .arg("--config-path")
        .arg(config_path)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EnvoyError::Invalid {
            path: config_path.to_owned(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}
