//! The center's private certificate authority and the certificates it issues: one for the
//! center (server auth) and one per site's station (client auth, named for the site).
//!
//! All keys are ECDSA P-256 (what rustls and webpki verify with the ring provider
//! everywhere). Private keys live in [`Zeroizing`] strings and are never Debug-printed
//! nor put into error messages.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// How long the CA certificate is valid.
const CA_DAYS: i64 = 3653;
/// How long the center's certificate is valid.
const CENTER_DAYS: i64 = 825;
/// How long a station certificate is valid (one exam season and then some).
const STATION_DAYS: i64 = 400;
/// Backdating of `notBefore`, so that a peer whose clock is a little behind accepts it.
const BACKDATE_DAYS: i64 = 1;
/// The longest site code.
const MAX_SITE_LEN: usize = 32;

/// The DNS-style name a station certificate carries for `site`: `<site>.station.konvert`.
///
/// `site` must be 1–32 ASCII letters, digits or `-`; it is lowercased (DNS names compare
/// case-insensitively, so `AB` and `ab` are the same station name).
pub fn station_dns_name(site: &str) -> Result<String> {
    let ok =
        !site.is_empty() && site.len() <= MAX_SITE_LEN && site.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(Error::Tls(format!(
            "site code {site:?} is not valid: it must be 1–{MAX_SITE_LEN} letters, digits or '-'; \
             check the site code in the configuration"
        )));
    }
    Ok(format!("{}.station.konvert", site.to_ascii_lowercase()))
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (secret: wiped on drop, never Debug-printed).
    pub key_pem: Zeroizing<String>,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The center's private CA: a self-signed ECDSA P-256 certificate and its key.
pub struct Ca {
    /// The CA certificate (PEM), which both sides trust.
    pub cert_pem: String,
    key_pem: Zeroizing<String>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Maps an rcgen error to [`Error::Tls`] with what was being done (rcgen's messages never
/// carry key material).
fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Tls(format!("{what}: {e}"))
}

impl Ca {
    /// A new self-signed CA named `name` (ECDSA P-256), valid for ten years.
    pub fn generate(name: &str) -> Result<Ca> {
        if name.trim().is_empty() {
            return Err(Error::Tls("the CA needs a non-empty name".into()));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_err("cannot generate the CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_err("cannot build the CA certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        // Path length 0: the CA signs end-entity certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(BACKDATE_DAYS);
        params.not_after = now + Duration::days(CA_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(tls_err("cannot sign the CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Loads a CA from its certificate and private key (both PEM); refuses a key that does
    /// not belong to the certificate and a certificate that is not a CA.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem).map_err(|_| {
            Error::Tls("the CA key is not a PEM private key (PKCS#8); check the path of the CA key file".into())
        })?;
        let cert_der = first_cert(cert_pem, "the CA certificate")?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, &key).map_err(|e| {
            Error::Tls(format!(
                "the CA certificate cannot be read: {e}; check the path of the CA certificate file"
            ))
        })?;
        let parsed = webpki::EndEntityCert::try_from(&cert_der)
            .map_err(|e| Error::Tls(format!("the CA certificate cannot be parsed: {e}")))?;
        if parsed.subject_public_key_info().as_ref() != key.subject_public_key_info().as_slice() {
            return Err(Error::Tls(
                "the CA key does not belong to the CA certificate; use the key and certificate \
                 written together when the CA was created"
                    .into(),
            ));
        }
        if !issuer.key_usages().is_empty() && !issuer.key_usages().contains(&KeyUsagePurpose::KeyCertSign) {
            return Err(Error::Tls(
                "the given certificate is not a CA certificate (it may not sign certificates); \
                 use the CA certificate, not a center or station certificate"
                    .into(),
            ));
        }
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            key_pem: Zeroizing::new(key_pem.to_owned()),
        })
    }

    /// The CA's private key (PEM), for the caller to write to a 0600 file.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues an end-entity certificate for `san` with one extended key usage.
    fn issue(&self, san: String, common_name: &str, purpose: ExtendedKeyUsagePurpose, days: i64) -> Result<IssuedCert> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(|_| Error::Tls("the CA key cannot be read".into()))?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &ca_key).map_err(tls_err("the CA certificate"))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_err("cannot generate a key"))?;
        let mut params = CertificateParams::new(vec![san]).map_err(tls_err("invalid certificate name"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(BACKDATE_DAYS);
        params.not_after = now + Duration::days(days);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(tls_err("cannot sign the certificate"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// The center's TLS certificate (serverAuth) for `server_name`, e.g. `center.konvert`
    /// (an IP address becomes an IP SAN).
    pub fn issue_center(&self, server_name: &str) -> Result<IssuedCert> {
        if server_name.is_empty() || server_name.len() > 253 || !server_name.is_ascii() {
            return Err(Error::Tls(format!(
                "center name {server_name:?} is not a valid DNS name or IP address; check the center name in the configuration"
            )));
        }
        self.issue(
            server_name.to_owned(),
            server_name,
            ExtendedKeyUsagePurpose::ServerAuth,
            CENTER_DAYS,
        )
    }

    /// A station certificate (clientAuth) for `site`, named [`station_dns_name`]`(site)`,
    /// valid for 400 days.
    pub fn issue_station(&self, site: &str) -> Result<IssuedCert> {
        self.issue(
            station_dns_name(site)?,
            &format!("station of site {site}"),
            ExtendedKeyUsagePurpose::ClientAuth,
            STATION_DAYS,
        )
    }
}

/// The first certificate in `pem`; `what` names it in the error.
fn first_cert(pem: &str, what: &str) -> Result<CertificateDer<'static>> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(Error::Tls(format!("{what} is not valid PEM: {e}"))),
        None => Err(Error::Tls(format!(
            "{what} holds no PEM certificate (no \"BEGIN CERTIFICATE\" block); check the file"
        ))),
    }
}

#[cfg(test)]
#[path = "pki_tests.rs"]
mod tests;
