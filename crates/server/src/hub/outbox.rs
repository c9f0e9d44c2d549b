//! A session's outbox: a bounded queue from the hub and the session's own handlers to its
//! sending side, and the session's close code.
//!
//! It holds no memory while empty (an idle connection should cost little): the queue grows as
//! items come and is given back once drained, unlike a channel's preallocated blocks.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::session_tx::Out;

/// What `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue was full: the session is now closed as too slow.
    Full,
    /// The session is closed or its writer is gone.
    Closed,
}

#[derive(Default)]
struct State {
    items: VecDeque<Out>,
    close: Option<u16>,
    writer_gone: bool,
}

/// One session's queue and close code; shared by the hub and the session's task.
pub struct Outbox {
    state: Mutex<State>,
    cap: usize,
    /// Wakes the session: items or a close.
    items: Notify,
    /// Wakes whoever waits for the close (a session's stalled write).
    closing: Notify,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state();
        f.debug_struct("Outbox")
            .field("queued", &st.items.len())
            .field("close", &st.close)
            .finish()
    }
}

impl Outbox {
    /// An empty outbox that holds at most `cap` items.
    pub fn new(cap: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            cap: cap.max(1),
            items: Notify::new(),
            closing: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `out` without waiting; a full queue closes the session with `full_code`.
    pub fn push(&self, out: Out, full_code: u16) -> Pushed {
        let mut st = self.state();
        if st.close.is_some() || st.writer_gone {
            return Pushed::Closed;
        }
        if st.items.len() >= self.cap {
            drop(st);
            self.close(full_code);
            return Pushed::Full;
        }
        st.items.push_back(out);
        drop(st);
        self.items.notify_one();
        Pushed::Queued
    }

    /// Closes the session with `code` (the first code wins).
    pub fn close(&self, code: u16) {
        {
            let mut st = self.state();
            if st.close.is_some() {
                return;
            }
            st.close = Some(code);
        }
        self.items.notify_one();
        self.closing.notify_waiters();
    }

    /// The close code, if the session is closed.
    pub fn close_code(&self) -> Option<u16> {
        self.state().close
    }

    /// Waits until the session is closed; returns its code.
    pub async fn closed(&self) -> u16 {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close between the two is not missed.
            notified.as_mut().enable();
            if let Some(code) = self.close_code() {
                return code;
            }
            notified.await;
        }
    }

    /// The next item, or the close code once the session is closed (what is still queued is
    /// then dropped); `None` if nothing is queued.
    pub fn try_next(&self) -> Option<Result<Out, u16>> {
        let mut st = self.state();
        if let Some(code) = st.close {
            st.items = VecDeque::new();
            return Some(Err(code));
        }
        let out = st.items.pop_front()?;
        // Most sessions are idle most of the time: an allocation per burst costs less than
        // holding one per connection.
        if st.items.is_empty() {
            st.items = VecDeque::new();
        }
        Some(Ok(out))
    }

    /// Waits for the next item or the close, as `try_next`.
    pub async fn next(&self) -> Result<Out, u16> {
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            // `notify_one` keeps a permit when nobody waits, so a push before this is seen.
            self.items.notified().await;
        }
    }

    /// The session has ended: later pushes are refused and queued items dropped.
    pub fn writer_gone(&self) {
        let mut st = self.state();
        st.writer_gone = true;
        st.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Out {
        Out::Frame(s.into())
    }

    fn text(next: Option<Result<Out, u16>>) -> String {
        match next {
            Some(Ok(Out::Frame(f))) => f.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_memory_is_given_back() {
        let o = Outbox::new(100);
        for _ in 0..40 {
            assert_eq!(o.push(frame("a"), 4009), Pushed::Queued);
        }
        o.push(frame("b"), 4009);
        for _ in 0..40 {
            assert_eq!(text(o.try_next()), "a");
        }
        assert!(matches!(o.next().await, Ok(Out::Frame(f)) if f == "b"));
        assert!(o.try_next().is_none());
        assert_eq!(
            o.state().items.capacity(),
            0,
            "an emptied queue holds no memory"
        );
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_session_and_the_close_wins_over_items() {
        let o = Outbox::new(2);
        o.push(frame("a"), 4009);
        o.push(frame("b"), 4009);
        assert_eq!(o.push(frame("c"), 4009), Pushed::Full);
        assert_eq!(o.push(frame("d"), 4009), Pushed::Closed);
        assert_eq!(o.next().await.err(), Some(4009));
        o.close(1000);
        assert_eq!(o.closed().await, 4009, "the first code wins");
    }

    #[tokio::test]
    async fn waiters_wake_on_a_push_and_on_a_close() {
        let o = std::sync::Arc::new(Outbox::new(4));
        let taker = {
            let o = o.clone();
            tokio::spawn(async move { o.next().await.is_ok() })
        };
        let reader = {
            let o = o.clone();
            tokio::spawn(async move { o.closed().await })
        };
        tokio::task::yield_now().await;
        o.push(frame("a"), 4009);
        assert!(taker.await.expect("task"));
        o.close(4001);
        assert_eq!(reader.await.expect("task"), 4001);
        o.writer_gone();
        assert_eq!(o.push(frame("b"), 4009), Pushed::Closed);
    }
}
