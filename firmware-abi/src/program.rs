//! A builder for command streams.
