//! The Verilog body of `top` (WIP placeholder: outputs idle).

use crate::gen::Params;

pub(super) fn body(_p: &Params) -> String {
    "
always @(*) begin
   mmio_rdata = 32'h0;
   req_valid = 1'b0; req_write = 1'b0; req_addr = 64'h0; req_wdata = 512'h0;
   req_wmask = 64'h0; req_who = 2'h0; req_kind = 3'h0; req_tag = 64'h0; irq = 1'b0;
   ev_resp = 1'b0; ev_dispatch = 1'b0; ev_dispatch_unit = 2'h0; ev_dispatch_index = 32'h0;
   ev_dispatch_desc = 256'h0; ev_issue = 3'h0; ev_issue_index = 96'h0; ev_issue_opcode = 24'h0;
   ev_done = 4'h0; ev_done_index = 128'h0; ev_done_opcode = 32'h0; ev_tok_push = 4'h0;
   ev_tok_pop = 4'h0; ev_fence = 1'b0; ev_fence_index = 32'h0; ev_fence_seq = 32'h0;
   ev_irq = 1'b0; ev_irq_status = 32'h0; ev_error = 1'b0; ev_err_code = 8'h0;
   ev_err_desc = 32'h0; ev_err_addr = 64'h0;
end
"
    .to_string()
}
