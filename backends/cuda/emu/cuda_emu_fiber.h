// Fibers for the CUDA emulation: a stack per emulated thread and a switch between them on
// one OS thread. On x86-64 the switch is eight instructions each way (callee-saved
// registers, the SSE and x87 control words, the stack pointer): no syscall, unlike
// swapcontext, which saves the signal mask with one. Elsewhere it falls back to ucontext.
// Under AddressSanitizer every switch is announced (__sanitizer_*_switch_fiber), so ASan
// knows which stack is live and reports stays precise.
#pragma once
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CUDA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDA_EMU_ASAN 1
#endif
#endif
#ifdef CUDA_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
// emu_fiber_switch(&save_sp, next_sp): pushes the callee-saved state, stores the stack pointer
// in *save_sp, loads next_sp and pops the state saved there. A weak symbol in a COMDAT
// section, so every translation unit that includes this header may define it.
extern "C" void emu_fiber_switch(void** save_sp, void* next_sp);
asm(R"(
  .section .text.emu_fiber_switch,"axG",@progbits,emu_fiber_switch,comdat
  .weak emu_fiber_switch
  .type emu_fiber_switch,@function
emu_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_fiber_switch, .-emu_fiber_switch
  .text
)");
#else
#include <ucontext.h>
#endif

namespace emu {

[[noreturn]] inline void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/** One fiber's stack and saved context. */
struct FiberContext {
  char* stack = nullptr;
  size_t size = 0;
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

/** Bytes of stack per emulated thread: CUDA_EMU_STACK_KB, default 64 KiB (512 KiB under ASan). */
inline size_t fiber_stack_bytes() {
  static const size_t bytes = [] {
    const char* s = std::getenv("CUDA_EMU_STACK_KB");
#ifdef CUDA_EMU_ASAN
    size_t kb = 512;
#else
    size_t kb = 64;
#endif
    if (s && std::atol(s) > 0) kb = size_t(std::atol(s));
    return kb * 1024;
  }();
  return bytes;
}

/** Maps a stack with a guard page below it, so an overflow faults instead of corrupting a neighbour. */
inline void allocate_stack(FiberContext& f) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), size = fiber_stack_bytes();
  char* base = static_cast<char*>(mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (base == MAP_FAILED) fail("cannot map %zu bytes of fiber stack", size + page);
  mprotect(base, page, PROT_NONE);
  f.stack = base + page;
  f.size = size;
}

/** Prepares `f` to start in `entry` (which must never return) on its next resume. */
inline void prepare_fiber(FiberContext& f, void (*entry)()) {
  if (!f.stack) allocate_stack(f);
#ifdef CUDA_EMU_ASAN
  // A reused stack still carries the redzones of the frames that last ran on it.
  __asan_unpoison_memory_region(f.stack, f.size);
#endif
#if defined(__x86_64__)
  // The frame emu_fiber_switch pops: control words, six registers, then `entry` as the
  // return address, placed so that entry starts with rsp = 8 (mod 16) as after a call.
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + f.size) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top - 16);
  *sp = reinterpret_cast<void*>(entry);
  for (int i = 0; i < 6; i++) *--sp = nullptr;
  unsigned ctl[2];
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(ctl[0]), "=m"(ctl[1]));
  *--sp = *reinterpret_cast<void**>(ctl);
  f.sp = sp;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack;
  f.uc.uc_stack.ss_size = f.size;
  f.uc.uc_link = nullptr;
  makecontext(&f.uc, entry, 0);
#endif
}

/** Where the scheduler's own stack is, for ASan's bookkeeping (learnt on the first switch). */
inline const void* main_stack_bottom = nullptr;
inline size_t main_stack_size = 0;

/**
 * Saves the running context in `from` and resumes `to`. `from_dies`: the running fiber will
 * never be resumed (it finished), which ASan must be told so it drops its fake stack.
 */
inline void switch_fiber(FiberContext& from, FiberContext& to, bool to_is_main, bool from_dies = false) {
#ifdef CUDA_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(from_dies ? nullptr : &fake, to_is_main ? main_stack_bottom : to.stack, to_is_main ? main_stack_size : to.size);
#else
  (void)to_is_main; (void)from_dies;
#endif
#if defined(__x86_64__)
  emu_fiber_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
#ifdef CUDA_EMU_ASAN
  const void* old_bottom = nullptr;
  size_t old_size = 0;
  __sanitizer_finish_switch_fiber(fake, &old_bottom, &old_size);
  if (to_is_main && main_stack_bottom == nullptr) { main_stack_bottom = old_bottom; main_stack_size = old_size; }
#endif
}

/** Called first thing in a fresh fiber (ASan: completes the switch that started it). */
inline void fiber_started() {
#ifdef CUDA_EMU_ASAN
  const void* old_bottom = nullptr;
  size_t old_size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &old_bottom, &old_size);
  if (main_stack_bottom == nullptr) { main_stack_bottom = old_bottom; main_stack_size = old_size; }
#endif
}

}  // namespace emu
