//! The cycle-accurate NPU model.
