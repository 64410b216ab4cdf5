//! Limits: how much of the host one component instance, or one library inside it, may hold
//! at once. A rule decides whether a use may happen; a limit decides how many may be open
//! together, so that one guest cannot take every descriptor or byte of memory the host has.
//!
//! ```toml
//! [limits]                         # the instance's; unset keys keep their defaults
//! sockets = 256
//! lookups = 8
//! calls-in-flight = 64             # 0.3 UDP sends and receives pending at once
//!
//! bytes-per-second = 1000000      # unset by default: no rate
//!
//! [library.weather.limits]         # a library's own, counted inside the instance's
//! connections = 4
//! ```

use std::fmt;

/// One kind of limit, named in files and flags by [`Limit::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    /// Sockets open at once, TCP and UDP, accepted connections included.
    Sockets,
    /// TCP connections open at once, connected or accepted.
    Connections,
    /// Bytes of one output stream the host holds while the kernel has no room for them: what
    /// one `check-write` permits.
    StreamBuffer,
    /// Datagrams one UDP socket moves at once each way: one 0.2 `send` or `receive` call's
    /// batch (the host copies each), and the 0.3 `send` calls, or `receive` calls, pending on
    /// one socket.
    Datagrams,
    /// Name lookups in flight at once.
    Lookups,
    /// 0.3 UDP `send` and `receive` calls pending at once. A pending send holds the datagram
    /// the component model copied out of the guest before the host saw the call, so this
    /// bounds what the host holds for them: at most this many datagrams.
    CallsInFlight,
    /// Bytes moved over the network per second: TCP bytes written and read, UDP datagram
    /// bytes sent and received. Unset by default; past it the data path waits.
    BytesPerSecond,
}

impl Limit {
    /// Every limit, in the order files and messages list them.
    pub const ALL: [Limit; 7] = [
        Limit::Sockets,
        Limit::Connections,
        Limit::StreamBuffer,
        Limit::Datagrams,
        Limit::Lookups,
        Limit::CallsInFlight,
        Limit::BytesPerSecond,
    ];

    /// The key in a `[limits]` table and in `--limit KEY=VALUE`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Sockets => "sockets",
            Limit::Connections => "connections",
            Limit::StreamBuffer => "stream-buffer",
            Limit::Datagrams => "datagrams",
            Limit::Lookups => "lookups",
            Limit::CallsInFlight => "calls-in-flight",
            Limit::BytesPerSecond => "bytes-per-second",
        }
    }

    /// The limit a key names.
    pub fn from_name(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The value an instance gets when nothing sets one: more than a busy server uses, few
    /// enough that the host keeps descriptors and memory for itself and other instances.
    /// `None` for `bytes-per-second`: a rate is the operator's choice, none is imposed.
    pub fn default_value(self) -> Option<u64> {
        match self {
            Limit::Sockets => Some(8192),
            Limit::Connections => Some(8192),
            Limit::StreamBuffer => Some(64 * 1024),
            Limit::Datagrams => Some(64),
            Limit::Lookups => Some(64),
            // 16 MiB of pending 64 KiB datagrams at most.
            Limit::CallsInFlight => Some(256),
            Limit::BytesPerSecond => None,
        }
    }

    /// A value messages show as an example: the default, or one megabyte a second.
    pub(crate) fn example(self) -> u64 {
        self.default_value().unwrap_or(1_000_000)
    }

    /// The largest value a file or flag may set; the host works in 32 bits for counts.
    pub(crate) fn max_value(self) -> u64 {
        match self {
            Limit::StreamBuffer => 64 * 1024 * 1024,
            Limit::Datagrams => 1024,
            // 1 TB/s: far above any link, small enough that the bucket's arithmetic in
            // nanoseconds never overflows.
            Limit::BytesPerSecond => 1_000_000_000_000,
            _ => u64::from(u32::MAX),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value per [`Limit`], or none where this level sets none: an instance's limits have every
/// value that has a default (defaults fill what the policy leaves out); a library's only
/// those its table sets, and the instance's apply to it as well.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits([Option<u64>; Limit::ALL.len()]);

impl Limits {
    /// No limit set at this level.
    pub const NONE: Limits = Limits([None; Limit::ALL.len()]);

    /// Every limit at its [`Limit::default_value`]; those without one stay unset.
    pub fn defaults() -> Limits {
        let mut limits = Limits::NONE;
        for limit in Limit::ALL {
            limits.0[limit as usize] = limit.default_value();
        }
        limits
    }

    /// The value set for `limit`, if this level sets one.
    #[inline]
    pub fn get(&self, limit: Limit) -> Option<u64> {
        self.0[limit as usize]
    }

    /// Sets `limit` to `value`.
    pub fn set(&mut self, limit: Limit, value: u64) {
        self.0[limit as usize] = Some(value);
    }

    /// The limits this level sets, in [`Limit::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Limit, u64)> + '_ {
        Limit::ALL
            .into_iter()
            .filter_map(|l| self.get(l).map(|v| (l, v)))
    }

    /// `self`, with `other`'s values where it sets them.
    pub(crate) fn overridden_by(mut self, other: &Limits) -> Limits {
        for (limit, value) in other.iter() {
            self.set(limit, value);
        }
        self
    }
}

/// Checks a value given for `limit`: at least 1 (deny rules take a use away, not a limit of
/// 0) and at most [`Limit::max_value`].
pub(crate) fn check_value(limit: Limit, value: i128) -> Result<u64, crate::ErrorKind> {
    let max = limit.max_value();
    match u64::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(crate::ErrorKind::LimitValue {
            limit: limit.name(),
            value: value.to_string(),
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_found_by_its_name() {
        for limit in Limit::ALL {
            assert_eq!(Limit::from_name(limit.name()), Some(limit));
        }
        assert_eq!(Limit::from_name("socket"), None);
    }

    #[test]
    fn defaults_set_every_limit_and_an_override_wins() {
        let mut mine = Limits::NONE;
        mine.set(Limit::Sockets, 3);
        let merged = Limits::defaults().overridden_by(&mine);
        assert_eq!(merged.get(Limit::Sockets), Some(3));
        assert_eq!(merged.get(Limit::Lookups), Some(64));
        assert_eq!(
            merged.get(Limit::BytesPerSecond),
            None,
            "no rate unless one is set"
        );
        assert_eq!(merged.iter().count(), Limit::ALL.len() - 1);
    }

    #[test]
    fn zero_and_oversized_values_are_refused() {
        assert!(check_value(Limit::Sockets, 0).is_err());
        assert!(check_value(Limit::Sockets, -1).is_err());
        assert!(check_value(Limit::Datagrams, 1025).is_err());
        assert_eq!(check_value(Limit::Datagrams, 1024).ok(), Some(1024));
        assert!(check_value(Limit::BytesPerSecond, 0).is_err());
        assert!(check_value(Limit::BytesPerSecond, 1_000_000_000_001).is_err());
        assert_eq!(check_value(Limit::BytesPerSecond, 1).ok(), Some(1));
    }
}
