//! `konvert bench signatures`: how fast the center checks members' signatures — Ed25519
//! verifications per second on one core (the receiver's per-packet cost) and registry
//! decisions (`may_sign`) per second on a region-sized registry.

use std::time::Instant;

use konvert_crypto::registry::{
    Authority, CenterKeyRecord, CenterKeyState, Registry, RegistryBody, TokenRecord, TokenRole, TokenStatus,
};
use konvert_crypto::{Domain, RecipientSecretKey, SigningKey};

/// Runs `count` verifications and `count` registry decisions over `tokens` tokens.
pub fn run(count: usize, tokens: usize) -> anyhow::Result<()> {
    let signers: Vec<SigningKey> = (0..64).map(|_| SigningKey::generate()).collect::<Result<_, _>>()?;
    let digests: Vec<[u8; 32]> = (0..count).map(|i| [(i % 251) as u8; 32]).collect();
    let signed: Vec<_> = digests
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let k = &signers[i % signers.len()];
            (k.verifying_key(), k.sign(Domain::Envelope, d))
        })
        .collect();
    let started = Instant::now();
    let mut ok = 0usize;
    for ((key, sig), digest) in signed.iter().zip(&digests) {
        ok += usize::from(key.verify(Domain::Envelope, digest, sig).is_ok());
    }
    let verify_rate = count as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(ok == count, "{} of {count} signatures failed to verify", count - ok);

    let officer = SigningKey::generate()?;
    let members: Vec<SigningKey> = (0..tokens).map(|_| SigningKey::generate()).collect::<Result<_, _>>()?;
    let body = RegistryBody {
        version: 1,
        issued_at_unix_ms: 0,
        expires_at_unix_ms: u64::MAX,
        authority: Authority {
            officers: vec![officer.verifying_key()],
            threshold: 1,
        },
        tokens: members
            .iter()
            .enumerate()
            .map(|(i, k)| TokenRecord {
                token_id: format!("T{i:05}"),
                person: format!("member {i}"),
                role: TokenRole::Member,
                public: k.verifying_key(),
                status: TokenStatus::Issued,
                status_since_unix_ms: 0,
                sites: vec![format!("{:04}", i % 500)],
                dates: vec!["2026-06-01".into()],
            })
            .collect(),
        center_keys: vec![CenterKeyRecord {
            key: RecipientSecretKey::generate()?.public_key(),
            state: CenterKeyState::Active,
        }],
        agreement_keys: Vec::new(),
    };
    let registry = Registry::from(body);
    let ids: Vec<_> = members.iter().map(|k| k.key_id()).collect();
    let started = Instant::now();
    let mut allowed = 0usize;
    for i in 0..count {
        let n = i % tokens.max(1);
        let site = format!("{:04}", n % 500);
        allowed += usize::from(registry.may_sign(&ids[n], &site, "2026-06-01").is_ok());
    }
    let decide_rate = count as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(allowed == count, "registry refused {} issued tokens", count - allowed);

    println!("konvert bench signatures — one thread");
    println!("  Ed25519 verifications           {verify_rate:>12.0} /s   (goal: > 10,000 /s per core)");
    println!("  registry decisions ({tokens} tokens) {decide_rate:>12.0} /s");
    println!(
        "  a packet costs one verification: the center checks {:.0} packets/s per core on signatures alone",
        verify_rate
    );
    Ok(())
}
