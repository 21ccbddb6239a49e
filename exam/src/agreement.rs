//! The one agreement check: every party that names a packet version names the same one.
//!
//! A packet version is named four times: by what vouches for it (the offer a station or a
//! drive's index makes, or the receipt and record the center keeps), by its bytes (the
//! envelope id, SHA-256 of the sealed file, and its size), by the signed envelope header
//! (packet id, version, sender site) and by the signed packet description inside that
//! header (site, exam day, exam, room, kind). They must all agree, and the packet id must
//! be the one the description derives: otherwise a member of site A could seal site B's
//! packet id with a description of A's own (which A's token may sign) and store it first,
//! so that B's real packet meets a conflict; or a stored file swapped for another would be
//! opened as the packet its record names.
//!
//! The center's intake, a relay's intake and the loader all call [`agree`]; the loader
//! also calls [`agree_manifest`] once the archive inside is read. This crate knows no
//! envelope format: callers pass the header's fields as they read them.

use std::fmt;

use crate::{Manifest, PacketRef};

/// What vouches for a packet version: an offer, or the center's receipt and record.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// Who names it, in words for messages ("offered", "receipted").
    pub by: &'static str,
    /// The packet id.
    pub packet_id: &'a str,
    /// The version.
    pub version: u32,
    /// The site, where this party names one (a receipt does; an offer does not).
    pub site: Option<&'a str>,
    /// The envelope id: SHA-256 of the sealed file.
    pub envelope_id: [u8; 32],
    /// The sealed file's size in bytes.
    pub bytes: u64,
}

/// What the envelope itself says, from its signed header.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    /// The SHA-256 of the bytes actually held.
    pub envelope_id: [u8; 32],
    /// Their number.
    pub bytes: u64,
    /// The header's packet id.
    pub packet_id: &'a str,
    /// The header's version.
    pub version: u32,
    /// The header's sender site.
    pub sender_site: &'a str,
    /// The header's packet description (postcard of [`PacketRef`]).
    pub metadata: &'a [u8],
}

/// Why the names of a packet version do not agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disagreement {
    /// The bytes are not the ones named.
    Bytes {
        /// Who named other bytes.
        by: &'static str,
        /// The envelope id named, hex.
        named: String,
        /// The size named.
        named_bytes: u64,
        /// The envelope id of the bytes held, hex.
        found: String,
        /// Their size.
        found_bytes: u64,
    },
    /// The signed header names another packet id or version.
    Packet {
        /// Who named the packet.
        by: &'static str,
        /// The packet id and version named.
        named: String,
        /// What the header says.
        sealed: String,
    },
    /// The header carries no readable packet description.
    NoDescription,
    /// The description is for another site than the header's sender site.
    DescriptionSite {
        /// The header's sender site.
        sender_site: String,
        /// The description's site.
        described: String,
    },
    /// The signed packet id is not the one the signed description derives.
    NotDescribed {
        /// The header's packet id.
        packet_id: String,
        /// The id the description derives.
        described: String,
    },
    /// The party names another site than the envelope's.
    Site {
        /// Who named the site.
        by: &'static str,
        /// The site named.
        named: String,
        /// The envelope's sender site.
        sealed: String,
    },
    /// The manifest inside names another packet or version than the envelope.
    Manifest {
        /// What the envelope names (packet id and version).
        sealed: String,
        /// What the manifest names.
        manifest: String,
    },
}

impl Disagreement {
    /// Whether the bytes themselves are not the named ones (as opposed to a consistent
    /// envelope whose names disagree).
    pub fn is_about_bytes(&self) -> bool {
        matches!(self, Disagreement::Bytes { .. })
    }
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::Bytes {
                by,
                named,
                named_bytes,
                found,
                found_bytes,
            } => write!(
                f,
                "the envelope's bytes are not the {by} ones: envelope id {found} ({found_bytes} bytes) \
                 where {named} ({named_bytes} bytes) was {by}"
            ),
            Disagreement::Packet { by, named, sealed } => {
                write!(f, "the envelope is {sealed}, but {named} was {by}")
            }
            Disagreement::NoDescription => {
                f.write_str("the envelope carries no readable packet description (site, day, room)")
            }
            Disagreement::DescriptionSite { sender_site, described } => write!(
                f,
                "the envelope is from site {sender_site}, but its packet description is for site {described}"
            ),
            Disagreement::NotDescribed { packet_id, described } => write!(
                f,
                "the envelope's packet id {packet_id} is not the one its signed description \
                 (site, day, exam, room, kind) names: {described}"
            ),
            Disagreement::Site { by, named, sealed } => {
                write!(f, "the envelope is from site {sealed}, but site {named} was {by}")
            }
            Disagreement::Manifest { sealed, manifest } => write!(
                f,
                "the manifest inside the envelope is for {manifest}, but the envelope is {sealed}"
            ),
        }
    }
}

/// Checks that `claim`, the bytes held and the envelope's signed header and description
/// all name the same packet version; returns the description.
pub fn agree(claim: &Claim<'_>, sealed: &Sealed<'_>) -> Result<PacketRef, Disagreement> {
    if claim.envelope_id != sealed.envelope_id || claim.bytes != sealed.bytes {
        return Err(Disagreement::Bytes {
            by: claim.by,
            named: hex::encode(claim.envelope_id),
            named_bytes: claim.bytes,
            found: hex::encode(sealed.envelope_id),
            found_bytes: sealed.bytes,
        });
    }
    if claim.packet_id != sealed.packet_id || claim.version != sealed.version {
        return Err(Disagreement::Packet {
            by: claim.by,
            named: format!("{} v{}", claim.packet_id, claim.version),
            sealed: format!("{} v{}", sealed.packet_id, sealed.version),
        });
    }
    let packet: PacketRef = postcard::from_bytes(sealed.metadata).map_err(|_| Disagreement::NoDescription)?;
    if packet.site.as_str() != sealed.sender_site {
        return Err(Disagreement::DescriptionSite {
            sender_site: sealed.sender_site.to_owned(),
            described: packet.site.to_string(),
        });
    }
    let described = packet.packet_id();
    if described != sealed.packet_id {
        return Err(Disagreement::NotDescribed {
            packet_id: sealed.packet_id.to_owned(),
            described,
        });
    }
    if let Some(site) = claim.site {
        if site != sealed.sender_site {
            return Err(Disagreement::Site {
                by: claim.by,
                named: site.to_owned(),
                sealed: sealed.sender_site.to_owned(),
            });
        }
    }
    Ok(packet)
}

/// Checks that the manifest read from inside the envelope names the packet and version
/// the envelope's description and header name.
pub fn agree_manifest(packet: &PacketRef, version: u32, manifest: &Manifest) -> Result<(), Disagreement> {
    if manifest.packet != *packet || manifest.version != version {
        return Err(Disagreement::Manifest {
            sealed: format!("{} v{version}", packet.packet_id()),
            manifest: format!("{} v{}", manifest.packet.packet_id(), manifest.version),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "agreement_tests.rs"]
mod tests;
