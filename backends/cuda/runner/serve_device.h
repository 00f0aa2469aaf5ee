// The device side of `runner --serve` (serve.h has the protocol): buffers, kernels looked up
// in the generated table (serve_kernels.h), bindings and submissions, every request checked
// before anything runs and every CUDA call checked, a failure thrown as serve::Error for
// the loop to answer as an error frame.
#pragma once
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>
#include "runner_device.h"
#include "serve_kernels.h"

namespace serve {

using namespace serve_table;

struct Error : std::runtime_error { using std::runtime_error::runtime_error; };

inline void check(cudaError_t e, const char* call) {
  if (e != cudaSuccess) throw Error(std::string(call) + " failed: " + cudaGetErrorString(e));
}
#define SERVE_CHECK(call) ::serve::check((call), #call)

/** A request's payload, read field by field; reading past its end is a bad frame. */
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <class T> T get(const char* what) {
    if (n_ - at_ < sizeof(T)) throw Error(std::string("frame ends before its ") + what);
    T v;
    std::memcpy(&v, p_ + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  const uint8_t* rest(size_t* n) { *n = n_ - at_; const uint8_t* r = p_ + at_; at_ = n_; return r; }
  void end() { if (at_ != n_) throw Error("frame has " + std::to_string(n_ - at_) + " bytes after its fields"); }
 private:
  const uint8_t* p_;
  size_t n_, at_ = 0;
};

/** Text from the client for a message: printable ASCII kept, the rest as '?', at most 80 characters. */
inline std::string printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n && i < 80; i++) s += (p[i] >= 32 && p[i] < 127) ? char(p[i]) : '?';
  return s;
}

struct Buffer { void* device = nullptr; std::vector<uint8_t> host; uint64_t bytes = 0; bool uniform = false; std::string label; };
struct Binding { uint32_t kernel; std::vector<uint32_t> buffers; };

class Server {
 public:
  ~Server() { for (auto& b : buffers_) if (b.second.device) cudaFree(b.second.device); }

  /** Answers one request; returns false after SHUTDOWN. */
  bool handle(const uint8_t* frame, size_t n, std::vector<uint8_t>& out) {
    if (n == 0) throw Error("empty frame (no op)");
    Reader r(frame + 1, n - 1);
    switch (frame[0]) {
      case OP_HELLO: r.end(); hello(out); return true;
      case OP_ALLOCATE: allocate(r); return true;
      case OP_UPLOAD: upload(r); return true;
      case OP_COMPILE: compile(r, out); return true;
      case OP_BIND: bind(r); return true;
      case OP_SUBMIT: submit(r, out); return true;
      case OP_FREE: { const uint32_t id = r.get<uint32_t>("buffer id"); r.end(); Buffer& b = buffer(id); if (b.device) SERVE_CHECK(cudaFree(b.device)); buffers_.erase(id); return true; }
      case OP_SHUTDOWN: r.end(); return false;
    }
    throw Error("unknown op " + std::to_string(frame[0]));
  }

 private:
  template <class T> static void put(std::vector<uint8_t>& out, T v) {
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &v, sizeof(T));
  }

  static constexpr uint32_t MAX_GROUPS = 65535;
  static constexpr uint64_t MAX_BUFFER = 1ull << 31;

  void hello(std::vector<uint8_t>& out) {
    std::string what;
#ifdef INFER_EMU
    what = "CUDA emulation on the CPU (runner-emu)";
#else
    int dev = 0;
    cudaDeviceProp p{};
    SERVE_CHECK(cudaGetDevice(&dev));
    SERVE_CHECK(cudaGetDeviceProperties(&p, dev));
    what = std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + std::to_string(p.totalGlobalMem >> 20) + " MiB)";
#endif
    put<uint32_t>(out, VERSION);
    put<uint32_t>(out, KERNEL_COUNT);
    put<uint32_t>(out, MAX_GROUPS);
#ifdef INFER_EMU
    put<uint32_t>(out, 1 | 2);
#else
    put<uint32_t>(out, 1);
#endif
    put<uint64_t>(out, MAX_BUFFER);
    put<uint64_t>(out, MAX_BUFFER);
    out.insert(out.end(), what.begin(), what.end());
  }

  Buffer& buffer(uint32_t id) {
    auto it = buffers_.find(id);
    if (it == buffers_.end()) throw Error("unknown buffer id " + std::to_string(id));
    return it->second;
  }

  void allocate(Reader& r) {
    const uint32_t id = r.get<uint32_t>("buffer id");
    const uint8_t use = r.get<uint8_t>("use");
    const uint64_t bytes = r.get<uint64_t>("size");
    size_t n;
    const uint8_t* label = r.rest(&n);
    if (buffers_.count(id)) throw Error("buffer id " + std::to_string(id) + " is in use");
    if (use != USE_STORAGE && use != USE_UNIFORM) throw Error("unknown buffer use " + std::to_string(use));
    if (bytes > MAX_BUFFER || (use == USE_UNIFORM && bytes > 4096)) throw Error("buffer '" + printable(label, n) + "' of " + std::to_string(bytes) + " bytes is over the limit");
    Buffer b;
    b.bytes = bytes;
    b.uniform = use == USE_UNIFORM;
    b.label = printable(label, n);
    if (b.uniform) b.host.assign(bytes, 0);
    else {
      SERVE_CHECK(cudaMalloc(&b.device, bytes ? bytes : 1));
      const cudaError_t e = cudaMemset(b.device, 0, bytes);
      if (e != cudaSuccess) { cudaFree(b.device); check(e, "cudaMemset"); }
    }
    buffers_.emplace(id, std::move(b));
  }

  static void in_range(const Buffer& b, uint64_t offset, uint64_t bytes, const char* what) {
    if (offset > b.bytes || bytes > b.bytes - offset) {
      throw Error(std::string(what) + " of " + std::to_string(bytes) + " bytes at " + std::to_string(offset) + " is outside buffer '" + b.label + "' (" + std::to_string(b.bytes) + " bytes)");
    }
  }

  void upload(Reader& r) {
    Buffer& b = buffer(r.get<uint32_t>("buffer id"));
    const uint64_t offset = r.get<uint64_t>("offset");
    size_t n;
    const uint8_t* data = r.rest(&n);
    in_range(b, offset, n, "upload");
    if (b.uniform) std::memcpy(b.host.data() + offset, data, n);
    else SERVE_CHECK(cudaMemcpy(static_cast<uint8_t*>(b.device) + offset, data, n, cudaMemcpyHostToDevice));
  }

  void compile(Reader& r, std::vector<uint8_t>& out) {
    const uint32_t id = r.get<uint32_t>("kernel id");
    const uint32_t min_tokens = r.get<uint32_t>("min tokens");
    const uint32_t hash = r.get<uint32_t>("source hash");
    const uint64_t bytes = r.get<uint64_t>("source bytes");
    size_t n;
    const uint8_t* key = r.rest(&n);
    const std::string k(reinterpret_cast<const char*>(key), n);
    if (kernels_.count(id)) throw Error("kernel id " + std::to_string(id) + " is in use");
    for (uint32_t i = 0; i < KERNEL_COUNT; i++) {
      const Kernel& c = KERNELS[i];
      if (k != c.key || c.min_tokens != min_tokens) continue;
      if (c.source_hash != hash || c.source_bytes != bytes) throw Error("kernel " + printable(key, n) + " (>= " + std::to_string(min_tokens) + " tokens) differs from the rendering this runner was built from: rebuild the runner");
      kernels_.emplace(id, i);
      put<uint32_t>(out, c.bindings);
      return;
    }
    throw Error("this runner has no kernel " + printable(key, n) + " for >= " + std::to_string(min_tokens) + " tokens");
  }

  void bind(Reader& r) {
    const uint32_t id = r.get<uint32_t>("binding id");
    const uint32_t kid = r.get<uint32_t>("kernel id");
    const uint32_t n = r.get<uint32_t>("buffer count");
    if (bindings_.count(id)) throw Error("binding id " + std::to_string(id) + " is in use");
    auto k = kernels_.find(kid);
    if (k == kernels_.end()) throw Error("unknown kernel id " + std::to_string(kid));
    const Kernel& c = KERNELS[k->second];
    if (n != c.bindings) throw Error("kernel " + std::string(c.key) + " binds " + std::to_string(c.bindings) + " buffers, not " + std::to_string(n));
    Binding b{k->second, {}};
    for (uint32_t i = 0; i < n; i++) {
      const uint32_t bid = r.get<uint32_t>("buffer id");
      if (buffer(bid).uniform != (i == c.uniform)) throw Error("kernel " + std::string(c.key) + " binding " + std::to_string(i) + (i == c.uniform ? " is the step uniform" : " is a storage buffer") + "; buffer '" + buffer(bid).label + "' is not");
      b.buffers.push_back(bid);
    }
    r.end();
    bindings_.emplace(id, std::move(b));
  }

  struct Copy { uint32_t from; uint64_t from_offset; uint32_t to; uint64_t to_offset, bytes; };
  struct Dispatch { uint32_t binding, grid[3]; };
  struct Readback { uint32_t buffer; uint64_t offset, bytes; };

  void submit(Reader& r, std::vector<uint8_t>& out) {
    const uint32_t nc = r.get<uint32_t>("copy count"), nd = r.get<uint32_t>("dispatch count"), nr = r.get<uint32_t>("readback count");
    const bool timed = r.get<uint8_t>("timed flag") != 0;
    std::vector<Copy> copies;
    std::vector<Dispatch> dispatches;
    std::vector<Readback> readbacks;
    // Counts are bounded by the frame: each entry is read (and checked) before the next is kept.
    for (uint32_t i = 0; i < nc; i++) {
      Copy c{r.get<uint32_t>("copy source"), r.get<uint64_t>("copy source offset"), r.get<uint32_t>("copy target"), r.get<uint64_t>("copy target offset"), r.get<uint64_t>("copy size")};
      const Buffer &from = buffer(c.from), &to = buffer(c.to);
      if (from.uniform || to.uniform) throw Error("a copy touches the step uniform");
      in_range(from, c.from_offset, c.bytes, "copy source");
      in_range(to, c.to_offset, c.bytes, "copy target");
      if (c.from == c.to && c.from_offset < c.to_offset + c.bytes && c.to_offset < c.from_offset + c.bytes) throw Error("a copy's source and target overlap");
      copies.push_back(c);
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < nd; i++) {
      Dispatch d{r.get<uint32_t>("dispatch binding"), {r.get<uint32_t>("grid x"), r.get<uint32_t>("grid y"), r.get<uint32_t>("grid z")}};
      auto b = bindings_.find(d.binding);
      if (b == bindings_.end()) throw Error("unknown binding id " + std::to_string(d.binding));
      for (uint32_t id : b->second.buffers) buffer(id);
      for (uint32_t g : d.grid) if (g < 1 || g > MAX_GROUPS) throw Error("a grid of " + std::to_string(d.grid[0]) + "x" + std::to_string(d.grid[1]) + "x" + std::to_string(d.grid[2]) + " is outside 1.." + std::to_string(MAX_GROUPS) + " per dimension");
      dispatches.push_back(d);
    }
    for (uint32_t i = 0; i < nr; i++) {
      Readback rb{r.get<uint32_t>("readback buffer"), r.get<uint64_t>("readback offset"), r.get<uint64_t>("readback size")};
      const Buffer& b = buffer(rb.buffer);
      in_range(b, rb.offset, rb.bytes, "readback");
      total += rb.bytes;
      readbacks.push_back(rb);
    }
    r.end();
    if (total + 8ull * nd > MAX_FRAME) throw Error("the readbacks total " + std::to_string(total) + " bytes, over a frame's " + std::to_string(MAX_FRAME));
    for (const Copy& c : copies) {
      SERVE_CHECK(cudaMemcpy(static_cast<uint8_t*>(buffer(c.to).device) + c.to_offset, static_cast<uint8_t*>(buffer(c.from).device) + c.from_offset, c.bytes, cudaMemcpyDeviceToDevice));
    }
    std::vector<double> ns;
    cudaEvent_t start = nullptr, stop = nullptr;
    if (timed) { SERVE_CHECK(cudaEventCreate(&start)); SERVE_CHECK(cudaEventCreate(&stop)); }
    try {
      for (const Dispatch& d : dispatches) {
        if (timed) SERVE_CHECK(cudaEventRecord(start));
        launch(bindings_.at(d.binding), d.grid);
        if (timed) {
          SERVE_CHECK(cudaEventRecord(stop));
          SERVE_CHECK(cudaEventSynchronize(stop));
          float ms = 0;
          SERVE_CHECK(cudaEventElapsedTime(&ms, start, stop));
          ns.push_back(double(ms) * 1e6);
        }
      }
    } catch (...) {
      if (timed) { cudaEventDestroy(start); cudaEventDestroy(stop); }
      throw;
    }
    if (timed) { SERVE_CHECK(cudaEventDestroy(start)); SERVE_CHECK(cudaEventDestroy(stop)); }
    SERVE_CHECK(cudaDeviceSynchronize());
    for (const Readback& rb : readbacks) {
      const Buffer& b = buffer(rb.buffer);
      const size_t at = out.size();
      out.resize(at + rb.bytes);
      if (b.uniform) std::memcpy(out.data() + at, b.host.data() + rb.offset, rb.bytes);
      else SERVE_CHECK(cudaMemcpy(out.data() + at, static_cast<const uint8_t*>(b.device) + rb.offset, rb.bytes, cudaMemcpyDeviceToHost));
    }
    for (double t : ns) put<double>(out, t);
  }

  void launch(const Binding& b, const uint32_t grid[3]) {
    const Kernel& c = KERNELS[b.kernel];
    std::vector<void*> args;
    unsigned tokens = 0;
    for (uint32_t i = 0; i < b.buffers.size(); i++) {
      Buffer& buf = buffer(b.buffers[i]);
      if (i == c.uniform) {
        if (buf.bytes < 4) throw Error("the step uniform of kernel " + std::string(c.key) + " holds no token count");
        std::memcpy(&tokens, buf.host.data(), 4);
      } else {
        args.push_back(buf.device);
      }
    }
    c.launch(dim3(grid[0], grid[1], grid[2]), dim3(c.block[0], c.block[1], c.block[2]), tokens, args.data());
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw Error(std::string("launch of kernel ") + c.key + " failed: " + cudaGetErrorString(e));
  }

  std::unordered_map<uint32_t, Buffer> buffers_;
  std::unordered_map<uint32_t, uint32_t> kernels_;
  std::unordered_map<uint32_t, Binding> bindings_;
};

}  // namespace serve
