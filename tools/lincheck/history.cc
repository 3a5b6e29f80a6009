// Operations, the history text format and the Recorder.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <utility>

#include "common/assert.h"
#include "tools/lincheck/lincheck.h"

namespace rkv::lincheck {

namespace {

constexpr std::string_view kAbsent = "absent";
constexpr std::string_view kEmpty = "\"\"";

bool NeedsEscape(unsigned char c) { return c <= 0x20 || c >= 0x7f || c == '%' || c == '#'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view OpTypeName(OpType t) {
  switch (t) {
    case OpType::kPut: return "put";
    case OpType::kGet: return "get";
    case OpType::kDelete: return "delete";
    case OpType::kCas: return "cas";
  }
  return "?";
}

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kFail: return "fail";
    case Outcome::kRejected: return "rejected";
    case Outcome::kUnknown: return "unknown";
    case Outcome::kPending: return "pending";
  }
  return "?";
}

std::string ValueToken(const std::optional<std::string>& v) {
  return v.has_value() ? EscapeToken(*v) : std::string(kAbsent);
}

template <typename T>
bool ParseInt(std::string_view s, T* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && p == end;
}

Status LineError(int line, std::string_view what) {
  return Status::InvalidArgument(fmt::format("line {}: {}", line, what));
}

}  // namespace

// ---------------------------------------------------------------------------
// Operation.

Operation Operation::Put(uint64_t client, std::string key, std::string value) {
  Operation op;
  op.client = client;
  op.type = OpType::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  return op;
}

Operation Operation::Get(uint64_t client, std::string key) {
  Operation op;
  op.client = client;
  op.type = OpType::kGet;
  op.key = std::move(key);
  return op;
}

Operation Operation::Delete(uint64_t client, std::string key) {
  Operation op;
  op.client = client;
  op.type = OpType::kDelete;
  op.key = std::move(key);
  return op;
}

Operation Operation::Cas(uint64_t client, std::string key, std::optional<std::string> expected,
                         std::string new_value) {
  Operation op;
  op.client = client;
  op.type = OpType::kCas;
  op.key = std::move(key);
  op.value = std::move(expected);
  op.new_value = std::move(new_value);
  return op;
}

bool operator==(const Operation& a, const Operation& b) {
  return a.client == b.client && a.type == b.type && a.key == b.key && a.value == b.value &&
         a.new_value == b.new_value && a.invoke_time == b.invoke_time &&
         a.complete_time == b.complete_time && a.outcome == b.outcome && a.result == b.result;
}

std::string FormatOperation(const Operation& op) {
  std::string s = fmt::format("client {}: {} {}", op.client, OpTypeName(op.type), EscapeToken(op.key));
  if (op.type == OpType::kPut) {
    s += " " + ValueToken(op.value);
  } else if (op.type == OpType::kCas) {
    s += " " + ValueToken(op.value) + " " + EscapeToken(op.new_value);
  }
  s += " -> ";
  if (op.type == OpType::kGet && op.outcome == Outcome::kOk) {
    s += ValueToken(op.result);
  } else {
    s += OutcomeName(op.outcome);
  }
  if (op.outcome == Outcome::kPending) {
    s += fmt::format(" [invoked {}, never completed]", op.invoke_time);
  } else if (op.outcome == Outcome::kUnknown) {
    if (op.complete_time == kNoTime) {
      s += fmt::format(" [invoked {}, outcome unknown]", op.invoke_time);
    } else {
      s += fmt::format(" [invoked {}, gave up {}]", op.invoke_time, op.complete_time);
    }
  } else {
    s += fmt::format(" [invoked {}, completed {}]", op.invoke_time, op.complete_time);
  }
  if (op.line > 0) s += fmt::format(" (line {})", op.line);
  return s;
}

// ---------------------------------------------------------------------------
// Token encoding.

std::string EscapeToken(std::string_view bytes) {
  if (bytes.empty()) return std::string(kEmpty);
  std::string out;
  out.reserve(bytes.size());
  const bool reserved = bytes == kAbsent || bytes == kEmpty;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (NeedsEscape(c) || (reserved && i == 0)) {
      out += fmt::format("%{:02X}", static_cast<unsigned>(c));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool UnescapeToken(std::string_view token, std::string* out) {
  out->clear();
  if (token == kEmpty) return true;
  if (token.empty()) return false;
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] != '%') {
      out->push_back(token[i]);
      continue;
    }
    if (i + 2 >= token.size()) return false;  // fewer than two hex digits follow
    const int hi = HexValue(token[i + 1]);
    const int lo = HexValue(token[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Reading.

namespace {

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    fields.push_back(line.substr(i, j - i));
    i = j;
  }
  return fields;
}

Status ParseKey(int line, std::string_view token, std::string* key) {
  if (token == kAbsent) return LineError(line, "a key cannot be absent");
  if (!UnescapeToken(token, key)) return LineError(line, fmt::format("bad escape in key '{}'", token));
  return Status::OK();
}

Status ParseValue(int line, std::string_view token, bool absent_allowed, std::optional<std::string>* value) {
  if (token == kAbsent) {
    if (!absent_allowed) return LineError(line, "this value cannot be absent");
    value->reset();
    return Status::OK();
  }
  std::string v;
  if (!UnescapeToken(token, &v)) return LineError(line, fmt::format("bad escape in value '{}'", token));
  *value = std::move(v);
  return Status::OK();
}

}  // namespace

Result<History> ReadHistory(std::string_view text) {
  History history;
  std::map<uint64_t, size_t> outstanding;  // client -> index of its pending op
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const std::vector<std::string_view> f = SplitFields(line);
    if (f.empty()) continue;
    if (f.size() < 3) return LineError(line_no, "expected '<time> <client> <event> ...'");
    int64_t time = 0;
    uint64_t client = 0;
    if (!ParseInt(f[0], &time)) return LineError(line_no, fmt::format("bad time '{}'", f[0]));
    if (!ParseInt(f[1], &client)) return LineError(line_no, fmt::format("bad client id '{}'", f[1]));
    const std::string_view event = f[2];

    if (event == "invoke") {
      if (outstanding.count(client) != 0) {
        return LineError(line_no, fmt::format("client {} invokes while its operation from line {} is "
                                              "still outstanding",
                                              client, history.ops[outstanding[client]].line));
      }
      if (f.size() < 5) return LineError(line_no, "expected 'invoke <op> <key> ...'");
      Operation op;
      op.client = client;
      op.invoke_time = time;
      op.line = line_no;
      const std::string_view name = f[3];
      size_t want = 0;
      if (name == "put") {
        op.type = OpType::kPut;
        want = 6;
      } else if (name == "get") {
        op.type = OpType::kGet;
        want = 5;
      } else if (name == "delete") {
        op.type = OpType::kDelete;
        want = 5;
      } else if (name == "cas") {
        op.type = OpType::kCas;
        want = 7;
      } else {
        return LineError(line_no, fmt::format("unknown operation '{}' (put, get, delete, cas)", name));
      }
      if (f.size() != want) {
        return LineError(line_no, fmt::format("{} takes {} argument(s), got {}", name, want - 4, f.size() - 4));
      }
      RKV_RETURN_IF_ERROR(ParseKey(line_no, f[4], &op.key));
      if (op.type == OpType::kPut) {
        RKV_RETURN_IF_ERROR(ParseValue(line_no, f[5], /*absent_allowed=*/false, &op.value));
      } else if (op.type == OpType::kCas) {
        RKV_RETURN_IF_ERROR(ParseValue(line_no, f[5], /*absent_allowed=*/true, &op.value));
        std::optional<std::string> nv;
        RKV_RETURN_IF_ERROR(ParseValue(line_no, f[6], /*absent_allowed=*/false, &nv));
        op.new_value = std::move(*nv);
      }
      outstanding[client] = history.ops.size();
      history.ops.push_back(std::move(op));
      continue;
    }

    Outcome outcome;
    if (event == "ok") {
      outcome = Outcome::kOk;
    } else if (event == "fail") {
      outcome = Outcome::kFail;
    } else if (event == "rejected") {
      outcome = Outcome::kRejected;
    } else if (event == "unknown") {
      outcome = Outcome::kUnknown;
    } else {
      return LineError(line_no,
                       fmt::format("unknown event '{}' (invoke, ok, fail, rejected, unknown)", event));
    }
    auto it = outstanding.find(client);
    if (it == outstanding.end()) {
      return LineError(line_no, fmt::format("client {} has no outstanding operation to complete", client));
    }
    Operation& op = history.ops[it->second];
    if (time < op.invoke_time) {
      return LineError(line_no, fmt::format("completion time {} is before the invocation time {} (line {})",
                                            time, op.invoke_time, op.line));
    }
    const bool get_ok = op.type == OpType::kGet && outcome == Outcome::kOk;
    if (get_ok && f.size() != 4) return LineError(line_no, "a get's 'ok' takes the value read, or absent");
    if (!get_ok && f.size() != 3) {
      return LineError(line_no, fmt::format("'{}' of a {} takes no argument", event, OpTypeName(op.type)));
    }
    if (get_ok) RKV_RETURN_IF_ERROR(ParseValue(line_no, f[3], /*absent_allowed=*/true, &op.result));
    op.outcome = outcome;
    op.complete_time = time;
    outstanding.erase(it);
  }
  return history;
}

// ---------------------------------------------------------------------------
// Writing.

std::string WriteHistory(const History& history) {
  struct Event {
    int64_t time;
    size_t seq;
    size_t op;
    bool invoke;
  };
  std::vector<Event> events;
  events.reserve(history.ops.size() * 2);
  for (size_t i = 0; i < history.ops.size(); ++i) {
    const Operation& op = history.ops[i];
    events.push_back({op.invoke_time, 2 * i, i, true});
    if (op.outcome == Outcome::kPending) continue;
    const int64_t t = op.complete_time == kNoTime ? op.invoke_time : op.complete_time;
    events.push_back({t, 2 * i + 1, i, false});
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.time != b.time ? a.time < b.time : a.seq < b.seq;
  });
  std::string out;
  for (const Event& e : events) {
    const Operation& op = history.ops[e.op];
    out += fmt::format("{} {} ", e.time, op.client);
    if (e.invoke) {
      out += fmt::format("invoke {} {}", OpTypeName(op.type), EscapeToken(op.key));
      if (op.type == OpType::kPut) {
        out += " " + EscapeToken(op.value.value_or(""));
      } else if (op.type == OpType::kCas) {
        out += " " + ValueToken(op.value) + " " + EscapeToken(op.new_value);
      }
    } else {
      out += OutcomeName(op.outcome);
      if (op.type == OpType::kGet && op.outcome == Outcome::kOk) out += " " + ValueToken(op.result);
    }
    out += '\n';
  }
  return out;
}

// ---------------------------------------------------------------------------
// Recorder.

Recorder::OpId Recorder::Invoke(Operation op) {
  std::lock_guard<std::mutex> lock(mu_);
  op.invoke_time = next_time_++;
  op.complete_time = kNoTime;
  op.outcome = Outcome::kPending;
  op.result.reset();
  op.line = 0;
  history_.ops.push_back(std::move(op));
  return history_.ops.size() - 1;
}

void Recorder::Complete(OpId id, Outcome outcome, std::optional<std::string> result) {
  RKV_ASSERT(outcome != Outcome::kPending);
  std::lock_guard<std::mutex> lock(mu_);
  RKV_ASSERT(id < history_.ops.size());
  Operation& op = history_.ops[id];
  RKV_ASSERT_MSG(op.outcome == Outcome::kPending, "operation completed twice");
  op.complete_time = next_time_++;
  op.outcome = outcome;
  if (op.type == OpType::kGet && outcome == Outcome::kOk) op.result = std::move(result);
}

History Recorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_;
}

}  // namespace rkv::lincheck
