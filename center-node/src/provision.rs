//! Setting up a center (CA, TLS certificate, receipt key, config), taking the public half
//! of its decryption key (born on the loader's side, `crate::center_key`), and enrolling a
//! site's station (a station certificate and a ready site config).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use konvert_crypto::{keyfile, RecipientPublicKey, RecipientSecretKey, SigningKey, VerifyingKey};
use konvert_replication::pki::{relay_dns_name, station_dns_name, Ca, Serial};
use time::OffsetDateTime;

use crate::config::{CenterConfig, DEFAULT_MAX_PACKET_BYTES};
use crate::stations;
use crate::{Error, Result};

/// What `init_center` made.
#[derive(Debug, Clone)]
pub struct CenterInit {
    /// The written `center.toml`.
    pub config_path: PathBuf,
    /// The config itself.
    pub config: CenterConfig,
    /// The receipt key's public half: edges verify receipts with it.
    pub receipt_public: VerifyingKey,
}

fn write_secret_text(path: &Path, text: &str) -> Result<()> {
    keyfile::write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(())
}

fn write_public_text(path: &Path, text: &str) -> Result<()> {
    keyfile::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(())
}

/// Creates a new center in `dir`: `pki/` (CA, center certificate, an empty station
/// revocation list), `keys/receipt.key`, `data/`, and `center.toml`. No decryption key:
/// it is born on the loader's workstation, and the receiver takes only its public half
/// ([`install_recipient_key`]). Refuses to overwrite an existing center.
pub fn init_center(
    dir: &Path,
    name: &str,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
) -> Result<CenterInit> {
    let config_path = dir.join("center.toml");
    if config_path.exists() {
        return Err(Error::Config {
            path: config_path,
            message: "a center already exists here; choose another folder".into(),
        });
    }
    for sub in ["pki", "keys", "data", "registry"] {
        fs::create_dir_all(dir.join(sub)).map_err(Error::file(dir.join(sub)))?;
    }
    let ca = Ca::generate(&format!("konvert CA for {name}"))?;
    write_public_text(&dir.join("pki/ca.pem"), &ca.cert_pem)?;
    write_secret_text(&dir.join("pki/ca.key"), ca.key_pem())?;
    let center_cert = ca.issue_center(name)?;
    write_public_text(&dir.join("pki/center.pem"), &center_cert.cert_pem)?;
    write_secret_text(&dir.join("pki/center.key"), &center_cert.key_pem)?;
    let receipt_key = SigningKey::generate()?;
    keyfile::write_signing_key(&dir.join("keys/receipt.key"), &receipt_key)?;
    write_public_text(
        &dir.join("keys/receipt.pub"),
        &format!("{}\n", receipt_key.verifying_key()),
    )?;
    let config = CenterConfig {
        name: name.to_owned(),
        listen,
        metrics_listen,
        data_dir: "data".into(),
        records: "records".into(),
        records_url: None,
        ca_cert: "pki/ca.pem".into(),
        ca_key: Some("pki/ca.key".into()),
        crl: "pki/stations.crl".into(),
        cert: "pki/center.pem".into(),
        key: "pki/center.key".into(),
        receipt_key: "keys/receipt.key".into(),
        workstation_key: None,
        max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
        max_connections: 1024,
        authority: "registry/authority.toml".into(),
        registry: "registry/registry.bin".into(),
        review_window_minutes: 240,
        ingress_mbit: None,
        time_zone: konvert_exam::SiteZone::moscow(),
        site_time_zones: Default::default(),
        min_free_percent: crate::config::DEFAULT_MIN_FREE_PERCENT,
    };
    config.save(&config_path)?;
    let config = CenterConfig::load(&config_path)?;
    let crl = stations::write_crl(&config, &ca, OffsetDateTime::now_utc())?;
    // The record of the list in force is born with the center: a first `serve` that fails
    // half-way (no authority.toml yet) leaves state behind, and the next start would then
    // take the missing record for a deleted one.
    fs::create_dir_all(&config.data_dir).map_err(Error::file(&config.data_dir))?;
    konvert_replication::crl_floor::CrlFloor::in_dir(&config.data_dir).raise_complete(&crl)?;
    Ok(CenterInit {
        config_path,
        config,
        receipt_public: receipt_key.verifying_key(),
    })
}

/// Where the receiver keeps the public half of the center key edges seal to.
pub const RECIPIENT_PUB: &str = "pki/recipient.pub";

/// The receiver takes the public half of the center's decryption key (the file
/// `konvert-center loader new-key` wrote): stations enrolled from now on seal to it.
/// Replaces the one held before (a rotated key). Returns the file written.
pub fn install_recipient_key(center_dir: &Path, key: &RecipientPublicKey) -> Result<PathBuf> {
    let path = center_dir.join(RECIPIENT_PUB);
    write_public_text(&path, &format!("{key}\n"))?;
    Ok(path)
}

/// For drills, benches and tests that play the receiver and the loader in one process:
/// [`init_center`], and a center key generated in memory (never written) whose public
/// half the receiver takes. Real centers use `konvert-center loader new-key`.
pub fn init_center_with_key(
    dir: &Path,
    name: &str,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
) -> Result<(CenterInit, RecipientSecretKey)> {
    let init = init_center(dir, name, listen, metrics_listen)?;
    let key = RecipientSecretKey::generate()?;
    install_recipient_key(dir, &key.public_key())?;
    Ok((init, key))
}

/// The public facts an edge needs about its center.
#[derive(Debug, Clone)]
pub struct CenterFacts {
    /// Address edges connect to.
    pub address: String,
    /// The center's TLS name.
    pub name: String,
    /// The recipient key edges seal to.
    pub recipient_public: RecipientPublicKey,
    /// The key receipts are signed with.
    pub receipt_public: VerifyingKey,
}

impl CenterFacts {
    /// Reads the public keys in `center_dir`: the receipt key `init_center` wrote and the
    /// center key's public half [`install_recipient_key`] took.
    pub fn read(center_dir: &Path, address: &str, name: &str) -> Result<CenterFacts> {
        let read = |p: PathBuf| fs::read_to_string(&p).map_err(Error::file(p));
        let recipient = center_dir.join(RECIPIENT_PUB);
        if !recipient.exists() {
            return Err(Error::Config {
                path: recipient,
                message: "the center has no decryption key yet, so a station would have nothing to seal to: \
                          the specialists create it on the loader's workstation (`konvert-center loader new-key`) \
                          and the receiver takes its public half (`konvert-center set-center-key`)"
                    .into(),
            });
        }
        Ok(CenterFacts {
            address: address.to_owned(),
            name: name.to_owned(),
            recipient_public: RecipientPublicKey::from_hex(&read(recipient)?)?,
            receipt_public: VerifyingKey::from_hex(&read(center_dir.join("keys/receipt.pub"))?)?,
        })
    }
}

/// What enrolling a station or relay needs of the center's folder.
struct CenterPki {
    /// The station CA, with its key.
    ca: Ca,
    /// center.toml, if it loads.
    config: Option<CenterConfig>,
    /// The station index (center.toml's, else the default path).
    index_path: PathBuf,
}

impl CenterPki {
    fn open(center_dir: &Path) -> Result<Self> {
        let read = |p: PathBuf| fs::read_to_string(&p).map_err(Error::file(p));
        let ca = Ca::from_pem(
            &read(center_dir.join("pki/ca.pem"))?,
            &read(center_dir.join("pki/ca.key"))?,
        )?;
        let config = CenterConfig::load(&center_dir.join("center.toml")).ok();
        let index_path = match &config {
            Some(cfg) => cfg.station_index(),
            None => center_dir.join("pki/stations.toml"),
        };
        Ok(CenterPki { ca, config, index_path })
    }
}

/// The station whose files a folder already holds, which enrolling over it would replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingStation {
    /// The site (or relay id) its config names, when it can be read.
    pub station: Option<String>,
    /// Its certificate's serial number, when the certificate can be read.
    pub serial: Option<Serial>,
}

impl std::fmt::Display for ExistingStation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.station {
            Some(s) => write!(f, "station {s}")?,
            None => f.write_str("a station")?,
        }
        match &self.serial {
            Some(serial) => write!(f, ", certificate serial {serial}"),
            None => f.write_str(", certificate unreadable"),
        }
    }
}

/// The files that make a folder a station's: its key, its certificate, its config.
const STATION_FILES: [&str; 4] = ["station.key", "station.pem", "site.toml", "relay.toml"];

/// What station a folder already holds, if any of a station's files are in it.
pub fn existing_station(out: &Path) -> Option<ExistingStation> {
    if !STATION_FILES.iter().any(|f| out.join(f).symlink_metadata().is_ok()) {
        return None;
    }
    let serial = fs::read_to_string(out.join("station.pem"))
        .ok()
        .and_then(|pem| Serial::of_cert_pem(&pem).ok());
    let station = ["site.toml", "relay.toml"].iter().find_map(|name| {
        let text = fs::read_to_string(out.join(name)).ok()?;
        let value: toml::Table = text.parse().ok()?;
        let key = if *name == "site.toml" { "site" } else { "relay" };
        value.get(key)?.as_str().map(str::to_owned)
    });
    Some(ExistingStation { station, serial })
}

/// Refuses `out` when it holds a station's files, unless `force`; says what is replaced.
fn check_out_folder(out: &Path, force: bool) -> Result<Option<ExistingStation>> {
    match existing_station(out) {
        Some(held) if !force => Err(Error::StationFolderInUse {
            out: out.to_owned(),
            held: held.to_string(),
        }),
        held => Ok(held),
    }
}

/// Issues a station certificate for `site` with the center's CA and writes a ready-to-edit
/// site folder to `out`: `ca.pem`, `station.pem`, `station.key` (0600) and `site.toml`.
/// The certificate's serial number is recorded in the center's station index. Refuses a
/// folder that already holds a station's files ([`enroll_station_replacing`] overrides).
pub fn enroll_station(center_dir: &Path, site: &str, facts: &CenterFacts, out: &Path) -> Result<PathBuf> {
    enroll_station_replacing(center_dir, site, facts, out, false).map(|(path, _)| path)
}

/// [`enroll_station`], but with `force` it writes over a station's files already in `out`
/// and returns the station it replaced (whose certificate stays valid until revoked).
pub fn enroll_station_replacing(
    center_dir: &Path,
    site: &str,
    facts: &CenterFacts,
    out: &Path,
    force: bool,
) -> Result<(PathBuf, Option<ExistingStation>)> {
    let replaced = check_out_folder(out, force)?;
    let CenterPki { ca, index_path, .. } = CenterPki::open(center_dir)?;
    // A relay's station certificate carries the same kind of name: a site's station with a
    // relay's id would speak for the relay and carry its sites.
    if stations::StationIndex::load(&index_path)?.carried_by(site).is_some() {
        return Err(Error::Stations(format!(
            "{site} is a relay's id, not a site code; enroll the site under its own code"
        )));
    }
    let station = ca.issue_station(site)?;
    let serial = Serial::of_cert_pem(&station.cert_pem)?;
    fs::create_dir_all(out).map_err(Error::file(out))?;
    // Recorded before the site gets it: a certificate the index does not know could not
    // be revoked by site.
    stations::record_issued(&index_path, &serial, site, OffsetDateTime::now_utc())?;
    write_public_text(&out.join("ca.pem"), &ca.cert_pem)?;
    write_public_text(&out.join("station.pem"), &station.cert_pem)?;
    write_secret_text(&out.join("station.key"), &station.key_pem)?;
    let site_toml = out.join("site.toml");
    let text = format!(
        "# konvert-edge site configuration. Paths are relative to this file.\n\
         site = \"{site}\"\n\
         # The site's IANA time zone: the deadline is 23:59 local time (e.g. Europe/Kaliningrad,\n\
         # Europe/Moscow, Asia/Novosibirsk, Asia/Kamchatka).\n\
         time_zone = \"Europe/Moscow\"\n\
         data_dir = \"data\"\n\
         # The member (ГЭК) token file.\n\
         token = \"member.token\"\n\n\
         [center]\n\
         address = \"{address}\"\n\
         server_name = \"{name}\"\n\
         ca_cert = \"ca.pem\"\n\
         station_cert = \"station.pem\"\n\
         station_key = \"station.key\"\n\
         recipient_key = \"{recipient}\"\n\
         receipt_key = \"{receipt}\"\n",
        address = facts.address,
        name = facts.name,
        recipient = facts.recipient_public,
        receipt = facts.receipt_public,
    );
    write_public_text(&site_toml, &text)?;
    Ok((site_toml, replaced))
}

/// What a relay is enrolled as.
#[derive(Debug, Clone)]
pub struct RelayEnrollment {
    /// The relay's station id, e.g. `mouo-01` (never a site code).
    pub relay: String,
    /// The sites whose packets it may carry.
    pub carries: Vec<String>,
    /// Relays downstream of it whose packets it takes (written to `relay.toml`).
    pub downstream_relays: Vec<String>,
    /// Where it listens for downstream stations.
    pub listen: SocketAddr,
}

/// Enrolls a relay: the center's CA issues it a station certificate for its own id (its
/// client certificate upstream) and a server certificate named
/// [`relay_dns_name`]`(relay)` that downstream stations check; the station index records
/// the sites it may carry, which the center enforces. Writes `ca.pem`, `station.pem`,
/// `station.key`, `relay-server.pem`, `relay-server.key` (keys 0600) and `relay.toml` to
/// `out`. `upstream` says where it forwards to: the center (`facts.address`, `facts.name`)
/// or another relay (its address and [`relay_dns_name`]). Refuses a folder that already
/// holds a station's files ([`enroll_relay_replacing`] overrides).
pub fn enroll_relay(center_dir: &Path, relay: &RelayEnrollment, facts: &CenterFacts, out: &Path) -> Result<PathBuf> {
    enroll_relay_replacing(center_dir, relay, facts, out, false).map(|(path, _)| path)
}

/// [`enroll_relay`], but with `force` it writes over a station's files already in `out`
/// and returns the station it replaced.
pub fn enroll_relay_replacing(
    center_dir: &Path,
    relay: &RelayEnrollment,
    facts: &CenterFacts,
    out: &Path,
    force: bool,
) -> Result<(PathBuf, Option<ExistingStation>)> {
    let replaced = check_out_folder(out, force)?;
    if relay.carries.is_empty() {
        return Err(Error::Stations(
            "a relay must be enrolled to carry at least one site; give the sites it carries".into(),
        ));
    }
    for site in relay.carries.iter().chain(&relay.downstream_relays) {
        station_dns_name(site)?;
    }
    let server_name = relay_dns_name(&relay.relay)?;
    let CenterPki {
        ca,
        config: center_cfg,
        index_path,
    } = CenterPki::open(center_dir)?;
    let index = stations::StationIndex::load(&index_path)?;
    if index
        .stations
        .iter()
        .any(|r| r.carries.is_empty() && r.site.eq_ignore_ascii_case(&relay.relay))
    {
        return Err(Error::Stations(format!(
            "{} is a site's station, not a relay; give the relay an id of its own (e.g. mouo-01)",
            relay.relay
        )));
    }
    // The station revocation list in force goes along, so the relay enforces it from its
    // very first start (it then keeps the newer ones upstream passes on) — where the
    // relay's data folder keeps it (`konvert_edge::relay::REVOCATION_FILE`). A relay does
    // not start without one, so nothing is issued without it.
    let crl = center_cfg.map_or_else(|| center_dir.join("pki/stations.crl"), |c| c.crl);
    if !crl.is_file() {
        return Err(Error::Stations(format!(
            "the center has no station revocation list at {}, and a relay does not start without one; \
             write it with `konvert keys renew-crl --center {}`, then enroll the relay again",
            crl.display(),
            center_dir.display()
        )));
    }
    let station = ca.issue_station(&relay.relay)?;
    let server = ca.issue_relay_server(&relay.relay)?;
    let serial = Serial::of_cert_pem(&station.cert_pem)?;
    fs::create_dir_all(out).map_err(Error::file(out))?;
    stations::record_issued_relay(
        &index_path,
        &serial,
        &relay.relay,
        &relay.carries,
        OffsetDateTime::now_utc(),
    )?;
    write_public_text(&out.join("ca.pem"), &ca.cert_pem)?;
    write_public_text(&out.join("station.pem"), &station.cert_pem)?;
    write_secret_text(&out.join("station.key"), &station.key_pem)?;
    write_public_text(&out.join("relay-server.pem"), &server.cert_pem)?;
    write_secret_text(&out.join("relay-server.key"), &server.key_pem)?;
    let list = |v: &[String]| v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "# konvert-edge relay configuration (`konvert-edge relay --config relay.toml`).\n\
         # Paths are relative to this file. Downstream stations connect to `listen` with\n\
         # server_name = \"{server_name}\" in their site.toml.\n\
         relay = \"{id}\"\n\
         listen = \"{listen}\"\n\
         data_dir = \"data\"\n\
         # The sites this relay is enrolled to carry (the center enforces its own record).\n\
         carry = [{carry}]\n\
         # Relays downstream of this one whose packets it takes.\n\
         relays = [{relays}]\n\
         server_cert = \"relay-server.pem\"\n\
         server_key = \"relay-server.key\"\n\
         # The share of the data folder's disk kept free: below it no new packet is taken\n\
         # (the regulations keep 5 %, 002:8253).\n\
         min_free_percent = {min_free}\n\n\
         [upstream]\n\
         address = \"{address}\"\n\
         server_name = \"{upstream_name}\"\n\
         ca_cert = \"ca.pem\"\n\
         station_cert = \"station.pem\"\n\
         station_key = \"station.key\"\n\
         receipt_key = \"{receipt}\"\n",
        id = relay.relay,
        listen = relay.listen,
        carry = list(&relay.carries),
        relays = list(&relay.downstream_relays),
        address = facts.address,
        upstream_name = facts.name,
        receipt = facts.receipt_public,
        min_free = konvert_replication::disk_floor::DEFAULT_MIN_FREE_PERCENT,
    );
    let path = out.join("relay.toml");
    write_public_text(&path, &text)?;
    let data = out.join("data");
    fs::create_dir_all(&data).map_err(Error::file(&data))?;
    fs::copy(&crl, data.join("stations.crl")).map_err(Error::file(&crl))?;
    Ok((path, replaced))
}
