//! EAP-TLS message fragmentation (RFC 5216 §2.1.5, §3.1; RFC 9190): the
//! Flags octet (L, M, S), the optional 4-octet TLS Message Length, and the
//! splitting and joining of TLS data across EAP packets.
//!
//! Sans-I/O and TLS-agnostic: octets in, octets out. Whether an
//! acknowledgement was expected at this point is the conversation's call,
//! not this module's.

use thiserror::Error;

/// Length-included flag.
pub const FLAG_L: u8 = 0x80;
/// More-fragments flag.
pub const FLAG_M: u8 = 0x40;
/// EAP-TLS Start flag.
pub const FLAG_S: u8 = 0x20;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    #[error("EAP-TLS data without a Flags octet")]
    NoFlags,
    #[error("L flag set but only {0} octets follow for the 4-octet TLS Message Length")]
    TruncatedLength(usize),
    #[error("TLS Message Length {declared} is above the {cap}-octet limit")]
    LengthAboveCap { declared: usize, cap: usize },
    #[error("TLS Message Length {declared} is smaller than the {fragment}-octet fragment")]
    LengthBelowFragment { declared: usize, fragment: usize },
    #[error("TLS Message Length changed from {first} to {now} within one message")]
    LengthChanged { first: usize, now: usize },
    #[error("fragments add up to {total} octets, more than the declared {declared}")]
    BeyondDeclared { total: usize, declared: usize },
    #[error("last fragment ends at {total} octets, short of the declared {declared}")]
    ShortOfDeclared { total: usize, declared: usize },
    #[error("fragments add up to more than the {cap}-octet limit")]
    AboveCap { cap: usize },
    #[error("the S (Start) flag is only for the server's first request")]
    UnexpectedStart,
    #[error("a fragment with L or M set carries no TLS data")]
    EmptyFragment,
}

/// What one incoming EAP-TLS packet amounted to.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole TLS message (one or more records) is ready for TLS.
    Complete(Vec<u8>),
    /// A fragment with M set: acknowledge it and wait for the next.
    NeedMore,
    /// An empty packet with no flags: the peer acknowledges our fragment
    /// (or, after the TLS 1.3 commitment message, our last message).
    Ack,
}

/// Joins the peer's fragments into TLS messages, bounded by `cap` octets.
#[derive(Debug)]
pub struct Reassembler {
    buf: Vec<u8>,
    declared: Option<usize>,
    in_progress: bool,
    cap: usize,
}

impl Reassembler {
    pub fn new(cap: usize) -> Self {
        Reassembler {
            buf: Vec::new(),
            declared: None,
            in_progress: false,
            cap,
        }
    }

    /// Whether a fragmented message has started and not yet ended.
    pub fn in_progress(&self) -> bool {
        self.in_progress
    }

    /// Octets held for the message being reassembled.
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Feeds the Type-Data of one EAP-TLS Response.
    pub fn feed(&mut self, type_data: &[u8]) -> Result<Incoming, FragmentError> {
        let result = self.feed_inner(type_data);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn reset(&mut self) {
        self.buf = Vec::new();
        self.declared = None;
        self.in_progress = false;
    }

    fn feed_inner(&mut self, type_data: &[u8]) -> Result<Incoming, FragmentError> {
        let (&flags, mut rest) = type_data.split_first().ok_or(FragmentError::NoFlags)?;
        if flags & FLAG_S != 0 {
            return Err(FragmentError::UnexpectedStart);
        }
        if flags & FLAG_L != 0 {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(FragmentError::TruncatedLength(rest.len()));
            };
            let declared = u32::from_be_bytes(*len) as usize;
            if declared > self.cap {
                return Err(FragmentError::LengthAboveCap {
                    declared,
                    cap: self.cap,
                });
            }
            match self.declared {
                // Some peers repeat L on every fragment; the same value is fine.
                Some(first) if first != declared => {
                    return Err(FragmentError::LengthChanged {
                        first,
                        now: declared,
                    });
                }
                Some(_) => {}
                None if self.in_progress => {
                    return Err(FragmentError::LengthChanged {
                        first: self.buf.len(),
                        now: declared,
                    });
                }
                None => {
                    if declared < tail.len() {
                        return Err(FragmentError::LengthBelowFragment {
                            declared,
                            fragment: tail.len(),
                        });
                    }
                    self.declared = Some(declared);
                }
            }
            rest = tail;
        }
        if flags & (FLAG_L | FLAG_M) == 0 && rest.is_empty() && !self.in_progress {
            return Ok(Incoming::Ack);
        }
        // L or M announce data; without any, the packet moves nothing
        // forward, and answering it would let a peer without a certificate
        // hold a conversation open forever (`0x80 0 0 0 0` over and over).
        if flags & (FLAG_L | FLAG_M) != 0 && rest.is_empty() {
            return Err(FragmentError::EmptyFragment);
        }
        if self.buf.len() + rest.len() > self.cap {
            return Err(FragmentError::AboveCap { cap: self.cap });
        }
        self.buf.extend_from_slice(rest);
        if let Some(declared) = self.declared
            && self.buf.len() > declared
        {
            return Err(FragmentError::BeyondDeclared {
                total: self.buf.len(),
                declared,
            });
        }
        if flags & FLAG_M != 0 {
            self.in_progress = true;
            return Ok(Incoming::NeedMore);
        }
        if let Some(declared) = self.declared
            && self.buf.len() != declared
        {
            return Err(FragmentError::ShortOfDeclared {
                total: self.buf.len(),
                declared,
            });
        }
        let message = std::mem::take(&mut self.buf);
        self.reset();
        Ok(Incoming::Complete(message))
    }
}

/// Splits one outgoing TLS flight into EAP-TLS Type-Data fragments carrying
/// at most `fragment_size` octets of TLS data each. The first fragment
/// carries L and the total length (RFC 5216 requires it when fragmenting and
/// allows it otherwise; older supplicants expect it); all but the last carry M.
#[derive(Debug)]
pub struct Fragmenter {
    data: Vec<u8>,
    sent: usize,
    fragment_size: usize,
}

impl Fragmenter {
    pub fn new(data: Vec<u8>, fragment_size: usize) -> Self {
        Fragmenter {
            data,
            sent: 0,
            fragment_size: fragment_size.max(1),
        }
    }

    /// Octets of the flight held until its last fragment is out.
    pub fn buffered(&self) -> usize {
        if self.has_more() {
            self.data.capacity()
        } else {
            0
        }
    }

    /// Whether fragments remain after those already taken.
    pub fn has_more(&self) -> bool {
        self.sent < self.data.len()
    }

    /// The next fragment's Type-Data, or None when all were sent.
    pub fn next_fragment(&mut self) -> Option<Vec<u8>> {
        if !self.has_more() {
            return None;
        }
        let first = self.sent == 0;
        let end = (self.sent + self.fragment_size).min(self.data.len());
        let more = end < self.data.len();
        let mut out = Vec::with_capacity(5 + end - self.sent);
        let mut flags = if more { FLAG_M } else { 0 };
        if first {
            flags |= FLAG_L;
        }
        out.push(flags);
        if first {
            out.extend_from_slice(&(self.data.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.data[self.sent..end]);
        self.sent = end;
        Some(out)
    }
}

/// The server's EAP-TLS Start: only the S flag, deliberately without L and a
/// length (some supplicants refuse a Start that carries one).
pub fn start() -> [u8; 1] {
    [FLAG_S]
}

/// An acknowledgement of the peer's fragment: no flags, no data.
pub fn ack() -> [u8; 1] {
    [0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_many_sizes() {
        let message: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        for size in [1, 100, 300, 999, 1000, 2999, 3000, 5000] {
            let mut f = Fragmenter::new(message.clone(), size);
            let mut r = Reassembler::new(64 * 1024);
            let mut fragments = 0;
            let mut result = None;
            while let Some(frag) = f.next_fragment() {
                fragments += 1;
                match r.feed(&frag).expect("valid fragment") {
                    Incoming::NeedMore => assert!(f.has_more(), "M set on the last fragment"),
                    Incoming::Complete(m) => result = Some(m),
                    Incoming::Ack => panic!("a data fragment read as an ack"),
                }
            }
            assert_eq!(fragments, message.len().div_ceil(size));
            assert_eq!(result.as_deref(), Some(&message[..]), "size {size}");
            assert!(!r.in_progress());
        }
    }

    #[test]
    fn first_fragment_has_length_and_start_has_none() {
        let mut f = Fragmenter::new(vec![7; 10], 4);
        assert_eq!(
            f.next_fragment(),
            Some(vec![FLAG_L | FLAG_M, 0, 0, 0, 10, 7, 7, 7, 7])
        );
        assert_eq!(f.next_fragment(), Some(vec![FLAG_M, 7, 7, 7, 7]));
        assert_eq!(f.next_fragment(), Some(vec![0, 7, 7]));
        assert_eq!(f.next_fragment(), None);
        assert_eq!(start(), [0x20]);
    }

    #[test]
    fn unfragmented_messages_with_and_without_length() {
        let mut r = Reassembler::new(100);
        assert_eq!(r.feed(&[0, 1, 2, 3]), Ok(Incoming::Complete(vec![1, 2, 3])));
        assert_eq!(
            r.feed(&[FLAG_L, 0, 0, 0, 2, 9, 9]),
            Ok(Incoming::Complete(vec![9, 9]))
        );
        assert_eq!(r.feed(&[0]), Ok(Incoming::Ack));
        // L repeated with the same value on every fragment is tolerated.
        assert_eq!(
            r.feed(&[FLAG_L | FLAG_M, 0, 0, 0, 2, 1]),
            Ok(Incoming::NeedMore)
        );
        assert_eq!(
            r.feed(&[FLAG_L, 0, 0, 0, 2, 2]),
            Ok(Incoming::Complete(vec![1, 2]))
        );
    }

    /// Each malformed sequence and the error it must produce; the
    /// reassembler is usable again afterwards.
    #[test]
    fn malformed_table() {
        let cases: Vec<(&str, Vec<Vec<u8>>, FragmentError)> = vec![
            ("no flags octet", vec![vec![]], FragmentError::NoFlags),
            (
                "L with 2 length octets",
                vec![vec![FLAG_L, 0, 1]],
                FragmentError::TruncatedLength(2),
            ),
            (
                "length below fragment",
                vec![vec![FLAG_L | FLAG_M, 0, 0, 0, 2, 1, 2, 3]],
                FragmentError::LengthBelowFragment {
                    declared: 2,
                    fragment: 3,
                },
            ),
            (
                "length above cap",
                vec![vec![FLAG_L | FLAG_M, 0x7F, 0xFF, 0xFF, 0xFF, 1]],
                FragmentError::LengthAboveCap {
                    declared: 0x7FFF_FFFF,
                    cap: 100,
                },
            ),
            (
                "unannounced total above cap",
                vec![vec![FLAG_M; 61], vec![FLAG_M; 61]],
                FragmentError::AboveCap { cap: 100 },
            ),
            (
                "fragments beyond declared",
                vec![vec![FLAG_L | FLAG_M, 0, 0, 0, 3, 1, 2], vec![FLAG_M, 3, 4]],
                FragmentError::BeyondDeclared {
                    total: 4,
                    declared: 3,
                },
            ),
            (
                "last fragment short of declared",
                vec![vec![FLAG_L | FLAG_M, 0, 0, 0, 5, 1, 2], vec![0, 3]],
                FragmentError::ShortOfDeclared {
                    total: 3,
                    declared: 5,
                },
            ),
            (
                "length changes",
                vec![
                    vec![FLAG_L | FLAG_M, 0, 0, 0, 5, 1],
                    vec![FLAG_L | FLAG_M, 0, 0, 0, 9, 2],
                ],
                FragmentError::LengthChanged { first: 5, now: 9 },
            ),
            (
                "start flag from the peer",
                vec![vec![FLAG_S]],
                FragmentError::UnexpectedStart,
            ),
        ];
        for (name, fragments, want) in cases {
            let mut r = Reassembler::new(100);
            let mut got = None;
            for f in &fragments {
                if let Err(e) = r.feed(f) {
                    got = Some(e);
                    break;
                }
            }
            assert_eq!(got, Some(want), "{name}");
            assert!(!r.in_progress(), "{name}: state not reset");
            assert_eq!(
                r.feed(&[0, 42]),
                Ok(Incoming::Complete(vec![42])),
                "{name}: unusable after error"
            );
        }
    }
}
