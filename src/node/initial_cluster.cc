#include "node/initial_cluster.h"

#include "common/coding.h"
#include "common/host_port.h"

namespace rkv {

bool ParseMemberList(std::string_view text, std::map<uint64_t, std::string>* out, std::string* error) {
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size()) {
      *error = "expected ID=HOST:PORT, got \"" + std::string(item) + "\"";
      return false;
    }
    uint64_t id = 0;
    for (char c : item.substr(0, eq)) {
      if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10) {
        *error = "bad member id in \"" + std::string(item) + "\"";
        return false;
      }
      id = id * 10 + static_cast<uint64_t>(c - '0');
    }
    std::string address(item.substr(eq + 1));
    std::string host;
    uint16_t port = 0;
    if (id == 0 || !SplitHostPort(address, &host, &port) || port == 0) {
      *error = "bad member \"" + std::string(item) + "\" (ids start at 1; HOST:PORT with a port)";
      return false;
    }
    if (!out->emplace(id, std::move(address)).second) {
      *error = "member " + std::to_string(id) + " is listed twice";
      return false;
    }
  }
  return true;
}

uint64_t ClusterIdFor(const std::string& token, const std::map<uint64_t, std::string>& members) {
  uint64_t h = kFnv1a64Offset;
  // Each piece ends with a 0xff byte, which no text here contains.
  auto mix = [&h](std::string_view text) { h = Fnv1a64("\xff", Fnv1a64(text, h)); };
  mix(token);
  for (const auto& [id, address] : members) {
    mix(std::to_string(id));
    mix(address);
  }
  return h;
}

}  // namespace rkv
