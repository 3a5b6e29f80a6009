// Fixed-width (little-endian) and varint encoding of integers.
//
// Every on-disk and on-wire integer goes through these functions, so the byte
// order is defined in one place. Decoders take the input as a string_view and
// advance it; they return false on truncated or malformed input and never read
// past the end.
#ifndef RKV_COMMON_CODING_H_
#define RKV_COMMON_CODING_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rkv {

inline void EncodeFixed16(char* dst, uint16_t v) { std::memcpy(dst, &v, sizeof v); }
inline void EncodeFixed32(char* dst, uint32_t v) { std::memcpy(dst, &v, sizeof v); }
inline void EncodeFixed64(char* dst, uint64_t v) { std::memcpy(dst, &v, sizeof v); }

inline uint16_t DecodeFixed16(const char* p) { uint16_t v; std::memcpy(&v, p, sizeof v); return v; }
inline uint32_t DecodeFixed32(const char* p) { uint32_t v; std::memcpy(&v, p, sizeof v); return v; }
inline uint64_t DecodeFixed64(const char* p) { uint64_t v; std::memcpy(&v, p, sizeof v); return v; }

static_assert(std::endian::native == std::endian::little,
              "raft-kv's on-disk formats are little-endian; add byte swaps for this platform");

void PutFixed16(std::string* dst, uint16_t v);
void PutFixed32(std::string* dst, uint32_t v);
void PutFixed64(std::string* dst, uint64_t v);
void PutVarint32(std::string* dst, uint32_t v);
void PutVarint64(std::string* dst, uint64_t v);
// A varint length followed by the bytes.
void PutLengthPrefixed(std::string* dst, std::string_view value);

// Writes v to dst (which must have room for 10 bytes); returns one past the end.
char* EncodeVarint64(char* dst, uint64_t v);
// Number of bytes the varint encoding of v takes (1..10).
int VarintLength(uint64_t v);

bool GetFixed16(std::string_view* input, uint16_t* v);
bool GetFixed32(std::string_view* input, uint32_t* v);
bool GetFixed64(std::string_view* input, uint64_t* v);
bool GetVarint32(std::string_view* input, uint32_t* v);
bool GetVarint64(std::string_view* input, uint64_t* v);
bool GetLengthPrefixed(std::string_view* input, std::string_view* value);

// FNV-1a over `data`, continuing from `hash` (chain calls to hash several
// pieces). Not for checksums (CRC32C) nor for anything an attacker chooses
// to collide; for ids derived from names.
inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;
inline uint64_t Fnv1a64(std::string_view data, uint64_t hash = kFnv1a64Offset) {
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace rkv

#endif  // RKV_COMMON_CODING_H_
