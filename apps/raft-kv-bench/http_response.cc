#include "http_response.h"

#include <algorithm>
#include <cstring>

namespace rkv::bench {
namespace {

// Longest Content-Length or chunk size taken (1 TiB): more is surely garbage.
constexpr uint64_t kMaxBodyBytes = uint64_t{1} << 40;
// Longest chunk-size line (with extensions).
constexpr size_t kMaxChunkLine = 4096;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(token) for each comma-separated, trimmed, non-empty token.
template <typename F>
void ForEachToken(std::string_view list, F f) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view token = Trim(list.substr(0, comma));
    if (!token.empty()) f(token);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 15) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

bool ParseHex(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 12) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (Lower(c) >= 'a' && Lower(c) <= 'f') {
      d = Lower(c) - 'a' + 10;
    } else {
      return false;
    }
    v = v * 16 + static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

void ResponseParser::Reset() {
  line_.clear();
  error_.clear();
  body_prefix_.clear();
  state_ = State::kIncomplete;
  phase_ = Phase::kStatusLine;
  started_ = false;
  status_ = 0;
  minor_version_ = 1;
  keep_alive_ = true;
  connection_close_ = false;
  connection_keep_alive_ = false;
  chunked_ = false;
  has_transfer_encoding_ = false;
  has_content_length_ = false;
  content_length_ = 0;
  body_left_ = 0;
  header_bytes_ = 0;
}

void ResponseParser::Fail(std::string_view why) {
  state_ = State::kError;
  error_.assign(why);
  keep_alive_ = false;
}

void ResponseParser::Complete() {
  phase_ = Phase::kDone;
  state_ = State::kComplete;
}

size_t ResponseParser::Feed(std::string_view data) {
  if (state_ != State::kIncomplete) return 0;
  if (!data.empty()) started_ = true;
  size_t pos = 0;
  while (pos < data.size() && state_ == State::kIncomplete) {
    switch (phase_) {
      case Phase::kBody:
      case Phase::kChunkData: {
        const size_t take =
            static_cast<size_t>(std::min<uint64_t>(body_left_, data.size() - pos));
        SkipBody(data.substr(pos, take));
        body_left_ -= take;
        pos += take;
        if (body_left_ == 0) {
          if (phase_ == Phase::kBody) {
            Complete();
          } else {
            phase_ = Phase::kChunkDataEnd;
          }
        }
        break;
      }
      case Phase::kUntilEof:
        SkipBody(data.substr(pos));
        pos = data.size();
        break;
      case Phase::kDone:
        return pos;
      default: {  // a line-oriented phase
        const char* start = data.data() + pos;
        const void* nl = std::memchr(start, '\n', data.size() - pos);
        const size_t len = nl == nullptr ? data.size() - pos
                                         : static_cast<size_t>(static_cast<const char*>(nl) - start);
        const bool in_header = phase_ == Phase::kStatusLine || phase_ == Phase::kHeaders ||
                               phase_ == Phase::kTrailers;
        const size_t limit = in_header ? kMaxHeaderBytes : kMaxChunkLine;
        const size_t used = len + (nl == nullptr ? 0 : 1);
        if (in_header) {
          header_bytes_ += used;
          if (header_bytes_ > limit) {
            Fail("header section larger than 64 KiB");
            return pos + used;
          }
        } else if (line_.size() + used > limit) {
          Fail("chunk-size line too long");
          return pos + used;
        }
        pos += used;
        if (nl == nullptr) {
          line_.append(start, len);
          break;
        }
        std::string_view line(start, len);
        if (!line_.empty()) {
          line_.append(start, len);
          line = line_;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        OnLine(line);
        line_.clear();
        break;
      }
    }
  }
  return pos;
}

void ResponseParser::FeedEof() {
  if (state_ != State::kIncomplete) return;
  if (phase_ == Phase::kUntilEof) {
    keep_alive_ = false;
    Complete();
    return;
  }
  Fail(started_ ? "connection closed in the middle of a response"
                : "connection closed before a response");
}

void ResponseParser::OnLine(std::string_view line) {
  switch (phase_) {
    case Phase::kStatusLine:
      OnStatusLine(line);
      return;
    case Phase::kHeaders:
      if (line.empty()) {
        OnHeadersEnd();
      } else {
        OnHeader(line);
      }
      return;
    case Phase::kChunkSize:
      OnChunkSize(line);
      return;
    case Phase::kChunkDataEnd:
      if (!line.empty()) {
        Fail("no CRLF after a chunk");
        return;
      }
      phase_ = Phase::kChunkSize;
      return;
    case Phase::kTrailers:
      if (line.empty()) Complete();  // trailer fields are ignored
      return;
    default:
      return;
  }
}

// "HTTP/1.1 200 OK"; the reason phrase may be empty or absent.
void ResponseParser::OnStatusLine(std::string_view line) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' ||
      line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    Fail("malformed status line");
    return;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      Fail("malformed status code");
      return;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) {
    Fail("status code out of range");
    return;
  }
  status_ = status;
  minor_version_ = line[7] - '0';
  phase_ = Phase::kHeaders;
}

void ResponseParser::OnHeader(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') {
    Fail("folded header line");
    return;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    Fail("malformed header line");
    return;
  }
  const std::string_view name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string_view::npos) {
    Fail("malformed header name");
    return;
  }
  const std::string_view value = Trim(line.substr(colon + 1));
  if (EqualsIgnoreCase(name, "content-length")) {
    uint64_t length = 0;
    if (!ParseDecimal(value, &length) || length > kMaxBodyBytes) {
      Fail("malformed Content-Length");
      return;
    }
    if (has_content_length_ && length != content_length_) {
      Fail("conflicting Content-Length headers");
      return;
    }
    has_content_length_ = true;
    content_length_ = length;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    has_transfer_encoding_ = true;
    // Only the last coding decides whether the body is chunked.
    chunked_ = false;
    ForEachToken(value, [&](std::string_view coding) {
      chunked_ = EqualsIgnoreCase(coding, "chunked");
    });
  } else if (EqualsIgnoreCase(name, "connection")) {
    ForEachToken(value, [&](std::string_view option) {
      if (EqualsIgnoreCase(option, "close")) connection_close_ = true;
      if (EqualsIgnoreCase(option, "keep-alive")) connection_keep_alive_ = true;
    });
  }
}

void ResponseParser::OnHeadersEnd() {
  if (status_ >= 100 && status_ < 200) {
    if (status_ == 101) {
      Fail("unexpected 101 Switching Protocols");
      return;
    }
    // An interim response (100 Continue, 103 Early Hints): the real one follows.
    const size_t header_bytes = header_bytes_;
    Reset();
    started_ = true;
    header_bytes_ = header_bytes;  // one limit for everything before the final response
    return;
  }
  keep_alive_ = minor_version_ >= 1 ? !connection_close_ : connection_keep_alive_ && !connection_close_;
  if (status_ == 204 || status_ == 304) {
    Complete();
  } else if (has_transfer_encoding_) {
    if (chunked_) {
      phase_ = Phase::kChunkSize;
    } else {
      phase_ = Phase::kUntilEof;  // RFC 9112 6.3: read until the close
      keep_alive_ = false;
    }
  } else if (has_content_length_) {
    if (content_length_ == 0) {
      Complete();
    } else {
      body_left_ = content_length_;
      phase_ = Phase::kBody;
    }
  } else {
    phase_ = Phase::kUntilEof;
    keep_alive_ = false;
  }
}

// "1a" or "1a;name=value".
void ResponseParser::OnChunkSize(std::string_view line) {
  const std::string_view digits = Trim(line.substr(0, line.find(';')));
  uint64_t size = 0;
  if (!ParseHex(digits, &size) || size > kMaxBodyBytes) {
    Fail("malformed chunk size");
    return;
  }
  if (size == 0) {
    header_bytes_ = 0;
    phase_ = Phase::kTrailers;
    return;
  }
  body_left_ = size;
  phase_ = Phase::kChunkData;
}

void ResponseParser::SkipBody(std::string_view data) {
  if (status_ >= 200 && status_ < 300) return;
  const size_t room = kMaxCapturedBody - std::min(kMaxCapturedBody, body_prefix_.size());
  body_prefix_.append(data.substr(0, std::min(room, data.size())));
}

}  // namespace rkv::bench
