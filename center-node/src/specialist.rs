//! The center specialist at the loader: which token they bring (a token file, or a
//! hardware token through its PKCS#11 module), their PIN, and the loader key it unwraps.

use std::path::{Path, PathBuf};

use konvert_crypto::loader_key::Specialist;
use konvert_crypto::pkcs11::{Pkcs11Module, IDENTITY_KEY_LABEL, LOADER_KEY_LABEL};
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::token::TokenFile;
use konvert_crypto::RecipientSecretKey;
use zeroize::Zeroizing;

use crate::intake::now_ms;
use crate::{loader, Error, Result};

/// How the specialist logs in at the loader: a token file (`--token`) or a hardware
/// token (`--pkcs11-module` and `--pkcs11-token`), the folder of wrapped loader keys, and
/// where the PIN comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecialistLogin {
    /// The center specialist's token file.
    #[arg(long, required_unless_present = "pkcs11_module", conflicts_with = "pkcs11_module")]
    pub token: Option<PathBuf>,
    /// The specialist's hardware token: its PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// The hardware token's label.
    #[arg(long, requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
    /// The folder of wrapped loader keys (relative to center.toml's folder).
    #[arg(long, default_value = "loader")]
    pub loader_dir: PathBuf,
    /// Read the PIN from this environment variable (automation only).
    #[arg(long)]
    pub pin_env: Option<String>,
}

/// The PIN from `pin_env` (automation only), else asked with `prompt`.
pub fn read_pin(prompt: &str, pin_env: Option<&str>) -> Result<Zeroizing<String>> {
    if let Some(var) = pin_env {
        return konvert_crypto::token::pin_from_env(var).ok_or_else(|| Error::Config {
            path: PathBuf::from(var),
            message: "the environment variable with the PIN is not set".into(),
        });
    }
    // rpassword asks on /dev/tty: without a controlling terminal opening it fails with
    // "No such device or address", which says nothing about a PIN.
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|cause| Error::Loader {
            what: format!(
                "a PIN is needed ({}), but there is no terminal to ask for it ({cause})",
                prompt.trim_end_matches([':', ' '])
            ),
            hint: "run the command in a terminal, or give --pin-env VAR with the PIN in the environment variable VAR",
        })
}

/// A hardware token as the registry knows it: its token id and its Ed25519 key.
fn hardware_identity(
    registry: &RegistryBody,
    module: &Pkcs11Module,
    label: &str,
) -> Result<(String, konvert_crypto::KeyId)> {
    let identity = module.signing_public(label, IDENTITY_KEY_LABEL)?.key_id();
    let token_id =
        loader::check_specialist_key(registry, identity, &format!("hardware token {label:?}"), module.path())?;
    Ok((token_id, identity))
}

/// A specialist's hardware token, ready to wrap for: its token id, Ed25519 key id and
/// X25519 key. Reads public keys only, so no PIN; checked against the registry.
#[derive(Debug, Clone)]
pub struct HardwareRecipient {
    token_id: String,
    identity: konvert_crypto::KeyId,
    agreement_key: konvert_crypto::RecipientPublicKey,
}

impl HardwareRecipient {
    /// The token labelled `label`, if the registry lets it hold the loader key.
    /// The X25519 key must be the one the registry names for the token (recorded by
    /// `konvert keys issue-token` when it was generated on the token): a device that shows
    /// a registered specialist's public Ed25519 key beside its own X25519 key gets nothing.
    pub fn find(registry: &RegistryBody, module: &Pkcs11Module, label: &str) -> Result<Self> {
        let (token_id, identity) = hardware_identity(registry, module, label)?;
        let shown = module.agreement_public(label, LOADER_KEY_LABEL)?;
        let refuse = |message: String| Error::Config {
            path: module.path().to_owned(),
            message,
        };
        let agreement_key = *registry.agreement_key(&token_id).ok_or_else(|| {
            refuse(format!(
                "key registry v{} names no X25519 key for hardware token {label:?} ({token_id}), so the loader key is not wrapped to it; the officers record it when they issue the token (`konvert keys issue-token --role specialist --pkcs11-…`) and publish",
                registry.version
            ))
        })?;
        if shown != agreement_key {
            return Err(refuse(format!(
                "hardware token {label:?} shows X25519 key {}, but key registry v{} names {} for token {token_id}: this is not that specialist's token (or it was altered); nothing was wrapped",
                shown.key_id(),
                registry.version,
                agreement_key.key_id()
            )));
        }
        Ok(HardwareRecipient {
            token_id,
            identity,
            agreement_key,
        })
    }

    /// The token's id (serial number).
    pub fn token_id(&self) -> &str {
        &self.token_id
    }

    /// The token's Ed25519 key id, by which the registry knows it.
    pub fn identity(&self) -> konvert_crypto::KeyId {
        self.identity
    }

    /// Wraps the center key for this token into `dir`; only the token can unwrap it.
    pub fn wrap(&self, secret: &RecipientSecretKey, dir: &Path) -> Result<PathBuf> {
        loader::wrap_for_hardware(dir, secret, &self.token_id, self.identity, &self.agreement_key)
    }
}

/// Unlocks a specialist's token file with its PIN (from `pin_env`, else asked).
pub fn unlock_file(file: &TokenFile, pin_env: Option<&str>) -> Result<konvert_crypto::SigningKey> {
    let prompt = format!("PIN of token {} ({}): ", file.token_id, file.holder);
    Ok(file.unlock(&read_pin(&prompt, pin_env)?)?)
}

/// The specialist logs in: an Issued specialist's token, its PIN, then the active
/// center key.
pub fn login(registry: &RegistryBody, token: &SpecialistLogin, base: &Path) -> Result<RecipientSecretKey> {
    let mut keys = login_all(registry, token, base)?;
    Ok(keys.remove(0))
}

/// Like [`login`], with every center key still in use that this specialist holds, the
/// active one first (packets sealed before a rotation open with the older key). Never
/// empty. A relative `loader_dir` is taken from `base` (center.toml's folder).
pub fn login_all(registry: &RegistryBody, token: &SpecialistLogin, base: &Path) -> Result<Vec<RecipientSecretKey>> {
    login_as(registry, token, base).map(|(_, keys)| keys)
}

/// Like [`login_all`], with the token id of the specialist who logged in (for the audit
/// log).
pub fn login_as(
    registry: &RegistryBody,
    token: &SpecialistLogin,
    base: &Path,
) -> Result<(String, Vec<RecipientSecretKey>)> {
    let loader_dir = &base.join(&token.loader_dir);
    let pin_env = token.pin_env.as_deref();
    let keys = match (&token.token, &token.pkcs11_module, &token.pkcs11_token) {
        (Some(path), _, _) => {
            let file = TokenFile::read(path)?;
            loader::check_specialist(registry, &file, path)?;
            let key = unlock_file(&file, pin_env)?;
            let keys = loader::unwrap_for(loader_dir, registry, Specialist::File(&key), now_ms())?;
            (file.token_id, keys)
        }
        (None, Some(module), Some(label)) => {
            let module = Pkcs11Module::load(module)?;
            let (token_id, identity) = hardware_identity(registry, &module, label)?;
            let pin = read_pin(&format!("PIN of hardware token {label} ({token_id}): "), pin_env)?;
            let agreement = module.login_agreement(label, LOADER_KEY_LABEL, &pin)?;
            let specialist = Specialist::Hardware {
                token_key: identity,
                agreement: &agreement,
            };
            (
                token_id,
                loader::unwrap_for(loader_dir, registry, specialist, now_ms())?,
            )
        }
        _ => {
            return Err(Error::Config {
                path: loader_dir.to_owned(),
                message: "name the specialist's token: --token FILE, or --pkcs11-module and --pkcs11-token".into(),
            })
        }
    };
    Ok(keys)
}
