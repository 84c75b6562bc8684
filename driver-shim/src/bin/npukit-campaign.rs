//! Fault campaign and soak run of the driver shim (docs/reliability.md).
//!
//! ```text
//! npukit-campaign faults [--jobs N] [--procs P] [--threads T] [--contexts C] [--seed S]
//! npukit-campaign soak   [--seconds S] [--procs P] [--threads T] [--seed S]
//! ```
//!
//! Both start a device server ([`npukit_shim::Server`]) in this process on a
//! socket in a temporary folder, and run clients on it: T threads here and P
//! child processes (this program again, `child-faults` / `child-soak`),
//! each with C contexts. `faults` runs N jobs per context, a random share of
//! them with a scripted fault (hang, translation fault, data error, reset)
//! or reading another context's BO, and checks every outcome: a job without
//! a fault is bit-exact, a faulted one reports its fault, a foreign read
//! faults at that address and writes nothing. `soak` runs a random mix of
//! opens, BO creates and closes, mmaps, jobs and bad ioctls for S seconds,
//! on the server and on an in-process device, and then checks that nothing
//! leaked. The figures go to stdout; the exit status is 0 only if every
//! check held.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use npukit_abi::desc::{deps, Matmul, Max};
use npukit_abi::program::Program;
use npukit_abi::ErrorCode;
use npukit_shim::uapi::{err, status, BoCreate};
use npukit_shim::{Accel, AccelFile, Errno, Ioctl, Options, Server, XorShift as Rng};

const SEC: i64 = 1_000_000_000;
/// The driver's watchdog on the campaign's device (a GEMM job makes
/// progress every few tens of cycles; a hung one is caught soon).
const WATCHDOG: u64 = 5_000;
/// GEMM shape of every job: OUT[M x N] (i32) = A[M x K] * W[K x N] (i8).
const M: usize = 8;
const K: usize = 16;
const N: usize = 16;
const SENTINEL: u8 = 0xCD;

/// The figures of one client, or all together.
#[derive(Debug, Clone, Default)]
struct Counts(BTreeMap<String, u64>);

impl Counts {
    fn add(&mut self, k: &str, n: u64) {
        *self.0.entry(k.to_string()).or_insert(0) += n;
    }
    fn get(&self, k: &str) -> u64 {
        self.0.get(k).copied().unwrap_or(0)
    }
    fn merge(&mut self, o: &Counts) {
        for (k, v) in &o.0 {
            self.add(k, *v);
        }
    }
    fn line(&self) -> String {
        let v: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("COUNTS {}", v.join(" "))
    }
    fn parse(line: &str) -> Option<Counts> {
        let rest = line.strip_prefix("COUNTS ")?;
        let mut c = Counts::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            c.add(k, v.parse().ok()?);
        }
        Some(c)
    }
}

/// A BO mapped into this process.
struct Bo {
    b: BoCreate,
    p: *mut u8,
    len: usize,
}

impl Bo {
    fn new(f: &AccelFile, len: usize) -> Result<Bo, Errno> {
        let b = f.create_bo(len as u64, 0)?;
        let p = f.mmap(b.mmap_offset, len as u64)?;
        Ok(Bo { b, p, len })
    }
    fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        // SAFETY: p maps len bytes of the BO (checked bounds above).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.p.add(off), data.len()) }
    }
    fn read(&self, off: usize, n: usize) -> Vec<u8> {
        assert!(off + n <= self.len);
        let mut v = vec![0u8; n];
        // SAFETY: as in write.
        unsafe { std::ptr::copy_nonoverlapping(self.p.add(off), v.as_mut_ptr(), n) };
        v
    }
    fn addr(&self) -> u64 {
        self.b.device_addr
    }
    fn release(self, dev: &Accel, f: &AccelFile) {
        let _ = dev.munmap(self.p, self.len);
        let _ = f.close_bo(self.b.handle);
    }
}

fn gemm_program(a: u64, w: u64, out: u64) -> Vec<u8> {
    let mut p = Program::default();
    p.load_2d(0, a, M as u16, K as u16, K as u32);
    p.load_2d(0x4000, w, K as u16, N as u16, N as u32)
        .deps(deps::SIGNAL_NEXT);
    p.matmul(Matmul {
        a: 0,
        w: 0x4000,
        out: 0,
        m: M as u16,
        k: K as u16,
        n: N as u16,
        accumulate: false,
    })
    .deps(deps::WAIT_PREV | deps::SIGNAL_NEXT);
    p.store_acc(0, out, M as u16, (N * 4) as u16, (N * 4) as u32)
        .deps(deps::WAIT_PREV);
    p.encode()
}

/// A program that copies 64 bytes from device address `from` to `to` (the
/// load's token reaches the store through compute: a MAX of the bytes with
/// themselves).
fn copy_program(from: u64, to: u64) -> Vec<u8> {
    let mut p = Program::default();
    p.load_2d(0, from, 1, 64, 64).deps(deps::SIGNAL_NEXT);
    p.max(Max {
        a: 0,
        b: 0,
        dst: 0,
        len: 64,
    })
    .deps(deps::WAIT_PREV | deps::SIGNAL_NEXT);
    p.store_2d(0, to, 1, 64, 64).deps(deps::WAIT_PREV);
    p.encode()
}

fn cpu_gemm(a: &[u8], w: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(M * N * 4);
    for i in 0..M {
        for j in 0..N {
            let s: i32 = (0..K)
                .map(|x| a[i * K + x] as i8 as i32 * w[x * N + j] as i8 as i32)
                .fold(0i32, i32::wrapping_add);
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// One context of a client: its BOs and the sequence number of its next job.
struct Ctx {
    f: AccelFile,
    a: Bo,
    w: Bo,
    out: Bo,
    cmd: Bo,
    atk: Bo,
    gemm_len: u64,
    next_seq: u64,
}

impl Ctx {
    fn new(dev: &Accel) -> Result<Ctx, Errno> {
        let f = dev.open()?;
        let (a, w, out) = (
            Bo::new(&f, M * K)?,
            Bo::new(&f, K * N)?,
            Bo::new(&f, M * N * 4)?,
        );
        let (cmd, atk) = (Bo::new(&f, 4096)?, Bo::new(&f, 4096)?);
        let prog = gemm_program(a.addr(), w.addr(), out.addr());
        cmd.write(0, &prog);
        Ok(Ctx {
            gemm_len: prog.len() as u64,
            f,
            a,
            w,
            out,
            cmd,
            atk,
            next_seq: 1,
        })
    }

    /// New random A and W in the BOs; the result the GEMM must give.
    fn fresh_inputs(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut a = vec![0u8; M * K];
        let mut w = vec![0u8; K * N];
        a.iter_mut()
            .chain(w.iter_mut())
            .for_each(|b| *b = rng.next_u64() as u8);
        self.a.write(0, &a);
        self.w.write(0, &w);
        cpu_gemm(&a, &w)
    }

    fn handles(&self) -> [u32; 3] {
        [self.a.b.handle, self.w.b.handle, self.out.b.handle]
    }

    /// SUBMIT, retrying while the queue is full.
    fn submit(&mut self, cmd: u32, len: u64) -> Result<u64, Errno> {
        loop {
            match self.f.submit_job(cmd, 0, len, &self.handles()) {
                Err(Errno::EBUSY) => std::thread::sleep(Duration::from_micros(200)),
                r => {
                    if r.is_ok() {
                        self.next_seq += 1;
                    }
                    return r;
                }
            }
        }
    }

    fn release(self, dev: &Accel) {
        for b in [self.a, self.w, self.out, self.cmd, self.atk] {
            b.release(dev, &self.f);
        }
    }
}

/// What a job was set up to do, and what it must report.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Clean,
    Hang,
    Xlat {
        addr: u64,
    },
    Data {
        addr: u64,
    },
    Reset,
    /// A copy from another context's BO into our output.
    Foreign {
        addr: u64,
    },
}

impl Plan {
    fn name(&self) -> &'static str {
        match self {
            Plan::Clean => "clean",
            Plan::Hang => "hang",
            Plan::Xlat { .. } => "xlat",
            Plan::Data { .. } => "data",
            Plan::Reset => "reset",
            Plan::Foreign { .. } => "foreign",
        }
    }
}

/// Device addresses of the other clients' BOs, from the registry folder.
fn foreign_addrs(registry: &Path, me: &str) -> Vec<(u64, bool)> {
    let mut v = Vec::new();
    let process = |name: &str| name.split('-').next().unwrap_or("").to_string();
    let Ok(rd) = std::fs::read_dir(registry) else {
        return v;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if process(&name) == me {
            continue;
        }
        // Registry files are `<client>-<context>`, clients `p<pid>` (a
        // process) or `t<n>` (a thread of the parent): another process?
        let theirs = process(&name);
        let other = theirs != me && !(theirs.starts_with('t') && me.starts_with('t'));
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            v.extend(
                t.split_whitespace()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .map(|a| (a, other)),
            );
        }
    }
    v
}

struct Pending {
    ctx: usize,
    seq: u64,
    plan: Plan,
    expect: Vec<u8>,
}

/// The fault-campaign client: `contexts` contexts, `jobs` jobs each.
fn faults_client(
    dev: &Accel,
    me: &str,
    seed: u64,
    contexts: usize,
    jobs: usize,
    registry: &Path,
) -> Counts {
    let mut c = Counts::default();
    let mut rng = Rng::new(seed | 1);
    let mut ctxs: Vec<Ctx> = Vec::new();
    for i in 0..contexts {
        match Ctx::new(dev) {
            Ok(x) => {
                let addrs = format!("{} {} {}\n", x.a.addr(), x.w.addr(), x.out.addr());
                let _ = std::fs::write(registry.join(format!("{me}-{i}")), addrs);
                ctxs.push(x);
            }
            Err(e) => {
                eprintln!("{me}: cannot set up a context: {e}");
                c.add("setup_failures", 1);
                return c;
            }
        }
    }
    let mine: Vec<(u64, u64)> = ctxs
        .iter()
        .flat_map(|x| [&x.a, &x.w, &x.out, &x.cmd, &x.atk])
        .map(|b| {
            (
                b.addr() / 4096 * 4096,
                (b.addr() + b.len as u64).next_multiple_of(4096),
            )
        })
        .collect();
    for _round in 0..jobs {
        let mut pending = Vec::new();
        for (ci, x) in ctxs.iter_mut().enumerate() {
            x.out.write(0, &[SENTINEL; M * N * 4]);
            let mut expect = x.fresh_inputs(&mut rng);
            let r = rng.below(100);
            let seq = x.next_seq;
            let ctx = x.f.context();
            let (plan, script) = match r {
                0..=59 => (Plan::Clean, None),
                60..=67 => (Plan::Hang, Some(format!("hang+{}", rng.below(60)))),
                68..=75 => {
                    let bo = [&x.a, &x.w, &x.out][rng.below(3) as usize];
                    let addr = bo.addr() + rng.below(bo.len as u64);
                    (Plan::Xlat { addr }, Some(format!("xlat@{addr:#x}")))
                }
                76..=83 => {
                    let off = rng.below((M * N * 4) as u64);
                    let addr = x.out.addr() + off;
                    expect[off as usize] ^= 1;
                    (Plan::Data { addr }, Some(format!("data@{addr:#x}")))
                }
                84..=91 => (Plan::Reset, Some(format!("reset+{}", 1 + rng.below(60)))),
                _ => {
                    // Another client's BO (never one of ours: a stale entry
                    // may name pages since given to us), else the ring,
                    // which no context maps.
                    let others: Vec<(u64, bool)> = foreign_addrs(registry, me)
                        .into_iter()
                        .filter(|&(a, _)| !mine.iter().any(|&(s, e)| a >= s && a < e))
                        .collect();
                    let addr = if others.is_empty() {
                        0x1000 + 64 * rng.below(8)
                    } else {
                        let (a, other_process) = others[rng.below(others.len() as u64) as usize];
                        if other_process {
                            c.add("foreign_other_process", 1);
                        }
                        a + 64 * rng.below(2)
                    };
                    (Plan::Foreign { addr }, None)
                }
            };
            if let Some(s) = script {
                if let Err(e) = dev.write_faults(&format!("{ctx}/{seq}:{s}")) {
                    eprintln!("{me}: fault script refused: {e}");
                    c.add("setup_failures", 1);
                }
            }
            let submitted = match plan {
                Plan::Foreign { addr } => {
                    let p = copy_program(addr, x.out.addr());
                    x.atk.write(0, &p);
                    let (h, len) = (x.atk.b.handle, p.len() as u64);
                    x.submit(h, len)
                }
                _ => {
                    let (h, len) = (x.cmd.b.handle, x.gemm_len);
                    x.submit(h, len)
                }
            };
            match submitted {
                Ok(s) => {
                    debug_assert_eq!(s, seq);
                    pending.push(Pending {
                        ctx: ci,
                        seq: s,
                        plan,
                        expect,
                    });
                }
                Err(e) => {
                    eprintln!("{me}: SUBMIT failed: {e}");
                    c.add("lost", 1);
                }
            }
        }
        for p in pending {
            let x = &ctxs[p.ctx];
            c.add("jobs", 1);
            c.add(p.plan.name(), 1);
            let w = match x.f.wait_job(p.seq, 120 * SEC) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("{me}: WAIT of job {} failed: {e}", p.seq);
                    c.add("lost", 1);
                    continue;
                }
            };
            let got = x.out.read(0, M * N * 4);
            let page = |a: u64| a / 4096;
            let (ok_status, ok_data) = match p.plan {
                Plan::Clean => (w.status == status::OK, got == p.expect),
                Plan::Hang => (
                    w.status == status::ABORTED && w.error_code == err::HANG,
                    true,
                ),
                Plan::Reset => (
                    w.status == status::ABORTED && w.error_code == err::RESET,
                    true,
                ),
                Plan::Xlat { addr } => (
                    w.status == status::ERROR
                        && w.error_code == ErrorCode::XlatFault as u32
                        && page(w.fault_addr) == page(addr),
                    true,
                ),
                Plan::Data { addr } => (
                    w.status == status::ERROR && w.error_code == err::DATA && w.fault_addr == addr,
                    // The job ran to its end: the result with that one bit flipped.
                    got == p.expect,
                ),
                Plan::Foreign { addr } => {
                    let untouched = got.iter().all(|&b| b == SENTINEL);
                    if w.status == status::OK || !untouched {
                        c.add("cross_context_reads", 1);
                    }
                    (
                        w.status == status::ERROR
                            && w.error_code == ErrorCode::XlatFault as u32
                            && w.fault_addr == addr,
                        untouched,
                    )
                }
            };
            if !ok_status {
                eprintln!("{me}: job {} ({:?}) ended {w:?}", p.seq, p.plan);
                c.add("wrong_status", 1);
            }
            if !ok_data {
                eprintln!("{me}: job {} ({:?}): output differs", p.seq, p.plan);
                c.add("corrupted", 1);
            }
            if ok_status && ok_data {
                c.add("as_expected", 1);
            }
        }
    }
    for i in 0..ctxs.len() {
        let _ = std::fs::remove_file(registry.join(format!("{me}-{i}")));
    }
    for x in ctxs {
        x.release(dev);
    }
    c
}

/// One soak client: a random mix of operations until `deadline`.
fn soak_client(dev: &Accel, me: &str, seed: u64, deadline: Instant) -> Counts {
    let mut c = Counts::default();
    let mut rng = Rng::new(seed | 1);
    let mut ctxs: Vec<Ctx> = Vec::new();
    let mut extra: Vec<(usize, Bo)> = Vec::new();
    while Instant::now() < deadline {
        c.add("ops", 1);
        match rng.below(10) {
            0 if ctxs.len() < 3 => match Ctx::new(dev) {
                Ok(x) => ctxs.push(x),
                Err(e) => {
                    eprintln!("{me}: open: {e}");
                    c.add("failures", 1);
                }
            },
            1 if !ctxs.is_empty() => {
                // Close a context with whatever it holds (extra BOs mapped
                // or not: closing the file must release them).
                let i = rng.below(ctxs.len() as u64) as usize;
                let x = ctxs.swap_remove(i);
                let mut keep = Vec::new();
                for (ci, b) in extra.drain(..) {
                    if ci == i {
                        let _ = dev.munmap(b.p, b.len);
                    } else {
                        keep.push((if ci == ctxs.len() { i } else { ci }, b));
                    }
                }
                extra = keep;
                if rng.below(2) == 0 {
                    x.release(dev);
                } else {
                    let Ctx {
                        f,
                        a,
                        w,
                        out,
                        cmd,
                        atk,
                        ..
                    } = x;
                    for b in [a, w, out, cmd, atk] {
                        let _ = dev.munmap(b.p, b.len);
                    }
                    drop(f);
                }
                c.add("closes", 1);
            }
            2 | 3 if !ctxs.is_empty() => {
                let i = rng.below(ctxs.len() as u64) as usize;
                match Bo::new(&ctxs[i].f, 4096 * (1 + rng.below(8) as usize)) {
                    Ok(b) => extra.push((i, b)),
                    Err(Errno::ENOMEM) => c.add("enomem", 1),
                    Err(e) => {
                        eprintln!("{me}: BO: {e}");
                        c.add("failures", 1);
                    }
                }
            }
            4 if !extra.is_empty() => {
                let (ci, b) = extra.swap_remove(rng.below(extra.len() as u64) as usize);
                b.release(dev, &ctxs[ci].f);
            }
            5 if !ctxs.is_empty() => {
                // Bad arguments: each must fail cleanly.
                let x = &ctxs[rng.below(ctxs.len() as u64) as usize];
                let r = x.f.ioctl(rng.next_u64() as u32, 0xDEAD_0000_0000);
                let r2 = x.f.submit_job(x.cmd.b.handle, 16, 32, &[]);
                if r != Err(Errno::ENOTTY) && r != Err(Errno::EFAULT) || r2 != Err(Errno::EINVAL) {
                    eprintln!("{me}: bad ioctls answered {r:?}, {r2:?}");
                    c.add("failures", 1);
                }
            }
            _ if !ctxs.is_empty() => {
                let i = rng.below(ctxs.len() as u64) as usize;
                let x = &mut ctxs[i];
                let expect = x.fresh_inputs(&mut rng);
                let faulty = rng.below(8) == 0;
                if faulty {
                    let _ = dev.write_faults(&format!("{}/{}:hang", x.f.context(), x.next_seq));
                }
                let (h, len) = (x.cmd.b.handle, x.gemm_len);
                let r = x.submit(h, len).and_then(|s| x.f.wait_job(s, 120 * SEC));
                match r {
                    Ok(w) if faulty && w.status == status::ABORTED => c.add("hangs", 1),
                    Ok(w2)
                        if !faulty
                            && w2.status == status::OK
                            && x.out.read(0, M * N * 4) == expect =>
                    {
                        c.add("jobs", 1)
                    }
                    other => {
                        eprintln!("{me}: job ended {other:?}");
                        c.add("failures", 1);
                    }
                }
            }
            _ => {}
        }
    }
    for (_, b) in extra {
        let _ = dev.munmap(b.p, b.len);
    }
    for x in ctxs {
        x.release(dev);
    }
    c
}

/// Descriptors open in this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Args {
    mode: String,
    jobs: usize,
    procs: usize,
    threads: usize,
    contexts: usize,
    seconds: u64,
    seed: u64,
    registry: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("usage: npukit-campaign faults|soak [--jobs N] [--procs P] [--threads T] [--contexts C] [--seconds S] [--seed S]")?;
    let mut a = Args {
        mode,
        jobs: 200,
        procs: 3,
        threads: 2,
        contexts: 2,
        seconds: 10,
        seed: 1,
        registry: PathBuf::new(),
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{k} {v}: not a number"))
        };
        match k.as_str() {
            "--jobs" => a.jobs = num()? as usize,
            "--procs" => a.procs = num()? as usize,
            "--threads" => a.threads = num()? as usize,
            "--contexts" => a.contexts = num()? as usize,
            "--seconds" => a.seconds = num()?,
            "--seed" => a.seed = num()?,
            "--registry" => a.registry = PathBuf::from(&v),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

fn server_options() -> Options {
    Options {
        mem_bytes: 32 << 20,
        watchdog_cycles: WATCHDOG,
        max_jobs: 32,
        ..Options::default()
    }
}

/// Runs the clients (threads here, processes via this program) and
/// returns their figures added up, plus whether every process exited well.
fn run_clients(a: &Args, socket: &Path, registry: &Path) -> (Counts, bool) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("npukit-campaign"));
    let child_mode = format!("child-{}", a.mode);
    let children: Vec<_> = (0..a.procs)
        .map(|i| {
            Command::new(&exe)
                .arg(&child_mode)
                .args(["--jobs", &a.jobs.to_string()])
                .args(["--contexts", &a.contexts.to_string()])
                .args(["--seconds", &a.seconds.to_string()])
                .args(["--seed", &(a.seed * 1000 + i as u64 + 1).to_string()])
                .arg("--registry")
                .arg(registry)
                .env("NPUKIT_SERVER", socket)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut total = Counts::default();
    let threads: Vec<_> = (0..a.threads)
        .map(|t| {
            let socket = socket.to_path_buf();
            let registry = registry.to_path_buf();
            let (mode, jobs, contexts, seed) = (
                a.mode.clone(),
                a.jobs,
                a.contexts,
                a.seed * 1000 + 500 + t as u64,
            );
            std::thread::spawn(move || {
                let dev = match npukit_shim::Client::connect(&socket) {
                    Ok(c) => Accel::Remote(c),
                    Err(e) => {
                        eprintln!("thread {t}: {e}");
                        let mut c = Counts::default();
                        c.add("setup_failures", 1);
                        return c;
                    }
                };
                let me = format!("t{t}");
                if mode == "faults" {
                    faults_client(&dev, &me, seed, contexts, jobs, &registry)
                } else {
                    soak_client(&dev, &me, seed, deadline)
                }
            })
        })
        .collect();
    let mut all_ok = true;
    for t in threads {
        match t.join() {
            Ok(c) => total.merge(&c),
            Err(_) => {
                eprintln!("a client thread panicked");
                all_ok = false;
            }
        }
    }
    for (i, ch) in children.into_iter().enumerate() {
        let out = match ch.and_then(|c| c.wait_with_output()) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("process {i}: {e}");
                all_ok = false;
                continue;
            }
        };
        if !out.status.success() {
            eprintln!("process {i} exited with {}", out.status);
            all_ok = false;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find_map(Counts::parse) {
            Some(c) => total.merge(&c),
            None => {
                eprintln!("process {i} printed no figures");
                all_ok = false;
            }
        }
    }
    (total, all_ok)
}

/// After the clients: nothing held, all memory free, and a GEMM still runs.
fn check_device(dev: &Accel, c: &mut Counts) {
    // A client that died is cleaned up when the server sees its sockets
    // close: give that a moment.
    let settle = Instant::now() + Duration::from_secs(3);
    let idle = |u: &npukit_shim::Usage| {
        (u.contexts, u.objects, u.mappings, u.jobs_pending) == (0, 0, 0, 0)
            && u.free_bytes == u.total_bytes
    };
    while Instant::now() < settle && !dev.usage().is_ok_and(|u| idle(&u)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    match dev.usage() {
        Ok(u) => {
            println!(
                "device after the run: {} contexts, {} BOs, {} mappings, {} jobs pending, {} of {} bytes free, {} jobs accepted",
                u.contexts, u.objects, u.mappings, u.jobs_pending, u.free_bytes, u.total_bytes, u.jobs_accepted
            );
            if !idle(&u) {
                c.add("leaks", 1);
            }
        }
        Err(e) => {
            eprintln!("usage: {e}");
            c.add("leaks", 1);
        }
    }
    let usable = Ctx::new(dev).map(|mut x| {
        let mut a = vec![0u8; M * K];
        let mut w = vec![0u8; K * N];
        for (i, b) in a.iter_mut().chain(w.iter_mut()).enumerate() {
            *b = (i * 37 + 11) as u8;
        }
        x.a.write(0, &a);
        x.w.write(0, &w);
        let (h, len) = (x.cmd.b.handle, x.gemm_len);
        let r = x.submit(h, len).and_then(|s| x.f.wait_job(s, 60 * SEC));
        let good = matches!(r, Ok(w2) if w2.status == status::OK)
            && x.out.read(0, M * N * 4) == cpu_gemm(&a, &w);
        x.release(dev);
        good
    });
    let ok = matches!(usable, Ok(true));
    println!(
        "device usable at the end: {}",
        if ok {
            "yes (a GEMM ran bit-exact)"
        } else {
            "NO"
        }
    );
    if !ok {
        c.add("unusable", 1);
    }
}

fn main() -> std::process::ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("npukit-campaign: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(mode) = a.mode.strip_prefix("child-") {
        // A client process on the parent's server.
        let fds = open_fds();
        let dev = match Accel::from_env() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("npukit-campaign child: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let me = format!("p{}", std::process::id());
        let mut c = if mode == "faults" {
            faults_client(&dev, &me, a.seed, a.contexts, a.jobs, &a.registry)
        } else {
            soak_client(
                &dev,
                &me,
                a.seed,
                Instant::now() + Duration::from_secs(a.seconds),
            )
        };
        drop(dev);
        let after = open_fds();
        if after != fds {
            eprintln!("{me}: {fds} descriptors open before, {after} after");
            c.add("fd_leaks", 1);
        }
        println!("{}", c.line());
        return std::process::ExitCode::SUCCESS;
    }
    if a.mode != "faults" && a.mode != "soak" {
        eprintln!(
            "npukit-campaign: unknown mode {:?} (faults or soak)",
            a.mode
        );
        return std::process::ExitCode::from(2);
    }
    let dir = std::env::temp_dir().join(format!("npukit-campaign-{}", std::process::id()));
    let registry = dir.join("registry");
    if let Err(e) = std::fs::create_dir_all(&registry) {
        eprintln!("npukit-campaign: {}: {e}", registry.display());
        return std::process::ExitCode::FAILURE;
    }
    let socket = dir.join("npukit.sock");
    let fds_before = open_fds();
    let rss_before = rss_kib();
    let started = Instant::now();
    let server = match Server::start(&socket, server_options()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("npukit-campaign: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (mut total, procs_ok) = run_clients(&a, &socket, &registry);
    let elapsed = started.elapsed();
    let dev = Accel::Local(server.shim().clone());
    check_device(&dev, &mut total);
    let settle = Instant::now() + Duration::from_secs(3);
    while server.sessions() != 0 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sessions_left = server.sessions();
    let connections = server.connections();
    if a.mode == "soak" {
        // The same mix on an in-process device, threads only.
        let local = match npukit_shim::Shim::new(server_options()) {
            Ok(s) => Accel::Local(s),
            Err(e) => {
                eprintln!("npukit-campaign: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(a.seconds.div_ceil(2));
        let ts: Vec<_> = (0..a.threads.max(2))
            .map(|t| {
                let d = local.clone();
                std::thread::spawn(move || {
                    soak_client(&d, &format!("local{t}"), 77 + t as u64, deadline)
                })
            })
            .collect();
        let mut lc = Counts::default();
        for t in ts {
            match t.join() {
                Ok(c) => lc.merge(&c),
                Err(_) => lc.add("failures", 1),
            }
        }
        println!("in-process device: {}", lc.line());
        check_device(&local, &mut lc);
        total.merge(&lc);
    }
    drop(dev);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    // Connection threads end when they see their client's close.
    let settle = Instant::now() + Duration::from_secs(3);
    while open_fds() != fds_before && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    let fds_after = open_fds();
    let rss_after = rss_kib();
    println!(
        "{} clients ({} processes, {} threads) on one device, {} connections, {:.1} s",
        a.procs + a.threads,
        a.procs,
        a.threads,
        connections,
        elapsed.as_secs_f64()
    );
    if a.mode == "faults" {
        println!(
            "jobs {}: clean {}, hang {}, xlat {}, data {}, reset {}, foreign reads {}",
            total.get("jobs"),
            total.get("clean"),
            total.get("hang"),
            total.get("xlat"),
            total.get("data"),
            total.get("reset"),
            total.get("foreign")
        );
        println!(
            "as expected {}, wrong status {}, corrupted results {}, lost {}, cross-context reads {}",
            total.get("as_expected"),
            total.get("wrong_status"),
            total.get("corrupted"),
            total.get("lost"),
            total.get("cross_context_reads")
        );
    } else {
        println!(
            "soak: {} operations, {} jobs bit-exact, {} hangs recovered, {} failures",
            total.get("ops"),
            total.get("jobs"),
            total.get("hangs"),
            total.get("failures")
        );
    }
    println!(
        "leaks: device {}, descriptors {} -> {} (children: {}), resident memory {} -> {} KiB",
        total.get("leaks"),
        fds_before,
        fds_after,
        total.get("fd_leaks"),
        rss_before,
        rss_after
    );
    println!("{}", total.line());
    let bad = [
        "wrong_status",
        "corrupted",
        "lost",
        "cross_context_reads",
        "setup_failures",
        "failures",
        "leaks",
        "fd_leaks",
        "unusable",
    ]
    .iter()
    .map(|k| total.get(k))
    .sum::<u64>();
    let fd_leak = fds_after != fds_before;
    if bad > 0 || !procs_ok || fd_leak || sessions_left != 0 {
        eprintln!(
            "npukit-campaign: FAILED ({bad} failed checks, processes ok: {procs_ok}, descriptors {fds_before} -> {fds_after}, sessions left {sessions_left})"
        );
        return std::process::ExitCode::FAILURE;
    }
    println!("npukit-campaign: all checks held");
    std::process::ExitCode::SUCCESS
}
