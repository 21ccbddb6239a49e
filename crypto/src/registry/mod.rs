//! The signed key registry: who may sign packets (member and center-specialist tokens
//! with their regulation statuses and their site and date bindings), which center keys
//! edges seal to, and the security officers' authority that signs it all.
//!
//! Trust follows TUF's root rules. A registry counts only with a threshold of valid
//! signatures from the officers the reader already trusts; a registry that changes the
//! officers must also carry a threshold of the new officers' signatures. A reader keeps
//! the highest version it trusted (and its digest) and refuses anything older
//! (rollback), a different registry under the same version (equivocation) and anything
//! past its expiry (freeze). Pure functions: the caller persists [`RegistryTrust`].

mod status;
mod store;

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use status::TokenStatus;
pub use store::RegistryStore;

use crate::{Domain, Error, KeyId, RecipientPublicKey, Result, Signature, SigningKey, VerifyingKey};

/// The most a registry's version may advance over the trusted one: an officer quorum that
/// was later replaced (or stolen old keys) must not pin readers at `u64::MAX`, beyond
/// every registry the real officers can publish. Officers publish a few versions a week,
/// so 1 000 covers a reader offline for years.
pub const MAX_VERSION_JUMP: u64 = 1000;

/// Refuses an Ed25519 public key that is not a point of the curve or is of small order:
/// the identity key verifies the signature (R = identity, S = 0) for every message.
pub fn check_ed25519_key(key: &VerifyingKey) -> Result<()> {
    match curve25519_dalek::edwards::CompressedEdwardsY(key.0).decompress() {
        Some(p) if !p.is_small_order() => Ok(()),
        Some(_) => Err(refused(
            RegistryRefusal::Malformed,
            format!(
                "key {} is of small order (such a key verifies forged signatures)",
                key.key_id()
            ),
        )),
        None => Err(refused(
            RegistryRefusal::Malformed,
            format!("key {} is not a point of Ed25519", key.key_id()),
        )),
    }
}

/// Largest encoded registry body accepted: about 6,000 tokens, where a region has a few
/// thousand; small enough that the whole signed registry travels in one protocol frame.
pub const MAX_REGISTRY_LEN: usize = 1536 * 1024;

/// The security officers and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    /// The officers' signing keys.
    pub officers: Vec<VerifyingKey>,
    /// Signatures needed, at least 1 and at most the number of officers.
    pub threshold: u8,
}

impl Authority {
    fn check(&self) -> Result<()> {
        for k in &self.officers {
            check_ed25519_key(k)?;
        }
        let ids: BTreeSet<KeyId> = self.officers.iter().map(|k| k.key_id()).collect();
        if ids.len() != self.officers.len() {
            return Err(refused(RegistryRefusal::Malformed, "an officer key is listed twice"));
        }
        if self.threshold == 0 || usize::from(self.threshold) > self.officers.len() {
            return Err(refused(
                RegistryRefusal::Malformed,
                format!(
                    "a threshold of {} with {} officers cannot be met",
                    self.threshold,
                    self.officers.len()
                ),
            ));
        }
        Ok(())
    }

    /// How many distinct officers of this authority signed `body` validly.
    fn valid_signatures(&self, body: &[u8], signatures: &[(KeyId, Signature)]) -> usize {
        let mut counted = BTreeSet::new();
        for (id, sig) in signatures {
            if counted.contains(id) {
                continue;
            }
            if let Some(k) = self.officers.iter().find(|k| k.key_id() == *id) {
                if k.verify(Domain::Registry, body, sig).is_ok() {
                    counted.insert(*id);
                }
            }
        }
        counted.len()
    }
}

/// One officer as `authority.toml` lists them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerEntry {
    /// The officer's name.
    pub name: String,
    /// Their public key, 64 hex digits.
    pub public: String,
}

/// The officers' authority as `authority.toml` holds it: what anchors every reader's trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityFile {
    /// The officers.
    pub officers: Vec<OfficerEntry>,
    /// Signatures a registry needs.
    pub threshold: u8,
    /// Days a published registry is valid; edges freeze after that.
    pub valid_days: u32,
}

impl AuthorityFile {
    /// The authority the registry carries.
    pub fn authority(&self) -> Result<Authority> {
        let officers = self
            .officers
            .iter()
            .map(|o| VerifyingKey::from_hex(&o.public))
            .collect::<Result<Vec<_>>>()?;
        let authority = Authority {
            officers,
            threshold: self.threshold,
        };
        authority.check()?;
        Ok(authority)
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenRole {
    /// A state exam committee (ГЭК) member's: signs site packets.
    Member,
    /// A center specialist's: opens envelopes at the loader.
    CenterSpecialist,
}

/// One token in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's serial.
    pub token_id: String,
    /// Who it is bound to (empty before binding).
    pub person: String,
    /// Member or center specialist.
    pub role: TokenRole,
    /// The key on the token.
    pub public: VerifyingKey,
    /// Where it stands.
    pub status: TokenStatus,
    /// The center's clock when the status was set.
    pub status_since_unix_ms: u64,
    /// Sites it may sign for.
    pub sites: Vec<String>,
    /// Exam days it may sign for, `YYYY-MM-DD`.
    pub dates: Vec<String>,
}

/// A specialist's hardware token's X25519 key, the only key `loader wrap-key` wraps the
/// center key to for that token (recorded by `issue-token` when the key is generated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementKeyRecord {
    /// The token (a center specialist's, in `tokens`).
    pub token_id: String,
    /// The X25519 public key generated on it.
    pub key: RecipientPublicKey,
}

/// Where a center recipient key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CenterKeyState {
    /// Edges seal to it.
    Active,
    /// Replaced: envelopes sealed to it still open until then.
    Retiring {
        /// End of the grace period.
        until_unix_ms: u64,
    },
    /// The private key was destroyed; envelopes sealed to it can no longer be opened.
    Destroyed {
        /// When.
        at_unix_ms: u64,
    },
}

/// One center recipient key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CenterKeyRecord {
    /// The public key edges seal to.
    pub key: RecipientPublicKey,
    /// Where it stands.
    pub state: CenterKeyState,
}

/// The registry's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryBody {
    /// Monotonic version.
    pub version: u64,
    /// When it was published.
    pub issued_at_unix_ms: u64,
    /// After this it is not trusted; a newer one must be published before.
    pub expires_at_unix_ms: u64,
    /// The officers who sign this and the next version.
    pub authority: Authority,
    /// Every token.
    pub tokens: Vec<TokenRecord>,
    /// The center's recipient keys.
    pub center_keys: Vec<CenterKeyRecord>,
    /// Specialists' hardware X25519 keys (registry format 2; empty in format-1 bodies,
    /// which end before this field).
    pub agreement_keys: Vec<AgreementKeyRecord>,
}

/// A format-1 body: [`RegistryBody`] without `agreement_keys`, still read.
#[derive(Deserialize)]
struct RegistryBodyV1 {
    version: u64,
    issued_at_unix_ms: u64,
    expires_at_unix_ms: u64,
    authority: Authority,
    tokens: Vec<TokenRecord>,
    center_keys: Vec<CenterKeyRecord>,
}

/// Who a token is bound to, and where and when it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The person.
    pub person: String,
    /// Sites.
    pub sites: Vec<String>,
    /// Exam days, `YYYY-MM-DD`.
    pub dates: Vec<String>,
}

/// Why a token may not sign a packet, machine-readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignRefusal {
    /// No token with this key is in the registry.
    UnknownToken,
    /// The token's status is not Issued.
    NotIssued(TokenStatus),
    /// The token is a center specialist's.
    NotAMember,
    /// The token is not bound to this site.
    WrongSite,
    /// The token is not bound to this exam day.
    WrongDate,
}

impl RegistryBody {
    /// Decodes a body (bounded by the caller): format 2, or format 1 (before
    /// `agreement_keys`), which ends where format 2's last field would start. Every byte
    /// must belong to the body.
    pub fn decode(bytes: &[u8]) -> Result<RegistryBody> {
        if let Ok((body, [])) = postcard::take_from_bytes::<RegistryBody>(bytes) {
            return Ok(body);
        }
        match postcard::take_from_bytes::<RegistryBodyV1>(bytes) {
            Ok((v1, [])) => Ok(RegistryBody {
                version: v1.version,
                issued_at_unix_ms: v1.issued_at_unix_ms,
                expires_at_unix_ms: v1.expires_at_unix_ms,
                authority: v1.authority,
                tokens: v1.tokens,
                center_keys: v1.center_keys,
                agreement_keys: Vec::new(),
            }),
            Ok(_) => Err(refused(RegistryRefusal::Malformed, "bytes after the registry body")),
            Err(e) => Err(refused(RegistryRefusal::Malformed, format!("does not decode: {e}"))),
        }
    }

    /// The X25519 key the registry names for a specialist's hardware token, if any.
    pub fn agreement_key(&self, token_id: &str) -> Option<&RecipientPublicKey> {
        self.agreement_keys
            .iter()
            .find(|a| a.token_id == token_id)
            .map(|a| &a.key)
    }

    /// Records the X25519 key generated on a specialist's hardware token.
    pub fn set_agreement_key(&mut self, token_id: &str, key: RecipientPublicKey) -> Result<()> {
        let before = self.agreement_keys.clone();
        self.agreement_keys.retain(|a| a.token_id != token_id);
        self.agreement_keys.push(AgreementKeyRecord {
            token_id: token_id.to_owned(),
            key,
        });
        let checked = self.check();
        if checked.is_err() {
            self.agreement_keys = before;
        }
        checked
    }

    /// Checks the content's own consistency: a sound authority, unique token ids and
    /// keys (each a full-order Ed25519 point), one unblocked token per person, exactly one
    /// active center key once there is any (a registry before the center key is born on
    /// the loader's side has none: its specialists' tokens must be issued first to hold
    /// it), agreement keys only for specialists' tokens and each once.
    pub fn check(&self) -> Result<()> {
        self.authority.check()?;
        let mut ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut people = BTreeSet::new();
        for t in &self.tokens {
            if !ids.insert(t.token_id.as_str()) {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    format!("token {} is listed twice", t.token_id),
                ));
            }
            check_ed25519_key(&t.public).map_err(|_| {
                refused(
                    RegistryRefusal::Malformed,
                    format!(
                        "token {}'s key is not a usable Ed25519 key (not on the curve, or of small order)",
                        t.token_id
                    ),
                )
            })?;
            if !keys.insert(t.public.key_id()) {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    format!("token {}'s key is already another token's", t.token_id),
                ));
            }
            if !t.person.is_empty() && !t.status.is_blocked() && !people.insert(t.person.as_str()) {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    format!("{} holds two tokens; one token per person", t.person),
                ));
            }
        }
        let active = self
            .center_keys
            .iter()
            .filter(|k| k.state == CenterKeyState::Active)
            .count();
        if active > 1 || (active == 0 && !self.center_keys.is_empty()) {
            return Err(refused(
                RegistryRefusal::Malformed,
                format!("{active} active center keys; exactly one is needed"),
            ));
        }
        let mut with_key = BTreeSet::new();
        for a in &self.agreement_keys {
            let Some(t) = self.tokens.iter().find(|t| t.token_id == a.token_id) else {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    format!(
                        "an X25519 key is recorded for token {}, which is not in the registry",
                        a.token_id
                    ),
                ));
            };
            if t.role != TokenRole::CenterSpecialist {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    format!(
                        "token {} is a member's; only specialists' tokens hold the loader key",
                        a.token_id
                    ),
                ));
            }
            if !with_key.insert(a.token_id.as_str()) {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    format!("token {} has two X25519 keys", a.token_id),
                ));
            }
        }
        Ok(())
    }

    /// Adds a token just loaded from the federal certificates (status Loaded).
    pub fn add_token(&mut self, token_id: &str, role: TokenRole, public: VerifyingKey, now_unix_ms: u64) -> Result<()> {
        check_ed25519_key(&public)?;
        if self.tokens.iter().any(|t| t.token_id == token_id) {
            return Err(refused(
                RegistryRefusal::Malformed,
                format!("token {token_id} is already in the registry"),
            ));
        }
        if self.tokens.iter().any(|t| t.public.key_id() == public.key_id()) {
            return Err(refused(
                RegistryRefusal::Malformed,
                "this key is already another token's",
            ));
        }
        self.tokens.push(TokenRecord {
            token_id: token_id.to_owned(),
            person: String::new(),
            role,
            public,
            status: TokenStatus::Loaded,
            status_since_unix_ms: now_unix_ms,
            sites: Vec::new(),
            dates: Vec::new(),
        });
        Ok(())
    }

    /// Moves a token to `to`, as the regulations allow. Binding (to Bound) names the
    /// person and the sites and days; a token returned to the center loses its binding.
    pub fn set_status(
        &mut self,
        token_id: &str,
        to: TokenStatus,
        binding: Option<Binding>,
        now_unix_ms: u64,
    ) -> Result<&TokenRecord> {
        let i = self.tokens.iter().position(|t| t.token_id == token_id).ok_or_else(|| {
            refused(
                RegistryRefusal::Malformed,
                format!("no token {token_id} in the registry"),
            )
        })?;
        let from = self.tokens[i].status;
        from.check_transition(to)
            .map_err(|e| refused(RegistryRefusal::Malformed, format!("token {token_id}: {e}")))?;
        let mut next = self.tokens[i].clone();
        match (to, binding) {
            (TokenStatus::Bound, Some(b)) => {
                if b.person.trim().is_empty() || b.sites.is_empty() || b.dates.is_empty() {
                    return Err(refused(
                        RegistryRefusal::Malformed,
                        "binding needs the person, at least one site and at least one exam day",
                    ));
                }
                next.person = b.person;
                next.sites = b.sites;
                next.dates = b.dates;
            }
            (TokenStatus::Bound, None) => {
                return Err(refused(
                    RegistryRefusal::Malformed,
                    "binding needs the person, the sites and the exam days",
                ))
            }
            (TokenStatus::ReceivedByCenter, _) => {
                next.person.clear();
                next.sites.clear();
                next.dates.clear();
            }
            _ => {}
        }
        next.status = to;
        next.status_since_unix_ms = now_unix_ms;
        let old = std::mem::replace(&mut self.tokens[i], next);
        if let Err(e) = self.check() {
            self.tokens[i] = old;
            return Err(e);
        }
        Ok(&self.tokens[i])
    }

    /// Makes `new` the key edges seal to from the next version; the old key keeps
    /// opening what was sealed to it until `grace_until_unix_ms`.
    pub fn rotate_center_key(&mut self, new: RecipientPublicKey, grace_until_unix_ms: u64) -> Result<()> {
        if self.center_keys.iter().any(|k| k.key == new) {
            return Err(refused(
                RegistryRefusal::Malformed,
                "this center key was used before; generate a new one",
            ));
        }
        for k in &mut self.center_keys {
            if k.state == CenterKeyState::Active {
                k.state = CenterKeyState::Retiring {
                    until_unix_ms: grace_until_unix_ms,
                };
            }
        }
        self.center_keys.push(CenterKeyRecord {
            key: new,
            state: CenterKeyState::Active,
        });
        self.check()
    }

    /// Records as destroyed every retiring key whose grace period is over at `now`;
    /// returns them, so their private halves can be destroyed.
    pub fn retire_expired_center_keys(&mut self, now_unix_ms: u64) -> Vec<RecipientPublicKey> {
        let mut done = Vec::new();
        for k in &mut self.center_keys {
            if let CenterKeyState::Retiring { until_unix_ms } = k.state {
                if now_unix_ms >= until_unix_ms {
                    k.state = CenterKeyState::Destroyed {
                        at_unix_ms: now_unix_ms,
                    };
                    done.push(k.key);
                }
            }
        }
        done
    }

    /// Whether an envelope sealed to `key` may still be opened at `now`.
    pub fn center_key_opens(&self, key: &RecipientPublicKey, now_unix_ms: u64) -> bool {
        self.center_keys.iter().any(|k| {
            k.key == *key
                && match k.state {
                    CenterKeyState::Active => true,
                    CenterKeyState::Retiring { until_unix_ms } => now_unix_ms < until_unix_ms,
                    CenterKeyState::Destroyed { .. } => false,
                }
        })
    }

    /// The key edges seal to.
    pub fn active_center_key(&self) -> Option<&RecipientPublicKey> {
        self.center_keys
            .iter()
            .find(|k| k.state == CenterKeyState::Active)
            .map(|k| &k.key)
    }
}

/// A registry in force, indexed by token key for the center's per-packet decision.
#[derive(Debug, Clone)]
pub struct Registry {
    body: RegistryBody,
    by_key: HashMap<KeyId, usize>,
}

impl From<RegistryBody> for Registry {
    fn from(body: RegistryBody) -> Self {
        let by_key = body
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.public.key_id(), i))
            .collect();
        Registry { body, by_key }
    }
}

impl Registry {
    /// The content.
    pub fn body(&self) -> &RegistryBody {
        &self.body
    }

    /// The token with this key.
    pub fn token(&self, key: &KeyId) -> Option<&TokenRecord> {
        self.by_key.get(key).and_then(|&i| self.body.tokens.get(i))
    }

    /// Whether the token with key `signer` may sign a packet of `site` for `date`, by
    /// this registry — the one in force when the packet is received, never the signing
    /// time the envelope claims.
    pub fn may_sign(&self, signer: &KeyId, site: &str, date: &str) -> std::result::Result<&TokenRecord, SignRefusal> {
        let t = self.token(signer).ok_or(SignRefusal::UnknownToken)?;
        if !t.status.may_sign() {
            return Err(SignRefusal::NotIssued(t.status));
        }
        if t.role != TokenRole::Member {
            return Err(SignRefusal::NotAMember);
        }
        if !t.sites.iter().any(|s| s == site) {
            return Err(SignRefusal::WrongSite);
        }
        if !t.dates.iter().any(|d| d == date) {
            return Err(SignRefusal::WrongDate);
        }
        Ok(t)
    }
}

/// Why a registry is refused, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryRefusal {
    /// Does not decode, or its content is inconsistent.
    Malformed,
    /// Fewer valid signatures of the trusted officers than the threshold.
    NotEnoughSignatures,
    /// It changes the officers without a threshold of the new officers' signatures.
    NewAuthorityUnsigned,
    /// Older than the version already trusted.
    Rollback,
    /// A different registry under the version already trusted.
    Equivocation,
    /// Past its expiry.
    Expired,
    /// Its version is more than [`MAX_VERSION_JUMP`] above the trusted one.
    VersionJump,
}

fn refused(reason: RegistryRefusal, detail: impl Into<String>) -> Error {
    Error::Registry {
        reason,
        detail: detail.into(),
    }
}

/// A registry as published: the encoded body, exactly as signed, and the officers'
/// signatures over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRegistry {
    /// postcard of [`RegistryBody`].
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// (officer key id, signature) pairs.
    pub signatures: Vec<(KeyId, Signature)>,
}

impl SignedRegistry {
    /// Encodes `body` (after checking it) and signs it with each of `officers`.
    pub fn sign(body: &RegistryBody, officers: &[&SigningKey]) -> Result<Self> {
        body.check()?;
        let bytes = postcard::to_allocvec(body).map_err(|e| refused(RegistryRefusal::Malformed, e.to_string()))?;
        let mut signed = SignedRegistry {
            body: bytes,
            signatures: Vec::new(),
        };
        for k in officers {
            signed.add_signature(k);
        }
        Ok(signed)
    }

    /// Adds one officer's signature (officers sign in turn until the threshold is met).
    pub fn add_signature(&mut self, officer: &SigningKey) {
        let id = officer.key_id();
        self.signatures.retain(|(k, _)| *k != id);
        self.signatures.push((id, officer.sign(Domain::Registry, &self.body)));
    }

    /// The content, decoded without any trust decision (for display).
    pub fn decode_body(&self) -> Result<RegistryBody> {
        if self.body.len() > MAX_REGISTRY_LEN {
            return Err(refused(RegistryRefusal::Malformed, "larger than any registry can be"));
        }
        RegistryBody::decode(&self.body)
    }

    /// The registry as bytes, for a file or the wire.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|e| refused(RegistryRefusal::Malformed, e.to_string()))
    }

    /// Reads a registry from bytes, bounded before decoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_REGISTRY_LEN + 64 * 1024 {
            return Err(refused(RegistryRefusal::Malformed, "larger than any registry can be"));
        }
        postcard::from_bytes(bytes).map_err(|e| refused(RegistryRefusal::Malformed, format!("does not decode: {e}")))
    }

    /// The SHA-256 of the signed body: two registries are the same iff this is.
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &self.body).as_ref());
        out
    }
}

/// What a reader trusts: persist it before acting on a newly accepted registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryTrust {
    /// The officers whose signatures count.
    pub authority: Authority,
    /// The highest version trusted (0: none yet, only the authority from provisioning).
    pub version: u64,
    /// Its digest.
    pub digest: [u8; 32],
}

impl RegistryTrust {
    /// Trust anchored in the officers' keys alone, as provisioned.
    pub fn anchored(authority: Authority) -> Result<Self> {
        authority.check()?;
        Ok(RegistryTrust {
            authority,
            version: 0,
            digest: [0; 32],
        })
    }

    /// Decides on `registry` at `now_unix_ms`: its content and the trust to persist.
    pub fn accept(&self, registry: &SignedRegistry, now_unix_ms: u64) -> Result<(RegistryBody, RegistryTrust)> {
        // The trusted officers' signatures first, over the raw bytes: nothing an outsider
        // wrote is decoded further than the envelope of the signatures.
        let need = usize::from(self.authority.threshold);
        let have = self.authority.valid_signatures(&registry.body, &registry.signatures);
        if have < need {
            return Err(refused(
                RegistryRefusal::NotEnoughSignatures,
                format!("{have} valid officer signature(s), {need} needed"),
            ));
        }
        let body = registry.decode_body()?;
        body.check()?;
        if body.authority != self.authority {
            let need_new = usize::from(body.authority.threshold);
            let have_new = body.authority.valid_signatures(&registry.body, &registry.signatures);
            if have_new < need_new {
                return Err(refused(
                    RegistryRefusal::NewAuthorityUnsigned,
                    format!("the new officers signed {have_new} time(s), {need_new} needed"),
                ));
            }
        }
        let digest = registry.digest();
        if body.version < self.version {
            return Err(refused(
                RegistryRefusal::Rollback,
                format!(
                    "version {} is older than the trusted version {}",
                    body.version, self.version
                ),
            ));
        }
        if body.version - self.version > MAX_VERSION_JUMP {
            return Err(refused(
                RegistryRefusal::VersionJump,
                format!(
                    "version {} is more than {MAX_VERSION_JUMP} above the trusted version {}; officers publish the next versions in order",
                    body.version, self.version
                ),
            ));
        }
        if body.version == self.version && digest != self.digest {
            return Err(refused(
                RegistryRefusal::Equivocation,
                format!("another registry was already trusted as version {}", body.version),
            ));
        }
        if now_unix_ms >= body.expires_at_unix_ms {
            return Err(refused(
                RegistryRefusal::Expired,
                format!(
                    "version {} expired {} s ago; the officers must publish a new one",
                    body.version,
                    (now_unix_ms - body.expires_at_unix_ms) / 1000
                ),
            ));
        }
        let trust = RegistryTrust {
            authority: body.authority.clone(),
            version: body.version,
            digest,
        };
        Ok((body, trust))
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
