//! The `bytes-per-second` limit: one token bucket per instance and one per library inside it,
//! drawn from by every TCP read and write and every UDP datagram sent or received.
//!
//! A bucket holds at most one second of its rate (the burst): a guest that was quiet for a
//! second may move that much at once, and over any longer stretch it moves no more than the
//! rate. Nothing is refused past it; the data path waits: a read reads only what the bucket
//! holds and a write is permitted only that much, so unread bytes stay in the kernel, whose
//! window then holds the peer back. A stream that emptied the bucket waits until it holds an
//! eighth of a second's bytes again, so a stream under its rate makes a few calls a second,
//! not one for each few bytes that trickle back in.
//!
//! The bucket is the generic cell rate algorithm: one atomic, the moment the bucket would be
//! full again. Looking costs one load and taking one compare-and-swap, per level. Takes may
//! run the bucket into debt (two streams that looked at once, a datagram larger than what was
//! left): the debt is waited off before the next byte moves, so the rate holds on average.
//!
//! The rate itself is kept in the bucket, set when the policy is made and at each reload
//! ([`crate::PolicyHandle::replace`]), so that with no rate a read or write loads one relaxed
//! atomic per level (a plain load) and branches, and never reads the policy.

use crate::grant::Grant;
use crate::limit::Usage;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// One second, in the bucket's unit.
const SECOND: u64 = 1_000_000_000;

/// How full an empty bucket gets before its waiters wake: an eighth of a second's bytes.
const REFILL: u64 = SECOND / 8;

/// The bytes one instance, or one library of it, may still move now.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Bytes per second; 0 when no rate is set.
    rate: AtomicU64,
    /// Nanoseconds after `epoch` at which the bucket is full again. Moving `n` bytes pushes
    /// it `n / rate` seconds later; it holds `rate * (1 s - (full_at - now))` bytes.
    full_at: AtomicU64,
    epoch: Instant,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            rate: AtomicU64::new(0),
            full_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// What a look at a bucket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// It holds this many bytes (at least one).
    Holds(u64),
    /// It is empty, or in debt, until this moment.
    EmptyUntil(Instant),
}

impl Bucket {
    /// Sets the rate (`None`: no rate). What the bucket owes is kept in time, so a new rate
    /// finds it as full, in seconds, as the old one left it.
    pub(crate) fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// The rate, 0 for none.
    #[inline]
    fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// What the bucket holds at `now`, at `rate` (not 0). For a `drained` looker (one that
    /// emptied it) it is empty until it holds an eighth of a second's bytes, and at least
    /// one; otherwise a byte will do. Empty, it says when the eighth is back: a waiter that
    /// wakes then finds enough, drained or not.
    fn look(&self, rate: u64, now: Instant, drained: bool) -> Level {
        let full_at = self.full_at.load(Ordering::Acquire);
        let owed = full_at.saturating_sub(self.nanos(now));
        let spare = SECOND.saturating_sub(owed);
        let refill = REFILL.max(SECOND.div_ceil(rate)).min(SECOND);
        let holds = u128::from(spare) * u128::from(rate) / u128::from(SECOND);
        let holds = u64::try_from(holds).unwrap_or(u64::MAX);
        if holds == 0 || (drained && spare < refill) {
            let at = full_at.saturating_sub(SECOND - refill);
            return Level::EmptyUntil(self.epoch + Duration::from_nanos(at));
        }
        Level::Holds(holds)
    }

    /// Takes `bytes` at `rate` (not 0), into debt if the bucket holds fewer.
    fn take(&self, rate: u64, now: Instant, bytes: u64) {
        let cost = (u128::from(bytes) * u128::from(SECOND)).div_ceil(u128::from(rate));
        let cost = u64::try_from(cost).unwrap_or(u64::MAX);
        let now = self.nanos(now);
        let _ = self
            .full_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |full_at| {
                Some(full_at.max(now).saturating_add(cost))
            });
    }
}

/// One stream's (or one call's) view of its grant's buckets: how much it may move now, and
/// a timer that wakes it when there is more. The timer is made at the first wait of a
/// poll-driven stream and reset after that, never made again.
pub(crate) struct Meter {
    /// The instance's usage and the library's, whose buckets are one step away: with no
    /// rate, a look is a load of each rate and a branch.
    instance: Arc<Usage>,
    library: Option<Arc<Usage>>,
    /// For the log of a wait.
    grant: Grant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether this meter's last move took all a bucket held, or found one empty: then it
    /// waits for the refill rather than move the few bytes that trickle back meanwhile.
    drained: bool,
    /// Whether a wait was logged and has not ended: each wait is logged once.
    waiting: bool,
    /// Whether the last look found a rate: without one, [`Meter::charge`] has nothing to do.
    limited: bool,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("drained", &self.drained)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// A meter of `grant`'s buckets.
    pub(crate) fn new(grant: Grant) -> Self {
        let (instance, library) = grant.usages();
        Self {
            instance,
            library,
            grant,
            sleep: None,
            drained: false,
            waiting: false,
            limited: false,
        }
    }

    /// A meter of `grant`'s buckets if any has a rate now, for a call that makes its own:
    /// with no rate it costs the call no clone of the grant.
    pub(crate) fn if_limited(grant: &Grant) -> Option<Self> {
        let (instance, library) = grant.buckets();
        let limited = instance.rate() != 0 || library.is_some_and(|b| b.rate() != 0);
        limited.then(|| Self::new(grant.clone()))
    }

    /// How many of `want` bytes may move now: `want` when no rate is set, else no more than
    /// every bucket holds; `Err` with when to look again when one is empty.
    fn look(&mut self, want: usize) -> Result<usize, Instant> {
        let instance = &self.instance.bucket;
        let library = self.library.as_deref().map(|usage| &usage.bucket);
        let (instance_rate, library_rate) = (instance.rate(), library.map_or(0, Bucket::rate));
        self.limited = instance_rate != 0 || library_rate != 0;
        if !self.limited {
            return Ok(want);
        }
        let now = Instant::now();
        let mut allowed = u64::try_from(want).unwrap_or(u64::MAX);
        let mut empty: Option<(Instant, u64, bool)> = None;
        let levels = [
            (Some(instance), instance_rate, false),
            (library, library_rate, true),
        ];
        for (bucket, rate, by_library) in levels {
            let Some(bucket) = bucket.filter(|_| rate != 0) else {
                continue;
            };
            match bucket.look(rate, now, self.drained) {
                Level::Holds(n) => allowed = allowed.min(n),
                Level::EmptyUntil(at) => {
                    if empty.is_none_or(|(later, _, _)| at > later) {
                        empty = Some((at, rate, by_library));
                    }
                }
            }
        }
        match empty {
            None => {
                self.waiting = false;
                let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
                self.drained = allowed < want;
                Ok(allowed)
            }
            Some((at, rate, by_library)) => {
                self.drained = true;
                if !self.waiting {
                    self.waiting = true;
                    self.log_wait(rate, by_library, at.saturating_duration_since(now));
                }
                Err(at)
            }
        }
    }

    fn log_wait(&self, rate: u64, by_library: bool, wait: Duration) {
        let library = self.grant.library_name();
        let whose = match (by_library, library) {
            (true, Some(name)) => format!("limit of library {name}"),
            _ => "limit".to_owned(),
        };
        tracing::debug!(
            target: "capnet::limit",
            instance = self.grant.instance_name(),
            capnet.library = library,
            capnet.limit = "bytes-per-second",
            capnet.rate = rate,
            wait_ms = wait.as_millis() as u64,
            "waiting for the rate: {whose} bytes-per-second = {rate}"
        );
    }

    /// How many of `want` bytes may move now; 0 while a bucket is empty (its pollable wakes
    /// when it refills, [`Meter::ready`]).
    pub(crate) fn allowance(&mut self, want: usize) -> usize {
        self.look(want).unwrap_or(0)
    }

    /// As [`Meter::allowance`] for a poll-driven stream: `Pending` while a bucket is empty,
    /// with `cx` woken when it refills.
    pub(crate) fn poll_allowance(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<usize> {
        loop {
            let at = match self.look(want) {
                Ok(n) => return Poll::Ready(n),
                Err(at) => tokio::time::Instant::from_std(at),
            };
            let sleep = match &mut self.sleep {
                Some(sleep) => {
                    sleep.as_mut().reset(at);
                    sleep
                }
                None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
            };
            std::task::ready!(sleep.as_mut().poll(cx));
        }
    }

    /// Waits until every bucket holds a byte; at once when no rate is set. The timer lives
    /// in the caller's future, so waiting allocates nothing.
    pub(crate) async fn ready(&mut self) {
        while let Err(at) = self.look(1) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        }
    }

    /// Counts `bytes` that moved, after a look allowed them, against every bucket with a
    /// rate. Bytes a look allowed with no rate stay uncounted should a reload set one
    /// between the two.
    pub(crate) fn charge(&self, bytes: usize) {
        if !self.limited || bytes == 0 {
            return;
        }
        let instance = &self.instance.bucket;
        let library = self.library.as_deref().map(|usage| &usage.bucket);
        let (instance_rate, library_rate) = (instance.rate(), library.map_or(0, Bucket::rate));
        let now = Instant::now();
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if instance_rate != 0 {
            instance.take(instance_rate, now, bytes);
        }
        if let Some(library) = library.filter(|_| library_rate != 0) {
            library.take(library_rate, now, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(rate: u64) -> (Bucket, Instant) {
        let b = Bucket::default();
        b.set_rate(Some(rate));
        let t0 = b.epoch + Duration::from_secs(10);
        (b, t0)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_holds_one_second_and_refills_at_its_rate() {
        let (b, t0) = bucket(1000);
        assert_eq!(b.look(1000, t0, false), Level::Holds(1000));
        b.take(1000, t0, 1000);
        // Empty: a waiter wakes when an eighth of a second's bytes are back.
        assert_eq!(b.look(1000, t0, false), Level::EmptyUntil(t0 + ms(125)));
        assert_eq!(b.look(1000, t0 + ms(125), true), Level::Holds(125));
        assert_eq!(b.look(1000, t0 + ms(5000), true), Level::Holds(1000));
    }

    #[test]
    fn a_drained_looker_waits_for_an_eighth_of_a_second_not_the_first_bytes_back() {
        let (b, t0) = bucket(1000);
        b.take(1000, t0, 1000);
        assert_eq!(b.look(1000, t0 + ms(10), false), Level::Holds(10));
        assert_eq!(
            b.look(1000, t0 + ms(10), true),
            Level::EmptyUntil(t0 + ms(125))
        );
    }

    #[test]
    fn debt_is_waited_off_before_the_next_byte() {
        let (b, t0) = bucket(1000);
        // A 3000-byte datagram on a 1000-byte bucket: sent, then two seconds of debt.
        b.take(1000, t0, 3000);
        assert_eq!(
            b.look(1000, t0 + ms(1999), false),
            Level::EmptyUntil(t0 + ms(2125))
        );
        assert_eq!(b.look(1000, t0 + ms(2125), true), Level::Holds(125));
    }

    #[test]
    fn a_slow_rate_wakes_when_a_whole_byte_is_back() {
        let (b, t0) = bucket(2);
        b.take(2, t0, 2);
        // An eighth of a second is a quarter of a byte: wait for half a second instead.
        assert_eq!(b.look(2, t0, false), Level::EmptyUntil(t0 + ms(500)));
        assert_eq!(b.look(2, t0 + ms(500), true), Level::Holds(1));
    }

    #[test]
    fn a_new_rate_finds_the_bucket_as_full_in_seconds_as_the_old_left_it() {
        let (b, t0) = bucket(1000);
        b.take(1000, t0, 500);
        b.set_rate(Some(10_000));
        assert_eq!(b.look(b.rate(), t0, false), Level::Holds(5000));
    }
}
