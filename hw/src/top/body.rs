//! The Verilog body of `top`, generated per variant. One section per concern:
//! state (the register file is the `regs` block), fetch buffer, unit queues and tokens, the per-cycle plan
//! (requests, faults in G3 order (the `faults` block), grant, issue, completion, dispatch), the
//! state update, and the event ports. Sections are templates whose `@NAME@`
//! placeholders are the variant's parameters.

use crate::gen::{Inject, Params};

fn clog2(n: u32) -> u32 {
    let mut w = 0;
    while (1u64 << w) < n as u64 {
        w += 1;
    }
    w.max(1)
}

pub(super) fn body(p: &Params) -> String {
    let b = p.beat_bytes;
    let subst = |t: &str| {
        t.replace("@FD@", &p.fetch_depth.to_string())
            .replace("@FDW@", &clog2(p.fetch_depth).to_string())
            .replace("@NB@", &p.fetch_beats().to_string())
            .replace("@CHUNK@", &b.min(32).to_string())
            .replace("@CHUNKBITS@", &(8 * b.min(32)).to_string())
            .replace("@BM1@", &(b - 1).to_string())
            .replace(
                "@LATE@",
                if p.inject == Some(Inject::DispatchLate) {
                    "1'b1"
                } else {
                    "1'b0"
                },
            )
    };
    let mut s = String::new();
    s += &subst(STATE);
    s += super::units::DECODE;
    s += &subst(PLAN);
    s += super::units::QUEUES;
    s += super::units::FENCE;
    s += &super::units::wiring(p);
    s += &subst(FAULTS);
    s += super::units::FAULTS;
    s += &subst(PORT);
    s += &subst(EDGE);
    s += &subst(EVENTS);
    s += UNUSED;
    s
}

/// State, the register file's values (the `regs` block), the read port.
const STATE: &str = r#"
// ======== state (all zero at power-up, as a fresh ModelDevice) ========
localparam NB = @NB@;          // fetch beats per descriptor
localparam FD = @FD@;          // fetch buffer entries
// fault and event codes
localparam [2:0] K_FETCH = 3'd0, K_PTE = 3'd1, K_READ = 3'd2, K_WRITE = 3'd3, K_FENCEW = 3'd4;

// the register file (the `regs` block): its registers as the rest of the body reads them
wire r_err = regs$halted;       // halted (G3)
wire [63:0] r_ring_base = regs$ring_base, r_xlat_base = regs$xlat_base;
wire [31:0] r_ring_size = regs$ring_size, r_tail = regs$tail, r_xlat_pages = regs$xlat_pages;
wire [31:0] r_inflight = regs$inflight; // memory requests accepted and not yet answered
// command processor
reg [31:0] r_head, r_fetch_ptr;
reg [31:0] f_index [0:FD-1];
reg [63:0] f_addr [0:FD-1];
reg [255:0] f_bytes [0:FD-1];
reg [3:0] f_issued [0:FD-1];
reg [3:0] f_arrived [0:FD-1];
reg [FD-1:0] r_ripe;           // entry complete since the start of a previous cycle
reg [@FDW@-1:0] r_f_rd, r_f_wr;
reg [@FDW@:0] r_f_count;
// the FENCE in progress (the `fence` block): active, its ring index, sequence number, address, IRQ flag
wire r_fence = fence$active;
wire [31:0] r_fence_index = fence$index, r_fence_seqv = fence$seq;
wire [63:0] r_fence_addr = fence$va;
wire r_fence_irq = fence$irq;
// the descriptor each unit executes
reg [2:0] r_active;
reg [31:0] r_job_index [0:2];
reg [3:0] r_job_deps [0:2];
reg [7:0] r_job_op [0:2];
reg [63:0] r_job_macs;

integer ii, ia, ic;
initial begin
   r_head = 32'd0; r_fetch_ptr = 32'd0;
   for (ii = 0; ii < FD; ii = ii + 1) begin
      f_index[ii] = 32'd0; f_addr[ii] = 64'd0; f_bytes[ii] = 256'd0; f_issued[ii] = 4'd0; f_arrived[ii] = 4'd0;
   end
   r_ripe = 0; r_f_rd = 0; r_f_wr = 0; r_f_count = 0;
   for (ii = 0; ii < 3; ii = ii + 1) begin
      r_job_index[ii] = 32'd0; r_job_deps[ii] = 4'd0; r_job_op[ii] = 8'd0;
   end
   r_active = 3'd0; r_job_macs = 64'd0;
end

wire w_run = regs$run;
wire w_running = regs$running;
wire w_xlat_en = regs$xlat_en;

// ---- fetch buffer views ----
wire [@FDW@-1:0] w_f_back = (r_f_wr == 0) ? FD - 1 : r_f_wr - 1;
wire w_head_full = r_f_count != 0 && f_arrived[r_f_rd] == NB;
wire w_head_ripe = !@LATE@ || r_ripe[r_f_rd];
wire w_queues_empty = qh_valid == 3'd0;

// ---- MMIO read (combinational, G2) and the IRQ line: the `regs` block ----
always @(*) begin
   mmio_rdata = regs$mmio_rdata;
   irq = regs$irq;
end
"#;

/// The per-cycle plan: every decision from the state at the start of the cycle.
const PLAN: &str = r#"
// ======== the plan of this cycle (G1) ========
wire w_act = advance && !r_err;               // the device acts at this edge (before faults)
wire [1:0] w_resp_who = resp_tag[1:0];
wire [2:0] w_resp_kind = resp_tag[4:2];
wire [5:0] w_resp_off = resp_tag[13:8];        // byte offset of the data in the beat
wire [31:0] w_resp_vpn = resp_tag[45:14];      // PTE reads: the page number

// ---- command processor request (fence writeback and its PTE read, then fetch) ----
reg cp_req, cp_fault, cp_decided, cp_new;
reg [2:0] cp_kind;
reg [63:0] cp_addr, cp_own;
reg [64:0] cp_addr65;
reg [7:0] cp_code;
reg [31:0] cp_fidx;
reg [63:0] cp_faddr;
always @(*) begin
   cp_req = 1'b0; cp_fault = 1'b0; cp_decided = 1'b0; cp_new = 1'b0;
   cp_kind = K_FETCH; cp_addr = 64'd0; cp_own = 64'd0; cp_addr65 = 65'd0;
   cp_code = 8'd0; cp_fidx = 32'd0; cp_faddr = 64'd0;
   // the FENCE's writeback or its PTE read, or their fault (the `fence` block)
   cp_decided = fence$decided;
   if (cp_decided) begin
      cp_req = fence$req; cp_kind = fence$kind; cp_addr = fence$addr; cp_own = {8'd0, fence$own};
      cp_fault = fence$fault; cp_code = fence$fault_code; cp_faddr = fence$fault_addr;
      if (cp_fault) cp_fidx = r_fence_index;
   end
   if (!cp_decided && w_running) begin
      if (r_f_count != 0 && f_issued[w_f_back] != NB) begin
         cp_req = 1'b1; cp_addr = f_addr[w_f_back] + {60'd0, f_issued[w_f_back]} * 64'd@CHUNK@;
      end else if (r_fetch_ptr != r_tail && r_f_count < FD) begin
         cp_addr65 = {1'b0, r_ring_base} + {28'd0, r_fetch_ptr, 5'd0};
         cp_addr = cp_addr65[63:0];
         // 65-bit sums: a ring running past 2^64 is out of range, not wrapped
         if (cp_addr65 + 65'd32 > {1'b0, mem_size}) begin
            cp_fault = 1'b1; cp_code = 8'd8; cp_fidx = r_fetch_ptr; cp_faddr = cp_addr;
         end else begin
            cp_req = 1'b1; cp_new = 1'b1;
         end
      end
      if (cp_req) cp_own = {58'd0, cp_addr[5:0] & 6'd@BM1@};
   end
end

// ---- dispatch decision (F2) ----
reg disp, disp_fault;
always @(*) begin
   disp = 1'b0; disp_fault = 1'b0;
   if (!r_fence && w_head_full && w_head_ripe) begin
      if (dec_bad) disp_fault = 1'b1;
      else if (dec_unit == 2'd0) disp = 1'b1;
      else disp = q_room[dec_unit - 2'd1];
   end
end

// ---- queue heads (the `lq`, `cq`, `sq` blocks); their tokens (U1) are the `tok` block's ----
wire [2:0] qh_ready = {tok$s_ready, tok$c_ready, tok$l_ready};
"#;

/// Completion, issue and tokens of the cycle (its faults: `units::FAULTS`).
const FAULTS: &str = r#"
// ---- completion; issue (U1), token stalls (P1), pops, pushes and overflows (U2): the `tok` block ----
wire [2:0] complete = {store_done, cmp_done, load_done};
wire [2:0] issue = {tok$s_issue, tok$c_issue, tok$l_issue};
wire [2:0] tstall = {tok$s_stall, tok$c_stall, tok$l_stall};
wire [3:0] pop_q = {tok$pop_sc, tok$pop_cs, tok$pop_cl, tok$pop_lc};
wire [3:0] push_q = {tok$push_sc, tok$push_cs, tok$push_cl, tok$push_lc};
wire [3:0] over_q = {tok$over_sc, tok$over_cs, tok$over_cl, tok$over_lc};
"#;

/// The memory port (M1), response routing and the fetch buffer's arrivals.
const PORT: &str = r#"
// ---- the port (M1): command processor > store > load, the `port` block ----
wire g_cp = port$g_cp, g_store = port$g_store, g_load = port$g_load;
wire denied_store = port$denied_store, denied_load = port$denied_load;
assign port$go = w_go;
assign port$ready = port_ready;
assign port$cp_req = cp_req;
assign port$cp_kind = cp_kind;
assign port$cp_addr = cp_addr;
assign port$cp_own = cp_own[55:0];
assign port$cp_wdata = fence$wdata;
assign port$cp_wmask = fence$wmask;
assign port$store_req = store_req;
assign port$store_kind = store_kind;
assign port$store_addr = store_addr;
assign port$store_own = store_own;
assign port$store_wdata = store_wdata;
assign port$store_wmask = store_wmask;
assign port$load_req = load_req;
assign port$load_kind = load_kind;
assign port$load_addr = load_addr;
assign port$load_own = load_own;
always @(*) begin
   req_valid = port$req_valid; req_write = port$req_write; req_addr = port$req_addr;
   req_wdata = port$req_wdata; req_wmask = port$req_wmask; req_who = port$req_who;
   req_kind = port$req_kind; req_tag = port$req_tag;
end
wire w_grant = req_valid && port_ready;
wire w_take = w_go && resp_valid;             // the response is consumed
// the response's destination
wire w_resp_fetch = w_take && w_resp_who == 2'd0 && w_resp_kind == K_FETCH;
wire w_resp_fence = w_take && w_resp_who == 2'd0 && w_resp_kind == K_FENCEW;

// ---- fetch arrival: the oldest entry still waiting for a beat ----
reg arr_found;
reg [@FDW@-1:0] arr_slot, arr_j;
reg [255:0] arr_bytes;
always @(*) begin
   arr_found = 1'b0; arr_slot = 0; arr_j = 0;
   for (ia = 0; ia < FD; ia = ia + 1) begin
      arr_j = (r_f_rd + ia >= FD) ? r_f_rd + ia - FD : r_f_rd + ia;
      if (!arr_found && ia < r_f_count && f_arrived[arr_j] < f_issued[arr_j]) begin
         arr_found = 1'b1; arr_slot = arr_j;
      end
   end
   arr_bytes = f_bytes[arr_slot];
   arr_bytes[f_arrived[arr_slot] * @CHUNKBITS@ +: @CHUNKBITS@] = resp_data[{w_resp_off, 3'd0} +: @CHUNKBITS@];
end

// ---- fence completion in this cycle ----
wire w_fence_done = fence$done;
wire w_nop = w_go && disp && dec_unit == 2'd0 && dec_bytes[7:0] == 8'd0;
wire w_disp_fence = w_go && disp && dec_unit == 2'd0 && dec_bytes[7:0] == 8'd7;
wire w_disp_unit = w_go && disp && dec_unit != 2'd0;
wire [2:0] w_done = w_go ? complete : 3'd0;
wire [2:0] w_issue = w_go ? issue : 3'd0;
reg [2:0] n_done;
always @(*) n_done = {2'd0, w_done[0]} + {2'd0, w_done[1]} + {2'd0, w_done[2]} + {2'd0, w_nop} + {2'd0, w_fence_done};

"#;

/// The clock edge: a cycle (`advance`) or an MMIO write (`mmio_we`).
const EDGE: &str = r#"
function [31:0] ring_next(input [31:0] x, input [31:0] size);
   ring_next = (x + 32'd1 >= size) ? 32'd0 : x + 32'd1;
endfunction

// ======== the clock edge ========
always @(posedge clock) begin
   if (advance) begin
      // G3: a fault halts the device; nothing else happens (the `regs` block latches it)
      if (w_go) begin
         // -- grant --
         if (w_grant) begin
            if (g_cp && cp_kind == K_FETCH) begin
               if (cp_new) begin
                  f_index[r_f_wr] <= r_fetch_ptr;
                  f_addr[r_f_wr] <= cp_addr;
                  f_issued[r_f_wr] <= 4'd1;
                  f_arrived[r_f_wr] <= 4'd0;
                  r_f_wr <= (r_f_wr == FD - 1) ? 0 : r_f_wr + 1;
                  r_fetch_ptr <= ring_next(r_fetch_ptr, r_ring_size);
               end else begin
                  f_issued[w_f_back] <= f_issued[w_f_back] + 4'd1;
               end
            end
         end
         // -- response --
         if (w_resp_fetch && arr_found) begin
            f_bytes[arr_slot] <= arr_bytes;
            f_arrived[arr_slot] <= f_arrived[arr_slot] + 4'd1;
         end
         // -- fetch buffer count, ripeness (dispatch pops the head) --
         r_f_count <= r_f_count + {@FDW@'d0, g_cp && cp_kind == K_FETCH && cp_new} - {@FDW@'d0, disp};
         for (ic = 0; ic < FD; ic = ic + 1)
            r_ripe[ic] <= f_arrived[ic] == NB;
         if (disp) r_f_rd <= (r_f_rd == FD - 1) ? 0 : r_f_rd + 1;
         // -- units: completion, issue, tokens --
         for (ic = 0; ic < 3; ic = ic + 1) begin
            if (issue[ic]) begin
               r_active[ic] <= 1'b1;
               r_job_index[ic] <= qh_index[ic];
               r_job_deps[ic] <= qh_desc[ic][11:8];
               r_job_op[ic] <= qh_desc[ic][7:0];
            end else if (complete[ic]) begin
               r_active[ic] <= 1'b0;
            end
         end
         if (issue[1]) r_job_macs <= {48'd0, qh_desc[1][143:128]} * {48'd0, qh_desc[1][159:144]} * {48'd0, qh_desc[1][175:160]};
         // -- dispatch (F2-F4; the unit queues push in their blocks) --
         if (w_disp_unit || w_nop || w_fence_done) r_head <= ring_next(r_head, r_ring_size);
         // -- FENCE (F4): the `fence` block --
      end
   end else if (mmio_we) begin
      case (mmio_addr)
         12'h020: begin
            if (mmio_wdata[1]) begin
               // CONTROL.RESET: everything but time itself starts afresh (the registers: `regs`)
               r_head <= 32'd0; r_fetch_ptr <= 32'd0;
               r_f_rd <= 0; r_f_wr <= 0; r_f_count <= 0; r_ripe <= 0;
               r_active <= 3'd0;
            end
         end
         // RING_BASE/SIZE writes while stopped (the registers and RING_TAIL: `regs`)
         12'h030, 12'h034, 12'h038: if (!w_run) begin
            r_head <= 32'd0; r_fetch_ptr <= 32'd0;
            r_f_rd <= 0; r_f_wr <= 0; r_f_count <= 0; r_ripe <= 0;
         end
         default: ;
      endcase
   end
end

// the translation caches are emptied by reset and by writes to CONTROL and XLAT_* (`regs`)
wire w_flush = regs$flush;
wire w_clear = regs$clear;
"#;

/// Event ports: what happened in this cycle (valid before the cycle edge).
const EVENTS: &str = r#"
// ======== event ports ========
always @(*) begin
   ev_resp = w_take;
   ev_dispatch = w_go && disp;
   ev_dispatch_unit = dec_unit;
   ev_dispatch_index = f_index[r_f_rd];
   ev_dispatch_desc = dec_bytes;
   ev_issue = w_issue;
   ev_issue_index = {qh_index[2], qh_index[1], qh_index[0]};
   ev_issue_opcode = {qh_desc[2][7:0], qh_desc[1][7:0], qh_desc[0][7:0]};
   ev_done = {w_nop || w_fence_done, w_done[2], w_done[1], w_done[0]};
   ev_done_index = {w_nop ? f_index[r_f_rd] : r_fence_index, r_job_index[2], r_job_index[1], r_job_index[0]};
   ev_done_opcode = {w_nop ? 8'd0 : 8'd7, r_job_op[2], r_job_op[1], r_job_op[0]};
   ev_tok_push = w_go ? push_q : 4'd0;
   ev_tok_pop = w_go ? pop_q : 4'd0;
   ev_fence = w_fence_done;
   ev_fence_index = r_fence_index;
   ev_fence_seq = r_fence_seqv;
   // IRQ and error events (with a BAD_RING raised by an MMIO write): the `regs` block
   ev_irq = regs$ev_irq;
   ev_irq_status = {30'd0, regs$ev_irq_status};
   ev_error = regs$ev_error;
   ev_err_code = regs$ev_err_code;
   ev_err_desc = regs$ev_err_desc;
   ev_err_addr = regs$ev_err_addr;
end
"#;

/// Bits that carry nothing here (named `unused*`, which Verilator's lint skips).
const UNUSED: &str = r#"
wire unused_bits = ^{resp_tag[63:46], resp_tag[7:5], cptlb$waiting, compute$busy,
   cp_own[63:56], tok$count_lc, tok$count_cl, tok$count_cs, tok$count_sc};
"#;
