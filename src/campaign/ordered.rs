//! An ordered parallel map over a stream, for work that is independent per item (reading one
//! CSV row's phone numbers) between a sequential producer (the file reader) and a sequential
//! consumer (duplicate merging, the store).
//!
//! Built on std's scoped threads and bounded channels: item `i` goes to worker `i mod n` and is
//! taken back from that worker's output in the same turn, so the consumer sees the outputs in
//! the producer's order whatever the number of workers, and no reordering buffer is needed.
//! Every channel holds at most [`DEPTH`] items, so memory is bounded by the item size, not by
//! the length of the stream. When the consumer stops early, the workers and then the producer
//! see their channels closed and stop too.

use std::sync::mpsc::{Receiver, sync_channel};

/// Items buffered in each channel (producer → worker, worker → consumer).
pub const DEPTH: usize = 2;

/// Worker threads to use by default: the machine's available parallelism (1 when unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `produce` on a thread of its own, `work` on each item on `threads` worker threads
/// (at least 1), and `consume` on the calling thread over the outputs in the order the items
/// were produced. `produce` is given a `send` function that returns `false` once nobody
/// listens any more (the consumer stopped): it should then stop producing.
///
/// Returns what `produce` and `consume` returned. A panic in any of the threads is resumed on
/// the caller once all of them ended.
pub fn ordered_map<In, Out, R, S, P, W, C>(threads: usize, produce: P, work: W, consume: C) -> (R, S)
where
    In: Send,
    Out: Send,
    R: Send,
    P: FnOnce(&mut dyn FnMut(In) -> bool) -> R + Send,
    W: Fn(In) -> Out + Sync,
    C: FnOnce(&mut dyn Iterator<Item = Out>) -> S,
{
    let n = threads.max(1);
    std::thread::scope(|s| {
        let (in_tx, in_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| sync_channel::<In>(DEPTH)).unzip();
        let (out_tx, out_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| sync_channel::<Out>(DEPTH)).unzip();
        let producer = s.spawn(move || {
            let mut next = 0usize;
            let mut send = |item: In| {
                let ok = in_tx[next % n].send(item).is_ok();
                next = next.wrapping_add(1);
                ok
            };
            produce(&mut send)
        });
        let work = &work;
        for (rx, tx) in in_rx.into_iter().zip(out_tx) {
            s.spawn(move || {
                for item in rx {
                    if tx.send(work(item)).is_err() {
                        break;
                    }
                }
            });
        }
        let mut outputs = InOrder {
            rx: out_rx,
            next: 0,
            done: false,
        };
        let consumed = consume(&mut outputs);
        drop(outputs);
        let produced = match producer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (produced, consumed)
    })
}

/// The workers' outputs, taken from worker `i mod n` for the `i`-th item.
struct InOrder<T> {
    rx: Vec<Receiver<T>>,
    next: usize,
    done: bool,
}

impl<T> Iterator for InOrder<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        let n = self.rx.len();
        match self.rx[self.next % n].recv() {
            Ok(item) => {
                self.next = self.next.wrapping_add(1);
                Some(item)
            }
            Err(_) => {
                // That worker got no item `next`: the producer ended (or a worker panicked,
                // which the scope then resumes).
                self.done = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn squares(threads: usize, items: u64, stop_after: Option<usize>) -> (u64, Vec<u64>) {
        ordered_map(
            threads,
            |send| {
                let mut sent = 0;
                for i in 0..items {
                    if !send(i) {
                        break;
                    }
                    sent += 1;
                }
                sent
            },
            |i| {
                // Uneven work, so that workers finish out of order.
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                i * i
            },
            |out| match stop_after {
                Some(k) => out.take(k).collect(),
                None => out.collect(),
            },
        )
    }

    proptest! {
        #[test]
        fn outputs_come_in_input_order_for_any_thread_count(threads in 1usize..9, items in 0u64..300) {
            let (sent, out) = squares(threads, items, None);
            prop_assert_eq!(sent, items);
            prop_assert_eq!(out, (0..items).map(|i| i * i).collect::<Vec<_>>());
        }

        #[test]
        fn a_consumer_that_stops_stops_the_producer(threads in 1usize..5, k in 0usize..20) {
            let (sent, out) = squares(threads, 1_000_000, Some(k));
            prop_assert_eq!(out.len(), k);
            // At most the items in flight were produced beyond what was consumed.
            prop_assert!(sent < 1_000_000);
            prop_assert!(sent as usize <= k + threads * (2 * DEPTH + 2) + 1);
        }
    }

    #[test]
    fn default_threads_is_at_least_one() {
        assert!(default_threads() >= 1);
    }
}
