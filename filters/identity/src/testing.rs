//! Test fixtures: SPIFFE CAs, SVIDs and signed tokens, all made fresh in the
//! tests with rcgen, ring (through rcgen) and the rsa crate.

use std::sync::OnceLock;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};

/// The clock every test uses: 2027-01-01T00:00:00Z.
pub(crate) const NOW: i64 = 1_798_761_600;
pub(crate) const DAY: i64 = 86_400;

pub(crate) struct Ca {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) der: Vec<u8>,
}

fn ymd(offset_days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(NOW + offset_days * DAY).unwrap()
}

fn ca_params(name: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(path_len.map_or(
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained,
    ));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = ymd(-365);
    p.not_after = ymd(365);
    p
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        Self::with_key(name, KeyPair::generate().unwrap(), None)
    }

    pub(crate) fn with_key(name: &str, key: KeyPair, path_len: Option<u8>) -> Self {
        Self::from_params(ca_params(name, path_len), key)
    }

    pub(crate) fn from_params(params: CertificateParams, key: KeyPair) -> Self {
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Self { params, key, der }
    }

    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// An intermediate CA signed by this one, shaped by `edit`.
    pub(crate) fn intermediate(
        &self,
        name: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = ca_params(name, None);
        edit(&mut params);
        let der = params
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .to_vec();
        Self { params, key, der }
    }

    /// A leaf signed by this CA.
    pub(crate) fn leaf(&self, spec: &LeafSpec) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        spec.params()
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .to_vec()
    }

    pub(crate) fn bundle_key(&self) -> serde_json::Value {
        serde_json::json!({
            "use": "x509-svid",
            "kty": "EC",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.der)],
        })
    }
}

/// What a leaf looks like; the default is a valid X.509-SVID.
#[derive(Clone)]
pub(crate) struct LeafSpec {
    pub(crate) uris: Vec<String>,
    pub(crate) dns: Vec<String>,
    pub(crate) is_ca: IsCa,
    pub(crate) key_usages: Vec<KeyUsagePurpose>,
    pub(crate) ekus: Vec<ExtendedKeyUsagePurpose>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) extra: Vec<CustomExtension>,
}

pub(crate) const WORKLOAD: &str = "spiffe://example.org/ns/web/sa/frontend";

impl Default for LeafSpec {
    fn default() -> Self {
        Self {
            uris: vec![WORKLOAD.to_owned()],
            dns: vec![],
            is_ca: IsCa::ExplicitNoCa,
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            ekus: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            not_before: NOW - DAY,
            not_after: NOW + DAY,
            extra: vec![],
        }
    }
}

impl LeafSpec {
    pub(crate) fn uri(id: &str) -> Self {
        Self {
            uris: vec![id.to_owned()],
            ..Self::default()
        }
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.subject_alt_names = self
            .uris
            .iter()
            .map(|u| SanType::URI(u.as_str().try_into().unwrap()))
            .chain(
                self.dns
                    .iter()
                    .map(|d| SanType::DnsName(d.as_str().try_into().unwrap())),
            )
            .collect();
        p.is_ca = self.is_ca;
        p.key_usages = self.key_usages.clone();
        p.extended_key_usages = self.ekus.clone();
        p.not_before = time::OffsetDateTime::from_unix_timestamp(self.not_before).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(self.not_after).unwrap();
        p.custom_extensions = self.extra.clone();
        p
    }
}

pub(crate) fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// URL-encodes PEM the way Envoy writes XFCC `Cert=` values.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A signing key for tokens, with its public JWK.
pub(crate) struct TokenKey {
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: serde_json::Value,
}

impl TokenKey {
    pub(crate) fn ec(kid: &str) -> Self {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self::from_pkcs8(
            kid,
            Algorithm::ES256,
            &kp.serialize_der(),
            EncodingKey::from_ec_der,
        )
    }

    pub(crate) fn ed(kid: &str) -> Self {
        // jsonwebtoken reads only the 48-byte PKCS#8 v1 form (ring writes v2),
        // so write it by hand: a fixed header, then the 32-byte seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&rand::random::<[u8; 32]>());
        Self::from_pkcs8(kid, Algorithm::EdDSA, &der, EncodingKey::from_ed_der)
    }

    pub(crate) fn rsa(kid: &str, alg: Algorithm) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let der = rsa_key().to_pkcs1_der().unwrap();
        Self::from_pkcs8(kid, alg, der.as_bytes(), EncodingKey::from_rsa_der)
    }

    fn from_pkcs8(kid: &str, alg: Algorithm, der: &[u8], f: fn(&[u8]) -> EncodingKey) -> Self {
        let encoding = f(der);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = kid.into();
        Self { alg, encoding, jwk }
    }

    pub(crate) fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap()
    }

    /// Signs `claims` with this key's algorithm and `kid`.
    pub(crate) fn sign(&self, claims: &serde_json::Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&h, claims, &self.encoding).unwrap()
    }

    /// Signs `claims` with this key's algorithm and `kid`, and `typ` as
    /// given (`None`: no `typ` at all).
    pub(crate) fn sign_with_typ(&self, claims: &serde_json::Value, typ: Option<&str>) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid().to_owned());
        h.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.encoding).unwrap()
    }

    pub(crate) fn sign_without_kid(&self, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding).unwrap()
    }
}

/// One RSA key per test binary: generating it is the slow part.
pub(crate) fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap())
}

/// An rcgen key pair over the shared RSA key.
pub(crate) fn rsa_key_pair(alg: &'static SignatureAlgorithm) -> KeyPair {
    use rsa::pkcs8::EncodePrivateKey as _;
    let der = rsa_key().to_pkcs8_der().unwrap();
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, alg).unwrap()
}

/// A token with any header and payload and a garbage signature, for the
/// cases a real signer refuses to make.
pub(crate) fn forged(header: &serde_json::Value, claims: &serde_json::Value, sig: &[u8]) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        e(header.to_string().as_bytes()),
        e(claims.to_string().as_bytes()),
        e(sig)
    )
}
