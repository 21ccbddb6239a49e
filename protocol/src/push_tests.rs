use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::schedule::DeadlineRisk;

const T0: u64 = 1_780_000_000_000;
const HOUR: u64 = 3_600_000;

fn offer(id: &str, priority: u8, size: u64, deadline_unix_ms: u64) -> Offer {
    Offer {
        packet_id: id.into(),
        version: 1,
        size,
        digest: [0; 32],
        priority,
        sealed_at_unix_ms: T0,
        deadline_unix_ms,
    }
}

/// A plan without transfer windows, at 1 MB/s.
fn plan(parallel: usize) -> PushPlan {
    let mut scheduler = SchedulerConfig::regulations(1_000_000);
    scheduler.windows.clear();
    PushPlan {
        parallel,
        max_wait_ms: 10 * HOUR,
        retry_seconds: 0.5,
        scheduler,
    }
}

fn ids(step: &Step) -> Vec<String> {
    match step {
        Step::Start(list) => list.iter().map(|o| o.packet_id.clone()).collect(),
        other => panic!("expected Start, got {other:?}"),
    }
}

#[test]
fn starts_at_most_parallel_packets_in_the_schedulers_order() {
    let pending = vec![
        offer("blanks-late", 1, 1000, T0 + 12 * HOUR),
        offer("form-a", 0, 1000, T0 + 12 * HOUR),
        offer("blanks-early", 1, 1000, T0 + 10 * HOUR),
        offer("form-b", 0, 1000, T0 + 12 * HOUR),
        offer("journal", 2, 1000, T0 + 9 * HOUR),
    ];
    let mut s = PushSession::new(plan(2), T0);
    s.connected(T0, &pending);
    assert_eq!(
        ids(&s.step(T0, &pending, false)),
        ["form-a", "form-b"],
        "forms first, in arrival order"
    );
    assert_eq!(s.step(T0, &pending, false), Step::AwaitSend { poll_ms: None });
    s.finished(T0 + 5, &pending[1], &SendOutcome::Delivered);
    let left: Vec<Offer> = pending.iter().filter(|o| o.packet_id != "form-a").cloned().collect();
    assert_eq!(
        ids(&s.step(T0 + 5, &left, false)),
        ["blanks-early"],
        "one slot freed: the earliest deadline of the next class"
    );
    assert_eq!(s.delivered(), (1, 1000));
}

#[test]
fn a_deferred_packet_waits_for_the_next_connection_and_says_why() {
    let pending = vec![offer("a", 1, 10, T0 + HOUR), offer("b", 1, 20, T0 + HOUR)];
    let mut s = PushSession::new(plan(4), T0);
    s.connected(T0, &pending);
    assert_eq!(ids(&s.step(T0, &pending, false)), ["a", "b"]);
    let unavailable = SendOutcome::Rejected {
        reason: RejectReason::Unavailable,
        detail: "disk nearly full".into(),
    };
    s.finished(T0 + 1, &pending[0], &unavailable);
    assert_eq!(
        s.step(T0 + 1, &pending, false),
        Step::AwaitSend { poll_ms: None },
        "a deferred packet is not offered again on this connection"
    );
    s.finished(T0 + 2, &pending[1], &SendOutcome::Delivered);
    let left = vec![pending[0].clone()];
    let end = match s.step(T0 + 2, &left, false) {
        Step::End(end) => end,
        other => panic!("expected the session to end, got {other:?}"),
    };
    assert_eq!(
        end,
        SessionEnd::Deferred {
            packets: 1,
            reason: Some(RejectReason::Unavailable)
        }
    );
    let why = end.retry_reason().unwrap_or_default();
    assert!(why.contains("retry 1 packet(s) later"), "{why}");
    assert!(s.rejected().is_empty(), "a retryable refusal is not a refusal for good");
    s.connection_ended(true, false);
    assert_eq!(s.retry(T0 + 2), Retry::After(Duration::from_millis(500)));
    s.connected(T0 + 600, &left);
    assert_eq!(
        ids(&s.step(T0 + 600, &left, false)),
        ["a"],
        "offered again on the next connection"
    );
}

#[test]
fn a_packet_refused_for_good_is_reported_and_not_offered_again() {
    let pending = vec![offer("a", 1, 10, T0 + HOUR)];
    let mut s = PushSession::new(plan(4), T0);
    s.connected(T0, &pending);
    assert_eq!(ids(&s.step(T0, &pending, false)), ["a"]);
    let refused = SendOutcome::Rejected {
        reason: RejectReason::BadSignature,
        detail: "not the member's key".into(),
    };
    s.finished(T0 + 1, &pending[0], &refused);
    // The driver marked it rejected in the outbox, so it is no longer pending.
    assert_eq!(s.step(T0 + 1, &[], false), Step::End(SessionEnd::Done));
    assert_eq!(
        s.rejected(),
        [(
            "a".to_string(),
            RejectReason::BadSignature,
            "not the member's key".to_string()
        )]
    );
    assert_eq!(s.delivered(), (0, 0));
}

#[test]
fn a_packet_held_at_a_relay_ends_the_session_naming_the_relay() {
    let pending = vec![offer("a", 1, 10, T0 + HOUR)];
    let mut s = PushSession::new(plan(4), T0);
    s.connected(T0, &pending);
    assert_eq!(ids(&s.step(T0, &pending, false)), ["a"]);
    s.finished(
        T0 + 1,
        &pending[0],
        &SendOutcome::Held {
            relay: "school-7".into(),
        },
    );
    let Step::End(end) = s.step(T0 + 1, &pending, false) else {
        panic!("a held packet ends the session");
    };
    assert_eq!(
        end,
        SessionEnd::Held {
            packets: 1,
            relay: "school-7".into()
        }
    );
    assert!(end
        .retry_reason()
        .unwrap_or_default()
        .contains("held at relay school-7"));
}

#[test]
fn data_waits_for_the_first_share_at_most_a_second_and_obeys_it() {
    let pending = vec![offer("a", 1, 10_000_000, T0 + HOUR)];
    let mut s = PushSession::new(plan(1), T0);
    s.connected(T0, &pending);
    assert_eq!(s.pace(T0, 1000), Some(10), "no share yet: hold back");
    assert_eq!(s.pace(T0 + 999, 1000), Some(10));
    assert_eq!(
        s.pace(T0 + 1000, 1000),
        None,
        "a second without a share: the site's own rate"
    );

    let t1 = T0 + 10_000;
    s.connection_ended(false, false);
    s.connected(t1, &pending);
    assert_eq!(
        s.pace(t1, 1000),
        Some(10),
        "every connection waits for its own first share"
    );
    let zero = Share {
        rate_bytes_per_s: 0,
        valid_until_unix_ms: 0,
        risk: DeadlineRisk::OnTrack,
    };
    s.share(t1 + 5, zero);
    // What the bucket already holds (at most its burst, one data chunk) may go; then nothing
    // until a new share.
    let granted = (0..5000).take_while(|_| s.pace(t1 + 5, 1000).is_none()).count() as u64 * 1000;
    assert!(
        granted <= crate::frame::DATA_CHUNK as u64,
        "{granted} bytes went on a share of zero"
    );
    assert_eq!(s.pace(t1 + 5, 1000), Some(500), "a share of zero: ask again shortly");
    assert_eq!(s.pace(t1 + 5_000, 1000), Some(500), "and nothing refills the bucket");
    assert_eq!(
        s.pace(t1 + 5 + SHARE_VALID_MS, 1000),
        Some(1),
        "a share lapses by this station's clock, whatever the center's clock said: then the site's \
         own rate, at which 1000 bytes take 1 ms"
    );

    let t2 = t1 + 100_000;
    s.connection_ended(false, false);
    s.connected(t2, &pending);
    s.no_share_coming();
    assert_eq!(s.pace(t2, 1000), None, "a center without a broker: nothing waits");
}

#[test]
fn a_class_outside_its_transfer_window_sleeps_until_the_window_opens() {
    let mut p = plan(2);
    p.scheduler = SchedulerConfig::regulations(1_000_000);
    let deadline = T0 + 20 * HOUR;
    let opens = deadline - (12 * 60 + 59) * 60_000;
    let pending = vec![offer("blanks", 1, 10, deadline)];
    let mut s = PushSession::new(p, T0);
    s.connected(T0, &pending);
    assert_eq!(
        s.step(T0, &pending, false),
        Step::Sleep { ms: 1000 },
        "looks again within a second"
    );
    assert_eq!(s.step(opens - 300, &pending, false), Step::Sleep { ms: 300 });
    assert_eq!(ids(&s.step(opens, &pending, false)), ["blanks"]);
}

#[test]
fn while_more_is_being_sealed_the_session_stays_open_and_polls() {
    let mut s = PushSession::new(plan(2), T0);
    s.connected(T0, &[]);
    assert_eq!(s.step(T0, &[], true), Step::Sleep { ms: POLL_MS });
    let pending = vec![offer("a", 1, 10, T0 + HOUR)];
    assert_eq!(
        ids(&s.step(T0 + 20, &pending, true)),
        ["a"],
        "a packet sealed meanwhile is picked up"
    );
    assert_eq!(
        s.step(T0 + 20, &pending, true),
        Step::AwaitSend { poll_ms: Some(POLL_MS) }
    );
    s.finished(T0 + 30, &pending[0], &SendOutcome::Delivered);
    assert_eq!(
        s.step(T0 + 30, &[], false),
        Step::End(SessionEnd::Done),
        "sealing over, nothing left"
    );
}

#[test]
fn waits_double_reset_after_progress_and_the_push_gives_up_after_its_longest_wait() {
    let mut p = plan(1);
    p.max_wait_ms = 60_000;
    let mut s = PushSession::new(p, T0);
    let waits: Vec<Retry> = (0..4).map(|i| s.retry(T0 + i)).collect();
    let ms = |m| Retry::After(Duration::from_millis(m));
    assert_eq!(waits, [ms(500), ms(1000), ms(2000), ms(4000)]);
    s.connected(T0 + 10, &[]);
    s.connection_ended(false, false);
    assert_eq!(
        s.retry(T0 + 11),
        ms(8000),
        "a connection that carried nothing changes nothing"
    );
    s.connected(T0 + 20, &[]);
    s.connection_ended(true, false);
    assert_eq!(
        s.retry(T0 + 21),
        ms(500),
        "a connection that carried a segment starts again"
    );
    assert_eq!(s.retry(T0 + 60_000), Retry::GiveUp);
}

/// A small deterministic generator (xorshift64*), so the simulation needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One site's push over a link that drops, to a center that sometimes defers and a relay
/// that sometimes holds, in virtual time. Returns the trace of what the session did.
fn simulate_day(seed: u64, packets: usize, parallel: usize) -> Vec<String> {
    let mut rng = Rng(seed | 1);
    let mut now = T0;
    let mut pending: BTreeMap<String, Offer> = (0..packets)
        .map(|i| {
            let o = offer(
                &format!("room-{i:03}"),
                (i % 3) as u8,
                50_000 + rng.below(2_000_000),
                T0 + 12 * HOUR,
            );
            (o.packet_id.clone(), o)
        })
        .collect();
    let mut receipted: HashMap<String, u32> = HashMap::new();
    let mut trace = Vec::new();
    let mut s = PushSession::new(plan(parallel), now);
    while !pending.is_empty() {
        assert!(now < T0 + 10 * HOUR, "seed {seed}: the push never finished");
        if rng.below(10) < 2 {
            trace.push(format!("{now} connect failed"));
            match s.retry(now) {
                Retry::After(wait) => now += wait.as_millis() as u64,
                Retry::GiveUp => panic!("seed {seed}: gave up"),
            }
            continue;
        }
        let list: Vec<Offer> = pending.values().cloned().collect();
        s.connected(now, &list);
        let drop_at = now + 200 + rng.below(15_000);
        let mut in_flight: Vec<(u64, Offer)> = Vec::new();
        let mut carried = false;
        let ended = loop {
            let list: Vec<Offer> = pending.values().cloned().collect();
            match s.step(now, &list, false) {
                Step::Start(started) => {
                    for o in started {
                        assert!(
                            !in_flight.iter().any(|(_, f)| f.packet_id == o.packet_id),
                            "seed {seed}: {} started twice",
                            o.packet_id
                        );
                        trace.push(format!("{now} start {}", o.packet_id));
                        in_flight.push((now + o.size / 1000, o));
                    }
                    assert!(
                        in_flight.len() <= parallel,
                        "seed {seed}: more than {parallel} in flight"
                    );
                }
                Step::AwaitSend { .. } => {
                    let Some(i) = (0..in_flight.len()).min_by_key(|&i| in_flight[i].0) else {
                        panic!("seed {seed}: awaits a send when none is in flight");
                    };
                    if in_flight[i].0 > drop_at {
                        now = drop_at;
                        trace.push(format!("{now} dropped with {} in flight", in_flight.len()));
                        break None;
                    }
                    let (at, o) = in_flight.swap_remove(i);
                    now = at;
                    carried = true;
                    let outcome = match rng.below(20) {
                        0 | 1 => SendOutcome::Rejected {
                            reason: RejectReason::Unavailable,
                            detail: String::new(),
                        },
                        2 => SendOutcome::Held {
                            relay: "relay-1".into(),
                        },
                        _ => {
                            *receipted.entry(o.packet_id.clone()).or_default() += 1;
                            pending.remove(&o.packet_id);
                            SendOutcome::Delivered
                        }
                    };
                    trace.push(format!("{now} {} {outcome:?}", o.packet_id));
                    s.finished(now, &o, &outcome);
                }
                Step::Sleep { ms } => now += ms,
                Step::End(end) => break Some(end),
            }
        };
        let done = ended == Some(SessionEnd::Done);
        s.connection_ended(carried, done);
        if !done {
            match s.retry(now) {
                Retry::After(wait) => now += wait.as_millis() as u64,
                Retry::GiveUp => panic!("seed {seed}: gave up"),
            }
        }
    }
    assert_eq!(receipted.len(), packets, "seed {seed}: every packet receipted");
    assert!(
        receipted.values().all(|&n| n == 1),
        "seed {seed}: a packet was receipted twice"
    );
    assert_eq!(
        s.delivered().0,
        packets,
        "seed {seed}: the session counted every delivery once"
    );
    assert!(s.rejected().is_empty());
    trace
}

#[test]
fn a_days_push_over_a_dropping_link_delivers_every_packet_once_in_virtual_time() {
    for seed in 1..=40 {
        let trace = simulate_day(seed, 60, 1 + (seed as usize % 4));
        assert!(
            trace.iter().any(|l| l.contains("dropped")),
            "seed {seed}: the link never dropped, the simulation tested nothing"
        );
        assert_eq!(
            trace,
            simulate_day(seed, 60, 1 + (seed as usize % 4)),
            "seed {seed}: the same seed gives the same day"
        );
    }
}
