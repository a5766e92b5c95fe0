//! A per-thread time and stack budget for running jq programs.
//!
//! jaq has no step or time limit of its own, and a program such as `last(range(1e15))` or
//! `def f: [f]; f` would otherwise hold a thread forever or overflow its stack and abort the
//! process. Arithmetic in this crate, and the embedder's hook on jaq's term lookup (done once
//! per evaluation step), call [`tick`], which, while a budget is set on the current
//! thread, checks the deadline every few thousand steps and the remaining stack every few. When either runs out it unwinds with a private payload that
//! [`with_budget`] catches and turns into an [`Exceeded`] error; nothing else observes it.
//! Unwinding is safe here because every value a run touches is owned by that run; the compiled
//! program is immutable and shared.

use alloc::boxed::Box;
use core::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

/// Stack that must remain free: below this a run is stopped rather than risk an overflow.
const STACK_RESERVE: usize = 256 * 1024;

/// How often (in ticks, a power of two) the clock is read.
const CLOCK_EVERY: u32 = 4096;
/// How often (in ticks, a power of two) the stack is measured.
const STACK_EVERY: u32 = 8;

std::thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
}

/// Which budget a run exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// The wall-clock deadline passed.
    Time,
    /// The program recursed so deep that the thread's stack nearly ran out.
    Stack,
}

/// Runs `f` with a deadline; returns `Err` if the budget ran out before `f` returned.
/// Other panics from `f` propagate unchanged. Budgets nest: the inner one applies, and the
/// outer one is restored afterwards.
pub fn with_budget<R>(deadline: Instant, f: impl FnOnce() -> R) -> Result<R, Exceeded> {
    let outer = DEADLINE.with(|d| d.replace(Some(deadline)));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEADLINE.with(|d| d.set(outer));
    result.map_err(|payload| match payload.downcast::<Exceeded>() {
        Ok(exceeded) => *exceeded,
        Err(other) => panic::resume_unwind(other),
    })
}

/// Counts one unit of work; unwinds out of the current budgeted run when it is exhausted.
#[inline]
pub fn tick() {
    let n = TICKS.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n
    });
    if n.is_multiple_of(STACK_EVERY) {
        check(n);
    }
}

#[cold]
fn check(n: u32) {
    let Some(deadline) = DEADLINE.with(Cell::get) else {
        return;
    };
    if stacker::remaining_stack().is_some_and(|free| free < STACK_RESERVE) {
        // `resume_unwind` skips the panic hook: this is control flow, not a bug report.
        panic::resume_unwind(Box::new(Exceeded::Stack));
    }
    if n.is_multiple_of(CLOCK_EVERY) && Instant::now() >= deadline {
        panic::resume_unwind(Box::new(Exceeded::Time));
    }
}
