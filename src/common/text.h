// Byte strings as text: standard base64 (RFC 4648 section 4, with padding),
// as the v1 API and etcd's JSON gateway carry bytes, and UTF-8 validation,
// which decides whether bytes can travel as a JSON string.
//
//   std::string b = Base64Encode("\xff\x00");          // "/wA="
//   std::optional<std::string> back = Base64Decode(b);  // the two bytes
#ifndef RKV_COMMON_TEXT_H_
#define RKV_COMMON_TEXT_H_

#include <optional>
#include <string>
#include <string_view>

namespace rkv {

std::string Base64Encode(std::string_view bytes);
// nullopt for anything that is not padded standard base64.
std::optional<std::string> Base64Decode(std::string_view text);

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing past U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace rkv

#endif  // RKV_COMMON_TEXT_H_
