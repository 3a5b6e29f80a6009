// "host:port" addresses, as the HTTP server and the peer transport take them.
#ifndef RKV_COMMON_HOST_PORT_H_
#define RKV_COMMON_HOST_PORT_H_

#include <cstdint>
#include <string>

namespace rkv {

// Splits "host:port" ("[::1]:80" for an IPv6 host). False if malformed: no
// port, a port outside 0..65535, an empty host, or an IPv6 host without
// brackets.
bool SplitHostPort(const std::string& address, std::string* host, uint16_t* port);

}  // namespace rkv

#endif  // RKV_COMMON_HOST_PORT_H_
