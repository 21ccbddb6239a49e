//! What a serving center answers on its control socket (`konvert-center status` beside
//! `serve`, which holds the inbox's lock), and the key registry's expiry as a metric.

use std::sync::Arc;

use konvert_replication::service::{ask, ControlHandler};
use konvert_replication::Inbox;
use prometheus::IntGauge;
use serde_json::json;

use crate::registry::CenterRegistry;
use crate::{Error, Result};

/// What the center holds, as `status` prints it.
pub fn status(inbox: &Inbox, as_json: bool) -> Result<String> {
    let mut records = inbox.records()?;
    records.sort_by_key(|r| r.receipt.body.received_at_unix_ms);
    if as_json {
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let b = &r.receipt.body;
                json!({
                    "packet_id": b.packet_id,
                    "version": b.version,
                    "bytes": b.bytes,
                    "site": b.site,
                    "signer": r.signer.to_string(),
                    "received_at_unix_ms": b.received_at_unix_ms,
                    "test_packet": r.test_packet,
                    "late": r.late,
                })
            })
            .collect();
        let doc = json!({ "packets": rows });
        return serde_json::to_string_pretty(&doc)
            .map(|t| format!("{t}\n"))
            .map_err(|e| Error::Control(format!("cannot write the status as JSON: {e}")));
    }
    let mut out = format!("{} packet version(s) stored\n", records.len());
    for r in records {
        let b = &r.receipt.body;
        out.push_str(&format!(
            "  {:<48} v{:<3} {:>12} bytes  site {}  signer {}{}\n",
            b.packet_id,
            b.version,
            b.bytes,
            b.site,
            r.signer,
            if r.test_packet {
                "  (test packet)"
            } else if r.late {
                "  (LATE: held back until decided, `konvert-center late`)"
            } else {
                ""
            }
        ));
    }
    Ok(out)
}

/// The serving center's answers: `status [--json]`, `answers [--open] [--json]`. `ok` or `error` on the first line.
pub fn handler(inbox: Arc<Inbox>, data_dir: std::path::PathBuf) -> ControlHandler {
    Arc::new(move |request: &str| {
        let words: Vec<&str> = request.split_whitespace().collect();
        let as_json = words.contains(&"--json");
        let result = match words.first() {
            Some(&"status") => status(&inbox, as_json),
            Some(&"answers") => crate::answers::list_text(&data_dir, &inbox, words.contains(&"--open"), as_json),
            _ => Err(Error::Control(format!(
                "the serving center does not know {request:?}: ask status or answers"
            ))),
        };
        match result {
            Ok(text) => format!("ok\n{text}"),
            Err(e) => format!("error\n{e}"),
        }
    })
}

/// Asks the center serving on `data_dir`; `None` if none serves there.
pub fn ask_center(data_dir: &std::path::Path, request: &str) -> Option<Result<String>> {
    let reply = ask(data_dir, request)?;
    Some(match reply {
        Err(e) => Err(Error::Control(format!("the serving center did not answer: {e}"))),
        Ok(text) => match text.split_once('\n') {
            Some(("ok", body)) => Ok(body.to_owned()),
            Some(("error", body)) => Err(Error::Control(body.trim_end().to_owned())),
            _ => Err(Error::Control(format!("the serving center answered {text:?}"))),
        },
    })
}

/// `konvert_registry_expires_timestamp_seconds`: when the key registry in force expires
/// (0 when none is in force). After it every packet is refused `no_registry`, so the
/// alert rules warn a day ahead.
pub fn registry_expiry_gauge(metrics: &prometheus::Registry) -> Result<IntGauge> {
    let gauge = IntGauge::new(
        "konvert_registry_expires_timestamp_seconds",
        "When the key registry in force expires, Unix seconds; 0 when none is in force.",
    )
    .map_err(|e| Error::Metrics(e.to_string()))?;
    metrics
        .register(Box::new(gauge.clone()))
        .map_err(|e| Error::Metrics(e.to_string()))?;
    Ok(gauge)
}

/// Sets the gauge from the registry in force now.
pub fn show_registry_expiry(gauge: &IntGauge, registry: &CenterRegistry, now_unix_ms: u64) {
    let expires = registry
        .in_force(now_unix_ms)
        .map_or(0, |r| r.body().expires_at_unix_ms / 1000);
    gauge.set(i64::try_from(expires).unwrap_or(i64::MAX));
}
