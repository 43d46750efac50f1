//! `meshward certs`: a SPIFFE CA and SVIDs as PEM files.

use std::path::PathBuf;

use meshward_certs::SpiffeCa;

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
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let ca = SpiffeCa::new(&args.trust_domain)?;
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("ca.pem"), ca.cert_pem())?;
    println!(
        "{}: CA for {}",
        args.out.join("ca.pem").display(),
        args.trust_domain
    );
    for (n, id) in args.ids.iter().enumerate() {
        let sans: Vec<&str> = args.sans.iter().map(String::as_str).collect();
        let svid = ca.issue(id, &sans)?;
        let cert = args.out.join(format!("svid-{n}.pem"));
        let key = args.out.join(format!("svid-{n}-key.pem"));
        std::fs::write(&cert, &svid.cert_pem)?;
        std::fs::write(&key, &svid.key_pem)?;
        println!("{}: {id} (key in {})", cert.display(), key.display());
    }
    Ok(())
}
