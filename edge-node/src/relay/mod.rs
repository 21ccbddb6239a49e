//! The relay (`konvert-edge relay`): a store-and-forward node between sites and the
//! center — for the final essay, school → checking point → municipal office → center.
//!
//! # Trust
//! A relay can neither read nor alter what it carries (R14). Envelopes are sealed to the
//! center's key and signed by the member's token at the site; the relay has neither key.
//! It forwards the exact bytes under the exact offer; a changed byte fails the member
//! signature at the center, which stores nothing and refuses with `BadSignature` (or
//! `DigestMismatch` if the offer was left as it was). Only the **center's** receipt, signed
//! with the center's receipt key and checked by every hop and by the site, ever counts as
//! delivery: a relay's word never does.
//!
//! # Identities
//! The officers enroll a relay with `konvert keys enroll-relay`: the center's CA issues it
//! a station certificate for its own id (client, upstream: the relay speaks for itself,
//! never for a site) and a server certificate `<relay>.relay.konvert` that downstream
//! stations check (their `site.toml` names it as `server_name`). The center's station
//! index records which sites the relay may carry; the center accepts from a relay only
//! envelopes of those sites (`RelayNotEnrolledForSite` otherwise), and the signer's token
//! must still be Issued and bound to the envelope's site and day. The relay checks the same
//! from its own `relay.toml` (`carry`, and `relays` for relays further down) so a packet it
//! could never deliver is refused at once.
//!
//! # Receipts travelling back: `Held`, not an open stream
//! When a downstream station has sent every byte, the relay makes the packet durable in its
//! outbox and waits a short while (`hold_wait_ms`) for the forwarder to bring the center's
//! receipt: on a working chain the station gets the center's receipt in the same
//! exchange. If it does not come in time the relay answers `Held` and the station keeps the
//! packet pending and offers it again after a backoff; the relay then answers
//! `AlreadyHave` with the center's receipt (or the center's final refusal). Keeping the
//! stream open until the receipt came was the alternative; it is not used because a
//! municipal office may hold packets for hours while its own link is down, and hours-long
//! streams tie up both ends, die with every reconnect or relay restart, and leave the
//! operator with nothing to see — a re-offer costs one round trip and survives all of that.
//!
//! The center's notices (test-packet verdicts) come back on demand: a station's
//! `AskNotices` makes the relay ask the next hop for the notices of the sites it carries
//! and pass on the asking site's; each is signed by the center and checked by the site.
//! Key registries come down the watch the forwarder keeps open (with `authority` set).
//!
//! # Revoked stations
//! The center never sees the certificate of a station behind a relay, so the relay
//! enforces the station revocation list itself: the forwarder watches it upstream and the
//! relay refuses new handshakes and closes live connections of revoked stations
//! (`revocations`).

pub mod config;
mod intake;
mod metrics;
pub(crate) mod revocations;
mod service;

pub use config::RelayConfig;
pub use intake::{RelayIntake, RelayStaging};
pub use revocations::{check_config as check_revocation_list, FILE as REVOCATION_FILE};
pub use service::{serve, RunningRelay};
