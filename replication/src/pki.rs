//! The center's private certificate authority and the certificates it issues: one for the
//! center (server auth) and one per site's station (client auth, named for the site).

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The DNS-style name a station certificate carries for `site`.
pub fn station_dns_name(site: &str) -> Result<String> {
    let ok = !site.is_empty() && site.len() <= 32 && site.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(Error::Tls(format!(
            "site code {site:?} must be 1–32 letters, digits or '-'"
        )));
    }
    Ok(format!("{}.station.konvert", site.to_ascii_lowercase()))
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (secret; never printed).
    pub key_pem: Zeroizing<String>,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedCert { key: redacted }")
    }
}

/// The center's private CA.
pub struct Ca {
    /// The CA certificate (PEM), which both sides trust.
    pub cert_pem: String,
    key_pem: Zeroizing<String>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ca { key: redacted }")
    }
}

fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Tls(format!("{what}: {e}"))
}

impl Ca {
    /// A new CA (ECDSA P-256), valid for ten years.
    pub fn generate(name: &str) -> Result<Ca> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_err("generating the CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params
            .self_signed(&key)
            .map_err(tls_err("signing the CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Loads a CA from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem).map_err(tls_err("the CA key is not a PEM private key"))?;
        Issuer::from_ca_cert_pem(cert_pem, &key).map_err(tls_err("the CA certificate is not a PEM certificate"))?;
        let cert_der = rustls::pki_types::CertificateDer::from(pem_der(cert_pem)?);
        let spki = webpki::EndEntityCert::try_from(&cert_der)
            .map_err(|e| Error::Tls(format!("the CA certificate does not parse: {e:?}")))?
            .subject_public_key_info();
        if !spki_contains(spki.as_ref(), key.public_key_raw()) {
            return Err(Error::Tls("the CA key does not belong to the CA certificate".into()));
        }
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            key_pem: Zeroizing::new(key_pem.to_owned()),
        })
    }

    /// The CA's private key (PEM), to be written to a 0600 file.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn issue(
        &self,
        dns_name: String,
        common_name: &str,
        purpose: ExtendedKeyUsagePurpose,
        days: i64,
    ) -> Result<IssuedCert> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(tls_err("the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &ca_key).map_err(tls_err("the CA certificate"))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_err("generating a key"))?;
        let mut params = CertificateParams::new(vec![dns_name]).map_err(tls_err("certificate parameters"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        let now = time_now();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(tls_err("signing the certificate"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// The center's TLS certificate for `server_name`.
    pub fn issue_center(&self, server_name: &str) -> Result<IssuedCert> {
        self.issue(
            server_name.to_owned(),
            server_name,
            ExtendedKeyUsagePurpose::ServerAuth,
            825,
        )
    }

    /// A station certificate for `site`.
    pub fn issue_station(&self, site: &str) -> Result<IssuedCert> {
        self.issue(
            station_dns_name(site)?,
            &format!("station of site {site}"),
            ExtendedKeyUsagePurpose::ClientAuth,
            400,
        )
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn spki_contains(spki: &[u8], raw: &[u8]) -> bool {
    !raw.is_empty() && spki.windows(raw.len()).any(|w| w == raw)
}

/// The DER bytes of the first PEM block.
pub(crate) fn pem_der(pem: &str) -> Result<Vec<u8>> {
    let mut rd = pem.as_bytes();
    match rustls_pemfile_first(&mut rd) {
        Some(der) => Ok(der),
        None => Err(Error::Tls("no PEM certificate found".into())),
    }
}

fn rustls_pemfile_first(rd: &mut &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(rd)
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

#[cfg(test)]
#[path = "pki_tests.rs"]
mod tests;
