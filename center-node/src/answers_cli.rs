//! The command lines of the loader's answers: `konvert-center loader answers export` on
//! the offline workstation, `konvert-center answers import|list` at the receiver.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use konvert_crypto::pkcs11::{Pkcs11Module, IDENTITY_KEY_LABEL};
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::token::TokenFile;
use konvert_crypto::{keyfile, KeyId, MemberSigner, VerifyingKey};
use konvert_replication::logging::printable;
use konvert_replication::PacketAnswer;

use crate::answers::{self, ImportReport};
use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::specialist::{read_pin, unlock_file, SpecialistLogin};
use crate::{Error, Result};

/// The largest answers file (`--answers`) read.
const MAX_ANSWERS_JSON: u64 = 64 << 20;

/// The loader's answers, on the offline workstation.
#[derive(Debug, Subcommand)]
pub enum LoaderAnswersAction {
    /// Sign the answers with a center specialist's token and write them onto a drive (or
    /// a one-way folder) for the receiver: `konvert-center answers import` takes them.
    Export {
        /// center.toml (the loader's copy).
        #[arg(long)]
        config: PathBuf,
        /// The answers to send, as JSON (a list of packet answers); default: every answer
        /// in the loader's records (the receiver keeps only what is new or newer).
        #[arg(long)]
        answers: Option<PathBuf>,
        /// The records' folder (default: `records` beside center.toml).
        #[arg(long, conflicts_with = "answers")]
        records: Option<PathBuf>,
        /// The drive folder (or the receiver's one-way folder).
        #[arg(long)]
        to: PathBuf,
        /// The center's receipt public key, 64 hex digits (default: keys/receipt.pub
        /// beside the config's receipt key).
        #[arg(long)]
        center_key: Option<String>,
        /// The center specialist's login (the loader-key folder is not used).
        #[command(flatten)]
        specialist: SpecialistLogin,
    },
}

/// The loader's answers, at the receiver.
#[derive(Debug, Subcommand)]
pub enum AnswersAction {
    /// Take the loader's signed answers from a drive (works whether or not the center
    /// serves); each is checked, re-issued to its site, and recorded in the audit log.
    Import {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The drive folder the loader exported to.
        #[arg(long)]
        from: PathBuf,
        /// Who imports the drive (recorded in the audit log).
        #[arg(long)]
        operator: String,
    },
    /// The answers taken, and which remarks are open or answered by a later version.
    List {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// Only open remarks.
        #[arg(long)]
        open: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

fn relative(config: &Path, p: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join(p)
}

/// The center's identity for a batch: its receipt key's id, given or read from its
/// public file.
fn center_key(cfg: &CenterConfig, given: Option<&str>) -> Result<KeyId> {
    if let Some(hex) = given {
        return Ok(VerifyingKey::from_hex(hex)?.key_id());
    }
    let path = cfg.receipt_key.with_extension("pub");
    let text = keyfile::read_bounded(&path, 1024)?;
    let text = std::str::from_utf8(&text).map_err(|_| Error::Answers {
        what: format!("{} is not a public key", path.display()),
        hint: "give --center-key with the center's receipt key (printed by `konvert-center init`)",
    })?;
    Ok(VerifyingKey::from_hex(text)?.key_id())
}

/// Unlocks the specialist's token to sign with, after the registry says it may.
fn signer(registry: &RegistryBody, login: &SpecialistLogin) -> Result<(String, Box<dyn MemberSigner>)> {
    let pin_env = login.pin_env.as_deref();
    match (&login.token, &login.pkcs11_module, &login.pkcs11_token) {
        (Some(path), _, _) => {
            let file = TokenFile::read(path)?;
            let token = answers::check_signer(registry, file.key_id(), &format!("token {}", file.token_id))?;
            Ok((token, Box::new(unlock_file(&file, pin_env)?)))
        }
        (None, Some(module), Some(label)) => {
            let module = Pkcs11Module::load(module)?;
            let key = module.signing_public(label, IDENTITY_KEY_LABEL)?.key_id();
            let token = answers::check_signer(registry, key, &format!("hardware token {label:?}"))?;
            let pin = read_pin(&format!("PIN of hardware token {label} ({token}): "), pin_env)?;
            Ok((token, Box::new(module.login(label, IDENTITY_KEY_LABEL, &pin)?)))
        }
        _ => Err(Error::Answers {
            what: "no specialist's token named".into(),
            hint: "give --token FILE, or --pkcs11-module and --pkcs11-token",
        }),
    }
}

/// Runs `konvert-center loader answers …`.
pub fn loader_answers(action: LoaderAnswersAction) -> Result<()> {
    match action {
        LoaderAnswersAction::Export {
            config,
            answers: source,
            records,
            to,
            center_key: given,
            specialist,
        } => {
            let cfg = CenterConfig::load(&config)?;
            let registry = crate::registry::held(&cfg, now_ms())?.ok_or_else(|| Error::Answers {
                what: "the center holds no key registry".into(),
                hint: "import the officers' registry first",
            })?;
            let center = center_key(&cfg, given.as_deref())?;
            let list: Vec<PacketAnswer> = match source {
                Some(source) => {
                    let bytes = keyfile::read_bounded(&relative(&config, &source), MAX_ANSWERS_JSON)?;
                    serde_json::from_slice(&bytes).map_err(|e| Error::Answers {
                        what: format!("{}: not a list of packet answers ({e})", source.display()),
                        hint: "nothing was written",
                    })?
                }
                None => {
                    let place = crate::processing::Workplace {
                        data_dir: cfg.data_dir.clone(),
                        records_dir: records.map_or_else(|| cfg.records.clone(), |r| relative(&config, &r)),
                        records_url: cfg.records_url.clone(),
                        checkpoint_key: None,
                    };
                    place.open_records()?.answers()?
                }
            };
            if list.is_empty() {
                return Err(Error::Answers {
                    what: "there are no answers to send yet".into(),
                    hint: "run `konvert-center loader process` first; nothing was written",
                });
            }
            let (token, key) = signer(&registry, &specialist)?;
            let report = answers::export_answers(&list, key.as_ref(), center, &to, now_ms())?;
            println!(
                "{} answer(s) signed by token {token} for center {center}: {} loaded, {} remark(s) — {}",
                report.answers,
                report.loaded,
                report.remarks,
                report.file.display()
            );
            println!(
                "next: carry the drive to the receiver and run `konvert-center answers import --config center.toml --from {} --operator NAME`",
                to.display()
            );
        }
    }
    Ok(())
}

fn print_report(report: &ImportReport) {
    println!(
        "{}: {} taken, {} already held, {} refused",
        report.file,
        report.taken.len(),
        report.already.len(),
        report.refused.len()
    );
    for t in &report.taken {
        println!("  taken          {t}");
    }
    for r in &report.refused {
        println!("  REFUSED        {r}");
    }
}

/// Runs `konvert-center answers …`.
pub fn answers_command(action: AnswersAction) -> Result<()> {
    match action {
        AnswersAction::Import { config, from, operator } => {
            let cfg = CenterConfig::load(&config)?;
            let outcomes = answers::import_drive(&cfg, &from, &operator)?;
            let (mut refused, mut failed) = (0, 0);
            for outcome in outcomes {
                match outcome {
                    Ok(report) => {
                        refused += report.refused.len();
                        print_report(&report);
                    }
                    Err(e) => {
                        failed += 1;
                        println!("  NOT TAKEN      {}", printable(&e.to_string()));
                    }
                }
            }
            println!("the sites see the answers taken when their stations next ask for notices");
            if refused + failed > 0 {
                return Err(Error::Answers {
                    what: format!("{failed} batch(es) not taken, {refused} answer(s) refused"),
                    hint: "see each above; what was taken stays taken, and importing again changes nothing",
                });
            }
        }
        AnswersAction::List { config, open, json } => {
            let cfg = CenterConfig::load(&config)?;
            let request = format!(
                "answers{}{}",
                if open { " --open" } else { "" },
                if json { " --json" } else { "" }
            );
            if let Some(answer) = crate::control::ask_center(&cfg.data_dir, &request) {
                print!("{}", answer?);
                return Ok(());
            }
            let inbox = konvert_replication::Inbox::open(&cfg.data_dir)?;
            print!("{}", answers::list_text(&cfg.data_dir, &inbox, open, json)?);
        }
    }
    Ok(())
}
