//! A center specialist's X25519 key on a PKCS#11 token, which unwraps the loader key
//! (`crate::loader_key`) without ever leaving the token: `CKM_ECDH1_DERIVE` (null KDF)
//! with the wrapping's ephemeral public key gives the shared secret, as a session-only
//! object that is read once and destroyed.
//!
//! PKCS#11 3.0 names X25519 keys `CKK_EC_MONTGOMERY`; SoftHSM2 2.6 knows them only as
//! `CKK_EC_EDWARDS` with the X25519 curve. Generation tries the first and falls back to
//! the second; lookups go by label and check the curve.

use std::sync::Mutex;

use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::{ck, Pkcs11Module};
use crate::{Error, RecipientPublicKey, Result};

/// DER of the X25519 curve OID 1.3.101.110 (RFC 8410), the `CKA_EC_PARAMS` of loader
/// wrapping keys.
pub const X25519_EC_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x6e];

/// The key label `konvert keys issue-token --role specialist` gives the X25519 key.
pub const LOADER_KEY_LABEL: &str = "konvert-loader";

impl Pkcs11Module {
    /// Generates a specialist's X25519 key pair on the token, labelled `key_label`, for
    /// unwrapping the loader key; the private key never leaves the token. Refuses if a
    /// key with that label exists.
    pub fn generate_agreement_key(
        &self,
        token_label: &str,
        user_pin: &str,
        key_label: &str,
    ) -> Result<RecipientPublicKey> {
        let session = self.login_session(token_label, user_pin, true)?;
        if !find_any(&session, ObjectClass::PRIVATE_KEY, key_label)?.is_empty() {
            return Err(Error::Pkcs11(format!(
                "token {token_label:?} already holds a key labelled {key_label:?}; choose another key label"
            )));
        }
        let label = key_label.as_bytes().to_vec();
        let templates = |kind: KeyType| {
            let public = vec![
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(kind),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Derive(true),
                Attribute::EcParams(X25519_EC_PARAMS.to_vec()),
                Attribute::Label(label.clone()),
                Attribute::Id(label.clone()),
            ];
            let private = vec![
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(kind),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Derive(true),
                Attribute::Label(label.clone()),
                Attribute::Id(label.clone()),
            ];
            (public, private)
        };
        let (public, private) = templates(KeyType::EC_MONTGOMERY);
        let generated = session
            .generate_key_pair(&Mechanism::EccMontgomeryKeyPairGen, &public, &private)
            .or_else(|_| {
                let (public, private) = templates(KeyType::EC_EDWARDS);
                session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
            })
            .map_err(ck("generating the X25519 key pair on the token"))?;
        let key = read_x25519_public(&session, generated.0)?;
        tracing::info!(token = token_label, key = %key.key_id(), "specialist's X25519 key generated on the hardware token");
        Ok(key)
    }

    /// The public half of the X25519 key `key_label` (public objects need no PIN).
    pub fn agreement_public(&self, token_label: &str, key_label: &str) -> Result<RecipientPublicKey> {
        let session = self
            .ctx
            .open_ro_session(self.slot(token_label)?)
            .map_err(ck("opening a session"))?;
        let public = one_x25519_public(&session, token_label, key_label)?;
        read_x25519_public(&session, public)
    }

    /// Logs in with the specialist's PIN and finds the X25519 key `key_label`.
    pub fn login_agreement(&self, token_label: &str, key_label: &str, pin: &str) -> Result<Pkcs11Agreement> {
        let session = self.login_session(token_label, pin, false)?;
        let public = one_x25519_public(&session, token_label, key_label)?;
        let public = read_x25519_public(&session, public)?;
        let private = one_labelled(&session, ObjectClass::PRIVATE_KEY, token_label, key_label)?;
        Ok(Pkcs11Agreement {
            session: Mutex::new(session),
            key: private,
            public,
            token_label: token_label.to_owned(),
        })
    }
}

fn find_any(session: &Session, class: ObjectClass, key_label: &str) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&[Attribute::Class(class), Attribute::Label(key_label.as_bytes().to_vec())])
        .map_err(ck("searching the token"))
}

/// The one key of `class` labelled `key_label`.
fn one_labelled(session: &Session, class: ObjectClass, token_label: &str, key_label: &str) -> Result<ObjectHandle> {
    match find_any(session, class, key_label)?.as_slice() {
        [h] => Ok(*h),
        [] => Err(Error::Pkcs11(format!(
            "token {token_label:?} has no key labelled {key_label:?}; was the specialist's token issued with \
             `konvert keys issue-token --role specialist --pkcs11-token`?"
        ))),
        _ => Err(Error::Pkcs11(format!(
            "token {token_label:?} has several keys labelled {key_label:?}; bring it to the security officer"
        ))),
    }
}

/// The public key labelled `key_label`, which must be on the X25519 curve (tokens need
/// not show a private key's curve; the pair shares the label).
fn one_x25519_public(session: &Session, token_label: &str, key_label: &str) -> Result<ObjectHandle> {
    let handle = one_labelled(session, ObjectClass::PUBLIC_KEY, token_label, key_label)?;
    let attrs = session
        .get_attributes(handle, &[AttributeType::KeyType, AttributeType::EcParams])
        .map_err(ck("reading the key's curve"))?;
    let montgomery = attrs
        .iter()
        .any(|a| matches!(a, Attribute::KeyType(k) if *k == KeyType::EC_MONTGOMERY));
    let x25519 = attrs
        .iter()
        .any(|a| matches!(a, Attribute::EcParams(p) if p.as_slice() == X25519_EC_PARAMS));
    if !(montgomery || x25519) {
        return Err(Error::Pkcs11(format!(
            "the key labelled {key_label:?} on token {token_label:?} is not an X25519 key"
        )));
    }
    Ok(handle)
}

fn read_x25519_public(session: &Session, handle: ObjectHandle) -> Result<RecipientPublicKey> {
    let point = super::read_ec_point(session, handle)?;
    let raw = super::point32(&point).ok_or(Error::BadKey("the token's CKA_EC_POINT is not a 32-byte X25519 point"))?;
    Ok(RecipientPublicKey(raw))
}

/// A logged-in session with a specialist's X25519 key on a hardware token.
pub struct Pkcs11Agreement {
    session: Mutex<Session>,
    key: ObjectHandle,
    public: RecipientPublicKey,
    token_label: String,
}

impl std::fmt::Debug for Pkcs11Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Agreement")
            .field("token", &self.token_label)
            .field("key", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Agreement {
    /// The key's public half.
    pub fn public_key(&self) -> RecipientPublicKey {
        self.public
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// X25519 of the token's key with `peer`, computed on the token.
    pub fn agree(&self, peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let session = super::lock(&self.session)?;
        let params = Ecdh1DeriveParams::new(EcKdf::null(), peer);
        // A session object (not CKA_TOKEN), readable once so it can key the HKDF below;
        // destroyed right after, and gone with the session anyway.
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::ValueLen(32.into()),
        ];
        let secret = session
            .derive_key(&Mechanism::Ecdh1Derive(params), self.key, &template)
            .map_err(ck("X25519 on the token"))?;
        let value = session.get_attributes(secret, &[AttributeType::Value]);
        let _ = session.destroy_object(secret);
        let value = value.map_err(ck("reading the agreed secret"))?;
        let bytes = value
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(Zeroizing::new(v)),
                _ => None,
            })
            .ok_or_else(|| Error::Pkcs11("the token did not return the agreed secret".into()))?;
        let mut out = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(Error::Pkcs11(format!(
                "the token agreed on {} bytes, not 32",
                bytes.len()
            )));
        }
        out.copy_from_slice(&bytes);
        if out.iter().all(|b| *b == 0) {
            // X25519 with a low-order point: nothing secret was agreed.
            return Err(Error::BadKey("the wrapping's ephemeral key is not a valid X25519 key"));
        }
        Ok(out)
    }
}
