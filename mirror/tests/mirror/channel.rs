//! One channel's batches, delivered in any order with any duplicates: each row is applied
//! once, in order, and the checkpoint never goes back.

use konvert_mirror::{decode, Message, Node, Outcome, Receiver, RecordKind, Sender, SenderLimits};
use proptest::prelude::*;

use crate::util::{key, peers};

const R1: Node = Node::Region(77);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_delivery_order_applies_each_row_once_in_order(
        rows in 1usize..24,
        batch_rows in 1usize..5,
        schedule in proptest::collection::vec(0usize..64, 0..80),
    ) {
        let limits = SenderLimits { window: 64, batch_rows, ..SenderLimits::default() };
        let mut tx = Sender::new(R1, key(R1), peers(R1), 1, limits).unwrap();
        let written: Vec<Vec<u8>> = (0..rows).map(|i| format!("row {i}").into_bytes()).collect();
        for w in &written {
            tx.push(Node::Federal, RecordKind::Planning, w.clone()).unwrap();
        }
        let batches: Vec<_> = tx
            .cut()
            .unwrap()
            .into_iter()
            .map(|c| match decode(&c.bytes).unwrap() {
                Message::Batch(b) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        let mut rx = Receiver::new(Node::Federal, key(Node::Federal), peers(Node::Federal), 1..=1).unwrap();
        let mut applied: Vec<Vec<u8>> = Vec::new();
        let mut next = 1;
        // The random schedule, then every batch in order (the sender's resends).
        let order = schedule.iter().map(|i| i % batches.len()).chain(0..batches.len());
        for i in order {
            match rx.handle(R1, &batches[i]).unwrap() {
                Outcome::Applied(a) => {
                    prop_assert_eq!(a.first_seq, applied.len() as u64 + 1);
                    applied.extend(a.rows);
                }
                Outcome::Replayed(r) => prop_assert!(r.body.last_seq < rx.checkpoint(R1, RecordKind::Planning).next_seq),
                Outcome::Refused(n) => prop_assert!(n.reason.is_retryable(), "{:?}", n.reason),
            }
            let cp = rx.checkpoint(R1, RecordKind::Planning).next_seq;
            prop_assert!(cp >= next);
            next = cp;
        }
        prop_assert_eq!(applied, written);
    }
}
