//! Errors as the kernel returns them: an errno. Every ioctl of the shim fails
//! with one of these, never with a panic.

use core::fmt;

/// A positive errno value (`EINVAL`, `ENOENT`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const E2BIG: Errno = Errno(libc::E2BIG);
    pub const ETIMEDOUT: Errno = Errno(libc::ETIMEDOUT);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);

    /// The symbolic name (`"EINVAL"`), or the number.
    pub fn name(self) -> String {
        let known = [
            (Self::EPERM, "EPERM"),
            (Self::ENOENT, "ENOENT"),
            (Self::EIO, "EIO"),
            (Self::EBADF, "EBADF"),
            (Self::ENOMEM, "ENOMEM"),
            (Self::EFAULT, "EFAULT"),
            (Self::EBUSY, "EBUSY"),
            (Self::ENODEV, "ENODEV"),
            (Self::EINVAL, "EINVAL"),
            (Self::EMFILE, "EMFILE"),
            (Self::ENOTTY, "ENOTTY"),
            (Self::ENOSPC, "ENOSPC"),
            (Self::E2BIG, "E2BIG"),
            (Self::ETIMEDOUT, "ETIMEDOUT"),
            (Self::EOPNOTSUPP, "EOPNOTSUPP"),
        ];
        known
            .iter()
            .find(|(e, _)| *e == self)
            .map_or_else(|| format!("errno {}", self.0), |(_, n)| n.to_string())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::error::Error for Errno {}

/// The result of an ioctl.
pub type IoctlResult<T = ()> = Result<T, Errno>;
