//! `meshward certs`: a SPIFFE CA and SVIDs as PEM files.

use std::path::PathBuf;

use meshward_certs::{KeyType, SpiffeCa, SvidOptions, Validity};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The trust domain of the CA.
    #[arg(long, default_value = "example.org")]
    trust_domain: String,
    /// The SPIFFE IDs to issue SVIDs for.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Where to write `ca.pem` and `svid-<n>.pem` / `svid-<n>-key.pem` per
    /// SVID (`n` counts the IDs from 0).
    #[arg(long, default_value = "meshward-certs")]
    out: PathBuf,
    /// A DNS name or IP address for every SVID, besides its SPIFFE ID
    /// (repeatable): `--san localhost` lets curl verify `meshward serve`.
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// The key type of the CA and the SVIDs: ecdsa-p256, ecdsa-p384 or
    /// ed25519 (RSA: not in this build, whose rcgen backend cannot
    /// generate RSA keys).
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256", value_parser = parse_key_type)]
    key_type: KeyType,
    /// The SVIDs' lifetime in days from now (from five minutes ago, for
    /// clocks slightly behind).
    #[arg(long, value_name = "N", conflicts_with_all = ["not_before", "not_after"],
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: Option<u32>,
    /// The SVIDs' start of validity: RFC 3339 (`2026-01-31T12:00:00Z`) or a
    /// date (`2026-01-31`, midnight UTC). Default: five minutes ago.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    not_before: Option<time::OffsetDateTime>,
    /// The SVIDs' end of validity, as `--not-before`. Default: a day after
    /// the start. A window entirely in the past makes an expired SVID.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    not_after: Option<time::OffsetDateTime>,
}

fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse()
        .map_err(|e: meshward_certs::CertError| e.to_string())
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    meshward_certs::parse_time(s).map_err(|e| e.to_string())
}

impl Args {
    /// The SVIDs' validity, and the CA's: thirty days from now, widened to
    /// cover every SVID it signs (an expired SVID still chains to it).
    fn validity(&self) -> Result<(Validity, Validity), meshward_certs::CertError> {
        let day = time::Duration::days(1);
        let svid = match (self.days, self.not_before, self.not_after) {
            (Some(days), _, _) => Validity::from_now(day * days),
            (None, None, None) => Validity::from_now(day),
            (None, Some(start), None) => Validity::new(start, start + day)?,
            (None, start, Some(end)) => Validity::new(
                start.unwrap_or_else(|| {
                    time::OffsetDateTime::now_utc() - time::Duration::minutes(5)
                }),
                end,
            )?,
        };
        let ca = Validity::from_now(time::Duration::days(30)).union(&svid);
        Ok((svid, ca))
    }
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (svid_validity, ca_validity) = args.validity()?;
    let ca = SpiffeCa::with_options(
        &args.trust_domain,
        &SvidOptions {
            key_type: args.key_type,
            validity: Some(ca_validity),
        },
    )?;
    let options = SvidOptions {
        key_type: args.key_type,
        validity: Some(svid_validity),
    };
    // Issued before anything is written, so a refused ID leaves no files.
    let sans: Vec<&str> = args.sans.iter().map(String::as_str).collect();
    let svids = args
        .ids
        .iter()
        .map(|id| ca.issue_with_options(id, &sans, &options))
        .collect::<Result<Vec<_>, _>>()?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;
    write(args.out.join("ca.pem"), &ca.cert_pem())?;
    println!(
        "{}: CA for {} ({})",
        args.out.join("ca.pem").display(),
        args.trust_domain,
        args.key_type
    );
    let expired = svid_validity.not_after() <= time::OffsetDateTime::now_utc();
    for (n, svid) in svids.iter().enumerate() {
        let cert = args.out.join(format!("svid-{n}.pem"));
        let key = args.out.join(format!("svid-{n}-key.pem"));
        write(cert.clone(), &svid.cert_pem)?;
        write(key.clone(), &svid.key_pem)?;
        println!(
            "{}: {} (key in {}; valid {} to {}{})",
            cert.display(),
            svid.spiffe_id,
            key.display(),
            svid_validity.not_before().date(),
            svid_validity.not_after().date(),
            if expired { ", expired" } else { "" }
        );
    }
    Ok(())
}
