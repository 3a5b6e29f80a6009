#include "requests.h"

#include <fmt/format.h>

#include <iterator>

#include "common/text.h"

namespace rkv::bench {

std::string_view ApiName(Api api) {
  switch (api) {
    case Api::kRaftKv:
      return "raft-kv";
    case Api::kRaftKvJson:
      return "raft-kv-json";
    case Api::kEtcd:
      return "etcd";
  }
  return "?";
}

std::string_view OpName(Op op) { return op == Op::kRead ? "read" : "write"; }

std::string_view ConsistencyName(Consistency consistency) {
  switch (consistency) {
    case Consistency::kLinearizable:
      return "linearizable";
    case Consistency::kLease:
      return "lease";
    case Consistency::kStale:
      return "stale";
  }
  return "?";
}

std::optional<Api> ParseApi(std::string_view name) {
  for (Api api : {Api::kRaftKv, Api::kRaftKvJson, Api::kEtcd}) {
    if (ApiName(api) == name) return api;
  }
  return std::nullopt;
}

std::optional<Consistency> ParseConsistency(std::string_view name) {
  for (Consistency c : {Consistency::kLinearizable, Consistency::kLease, Consistency::kStale}) {
    if (ConsistencyName(c) == name) return c;
  }
  return std::nullopt;
}

std::string PercentEncode(std::string_view text) {
  std::string out;
  for (char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~';
    if (unreserved) {
      out += c;
    } else {
      fmt::format_to(std::back_inserter(out), "%{:02X}", static_cast<uint8_t>(c));
    }
  }
  return out;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<uint8_t>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

Result<RequestBuilder> RequestBuilder::Create(const RequestOptions& options) {
  if (options.api == Api::kEtcd && options.consistency == Consistency::kLease) {
    return Status::InvalidArgument(
        "etcd's JSON gateway has no lease reads (use linearizable or stale, which is "
        "etcd's serializable)");
  }
  if (options.key_width < 0 || options.key_width > 20) {
    return Status::InvalidArgument("the key width must be 0..20");
  }
  return RequestBuilder(options);
}

RequestBuilder::RequestBuilder(const RequestOptions& options)
    : options_(options), value_(options.value_size, 'x') {
  const std::string host_line = "Host: " + options.host + "\r\n";
  switch (options.api) {
    case Api::kRaftKv:
      encoded_prefix_ = PercentEncode(options.key_prefix);
      write_head_ = "PUT /v1/kv/" + encoded_prefix_;
      write_tail_ = fmt::format(
          " HTTP/1.1\r\n{}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n{}",
          host_line, value_.size(), value_);
      read_head_ = "GET /v1/kv/" + encoded_prefix_;
      read_tail_ = fmt::format("?consistency={} HTTP/1.1\r\n{}\r\n",
                               ConsistencyName(options.consistency), host_line);
      break;
    case Api::kRaftKvJson: {
      encoded_prefix_ = PercentEncode(options.key_prefix);
      const std::string body = "{\"value\":\"" + JsonEscape(value_) + "\"}";
      write_head_ = "POST /" + encoded_prefix_;
      write_tail_ = fmt::format(
          " HTTP/1.1\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
          host_line, body.size(), body);
      read_head_ = "GET /" + encoded_prefix_;
      read_tail_ = fmt::format(
          "{} HTTP/1.1\r\n{}\r\n",
          options.consistency == Consistency::kLinearizable
              ? ""
              : "?consistency=" + std::string(ConsistencyName(options.consistency)),
          host_line);
      break;
    }
    case Api::kEtcd:
      value_base64_ = Base64Encode(value_);
      write_head_ = "POST /v3/kv/put HTTP/1.1\r\n" + host_line +
                    "Content-Type: application/json\r\nContent-Length: ";
      read_head_ = "POST /v3/kv/range HTTP/1.1\r\n" + host_line +
                   "Content-Type: application/json\r\nContent-Length: ";
      break;
  }
}

void RequestBuilder::AppendKey(uint64_t key, std::string* out) const {
  if (options_.key_width > 0) {
    fmt::format_to(std::back_inserter(*out), "{:0{}}", key, options_.key_width);
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", key);
  }
}

std::string RequestBuilder::KeyName(uint64_t key) const {
  std::string name = options_.key_prefix;
  AppendKey(key, &name);
  return name;
}

void RequestBuilder::Build(Op op, uint64_t key, std::string* out) const {
  out->clear();
  if (options_.api != Api::kEtcd) {
    const bool write = op == Op::kWrite;
    out->append(write ? write_head_ : read_head_);
    AppendKey(key, out);
    out->append(write ? write_tail_ : read_tail_);
    return;
  }
  const std::string key64 = Base64Encode(KeyName(key));
  std::string_view head;
  std::string body;
  if (op == Op::kWrite) {
    head = write_head_;
    body = fmt::format(R"({{"key":"{}","value":"{}"}})", key64, value_base64_);
  } else {
    head = read_head_;
    body = options_.consistency == Consistency::kStale
               ? fmt::format(R"({{"key":"{}","serializable":true}})", key64)
               : fmt::format(R"({{"key":"{}"}})", key64);
  }
  out->append(head);
  fmt::format_to(std::back_inserter(*out), "{}\r\n\r\n", body.size());
  out->append(body);
}

}  // namespace rkv::bench
