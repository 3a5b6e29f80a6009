#include "common/coding.h"

namespace rkv {

void PutFixed16(std::string* dst, uint16_t v) {
  char buf[sizeof v];
  EncodeFixed16(buf, v);
  dst->append(buf, sizeof buf);
}

void PutFixed32(std::string* dst, uint32_t v) {
  char buf[sizeof v];
  EncodeFixed32(buf, v);
  dst->append(buf, sizeof buf);
}

void PutFixed64(std::string* dst, uint64_t v) {
  char buf[sizeof v];
  EncodeFixed64(buf, v);
  dst->append(buf, sizeof buf);
}

char* EncodeVarint64(char* dst, uint64_t v) {
  auto* p = reinterpret_cast<unsigned char*>(dst);
  while (v >= 0x80) {
    *p++ = static_cast<unsigned char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<unsigned char>(v);
  return reinterpret_cast<char*>(p);
}

int VarintLength(uint64_t v) {
  int len = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++len;
  }
  return len;
}

void PutVarint32(std::string* dst, uint32_t v) { PutVarint64(dst, v); }

void PutVarint64(std::string* dst, uint64_t v) {
  char buf[10];
  char* end = EncodeVarint64(buf, v);
  dst->append(buf, static_cast<size_t>(end - buf));
}

void PutLengthPrefixed(std::string* dst, std::string_view value) {
  PutVarint64(dst, value.size());
  dst->append(value);
}

namespace {
template <typename T>
bool GetFixed(std::string_view* input, T* v) {
  if (input->size() < sizeof(T)) return false;
  std::memcpy(v, input->data(), sizeof(T));
  input->remove_prefix(sizeof(T));
  return true;
}
}  // namespace

bool GetFixed16(std::string_view* input, uint16_t* v) { return GetFixed(input, v); }
bool GetFixed32(std::string_view* input, uint32_t* v) { return GetFixed(input, v); }
bool GetFixed64(std::string_view* input, uint64_t* v) { return GetFixed(input, v); }

bool GetVarint64(std::string_view* input, uint64_t* v) {
  uint64_t result = 0;
  for (size_t i = 0; i < input->size() && i < 10; ++i) {
    const auto byte = static_cast<unsigned char>((*input)[i]);
    const int shift = static_cast<int>(7 * i);
    if (i == 9 && byte > 1) return false;  // more than 64 bits
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      input->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

bool GetVarint32(std::string_view* input, uint32_t* v) {
  std::string_view copy = *input;
  uint64_t wide;
  if (!GetVarint64(&copy, &wide) || wide > UINT32_MAX) return false;
  *input = copy;
  *v = static_cast<uint32_t>(wide);
  return true;
}

bool GetLengthPrefixed(std::string_view* input, std::string_view* value) {
  std::string_view copy = *input;
  uint64_t len;
  if (!GetVarint64(&copy, &len) || len > copy.size()) return false;
  *value = copy.substr(0, len);
  copy.remove_prefix(len);
  *input = copy;
  return true;
}

}  // namespace rkv
