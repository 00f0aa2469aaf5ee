// What the weight readers (weights_gguf.h, weights_safetensors.h) share: WeightError, which
// names the file, the byte offset and the tensor as runtime/weights' GgufError does; a file
// read by offset (pread, so a multi-gigabyte file is never read whole); a buffered
// little-endian cursor for headers, which checks every length against the bytes left before
// it reads or allocates; and the tensor a reader found, in ggml terms (dims fastest first,
// a FileType of model.h), for the loader (weights_load.h) to check and convert.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
// Every standard header the weight readers use, before model.h: the emulation's macros
// (emu/cuda_emu.h __noinline__) break standard headers parsed after them.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>
#include "model.h"

/** A name or text read from a file, fit for a one-line message: control bytes and quotes escaped, at most 80 bytes. */
inline std::string printable(const std::string& s, size_t max = 80) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; i++) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 32 || c == 127 || c == '"' || c == '\\') {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += char(c);
    }
  }
  if (s.size() > max) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

class WeightError : public std::runtime_error {
 public:
  WeightError(const std::string& file, uint64_t offset, const std::string& detail, const std::string& tensor = "")
      : std::runtime_error(printable(file, 400) + ": byte " + std::to_string(offset) + ": " + (tensor.empty() ? "" : "tensor " + printable(tensor) + ": ") + detail) {}
};

/** A regular file read by offset. */
class WeightFile {
 public:
  explicit WeightFile(const std::string& path) : path(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw WeightError(path, 0, std::string("cannot open: ") + (errno == ENOENT ? "no such file" : std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) { ::close(fd_); throw WeightError(path, 0, S_ISDIR(st.st_mode) ? "a directory, not a weight file" : "not a regular file"); }
    size = uint64_t(st.st_size);
  }
  ~WeightFile() { if (fd_ >= 0) ::close(fd_); }
  WeightFile(const WeightFile&) = delete;
  WeightFile& operator=(const WeightFile&) = delete;

  const std::string path;
  uint64_t size = 0;

  /** Reads exactly n bytes at `at` (the file may have shrunk since it was opened: that is an error, not a short read). */
  void read(uint64_t at, void* out, uint64_t n, const std::string& what, const std::string& tensor = "") const {
    if (at > size || n > size - at) throw WeightError(path, at, "truncated: " + what + " needs " + std::to_string(n) + " bytes at byte " + std::to_string(at) + ", but the file ends at byte " + std::to_string(size), tensor);
    uint64_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, static_cast<char*>(out) + got, size_t(std::min<uint64_t>(n - got, 1u << 30)), off_t(at + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw WeightError(path, at + got, r == 0 ? "truncated: the file ended while reading " + what + " (did it change after opening?)" : std::string("read failed: ") + std::strerror(errno), tensor);
      got += uint64_t(r);
    }
  }

 private:
  int fd_ = -1;
};

/** A little-endian cursor over a file's header, reading it in chunks. */
class HeaderCursor {
 public:
  explicit HeaderCursor(const WeightFile& f) : f_(f) {}
  uint64_t pos = 0;
  /** What is being read, for messages ("tensor info 3"). */
  std::string what = "the header";

  [[noreturn]] void fail(const std::string& detail, uint64_t at, const std::string& tensor = "") const { throw WeightError(f_.path, at, detail, tensor); }
  uint64_t remaining() const { return f_.size - pos; }

  /** Copies n bytes at pos into out and moves past them. */
  void take(void* out, uint64_t n, const char* item) {
    if (n > remaining()) fail("truncated: " + what + ": " + item + " needs " + std::to_string(n) + " bytes at byte " + std::to_string(pos) + ", but the file ends at byte " + std::to_string(f_.size), pos);
    char* o = static_cast<char*>(out);
    while (n > 0) {
      if (pos < start_ || pos >= start_ + buf_.size()) {
        buf_.resize(size_t(std::min<uint64_t>(1u << 20, f_.size - pos)));
        f_.read(pos, buf_.data(), buf_.size(), what);
        start_ = pos;
      }
      const uint64_t k = std::min<uint64_t>(n, start_ + buf_.size() - pos);
      std::memcpy(o, buf_.data() + (pos - start_), size_t(k));
      o += k;
      pos += k;
      n -= k;
    }
  }
  template <class T> T get(const char* item) { T v; take(&v, sizeof v, item); return v; }
  void skip(uint64_t n, const char* item) {
    if (n > remaining()) fail("truncated: " + what + ": " + item + " needs " + std::to_string(n) + " bytes at byte " + std::to_string(pos) + ", but the file ends at byte " + std::to_string(f_.size), pos);
    pos += n;
  }
  /** A u64 count of items of at least `each` bytes, which must fit the rest of the file. */
  uint64_t count(const char* item, uint64_t each) {
    const uint64_t at = pos, n = get<uint64_t>(item);
    if (n > remaining() / std::max<uint64_t>(1, each)) fail(what + ": " + item + " is " + std::to_string(n) + ", but at " + std::to_string(each) + " bytes each that needs more than the " + std::to_string(remaining()) + " bytes left in the file (truncated or corrupt)", at);
    return n;
  }
  std::string string(const char* item) {
    const uint64_t n = count(item, 1);
    std::string s(size_t(n), '\0');
    take(&s[0], n, item);
    return s;
  }

 private:
  const WeightFile& f_;
  std::vector<char> buf_;
  uint64_t start_ = 0;
};

/** One tensor of a weight file, in ggml terms. */
struct FileTensor {
  const WeightFile* file = nullptr;
  std::string name;
  /** The model.h FileType whose bytes these are, or nullptr (type_name says which type it is). */
  const model::FileType* type = nullptr;
  std::string type_name;
  unsigned block_elements = 1, block_bytes = 1;
  /** ggml order: dims[0] varies fastest (a safetensors shape reversed). */
  std::vector<uint64_t> dims;
  uint64_t elements = 0, bytes = 0, offset = 0;
  /** Where the header describes it (for messages about its shape or type). */
  uint64_t info_offset = 0;
};

/** A parsed container: its tensors by name, and the files they are in. */
struct WeightContainer {
  std::string path, format;
  std::vector<std::unique_ptr<WeightFile>> files;
  std::vector<FileTensor> tensors;
  /** Where to point a message about a tensor the file lacks. */
  uint64_t missing_at = 0;
  /** Indexes the tensors by name (after they are all read; tensors must not change after). */
  void index() { for (size_t i = 0; i < tensors.size(); i++) by_name_.emplace(tensors[i].name, i); }
  const FileTensor* find(const std::string& name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors[it->second];
  }

 private:
  std::unordered_map<std::string, size_t> by_name_;
};

/** model.h's FileType of a ggml type name, or nullptr. */
inline const model::FileType* file_type_named(const std::string& name) {
  for (unsigned i = 0; i < model::FILE_TYPE_COUNT; i++) if (name == model::FILE_TYPES[i].name) return &model::FILE_TYPES[i];
  return nullptr;
}
