//! Member keys on PKCS#11 hardware tokens (and SoftHSM2 for drills and tests).
//!
//! The member's Ed25519 key pair is generated **on** the token
//! (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, `CKA_EC_PARAMS` = DER of the curve OID 1.3.101.112);
//! the private key is `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not
//! `CKA_EXTRACTABLE`, so it never leaves the token. [`Pkcs11Signer`] signs
//! `domain.label() ‖ msg` with `CKM_EDDSA` (pure Ed25519), exactly the message
//! [`crate::SigningKey::sign`] signs, so [`VerifyingKey::verify`] accepts both. The token
//! itself counts wrong PINs and locks: `CKR_PIN_INCORRECT` is [`Error::WrongPin`],
//! `CKR_PIN_LOCKED` is [`Error::TokenLocked`]. PINs are passed to the module as
//! `secrecy` strings (zeroized) and never appear in errors or logs.
//!
//! The module (a shared library) is loaded at run time, so building konvert needs no
//! token software. A module is loaded and `C_Initialize`d once per process and kept
//! until exit: PKCS#11 allows one initialization per process, and finalizing it while
//! another signer still uses it would break that signer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::signer::MemberSigner;
use crate::{Domain, Error, Result, Signature, VerifyingKey};

/// Where Debian's `softhsm2` package puts the SoftHSM2 module.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Environment variable naming the PKCS#11 module for tests and drills.
pub const MODULE_ENV: &str = "KONVERT_PKCS11_MODULE";
/// The label `konvert keys issue-token --pkcs11-token` gives the Ed25519 key by default.
pub const IDENTITY_KEY_LABEL: &str = "konvert-member";
/// DER of the Ed25519 curve OID 1.3.101.112 (RFC 8410), the `CKA_EC_PARAMS` of member keys.
pub const ED25519_EC_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// The module named by `KONVERT_PKCS11_MODULE`, else [`DEFAULT_MODULE`].
pub fn module_path_from_env() -> PathBuf {
    std::env::var_os(MODULE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE))
}

fn ck(what: &str) -> impl Fn(CkError) -> Error + '_ {
    move |e| Error::Pkcs11(format!("{what}: {e}"))
}

fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A loaded and initialized PKCS#11 module.
#[derive(Debug, Clone)]
pub struct Pkcs11Module {
    ctx: Pkcs11,
    path: PathBuf,
}

impl Pkcs11Module {
    /// Loads the module at `path` (once per process; later calls share it).
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Pkcs11(format!(
                "PKCS#11 module {} does not exist; install the token's driver (for SoftHSM2 the Debian package softhsm2) or fix the path",
                path.display()
            )));
        }
        let mut cache = modules()
            .lock()
            .map_err(|_| Error::Pkcs11("the PKCS#11 module table is poisoned".into()))?;
        if let Some(ctx) = cache.get(path) {
            return Ok(Pkcs11Module {
                ctx: ctx.clone(),
                path: path.to_owned(),
            });
        }
        let ctx = Pkcs11::new(path).map_err(|e| Error::Pkcs11(format!("cannot load {}: {e}", path.display())))?;
        match ctx.initialize(CInitializeArgs::OsThreads) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(Error::Pkcs11(format!("cannot initialize {}: {e}", path.display()))),
        }
        tracing::info!(module = %path.display(), "PKCS#11 module loaded");
        cache.insert(path.to_owned(), ctx.clone());
        Ok(Pkcs11Module {
            ctx,
            path: path.to_owned(),
        })
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Labels of the initialized tokens present.
    pub fn token_labels(&self) -> Result<Vec<String>> {
        let slots = self
            .ctx
            .get_slots_with_initialized_token()
            .map_err(ck("listing slots"))?;
        slots
            .into_iter()
            .map(|s| {
                let info = self.ctx.get_token_info(s).map_err(ck("reading token info"))?;
                Ok(info.label().trim_end().to_owned())
            })
            .collect()
    }

    fn slot(&self, token_label: &str) -> Result<Slot> {
        for s in self
            .ctx
            .get_slots_with_initialized_token()
            .map_err(ck("listing slots"))?
        {
            let info = self.ctx.get_token_info(s).map_err(ck("reading token info"))?;
            if info.label().trim_end() == token_label {
                return Ok(s);
            }
        }
        Err(Error::Pkcs11(format!(
            "no token labelled {token_label:?} is present in {}; insert the member's token",
            self.path.display()
        )))
    }

    /// Initializes a token in a free slot with `label` and both PINs (SoftHSM drills and
    /// tests; real member tokens come initialized).
    pub fn init_token(&self, label: &str, so_pin: &str, user_pin: &str) -> Result<()> {
        let slots = self.ctx.get_slots_with_token().map_err(ck("listing slots"))?;
        let mut free = None;
        for s in slots {
            if !self
                .ctx
                .get_token_info(s)
                .map_err(ck("reading token info"))?
                .token_initialized()
            {
                free = Some(s);
                break;
            }
        }
        let slot = free.ok_or_else(|| Error::Pkcs11("no free token slot to initialize".into()))?;
        let so = AuthPin::new(so_pin.into());
        self.ctx
            .init_token(slot, &so, label)
            .map_err(ck("initializing the token"))?;
        let session = self.ctx.open_rw_session(slot).map_err(ck("opening a session"))?;
        session
            .login(UserType::So, Some(&so))
            .map_err(ck("security officer login"))?;
        session
            .init_pin(&AuthPin::new(user_pin.into()))
            .map_err(ck("setting the user PIN"))?;
        Ok(())
    }

    fn login_session(&self, token_label: &str, pin: &str, rw: bool) -> Result<Session> {
        let slot = self.slot(token_label)?;
        let session = if rw {
            self.ctx.open_rw_session(slot)
        } else {
            self.ctx.open_ro_session(slot)
        }
        .map_err(ck("opening a session"))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            // PKCS#11 logs in per token and process: another live session of this
            // process (the signer beside the loader's key) already gave the PIN.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                let info = self.ctx.get_token_info(slot).ok();
                if info.as_ref().is_some_and(|i| i.user_pin_locked()) {
                    return Err(Error::TokenLocked {
                        token_id: token_label.to_owned(),
                    });
                }
                tracing::warn!(token = token_label, "wrong PIN for hardware token");
                Err(Error::WrongPin {
                    token_id: token_label.to_owned(),
                    remaining_tries: info.filter(|i| i.user_pin_final_try()).map(|_| 1),
                })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Error::TokenLocked {
                token_id: token_label.to_owned(),
            }),
            Err(e) => Err(Error::Pkcs11(format!("login to token {token_label:?}: {e}"))),
        }
    }

    /// Generates the member's Ed25519 key pair on the token, labelled `key_label`; the
    /// private key never leaves the token. Refuses if a key with that label exists.
    pub fn generate_member_key(&self, token_label: &str, user_pin: &str, key_label: &str) -> Result<VerifyingKey> {
        let session = self.login_session(token_label, user_pin, true)?;
        if !find(&session, ObjectClass::PRIVATE_KEY, key_label)?.is_empty() {
            return Err(Error::Pkcs11(format!(
                "token {token_label:?} already holds a key labelled {key_label:?}; choose another key label"
            )));
        }
        let label = key_label.as_bytes().to_vec();
        let public_template = [
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_EC_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
        ];
        let private_template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
        ];
        let (public, _private) = session
            .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_template, &private_template)
            .map_err(ck("generating the Ed25519 key pair on the token"))?;
        let key = read_public(&session, public)?;
        tracing::info!(token = token_label, key = %key.key_id(), "member key generated on the hardware token");
        Ok(key)
    }

    /// The public half of the Ed25519 key `key_label` (public objects need no PIN): who
    /// the token is, as the registry lists it.
    pub fn signing_public(&self, token_label: &str, key_label: &str) -> Result<VerifyingKey> {
        let session = self
            .ctx
            .open_ro_session(self.slot(token_label)?)
            .map_err(ck("opening a session"))?;
        let public = one(
            find(&session, ObjectClass::PUBLIC_KEY, key_label)?,
            token_label,
            key_label,
        )?;
        read_public(&session, public)
    }

    /// Logs in with the member's PIN and finds the key `key_label`, ready to sign.
    pub fn login(&self, token_label: &str, key_label: &str, pin: &str) -> Result<Pkcs11Signer> {
        let session = self.login_session(token_label, pin, false)?;
        let private = one(
            find(&session, ObjectClass::PRIVATE_KEY, key_label)?,
            token_label,
            key_label,
        )?;
        let public = one(
            find(&session, ObjectClass::PUBLIC_KEY, key_label)?,
            token_label,
            key_label,
        )?;
        let public = read_public(&session, public)?;
        Ok(Pkcs11Signer {
            session: Mutex::new(session),
            key: private,
            public,
            token_label: token_label.to_owned(),
        })
    }
}

fn find(session: &Session, class: ObjectClass, key_label: &str) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Label(key_label.as_bytes().to_vec()),
        ])
        .map_err(ck("searching the token"))
}

fn one(found: Vec<ObjectHandle>, token_label: &str, key_label: &str) -> Result<ObjectHandle> {
    match found.as_slice() {
        [h] => Ok(*h),
        [] => Err(Error::Pkcs11(format!(
            "token {token_label:?} has no Ed25519 key labelled {key_label:?}; was the member key generated on this token?"
        ))),
        _ => Err(Error::Pkcs11(format!(
            "token {token_label:?} has several keys labelled {key_label:?}; bring it to the security officer"
        ))),
    }
}

/// `CKA_EC_POINT` of an Ed25519 public key.
fn read_public(session: &Session, handle: ObjectHandle) -> Result<VerifyingKey> {
    ed25519_point(&read_ec_point(session, handle)?)
}

/// The raw `CKA_EC_POINT` of a public key.
fn read_ec_point(session: &Session, handle: ObjectHandle) -> Result<Vec<u8>> {
    session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(ck("reading the public key"))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| Error::Pkcs11("the token did not return the public key (CKA_EC_POINT)".into()))
}

/// The session of a logged-in key, for one operation at a time.
fn lock(session: &Mutex<Session>) -> Result<std::sync::MutexGuard<'_, Session>> {
    session
        .lock()
        .map_err(|_| Error::Pkcs11("the token session is poisoned".into()))
}

/// Writes a SoftHSM2 configuration keeping its tokens in `dir/tokens` (drills and tests:
/// point `SOFTHSM2_CONF` at the returned file before the module is loaded).
pub fn write_softhsm_config(dir: &Path) -> Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    Ok(conf)
}

fn ed25519_point(point: &[u8]) -> Result<VerifyingKey> {
    point32(point)
        .map(VerifyingKey)
        .ok_or(Error::BadKey("the token's CKA_EC_POINT is not a 32-byte Ed25519 point"))
}

/// The 32 bytes of a `CKA_EC_POINT` of a 25519 curve: a DER OCTET STRING (`04 20` ‖ 32
/// bytes), or the 32 bytes bare as some modules return them.
fn point32(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw => raw.try_into().ok(),
    }
}

/// A logged-in session with the member's key on a hardware token.
pub struct Pkcs11Signer {
    session: Mutex<Session>,
    key: ObjectHandle,
    public: VerifyingKey,
    token_label: String,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("token", &self.token_label)
            .field("key", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// Whether the token would hand out the private key's value (`CKA_VALUE`), or calls it
    /// extractable or not sensitive. A member key must answer `false`.
    pub fn private_key_readable(&self) -> Result<bool> {
        let session = lock(&self.session)?;
        let info = session
            .get_attribute_info(self.key, &[AttributeType::Value])
            .map_err(ck("asking the token about the private key"))?;
        if matches!(info.first(), Some(AttributeInfo::Available(_))) {
            return Ok(true);
        }
        let flags = session
            .get_attributes(self.key, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(ck("reading the private key's flags"))?;
        Ok(flags
            .iter()
            .any(|a| matches!(a, Attribute::Sensitive(false) | Attribute::Extractable(true))))
    }
}

impl MemberSigner for Pkcs11Signer {
    fn verifying_key(&self) -> VerifyingKey {
        self.public
    }

    fn sign(&self, domain: Domain, msg: &[u8]) -> Result<Signature> {
        let message = domain.message(msg);
        let raw = {
            let session = lock(&self.session)?;
            session
                .sign(
                    &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                    self.key,
                    &message,
                )
                .map_err(ck("signing on the token"))?
        };
        let sig: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::Pkcs11(format!("the token returned a {}-byte signature, not 64", raw.len())))?;
        let sig = Signature(sig);
        // A token that signs with another key or garbles the signature is caught here,
        // not at the center.
        self.public
            .verify(domain, msg, &sig)
            .map_err(|_| Error::Pkcs11("the token's signature does not verify with its public key".into()))?;
        Ok(sig)
    }
}

#[path = "pkcs11_agreement.rs"]
mod agreement;
pub use agreement::{Pkcs11Agreement, LOADER_KEY_LABEL, X25519_EC_PARAMS};

#[cfg(test)]
#[path = "pkcs11_tests.rs"]
mod tests;
