//! The host a request is for, in one spelling.
//!
//! A forbid on `resource == Mesh::Host::"admin.example.com"` must hold for
//! `ADMIN.example.com`, `admin.example.com.` (the same name, fully qualified)
//! and `x@admin.example.com` (userinfo, which HTTP forbids in an authority but
//! some parsers skip). So the resource's host is the authority lower-cased,
//! without a final dot and without its port; an authority with userinfo, an
//! empty label, a bad port or a character outside the unreserved set is
//! refused (HTTP has no use for them, and an upstream might read them
//! differently from us). IPv6 literals keep their brackets and are written in
//! their canonical form (`[0:0::1]` is `[::1]`).

use std::net::Ipv6Addr;

/// Why an authority names no host meshward can decide on. The request is
/// denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The authority is not valid UTF-8.
    #[error("authority is not valid UTF-8")]
    NotUtf8,
    /// The authority has userinfo (`user@host`).
    #[error("authority has userinfo (`@`)")]
    Userinfo,
    /// The port is not a number up to 65535.
    #[error("authority has an invalid port")]
    Port,
    /// The host has a character outside `A-Z a-z 0-9 - . _ ~`, or an empty
    /// label.
    #[error("authority has an invalid host")]
    Host,
}

/// An authority split into its canonical host and its port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    /// Lower-case, no final dot; an IPv6 literal in brackets.
    pub host: String,
    /// The port the authority names, if it names one.
    pub port: Option<u16>,
}

/// Splits and canonicalises an authority (`:authority` or `Host`). An empty
/// authority (HTTP/1.0 without `Host`) is the empty host.
pub fn parse_authority(authority: &str) -> Result<Authority, AuthorityError> {
    if authority.contains('@') {
        return Err(AuthorityError::Userinfo);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(AuthorityError::Host)?;
        let ip: Ipv6Addr = literal.parse().map_err(|_| AuthorityError::Host)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(AuthorityError::Host)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (authority, None),
        };
        (canonical_name(name)?, port)
    };
    let port = match port {
        // RFC 3986 allows an empty port; it means none.
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| AuthorityError::Port)?)
        }
        Some(_) => return Err(AuthorityError::Port),
    };
    Ok(Authority { host, port })
}

fn canonical_name(name: &str) -> Result<String, AuthorityError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Ok(String::new());
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        && !name.split('.').any(str::is_empty);
    if !valid {
        return Err(AuthorityError::Host);
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(a: &str) -> Result<(String, Option<u16>), AuthorityError> {
        parse_authority(a).map(|a| (a.host, a.port))
    }

    #[test]
    fn canonical_hosts() {
        for (raw, want, port) in [
            ("admin.example.com", "admin.example.com", None),
            ("ADMIN.Example.COM", "admin.example.com", None),
            ("admin.example.com.", "admin.example.com", None),
            ("admin.example.com.:8443", "admin.example.com", Some(8443)),
            ("API.example.com:80", "api.example.com", Some(80)),
            ("h:", "h", None),
            ("[::1]:80", "[::1]", Some(80)),
            ("[0:0::1]", "[::1]", None),
            ("[FE80::A]", "[fe80::a]", None),
            ("10.0.0.1:9", "10.0.0.1", Some(9)),
            ("", "", None),
        ] {
            assert_eq!(host(raw), Ok((want.to_owned(), port)), "{raw}");
        }
    }

    #[test]
    fn refused() {
        for (raw, err) in [
            ("x@admin.example.com", AuthorityError::Userinfo),
            ("@admin.example.com", AuthorityError::Userinfo),
            ("admin.example.com:80@evil", AuthorityError::Userinfo),
            ("admin.example.com:99999", AuthorityError::Port),
            ("admin.example.com:+80", AuthorityError::Port),
            ("admin.example.com:80:80", AuthorityError::Port),
            ("admin.example.com..", AuthorityError::Host),
            ("admin..example.com", AuthorityError::Host),
            ("%61dmin.example.com", AuthorityError::Host),
            ("admin example", AuthorityError::Host),
            ("[::1", AuthorityError::Host),
            ("[::1]x", AuthorityError::Host),
            ("[nope]", AuthorityError::Host),
            ("[::1%25eth0]", AuthorityError::Host),
        ] {
            assert_eq!(host(raw), Err(err), "{raw}");
        }
    }
}
