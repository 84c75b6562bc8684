//! The Verilog body of the `Compute` custom block. Every statement mirrors the
//! Rust simulation in `compute.rs` (`Compute::drive` for the combinational part,
//! `Compute::edge` for the registers); names follow the Rust state (`sa_q` is
//! `State::sa`, ...; `busy_q`, `d_q`, `cnt_q`, `lat_q` are wires from the
//! descriptor control `ctl`). The children (`ctl`, `pe$n`/`pd$n`/`po$n`, the skew and
//! deskew lines `sk$r`, `skf$r`, `wsk$c`, `dsk$c`, the lanes `lane$l`) are
//! `#[hdl_gen]` blocks: this body only drives their inputs and reads their
//! outputs.

use std::fmt::Write;

use super::{ComputeParams, DMA_PORT_BYTES};

struct Gen {
    s: String,
    sb: u32,
    ab: u32,
}

impl Gen {
    fn line(&mut self, l: impl AsRef<str>) {
        self.s.push_str(l.as_ref());
        self.s.push('\n');
    }

    /// Scratchpad byte at a 32-bit address expression (0 beyond the end).
    fn sp8(&self, a: &str) -> String {
        format!("((({a}) < 32'd{}) ? spad[{a}] : 8'd0)", self.sb)
    }

    fn ac8(&self, a: &str) -> String {
        format!("((({a}) < 32'd{}) ? accm[{a}] : 8'd0)", self.ab)
    }

    /// Little-endian int32 of the accumulator memory at an address expression.
    fn ac32(&self, a: &str) -> String {
        let b: Vec<String> = (0..4)
            .rev()
            .map(|i| self.ac8(&format!("({a}) + 32'd{i}")))
            .collect();
        format!("{{{}}}", b.join(", "))
    }

    fn wr_sp(&self, a: &str, v: &str) -> String {
        format!("if (({a}) < 32'd{}) spad[{a}] <= {v};", self.sb)
    }

    fn wr_ac(&self, a: &str, v: &str) -> String {
        format!("if (({a}) < 32'd{}) accm[{a}] <= {v};", self.ab)
    }

    /// Writes the four bytes of a 32-bit expression at accumulator address `a`.
    fn wr_ac32(&mut self, indent: &str, a: &str, v: &str) {
        for b in 0..4 {
            let l = self.wr_ac(
                &format!("({a}) + 32'd{b}"),
                &format!("{v}[{}:{}]", 8 * b + 7, 8 * b),
            );
            self.line(format!("{indent}{l}"));
        }
    }
}

/// Port `port` of PE `(i, j)` (`pe$n` weight-stationary, `pd$n` with two
/// weight banks, `po$n` output-stationary).
fn pe_port(p: &ComputeParams, i: u32, j: u32, port: &str) -> String {
    let block = if p.os() {
        "po"
    } else if p.weight_double_buffer {
        "pd"
    } else {
        "pe"
    };
    format!("{block}${}${port}", i * p.cols + j)
}

/// Weight-stationary MATMUL control (rules C1a, C1b): weight pushes, the A
/// stream window, the output rows.
fn matmul_ws(g: &mut Gen, p: &ComputeParams) {
    let (r, c) = (p.rows, p.cols);
    if p.weight_double_buffer {
        // The weight loader (C1b) and the stream offset so_q.
        g.line("wire ismm_w = desc[7:0] == 8'd3;");
        g.line(format!(
            "wire ls_w = head_ready && ismm_w && !pf_q && (!lb_q || (lc_q == 32'd{r})) && (free_w || mm_w);"
        ));
        g.line(format!("wire [31:0] lleft_w = 32'd{r} - lc_q;"));
        g.line(format!(
            "wire [31:0] iso_w = ls_w ? 32'd{r} : (lb_q ? ((lleft_w == 32'd0) ? 32'd1 : lleft_w) : 32'd1);"
        ));
        g.line("wire [31:0] wrow_w = lleft_w;");
        g.line("wire stream_w = mm_w && (cnt_q >= so_q) && (cnt_q < (so_q + mm_m_w));");
        g.line(format!(
            "wire mmwr_w = mm_w && (cnt_q >= (so_q + 32'd{}));",
            r + c - 1
        ));
    } else {
        g.line(format!(
            "wire wshift_w = mm_w && (cnt_q >= 32'd1) && (cnt_q <= 32'd{r});"
        ));
        g.line(format!("wire [31:0] wrow_w = 32'd{r} - cnt_q;"));
        g.line(format!(
            "wire stream_w = mm_w && (cnt_q >= 32'd{r}) && (cnt_q < (32'd{r} + mm_m_w));"
        ));
        g.line(format!(
            "wire mmwr_w = mm_w && (cnt_q >= 32'd{});",
            2 * r + c - 1
        ));
    }
    let (wbase, wk, wn) = if p.weight_double_buffer {
        ("lw_q", "lk_q", "ln_q")
    } else {
        ("w2_w", "mk_w", "mn_w")
    };
    for j in 0..c {
        g.line(format!(
            "wire [31:0] wpa_{j} = {wbase} + wrow_w * {wn} + 32'd{j};"
        ));
        let rd = g.sp8(&format!("wpa_{j}"));
        g.line(format!(
            "wire [7:0] wp_{j} = ((wrow_w < {wk}) && (32'd{j} < {wn})) ? {rd} : 8'd0;"
        ));
        g.line(format!(
            "wire [31:0] bot_{j} = {};",
            pe_port(p, r - 1, j, "sum")
        ));
        if j == c - 1 {
            g.line(format!("wire [31:0] dout_{j} = bot_{j};"));
        } else {
            g.line(format!("wire [31:0] dout_{j} = dsk${j}$q;"));
        }
        g.line(format!("wire [31:0] moa_{j} = sb_q + 32'd{};", 4 * j));
        let old = g.ac32(&format!("moa_{j}"));
        g.line(format!(
            "wire [31:0] mov_{j} = f0_w ? (dout_{j} + {old}) : dout_{j};"
        ));
    }
}

/// Output-stationary MATMUL control (rule C1c): the operand feed of tile
/// `fj_q`, step `fq_q`, and the output row `wq_q` of tile `wj_q`.
fn matmul_os(g: &mut Gen, p: &ComputeParams) {
    let (r, c) = (p.rows, p.cols);
    g.line(format!("wire [31:0] obase_w = fj_q * 32'd{r};"));
    g.line("wire ofeed_w = mm_w && (fq_q < mk_w) && (obase_w < mm_m_w);");
    g.line(format!(
        "wire ofirst_w = mm_w && (fq_q == 32'd0) && (obase_w < (mm_m_w + 32'd{r}));"
    ));
    for i in 0..r {
        g.line(format!("wire [31:0] orow_{i} = obase_w + 32'd{i};"));
        let rd = g.sp8(&format!("w1_w + orow_{i} * mk_w + fq_q"));
        g.line(format!(
            "wire [7:0] oa_{i} = (ofeed_w && (orow_{i} < mm_m_w)) ? {rd} : 8'd0;"
        ));
    }
    g.line(format!("wire [31:0] owrow_w = wj_q * 32'd{r} + wq_q;"));
    g.line(format!(
        "wire owr_w = mm_w && (wd_q == 32'd0) && (wq_q < 32'd{r}) && (owrow_w < mm_m_w);"
    ));
    for j in 0..c {
        let rd = g.sp8(&format!("w2_w + fq_q * mn_w + 32'd{j}"));
        g.line(format!(
            "wire [7:0] ow_{j} = (ofeed_w && (32'd{j} < mn_w)) ? {rd} : 8'd0;"
        ));
        // The output register of PE (wq_q, j).
        let mut mux = "32'd0".to_string();
        for i in (0..r).rev() {
            mux = format!("((wq_q == 32'd{i}) ? {} : {mux})", pe_port(p, i, j, "o"));
        }
        g.line(format!("wire [31:0] oo_{j} = {mux};"));
        g.line(format!(
            "wire [31:0] ooa_{j} = w3_w + 32'd4 * (mn_w * owrow_w + 32'd{j});"
        ));
        let old = g.ac32(&format!("ooa_{j}"));
        g.line(format!(
            "wire [31:0] oov_{j} = f0_w ? (oo_{j} + {old}) : oo_{j};"
        ));
    }
}

/// The module body for the given parameters.
pub(super) fn body(p: &ComputeParams) -> String {
    let (r, c, bb) = (p.rows, p.cols, p.beat_bytes);
    let (os, db) = (p.os(), p.weight_double_buffer);
    let per = p.period();
    let mut g = Gen {
        s: String::new(),
        sb: p.spad_bytes,
        ab: p.acc_bytes,
    };
    let pe = |i: u32, j: u32, port: &str| pe_port(p, i, j, port);

    // Registers.
    g.line("// The descriptor control (`ctl`, a Ctl block).");
    g.line("wire busy_q = ctl$busy;\nwire done_w = ctl$done;\nwire free_w = ctl$free;");
    g.line("wire [255:0] d_q = ctl$d;\nwire [31:0] cnt_q = ctl$cnt;\nwire [31:0] lat_q = ctl$lat;");
    g.line("// The lane pipeline control (`lc`, a LaneCtl block): the A and C pointers.");
    if !os {
        g.line("wire [31:0] sa_q = lc$sa;\nwire [31:0] sb_q = lc$sb;");
    }
    g.line("// Registers (State in compute.rs).");
    let db_regs = ["so_q", "lc_q", "lw_q", "lk_q", "ln_q"];
    let os_regs = ["fq_q", "fj_q", "wd_q", "wq_q", "wj_q"];
    if db {
        g.line(format!("reg [31:0] {};", db_regs.join(", ")));
        g.line("reg bank_q, lb_q, lbank_q, pf_q;");
    }
    if os {
        g.line(format!("reg [31:0] {};", os_regs.join(", ")));
    }
    g.line(format!(
        "reg [7:0] spad [0:{}];\nreg [7:0] accm [0:{}];\ninteger i;",
        p.spad_bytes - 1,
        p.acc_bytes - 1
    ));
    g.line("initial begin");
    if db {
        g.line(format!(
            "  so_q = 32'd{r}; lc_q = 32'd0; lw_q = 32'd0; lk_q = 32'd0; ln_q = 32'd0;"
        ));
        g.line("  bank_q = 1'b0; lb_q = 1'b0; lbank_q = 1'b0; pf_q = 1'b0;");
    }
    if os {
        for n in os_regs {
            g.line(format!("  {n} = 32'd0;"));
        }
    }
    g.line(format!(
        "  for (i = 0; i < {}; i = i + 1) spad[i] = 8'd0;",
        p.spad_bytes
    ));
    g.line(format!(
        "  for (i = 0; i < {}; i = i + 1) accm[i] = 8'd0;",
        p.acc_bytes
    ));
    g.line("end");

    // Decode.
    g.line("// Descriptor fields.");
    g.line(
        "wire [7:0] op_w = d_q[7:0];\nwire f0_w = d_q[12];\nwire f1_w = d_q[13];\nwire f2_w = d_q[14];",
    );
    for w in 1..8 {
        g.line(format!(
            "wire [31:0] w{w}_w = d_q[{}:{}];",
            32 * w + 31,
            32 * w
        ));
    }

    // MATMUL control.
    g.line("// MATMUL.");
    g.line("wire mm_w = busy_q && (op_w == 8'd3);");
    g.line("wire [31:0] mk_w = {16'd0, w4_w[31:16]};");
    g.line("wire [31:0] mn_w = {16'd0, w5_w[15:0]};");
    g.line("wire [31:0] mm_m_w = {16'd0, w4_w[15:0]};");
    if os {
        matmul_os(&mut g, p);
    } else {
        matmul_ws(&mut g, p);
    }

    // Lane pipeline.
    g.line("// ACT / ADD / MAX pipeline.");
    g.line("wire rd_w = lc$rd;");
    for l in 0..c {
        // ACT read.
        // The lane's addresses and valid bits (`la$<l>`, a LaneAddr block).
        for (w, n) in [
            ("", "aok"),
            ("", "bok"),
            ("", "qok"),
            ("", "eok"),
            ("", "we8"),
            ("", "we32"),
            ("[31:0] ", "asrc"),
            ("[31:0] ", "abia"),
            ("[31:0] ", "qta"),
            ("[31:0] ", "eaa"),
            ("[31:0] ", "eba"),
            ("[31:0] ", "wsb"),
            ("[31:0] ", "wav"),
        ] {
            g.line(format!("wire {w}{n}_{l} = la${l}${n};"));
        }
        let a = g.ac32(&format!("asrc_{l}"));
        g.line(format!("wire [31:0] aacc_{l} = aok_{l} ? {a} : 32'd0;"));
        let b = g.ac32(&format!("abia_{l}"));
        g.line(format!("wire [31:0] abv_{l} = bok_{l} ? {b} : 32'd0;"));
        // ACT PER_CHANNEL: the lane's table entry.
        let m = g.ac32(&format!("qta_{l}"));
        g.line(format!("wire [31:0] qm_{l} = qok_{l} ? {m} : 32'd0;"));
        let sh = g.ac8(&format!("(qta_{l}) + 32'd4"));
        g.line(format!("wire [7:0] qsh_{l} = qok_{l} ? {sh} : 8'd0;"));
        // ADD / MAX read.
        let ea = g.sp8(&format!("eaa_{l}"));
        g.line(format!("wire [7:0] ea_{l} = eok_{l} ? {ea} : 8'd0;"));
        let eb = g.sp8(&format!("eba_{l}"));
        g.line(format!("wire [7:0] eb_{l} = eok_{l} ? {eb} : 8'd0;"));
        // Write stage: its ADD's old accumulator.
        let old = g.ac32(&format!("wav_{l}"));
        g.line(format!("wire [31:0] wold_{l} = {old};"));
    }

    // Bits nobody reads (reserved descriptor bits, array edges).
    let mut unused = vec!["d_q[11:8]".to_string(), "d_q[31:15]".to_string()];
    if !db {
        unused.push("head_ready".to_string());
    }
    if os {
        unused.push("lc$sa".to_string());
        unused.push("lc$sb".to_string());
    }
    for i in 0..r {
        for j in 0..c {
            if os {
                if i + 1 == r {
                    unused.push(pe(i, j, "w_out"));
                }
                if j + 1 == c {
                    unused.push(pe(i, j, "a_out"));
                    unused.push(pe(i, j, "f_out"));
                }
                continue;
            }
            if i + 1 < r {
                unused.push(pe(i, j, "sum"));
            } else {
                unused.push(pe(i, j, "psum_out"));
                unused.push(pe(i, j, "w_out"));
            }
            if j + 1 == c {
                unused.push(pe(i, j, "a_out"));
                if db {
                    unused.push(pe(i, j, "sel_out"));
                }
            }
        }
    }
    g.line(format!("wire unused_ok = ^{{{}}};", unused.join(", ")));

    // Children.
    g.line("// Skew and deskew buffers, array, lanes.");
    g.line("always @(*) begin");
    let iso = if db {
        "iso_w".to_string()
    } else {
        "32'd0".to_string()
    };
    for (port, v) in [
        ("clock", "clock"),
        ("enable", "enable"),
        ("clear", "clear"),
        ("issue", "issue"),
        ("desc", "desc"),
        ("iso", iso.as_str()),
    ] {
        g.line(format!("  ctl${port} = {v};"));
    }
    let (mm_sa, mm_sb) = if os {
        ("1'b0", "1'b0")
    } else {
        ("stream_w", "mmwr_w")
    };
    for (port, v) in [
        ("clock", "clock"),
        ("enable", "enable"),
        ("clear", "clear"),
        ("start", "issue && free_w"),
        ("start_mm", "desc[7:0] == 8'd3"),
        ("start_a", "desc[63:32]"),
        ("start_c", "desc[127:96]"),
        ("busy", "busy_q"),
        ("op", "op_w"),
        ("w2", "w2_w"),
        ("w3", "w3_w"),
        ("w4", "w4_w"),
        ("mn", "w5_w[15:0]"),
        ("cnt", "cnt_q"),
        ("lat", "lat_q"),
        ("mm_sa", mm_sa),
        ("mm_sb", mm_sb),
    ] {
        g.line(format!("  lc${port} = {v};"));
    }
    for l in 0..c {
        for (port, v) in [
            ("op", "op_w"),
            ("f1", "f1_w"),
            ("f2", "f2_w"),
            ("w1", "w1_w"),
            ("w2", "w2_w"),
            ("w3", "w3_w"),
            ("w4", "w4_w"),
            ("w7", "w7_w"),
            ("sa", "lc$sa"),
            ("sb", "lc$sb"),
            ("sg", "lc$sg"),
            ("v2", "lc$v2"),
            ("wa2", "lc$wa2"),
            ("wn2", "lc$wn2"),
        ] {
            g.line(format!("  la${l}${port} = {v};"));
        }
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    for i in 0..r {
        let a = if os {
            format!("oa_{i}")
        } else {
            let rd = g.sp8(&format!("sa_q + 32'd{i}"));
            format!("(stream_w && (32'd{i} < mk_w)) ? {rd} : 8'd0")
        };
        lines.push((format!("sk${i}"), a));
        if os {
            lines.push((format!("skf${i}"), "ofirst_w".into()));
        } else if db {
            lines.push((format!("skf${i}"), "stream_w && bank_q".into()));
        }
    }
    for j in (0..c).filter(|_| os) {
        lines.push((format!("wsk${j}"), format!("ow_{j}")));
    }
    for j in (0..c.saturating_sub(1)).filter(|_| !os) {
        lines.push((format!("dsk${j}"), format!("bot_{j}")));
    }
    for (l, d) in lines {
        g.line(format!(
            "  {l}$clock = clock;\n  {l}$en = enable && !clear;\n  {l}$d = {d};"
        ));
    }
    for i in 0..r {
        for j in 0..c {
            g.line(format!("  {} = clock;", pe(i, j, "clock")));
            g.line(format!("  {} = enable;", pe(i, j, "en")));
            if os {
                let (a_in, f_in) = if j == 0 {
                    (format!("sk${i}$q"), format!("skf${i}$q"))
                } else {
                    (pe(i, j - 1, "a_out"), pe(i, j - 1, "f_out"))
                };
                let w_in = if i == 0 {
                    format!("wsk${j}$q")
                } else {
                    pe(i - 1, j, "w_out")
                };
                g.line(format!("  {} = {a_in};", pe(i, j, "a_in")));
                g.line(format!("  {} = {f_in};", pe(i, j, "f_in")));
                g.line(format!("  {} = {w_in};", pe(i, j, "w_in")));
                continue;
            }
            if db {
                g.line(format!("  {} = lb_q;", pe(i, j, "w_shift")));
                g.line(format!("  {} = lbank_q;", pe(i, j, "w_bank")));
                let sel = if j == 0 {
                    format!("skf${i}$q")
                } else {
                    pe(i, j - 1, "sel_out")
                };
                g.line(format!("  {} = {sel};", pe(i, j, "sel_in")));
            } else {
                g.line(format!("  {} = wshift_w;", pe(i, j, "w_shift")));
            }
            let w_in = if i == 0 {
                format!("wp_{j}")
            } else {
                pe(i - 1, j, "w_out")
            };
            g.line(format!("  {} = {w_in};", pe(i, j, "w_in")));
            let a_in = if j == 0 {
                format!("sk${i}$q")
            } else {
                pe(i, j - 1, "a_out")
            };
            g.line(format!("  {} = {a_in};", pe(i, j, "a_in")));
            let ps = if i == 0 {
                "32'd0".to_string()
            } else {
                pe(i - 1, j, "psum_out")
            };
            g.line(format!("  {} = {ps};", pe(i, j, "psum_in")));
        }
    }
    for l in 0..c {
        for (port, v) in [
            ("clock", "clock".to_string()),
            ("en", "enable && !clear".to_string()),
            ("ld", "rd_w".to_string()),
            ("is_act", "op_w == 8'd4".to_string()),
            ("is_add", "op_w == 8'd5".to_string()),
            ("is_max", "op_w == 8'd6".to_string()),
            ("f0", "f0_w".to_string()),
            ("f2", "f2_w".to_string()),
            ("w5", "w5_w".to_string()),
            ("w6", "w6_w".to_string()),
            ("acc", format!("aacc_{l}")),
            ("bias", format!("abv_{l}")),
            ("qm", format!("qm_{l}")),
            ("qs", format!("qsh_{l}")),
            ("ea", format!("ea_{l}")),
            ("eb", format!("eb_{l}")),
            ("old", format!("wold_{l}")),
        ] {
            g.line(format!("  lane${l}${port} = {v};"));
        }
    }
    g.line("end");

    // Outputs.
    g.line("// Outputs.");
    g.line("always @(*) begin");
    g.line("  busy = busy_q;\n  done = done_w;\n  dma_rd_data = 512'd0;");
    for i in 0..bb {
        let a = format!("dma_rd_addr + 32'd{i}");
        let (x, y) = (g.ac8(&a), g.sp8(&a));
        g.line(format!(
            "  dma_rd_data[{}:{}] = dma_rd_acc ? {x} : {y};",
            8 * i + 7,
            8 * i
        ));
    }
    g.line("end");

    // Registers.
    g.line("// State changes.");
    g.line("always @(posedge clock) begin");
    g.line("  if (clear) begin");
    if db {
        g.line("    lb_q <= 1'b0;\n    pf_q <= 1'b0;");
    }
    g.line("    spad <= '{default: 8'd0};\n    accm <= '{default: 8'd0};");
    g.line("  end else if (enable) begin");
    if os {
        edge_os(&mut g, p);
    } else {
        edge_ws(&mut g, p);
    }
    // The lanes' results at their write enables.
    for l in 0..c {
        let w = g.wr_sp(&format!("wsb_{l}"), &format!("lane${l}$q8"));
        g.line(format!("    if (we8_{l}) begin {w} end"));
        g.line(format!("    if (we32_{l}) begin"));
        g.wr_ac32("      ", &format!("wav_{l}"), &format!("lane${l}$q32"));
        g.line("    end");
    }
    if db {
        g.line(format!(
            "    if (lb_q) begin if (lc_q == 32'd{r}) lb_q <= 1'b0; else lc_q <= lc_q + 32'd1; end"
        ));
        g.line("    if (ls_w) begin");
        g.line("      lb_q <= 1'b1;\n      lc_q <= 32'd1;\n      lw_q <= desc[95:64];");
        g.line("      lk_q <= {16'd0, desc[159:144]};\n      ln_q <= {16'd0, desc[175:160]};");
        g.line("      lbank_q <= !lbank_q;\n      pf_q <= 1'b1;");
        g.line("    end");
    }
    g.line("    if (issue && free_w) begin");
    if db {
        g.line("      if (ismm_w) begin");
        g.line("        so_q <= iso_w;\n        bank_q <= ls_w ? !lbank_q : lbank_q;\n        pf_q <= 1'b0;");
        g.line("      end");
    }
    if os {
        g.line(format!(
            "      fq_q <= 32'd0;\n      fj_q <= 32'd0;\n      wd_q <= 32'd{};\n      wq_q <= 32'd0;\n      wj_q <= 32'd0;",
            per + c + 1
        ));
    }
    g.line("    end");
    g.line("    if (dma_wr) begin");
    for i in 0..DMA_PORT_BYTES {
        let a = format!("dma_wr_addr + 32'd{i}");
        let v = format!("dma_wr_data[{}:{}]", 8 * i + 7, 8 * i);
        let (wa, ws) = (g.wr_ac(&a, &v), g.wr_sp(&a, &v));
        g.line(format!(
            "      if (8'd{i} < dma_wr_len) begin if (dma_wr_acc) begin {wa} end else begin {ws} end end"
        ));
    }
    g.line("    end");
    g.line("  end");
    g.line("end");
    let mut out = String::new();
    let _ = write!(out, "{}", g.s);
    out
}

/// Weight-stationary MATMUL registers at an edge (`Compute::edge_ws`).
fn edge_ws(g: &mut Gen, p: &ComputeParams) {
    let c = p.cols;
    g.line("    if (mmwr_w) begin");
    for j in 0..c {
        g.line(format!("      if (32'd{j} < mn_w) begin"));
        g.wr_ac32("        ", &format!("moa_{j}"), &format!("mov_{j}"));
        g.line("      end");
    }
    g.line("    end");
}

/// Output-stationary MATMUL registers at an edge (`Compute::edge_os`).
fn edge_os(g: &mut Gen, p: &ComputeParams) {
    let (c, per) = (p.cols, p.period());
    g.line("    if (mm_w) begin");
    g.line(format!(
        "      if ((fq_q + 32'd1) == 32'd{per}) begin fq_q <= 32'd0; fj_q <= fj_q + 32'd1; end"
    ));
    g.line("      else fq_q <= fq_q + 32'd1;");
    g.line("      if (wd_q != 32'd0) wd_q <= wd_q - 32'd1;");
    g.line("      else begin");
    g.line(format!(
        "        if ((wq_q + 32'd1) == 32'd{per}) begin wq_q <= 32'd0; wj_q <= wj_q + 32'd1; end"
    ));
    g.line("        else wq_q <= wq_q + 32'd1;");
    g.line("        if (owr_w) begin");
    for j in 0..c {
        g.line(format!("          if (32'd{j} < mn_w) begin"));
        g.wr_ac32("            ", &format!("ooa_{j}"), &format!("oov_{j}"));
        g.line("          end");
    }
    g.line("        end");
    g.line("      end");
    g.line("    end");
}
