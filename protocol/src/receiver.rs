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
        Error::Unexpected { expected, got }
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
                let (next, size, len) = (*next, self.size(), bytes.len() as u64);
                let expected = if offset != next {
                    "Data starting exactly where the previous ended"
                } else if len == 0 {
                    "non-empty Data"
                } else if offset.checked_add(len).is_none_or(|end| end > size) {
                    "Data within the offered size"
                } else {
                    self.state = State::Receiving { next: next + len };
                    return Ok(ReceiverEvent::Write { offset, bytes });
                };
                Err(Error::Unexpected {
                    expected,
                    got: format!("Data at {offset} ({len} bytes), expected offset {next} of {size}"),
                })
            }
            (State::Receiving { next }, Message::Done) if *next == self.size() => {
                self.state = State::Completing;
                Ok(ReceiverEvent::Complete)
            }
            (State::Receiving { next }, Message::Done) => Err(Error::Unexpected {
                expected: "all offered bytes before Done",
                got: format!("Done at {next} of {}", self.size()),
            }),
            (_, other) => Err(self.violation(&other)),
        }
    }

    fn deciding(&self, call: &str) -> Result<&Offer> {
        match (&self.state, &self.offer) {
            (State::Deciding, Some(offer)) => Ok(offer),
            _ => Err(Error::Unexpected {
                expected: "a decision only right after an Offer",
                got: format!("{call} in state {:?}", self.state),
            }),
        }
    }

    /// Accepts the offer; the edge sends from `resume_at` (the bytes the center already
    /// holds durably). With `resume_at == size` the next legal message is Done.
    pub fn accept(&mut self, resume_at: u64) -> Result<Message> {
        let offer = self.deciding("Accept")?;
        if resume_at > offer.size {
            return Err(Error::Unexpected {
                expected: "Accept within the offered size",
                got: format!("Accept at {resume_at} of {}", offer.size),
            });
        }
        // A guard against a caller that forgot to refuse: accepting would let the edge
        // stream more than the center is prepared to stage.
        if offer.size > self.max_size {
            return Err(Error::Unexpected {
                expected: "Reject(TooLarge) for an offer above the maximum",
                got: format!("Accept of {} bytes, maximum {}", offer.size, self.max_size),
            });
        }
        self.state = State::Receiving { next: resume_at };
        Ok(Message::Accept { resume_at })
    }

    /// Answers an offer of something already stored with its original receipt.
    pub fn already_have(&mut self, receipt: Receipt) -> Result<Message> {
        check_matches(self.deciding("AlreadyHave")?, &receipt)?;
        self.state = State::Finished;
        Ok(Message::AlreadyHave { receipt })
    }

    /// A relay's answer, right after an Offer or after Complete: it holds the packet
    /// durably but has no receipt from the center yet; the exchange ends and the
    /// downstream offers again later.
    pub fn held(&mut self, relay: &str, detail: &str) -> Result<Message> {
        if !matches!(self.state, State::Deciding | State::Completing) {
            return Err(Error::Unexpected {
                expected: "Held only right after an Offer or once every byte arrived",
                got: format!("Held in state {:?}", self.state),
            });
        }
        self.state = State::Finished;
        Ok(Message::Held {
            relay: relay.to_owned(),
            detail: detail.to_owned(),
        })
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
        let offer = match (&self.state, &self.offer) {
            (State::Completing, Some(offer)) => offer,
            _ => {
                return Err(Error::Unexpected {
                    expected: "a Receipt only after Complete",
                    got: format!("Receipt in state {:?}", self.state),
                })
            }
        };
        check_matches(offer, &receipt)?;
        self.state = State::Finished;
        Ok(Message::Receipt { receipt })
    }
}

/// The edge checks this too (with the signature); checking here catches a center bug
/// before a useless receipt goes on the wire.
fn check_matches(offer: &Offer, receipt: &Receipt) -> Result<()> {
    let b = &receipt.body;
    if b.packet_id != offer.packet_id || b.version != offer.version || b.digest != offer.digest || b.bytes != offer.size
    {
        return Err(Error::BadReceipt(format!(
            "about to send a receipt for {} v{} ({} bytes) in answer to {} v{} ({} bytes)",
            b.packet_id, b.version, b.bytes, offer.packet_id, offer.version, offer.size
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod tests;
