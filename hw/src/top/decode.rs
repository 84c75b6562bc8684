//! Descriptor decode and validation at the dispatch point: the Verilog twin of
//! `npukit_abi::Descriptor::decode` followed by `validate`, checks in the same
//! order so that the first failing one sets `ERR_CODE` and `ERR_ADDR` exactly as
//! the model does.
//!
//! Inputs: `dec_bytes` (256, the fetched descriptor), `dec_paddr` (64, its
//! physical address). Outputs: `dec_bad`, `dec_code` (8), `dec_addr` (64),
//! `dec_unit` (2: 0 command processor, 1 load, 2 compute, 3 store).

use npukit_abi::ErrorCode;

use crate::gen::Params;

/// One check of the chain: the first true `cond` wins.
fn check(out: &mut String, cond: &str, code: ErrorCode, addr: &str) {
    out.push_str(&format!(
        "   if (!dec_bad && ({cond})) begin dec_bad = 1'b1; dec_code = 8'd{}; dec_addr = {addr}; end\n",
        code as u8
    ));
}

pub(super) fn decode(p: &Params) -> String {
    use ErrorCode::*;
    let mut s = String::from(
        "
// ---- descriptor decode and validation (firmware-abi desc.rs decode + validate) ----
reg [255:0] dec_bytes;
reg [63:0] dec_paddr;
reg dec_bad;
reg [7:0] dec_code;
reg [63:0] dec_addr;
reg [1:0] dec_unit;
reg [31:0] dw0, dw1, dw2, dw3, dw4, dw5, dw6, dw7;
reg [7:0] d_op;
reg [3:0] d_dep, d_of;
reg [63:0] d_rows, d_rowb, d_lstride, d_dstride, d_dram, d_ext, d_end, d_m, d_k, d_n, d_len;
reg [64:0] d_dend;
always @(*) begin
   dw0 = dec_bytes[31:0];    dw1 = dec_bytes[63:32];   dw2 = dec_bytes[95:64];   dw3 = dec_bytes[127:96];
   dw4 = dec_bytes[159:128]; dw5 = dec_bytes[191:160]; dw6 = dec_bytes[223:192]; dw7 = dec_bytes[255:224];
   d_op = dw0[7:0];
   d_dep = dw0[11:8];
   d_of = dw0[15:12];
   dec_bad = 1'b0;
   dec_code = 8'd0;
   dec_addr = 64'd0;
   case (d_op)
      8'd1: dec_unit = 2'd1;
      8'd2: dec_unit = 2'd3;
      8'd3, 8'd4, 8'd5, 8'd6: dec_unit = 2'd2;
      default: dec_unit = 2'd0;
   endcase
   // DMA fields (LOAD, STORE)
   d_rows = {48'd0, dw4[15:0]};
   d_rowb = {48'd0, dw4[31:16]};
   d_dstride = {32'd0, dw5};
   d_lstride = {32'd0, dw6};
   d_dram = {dw3, dw2};
   // MATMUL fields
   d_m = {48'd0, dw4[15:0]};
   d_k = {48'd0, dw4[31:16]};
   d_n = {48'd0, dw5[15:0]};
   // ADD, MAX
   d_len = {32'd0, dw4};
   d_ext = 64'd0;
   d_end = 64'd0;
   d_dend = 65'd0;
",
    );
    let a = "dec_paddr";
    // decode: opcode, reserved bits, flags
    check(&mut s, "d_op > 8'd7", BadOpcode, a);
    check(&mut s, "dw0[31:16] != 16'd0", Reserved, a);
    // reserved bits of words 1-7 per opcode (Layout::used_mask)
    let masks: [(u8, [&str; 7]); 8] = [
        (0, ["0", "0", "0", "0", "0", "0", "0"]),
        (1, ["F", "F", "F", "F", "F", "F", "0"]),
        (2, ["F", "F", "F", "F", "F", "F", "0"]),
        (3, ["F", "F", "F", "F", "L", "0", "0"]),
        (4, ["F", "F", "F", "F", "F", "L", "F"]),
        (5, ["F", "F", "F", "F", "L", "F", "0"]),
        (6, ["F", "F", "F", "F", "0", "0", "0"]),
        (7, ["F", "F", "F", "0", "0", "0", "0"]),
    ];
    for w in 1..8 {
        let mut conds = Vec::new();
        for (op, m) in &masks {
            let c = match m[w - 1] {
                "F" => continue,
                "L" => format!("(d_op == 8'd{op} && dw{w}[31:16] != 16'd0)"),
                _ => format!("(d_op == 8'd{op} && dw{w} != 32'd0)"),
            };
            conds.push(c);
        }
        check(&mut s, &conds.join(" || "), Reserved, a);
    }
    // dependency flags the unit may use; opcode flags the opcode defines
    check(
        &mut s,
        "(dec_unit == 2'd0 && d_dep != 4'd0) || (dec_unit == 2'd1 && (d_dep & 4'b0101) != 4'd0) || (dec_unit == 2'd3 && (d_dep & 4'b1010) != 4'd0)",
        BadFlags,
        a,
    );
    check(
        &mut s,
        "((d_op == 8'd0 || d_op == 8'd6) && d_of != 4'd0) || ((d_op == 8'd1 || d_op == 8'd2 || d_op == 8'd3 || d_op == 8'd5) && d_of[3:1] != 3'd0) || (d_op == 8'd4 && d_of[3] != 1'b0) || (d_op == 8'd7 && d_of[3:2] != 2'd0)",
        BadFlags,
        a,
    );
    check(
        &mut s,
        "d_op == 8'd4 && !d_of[1] && dw3 != 32'd0",
        Reserved,
        a,
    );
    // ACT: with PER_CHANNEL the per-tensor scale is reserved, without it qtab is
    check(
        &mut s,
        "d_op == 8'd4 && d_of[2] && dw5 != 32'd0",
        Reserved,
        a,
    );
    check(
        &mut s,
        "d_op == 8'd4 && d_of[2] && dw6[7:0] != 8'd0",
        Reserved,
        a,
    );
    check(
        &mut s,
        "d_op == 8'd4 && !d_of[2] && dw7 != 32'd0",
        Reserved,
        a,
    );
    check(
        &mut s,
        "d_op == 8'd7 && !d_of[1] && {dw3, dw2} != 64'd0",
        Reserved,
        a,
    );
    // validate: LOAD / STORE
    let spad = format!("64'd{}", p.spad_bytes);
    let acc = format!("64'd{}", p.acc_bytes);
    s += "   if (d_op == 8'd1 || d_op == 8'd2) begin\n";
    check(&mut s, "d_rows == 64'd0", BadField, a);
    check(&mut s, "d_rowb == 64'd0", BadField, a);
    check(&mut s, "d_rows > 64'd1 && d_lstride < d_rowb", BadField, a);
    check(
        &mut s,
        "d_of[0] && dw1[1:0] != 2'd0",
        Misaligned,
        "{32'd0, dw1}",
    );
    check(
        &mut s,
        "d_of[0] && d_rowb[1:0] != 2'd0",
        Misaligned,
        "d_rowb",
    );
    check(
        &mut s,
        "d_of[0] && d_rows > 64'd1 && d_lstride[1:0] != 2'd0",
        Misaligned,
        "d_lstride",
    );
    s += "      d_ext = (d_rows - 64'd1) * d_lstride + d_rowb;\n";
    s += "      d_end = {32'd0, dw1} + d_ext;\n";
    check(
        &mut s,
        &format!("!d_of[0] && d_end > {spad}"),
        SpadRange,
        "d_end",
    );
    check(
        &mut s,
        &format!("d_of[0] && d_end > {acc}"),
        AccRange,
        "d_end",
    );
    s += "      d_dend = {1'b0, d_dram} + {1'b0, (d_rows - 64'd1) * d_dstride + d_rowb};\n";
    check(&mut s, "d_dend[64]", BadField, a);
    s += "   end\n";
    // MATMUL
    s += "   if (d_op == 8'd3) begin\n";
    check(&mut s, "d_m == 64'd0", BadField, a);
    check(&mut s, "d_k == 64'd0", BadField, a);
    check(&mut s, "d_n == 64'd0", BadField, a);
    check(&mut s, &format!("d_k > 64'd{}", p.rows), BadField, a);
    check(&mut s, &format!("d_n > 64'd{}", p.cols), BadField, a);
    let range = |s: &mut String, start: &str, len: &str, is_acc: bool| {
        s.push_str(&format!("      d_end = {start} + {len};\n"));
        let (lim, code) = if is_acc {
            (&acc, AccRange)
        } else {
            (&spad, SpadRange)
        };
        check(s, &format!("d_end > {lim}"), code, "d_end");
    };
    range(&mut s, "{32'd0, dw1}", "d_m * d_k", false);
    range(&mut s, "{32'd0, dw2}", "d_k * d_n", false);
    check(&mut s, "dw3[1:0] != 2'd0", Misaligned, "{32'd0, dw3}");
    range(&mut s, "{32'd0, dw3}", "d_m * d_n * 64'd4", true);
    s += "   end\n";
    // ACT: rows = d_m, cols = d_k (word 4 halves)
    s += "   if (d_op == 8'd4) begin\n";
    check(&mut s, "d_m == 64'd0", BadField, a);
    check(&mut s, "d_k == 64'd0", BadField, a);
    check(&mut s, "dw6[7:0] > 8'd62", BadField, a);
    check(&mut s, "dw1[1:0] != 2'd0", Misaligned, "{32'd0, dw1}");
    range(&mut s, "{32'd0, dw1}", "d_m * d_k * 64'd4", true);
    range(&mut s, "{32'd0, dw2}", "d_m * d_k", false);
    check(
        &mut s,
        "d_of[1] && dw3[1:0] != 2'd0",
        Misaligned,
        "{32'd0, dw3}",
    );
    s += "      if (d_of[1]) begin\n";
    range(&mut s, "{32'd0, dw3}", "d_k * 64'd4", true);
    s += "      end\n";
    check(
        &mut s,
        "d_of[2] && dw7[1:0] != 2'd0",
        Misaligned,
        "{32'd0, dw7}",
    );
    s += "      if (d_of[2]) begin\n";
    range(&mut s, "{32'd0, dw7}", "d_k * 64'd8", true);
    s += "      end\n   end\n";
    // ADD
    s += "   if (d_op == 8'd5) begin\n";
    check(&mut s, "d_len == 64'd0", BadField, a);
    range(&mut s, "{32'd0, dw1}", "d_len", false);
    range(&mut s, "{32'd0, dw2}", "d_len", false);
    check(&mut s, "dw3[1:0] != 2'd0", Misaligned, "{32'd0, dw3}");
    range(&mut s, "{32'd0, dw3}", "d_len * 64'd4", true);
    s += "   end\n";
    // MAX
    s += "   if (d_op == 8'd6) begin\n";
    check(&mut s, "d_len == 64'd0", BadField, a);
    range(&mut s, "{32'd0, dw1}", "d_len", false);
    range(&mut s, "{32'd0, dw2}", "d_len", false);
    range(&mut s, "{32'd0, dw3}", "d_len", false);
    s += "   end\n";
    // FENCE
    check(
        &mut s,
        "d_op == 8'd7 && d_of[1] && dw2[1:0] != 2'd0",
        Misaligned,
        "{dw3, dw2}",
    );
    s += "end\n";
    s
}
