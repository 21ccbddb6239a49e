//! The edge's side of one packet's stream, as a state machine with no IO: it says what
//! to send and checks what comes back, including that a receipt is signed by the center
//! and is for exactly the offered bytes.

use konvert_crypto::VerifyingKey;

use crate::frame::DATA_CHUNK;
use crate::{Error, Message, Offer, Receipt, RejectReason, Result};

/// What the caller must do after a message from the center.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// Send the envelope's bytes from this offset (`next_chunk`, `data`, then `finish`).
    SendFrom(u64),
    /// Delivered; the receipt verified against the center key and the offer.
    Delivered(Receipt),
    /// A relay holds the packet durably but has no receipt from the center yet: the
    /// packet stays pending and is offered again later.
    Held {
        /// The relay's name.
        relay: String,
        /// Where the packet stands upstream.
        detail: String,
    },
    /// Refused.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail from the center.
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Start,
    AwaitDecision,
    Sending { next: u64 },
    AwaitReceipt,
    Finished,
}

/// One packet's exchange, edge side.
#[derive(Debug)]
pub struct PacketSender {
    offer: Offer,
    center_key: VerifyingKey,
    state: State,
}

impl PacketSender {
    /// A sender for `offer`, trusting receipts signed by `center_key`.
    pub fn new(offer: Offer, center_key: VerifyingKey) -> Self {
        PacketSender {
            offer,
            center_key,
            state: State::Start,
        }
    }

    /// The offer.
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// The Offer message that opens the exchange.
    pub fn start(&mut self) -> Result<Message> {
        if self.state != State::Start {
            return Err(Error::Unexpected {
                expected: "a new exchange",
                got: "start called twice".into(),
            });
        }
        self.state = State::AwaitDecision;
        Ok(Message::Offer(self.offer.clone()))
    }

    fn expected(&self) -> &'static str {
        match self.state {
            State::Start => "nothing before the Offer is sent",
            State::AwaitDecision => "Accept, AlreadyHave, Held or Reject",
            State::Sending { .. } => "only Reject while Data is being sent",
            State::AwaitReceipt => "Receipt, Held or Reject",
            State::Finished => "nothing after the exchange ended",
        }
    }

    /// Handles a message from the center. On error nothing changed; the caller closes
    /// the stream, and the packet stays in the outbox to be offered again.
    pub fn handle(&mut self, msg: Message) -> Result<SenderEvent> {
        match (&self.state, msg) {
            (State::AwaitDecision, Message::Accept { resume_at }) => {
                if resume_at > self.offer.size {
                    return Err(Error::Unexpected {
                        expected: "Accept within the offered size",
                        got: format!("Accept at {resume_at} of {}", self.offer.size),
                    });
                }
                self.state = State::Sending { next: resume_at };
                Ok(SenderEvent::SendFrom(resume_at))
            }
            (State::AwaitDecision, Message::AlreadyHave { receipt })
            | (State::AwaitReceipt, Message::Receipt { receipt }) => {
                receipt.verify_for(&self.center_key, &self.offer)?;
                self.state = State::Finished;
                Ok(SenderEvent::Delivered(receipt))
            }
            (State::AwaitDecision | State::AwaitReceipt, Message::Held { relay, detail }) => {
                self.state = State::Finished;
                Ok(SenderEvent::Held { relay, detail })
            }
            (
                State::AwaitDecision | State::Sending { .. } | State::AwaitReceipt,
                Message::Reject { reason, detail },
            ) => {
                self.state = State::Finished;
                Ok(SenderEvent::Rejected { reason, detail })
            }
            (_, other) => Err(Error::Unexpected {
                expected: self.expected(),
                got: other.kind().into(),
            }),
        }
    }

    /// The next byte range to read and send, advancing; `None` once all were handed out.
    pub fn next_chunk(&mut self) -> Option<(u64, usize)> {
        let State::Sending { next } = &mut self.state else {
            return None;
        };
        if *next >= self.offer.size {
            return None;
        }
        let n = (self.offer.size - *next).min(DATA_CHUNK as u64) as usize;
        let at = *next;
        *next += n as u64;
        Some((at, n))
    }

    /// Wraps bytes read for a range from `next_chunk`.
    pub fn data(&self, offset: u64, bytes: Vec<u8>) -> Message {
        debug_assert!(
            offset
                .checked_add(bytes.len() as u64)
                .is_some_and(|end| end <= self.offer.size),
            "Data past the offered size"
        );
        Message::Data { offset, bytes }
    }

    /// The Done message, once every byte was handed out.
    pub fn finish(&mut self) -> Result<Message> {
        match self.state {
            State::Sending { next } if next >= self.offer.size => {
                self.state = State::AwaitReceipt;
                Ok(Message::Done)
            }
            State::Sending { next } => Err(Error::Unexpected {
                expected: "all bytes sent before Done",
                got: format!("Done at {next} of {}", self.offer.size),
            }),
            _ => Err(Error::Unexpected {
                expected: self.expected(),
                got: "Done".into(),
            }),
        }
    }

    /// Whether the exchange has ended.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }
}
