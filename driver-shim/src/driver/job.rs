//! Jobs: SUBMIT, the queue, the ring, interrupts, errors, the watchdog and
//! reset (the `*_job` part of a kernel driver).

use std::collections::BTreeSet;

use npukit_abi::desc::{Fence, Op};
use npukit_abi::{regs, Descriptor, ErrorCode, DESC_BYTES};
use npukit_sim::Device;

use super::{read64, Core, JOB_HISTORY, MAX_JOB_DESCS, MAX_SUBMIT_BOS};
use crate::errno::{Errno, IoctlResult};
use crate::fault::{Fault, JobRef};
use crate::mem::PAGE;
use crate::trace::ShimEvent;
use crate::uapi::{self, status, JobStats, Submit};
use crate::user;

/// How a finished job ended (the output fields of WAIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobResult {
    pub status: u32,
    pub error_code: u32,
    pub fault_addr: u64,
    pub fault_desc: u32,
}

impl JobResult {
    /// A job the driver aborted (reset under it, hang, context closed).
    pub(super) fn aborted(error_code: u32) -> Self {
        JobResult {
            status: status::ABORTED,
            error_code,
            ..JobResult::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobState {
    Queued,
    Running,
    Done(JobResult, JobStats),
}

#[derive(Debug)]
pub(super) struct Job {
    pub(super) number: u64,
    pub(super) cmd_phys: u64,
    pub(super) ndesc: u32,
    /// BO objects held until the job ends.
    pub(super) objs: Vec<u64>,
    pub(super) state: JobState,
}
/// Counter values at the start of a job.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Snapshot {
    pub(super) macs: u64,
    pub(super) rd: u64,
    pub(super) wr: u64,
    pub(super) descs: u64,
}

#[derive(Debug)]
pub(super) struct Running {
    pub(super) ctx: u32,
    pub(super) seq: u64,
    pub(super) number: u64,
    pub(super) cmd_phys: u64,
    pub(super) ndesc: u32,
    /// Next descriptor to copy into the ring; `ndesc` is the driver's FENCE.
    pub(super) next: u32,
    /// Ring slot -> descriptor index in the job.
    pub(super) slot_desc: Vec<u32>,
    pub(super) fence_seq: u32,
    pub(super) start_cycle: u64,
    pub(super) start: Snapshot,
    pub(super) last_progress: u64,
    pub(super) last_head: u32,
    pub(super) last_done: u64,
    pub(super) data_fault: Option<u64>,
    /// A translation entry taken away by an `xlat` fault: (entry address, value).
    pub(super) saved_pte: Option<(u64, u64)>,
}

impl Core {
    /// `DRM_IOCTL_NPUKIT_SUBMIT`: validates, holds the BOs, queues the job and
    /// starts it if the device is free.
    pub fn submit(&mut self, ctx: u32, a: &mut Submit) -> IoctlResult {
        self.ctx(ctx)?;
        let d = DESC_BYTES as u64;
        if a.flags != 0 || a.pad != 0 {
            return Err(Errno::EINVAL);
        }
        if self.poll_lost() {
            // The device is gone, as a kernel driver says of one that fell
            // off the bus.
            return Err(Errno::EIO);
        }
        if a.cmd_length == 0 || !a.cmd_length.is_multiple_of(d) || !a.cmd_offset.is_multiple_of(d) {
            return Err(Errno::EINVAL);
        }
        if a.cmd_length / d > MAX_JOB_DESCS || a.bo_count > MAX_SUBMIT_BOS {
            return Err(Errno::EINVAL);
        }
        let mut raw = vec![0u8; a.bo_count as usize * 4];
        user::copy_from_user(a.bo_handles, &mut raw)?;
        let handles: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (cmd_obj, cmd) = self.lookup(ctx, a.cmd_handle)?;
        if a.cmd_offset
            .checked_add(a.cmd_length)
            .is_none_or(|e| e > cmd.size)
        {
            return Err(Errno::EINVAL);
        }
        let cmd_phys = cmd.phys + a.cmd_offset;
        let mut objs = BTreeSet::from([cmd_obj]);
        for &h in &handles {
            objs.insert(self.lookup(ctx, h)?.0);
        }
        let pending = self.queue.len() + usize::from(self.running.is_some());
        if pending >= self.opts.max_jobs {
            return Err(Errno::EBUSY);
        }
        for o in &objs {
            if let Some(b) = self.objects.get_mut(o) {
                b.refs += 1;
            }
        }
        self.jobs_accepted += 1;
        let number = self.jobs_accepted;
        let c = self.ctx_mut(ctx)?;
        let seq = c.next_seq;
        c.next_seq += 1;
        c.jobs.insert(
            seq,
            Job {
                number,
                cmd_phys,
                ndesc: (a.cmd_length / d) as u32,
                objs: objs.into_iter().collect(),
                state: JobState::Queued,
            },
        );
        while c.jobs.len() > JOB_HISTORY {
            let oldest = c
                .jobs
                .iter()
                .find(|(_, j)| matches!(j.state, JobState::Done(..)))
                .map(|(s, _)| *s);
            match oldest {
                Some(s) => {
                    c.jobs.remove(&s);
                }
                None => break,
            }
        }
        self.queue.push_back((ctx, seq));
        a.seq = seq;
        if self.running.is_none() {
            self.start_next();
        }
        Ok(())
    }

    /// The outcome of a job: `Ok(None)` while it is queued or running.
    pub fn job_result(&self, ctx: u32, seq: u64) -> IoctlResult<Option<(JobResult, JobStats)>> {
        let job = self.ctx(ctx)?.jobs.get(&seq).ok_or(Errno::ENOENT)?;
        Ok(match &job.state {
            JobState::Done(r, s) => Some((*r, *s)),
            _ => None,
        })
    }

    /// `DRM_IOCTL_NPUKIT_JOB_STATS`: EBUSY while the job runs.
    pub fn job_stats(&self, ctx: u32, a: &mut JobStats) -> IoctlResult {
        match self.job_result(ctx, a.seq)? {
            Some((_, s)) => {
                *a = s;
                Ok(())
            }
            None => Err(Errno::EBUSY),
        }
    }

    /// Is there work for [`Core::step`]?
    pub fn busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    pub(super) fn reset(&mut self, reason: &'static str) {
        self.dev.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
        self.dev.disarm();
        self.needs_init = true;
        self.loaded_ctx = None;
        self.emit(ShimEvent::Reset { reason });
    }

    /// Reset, ring, translation table of `ctx`, interrupts, watchdog, RUN.
    pub(super) fn init_device(&mut self, ctx: u32, xlat: u64) {
        let d = &mut self.dev;
        d.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
        d.mmio_write(regs::RING_BASE_LO, self.ring_base as u32);
        d.mmio_write(regs::RING_BASE_HI, (self.ring_base >> 32) as u32);
        d.mmio_write(regs::RING_SIZE, self.ring_size);
        d.mmio_write(regs::XLAT_BASE_LO, xlat as u32);
        d.mmio_write(regs::XLAT_BASE_HI, (xlat >> 32) as u32);
        d.mmio_write(regs::XLAT_PAGES, self.xlat_pages);
        d.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
        if self.info.caps & npukit_abi::caps::WATCHDOG != 0 {
            let wd = u32::try_from(self.opts.watchdog_cycles).unwrap_or(u32::MAX);
            d.mmio_write(regs::WATCHDOG, wd);
        }
        d.mmio_write(regs::CONTROL, regs::CONTROL_RUN | regs::CONTROL_XLAT_EN);
        self.tail = 0;
        self.loaded_ctx = Some(ctx);
        self.needs_init = false;
    }

    pub(super) fn snapshot(&mut self) -> Snapshot {
        let d: &mut dyn Device = &mut self.dev;
        Snapshot {
            macs: read64(d, regs::PERF_MACS),
            rd: read64(d, regs::PERF_DMA_RD_BYTES),
            wr: read64(d, regs::PERF_DMA_WR_BYTES),
            descs: read64(d, regs::PERF_DESC_DONE),
        }
    }

    /// Whether the device is lost ([`crate::backend::BackendDevice::lost`]);
    /// the first time, the report goes to stderr (and to the trace).
    pub(super) fn poll_lost(&mut self) -> bool {
        if self.lost.is_none() {
            if let Some(report) = self.dev.lost() {
                eprintln!(
                    "npukit-shim: device lost at cycle {} (backend {}); the running job and \
                     every later one fail with DRM_NPUKIT_ERR_LOST:\n{report}",
                    self.dev.cycle(),
                    self.opts.backend.name()
                );
                self.emit(ShimEvent::Fault {
                    job: self.running.as_ref().map_or(0, |r| r.number),
                    what: "device lost (see stderr)".into(),
                });
                self.lost = Some(report);
            }
        }
        self.lost.is_some()
    }

    /// The result every job gets once the device is lost.
    fn lost_result() -> JobResult {
        JobResult {
            status: status::ERROR,
            error_code: uapi::err::LOST,
            fault_addr: 0,
            fault_desc: u32::MAX,
        }
    }

    /// Ends the running job and every queued one: the device is lost.
    fn fail_all(&mut self) {
        self.finish(Self::lost_result(), false);
        while let Some((ctx, seq)) = self.queue.pop_front() {
            let mut objs = Vec::new();
            if let Some(job) = self
                .contexts
                .get_mut(&ctx)
                .and_then(|c| c.jobs.get_mut(&seq))
            {
                let stats = JobStats {
                    seq,
                    ..JobStats::default()
                };
                job.state = JobState::Done(Self::lost_result(), stats);
                objs = std::mem::take(&mut job.objs);
            }
            for o in objs {
                self.unref(o);
            }
        }
    }

    /// Takes the next queued job onto the device. `false` if none.
    pub(super) fn start_next(&mut self) -> bool {
        if self.poll_lost() {
            self.fail_all();
            return false;
        }
        while let Some((ctx, seq)) = self.queue.pop_front() {
            let Some(c) = self.contexts.get_mut(&ctx) else {
                continue;
            };
            let xlat = c.xlat;
            let Some(job) = c.jobs.get_mut(&seq) else {
                continue;
            };
            job.state = JobState::Running;
            let (number, cmd_phys, ndesc) = (job.number, job.cmd_phys, job.ndesc);
            if self.needs_init || self.loaded_ctx != Some(ctx) {
                self.init_device(ctx, xlat);
            } else {
                // Flush the translation caches: BOs may have been freed.
                self.dev.mmio_write(regs::XLAT_PAGES, self.xlat_pages);
            }
            let now = self.dev.cycle();
            let start = self.snapshot();
            let mut r = Running {
                ctx,
                seq,
                number,
                cmd_phys,
                ndesc,
                next: 0,
                slot_desc: vec![u32::MAX; self.ring_size as usize],
                fence_seq: {
                    self.fence_seq = self.fence_seq.wrapping_add(1);
                    self.fence_seq
                },
                start_cycle: now,
                start,
                last_progress: now,
                last_head: self.dev.mmio_read(regs::RING_HEAD),
                last_done: start.descs,
                data_fault: None,
                saved_pte: None,
            };
            let faults: Vec<Fault> = self
                .opts
                .faults
                .iter()
                .filter(|i| i.applies_to(number, ctx, seq))
                .map(|i| i.fault)
                .collect();
            // A context's job starts once: its entries are done with.
            self.opts.faults.retain(|i| {
                !matches!(i.job, JobRef::Context { .. }) || !i.applies_to(number, ctx, seq)
            });
            for f in faults {
                match f {
                    Fault::Hang { after } => self.dev.arm_hang(now + after),
                    Fault::Reset { after } => self.dev.arm_reset(now + after),
                    Fault::Data { addr } => r.data_fault = Some(addr),
                    Fault::Xlat { addr } => {
                        let vpn = addr / PAGE;
                        if vpn < self.xlat_pages as u64 {
                            let e = xlat + vpn * 8;
                            if let Some(old) = self.mem.read_u64(e) {
                                let _ = self.mem.write_u64(e, 0);
                                r.saved_pte = Some((e, old));
                            }
                        }
                    }
                }
                self.emit(ShimEvent::Fault {
                    job: number,
                    what: format!("{f:?}"),
                });
            }
            self.emit(ShimEvent::JobStart {
                ctx,
                seq,
                job: number,
                descs: ndesc,
            });
            self.running = Some(r);
            self.refill();
            return true;
        }
        false
    }

    /// Copies as many of the running job's descriptors into the ring as fit.
    pub(super) fn refill(&mut self) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if r.next > r.ndesc {
            return;
        }
        let size = self.ring_size;
        let head = self.dev.mmio_read(regs::RING_HEAD) % size;
        let used = (self.tail + size - head) % size;
        let free = size - 1 - used;
        let first = r.next;
        let mut n = 0;
        while n < free && r.next <= r.ndesc {
            let mut d = [0u8; DESC_BYTES];
            if r.next < r.ndesc {
                let src = r.cmd_phys + r.next as u64 * DESC_BYTES as u64;
                let _ = self.mem.load(src, &mut d);
            } else {
                d = Descriptor::new(Op::Fence(Fence {
                    seq: r.fence_seq,
                    writeback: None,
                    irq: true,
                }))
                .encode();
            }
            let slot = self.tail;
            let _ = self
                .mem
                .store(self.ring_base + slot as u64 * DESC_BYTES as u64, &d);
            r.slot_desc[slot as usize] = r.next;
            self.tail = (slot + 1) % size;
            r.next += 1;
            n += 1;
        }
        if n > 0 {
            let job = r.number;
            self.dev.mmio_write(regs::RING_TAIL, self.tail);
            self.emit(ShimEvent::RingPush {
                job,
                first,
                count: n,
                tail: self.tail,
            });
        }
    }

    /// Ends the running job with `res`; `device_lost` when the counters can no
    /// longer be trusted.
    pub(super) fn finish(&mut self, mut res: JobResult, device_lost: bool) {
        let Some(r) = self.running.take() else {
            return;
        };
        if self.poll_lost() {
            res = Self::lost_result();
        }
        self.dev.disarm();
        if let Some((e, old)) = r.saved_pte {
            let _ = self.mem.write_u64(e, old);
        }
        let now = self.dev.cycle();
        let end = if device_lost {
            r.start
        } else {
            self.snapshot()
        };
        if let (Some(addr), status::OK) = (r.data_fault, res.status) {
            // An uncorrectable data error: the byte is corrupted and the job fails.
            if let Some(c) = self.contexts.get(&r.ctx) {
                let vpn = addr / PAGE;
                if let Some(pte) = self.mem.read_u64(c.xlat + vpn * 8) {
                    if pte & npukit_abi::xlat::PTE_VALID != 0 {
                        let pa = (pte & npukit_abi::xlat::PTE_ADDR_MASK) | (addr % PAGE);
                        let mut b = [0u8];
                        if self.mem.load(pa, &mut b).is_some() {
                            let _ = self.mem.store(pa, &[b[0] ^ 1]);
                        }
                    }
                }
            }
            res = JobResult {
                status: status::ERROR,
                error_code: uapi::err::DATA,
                fault_addr: addr,
                fault_desc: r.ndesc,
            };
        }
        let stats = JobStats {
            seq: r.seq,
            start_cycle: r.start_cycle,
            end_cycle: now,
            cycles: now - r.start_cycle,
            macs: end.macs.saturating_sub(r.start.macs),
            dma_read_bytes: end.rd.saturating_sub(r.start.rd),
            dma_write_bytes: end.wr.saturating_sub(r.start.wr),
            descs: end.descs.saturating_sub(r.start.descs),
        };
        let mut objs = Vec::new();
        if let Some(job) = self
            .contexts
            .get_mut(&r.ctx)
            .and_then(|c| c.jobs.get_mut(&r.seq))
        {
            job.state = JobState::Done(res, stats);
            objs = std::mem::take(&mut job.objs);
        }
        for o in objs {
            self.unref(o);
        }
        self.emit(ShimEvent::JobEnd {
            start: r.start_cycle,
            ctx: r.ctx,
            seq: r.seq,
            job: r.number,
            status: res.status,
            error_code: res.error_code,
            fault_addr: res.fault_addr,
        });
    }

    /// One slice of work: start a job if none runs, top up the ring, run the
    /// device until an interrupt or the end of the slice, then service it.
    /// Returns `false` when there is nothing to do.
    pub fn step(&mut self) -> bool {
        if self.running.is_none() && !self.start_next() {
            return false;
        }
        self.refill();
        let Some(r) = self.running.as_ref() else {
            return true;
        };
        let now = self.dev.cycle();
        let wd_limit = match self.opts.watchdog_cycles {
            0 => u64::MAX,
            w => r.last_progress.saturating_add(w),
        };
        let slice = if r.next > r.ndesc {
            self.opts.slice_cycles.saturating_mul(64)
        } else {
            self.opts.slice_cycles
        };
        let limit = now.saturating_add(slice).min(wd_limit).max(now + 1);
        self.dev.run_until(&mut self.mem, limit, true);
        if !self.poll_lost() {
            self.service();
        }
        if self.poll_lost() {
            self.fail_all();
        }
        true
    }

    /// Handles what the device did in the last slice.
    pub(super) fn service(&mut self) {
        let Some(r) = self.running.as_ref() else {
            return;
        };
        let d = &mut self.dev;
        let now = d.cycle();
        let irq = d.mmio_read(regs::IRQ_STATUS);
        let st = d.mmio_read(regs::STATUS);
        if irq != 0 {
            d.mmio_write(regs::IRQ_STATUS, irq);
            self.emit(ShimEvent::Irq { status: irq });
        }
        let d = &mut self.dev;
        if st & regs::STATUS_HALTED != 0 {
            let code = d.mmio_read(regs::ERR_CODE);
            let idx = d.mmio_read(regs::ERR_DESC);
            let addr = read64(d, regs::ERR_ADDR_LO);
            let fault_desc = r.slot_desc.get((idx % self.ring_size) as usize).copied();
            let res = JobResult {
                // The device's own watchdog aborted it; any other halt is the job's error.
                status: if code == ErrorCode::Watchdog as u32 {
                    status::ABORTED
                } else {
                    status::ERROR
                },
                error_code: code,
                fault_addr: addr,
                fault_desc: fault_desc.unwrap_or(u32::MAX),
            };
            self.finish(res, false);
            self.reset("device error");
            return;
        }
        if d.mmio_read(regs::CONTROL) & regs::CONTROL_RUN == 0 {
            self.finish(JobResult::aborted(uapi::err::RESET), true);
            self.reset("device reset under a job");
            return;
        }
        let head = d.mmio_read(regs::RING_HEAD);
        let done = read64(d, regs::PERF_DESC_DONE);
        let all_pushed = r.next > r.ndesc;
        if all_pushed && head == self.tail && st & regs::STATUS_BUSY == 0 {
            self.finish(JobResult::default(), false);
            return;
        }
        let watchdog = self.opts.watchdog_cycles;
        if let Some(r) = self.running.as_mut() {
            if head != r.last_head || done != r.last_done {
                r.last_head = head;
                r.last_done = done;
                r.last_progress = now;
            } else if watchdog != 0 && now >= r.last_progress.saturating_add(watchdog) {
                self.finish(JobResult::aborted(uapi::err::HANG), false);
                self.reset("watchdog: no progress");
            }
        }
    }
}
