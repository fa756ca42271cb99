//! Pieces of the in-container checker that do not touch the system: the parsers of
//! `/proc/self/mountinfo`, `/proc/self/status` and `/proc/self/cgroup`. They live in the
//! library so that unit tests can feed them text, and so that the conformance suite can use
//! the same definitions when it reads a report back.

pub mod parse;
