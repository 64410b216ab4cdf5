//! What an instance, and each library inside it, holds now against its limits.
//!
//! A count is taken when a socket, a connection or a lookup starts and given back when it
//! ends ([`Held`] drops). The limits themselves are read from the current policy at each
//! take, so a reload that lowers one refuses the next take, never what is already open.

use crate::rate::Bucket;
use capnet_policy::{Limit, Limits};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

/// The limits counted per holder; [`Limit::StreamBuffer`] and [`Limit::Datagrams`] shape each
/// call and are read where the call is served; [`Limit::BytesPerSecond`] is the holder's
/// [`Bucket`].
const COUNTED: [Limit; 4] = [
    Limit::Sockets,
    Limit::Connections,
    Limit::Lookups,
    Limit::CallsInFlight,
];

/// What one instance, or one library of it, holds open now.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    counts: [AtomicU64; COUNTED.len()],
    /// Wakers of 0.3 listen streams waiting for a socket to be given back.
    waiting: Mutex<Vec<Waker>>,
    anyone_waiting: AtomicBool,
    /// The bytes it may still move under `bytes-per-second`.
    pub(crate) bucket: Bucket,
}

fn slot(limit: Limit) -> usize {
    COUNTED
        .iter()
        .position(|l| *l == limit)
        .expect("only counted limits are taken")
}

impl Usage {
    /// Takes one of `limit` if fewer than `max` are held.
    fn try_take(&self, limit: Limit, max: u64) -> bool {
        self.counts[slot(limit)]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Undoes a take that was never used: room that was never seen taken wakes no one, so a
    /// waiter whose own attempt is undone does not wake itself forever.
    fn untake(&self, limit: Limit) {
        self.counts[slot(limit)].fetch_sub(1, Ordering::SeqCst);
    }

    fn give_back(&self, limit: Limit) {
        self.counts[slot(limit)].fetch_sub(1, Ordering::SeqCst);
        if self.anyone_waiting.load(Ordering::SeqCst) {
            let wakers = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                self.anyone_waiting.store(false, Ordering::SeqCst);
                std::mem::take(&mut *waiting)
            };
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// How many of `limit` are held now.
    #[cfg(test)]
    pub(crate) fn held(&self, limit: Limit) -> u64 {
        self.counts[slot(limit)].load(Ordering::Acquire)
    }

    /// Wakes `cx` when something is given back.
    pub(crate) fn wake_on_give_back(&self, cx: &Context<'_>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        self.anyone_waiting.store(true, Ordering::SeqCst);
    }
}

/// Where a take is counted: the instance, and the library when the grant is a library's.
pub(crate) struct Holders<'a> {
    pub(crate) instance: (&'a Arc<Usage>, &'a Limits),
    pub(crate) library: Option<(&'a Arc<Usage>, Option<&'a Limits>)>,
}

/// Which level refused a take, for the log and the error.
pub(crate) struct Refused {
    pub(crate) limit: Limit,
    pub(crate) max: u64,
    /// Whether the library's own limit refused it, not the instance's.
    pub(crate) by_library: bool,
}

/// One socket, connection or lookup counted against its holders until it drops.
#[derive(Debug)]
pub(crate) struct Held {
    limit: Limit,
    instance: Arc<Usage>,
    library: Option<Arc<Usage>>,
    /// Set by [`Held::undo`]: the count goes back without waking anyone.
    undone: bool,
}

impl Held {
    /// Takes one of `limit` at every level of `holders`, or none when a level is full.
    pub(crate) fn take(limit: Limit, holders: Holders<'_>) -> Result<Held, Refused> {
        let (instance, instance_limits) = holders.instance;
        let mut library = None;
        if let Some((usage, limits)) = holders.library {
            // Counted even without a limit of its own, so a reload that adds one sees what
            // the library holds.
            let max = limits.and_then(|l| l.get(limit)).unwrap_or(u64::MAX);
            if !usage.try_take(limit, max) {
                return Err(Refused {
                    limit,
                    max,
                    by_library: true,
                });
            }
            library = Some(usage.clone());
        }
        let max = instance_limits
            .get(limit)
            .or_else(|| limit.default_value())
            .unwrap_or(u64::MAX);
        if !instance.try_take(limit, max) {
            if let Some(usage) = &library {
                usage.untake(limit);
            }
            return Err(Refused {
                limit,
                max,
                by_library: false,
            });
        }
        Ok(Held {
            limit,
            instance: instance.clone(),
            library,
            undone: false,
        })
    }

    /// Gives the count back as if it had never been taken: for one of several takes that
    /// belong together when a later one is refused.
    pub(crate) fn undo(mut self) {
        self.undone = true;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let give_back = match self.undone {
            true => Usage::untake,
            false => Usage::give_back,
        };
        if let Some(usage) = &self.library {
            give_back(usage, self.limit);
        }
        give_back(&self.instance, self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(limit: Limit, max: u64) -> Limits {
        let mut l = Limits::defaults();
        l.set(limit, max);
        l
    }

    #[test]
    fn a_full_level_refuses_and_a_drop_makes_room() {
        let usage = Arc::new(Usage::default());
        let two = limits(Limit::Sockets, 2);
        let take = || {
            Held::take(
                Limit::Sockets,
                Holders {
                    instance: (&usage, &two),
                    library: None,
                },
            )
        };
        let first = take().ok().unwrap();
        let _second = take().ok().unwrap();
        assert!(take().is_err());
        drop(first);
        assert!(take().is_ok());
    }

    #[test]
    fn a_library_take_counts_at_both_levels_and_a_refusal_takes_nothing() {
        let instance = Arc::new(Usage::default());
        let library = Arc::new(Usage::default());
        let roomy = Limits::defaults();
        let mut one = Limits::NONE;
        one.set(Limit::Connections, 1);
        let take = || {
            Held::take(
                Limit::Connections,
                Holders {
                    instance: (&instance, &roomy),
                    library: Some((&library, Some(&one))),
                },
            )
        };
        let held = take().ok().unwrap();
        assert_eq!(
            (
                instance.held(Limit::Connections),
                library.held(Limit::Connections)
            ),
            (1, 1)
        );
        let refused = take().err().unwrap();
        assert!(refused.by_library && refused.max == 1);
        assert_eq!(instance.held(Limit::Connections), 1);
        drop(held);
        assert_eq!(
            (
                instance.held(Limit::Connections),
                library.held(Limit::Connections)
            ),
            (0, 0)
        );
    }
}
