// extern "C" wrapper around one Verilated variant of module `top`
// (docs/rtl.md, "Top-level ports"). Compiled once per variant by rtl/build.rs
// with -DNPU_PREFIX=<variant name> -DNPU_CLASS=V<name> -DNPU_HEADER="V<name>.h".
// The Rust side (rtl/src/ffi.rs) mirrors the two structs below field for
// field; keep them in step.

#include <cstdint>
#include <cstring>
#include <memory>

#include "verilated.h"
#include "verilated_vcd_c.h"
#include NPU_HEADER

#define NPU_CAT2(a, b) a##_##b
#define NPU_CAT(a, b) NPU_CAT2(a, b)
#define NPU_FN(name) NPU_CAT(NPU_PREFIX, name)

extern "C" {

// Inputs of a cycle edge (advance = 1). Data ports hold 16 little-endian
// 32-bit words: byte 0 of the beat in bits 7:0 of word 0.
struct npu_in {
    uint64_t mem_size;
    uint64_t resp_tag;
    uint32_t resp_data[16];
    uint8_t port_ready;
    uint8_t resp_valid;
    uint8_t pad[6];
};

// Outputs sampled before the rising edge.
struct npu_out {
    uint64_t req_addr;
    uint64_t req_wmask;
    uint64_t req_tag;
    uint64_t ev_err_addr;
    uint32_t req_wdata[16];
    uint32_t ev_dispatch_desc[8];
    uint32_t ev_issue_index[3];
    uint32_t ev_done_index[4];
    uint32_t ev_dispatch_index;
    uint32_t ev_issue_opcode;
    uint32_t ev_done_opcode;
    uint32_t ev_fence_index;
    uint32_t ev_fence_seq;
    uint32_t ev_irq_status;
    uint32_t ev_err_desc;
    uint32_t mmio_rdata;
    uint8_t req_valid;
    uint8_t req_write;
    uint8_t req_who;
    uint8_t req_kind;
    uint8_t irq;
    uint8_t ev_resp;
    uint8_t ev_dispatch;
    uint8_t ev_dispatch_unit;
    uint8_t ev_issue;
    uint8_t ev_done;
    uint8_t ev_tok_push;
    uint8_t ev_tok_pop;
    uint8_t ev_fence;
    uint8_t ev_irq;
    uint8_t ev_error;
    uint8_t ev_err_code;
};

}  // extern "C"

namespace {

struct Sim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<NPU_CLASS> top;
    std::unique_ptr<VerilatedVcdC> vcd;
    uint64_t time = 0;

    void half(uint8_t clk) {
        top->clock = clk;
        top->eval();
        if (vcd) vcd->dump(time);
        time++;
    }
};

template <typename W>
void copy_words(uint32_t* dst, const W& src, int n) {
    for (int i = 0; i < n; i++) dst[i] = src[i];
}

void read_outputs(const NPU_CLASS* t, npu_out* o) {
    o->req_addr = t->req_addr;
    o->req_wmask = t->req_wmask;
    o->req_tag = t->req_tag;
    o->ev_err_addr = t->ev_err_addr;
    copy_words(o->req_wdata, t->req_wdata, 16);
    copy_words(o->ev_dispatch_desc, t->ev_dispatch_desc, 8);
    copy_words(o->ev_issue_index, t->ev_issue_index, 3);
    copy_words(o->ev_done_index, t->ev_done_index, 4);
    o->ev_dispatch_index = t->ev_dispatch_index;
    o->ev_issue_opcode = t->ev_issue_opcode;
    o->ev_done_opcode = t->ev_done_opcode;
    o->ev_fence_index = t->ev_fence_index;
    o->ev_fence_seq = t->ev_fence_seq;
    o->ev_irq_status = t->ev_irq_status;
    o->ev_err_desc = t->ev_err_desc;
    o->mmio_rdata = t->mmio_rdata;
    o->req_valid = t->req_valid;
    o->req_write = t->req_write;
    o->req_who = t->req_who;
    o->req_kind = t->req_kind;
    o->irq = t->irq;
    o->ev_resp = t->ev_resp;
    o->ev_dispatch = t->ev_dispatch;
    o->ev_dispatch_unit = t->ev_dispatch_unit;
    o->ev_issue = t->ev_issue;
    o->ev_done = t->ev_done;
    o->ev_tok_push = t->ev_tok_push;
    o->ev_tok_pop = t->ev_tok_pop;
    o->ev_fence = t->ev_fence;
    o->ev_irq = t->ev_irq;
    o->ev_error = t->ev_error;
    o->ev_err_code = t->ev_err_code;
}

}  // namespace

extern "C" {

// Creates the model with every input at 0 and the clock low. With a non-null
// `vcd_path`, every signal of the design is traced to that VCD file (one time
// unit per clock level). Returns null if the trace file cannot be opened.
void* NPU_FN(create)(const char* vcd_path) {
    auto* s = new Sim();
    s->ctx.reset(new VerilatedContext());
    if (vcd_path) s->ctx->traceEverOn(true);
    s->top.reset(new NPU_CLASS(s->ctx.get(), "top"));
    NPU_CLASS* t = s->top.get();
    t->clock = 0;
    t->advance = 0;
    t->mmio_we = 0;
    t->mmio_addr = 0;
    t->mmio_wdata = 0;
    t->mem_size = 0;
    t->port_ready = 0;
    t->resp_valid = 0;
    t->resp_tag = 0;
    for (int i = 0; i < 16; i++) t->resp_data[i] = 0;
    if (vcd_path) {
        s->vcd.reset(new VerilatedVcdC());
        t->trace(s->vcd.get(), 99);
        s->vcd->open(vcd_path);
        if (!s->vcd->isOpen()) {
            s->vcd.reset();
            delete s;
            return nullptr;
        }
    }
    t->eval();
    return s;
}

void NPU_FN(destroy)(void* h) {
    auto* s = static_cast<Sim*>(h);
    if (!s) return;
    if (s->vcd) s->vcd->close();
    s->top->final();
    delete s;
}

// One cycle edge: drives the inputs (advance = 1), evaluates with the clock
// low, copies the outputs (valid before the edge) into `o`, then raises and
// lowers the clock.
void NPU_FN(cycle)(void* h, const npu_in* in, npu_out* o) {
    auto* s = static_cast<Sim*>(h);
    NPU_CLASS* t = s->top.get();
    t->advance = 1;
    t->mmio_we = 0;
    t->mem_size = in->mem_size;
    t->port_ready = in->port_ready;
    t->resp_valid = in->resp_valid;
    t->resp_tag = in->resp_tag;
    for (int i = 0; i < 16; i++) t->resp_data[i] = in->resp_data[i];
    s->half(0);
    read_outputs(t, o);
    s->half(1);
    t->advance = 0;
    t->port_ready = 0;
    t->resp_valid = 0;
    s->half(0);
}

// One MMIO write edge (advance = 0, mmio_we = 1).
void NPU_FN(mmio_write)(void* h, uint32_t addr, uint32_t data) {
    auto* s = static_cast<Sim*>(h);
    NPU_CLASS* t = s->top.get();
    t->advance = 0;
    t->mmio_we = 1;
    t->mmio_addr = addr & 0xFFF;
    t->mmio_wdata = data;
    s->half(0);
    s->half(1);
    t->mmio_we = 0;
    s->half(0);
}

// A combinational MMIO read: no edge.
uint32_t NPU_FN(mmio_read)(void* h, uint32_t addr) {
    auto* s = static_cast<Sim*>(h);
    NPU_CLASS* t = s->top.get();
    t->mmio_addr = addr & 0xFFF;
    t->eval();
    return t->mmio_rdata;
}

// The interrupt line after the last edge.
uint8_t NPU_FN(irq)(void* h) {
    auto* s = static_cast<Sim*>(h);
    return s->top->irq;
}

void NPU_FN(flush)(void* h) {
    auto* s = static_cast<Sim*>(h);
    if (s->vcd) s->vcd->flush();
}

}  // extern "C"
