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
#include <string>
#include <vector>
#include "serve_device.h"

namespace serve {

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
