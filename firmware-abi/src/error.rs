//! Device error codes, latched in `ERR_CODE` when the device halts. With the code
//! the device latches `ERR_DESC` (ring index of the descriptor at fault) and
//! `ERR_ADDR` (the faulting address; what it means depends on the code).

macro_rules! error_codes {
    ($( $name:ident = $val:literal, $cname:literal, $doc:literal; )*) => {
        /// Why the device halted.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum ErrorCode {
            $( #[doc = $doc] $name = $val, )*
        }

        impl ErrorCode {
            /// Every code, in value order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$name, )* ];

            /// The register value back to a code.
            pub fn from_u32(v: u32) -> Option<Self> {
                match v { $( $val => Some(ErrorCode::$name), )* _ => None }
            }

            /// The C name suffix (`NPU_ERR_<name>`).
            pub const fn c_name(self) -> &'static str {
                match self { $( ErrorCode::$name => $cname, )* }
            }

            /// One line: what the code means and what ERR_ADDR holds.
            pub const fn doc(self) -> &'static str {
                match self { $( ErrorCode::$name => $doc, )* }
            }
        }
    };
}

error_codes! {
    None = 0, "NONE", "No error.";
    BadOpcode = 1, "BAD_OPCODE", "Unknown opcode. ERR_ADDR: the descriptor's physical address.";
    Reserved = 2, "RESERVED", "A reserved bit or field is nonzero. ERR_ADDR: the descriptor's physical address.";
    BadFlags = 3, "BAD_FLAGS", "A dependency flag the unit cannot use, or a flag the opcode does not define. ERR_ADDR: the descriptor's physical address.";
    BadField = 4, "BAD_FIELD", "A size or shape field is zero or exceeds the array. ERR_ADDR: the descriptor's physical address.";
    Misaligned = 5, "MISALIGNED", "An accumulator address, length or stride is not a multiple of 4, or a FENCE address of 4. ERR_ADDR: the offending address.";
    SpadRange = 6, "SPAD_RANGE", "A scratchpad access beyond SPAD_BYTES. ERR_ADDR: the first byte past the end of the access.";
    AccRange = 7, "ACC_RANGE", "An accumulator access beyond ACC_BYTES. ERR_ADDR: the first byte past the end of the access.";
    AddrRange = 8, "ADDR_RANGE", "A physical address beyond device memory. ERR_ADDR: the physical address.";
    XlatFault = 9, "XLAT_FAULT", "A device address with no valid translation (beyond XLAT_PAGES or entry not valid). ERR_ADDR: the device address.";
    XlatWrite = 10, "XLAT_WRITE", "A write through a read-only translation. ERR_ADDR: the device address.";
    BadRing = 11, "BAD_RING", "When RUN is set: RING_SIZE is not a power of two in 2..=MAX_RING, RING_BASE is not 32-byte aligned, or RING_TAIL >= RING_SIZE; or RING_TAIL >= RING_SIZE is written while RUN is set. ERR_DESC: RING_TAIL. ERR_ADDR: RING_BASE.";
    TokenOverflow = 12, "TOKEN_OVERFLOW", "A dependency-token counter would pass 255. ERR_ADDR: 0.";
    Deadlock = 13, "DEADLOCK", "Every unit with work waits for a token that no unit can send. ERR_ADDR: 0.";
    Watchdog = 14, "WATCHDOG", "No descriptor completed for WATCHDOG cycles while work was pending. ERR_ADDR: 0.";
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.c_name(), *self as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (i, &c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(c as u32, i as u32);
            assert_eq!(ErrorCode::from_u32(c as u32), Some(c));
        }
        assert_eq!(ErrorCode::from_u32(999), None);
    }
}
