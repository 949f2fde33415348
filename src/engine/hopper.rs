//! The hopper: a bounded buffer of one campaign's next due contacts, refilled in batches from the
//! store's indexed hopper queries (VICIdial's "hopper"), so the cost of the next dial does not
//! depend on the length of the list. It holds no authority: every contact taken from it is still
//! checked by the core (`check_due`: DNC, windows, attempt limits) at plan time and by the claim
//! transaction, so a contact that changed while buffered is refused or skipped, never dialled
//! twice.

use crate::core::ContactId;
use crate::core::window::CallingWindow;
use crate::store::{DueContact, Store, StoreError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Buffered contacts older than this are dropped and read again, so a template field or a DNC
/// flag seen at plan time is never more than this old.
const MAX_AGE: Duration = Duration::from_secs(30);

/// A zone list that has dialable contacts.
#[derive(Clone, Debug)]
pub(crate) struct ZoneDue {
    /// As stored in `contacts.timezone` (`&`-joined IANA names).
    pub stored: String,
    /// The parsed zones; every one must be open for a dial.
    pub zones: Vec<Tz>,
    /// Earliest `next_attempt_at` (UTC) among its dialable contacts.
    pub due: DateTime<Utc>,
}

/// The buffer of one campaign runner.
#[derive(Debug)]
pub(crate) struct Hopper {
    /// Buffered contacts, with when each was read.
    queue: VecDeque<(Instant, DueContact)>,
    ids: HashSet<ContactId>,
    capacity: usize,
    /// The zone lists with dialable contacts, as of the last refresh.
    zones: Vec<ZoneDue>,
}

impl Hopper {
    /// A hopper sized for `calls_per_second`: about four seconds of dials, at least 100 and at
    /// most 2,000 contacts.
    pub(crate) fn new(calls_per_second: u32) -> Hopper {
        Hopper {
            queue: VecDeque::new(),
            ids: HashSet::new(),
            capacity: (calls_per_second as usize * 4).clamp(100, 2000),
            zones: Vec::new(),
        }
    }

    /// Contacts buffered.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Drops everything buffered (the campaign changed, or a list it reads did); the next take
    /// reads the store again.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.ids.clear();
    }

    /// Resizes for a new CPS.
    pub(crate) fn resize(&mut self, calls_per_second: u32) {
        self.capacity = Hopper::new(calls_per_second).capacity;
    }

    /// The zone lists with dialable contacts, as of the last refresh.
    pub(crate) fn zones(&self) -> &[ZoneDue] {
        &self.zones
    }

    /// Reads the zone lists again (one index seek per zone list) and, when fewer than `wanted`
    /// or under half the capacity are buffered, appends the next due contacts of the zones open
    /// now, in hopper order.
    ///
    /// Errors: [`StoreError`] from the store; the buffer is left as it was.
    pub(crate) async fn refill(
        &mut self,
        store: &Store,
        campaign: &str,
        window: &CallingWindow,
        parse: impl Fn(&str) -> Vec<Tz>,
        now: DateTime<Utc>,
        wanted: usize,
    ) -> Result<(), StoreError> {
        self.zones = store
            .hopper_zones(campaign)
            .await?
            .into_iter()
            .map(|(stored, due)| ZoneDue {
                zones: parse(&stored),
                stored,
                due,
            })
            .collect();
        if self.queue.len() >= wanted.min(self.capacity) && self.queue.len() >= self.capacity / 2 {
            return Ok(());
        }
        let open: Vec<String> = self
            .zones
            .iter()
            .filter(|z| z.due <= now && window.is_open_all(now, &z.zones))
            .map(|z| z.stored.clone())
            .collect();
        let room = self.capacity.saturating_sub(self.queue.len());
        if open.is_empty() || room == 0 {
            return Ok(());
        }
        let batch = store.hopper_batch(campaign, now, &open, room, &self.ids).await?;
        let read = Instant::now();
        for c in batch {
            if self.ids.insert(c.id) {
                self.queue.push_back((read, c));
            }
        }
        Ok(())
    }

    /// Takes up to `n` contacts from the front whose zones are all open at `now`. A contact whose
    /// window has closed since it was buffered, or that was read more than 30 s ago, is dropped:
    /// it is still due in the store, which hands it out again.
    pub(crate) fn take(
        &mut self,
        n: usize,
        now: DateTime<Utc>,
        window: &CallingWindow,
        parse: impl Fn(&str) -> Vec<Tz>,
    ) -> Vec<(Instant, DueContact)> {
        let mut out = Vec::with_capacity(n.min(self.queue.len()));
        while out.len() < n {
            let Some((read, c)) = self.queue.pop_front() else {
                break;
            };
            self.ids.remove(&c.id);
            if read.elapsed() <= MAX_AGE && c.next_attempt_at <= now && window.is_open_all(now, &parse(&c.timezone)) {
                out.push((read, c));
            }
        }
        out
    }

    /// Puts contacts that were taken but neither planned nor refused back at the front, in their
    /// order, so the next take offers them first.
    pub(crate) fn put_back(&mut self, unused: Vec<(Instant, DueContact)>) {
        for (read, c) in unused.into_iter().rev() {
            if self.ids.insert(c.id) {
                self.queue.push_front((read, c));
            }
        }
    }
}
