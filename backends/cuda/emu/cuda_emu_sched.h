// The block scheduler of the CUDA emulation (included by cuda_emu.h): runs a launch's blocks
// one after another, each block's threads as fibers. The scheduler resumes every ready
// fiber in turn; a fiber runs until it finishes, reaches __syncthreads, or waits in a warp
// operation its warp has not completed. When no fiber is ready the block either finished,
// or every live thread waits at the same barrier (released together), or it is stuck,
// which is a divergent barrier or warp operation: reported, with who waits where.
#pragma once
#include <cstdarg>
#include <vector>

namespace emu {

inline void fail(const char* fmt, ...) {
  std::fflush(stdout);
  std::fprintf(stderr, "cuda-emu: error: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::_Exit(70);
}

enum class State : unsigned char { Ready, AtBarrier, InWarpOp, Done };
enum class WarpOp : unsigned char { None, Shuffle, Vote, Sync };

struct Thread {
  FiberContext ctx;
  State state = State::Ready;
  int barrier_line = 0;
};

/** A warp operation in progress: lanes deposit their value, the last to arrive computes every lane's result. */
struct Warp {
  WarpOp op = WarpOp::None;
  unsigned mask = 0, arrived = 0;
  uint64_t in[32], out[32];
  unsigned src[32];
};

struct Launch {
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
  const char* name = "kernel";
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  unsigned count = 0;
  unsigned current = 0;
  FiberContext main;
  bool reverse_blocks = false, reverse_threads = false;
};

inline Launch& launch_state() { static Launch l; return l; }

inline unsigned linear_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
inline unsigned lane() { return linear_tid() % 32; }
/** Lanes that exist in the running thread's warp (the last warp of a block may be partial). */
inline unsigned lanes_of_warp() {
  const unsigned first = linear_tid() / 32 * 32, n = launch_state().count - first;
  return n >= 32 ? 0xffffffffu : (1u << n) - 1u;
}

inline void set_indices(unsigned t) {
  threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
}

/** Back to the scheduler; returns when this fiber is resumed. */
inline void yield_to_scheduler() {
  Launch& l = launch_state();
  switch_fiber(l.threads[l.current].ctx, l.main, true);
}

[[noreturn]] inline void fiber_entry() {
  fiber_started();
  Launch& l = launch_state();
  l.body(l.arg);
  l.threads[l.current].state = State::Done;
  switch_fiber(l.threads[l.current].ctx, l.main, true, true);
  fail("a finished fiber was resumed");
}

inline void syncthreads(int line) {
  Launch& l = launch_state();
  Thread& t = l.threads[l.current];
  t.state = State::AtBarrier;
  t.barrier_line = line;
  yield_to_scheduler();
}

inline const char* op_name(WarpOp op) {
  return op == WarpOp::Shuffle ? "a shuffle" : op == WarpOp::Vote ? "a vote (ballot/any/all)" : op == WarpOp::Sync ? "__syncwarp" : "nothing";
}

/**
 * Joins the warp operation of the running lane: deposits `value` (and, for a shuffle, the
 * lane it reads), waits for every lane of `mask`, and returns this lane's result.
 */
inline uint64_t warp_exchange(WarpOp op, unsigned mask, uint64_t value, unsigned src) {
  Launch& l = launch_state();
  const unsigned tid = linear_tid(), ln = tid % 32;
  Warp& w = l.warps[tid / 32];
  const unsigned live = mask & lanes_of_warp();
  if (!(mask >> ln & 1u)) fail("%s: lane %u of warp %u (block %u,%u,%u) calls %s with mask 0x%08x, which leaves it out", l.name, ln, tid / 32, blockIdx.x, blockIdx.y, blockIdx.z, op_name(op), mask);
  if (w.arrived == 0) { w.op = op; w.mask = mask; }
  else if (w.op != op || w.mask != mask) {
    fail("%s: divergent warp operations in warp %u (block %u,%u,%u): lane %u calls %s with mask 0x%08x while lanes 0x%08x wait in %s with mask 0x%08x",
         l.name, tid / 32, blockIdx.x, blockIdx.y, blockIdx.z, ln, op_name(op), mask, w.arrived, op_name(w.op), w.mask);
  }
  w.in[ln] = value;
  w.src[ln] = src;
  w.arrived |= 1u << ln;
  if (w.arrived == live) {
    for (unsigned i = 0; i < 32; i++) {
      if (!(live >> i & 1u)) continue;
      if (op == WarpOp::Shuffle) {
        if (!(live >> w.src[i] & 1u)) fail("%s: lane %u of warp %u (block %u,%u,%u) shuffles from lane %u, outside the mask 0x%08x", l.name, i, tid / 32, blockIdx.x, blockIdx.y, blockIdx.z, w.src[i], mask);
        w.out[i] = w.in[w.src[i]];
      } else if (op == WarpOp::Vote) {
        unsigned ballot = 0;
        for (unsigned j = 0; j < 32; j++) if ((live >> j & 1u) && w.in[j]) ballot |= 1u << j;
        w.out[i] = ballot;
      }
    }
    const unsigned first = tid / 32 * 32;
    for (unsigned i = 0; i < 32; i++) if ((live >> i & 1u) && i != ln) l.threads[first + i].state = State::Ready;
    w.arrived = 0;
    w.op = WarpOp::None;
    return w.out[ln];
  }
  l.threads[l.current].state = State::InWarpOp;
  yield_to_scheduler();
  return w.out[ln];
}

template <class T> inline T shuffle(unsigned mask, T v, unsigned src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffles move values of up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_exchange(WarpOp::Shuffle, mask, bits, src);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
inline unsigned vote(unsigned mask, bool pred) { return unsigned(warp_exchange(WarpOp::Vote, mask, pred ? 1 : 0, 0)); }
inline void syncwarp(int, unsigned mask = 0xffffffffu) { warp_exchange(WarpOp::Sync, mask, 0, 0); }

// __shared__ variables live in this section; the linker defines its bounds.
extern "C" char __start_emu_shared[] __attribute__((weak));
extern "C" char __stop_emu_shared[] __attribute__((weak));

/** Fills shared memory with 0xff bytes (NaN as f32), as a block would find it undefined. */
__attribute__((no_sanitize_address)) inline void poison_shared() {
  if (!__start_emu_shared || !__stop_emu_shared) return;
  volatile char* p = __start_emu_shared;
  for (volatile char* e = __stop_emu_shared; p < e; p++) *p = char(0xff);
}

/** Nothing is ready: either every thread finished, or all wait at one barrier (release them), or the block is stuck. */
inline bool release_or_report(Launch& l) {
  unsigned done = 0, at_barrier = 0, in_warp = 0, first_barrier = 0;
  int line = 0;
  for (unsigned i = 0; i < l.count; i++) {
    const Thread& t = l.threads[i];
    if (t.state == State::Done) done++;
    else if (t.state == State::InWarpOp) in_warp++;
    else if (t.state == State::AtBarrier) {
      if (at_barrier++ == 0) { line = t.barrier_line; first_barrier = i; }
      else if (t.barrier_line != line) {
        fail("%s: divergent __syncthreads in block (%u,%u,%u): thread %u waits at the barrier of line %d, thread %u at line %d",
             l.name, blockIdx.x, blockIdx.y, blockIdx.z, first_barrier, line, i, t.barrier_line);
      }
    }
  }
  if (done == l.count) return false;
  if (in_warp > 0) {
    for (unsigned w = 0; w < l.warps.size(); w++) {
      if (l.warps[w].arrived == 0) continue;
      fail("%s: divergent warp operation in block (%u,%u,%u): lanes 0x%08x of warp %u wait in %s (mask 0x%08x); the other lanes of the mask exited or wait at a __syncthreads (%u exited, %u at a barrier)",
           l.name, blockIdx.x, blockIdx.y, blockIdx.z, l.warps[w].arrived, w, op_name(l.warps[w].op), l.warps[w].mask, done, at_barrier);
    }
  }
  if (done > 0) {
    fail("%s: divergent __syncthreads in block (%u,%u,%u): %u threads wait at the barrier of line %d, %u threads exited without reaching it",
         l.name, blockIdx.x, blockIdx.y, blockIdx.z, at_barrier, line, done);
  }
  for (unsigned i = 0; i < l.count; i++) l.threads[i].state = State::Ready;
  return true;
}

inline void run_block(Launch& l) {
  poison_shared();
  for (unsigned i = 0; i < l.count; i++) { l.threads[i].state = State::Ready; prepare_fiber(l.threads[i].ctx, fiber_entry); }
  for (Warp& w : l.warps) { w.arrived = 0; w.op = WarpOp::None; }
  do {
    for (bool any = true; any;) {
      any = false;
      for (unsigned k = 0; k < l.count; k++) {
        const unsigned i = l.reverse_threads ? l.count - 1 - k : k;
        if (l.threads[i].state != State::Ready) continue;
        any = true;
        l.current = i;
        set_indices(i);
        switch_fiber(l.main, l.threads[i].ctx, false);
      }
    }
  } while (release_or_report(l));
}

inline bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

/** Runs `body(arg)` as every thread of every block of the grid. */
inline void launch(dim3 grid, dim3 block, void (*body)(void*), void* arg, const char* name) {
  Launch& l = launch_state();
  const unsigned long n = (unsigned long)block.x * block.y * block.z;
  if (n == 0 || n > 1024) fail("%s: a block of %lu threads (CUDA allows 1..1024)", name, n);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) fail("%s: invalid grid %ux%ux%u", name, grid.x, grid.y, grid.z);
  l.body = body; l.arg = arg; l.name = name;
  l.count = unsigned(n);
  if (l.threads.size() < n) l.threads.resize(n);
  l.warps.resize((n + 31) / 32);
  l.reverse_blocks = env_is("CUDA_EMU_BLOCK_ORDER", "reverse");
  l.reverse_threads = env_is("CUDA_EMU_THREAD_ORDER", "reverse");
  gridDim = grid;
  blockDim = block;
  const unsigned long blocks = (unsigned long)grid.x * grid.y * grid.z;
  for (unsigned long k = 0; k < blocks; k++) {
    const unsigned long b = l.reverse_blocks ? blocks - 1 - k : k;
    blockIdx = {unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / ((unsigned long)grid.x * grid.y))};
    run_block(l);
  }
}

}  // namespace emu

/** Launches `kernel` (a callable running one thread's work) over grid x block. */
template <class F> void emu_launch(dim3 grid, dim3 block, F kernel, const char* name = "kernel") {
  emu::launch(grid, block, [](void* f) { (*static_cast<F*>(f))(); }, &kernel, name);
}
