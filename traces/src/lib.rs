//! Trace events and writers.
