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
//! full again. Looking costs one load and taking one compare-and-swap, per level. Bytes are
//! taken before the system call that moves them and what it did not move is given back, so
//! the look and the take are one step: calls in flight at once, on one thread or several,
//! never both spend the same bytes. Only a datagram runs a bucket into debt (one larger than
//! what was left goes whole), and the debt is waited off before the next byte moves. A
//! received datagram, whose size is known only once it is read, is charged right after the
//! read, in the same step as the look that let it through.
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
        self.level(rate, full_at, self.nanos(now), drained)
    }

    /// [`Bucket::look`] at a `full_at` already loaded, `now` in the bucket's nanoseconds.
    fn level(&self, rate: u64, full_at: u64, now: u64, drained: bool) -> Level {
        let owed = full_at.saturating_sub(now);
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
        let cost = cost(rate, bytes);
        let now = self.nanos(now);
        let _ = self
            .full_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |full_at| {
                Some(full_at.max(now).saturating_add(cost))
            });
    }

    /// Takes what a look at `now` allows of `want` bytes at `rate` (not 0), in one
    /// compare-and-swap with the look: up to what the bucket holds, or, `whole`, all of
    /// `want` (into debt) as long as it holds a byte. Empty, it takes nothing and says when
    /// to look again.
    fn take_up_to(
        &self,
        rate: u64,
        now: Instant,
        want: u64,
        drained: bool,
        whole: bool,
    ) -> Result<u64, Instant> {
        let at = self.nanos(now);
        let mut full_at = self.full_at.load(Ordering::Acquire);
        loop {
            let taken = match self.level(rate, full_at, at, drained) {
                Level::EmptyUntil(when) => return Err(when),
                Level::Holds(_) if whole => want,
                Level::Holds(holds) => want.min(holds),
            };
            let next = full_at.max(at).saturating_add(cost(rate, taken));
            match self.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(taken),
                Err(seen) => full_at = seen,
            }
        }
    }

    /// Gives back `bytes` taken at `rate` (not 0) that did not move.
    fn give_back(&self, rate: u64, bytes: u64) {
        let cost = cost(rate, bytes);
        let _ = self
            .full_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |full_at| {
                Some(full_at.saturating_sub(cost))
            });
    }
}

/// How far `bytes` push a bucket of `rate` (not 0) from full, in nanoseconds.
fn cost(rate: u64, bytes: u64) -> u64 {
    let cost = (u128::from(bytes) * u128::from(SECOND)).div_ceil(u128::from(rate));
    u64::try_from(cost).unwrap_or(u64::MAX)
}

/// Whether a `bytes-per-second` rate applies to `grant` now: a load of each rate.
pub(crate) fn is_limited(grant: &Grant) -> bool {
    let (instance, library) = grant.buckets();
    instance.rate() != 0 || library.is_some_and(|b| b.rate() != 0)
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
        is_limited(grant).then(|| Self::new(grant.clone()))
    }

    /// Takes up to `want` bytes from every bucket with a rate (all `want`, `whole`, while each
    /// holds a byte), each level in one step with its look: `want` when no rate is set; `Err`
    /// with when to look again, having taken nothing, when one is empty.
    fn take_levels(&mut self, want: usize, whole: bool) -> Result<usize, Instant> {
        let instance = &self.instance.bucket;
        let library = self.library.as_deref().map(|usage| &usage.bucket);
        let (instance_rate, library_rate) = (instance.rate(), library.map_or(0, Bucket::rate));
        self.limited = instance_rate != 0 || library_rate != 0;
        if !self.limited {
            return Ok(want);
        }
        let now = Instant::now();
        let mut taken = u64::try_from(want).unwrap_or(u64::MAX);
        if instance_rate != 0 {
            match instance.take_up_to(instance_rate, now, taken, self.drained, whole) {
                Ok(n) => taken = n,
                Err(at) => return Err(self.empty(at, instance_rate, false, now)),
            }
        }
        if let Some(library) = library.filter(|_| library_rate != 0) {
            let took = library.take_up_to(library_rate, now, taken, self.drained, whole);
            let spare = match took {
                Ok(n) => taken - n,
                Err(_) => taken,
            };
            if instance_rate != 0 && spare != 0 {
                instance.give_back(instance_rate, spare);
            }
            match took {
                Ok(n) => taken = n,
                Err(at) => return Err(self.empty(at, library_rate, true, now)),
            }
        }
        self.waiting = false;
        let taken = usize::try_from(taken).unwrap_or(usize::MAX);
        self.drained = taken < want;
        Ok(taken)
    }

    /// Whether every bucket holds a byte, taking nothing: `Err` with when to look again.
    fn look(&mut self) -> Result<(), Instant> {
        let instance = &self.instance.bucket;
        let library = self.library.as_deref().map(|usage| &usage.bucket);
        let (instance_rate, library_rate) = (instance.rate(), library.map_or(0, Bucket::rate));
        self.limited = instance_rate != 0 || library_rate != 0;
        if !self.limited {
            return Ok(());
        }
        let now = Instant::now();
        let levels = [
            (Some(instance), instance_rate, false),
            (library, library_rate, true),
        ];
        let mut empty: Option<(Instant, u64, bool)> = None;
        for (bucket, rate, by_library) in levels {
            let Some(bucket) = bucket.filter(|_| rate != 0) else {
                continue;
            };
            if let Level::EmptyUntil(at) = bucket.look(rate, now, self.drained)
                && empty.is_none_or(|(later, _, _)| at > later)
            {
                empty = Some((at, rate, by_library));
            }
        }
        match empty {
            None => {
                self.waiting = false;
                Ok(())
            }
            Some((at, rate, by_library)) => Err(self.empty(at, rate, by_library, now)),
        }
    }

    /// Notes that a bucket was found empty until `at`, logging the wait once.
    fn empty(&mut self, at: Instant, rate: u64, by_library: bool, now: Instant) -> Instant {
        self.drained = true;
        if !self.waiting {
            self.waiting = true;
            self.log_wait(rate, by_library, at.saturating_duration_since(now));
        }
        at
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

    /// Takes up to `want` bytes for a call about to move them: `want` when no rate is set,
    /// else no more than every bucket holds; 0 while a bucket is empty (its pollable wakes
    /// when it refills, [`Meter::ready`]). What the call does not move goes back
    /// ([`Meter::give_back`]).
    pub(crate) fn take(&mut self, want: usize) -> usize {
        self.take_levels(want, false).unwrap_or(0)
    }

    /// Takes all of a datagram's `bytes` if every bucket holds a byte (the rest is debt),
    /// else nothing: whether it took them.
    pub(crate) fn take_whole(&mut self, bytes: usize) -> bool {
        self.take_levels(bytes, true).is_ok()
    }

    /// As [`Meter::take`] for a poll-driven stream: `Pending` while a bucket is empty, with
    /// `cx` woken when it refills.
    pub(crate) fn poll_take(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<usize> {
        loop {
            let at = match self.take_levels(want, false) {
                Ok(n) => return Poll::Ready(n),
                Err(at) => tokio::time::Instant::from_std(at),
            };
            std::task::ready!(self.poll_sleep(cx, at));
        }
    }

    /// Waits until `at` on the meter's one timer, made at the first wait.
    fn poll_sleep(&mut self, cx: &mut Context<'_>, at: tokio::time::Instant) -> Poll<()> {
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                sleep.as_mut().reset(at);
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        sleep.as_mut().poll(cx)
    }

    /// Waits until every bucket holds a byte, taking nothing; at once when no rate is set.
    /// The timer lives in the caller's future, so waiting allocates nothing.
    pub(crate) async fn ready(&mut self) {
        while let Err(at) = self.look() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        }
    }

    /// Whether every bucket holds a byte now, taking nothing: a receive that may read one
    /// datagram, charged right after ([`Meter::charge`]).
    pub(crate) fn holds_any(&mut self) -> bool {
        self.look().is_ok()
    }

    /// Gives back bytes [`Meter::take`] or [`Meter::take_whole`] took that did not move.
    pub(crate) fn give_back(&self, bytes: usize) {
        self.each_limited(bytes, Bucket::give_back);
    }

    /// Counts `bytes` that moved, after a look allowed them, against every bucket with a
    /// rate. Bytes a look allowed with no rate stay uncounted should a reload set one
    /// between the two.
    pub(crate) fn charge(&self, bytes: usize) {
        let now = Instant::now();
        self.each_limited(bytes, |bucket, rate, bytes| bucket.take(rate, now, bytes));
    }

    /// Applies `apply` to every bucket with a rate, when the last look found one.
    fn each_limited(&self, bytes: usize, apply: impl Fn(&Bucket, u64, u64)) {
        if !self.limited || bytes == 0 {
            return;
        }
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let instance = &self.instance.bucket;
        let library = self.library.as_deref().map(|usage| &usage.bucket);
        for bucket in [Some(instance), library].into_iter().flatten() {
            let rate = bucket.rate();
            if rate != 0 {
                apply(bucket, rate, bytes);
            }
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
    fn takes_in_flight_at_once_never_spend_the_same_bytes() {
        let (b, t0) = bucket(1000);
        assert_eq!(b.take_up_to(1000, t0, 600, false, false), Ok(600));
        assert_eq!(b.take_up_to(1000, t0, 600, false, false), Ok(400));
        assert_eq!(b.take_up_to(1000, t0, 600, false, false), Err(t0 + ms(125)));
        // What a read did not move goes back for the next.
        b.give_back(1000, 300);
        assert_eq!(b.take_up_to(1000, t0, 600, false, false), Ok(300));
    }

    #[test]
    fn a_whole_datagram_runs_into_debt_once_and_the_next_waits() {
        let (b, t0) = bucket(1000);
        assert_eq!(b.take_up_to(1000, t0, 100, false, true), Ok(100));
        assert_eq!(b.take_up_to(1000, t0, 3000, false, true), Ok(3000));
        assert!(b.take_up_to(1000, t0, 1, false, true).is_err());
        assert_eq!(
            b.look(1000, t0 + ms(2099), false),
            Level::EmptyUntil(t0 + ms(2225))
        );
    }

    #[test]
    fn a_new_rate_finds_the_bucket_as_full_in_seconds_as_the_old_left_it() {
        let (b, t0) = bucket(1000);
        b.take(1000, t0, 500);
        b.set_rate(Some(10_000));
        assert_eq!(b.look(b.rate(), t0, false), Level::Holds(5000));
    }
}
