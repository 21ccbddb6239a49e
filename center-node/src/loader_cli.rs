//! `konvert-center loader new-key` and `loader wrap-key`: the center key born on the
//! loader's workstation for two specialists at once, and one more specialist given a
//! copy by one who holds it. Both go into the center's audit log.

use std::path::{Path, PathBuf};

use konvert_crypto::pkcs11::Pkcs11Module;
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::token::TokenFile;

use crate::center_key::{self, Holder};
use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::loader_audit::LoaderAudit;
use crate::specialist::{self, HardwareRecipient, SpecialistLogin};
use crate::{loader, Error, Result};

/// `loader new-key`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct NewKeyArgs {
    /// center.toml (its key registry names the specialists; its data folder keeps the audit log).
    #[arg(long)]
    pub config: PathBuf,
    /// A specialist's token file to wrap the new key for (repeat; its PIN is asked).
    #[arg(long = "token")]
    pub tokens: Vec<PathBuf>,
    /// The PKCS#11 module of specialists' hardware tokens (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, requires = "pkcs11_tokens")]
    pub pkcs11_module: Option<PathBuf>,
    /// A specialist's hardware token label (repeat); no PIN is asked, only the token can unwrap.
    #[arg(long = "pkcs11-token", requires = "pkcs11_module")]
    pub pkcs11_tokens: Vec<String>,
    /// Where the wrapped keys go (relative to center.toml's folder).
    #[arg(long, default_value = "loader")]
    pub loader_dir: PathBuf,
    /// Where the key's public half goes: carry it to the receiver (`konvert-center
    /// set-center-key`) and the officers (`konvert keys init-authority --center-key` or
    /// `rotate-center-key --new-key`).
    #[arg(long)]
    pub public_out: PathBuf,
    /// Read every PIN from this environment variable (automation only).
    #[arg(long)]
    pub pin_env: Option<String>,
}

/// `loader wrap-key`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct WrapKeyArgs {
    /// center.toml
    #[arg(long)]
    pub config: PathBuf,
    /// The specialist who holds the key logs in (their PIN is asked).
    #[command(flatten)]
    pub holder: SpecialistLogin,
    /// The new specialist's token file (repeat; its PIN is asked).
    #[arg(long = "to-token", required_unless_present = "to_pkcs11_module")]
    pub to_tokens: Vec<PathBuf>,
    /// The PKCS#11 module of the new specialist's hardware token.
    #[arg(long, requires = "to_pkcs11_tokens")]
    pub to_pkcs11_module: Option<PathBuf>,
    /// The new specialist's hardware token label (repeat).
    #[arg(long = "to-pkcs11-token", requires = "to_pkcs11_module")]
    pub to_pkcs11_tokens: Vec<String>,
    /// Read the new specialists' PINs from this environment variable (automation only).
    #[arg(long)]
    pub to_pin_env: Option<String>,
}

fn config_dir(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).to_owned()
}

fn held_registry(cfg: &CenterConfig, config: &Path) -> Result<RegistryBody> {
    crate::registry::held(cfg, now_ms())?.ok_or_else(|| Error::Config {
        path: config.to_owned(),
        message: "the center holds no key registry; import the officers' registry first \
                  (it must list the specialists' tokens as issued)"
            .into(),
    })
}

/// The holders named by token files (each unlocked with its PIN) and hardware token
/// labels, each checked against the registry before any PIN is asked; `at_birth`, also
/// that they are at least two people's.
fn holders(
    registry: &RegistryBody,
    tokens: &[PathBuf],
    module: Option<&Path>,
    labels: &[String],
    pin_env: Option<&str>,
    at_birth: Option<&Path>,
) -> Result<Vec<Holder>> {
    let files = tokens
        .iter()
        .map(|path| {
            let token = TokenFile::read(path)?;
            loader::check_specialist(registry, &token, path)?;
            Ok((path, token))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = match module {
        Some(module) => {
            let module = Pkcs11Module::load(module)?;
            labels
                .iter()
                .map(|label| HardwareRecipient::find(registry, &module, label).map(Holder::Hardware))
                .collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    if let Some(dir) = at_birth {
        let mut named: Vec<(konvert_crypto::KeyId, &str)> = out.iter().map(|h| (h.token_key(), h.token_id())).collect();
        named.extend(files.iter().map(|(_, t)| (t.key_id(), t.token_id.as_str())));
        center_key::check_tokens(registry, &named, dir)?;
    }
    for (_, token) in files {
        let key = specialist::unlock_file(&token, pin_env)?;
        out.push(Holder::File {
            token: Box::new(token),
            key,
        });
    }
    Ok(out)
}

/// `loader new-key`.
pub fn new_key(args: NewKeyArgs) -> Result<()> {
    let cfg = CenterConfig::load(&args.config)?;
    let registry = held_registry(&cfg, &args.config)?;
    let audit = LoaderAudit::open(&cfg)?;
    let dir = config_dir(&args.config).join(&args.loader_dir);
    let holders = holders(
        &registry,
        &args.tokens,
        args.pkcs11_module.as_deref(),
        &args.pkcs11_tokens,
        args.pin_env.as_deref(),
        Some(&dir),
    )?;
    let made = center_key::new_key(&registry, &holders, &dir, &args.public_out)?;
    audit.born(&made.public, &made.holders)?;
    audit.finish();
    println!(
        "center key {} born on this workstation; no bare copy was written",
        made.public.key_id()
    );
    for ((id, person), path) in made.holders.iter().zip(&made.wrapped) {
        println!("  wrapped for {id} ({person}): {}", path.display());
    }
    println!("  public half: {} ({})", made.public_file.display(), made.public);
    println!(
        "next: carry {} to the receiver (`konvert-center set-center-key --config center.toml --file …`) \
         and to the officers (`konvert keys init-authority --center-key …`, or `rotate-center-key --new-key …` \
         for a new key), who publish it",
        made.public_file.display()
    );
    Ok(())
}

/// `loader wrap-key`.
pub fn wrap_key(args: WrapKeyArgs) -> Result<()> {
    let cfg = CenterConfig::load(&args.config)?;
    let registry = held_registry(&cfg, &args.config)?;
    let audit = LoaderAudit::open(&cfg)?;
    let base = config_dir(&args.config);
    // The new tokens are checked before the holder's key is unwrapped.
    for path in &args.to_tokens {
        loader::check_specialist(&registry, &TokenFile::read(path)?, path)?;
    }
    let (by, keys) = specialist::login_as(&registry, &args.holder, &base)?;
    audit.login(&by, &keys, "wrap the center key for another specialist's token")?;
    let more = holders(
        &registry,
        &args.to_tokens,
        args.to_pkcs11_module.as_deref(),
        &args.to_pkcs11_tokens,
        args.to_pin_env.as_deref(),
        None,
    )?;
    let dir = base.join(&args.holder.loader_dir);
    let wrapped = center_key::wrap_for_more(&registry, &keys, &more, &dir)?;
    for (key, to, path) in &wrapped {
        audit.wrapped(&by, key, to)?;
        println!("center key {} wrapped for {to}: {}", key.key_id(), path.display());
    }
    audit.finish();
    Ok(())
}
