//! The token issue statement (ведомость выдачи токенов): a printable page with one row per
//! token — person, token id, sites and exam days, and empty columns for the date received
//! and the signatures. Printing it moves the tokens to Statement printed; recording the
//! signed paper moves them to Issued.

use konvert_crypto::registry::{TokenRecord, TokenRole};

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the statement is for, printed in its heading and footer.
#[derive(Debug, Clone)]
pub struct StatementFacts {
    /// The registry draft's last published version.
    pub draft_version: u64,
    /// When it was printed (`YYYY-MM-DD HH:MM UTC`).
    pub printed_at: String,
    /// A short id of the exact token list, to match the signed paper when recording it.
    pub statement_id: String,
}

/// The id of a statement over these tokens: the first 12 hex digits of SHA-256 of the
/// token ids and key ids in order.
pub fn statement_id(tokens: &[&TokenRecord]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for t in tokens {
        ctx.update(t.token_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(t.public.key_id().to_string().as_bytes());
        ctx.update(&[0]);
    }
    hex::encode(&ctx.finish().as_ref()[..6])
}

/// The statement as a self-contained printable HTML page (A4 landscape).
pub fn render(tokens: &[&TokenRecord], facts: &StatementFacts) -> String {
    let mut rows = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let role = match t.role {
            TokenRole::Member => "член ГЭК",
            TokenRole::CenterSpecialist => "специалист РЦОИ",
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td>\
             <td></td><td></td><td></td></tr>\n",
            i + 1,
            esc(&t.person),
            role,
            esc(&t.token_id),
            esc(&t.sites.join(", ")),
            esc(&t.dates.join(", ")),
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="ru"><head><meta charset="utf-8">
<title>Ведомость выдачи токенов {id}</title>
<style>
@page {{ size: A4 landscape; margin: 15mm; }}
body {{ font-family: "Times New Roman", serif; font-size: 12pt; }}
h1 {{ font-size: 15pt; text-align: center; margin: 0 0 4mm; }}
p.sub {{ text-align: center; margin: 0 0 6mm; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #000; padding: 2mm; vertical-align: top; }}
th {{ font-weight: normal; font-size: 10pt; }}
td {{ height: 10mm; }}
.mono {{ font-family: monospace; }}
footer {{ margin-top: 8mm; font-size: 10pt; }}
.sign {{ margin-top: 10mm; }}
</style></head><body>
<h1>Ведомость выдачи токенов членам ГЭК и специалистам РЦОИ</h1>
<p class="sub">Token issue statement № <span class="mono">{id}</span> — {n} token(s), printed {printed}</p>
<table>
<thead><tr><th>№</th><th>ФИО получателя</th><th>Роль</th><th>Идентификатор токена</th><th>ППЭ</th>
<th>Даты экзаменов</th><th>Дата получения</th><th>Подпись получателя</th><th>Подпись выдавшего</th></tr></thead>
<tbody>
{rows}</tbody></table>
<p class="sign">Ответственный за информационную безопасность РЦОИ: ____________________ / ____________________ /</p>
<footer>Statement <span class="mono">{id}</span>, registry draft after v{version}. Once signed, record it:
<span class="mono">konvert keys record-statement --statement-id {id}</span> — the tokens become Issued (Выдан)
in the next published registry.</footer>
</body></html>
"#,
        id = esc(&facts.statement_id),
        n = tokens.len(),
        printed = esc(&facts.printed_at),
        version = facts.draft_version,
    )
}

#[cfg(test)]
#[path = "statement_tests.rs"]
mod tests;
