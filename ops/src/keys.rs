//! `konvert keys`: the security officers' commands — the authority, member tokens, their
//! statuses in the registry draft, and publishing the signed registry. Every successful
//! change is recorded in the workspace's audit log (`keys audit verify` checks it).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use konvert_crypto::audit::AuditAction;
use konvert_crypto::pkcs11::Pkcs11Module;
use konvert_crypto::registry::{Binding, CenterKeyRecord, CenterKeyState, RegistryBody, TokenRole, TokenStatus};
use konvert_crypto::token::{KdfParams, TokenFile};
use konvert_crypto::RecipientPublicKey;
use konvert_edge::cli::now_unix_ms as now_ms;
use zeroize::Zeroizing;

use konvert_crypto::registry::{AuthorityFile, OfficerEntry};

use crate::authority::{os_user, record, Workspace};

/// Security officers' key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the officers' authority: a PIN-protected key per officer, the threshold of
    /// signatures a registry needs, and an empty registry draft.
    InitAuthority {
        /// The workspace folder to create.
        #[arg(long)]
        dir: PathBuf,
        /// An officer's name (repeat for each officer).
        #[arg(long = "officer", required = true)]
        officers: Vec<String>,
        /// Signatures a registry needs.
        #[arg(long)]
        threshold: u8,
        /// The center key's public half (64 hex digits, from `konvert-center loader new-key`).
        /// Leave it out when the key is not born yet: it is born for specialists' tokens
        /// this registry issues first, then added with `rotate-center-key`.
        #[arg(long)]
        center_key: Option<String>,
        /// Days a published registry stays valid.
        #[arg(long, default_value_t = 7)]
        valid_days: u32,
        /// Read the officers' PIN from this environment variable (automation only).
        #[arg(long)]
        pin_env: Option<String>,
        /// Argon2id memory in MiB protecting the officers' PINs (64 to 1024).
        #[arg(long, default_value_t = 64)]
        kdf_memory_mib: u32,
        /// Tests and drills only: a KDF that a stolen token file falls to in seconds.
        #[arg(long, hide = true)]
        insecure_fast_kdf: bool,
    },
    /// Create a token file: a new signing key under the holder's PIN, or with
    /// --pkcs11-module/--pkcs11-token a key generated on a hardware token; with
    /// --authority, record its public key in the registry draft as Loaded.
    IssueToken {
        /// Where to write the token file.
        #[arg(long, required_unless_present = "pkcs11_module", conflicts_with = "pkcs11_module")]
        out: Option<PathBuf>,
        /// The hardware token's PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so):
        /// generate the member key on the token instead of writing a file.
        #[arg(long, requires = "pkcs11_token")]
        pkcs11_module: Option<PathBuf>,
        /// The hardware token's label.
        #[arg(long, requires = "pkcs11_module")]
        pkcs11_token: Option<String>,
        /// The member key's label on the hardware token.
        #[arg(long, default_value = konvert_edge::config::DEFAULT_KEY_LABEL)]
        pkcs11_key_label: String,
        /// The token's id (serial number).
        #[arg(long)]
        token_id: String,
        /// The member who holds it.
        #[arg(long)]
        holder: String,
        /// The officers' workspace whose registry draft records the token.
        #[arg(long)]
        authority: Option<PathBuf>,
        /// member or specialist (a center specialist's token for the loader).
        #[arg(long, default_value = "member")]
        role: String,
        /// Read the PIN from this environment variable instead of asking (automation only).
        #[arg(long)]
        pin_env: Option<String>,
        /// Argon2id memory in MiB protecting the PIN (64 to 1024).
        #[arg(long, default_value_t = 64)]
        kdf_memory_mib: u32,
        /// Tests and drills only: a KDF that a stolen token file falls to in seconds.
        #[arg(long, hide = true)]
        insecure_fast_kdf: bool,
    },
    /// Record in the registry draft the X25519 key on a specialist's hardware token that
    /// was issued before `issue-token` recorded it; `loader new-key` and `wrap-key` wrap only to the key
    /// the registry names. Reads public keys only (no PIN); do it with the token in hand.
    RecordLoaderKey {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// The specialist's token, already in the draft.
        #[arg(long)]
        token_id: String,
        /// The hardware token's PKCS#11 module.
        #[arg(long)]
        pkcs11_module: PathBuf,
        /// The hardware token's label.
        #[arg(long)]
        pkcs11_token: String,
    },
    /// Move a token to another status in the registry draft, as the regulations allow.
    SetStatus {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// The token.
        #[arg(long)]
        token_id: String,
        /// loaded, received-by-center, bound, statement-printed, issued, lost, compromised, broken.
        #[arg(long)]
        status: TokenStatus,
        /// With `bound`: the person.
        #[arg(long)]
        person: Option<String>,
        /// With `bound`: a site the token may sign for (repeat).
        #[arg(long)]
        site: Vec<String>,
        /// With `bound`: an exam day, YYYY-MM-DD (repeat).
        #[arg(long)]
        date: Vec<String>,
        /// Do not ask before blocking a token.
        #[arg(long)]
        yes: bool,
        /// Print the token as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign the draft as the next registry version with a threshold of officers.
    Publish {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// An officer who signs (repeat until the threshold).
        #[arg(long = "officer", required = true)]
        officers: Vec<String>,
        /// Read every officer's PIN from this environment variable (automation only).
        #[arg(long)]
        pin_env: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new center key (born with `konvert-center loader new-key`) the one edges
    /// seal to; the old one keeps opening packets sealed to it for the grace period. The
    /// first center key of a registry begun without one is added the same way.
    RotateCenterKey {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// The new recipient public key (64 hex digits).
        #[arg(long)]
        new_key: String,
        /// Days the old key still opens envelopes sealed to it.
        #[arg(long, default_value_t = 3)]
        grace_days: u32,
    },
    /// Mark center keys past their grace period destroyed in the draft, and destroy the
    /// given private key files that belong to them.
    RetireCenterKeys {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// A center private key file to destroy if its key was retired: a loader key
        /// wrapped for a specialist's token (`loader/*.loader-key`), or a bare key file
        /// left from before keys were born wrapped; repeat.
        #[arg(long)]
        key_file: Vec<PathBuf>,
    },
    /// The tamper-evident audit log: verify it, or list its entries.
    #[command(subcommand)]
    Audit(crate::audit_cli::AuditCommand),
    /// Print the token issue statement (HTML, one row per token with signature columns)
    /// for tokens bound to their holders; they move to Statement printed.
    Statement {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// Where to write the page (open it in a browser and print it).
        #[arg(long)]
        out: PathBuf,
        /// Only these tokens (repeat); default: every token that is Bound.
        #[arg(long = "token")]
        tokens: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a signed issue statement: its tokens move to Issued (publish to take effect).
    RecordStatement {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// The statement's id, as printed on it.
        #[arg(long)]
        statement_id: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Station certificates: enroll, revoke, list, renew the revocation list.
    #[command(flatten)]
    Stations(crate::stations::StationCommand),
    /// Review the token certificate data a region received from ФИС against the registry
    /// draft; reads only: the registry changes by the officers' own commands.
    ReviewCertificates {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// The file `konvert-center loader token-certificates` wrote.
        file: PathBuf,
    },
    /// Show the registry draft.
    Show {
        /// The officers' workspace.
        #[arg(long)]
        authority: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

fn pin_from(pin_env: Option<&str>, prompt: &str, repeat: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(var) = pin_env {
        return konvert_crypto::token::pin_from_env(var)
            .ok_or_else(|| anyhow::anyhow!("environment variable {var} with the PIN is not set"));
    }
    // rpassword asks on /dev/tty: without a controlling terminal opening it fails with
    // "No such device or address", which says nothing about a PIN.
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map(Zeroizing::new).map_err(|cause| {
            anyhow::anyhow!(
                "a PIN is needed ({}), but there is no terminal to ask for it ({cause}); run the command \
                 in a terminal, or give --pin-env VAR with the PIN in the environment variable VAR",
                prompt.trim_end_matches([':', ' '])
            )
        })
    };
    let a = ask(prompt)?;
    if repeat {
        let b = ask("Repeat the PIN: ")?;
        anyhow::ensure!(*a == *b, "the two PINs differ; nothing was written");
    }
    Ok(a)
}

fn record_audit_loader_key(
    audit: &konvert_crypto::audit::AuditLog,
    token_id: &str,
    key: &RecipientPublicKey,
) -> anyhow::Result<()> {
    record(
        audit,
        &os_user(),
        AuditAction::Other("token.loader_key".into()),
        token_id,
        &format!("loader X25519 key {} on the hardware token recorded", key.key_id()),
    )?;
    Ok(())
}

/// The Argon2id parameters for a new token file.
fn token_kdf(memory_mib: u32, insecure_fast: bool) -> anyhow::Result<KdfParams> {
    if insecure_fast {
        eprintln!("warning: --insecure-fast-kdf: this token file falls to an offline PIN search in seconds; tests and drills only");
        return Ok(KdfParams::insecure_fast_for_tests());
    }
    KdfParams::with_memory_mib(memory_mib).context("--kdf-memory-mib")
}

/// A token as `show --json` and `set-status --json` print it.
fn token_json(t: &konvert_crypto::registry::TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "token_id": t.token_id,
        "person": t.person,
        "role": match t.role { TokenRole::Member => "member", TokenRole::CenterSpecialist => "specialist" },
        "public": t.public.to_string(),
        "status": t.status.as_str(),
        "status_ru": t.status.russian(),
        "status_since_unix_ms": t.status_since_unix_ms,
        "sites": t.sites,
        "dates": t.dates,
    })
}

fn confirm_block(token_id: &str, status: TokenStatus) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "blocking token {token_id} ({status}) is final; confirm with --yes"
    );
    println!("Blocking token {token_id} as {status} is final: it can never sign again.");
    println!("Type the token id to confirm:");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    anyhow::ensure!(line.trim() == token_id, "not confirmed; nothing was changed");
    Ok(())
}

/// Overwrites a secret key file with zeros, makes that durable, then removes it.
fn destroy_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let len = std::fs::metadata(path)?.len();
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)?;
    Ok(())
}

/// The center key a private key file holds: a bare recipient key file, or a loader key
/// wrapped for a specialist's token (read from its clear header, without unwrapping).
fn center_key_of(path: &std::path::Path) -> anyhow::Result<RecipientPublicKey> {
    let bytes = konvert_crypto::keyfile::read_bounded(path, konvert_crypto::loader_key::MAX_WRAPPED_LEN as u64)?;
    if bytes.starts_with(b"KNVRTLDR") {
        return Ok(konvert_crypto::loader_key::header(&bytes)
            .with_context(|| format!("reading {}", path.display()))?
            .center_key);
    }
    Ok(konvert_crypto::keyfile::read_recipient_key(path)?.public_key())
}

/// Runs one keys command.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::InitAuthority {
            dir,
            officers,
            threshold,
            center_key,
            valid_days,
            pin_env,
            kdf_memory_mib,
            insecure_fast_kdf,
        } => {
            let kdf = token_kdf(kdf_memory_mib, insecure_fast_kdf)?;
            let center = center_key
                .as_deref()
                .map(|k| RecipientPublicKey::from_hex(k).context("--center-key"))
                .transpose()?;
            let ws = Workspace::create(&dir)?;
            let audit = ws.audit_log()?;
            let mut entries = Vec::new();
            for name in &officers {
                let pin = pin_from(pin_env.as_deref(), &format!("New PIN for officer {name}: "), true)?;
                let token = TokenFile::create(&ws.officer_token(name), &format!("OFFICER-{name}"), name, &pin, kdf)?;
                entries.push(OfficerEntry {
                    name: name.clone(),
                    public: token.public.to_string(),
                });
            }
            let file = AuthorityFile {
                officers: entries,
                threshold,
                valid_days,
            };
            let authority = file.authority()?;
            ws.write_authority_file(&file)?;
            let draft = RegistryBody {
                version: 0,
                issued_at_unix_ms: 0,
                expires_at_unix_ms: 0,
                authority,
                tokens: Vec::new(),
                center_keys: center
                    .iter()
                    .map(|&key| CenterKeyRecord {
                        key,
                        state: CenterKeyState::Active,
                    })
                    .collect(),
                agreement_keys: Vec::new(),
            };
            ws.save_draft(&draft)?;
            record(
                &audit,
                &os_user(),
                AuditAction::AuthorityInit,
                &dir.display().to_string(),
                &format!(
                    "officers {}; {threshold} signature(s) per registry; registries valid {valid_days} day(s); center key {}",
                    officers.join(", "),
                    center.map_or_else(|| "not born yet".to_owned(), |c| c.to_string())
                ),
            )?;
            println!(
                "authority of {} officer(s), {threshold} signature(s) per registry, in {}",
                officers.len(),
                dir.display()
            );
            println!("give each edge and the center authority.toml: it anchors their trust");
            println!(
                "the audit log's checkpoints are signed by key {} (audit.pub): keep a copy of it away from this machine",
                ws.audit_public_key()?
            );
        }
        KeysCommand::IssueToken {
            out,
            pkcs11_module,
            pkcs11_token,
            pkcs11_key_label,
            token_id,
            holder,
            authority,
            role,
            pin_env,
            kdf_memory_mib,
            insecure_fast_kdf,
        } => {
            let kdf = token_kdf(kdf_memory_mib, insecure_fast_kdf)?;
            let role = match role.as_str() {
                "member" => TokenRole::Member,
                "specialist" => TokenRole::CenterSpecialist,
                other => anyhow::bail!("unknown role {other:?}; member or specialist"),
            };
            // Check the draft takes the token before creating the key.
            let ws = authority.as_deref().map(Workspace::open).transpose()?;
            let audit = ws.as_ref().map(Workspace::audit_log).transpose()?;
            if let Some(ws) = &ws {
                let draft = ws.draft()?;
                anyhow::ensure!(
                    !draft.tokens.iter().any(|t| t.token_id == token_id),
                    "token {token_id} is already in the registry draft"
                );
            }
            // A specialist's hardware token also gets an X25519 key for the loader's key.
            let mut loader_key = None;
            let public = match (out, pkcs11_module, pkcs11_token) {
                (_, Some(module), Some(label)) => {
                    anyhow::ensure!(
                        role == TokenRole::Member || pkcs11_key_label == konvert_crypto::pkcs11::IDENTITY_KEY_LABEL,
                        "a specialist's hardware token keeps the default --pkcs11-key-label ({}), which the loader looks for",
                        konvert_crypto::pkcs11::IDENTITY_KEY_LABEL
                    );
                    let module = Pkcs11Module::load(&module)?;
                    let pin = pin_from(pin_env.as_deref(), &format!("PIN of hardware token {label}: "), false)?;
                    let public = module.generate_member_key(&label, &pin, &pkcs11_key_label)?;
                    println!(
                        "token {token_id} for {holder}: key {pkcs11_key_label:?} generated on hardware token {label:?}; the private key never leaves it"
                    );
                    if role == TokenRole::CenterSpecialist {
                        // The loader key is wrapped to this X25519 key and only the token
                        // unwraps it (`konvert-center loader new-key --pkcs11-token`, or
                        // `loader wrap-key --to-pkcs11-token` from a specialist who holds it).
                        let loader_label = konvert_crypto::pkcs11::LOADER_KEY_LABEL;
                        let x25519 = module.generate_agreement_key(&label, &pin, loader_label)?;
                        loader_key = Some(x25519);
                        println!(
                            "X25519 key {loader_label:?} for the loader's key generated on it too ({}); once issued and published, at the loader's workstation:\n  a new center key for it and another person's token: konvert-center loader new-key --config center.toml --pkcs11-module {m} --pkcs11-token {label} --token <other specialist's token> --public-out center-key.pub\n  or the key from a specialist who holds it: konvert-center loader wrap-key --config center.toml --token <holder's token> --to-pkcs11-module {m} --to-pkcs11-token {label}",
                            x25519.key_id(),
                            m = module.path().display()
                        );
                    } else {
                        println!(
                            "in the site's site.toml:\n  [pkcs11]\n  module = \"{}\"\n  token_label = \"{label}\"\n  key_label = \"{pkcs11_key_label}\"",
                            module.path().display()
                        );
                    }
                    drop(pin);
                    public
                }
                (Some(out), _, _) => {
                    let token = if role == TokenRole::CenterSpecialist {
                        // The key to every scan: a passphrase, not a PIN (or a hardware token).
                        let pin = pin_from(
                            pin_env.as_deref(),
                            "New passphrase for the specialist's token (12 characters or more, not only digits): ",
                            true,
                        )?;
                        TokenFile::create_specialist(&out, &token_id, &holder, &pin, kdf)?
                    } else {
                        let pin = pin_from(
                            pin_env.as_deref(),
                            "New PIN for the token (6 characters or more): ",
                            true,
                        )?;
                        TokenFile::create(&out, &token_id, &holder, &pin, kdf)?
                    };
                    println!(
                        "token {} for {} written to {}",
                        token.token_id,
                        token.holder,
                        out.display()
                    );
                    token.public
                }
                _ => anyhow::bail!("give --out for a token file, or --pkcs11-module and --pkcs11-token"),
            };
            println!("public key: {public}");
            if let Some(ws) = ws {
                let mut draft = ws.draft()?;
                draft.add_token(&token_id, role, public, now_ms())?;
                if let Some(x25519) = loader_key {
                    // `loader wrap-key` wraps the center key only to this key for this token.
                    draft.set_agreement_key(&token_id, x25519)?;
                }
                ws.save_draft(&draft)?;
                if let Some(audit) = &audit {
                    record(
                        audit,
                        &os_user(),
                        AuditAction::TokenIssue,
                        &token_id,
                        &format!(
                            "holder {holder}; role {}; public key {}{}",
                            match role {
                                TokenRole::Member => "member",
                                TokenRole::CenterSpecialist => "specialist",
                            },
                            public,
                            loader_key
                                .map(|k| format!("; loader X25519 key {} on the hardware token", k.key_id()))
                                .unwrap_or_default()
                        ),
                    )?;
                }
                println!("recorded in the registry draft as loaded; publish to take effect");
            }
        }
        KeysCommand::RecordLoaderKey {
            authority,
            token_id,
            pkcs11_module,
            pkcs11_token,
        } => {
            let ws = Workspace::open(&authority)?;
            let audit = ws.audit_log()?;
            let mut draft = ws.draft()?;
            let module = Pkcs11Module::load(&pkcs11_module)?;
            let identity = module.signing_public(&pkcs11_token, konvert_crypto::pkcs11::IDENTITY_KEY_LABEL)?;
            let record = draft
                .tokens
                .iter()
                .find(|t| t.token_id == token_id)
                .with_context(|| format!("token {token_id} is not in the registry draft"))?;
            anyhow::ensure!(
                record.role == TokenRole::CenterSpecialist,
                "token {token_id} is a member's; only a specialist's token holds the loader key"
            );
            anyhow::ensure!(
                record.public == identity,
                "hardware token {pkcs11_token:?} holds key {}, but the draft lists {} for token {token_id}: not this token; nothing was recorded",
                identity.key_id(),
                record.public.key_id()
            );
            let x25519 = module.agreement_public(&pkcs11_token, konvert_crypto::pkcs11::LOADER_KEY_LABEL)?;
            draft.set_agreement_key(&token_id, x25519)?;
            ws.save_draft(&draft)?;
            record_audit_loader_key(&audit, &token_id, &x25519)?;
            println!(
                "token {token_id}: loader X25519 key {} recorded in the registry draft; publish to take effect",
                x25519.key_id()
            );
        }
        KeysCommand::SetStatus {
            authority,
            token_id,
            status,
            person,
            site,
            date,
            yes,
            json,
        } => {
            let ws = Workspace::open(&authority)?;
            let audit = ws.audit_log()?;
            let mut draft = ws.draft()?;
            let binding = person.map(|person| Binding {
                person,
                sites: site,
                dates: date,
            });
            if status.is_blocked() && !yes {
                confirm_block(&token_id, status)?;
            }
            let before = draft
                .tokens
                .iter()
                .find(|t| t.token_id == token_id)
                .map(|t| t.status.as_str().to_owned())
                .unwrap_or_default();
            let token = draft.set_status(&token_id, status, binding, now_ms())?.clone();
            ws.save_draft(&draft)?;
            let mut detail = format!("{before} -> {}", token.status.as_str());
            if !token.person.is_empty() {
                detail.push_str(&format!("; person {}", token.person));
            }
            if !token.sites.is_empty() || !token.dates.is_empty() {
                detail.push_str(&format!(
                    "; sites {}; days {}",
                    token.sites.join(","),
                    token.dates.join(",")
                ));
            }
            record(&audit, &os_user(), AuditAction::TokenStatus, &token_id, &detail)?;
            if json {
                println!("{}", token_json(&token));
            } else {
                println!(
                    "token {token_id}: {} ({}); publish to take effect",
                    token.status,
                    token.status.russian()
                );
            }
        }
        KeysCommand::Publish {
            authority,
            officers,
            pin_env,
            json,
        } => {
            let ws = Workspace::open(&authority)?;
            let audit = ws.audit_log()?;
            let keys = ws.unlock_officers(&officers, &|t: &TokenFile| {
                pin_from(pin_env.as_deref(), &format!("PIN of officer {}: ", t.holder), false)
            })?;
            let refs: Vec<_> = keys.iter().collect();
            let (path, body) = ws.publish(&refs, now_ms())?;
            record(
                &audit,
                &format!("officers {}", officers.join(", ")),
                AuditAction::RegistryPublish,
                &format!("registry v{}", body.version),
                &format!(
                    "{} token(s); expires at {} ms; {}",
                    body.tokens.len(),
                    body.expires_at_unix_ms,
                    path.display()
                ),
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "version": body.version,
                        "path": path.display().to_string(),
                        "expires_at_unix_ms": body.expires_at_unix_ms,
                        "tokens": body.tokens.len(),
                        "signatures": officers.len(),
                    })
                );
            } else {
                println!(
                    "registry v{} published: {} ({} token(s), signed by {})",
                    body.version,
                    path.display(),
                    body.tokens.len(),
                    officers.join(", ")
                );
            }
        }
        KeysCommand::RotateCenterKey {
            authority,
            new_key,
            grace_days,
        } => {
            let ws = Workspace::open(&authority)?;
            let audit = ws.audit_log()?;
            let mut draft = ws.draft()?;
            let new = RecipientPublicKey::from_hex(&new_key).context("--new-key")?;
            let until = now_ms() + u64::from(grace_days) * 86_400_000;
            let first = draft.active_center_key().is_none();
            draft.rotate_center_key(new, until)?;
            ws.save_draft(&draft)?;
            record(
                &audit,
                &os_user(),
                AuditAction::CenterKeyRotate,
                &new.to_string(),
                &if first {
                    "the registry's first center key".to_owned()
                } else {
                    format!("the old key opens until {until} ms ({grace_days} day(s))")
                },
            )?;
            if first {
                println!("edges seal to {new} from the next published registry (the registry's first center key)");
            } else {
                println!(
                    "edges seal to {new} from the next published registry; the old key opens for {grace_days} more day(s)"
                );
            }
        }
        KeysCommand::RetireCenterKeys { authority, key_file } => {
            let ws = Workspace::open(&authority)?;
            let audit = ws.audit_log()?;
            let mut draft = ws.draft()?;
            let retired = draft.retire_expired_center_keys(now_ms());
            ws.save_draft(&draft)?;
            println!("{} center key(s) marked destroyed in the draft", retired.len());
            let mut destroyed = Vec::new();
            for path in key_file {
                if retired.contains(&center_key_of(&path)?) {
                    destroy_file(&path)?;
                    println!("  destroyed {}", path.display());
                    destroyed.push(path.display().to_string());
                } else {
                    println!("  kept {}: its key is not past its grace period", path.display());
                }
            }
            let keys: Vec<String> = retired.iter().map(ToString::to_string).collect();
            record(
                &audit,
                &os_user(),
                AuditAction::CenterKeyRetire,
                &format!("{} key(s)", retired.len()),
                &format!(
                    "marked destroyed: {}; private key files destroyed: {}",
                    if keys.is_empty() {
                        "none".into()
                    } else {
                        keys.join(", ")
                    },
                    if destroyed.is_empty() {
                        "none".into()
                    } else {
                        destroyed.join(", ")
                    }
                ),
            )?;
            println!("publish to tell the edges and the center");
        }
        KeysCommand::Audit(cmd) => crate::audit_cli::run(cmd)?,
        KeysCommand::Statement {
            authority,
            out,
            tokens,
            json,
        } => crate::statement_cli::print_statement(&authority, &out, &tokens, json)?,
        KeysCommand::RecordStatement {
            authority,
            statement_id,
            json,
        } => crate::statement_cli::record_statement(&authority, &statement_id, json)?,
        KeysCommand::Stations(cmd) => crate::stations::run(cmd)?,
        KeysCommand::ReviewCertificates { authority, file } => {
            crate::certificate_review::review_command(&authority, &file)?;
        }
        KeysCommand::Show { authority, json } => {
            let ws = Workspace::open(&authority)?;
            let draft = ws.draft()?;
            if json {
                let tokens: Vec<_> = draft.tokens.iter().map(token_json).collect();
                println!("{}", serde_json::json!({ "version": draft.version, "tokens": tokens }));
            } else {
                println!(
                    "registry draft (last published v{}), {} token(s)",
                    draft.version,
                    draft.tokens.len()
                );
                for t in &draft.tokens {
                    println!(
                        "  {:<12} {:<20} {:<24} {:<30} sites {}  days {}",
                        crate::audit_cli::printable(&t.token_id),
                        t.status.as_str(),
                        t.status.russian(),
                        crate::audit_cli::printable(&t.person),
                        t.sites.join(","),
                        t.dates.join(",")
                    );
                }
            }
        }
    }
    Ok(())
}
