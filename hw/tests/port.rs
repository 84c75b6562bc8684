//! `Port` (the memory-port arbiter of rule M1 and the request mux) against the
//! rule and the port table of `docs/rtl.md`, on random offers under rust-hdl's
//! simulator, and its Verilog alone under Verilator's linter.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;
use common::Rng;
use npukit_hw::port::{Port, KIND_FENCE_WRITE, KIND_WRITE};
use npukit_sim::MemKind;
use rust_hdl::prelude::*;

/// One requester's offer.
#[derive(Debug, Clone, Copy, Default)]
struct Offer {
    req: bool,
    kind: u64,
    addr: u64,
    own: u64,
    wdata: [u64; 8],
    wmask: u64,
}

/// What the port offers on `req_*` and decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Out {
    valid: bool,
    write: bool,
    addr: u64,
    wdata: [u64; 8],
    wmask: u64,
    who: u64,
    kind: u64,
    tag: u64,
    grant: [bool; 3],
    denied_store: bool,
    denied_load: bool,
}

/// M1: the first offer in the order command processor, store, load (index
/// 0, 1, 2 of `offers`; `req_who` codes 0, 2, 1) is chosen and granted when
/// the port is ready; the request carries its fields, the address aligned to
/// the beat, the tag `own << 8 | kind << 2 | who`.
fn expected(go: bool, ready: bool, offers: &[Offer; 3], beat: u64) -> Out {
    // req_who: 0 cmd, 1 load, 2 store.
    let who_code = [0, 2, 1];
    let mut o = Out::default();
    let chosen = offers.iter().position(|f| f.req);
    if let Some(k) = chosen {
        o.grant[k] = ready;
    }
    o.denied_store = offers[1].req && !o.grant[1];
    o.denied_load = offers[2].req && !o.grant[2];
    match chosen {
        Some(k) if go => {
            let f = &offers[k];
            let writes = if k == 0 { KIND_FENCE_WRITE } else { KIND_WRITE };
            o.valid = true;
            o.write = k != 2 && f.kind == writes;
            o.addr = f.addr & !(beat - 1);
            if o.write {
                o.wdata = f.wdata;
                o.wmask = f.wmask;
            }
            o.who = who_code[k];
            o.kind = f.kind;
            o.tag = f.own << 8 | f.kind << 2 | who_code[k];
        }
        _ => {}
    }
    o
}

fn wide(words: &[u64; 8]) -> Bits<512> {
    words.iter().rev().fold(Bits::<512>::default(), |b, &w| {
        (b << 64) | Bits::<512>::from(w)
    })
}

fn words(b: Bits<512>) -> [u64; 8] {
    std::array::from_fn(|i| b.get_bits::<64>(64 * i).to_u64())
}

fn random_offer(rng: &mut Rng, kinds: &[MemKind]) -> Offer {
    let kind = rng.pick(kinds) as u64;
    Offer {
        req: rng.chance(50),
        kind,
        addr: rng.next(),
        own: rng.next() >> 8,
        wdata: std::array::from_fn(|_| rng.next()),
        wmask: rng.next(),
    }
}

fn drive(uut: &mut Port, go: bool, ready: bool, f: &[Offer; 3]) {
    uut.go.next = go;
    uut.ready.next = ready;
    uut.cp_req.next = f[0].req;
    uut.cp_kind.next = f[0].kind.into();
    uut.cp_addr.next = f[0].addr.into();
    uut.cp_own.next = f[0].own.into();
    uut.cp_wdata.next = wide(&f[0].wdata);
    uut.cp_wmask.next = f[0].wmask.into();
    uut.store_req.next = f[1].req;
    uut.store_kind.next = f[1].kind.into();
    uut.store_addr.next = f[1].addr.into();
    uut.store_own.next = f[1].own.into();
    uut.store_wdata.next = wide(&f[1].wdata);
    uut.store_wmask.next = f[1].wmask.into();
    uut.load_req.next = f[2].req;
    uut.load_kind.next = f[2].kind.into();
    uut.load_addr.next = f[2].addr.into();
    uut.load_own.next = f[2].own.into();
}

fn observed(uut: &Port) -> Out {
    Out {
        valid: uut.req_valid.val(),
        write: uut.req_write.val(),
        addr: uut.req_addr.val().to_u64(),
        wdata: words(uut.req_wdata.val()),
        wmask: uut.req_wmask.val().to_u64(),
        who: uut.req_who.val().to_u64(),
        kind: uut.req_kind.val().to_u64(),
        tag: uut.req_tag.val().to_u64(),
        grant: [uut.g_cp.val(), uut.g_store.val(), uut.g_load.val()],
        denied_store: uut.denied_store.val(),
        denied_load: uut.denied_load.val(),
    }
}

#[test]
fn random_offers_follow_m1() {
    let cp_kinds = [MemKind::Fetch, MemKind::Pte, MemKind::FenceWrite];
    let dma_store = [MemKind::Pte, MemKind::Write];
    let dma_load = [MemKind::Pte, MemKind::Read];
    for beat in [8u32, 32, 64] {
        let mut uut = Port::new(beat).unwrap();
        uut.connect_all();
        let mut rng = Rng(0x5EED_0000 + beat as u64);
        let mut granted = [0u32; 3];
        let mut writes = 0;
        for n in 0..1500 {
            let go = rng.chance(90);
            let ready = rng.chance(70);
            let offers = [
                random_offer(&mut rng, &cp_kinds),
                random_offer(&mut rng, &dma_store),
                random_offer(&mut rng, &dma_load),
            ];
            drive(&mut uut, go, ready, &offers);
            assert!(simulate(&mut uut, 200), "the block did not settle");
            let want = expected(go, ready, &offers, beat as u64);
            assert_eq!(observed(&uut), want, "beat {beat}, step {n}: {offers:?}");
            for k in 0..3 {
                granted[k] += (want.grant[k] && want.valid) as u32;
            }
            writes += want.write as u32;
        }
        assert!(
            granted.iter().all(|&g| g > 20) && writes > 50,
            "every requester is granted and writes are offered: {granted:?}, {writes}"
        );
    }
}

#[test]
fn bad_beat_is_refused() {
    for b in [0, 4, 12, 128] {
        let e = Port::new(b).unwrap_err();
        assert!(e.contains("beat_bytes"), "{e}");
    }
}

#[test]
fn verilog_lints_clean() {
    let mut uut = Port::new(32).unwrap();
    uut.connect_all();
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "port") {
        panic!("verilator lint failed: {log}");
    }
}
