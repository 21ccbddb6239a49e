//! The monitoring page for the center head and the shift chief (issue point 4, seed
//! 002:7856–7885): served by `konvert-center serve` beside `/metrics`, built fresh at each
//! request from the exam-day plans, the inbox and the loader's answers.
//!
//! [`view`] is what the page shows, [`build()`] makes it from what the receiver knows,
//! [`render()`] draws it; [`MonitorSource`] is the small hook the service holds.

pub mod build;
mod civil;
pub mod render;
pub mod sample;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use konvert_exam::DayPlan;
use konvert_replication::{Inbox, PacketAnswer};

pub use build::{build, mark_held, parse_packet_id};
pub use render::{render, render_site};
pub use view::{DayClosing, MonitorView};

/// Gives the current exam-day plans.
pub type PlansFn = Arc<dyn Fn() -> Vec<DayPlan> + Send + Sync>;
/// Gives the loader's answers received so far.
pub type AnswersFn = Arc<dyn Fn() -> Vec<PacketAnswer> + Send + Sync>;
/// Gives how far closing has gone for each exam day.
pub type ClosingFn = Arc<dyn Fn() -> Vec<DayClosing> + Send + Sync>;
/// Gives the packets held for review (signed by tokens blocked since).
pub type ReviewFn = Arc<dyn Fn() -> Vec<crate::review::ReviewFlag> + Send + Sync>;

/// Where the page's facts come from; each is read afresh at every request.
#[derive(Clone)]
pub struct MonitorSource {
    // Weak: the page's server outlives a center shut down in-process, and must not keep
    // its inbox (and the database's lock) open after it.
    inbox: std::sync::Weak<Inbox>,
    plans: PlansFn,
    answers: AnswersFn,
    closing: ClosingFn,
    review: ReviewFn,
}

impl MonitorSource {
    /// The page over `inbox` alone: no plan (it says so and lists the sites seen), no
    /// answers, nothing closed. Add the rest with the `with_*` methods.
    pub fn new(inbox: Arc<Inbox>) -> Self {
        MonitorSource {
            inbox: Arc::downgrade(&inbox),
            plans: Arc::new(Vec::new),
            answers: Arc::new(Vec::new),
            closing: Arc::new(Vec::new),
            review: Arc::new(Vec::new),
        }
    }

    /// Takes the exam-day plans from `plans` (e.g. the plan desk's `plans()`).
    pub fn with_plans(mut self, plans: PlansFn) -> Self {
        self.plans = plans;
        self
    }

    /// Takes the loader's answers from `answers`.
    pub fn with_answers(mut self, answers: AnswersFn) -> Self {
        self.answers = answers;
        self
    }

    /// Takes the closing state from `closing`.
    pub fn with_closing(mut self, closing: ClosingFn) -> Self {
        self.closing = closing;
        self
    }

    /// Takes the packets held for review from `review` (the review desk's flags).
    pub fn with_review(mut self, review: ReviewFn) -> Self {
        self.review = review;
        self
    }

    /// The view at `now_unix_ms`.
    pub fn view(&self, now_unix_ms: u64) -> crate::Result<MonitorView> {
        let inbox = self
            .inbox
            .upgrade()
            .ok_or_else(|| crate::Error::Control("the center has stopped".into()))?;
        let records = inbox.records()?;
        let mut view = build(
            &(self.plans)(),
            &records,
            &(self.answers)(),
            &(self.closing)(),
            now_unix_ms,
        );
        mark_held(&mut view, &(self.review)());
        Ok(view)
    }

    /// The HTML for request path `path` (query ignored): `/` or `/monitor` is the whole
    /// page, `/monitor/site/CODE` one site; `None` for any other path.
    pub fn page(&self, path: &str, now_unix_ms: u64) -> Option<crate::Result<String>> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
        if path == "/" || path == "/monitor" {
            return Some(self.view(now_unix_ms).map(|v| render(&v, now_unix_ms)));
        }
        let code = path.strip_prefix("/monitor/site/")?;
        if code.is_empty() || code.contains('/') {
            return None;
        }
        match self.view(now_unix_ms) {
            Ok(v) => render_site(&v, code, now_unix_ms).map(Ok),
            Err(e) => Some(Err(e)),
        }
    }
}

/// Serves `/metrics` and the monitoring page on `addr` in the background; returns the
/// bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: crate::metrics::Metrics,
    source: MonitorSource,
) -> crate::Result<SocketAddr> {
    let render = Arc::new(move || metrics.render().map_err(|e| e.to_string()));
    let pages: konvert_replication::metrics_http::Pages = Arc::new(move |path: &str| {
        source
            .page(path, crate::intake::now_ms())
            .map(|r| r.map_err(|e| e.to_string()))
    });
    Ok(konvert_replication::metrics_http::serve_with_pages(addr, render, Some(pages)).await?)
}
