#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The alert rules refer only to metrics a real center exports: every `konvert_…` name in an
//! `expr:` of ops/alerts/konvert.rules.yml is a family in the center's Prometheus text.

use konvert_center::metrics::Metrics;

const RULES: &str = include_str!("../alerts/konvert.rules.yml");

/// Metric names in the rules' expressions (histogram series map to their family).
fn referenced() -> Vec<String> {
    let mut names = Vec::new();
    for line in RULES.lines().filter(|l| l.trim_start().starts_with("expr:")) {
        let mut rest = line;
        while let Some(at) = rest.find("konvert_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.push(name.trim_end_matches("_bucket").to_owned());
        }
    }
    names
}

#[test]
fn every_metric_an_alert_uses_is_exported_by_the_center() {
    let metrics = Metrics::new().unwrap();
    // Per-site families show only once a site is connected: give one.
    metrics.site_deadline_risk.with_label_values(&["0101"]).set(1);
    metrics.site_share.with_label_values(&["0101"]).set(1);
    metrics.site_backlog.with_label_values(&["0101"]).set(1);
    let text = metrics.render().unwrap();
    let names = referenced();
    assert!(names.len() >= 4, "the rules name metrics: {names:?}");
    for name in names {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("# TYPE {name} "))),
            "alert rule uses {name}, which the center does not export"
        );
    }
}

#[test]
fn every_rule_is_complete() {
    // Each alert has an expression, a severity and words for the staff who get it.
    let alerts = RULES.matches("- alert:").count();
    assert!(alerts >= 4);
    assert_eq!(RULES.matches("expr:").count(), alerts);
    assert_eq!(RULES.matches("severity:").count(), alerts);
    assert_eq!(RULES.matches("summary:").count(), alerts);
    assert_eq!(RULES.matches("description:").count(), alerts);
}
