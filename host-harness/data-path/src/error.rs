//! What can stop the data path from starting or reloading.

/// Why the data path could not start, or a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate, key or trust bundle did not load.
    #[error("{what}: {message}")]
    Certificate {
        /// Which one (`server certificate`, `trust bundle for example.org`).
        what: String,
        /// What was wrong with it.
        message: String,
    },
    /// rustls refused the TLS settings.
    #[error("tls configuration: {0}")]
    Tls(String),
    /// A filter of the chain did not compile or refused its configuration.
    #[error("filter `{name}`: {message}")]
    Filter {
        /// The filter's name in the chain.
        name: String,
        /// Why.
        message: String,
    },
    /// The listener or metrics address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}
