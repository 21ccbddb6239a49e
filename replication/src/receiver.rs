//! The center's side of one packet's stream, as a state machine with no IO: it enforces
//! the order Offer → decision → contiguous Data up to the offered size → Done, and says
//! what the caller must do (decide, write, complete).

use crate::{Error, Message, Offer, Receipt, RejectReason, Result};

/// What the caller must do after a message from the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// Decide: `accept`, `already_have` or `reject`.
    Offered(Offer),
    /// Write these bytes at this offset of the staging file.
    Write {
        /// Offset.
        offset: u64,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Every byte arrived: make it durable, verify, store, then `receipt` or `reject`.
    Complete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    ExpectOffer,
    Deciding,
    Receiving { next: u64 },
    Completing,
    Finished,
}

/// One packet's exchange, center side.
#[derive(Debug)]
pub struct PacketReceiver {
    max_size: u64,
    offer: Option<Offer>,
    state: State,
}

impl PacketReceiver {
    /// A receiver; offers above `max_size` should be refused by the caller (TooLarge).
    pub fn new(max_size: u64) -> Self {
        PacketReceiver {
            max_size,
            offer: None,
            state: State::ExpectOffer,
        }
    }

    /// The largest envelope the caller accepts.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The offer, once received.
    pub fn offer(&self) -> Option<&Offer> {
        self.offer.as_ref()
    }

    fn size(&self) -> u64 {
        self.offer.as_ref().map_or(0, |o| o.size)
    }

    fn violation(&self, got: &Message) -> Error {
        let expected = match self.state {
            State::ExpectOffer => "Offer",
            State::Deciding => "nothing until the center decides",
            State::Receiving { .. } => "Data or Done",
            State::Completing => "nothing until the receipt",
            State::Finished => "nothing after the end",
        };
        let got = match got {
            Message::Data { offset, bytes } => format!("Data at {offset} ({} bytes)", bytes.len()),
            other => other.kind().to_owned(),
        };
        Error::Protocol { expected, got }
    }

    /// Handles a message from the edge.
    pub fn handle(&mut self, msg: Message) -> Result<ReceiverEvent> {
        match (&self.state, msg) {
            (State::ExpectOffer, Message::Offer(offer)) => {
                self.offer = Some(offer.clone());
                self.state = State::Deciding;
                Ok(ReceiverEvent::Offered(offer))
            }
            (State::Receiving { next }, Message::Data { offset, bytes }) => {
                let next = *next;
                let end = offset.checked_add(bytes.len() as u64);
                if offset != next || bytes.is_empty() || end.is_none_or(|e| e > self.size()) {
                    return Err(Error::Protocol {
                        expected: "contiguous, non-empty Data within the offered size",
                        got: format!(
                            "Data at {offset} ({} bytes), expected offset {next} of {}",
                            bytes.len(),
                            self.size()
                        ),
                    });
                }
                self.state = State::Receiving {
                    next: next + bytes.len() as u64,
                };
                Ok(ReceiverEvent::Write { offset, bytes })
            }
            (State::Receiving { next }, Message::Done) if *next == self.size() => {
                self.state = State::Completing;
                Ok(ReceiverEvent::Complete)
            }
            (State::Receiving { next }, Message::Done) => Err(Error::Protocol {
                expected: "all offered bytes before Done",
                got: format!("Done at {next} of {}", self.size()),
            }),
            (_, other) => Err(self.violation(&other)),
        }
    }

    /// Accepts the offer; the edge sends from `resume_at`.
    pub fn accept(&mut self, resume_at: u64) -> Result<Message> {
        if self.state != State::Deciding || resume_at > self.size() {
            return Err(Error::Protocol {
                expected: "a decision on an offer",
                got: format!("Accept at {resume_at}"),
            });
        }
        self.state = State::Receiving { next: resume_at };
        Ok(Message::Accept { resume_at })
    }

    /// Answers an offer of something already stored.
    pub fn already_have(&mut self, receipt: Receipt) -> Result<Message> {
        if self.state != State::Deciding {
            return Err(Error::Protocol {
                expected: "a decision on an offer",
                got: "AlreadyHave".into(),
            });
        }
        self.state = State::Finished;
        Ok(Message::AlreadyHave { receipt })
    }

    /// Refuses, in any state; the exchange ends.
    pub fn reject(&mut self, reason: RejectReason, detail: &str) -> Message {
        self.state = State::Finished;
        Message::Reject {
            reason,
            detail: detail.to_owned(),
        }
    }

    /// The receipt, once the packet is durable.
    pub fn receipt(&mut self, receipt: Receipt) -> Result<Message> {
        if self.state != State::Completing {
            return Err(Error::Protocol {
                expected: "a completed transfer",
                got: "Receipt".into(),
            });
        }
        self.state = State::Finished;
        Ok(Message::Receipt { receipt })
    }
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod tests;
