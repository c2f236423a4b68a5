//! Leases: which worker holds a batch, until when, and an owner identity that names its host and process.

use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// The longest rendered owner, so that it fits `ingestion_batches.lease_owner VARCHAR(255)`.
pub const MAX_LEASE_OWNER_LEN: usize = 255;

/// The identity of a worker holding a lease: host name, process id and a per-run nonce.
///
/// Rendered as `host:pid:nonce` and parsed back. The host comes first and the parser splits from the right, so a host
/// may contain `:` (an IPv6 literal) while the nonce may not. Host and pid let an adapter decide "same host, process
/// gone" and take the lease over without waiting; the nonce tells apart two runs that reuse a pid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseOwner {
    host: String,
    pid: u32,
    nonce: String,
}

/// Why a lease owner could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseOwnerError {
    /// The text is not `host:pid:nonce`.
    #[error("lease owner {0:?} is not of the form host:pid:nonce")]
    Shape(String),
    /// The host is empty.
    #[error("lease owner host is empty")]
    EmptyHost,
    /// The nonce is empty.
    #[error("lease owner nonce is empty")]
    EmptyNonce,
    /// The nonce contains `:`, which would make the rendering ambiguous.
    #[error("lease owner nonce {0:?} contains ':'")]
    ColonInNonce(String),
    /// A part contains a control character (the owner is stored and printed on one line).
    #[error("lease owner contains a control character")]
    ControlCharacter,
    /// The pid is not a decimal number that fits in 32 bits.
    #[error("lease owner pid {value:?} is not a process id")]
    Pid {
        /// The rejected text.
        value: String,
        /// Why it did not parse.
        #[source]
        source: std::num::ParseIntError,
    },
    /// The rendering would not fit the column.
    #[error("lease owner is {len} characters long, longer than {MAX_LEASE_OWNER_LEN}")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
}

impl LeaseOwner {
    /// Builds an owner from its parts.
    ///
    /// # Errors
    /// [`LeaseOwnerError`] when the host or nonce is empty, the nonce contains `:`, a part contains a control
    /// character, or the rendering is longer than [`MAX_LEASE_OWNER_LEN`] characters.
    pub fn new(
        host: impl Into<String>,
        pid: u32,
        nonce: impl Into<String>,
    ) -> Result<Self, LeaseOwnerError> {
        let host = host.into();
        let nonce = nonce.into();
        if host.is_empty() {
            return Err(LeaseOwnerError::EmptyHost);
        }
        if nonce.is_empty() {
            return Err(LeaseOwnerError::EmptyNonce);
        }
        if nonce.contains(':') {
            return Err(LeaseOwnerError::ColonInNonce(nonce));
        }
        if host.chars().chain(nonce.chars()).any(char::is_control) {
            return Err(LeaseOwnerError::ControlCharacter);
        }
        let owner = LeaseOwner { host, pid, nonce };
        let len = owner.to_string().chars().count();
        if len > MAX_LEASE_OWNER_LEN {
            return Err(LeaseOwnerError::TooLong { len });
        }
        Ok(owner)
    }

    /// Parses `host:pid:nonce`.
    ///
    /// # Errors
    /// [`LeaseOwnerError::Shape`] when there are fewer than three parts, [`LeaseOwnerError::Pid`] when the pid is not
    /// a number, and the errors of [`LeaseOwner::new`].
    pub fn parse(input: &str) -> Result<Self, LeaseOwnerError> {
        let mut parts = input.rsplitn(3, ':');
        let (Some(nonce), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LeaseOwnerError::Shape(input.to_owned()));
        };
        // `u32::from_str` accepts a leading `+` and zeros; a pid is rendered without them, so only the canonical
        // digits are accepted and every owner parsed renders back to the same text.
        if !pid.bytes().all(|b| b.is_ascii_digit()) || (pid.len() > 1 && pid.starts_with('0')) {
            return Err(LeaseOwnerError::Shape(input.to_owned()));
        }
        let pid = pid.parse::<u32>().map_err(|source| LeaseOwnerError::Pid {
            value: pid.to_owned(),
            source,
        })?;
        LeaseOwner::new(host, pid, nonce)
    }

    /// The host name the worker runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The worker's process id on that host.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The per-run nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Whether this owner runs on `host` (host names compare ASCII case-insensitively, as DNS names do).
    pub fn is_on_host(&self, host: &str) -> bool {
        self.host.eq_ignore_ascii_case(host)
    }
}

impl fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.nonce)
    }
}

impl FromStr for LeaseOwner {
    type Err = LeaseOwnerError;
    fn from_str(s: &str) -> Result<Self, LeaseOwnerError> {
        LeaseOwner::parse(s)
    }
}

impl serde::Serialize for LeaseOwner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LeaseOwner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        LeaseOwner::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A lease on a batch: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The holder.
    pub owner: LeaseOwner,
    /// The instant the lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether the lease still holds at `now`. It ends at `expires_at` exactly: at that instant it has expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    /// Whether someone other than the holder may take the lease at `now`: it has expired, or the caller has
    /// established that the holder is a dead process (the machine cannot know, so it trusts the caller).
    pub fn can_be_taken_over(&self, now: DateTime<Utc>, holder_dead: bool) -> bool {
        holder_dead || !self.is_live(now)
    }

    /// Whether `owner` is the holder.
    pub fn is_held_by(&self, owner: &LeaseOwner) -> bool {
        &self.owner == owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn renders_and_parses_back() {
        let o = LeaseOwner::new("worker-1.example", 4242, "a1b2").expect("valid");
        assert_eq!(o.to_string(), "worker-1.example:4242:a1b2");
        assert_eq!(LeaseOwner::parse("worker-1.example:4242:a1b2"), Ok(o));
    }

    #[test]
    fn host_may_hold_colons() {
        let o = LeaseOwner::parse("::1:7:n").expect("valid");
        assert_eq!((o.host(), o.pid(), o.nonce()), ("::1", 7, "n"));
        assert!(o.is_on_host("::1"));
    }

    #[test]
    fn bad_owners_are_refused_with_a_reason() {
        let cases = [
            (
                "host:12",
                "lease owner \"host:12\" is not of the form host:pid:nonce",
            ),
            (":12:n", "lease owner host is empty"),
            ("h:12:", "lease owner nonce is empty"),
            (
                "h:+12:n",
                "lease owner \"h:+12:n\" is not of the form host:pid:nonce",
            ),
            (
                "h:x:n",
                "lease owner \"h:x:n\" is not of the form host:pid:nonce",
            ),
            (
                "h:007:n",
                "lease owner \"h:007:n\" is not of the form host:pid:nonce",
            ),
            (
                "h:99999999999:n",
                "lease owner pid \"99999999999\" is not a process id",
            ),
            ("h\n:1:n", "lease owner contains a control character"),
        ];
        for (input, message) in cases {
            let e = LeaseOwner::parse(input).expect_err(input);
            assert_eq!(e.to_string(), message, "{input}");
        }
        assert_eq!(
            LeaseOwner::new("h", 1, "a:b"),
            Err(LeaseOwnerError::ColonInNonce("a:b".into()))
        );
        assert_eq!(
            LeaseOwner::new("h".repeat(250), 12345, "n"),
            Err(LeaseOwnerError::TooLong { len: 258 })
        );
    }

    #[test]
    fn host_comparison_ignores_ascii_case() {
        let o = LeaseOwner::new("Worker-1", 1, "n").expect("valid");
        assert!(o.is_on_host("worker-1"));
        assert!(!o.is_on_host("worker-2"));
    }

    #[test]
    fn lease_ends_at_its_expiry_instant() {
        let t = |s| Utc.timestamp_opt(s, 0).single().expect("valid instant");
        let lease = Lease {
            owner: LeaseOwner::new("h", 1, "n").expect("valid"),
            expires_at: t(100),
        };
        assert!(lease.is_live(t(99)));
        assert!(!lease.is_live(t(100)));
        assert!(!lease.can_be_taken_over(t(99), false));
        assert!(lease.can_be_taken_over(t(99), true));
        assert!(lease.can_be_taken_over(t(100), false));
    }

    #[test]
    fn serde_uses_the_rendering() {
        let o = LeaseOwner::new("h", 1, "n").expect("valid");
        let json = serde_json::to_string(&o).expect("serialises");
        assert_eq!(json, "\"h:1:n\"");
        assert_eq!(
            serde_json::from_str::<LeaseOwner>(&json).expect("parses"),
            o
        );
        assert!(serde_json::from_str::<LeaseOwner>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn every_valid_owner_round_trips(
            host in "[a-zA-Z0-9.:-]{1,60}",
            pid in any::<u32>(),
            nonce in "[a-zA-Z0-9_-]{1,40}",
        ) {
            let o = LeaseOwner::new(host, pid, nonce).expect("valid parts");
            prop_assert_eq!(LeaseOwner::parse(&o.to_string()), Ok(o));
        }

        #[test]
        fn parsing_never_panics(input in "\\PC{0,80}") {
            if let Ok(o) = LeaseOwner::parse(&input) {
                prop_assert_eq!(o.to_string(), input);
            }
        }
    }
}
