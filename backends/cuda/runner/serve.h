// `runner --serve`: the runner as a device for a TypeScript ProgramRunner (runtime/cuda/),
// which then brings its own batching, speculative decoding and sampling. It exposes exactly
// the Device operations of runtime/runner/device.ts over a binary protocol on stdin/stdout.
//
// Frames (all integers little-endian). stdout carries frames only; diagnostics go to stderr.
//   request: u32 length (bytes after this field, at most MAX_FRAME), u8 op, payload
//   reply:   u32 length, u8 status (0 ok, 1 error), payload (on error: a UTF-8 message)
// Every request gets exactly one reply, in order, so a client may send several before
// reading (ids are the client's: it names each new buffer, kernel and binding).
//   HELLO     -> u32 version, u32 kernels, u32 max groups per grid dim, u32 flags (1: can
//                time dispatches, 2: the CPU emulation, whose memory is the host's),
//                u64 max buffer bytes, u64 max binding bytes, description (UTF-8, rest)
//   ALLOCATE  u32 id, u8 use (0 storage, 1 uniform), u64 bytes, label (rest; messages only)
//             -> nothing. Zero-filled. A uniform buffer (the step uniform) is host memory:
//             a dispatch reads its first u32 (the step's token count) to launch.
//   UPLOAD    u32 id, u64 offset, data (rest) -> nothing
//   COMPILE   u32 id, u32 min tokens, u32 source hash, u64 source bytes, key (rest)
//             -> u32 bindings. Looks up the variant compiled in (serve_kernels.h) by key and
//             token bound; a hash or length that differs means another rendering: refused.
//   BIND      u32 id, u32 kernel id, u32 n, n x u32 buffer ids (binding order) -> nothing
//   SUBMIT    u32 copies, u32 dispatches, u32 readbacks, u8 timed, then
//             copies     (u32 from, u64 from offset, u32 to, u64 to offset, u64 bytes),
//             dispatches (u32 binding, u32 x, u32 y, u32 z),
//             readbacks  (u32 buffer, u64 offset, u64 bytes)
//             -> each readback's bytes in order, then (timed) f64 ns per dispatch.
//             Everything is checked before anything runs.
//   FREE      u32 id (a buffer) -> nothing. A binding that names it fails when dispatched.
//   SHUTDOWN  -> nothing; then the runner exits 0.
// A bad frame (unknown op, short or long payload, unknown id, out-of-range bytes) or a
// failed CUDA call answers an error frame and the runner reads on. Two things end it:
// EOF (status 0 between frames; 2 inside one, after an error frame), and a length over
// MAX_FRAME (error frame, status 2: the stream cannot be resynchronised). A kernel fault
// that the emulation reports ends the process (cuda_emu.h, status 70), as a sticky CUDA
// error would leave the context unusable: the client reports the exit and its stderr.
#pragma once
#include <unistd.h>
#include <cerrno>
#include <csignal>
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

/** Reads exactly n bytes; returns how many arrived before EOF. */
inline size_t read_full(uint8_t* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t k = ::read(0, p + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += size_t(k);
  }
  return got;
}

/** Writes n bytes to stdout; false when the client has gone. */
inline bool write_full(const uint8_t* p, size_t n) {
  size_t at = 0;
  while (at < n) {
    const ssize_t k = ::write(1, p + at, n - at);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    at += size_t(k);
  }
  return true;
}

/** Writes one reply frame; false when the client has gone. */
inline bool reply(uint8_t status, const uint8_t* p, size_t n) {
  uint8_t head[5];
  const uint32_t len = uint32_t(1 + n);
  std::memcpy(head, &len, 4);
  head[4] = status;
  return write_full(head, 5) && write_full(p, n);
}

inline bool reply_error(const std::string& m) {
  return reply(STATUS_ERROR, reinterpret_cast<const uint8_t*>(m.data()), m.size());
}

/** The serve loop: one reply per request until SHUTDOWN or EOF. */
inline int run() {
  std::signal(SIGPIPE, SIG_IGN);  // a client that went away is a write error, not a signal
  Server server;
  std::vector<uint8_t> frame, out;
  for (;;) {
    uint8_t head[4];
    const size_t got = read_full(head, 4);
    if (got == 0) return 0;
    if (got < 4) { reply_error("stdin ended inside a frame's length"); return 2; }
    uint32_t len;
    std::memcpy(&len, head, 4);
    if (len > MAX_FRAME) {
      reply_error("a frame of " + std::to_string(len) + " bytes is over the limit of " + std::to_string(MAX_FRAME) + "; the stream cannot be resynchronised");
      return 2;
    }
    frame.resize(len);
    if (read_full(frame.data(), len) < len) { reply_error("stdin ended inside a frame of " + std::to_string(len) + " bytes"); return 2; }
    out.clear();
    bool more = true;
    try {
      more = server.handle(frame.data(), len, out);
    } catch (const std::exception& e) {
      if (!reply_error(e.what())) return 0;
      continue;
    }
    if (!reply(STATUS_OK, out.data(), out.size())) return 0;
    if (!more) return 0;
  }
}

}  // namespace serve
