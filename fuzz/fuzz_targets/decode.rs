//! Descriptor decode: any 32 bytes either decode or give a typed error; a
//! decoded descriptor encodes back to the same bytes (modulo nothing: decode
//! rejects every bit it would not write back), survives the text assembler
//! round trip, and validates against random limits without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npukit_abi::program::Program;
use npukit_abi::{asm, Descriptor, ErrorCode, Limits, DESC_BYTES};

fuzz_target!(|data: &[u8]| {
    if data.len() < DESC_BYTES {
        return;
    }
    let mut b = [0u8; DESC_BYTES];
    b.copy_from_slice(&data[..DESC_BYTES]);
    let Ok(d) = Descriptor::decode(&b) else {
        return;
    };
    assert_eq!(
        d.encode(),
        b,
        "decode then encode changed the bytes of {d:?}"
    );
    let text = asm::disassemble_one(&d);
    match asm::assemble(&text) {
        Ok(back) => assert_eq!(
            back.descs(),
            &[d][..],
            "{text:?} assembled to something else"
        ),
        Err(e) => {
            // The one documented difference: decode leaves dependency flags
            // the unit cannot use to dispatch (BAD_FLAGS), the assembler
            // rejects them at once.
            let wide = Limits {
                rows: 256,
                cols: 256,
                spad_bytes: u32::MAX,
                acc_bytes: u32::MAX,
            };
            let one = Program::decode(&b).expect("decoded once already");
            let why = one.validate(&wide).err().map(|(_, e)| e.code);
            assert_eq!(
                why,
                Some(ErrorCode::BadFlags),
                "the disassembly {text:?} does not assemble ({e}), and not for a dependency flag"
            );
        }
    }
    // Limits from the rest of the input (zero included: validation must not
    // divide or index by them).
    let rest = &data[DESC_BYTES..];
    let word = |i: usize| {
        rest.get(i * 4..i * 4 + 4)
            .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    let lim = Limits {
        rows: word(0) % 512,
        cols: word(1) % 512,
        spad_bytes: word(2),
        acc_bytes: word(3),
    };
    let _ = d.validate(&lim);
    let _ = Program::decode(data).map(|p| p.validate(&lim));
});
