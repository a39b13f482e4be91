//! When a source builds after a change: at once when the change comes after a quiet period (the
//! leading edge: one edit is served without waiting for anything), and otherwise once the
//! changes have stopped for the debounce period, or at the latest `max_delay` after the first
//! change still waiting (a burst is one build, and a burst that never ends still gets built).
//! What matters to the status writer only (a status written: mostly the echo of the gateway's
//! own writes, thousands of them after a start) is published within the debounce period and
//! never delays a change, nor makes one that follows it wait.
//!
//! Pure: the caller says what time it is. Generic over the clock, so the Kubernetes source can
//! use tokio's (which its tests may pause) and the directory source the standard one.

use std::{
    ops::{Add, Sub},
    time::Duration,
};

/// The debounce state of one source.
#[derive(Clone, Debug)]
pub struct Pacer<I> {
    debounce: Duration,
    max_delay: Duration,
    /// The last change seen, built or not.
    last_change: Option<I>,
    /// The first change not built yet, and whether it came after a quiet period.
    pending: Option<Pending<I>>,
    /// The first status-only change not published yet.
    noted: Option<I>,
}

#[derive(Clone, Copy, Debug)]
struct Pending<I> {
    since: I,
    leading: bool,
}

impl<I> Pacer<I>
where
    I: Copy + Ord + Add<Duration, Output = I> + Sub<I, Output = Duration>,
{
    pub fn new(debounce: Duration, max_delay: Duration) -> Self {
        Self {
            debounce,
            max_delay,
            last_change: None,
            pending: None,
            noted: None,
        }
    }

    /// Something a build would read changed at `now`.
    pub fn changed(&mut self, now: I) {
        let quiet_before = self
            .last_change
            .is_none_or(|last| now - last >= self.debounce);
        self.last_change = Some(now);
        if self.pending.is_none() {
            self.pending = Some(Pending {
                since: now,
                leading: quiet_before,
            });
        }
    }

    /// Something only the status writer reads changed at `now`: published with the next change,
    /// or on its own `debounce` after the first such one.
    pub fn noted(&mut self, now: I) {
        self.noted.get_or_insert(now);
    }

    /// When to build what changed, if anything did: it may already be past.
    pub fn due(&self) -> Option<I> {
        let Some(pending) = self.pending else {
            return self.noted.map(|since| since + self.debounce);
        };
        if pending.leading {
            return Some(pending.since);
        }
        let quiet = self
            .last_change
            .map_or(pending.since, |last| last + self.debounce);
        Some(quiet.min(pending.since + self.max_delay))
    }

    /// Whether a build is due at `now`.
    pub fn is_due(&self, now: I) -> bool {
        self.due().is_some_and(|due| due <= now)
    }

    /// Everything changed so far has been built (or looked at and found unchanged).
    pub fn built(&mut self) {
        self.pending = None;
        self.noted = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(100);
    const MAX_DELAY: Duration = Duration::from_millis(1000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A pacer that has just built a change made at the instant returned.
    fn just_built() -> (Instant, Pacer<Instant>) {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(DEBOUNCE, MAX_DELAY);
        pacer.changed(t0);
        pacer.built();
        (t0, pacer)
    }

    #[test]
    fn nothing_changed_nothing_due() {
        let pacer = Pacer::<Instant>::new(DEBOUNCE, MAX_DELAY);
        assert_eq!(pacer.due(), None);
    }

    #[test]
    fn the_first_change_after_quiet_is_built_at_once() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(DEBOUNCE, MAX_DELAY);
        pacer.changed(t0);
        assert_eq!(pacer.due(), Some(t0), "the very first change");
        pacer.built();
        assert_eq!(pacer.due(), None);
        // Long after: leading again.
        pacer.changed(t0 + ms(500));
        assert!(pacer.is_due(t0 + ms(500)));
    }

    #[test]
    fn changes_during_a_burst_wait_for_quiet() {
        let (t0, mut pacer) = just_built();
        // Right behind the one just built: coalesced with whatever follows it.
        pacer.changed(t0 + ms(10));
        assert_eq!(pacer.due(), Some(t0 + ms(110)));
        pacer.changed(t0 + ms(60));
        assert_eq!(pacer.due(), Some(t0 + ms(160)), "the quiet period restarts");
        assert!(!pacer.is_due(t0 + ms(159)));
        assert!(pacer.is_due(t0 + ms(160)));
    }

    #[test]
    fn changes_seen_before_the_leading_build_join_it() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(DEBOUNCE, MAX_DELAY);
        pacer.changed(t0);
        pacer.changed(t0 + ms(1));
        assert_eq!(pacer.due(), Some(t0), "still built at once, with both");
    }

    #[test]
    fn status_echoes_never_hold_a_change_back() {
        let (t0, mut pacer) = just_built();
        // The echoes of the statuses written for that build, one every 5 ms, on and on.
        let mut t = t0;
        for _ in 0..100 {
            t += ms(5);
            pacer.noted(t);
        }
        assert_eq!(
            pacer.due(),
            Some(t0 + ms(5) + DEBOUNCE),
            "published within debounce"
        );
        // A change amid them, long after the last change: built at once, the echoes with it.
        pacer.changed(t);
        assert_eq!(pacer.due(), Some(t));
        pacer.built();
        pacer.noted(t + ms(1));
        pacer.noted(t + ms(2));
        assert_eq!(pacer.due(), Some(t + ms(1) + DEBOUNCE));
        // A change right behind another is still a burst, echoes or not.
        pacer.changed(t + ms(20));
        assert_eq!(pacer.due(), Some(t + ms(120)));
    }

    #[test]
    fn a_burst_that_never_ends_is_built_after_max_delay() {
        let (t0, mut pacer) = just_built();
        let mut t = t0;
        let mut builds = Vec::new();
        // A change every 50 ms for three seconds: never a quiet period.
        for _ in 0..60 {
            t += ms(50);
            pacer.changed(t);
            if pacer.is_due(t) {
                builds.push(t - t0);
                pacer.built();
            }
        }
        assert_eq!(builds, [ms(1050), ms(2100)], "one build per max_delay");
    }
}
