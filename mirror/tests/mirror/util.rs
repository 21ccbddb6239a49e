//! Keys and nodes shared by the tests.

use std::collections::BTreeMap;

use konvert_crypto::{SigningKey, VerifyingKey};
use konvert_mirror::{BatchBody, Digest, Node, RecordKind, SignedBatch};

/// The regions of the tests.
pub(crate) const REGIONS: [Node; 3] = [Node::Region(1), Node::Region(2), Node::Region(77)];

/// A fixed key per node, so failures replay.
pub(crate) fn key(node: Node) -> SigningKey {
    let b = match node {
        Node::Federal => 200,
        Node::Region(c) => c,
    };
    SigningKey::from_seed(&[b; 32]).unwrap()
}

/// The configured peers of `node`, with their keys.
pub(crate) fn peers(node: Node) -> BTreeMap<Node, VerifyingKey> {
    match node {
        Node::Federal => REGIONS.iter().map(|&r| (r, key(r).verifying_key())).collect(),
        Node::Region(_) => [(Node::Federal, key(Node::Federal).verifying_key())].into(),
    }
}

/// A batch of `rows` signed by `signer`, schema 1.
pub(crate) fn batch(
    from: Node,
    to: Node,
    kind: RecordKind,
    first_seq: u64,
    prev: Digest,
    rows: &[&[u8]],
    signer: &SigningKey,
) -> SignedBatch {
    let body = BatchBody {
        schema: 1,
        from,
        to,
        kind,
        first_seq,
        prev,
        rows: rows.iter().map(|r| serde_bytes::ByteBuf::from(r.to_vec())).collect(),
    };
    SignedBatch::sign(body, signer).unwrap()
}
