// Reading typed fields of a Boost.JSON object (header-only; for the code
// that already parses JSON: the HTTP front end and the client).
#ifndef RKV_COMMON_JSON_FIELDS_H_
#define RKV_COMMON_JSON_FIELDS_H_

#include <boost/json.hpp>

#include <cstdint>
#include <string_view>

namespace rkv::json_fields {

// Sets *out to the unsigned integer at `key` (a non-negative JSON number
// without fraction); false when it is missing or anything else.
inline bool GetU64(const boost::json::object& o, std::string_view key, uint64_t* out) {
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) return false;
  if (const auto* u = v->if_uint64()) {
    *out = *u;
    return true;
  }
  if (const auto* i = v->if_int64(); i != nullptr && *i >= 0) {
    *out = static_cast<uint64_t>(*i);
    return true;
  }
  return false;
}

}  // namespace rkv::json_fields

#endif  // RKV_COMMON_JSON_FIELDS_H_
