//! Draws a [`MonitorView`] as one HTML page for the center head and the shift chief:
//! plain HTML with inline CSS, refreshing itself, no JavaScript at all (the server also
//! forbids scripts by its Content-Security-Policy), printable, every value escaped.
//! Each site is a `<details>` that opens into its rooms; `/monitor/site/CODE` is the same
//! site alone, open, for printing.

use std::fmt::Write as _;

use super::civil::local_date_time;
use super::view::*;

/// Seconds between the page's own refreshes.
pub const REFRESH_SECONDS: u32 = 30;

const STYLE: &str = "\
body{font:14px/1.35 system-ui,sans-serif;margin:1em;color:#111;background:#fff}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.2em 0 .4em}\
.meta{color:#444;margin:0 0 .8em}\
.noplan{padding:.6em;border:2px solid #b45309;background:#fef3c7}\
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#eee}.num{text-align:right;font-variant-numeric:tabular-nums}\
.ind td:first-child{max-width:34em}\
.legend span{display:inline-block;padding:0 .5em;margin-right:.4em;border:1px solid #999}\
.grid{display:grid;grid-template-columns:1.2em 8em 4em 11em 4.5em 4.5em 4.5em 4.5em 6em 6em 9em 11em 7em;\
gap:0 .3em;align-items:center;padding:2px 4px;border-bottom:1px solid #ccc}\
.head{font-weight:600;background:#eee}\
summary{cursor:pointer;list-style:none}summary::-webkit-details-marker{display:none}\
summary::before{content:'\\25B8'}details[open]>summary::before{content:'\\25BE'}\
.late{background:#fecaca}.behind{background:#fde68a}.ontrack{background:#d9f99d}.done{background:#bbf7d0}\
.silent,.held{font-weight:700;color:#7f1d1d}\
.rooms{margin:.3em 0 .8em 1.6em}.rooms td{font-size:.95em}\
.missing{color:#991b1b}.remark{color:#9a3412;font-weight:600}.received{color:#854d0e}.loaded{color:#166534}\
@media print{@page{size:A4 landscape;margin:10mm}body{font-size:9pt;margin:0}\
.noprint{display:none}*{print-color-adjust:exact;-webkit-print-color-adjust:exact}\
summary::before{content:''}.grid{break-inside:avoid}details{break-inside:auto}a{color:inherit;text-decoration:none}}";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
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
}

/// Percent-encodes a path segment (site codes are plain, but a receipt's site is data).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn exam_word(exam: konvert_exam::ExamKind) -> &'static str {
    match exam {
        konvert_exam::ExamKind::Ege => "ЕГЭ",
        konvert_exam::ExamKind::Oge => "ОГЭ",
        konvert_exam::ExamKind::Gve => "ГВЭ",
        konvert_exam::ExamKind::Essay => "итоговое сочинение",
    }
}

fn risk_class(r: Risk) -> &'static str {
    match r {
        Risk::Late => "late",
        Risk::Behind => "behind",
        Risk::OnTrack => "ontrack",
        Risk::Done => "done",
    }
}

fn form_class(f: FormState) -> &'static str {
    f.word()
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        format!("{part} of 0")
    } else {
        format!("{part} of {whole} ({:.0} %)", part as f64 * 100.0 / whole as f64)
    }
}

fn span(ms: u64) -> String {
    let min = ms / 60_000;
    if min < 60 {
        format!("{min} min")
    } else {
        format!("{} h {:02} min", min / 60, min % 60)
    }
}

/// A site-local time, with the date when it is not the exam day.
fn local(at: u64, offset_s: i32, day: &str) -> String {
    let (date, time) = local_date_time(at, offset_s);
    if date == day {
        time
    } else {
        format!("{date} {time}")
    }
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
}

fn header(out: &mut String, view: &MonitorView, now: u64, back: bool) {
    let (date, time) = local_date_time(now, 0);
    let _ = write!(
        out,
        "<h1>konvert — monitoring of the exam day</h1>\n<p class=\"meta\">As of {date} {time} UTC (built {}). \
         Refreshes every {REFRESH_SECONDS} s. Times are each site's local time.\
         <span class=\"noprint\"> {}<a href=\"/metrics\">metrics</a></span></p>\n",
        local_date_time(view.built_at_unix_ms, 0).1,
        if back {
            "<a href=\"/monitor\">all sites</a> · "
        } else {
            ""
        },
    );
}

fn indicators(out: &mut String, d: &DayView) {
    let i = &d.indicators;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let rows: [(&str, String); 9] = [
        (
            "Person-exams processed: participants whose room's blanks are loaded, against participants in the plan",
            ratio(i.participants_processed, i.participants),
        ),
        ("Blank pages registered by the loader", i.blanks_pages_registered.to_string()),
        (
            "Completeness of packets: forms and blanks packets loaded with no open remark, against two per planned room",
            format!("{}; received {}", ratio(i.packets_complete, i.packets_expected), i.packets_received),
        ),
        (
            "Sites: processing begun / complete, against sites planned",
            format!("{} / {} of {}", i.sites_started, i.sites_complete, i.sites),
        ),
        (
            "Rooms: processing begun / complete, against rooms planned",
            format!("{} / {} of {}", i.rooms_started, i.rooms_complete, i.rooms),
        ),
        ("Remarks open (no newer version of their packet yet)", i.open_remarks.to_string()),
        ("Exam closed", yes(d.closed).to_owned()),
        ("Results passed on to municipal bodies and schools", yes(d.results_passed).to_owned()),
        ("Appeals processed", "not tracked by konvert".to_owned()),
    ];
    out.push_str("<table class=\"ind\"><tr><th>Indicator (002:7856–7885)</th><th>Now</th></tr>\n");
    for (what, value) in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(what),
            escape(&value)
        );
    }
    out.push_str("</table>\n");
}

const LEGEND: &str = "<p class=\"legend\"><span class=\"late\">late</span>deadline passed, nothing by 17:30, \
projected after 22:59, or silent 1 h with under 3 h left \
<span class=\"behind\">behind</span>rooms missing after 17:30, projected after 17:30, a remark open, \
or silent 30 min <span class=\"ontrack\">on track</span><span class=\"done\">done</span>every room complete. \
<b class=\"silent\">silent</b>: nothing yet, or nothing for 30 min with rooms missing; listed first. \
<b class=\"held\">held for review</b>: signed by a token blocked since (`konvert-center review`).</p>\n";

const GRID_HEAD: &str =
    "<div class=\"grid head\"><span></span><span>Site</span><span>Kind</span><span>Time zone</span>\
<span class=\"num\">Recv.</span><span class=\"num\">Loaded</span><span class=\"num\">Remarked</span>\
<span class=\"num\">Open rem.</span><span class=\"num\">Rooms done</span><span class=\"num\">MB</span>\
<span>Last packet</span><span>ETA vs 23:59</span><span>Risk</span></div>\n";

/// The marks beside a site's code: silent, and packets held for review.
fn badges(s: &SiteView) -> String {
    let mut b = String::new();
    if s.silent {
        b.push_str(" <b class=\"silent\">silent</b>");
    }
    if s.held_for_review > 0 {
        let _ = write!(b, " <b class=\"held\">{} held for review</b>", s.held_for_review);
    }
    b
}

fn site(out: &mut String, s: &SiteView, d: &DayView, now: u64, open: bool) {
    let day = d.date.to_string();
    let last = match s.last_packet_unix_ms {
        None => "none yet".to_owned(),
        Some(t) => format!(
            "{} ({} ago)",
            local(t, s.utc_offset_s, &day),
            span(now.saturating_sub(t))
        ),
    };
    let deadline = local(s.deadline_unix_ms, s.utc_offset_s, &day);
    let eta = match s.eta {
        Eta::Unknown => format!("unknown; due {deadline}"),
        Eta::AllIn(t) => format!("all in at {}", local(t, s.utc_offset_s, &day)),
        Eta::At(t) => format!("{} of {deadline}", local(t, s.utc_offset_s, &day)),
    };
    let _ = writeln!(
        out,
        "<details id=\"site-{}\"{}><summary class=\"grid {}\"><span><a href=\"/monitor/site/{}\">{}</a>{}</span>\
         <span>{}</span><span>{}</span><span class=\"num\">{}</span><span class=\"num\">{}</span><span class=\"num\">{}</span>\
         <span class=\"num\">{}</span><span class=\"num\">{} / {}</span><span class=\"num\">{}</span><span>{}</span>\
         <span>{}</span><span>{}</span></summary>",
        path_segment(&s.code),
        if open { " open" } else { "" },
        risk_class(s.risk),
        path_segment(&s.code),
        escape(&s.code),
        badges(s),
        escape(s.kind),
        escape(&s.time_zone),
        s.packets_received,
        s.packets_loaded,
        s.packets_remarked,
        s.open_remarks,
        s.rooms_complete,
        s.rooms_planned,
        mb(s.bytes),
        escape(&last),
        escape(&eta),
        escape(s.risk.word()),
    );
    let _ = writeln!(
        out,
        "<div class=\"rooms\"><p>ППЭ-18МАШ: <span class=\"{}\">{}</span>. Late packets: {}.</p>",
        form_class(s.form18),
        s.form18.word(),
        s.late_packets
    );
    out.push_str(
        "<table><tr><th>Room</th><th class=\"num\">Seated</th><th>Forms</th><th>Packets (kind v. answer, MB, arrived)</th>\
         <th>State</th></tr>\n",
    );
    for r in &s.rooms {
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td class=\"num\">{}</td><td>",
            escape(&r.code),
            if r.oral { " (oral)" } else { "" },
            r.participants
        );
        for (i, (form, state)) in r.forms.iter().enumerate() {
            let _ = write!(
                out,
                "{}{}: <span class=\"{}\">{}</span>",
                if i > 0 { "<br>" } else { "" },
                escape(form),
                form_class(*state),
                state.word()
            );
        }
        out.push_str("</td><td>");
        packets(out, &r.packets, s, &day);
        let _ = writeln!(out, "</td><td>{}</td></tr>", escape(r.state.word()));
    }
    out.push_str("</table>\n");
    if !s.extra_packets.is_empty() {
        out.push_str("<p>Packets for rooms the plan does not list: ");
        packets(out, &s.extra_packets, s, &day);
        out.push_str("</p>\n");
    }
    out.push_str("</div></details>\n");
}

fn packets(out: &mut String, list: &[PacketView], s: &SiteView, day: &str) {
    if list.is_empty() {
        out.push_str("none");
    }
    for (i, p) in list.iter().enumerate() {
        let answer = match p.answer {
            AnswerState::Waiting => "awaiting answer".to_owned(),
            AnswerState::Loaded => "loaded".to_owned(),
            AnswerState::Remarks(n) => format!("{n} remark(s) open"),
        };
        let _ = write!(
            out,
            "{}<span title=\"{}\">{} v{} {}{}{}, {} MB, {}</span>",
            if i > 0 { "<br>" } else { "" },
            escape(&p.packet_id),
            escape(&p.kind),
            p.version,
            escape(&answer),
            if p.answered_remarks > 0 {
                format!("; {} earlier remark(s) answered", p.answered_remarks)
            } else {
                String::new()
            },
            match (&p.held, p.late) {
                (Some(status), late) => format!(
                    "{}; held for review: its token is {}",
                    if late { "; late" } else { "" },
                    escape(status)
                ),
                (None, true) => "; late".to_owned(),
                (None, false) => String::new(),
            },
            mb(p.bytes),
            escape(&local(p.received_at_unix_ms, s.utc_offset_s, day)),
        );
    }
}

fn unplanned(out: &mut String, view: &MonitorView, now: u64) {
    if view.unplanned.is_empty() {
        return;
    }
    out.push_str(if view.days.is_empty() {
        "<h2>Sites seen</h2>\n"
    } else {
        "<h2>Packets no plan expects</h2>\n"
    });
    out.push_str(
        "<table><tr><th>Site</th><th class=\"num\">Packets</th><th class=\"num\">MB</th><th>Last packet</th>\
         <th>Packet ids</th></tr>\n",
    );
    for u in &view.unplanned {
        let last = u
            .last_packet_unix_ms
            .map(|t| {
                let (d, t2) = local_date_time(t, 0);
                format!("{d} {t2} UTC ({} ago)", span(now.saturating_sub(t)))
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>",
            escape(&u.code),
            u.packets,
            mb(u.bytes),
            escape(&last)
        );
        for (i, id) in u.packet_ids.iter().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            escape_into(out, id);
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

fn day_heading(out: &mut String, d: &DayView) {
    let _ = writeln!(
        out,
        "<h2>{} · {} · region {}{}</h2>",
        d.date,
        exam_word(d.exam),
        escape(&d.region),
        if d.closed { " · closed" } else { "" }
    );
}

/// The whole page at `now_unix_ms`: each exam day's indicators and every expected site,
/// silent ones first, each opening into its rooms; then packets no plan expects.
pub fn render(view: &MonitorView, now_unix_ms: u64) -> String {
    let rooms: usize = view.days.iter().flat_map(|d| &d.sites).map(|s| s.rooms.len()).sum();
    let mut out = String::with_capacity(16_384 + rooms * 700);
    head(&mut out, "konvert — monitoring");
    header(&mut out, view, now_unix_ms, false);
    if view.days.is_empty() {
        out.push_str(
            "<p class=\"noplan\">No exam-day plan is imported yet, so the page cannot tell which sites are \
             expected or how far they are. Import the day's plan at the center; until then the sites seen so far \
             are listed below.</p>\n",
        );
        if view.unplanned.is_empty() {
            out.push_str("<p>No packet has arrived yet.</p>\n");
        }
    }
    for d in &view.days {
        day_heading(&mut out, d);
        indicators(&mut out, d);
        out.push_str(LEGEND);
        out.push_str(GRID_HEAD);
        for s in &d.sites {
            site(&mut out, s, d, now_unix_ms, false);
        }
    }
    unplanned(&mut out, view, now_unix_ms);
    out.push_str("</body></html>\n");
    out
}

/// The page of site `code` alone, its rooms open, on every exam day that expects it;
/// `None` if no plan expects it.
pub fn render_site(view: &MonitorView, code: &str, now_unix_ms: u64) -> Option<String> {
    let mut out = String::with_capacity(32_768);
    head(&mut out, &format!("konvert — site {code}"));
    header(&mut out, view, now_unix_ms, true);
    let mut found = false;
    for d in &view.days {
        if let Some(s) = d.sites.iter().find(|s| s.code == code) {
            found = true;
            day_heading(&mut out, d);
            out.push_str(GRID_HEAD);
            site(&mut out, s, d, now_unix_ms, true);
        }
    }
    out.push_str("</body></html>\n");
    found.then_some(out)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
