//! The center's private certificate authority and the certificates it issues: one for the
//! center (server auth) and one per site's station (client auth, named for the site).
//!
//! All keys are ECDSA P-256 (what rustls and webpki verify with the ring provider
//! everywhere). Private keys live in [`Zeroizing`] strings and are never Debug-printed
//! nor put into error messages.
//!
//! Every certificate gets a random serial number; a station certificate is revoked by
//! putting its serial on the CA's revocation list ([`Ca::revocation_list`]), which the
//! center checks with [`verify_crl`] before it enforces it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams,
    SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
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

/// The DNS-style name a relay's server certificate carries: `<relay>.relay.konvert`.
/// Downstream stations connect to the relay by this name; it never matches the center's
/// name nor a station's, so a relay's certificate cannot pass for either.
pub fn relay_dns_name(relay: &str) -> Result<String> {
    let station = station_dns_name(relay)?;
    Ok(station.replacen(".station.konvert", ".relay.konvert", 1))
}

/// The DNS-style name a region's mirror certificate carries: `region-NN.mirror.konvert`
/// for region code `NN` (1–99, two digits). Issued by the federal node's CA only, it never
/// matches a station's or a center's name.
pub fn region_dns_name(code: u8) -> Result<String> {
    if !(1..=99).contains(&code) {
        return Err(Error::Tls(format!(
            "region code {code} is not valid: regions are numbered 1–99; check the region code"
        )));
    }
    Ok(format!("region-{code:02}.mirror.konvert"))
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
        params.serial_number = Some(SerialNumber::from_slice(Serial::random()?.as_bytes()));
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
    /// valid for 400 days, with a random serial number ([`Serial::of_cert_pem`] reads it).
    pub fn issue_station(&self, site: &str) -> Result<IssuedCert> {
        self.issue(
            station_dns_name(site)?,
            &format!("station of site {site}"),
            ExtendedKeyUsagePurpose::ClientAuth,
            STATION_DAYS,
        )
    }

    /// A region's client certificate (clientAuth) for the records' mirror, named
    /// [`region_dns_name`]`(code)`: the federal node takes the region code from it.
    pub fn issue_region(&self, code: u8) -> Result<IssuedCert> {
        self.issue(
            region_dns_name(code)?,
            &format!("records of region {code:02}"),
            ExtendedKeyUsagePurpose::ClientAuth,
            CENTER_DAYS,
        )
    }

    /// A relay's server certificate (serverAuth) named [`relay_dns_name`]`(relay)`, which
    /// the stations downstream of the relay check; valid as long as a station certificate.
    /// The relay's client certificate upstream is an ordinary [`Ca::issue_station`].
    pub fn issue_relay_server(&self, relay: &str) -> Result<IssuedCert> {
        self.issue(
            relay_dns_name(relay)?,
            &format!("relay {relay}"),
            ExtendedKeyUsagePurpose::ServerAuth,
            STATION_DAYS,
        )
    }

    /// A revocation list signed by this CA naming the `revoked` station certificates, valid
    /// from `this_update` until `next_update` (after which the center refuses every station
    /// until a new list is signed). Its CRL number is `this_update` in milliseconds, so a
    /// later list has a larger number.
    pub fn revocation_list(
        &self,
        revoked: &[RevokedStation],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Crl> {
        if next_update <= this_update {
            return Err(Error::Tls(
                "a revocation list must stay valid for some time: its next update must be after this one".into(),
            ));
        }
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(|_| Error::Tls("the CA key cannot be read".into()))?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &ca_key).map_err(tls_err("the CA certificate"))?;
        let number = u64::try_from(this_update.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(Serial::from_bytes(&number.to_be_bytes()).as_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                    revocation_time: r.revoked_at,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&issuer).map_err(|e| match e {
            rcgen::Error::IssuerNotCrlSigner => Error::Tls(
                "this CA certificate was made without the CRL-signing key usage (a center created before \
                 station revocation existed), so it cannot sign a revocation list; create a new center with \
                 `konvert-center init` and enroll its stations again"
                    .into(),
            ),
            other => Error::Tls(format!("cannot sign the revocation list: {other}")),
        })?;
        let pem = crl.pem().map_err(tls_err("cannot encode the revocation list"))?;
        Ok(Crl {
            der: crl.der().clone(),
            pem,
        })
    }
}

/// A certificate's serial number: big-endian bytes without leading zeros, shown as
/// lowercase hex (as `openssl x509 -serial` shows it, in lowercase).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// Length of a new random serial number in bytes (RFC 5280 allows up to 20).
const SERIAL_LEN: usize = 16;

impl Serial {
    /// The serial with these big-endian bytes (leading zero bytes are dropped).
    pub fn from_bytes(bytes: &[u8]) -> Serial {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Serial(bytes[start..].to_vec())
    }

    /// The big-endian bytes, without leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A new random positive serial of 16 bytes.
    pub fn random() -> Result<Serial> {
        let mut b = [0u8; SERIAL_LEN];
        konvert_crypto::random_bytes(&mut b)?;
        // Positive (top bit clear) and exactly 16 bytes long (first byte non-zero).
        b[0] = (b[0] & 0x7f) | 0x01;
        Ok(Serial(b.to_vec()))
    }

    /// The serial number of a DER certificate.
    pub fn of_cert_der(der: &[u8]) -> Result<Serial> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::Tls(format!("the certificate cannot be parsed: {e}")))?;
        Ok(Serial::from_bytes(cert.raw_serial()))
    }

    /// The serial number of the first certificate in `pem`.
    pub fn of_cert_pem(pem: &str) -> Result<Serial> {
        Serial::of_cert_der(&first_cert(pem, "the certificate")?)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = Error;

    /// Hex digits, upper or lower case, optionally separated by `:` (as openssl prints them).
    fn from_str(s: &str) -> Result<Serial> {
        let digits: String = s.trim().chars().filter(|c| *c != ':').collect();
        let digits = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        match hex::decode(&digits) {
            Ok(b) if !b.is_empty() && b.len() <= 20 => Ok(Serial::from_bytes(&b)),
            _ => Err(Error::Tls(format!(
                "{s:?} is not a certificate serial number: give 1–40 hex digits, as `konvert keys stations` shows them"
            ))),
        }
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Serial, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A station certificate to put on the revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedStation {
    /// Its serial number.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
}

/// A signed certificate revocation list.
#[derive(Debug, Clone)]
pub struct Crl {
    /// DER, as rustls takes it.
    pub der: CertificateRevocationListDer<'static>,
    /// PEM (`BEGIN X509 CRL`), as the center's CRL file holds it.
    pub pem: String,
}

/// A revocation list that [`verify_crl`] found signed by the CA.
#[derive(Debug, Clone)]
pub struct VerifiedCrl {
    /// DER, as rustls takes it.
    pub der: CertificateRevocationListDer<'static>,
    /// When it was signed.
    pub this_update: OffsetDateTime,
    /// Until when it is valid; after that the center refuses every station.
    pub next_update: OffsetDateTime,
    /// The revoked serial numbers and when each was revoked.
    pub revoked: BTreeMap<Serial, OffsetDateTime>,
    /// Its CRL number: konvert's lists carry `this_update` in milliseconds, so two lists
    /// signed within the same second still tell which is newer.
    pub number: u64,
}

impl VerifiedCrl {
    /// The list as it is passed on to relays: versioned by its CRL number.
    pub fn as_update(&self) -> crate::driver::SignedUpdate {
        crate::driver::SignedUpdate {
            version: self.number,
            signed: self.der.as_ref().to_vec(),
        }
    }

    /// Whether the list has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.next_update
    }

    /// The revoked entries, to sign them again into a fresh list.
    pub fn revoked_stations(&self) -> Vec<RevokedStation> {
        self.revoked
            .iter()
            .map(|(serial, at)| RevokedStation {
                serial: serial.clone(),
                revoked_at: *at,
            })
            .collect()
    }
}

/// Reads a revocation list (PEM or DER) and checks that the CA in `ca_cert_pem` signed it
/// and that it says until when it is valid. An expired list is returned all the same
/// ([`VerifiedCrl::is_expired`]): whether to use it is the caller's decision.
pub fn verify_crl(ca_cert_pem: &str, crl: &[u8]) -> Result<VerifiedCrl> {
    let der: CertificateRevocationListDer<'static> = if crl.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::from_pem_slice(crl).map_err(|e| {
            Error::Tls(format!(
                "the revocation list is not valid PEM ({e}); it must hold one \"BEGIN X509 CRL\" block"
            ))
        })?
    } else {
        CertificateRevocationListDer::from(crl.to_vec())
    };
    let ca_der = first_cert(ca_cert_pem, "the CA certificate")?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| Error::Tls(format!("the CA certificate cannot be parsed: {e}")))?;
    let (rest, list) = x509_parser::parse_x509_crl(&der)
        .map_err(|e| Error::Tls(format!("the revocation list cannot be parsed: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Tls("the revocation list has trailing bytes".into()));
    }
    if list.issuer().as_raw() != ca.subject().as_raw() || list.verify_signature(ca.public_key()).is_err() {
        return Err(Error::Tls(
            "the revocation list is not signed by this center's CA; it was made for another center \
             or altered — write it again with `konvert keys revoke-station` or `konvert keys renew-crl`"
                .into(),
        ));
    }
    let time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|_| Error::Tls("the revocation list has a date out of range".into()))
    };
    let this_update = time(list.last_update())?;
    let Some(next) = list.next_update() else {
        return Err(Error::Tls(
            "the revocation list has no next-update date; konvert needs one to know when it expires".into(),
        ));
    };
    let next_update = time(next)?;
    let mut revoked = BTreeMap::new();
    for r in list.iter_revoked_certificates() {
        revoked.insert(Serial::from_bytes(r.raw_serial()), time(r.revocation_date)?);
    }
    // A list without a number (not konvert's) counts by its signing time.
    let by_time = u64::try_from(this_update.unix_timestamp())
        .unwrap_or(0)
        .saturating_mul(1000);
    let number = list
        .crl_number()
        .map(|n| n.to_bytes_be())
        .filter(|b| b.len() <= 8)
        .map_or(by_time, |b| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)));
    Ok(VerifiedCrl {
        der,
        this_update,
        next_update,
        revoked,
        number,
    })
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
