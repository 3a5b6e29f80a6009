#include "common/crc32c.h"

#include <isa-l/crc.h>

namespace rkv::crc32c {

uint32_t Extend(uint32_t init_crc, const void* data, size_t n) {
  // ISA-L returns the register without the final inversion, so the standard
  // CRC32C is ~crc32_iscsi(p, n, ~init).
  uint32_t crc = ~init_crc;
  const auto* p = static_cast<const unsigned char*>(data);
  // crc32_iscsi takes an int length; feed huge buffers in slices.
  constexpr size_t kSlice = size_t{1} << 30;
  while (n > 0) {
    const size_t len = n < kSlice ? n : kSlice;
    crc = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(len), crc);
    p += len;
    n -= len;
  }
  return ~crc;
}

}  // namespace rkv::crc32c
