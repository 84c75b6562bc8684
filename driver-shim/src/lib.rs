//! npukit driver shim: the part a kernel driver plays, over any [`npukit_sim::Device`].
//!
//! * [`uapi`]: the accel ioctl ABI (`include/npukit_accel.h` in Rust).
pub mod uapi;
