// Bring-up stub for the harness: the full `top` port list of docs/rtl.md with
// trivial behaviour (ID/VERSION registers, a scratch register at WATCHDOG,
// a cycle counter at PERF_CYCLES). It is NOT an NPU: it only lets the build,
// the C++ wrapper and RtlDevice be tested without the real RTL. Used by
// rtl/tests/stub_harness.rs through NPUKIT_RTL_VARIANTS.
module top(
    input  wire         clock,
    input  wire         advance,
    input  wire         mmio_we,
    input  wire [11:0]  mmio_addr,
    input  wire [31:0]  mmio_wdata,
    output reg  [31:0]  mmio_rdata,
    input  wire [63:0]  mem_size,
    input  wire         port_ready,
    input  wire         resp_valid,
    input  wire [63:0]  resp_tag,
    input  wire [511:0] resp_data,
    output wire         req_valid,
    output wire         req_write,
    output wire [63:0]  req_addr,
    output wire [511:0] req_wdata,
    output wire [63:0]  req_wmask,
    output wire [1:0]   req_who,
    output wire [2:0]   req_kind,
    output wire [63:0]  req_tag,
    output wire         irq,
    output wire         ev_resp,
    output wire         ev_dispatch,
    output wire [1:0]   ev_dispatch_unit,
    output wire [31:0]  ev_dispatch_index,
    output wire [255:0] ev_dispatch_desc,
    output wire [2:0]   ev_issue,
    output wire [95:0]  ev_issue_index,
    output wire [23:0]  ev_issue_opcode,
    output wire [3:0]   ev_done,
    output wire [127:0] ev_done_index,
    output wire [31:0]  ev_done_opcode,
    output wire [3:0]   ev_tok_push,
    output wire [3:0]   ev_tok_pop,
    output wire         ev_fence,
    output wire [31:0]  ev_fence_index,
    output wire [31:0]  ev_fence_seq,
    output wire         ev_irq,
    output wire [31:0]  ev_irq_status,
    output wire         ev_error,
    output wire [7:0]   ev_err_code,
    output wire [31:0]  ev_err_desc,
    output wire [63:0]  ev_err_addr
);
    reg [63:0] cycles;
    reg [31:0] scratch;
    always @(posedge clock) begin
        if (advance) cycles <= cycles + 64'd1;
        if (mmio_we && !advance && mmio_addr == 12'h064) scratch <= mmio_wdata;
    end
    always @(*) begin
        case (mmio_addr)
            12'h000: mmio_rdata = 32'h4E50554B;
            12'h064: mmio_rdata = scratch;
            12'h100: mmio_rdata = cycles[31:0];
            12'h104: mmio_rdata = cycles[63:32];
            default: mmio_rdata = 32'd0;
        endcase
    end
    wire _unused = &{1'b0, mem_size, port_ready, resp_valid, resp_tag, resp_data};
    assign req_valid = 1'b0;
    assign req_write = 1'b0;
    assign req_addr = 64'd0;
    assign req_wdata = 512'd0;
    assign req_wmask = 64'd0;
    assign req_who = 2'd0;
    assign req_kind = 3'd0;
    assign req_tag = 64'd0;
    assign irq = 1'b0;
    assign ev_resp = 1'b0;
    assign ev_dispatch = 1'b0;
    assign ev_dispatch_unit = 2'd0;
    assign ev_dispatch_index = 32'd0;
    assign ev_dispatch_desc = 256'd0;
    assign ev_issue = 3'd0;
    assign ev_issue_index = 96'd0;
    assign ev_issue_opcode = 24'd0;
    assign ev_done = 4'd0;
    assign ev_done_index = 128'd0;
    assign ev_done_opcode = 32'd0;
    assign ev_tok_push = 4'd0;
    assign ev_tok_pop = 4'd0;
    assign ev_fence = 1'b0;
    assign ev_fence_index = 32'd0;
    assign ev_fence_seq = 32'd0;
    assign ev_irq = 1'b0;
    assign ev_irq_status = 32'd0;
    assign ev_error = 1'b0;
    assign ev_err_code = 8'd0;
    assign ev_err_desc = 32'd0;
    assign ev_err_addr = 64'd0;
endmodule
