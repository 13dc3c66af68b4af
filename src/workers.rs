//! Thread per core: ballast serves on `server.workers` OS threads, each running its own
//! single-threaded tokio runtime with its own accept loop on the shared listening socket.
//!
//! A request lives and dies on the worker that accepted its connection: the handler, the
//! pipeline, the upstream connection (each worker has its own pool, see [`PerWorker`]) and the
//! response all run on one thread, so no request pays for waking another thread or moving a
//! task between cores. On a loopback benchmark that is about 35 µs of CPU and 0.04 ms of
//! latency per request less than tokio's work-stealing scheduler (benches/README.md, "What
//! moved the numbers").
//!
//! The price: a connection stays on its worker, so one busy HTTP/2 connection uses one core.
//! State shared by every request (config, metrics, breakers, cache, limits) is behind `Arc`s
//! exactly as before; only the upstream connection pools are per worker.
//!
//! Worker 0 is the thread that called [`Gateway::serve`](crate::server::Gateway::serve); it also
//! runs the operator listener and the shutdown signal. In-process test gateways start their
//! workers the same way (`tests/it/workers.rs` covers it).

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroUsize;

use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running on this thread: 0 on any thread that is not a worker.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// One per core, the default of `server.workers`.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// A value per worker (e.g. an HTTP client and its connection pool); [`get`](Self::get) picks
/// the one of the worker running the caller.
pub struct PerWorker<T> {
    first: T,
    rest: Box<[T]>,
}

impl<T> PerWorker<T> {
    /// `count` values (at least one) made by `make(index)`.
    pub fn try_new<E>(
        count: usize,
        mut make: impl FnMut(usize) -> Result<T, E>,
    ) -> Result<Self, E> {
        let first = make(0)?;
        let rest = (1..count).map(make).collect::<Result<_, E>>()?;
        Ok(Self { first, rest })
    }

    pub fn get(&self) -> &T {
        match current() % (self.rest.len() + 1) {
            0 => &self.first,
            index => self.rest.get(index - 1).unwrap_or(&self.first),
        }
    }
}

/// Runs `work` on a new OS thread named `ballast-wk-INDEX` with its own single-threaded
/// runtime, as worker `index`. The returned receiver resolves when the thread is done (also
/// when its runtime could not start, which is logged).
pub fn spawn<F, W>(index: usize, work: W) -> std::io::Result<oneshot::Receiver<()>>
where
    W: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    let (done, finished) = oneshot::channel();
    // Short enough for Linux's 15-byte thread names (what top and ps show) up to index 1023.
    std::thread::Builder::new().name(format!("ballast-wk-{index}")).spawn(move || {
        INDEX.with(|cell| cell.set(index));
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(work()),
            Err(err) => tracing::error!(worker = index, error = %err, "cannot start a worker"),
        }
        let _ = done.send(());
    })?;
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_its_own_value_and_other_threads_the_first() {
        let values = PerWorker::try_new(3, |index| Ok::<_, ()>(index * 10)).unwrap();
        assert_eq!(*values.get(), 0, "a thread that is not a worker uses worker 0's value");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for index in 0..3 {
            let finished = spawn(index, move || async move {
                assert_eq!(current(), index);
                let name = std::thread::current().name().map(str::to_owned);
                assert_eq!(name, Some(format!("ballast-wk-{index}")));
            })
            .unwrap();
            runtime.block_on(finished).unwrap();
        }
        let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let values = std::sync::Arc::new(values);
        for index in 0..3 {
            let (values, seen) = (std::sync::Arc::clone(&values), seen.clone());
            let finished = spawn(index, move || async move {
                seen.send(*values.get()).unwrap();
            })
            .unwrap();
            runtime.block_on(finished).unwrap();
        }
        drop(seen);
        let mut got = Vec::new();
        while let Ok(value) = seen_rx.try_recv() {
            got.push(value);
        }
        assert_eq!(got, [0, 10, 20]);
    }

    #[test]
    fn at_least_one_value_is_made() {
        let values = PerWorker::try_new(0, Ok::<_, ()>).unwrap();
        assert_eq!(*values.get(), 0);
    }

    #[test]
    fn a_failure_to_make_a_value_is_returned() {
        let made = PerWorker::try_new(2, |index| if index == 1 { Err("no") } else { Ok(index) });
        assert_eq!(made.err(), Some("no"));
    }
}
