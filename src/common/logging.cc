#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace rkv::log {

namespace internal {
int g_level = static_cast<int>(Level::kInfo);
}

namespace {

std::mutex g_mu;
Sink g_sink;  // guarded by g_mu
std::atomic<bool> g_json{false};

std::shared_ptr<spdlog::logger> MakeLogger(const char* name, const char* pattern) {
  auto l = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  l->set_pattern(pattern, spdlog::pattern_time_type::utc);
  l->set_level(spdlog::level::trace);
  return l;
}

// Text lines: "2026-01-02T03:04:05.678901Z info event=... key=value".
spdlog::logger& Logger() {
  static std::shared_ptr<spdlog::logger> logger = MakeLogger("rkv", "%Y-%m-%dT%H:%M:%S.%fZ %l %v");
  return *logger;
}

// JSON lines: {"ts":"...","level":"info","msg":"event=... key=value"}.
spdlog::logger& JsonLogger() {
  static std::shared_ptr<spdlog::logger> logger =
      MakeLogger("rkv-json", R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ",%v})");
  return *logger;
}

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    case Level::kOff: return "off";
  }
  return "info";
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          *out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

void SetLevel(Level level) { internal::g_level = static_cast<int>(level); }
Level GetLevel() { return static_cast<Level>(internal::g_level); }

bool ParseLevel(std::string_view name, Level* level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError, Level::kOff}) {
    if (name == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

void SetJson(bool json) { g_json = json; }

void Write(Level level, std::string_view message) {
  {
    std::lock_guard lock(g_mu);
    if (g_sink) {
      g_sink(level, message);
      return;
    }
  }
  if (g_json) {
    std::string fields = "\"level\":\"";
    fields += LevelName(level);
    fields += "\",\"msg\":";
    AppendJsonString(&fields, message);
    JsonLogger().log(ToSpd(level), "{}", fields);
  } else {
    Logger().log(ToSpd(level), "{}", message);
  }
}

void Flush() {
  Logger().flush();
  JsonLogger().flush();
}

void SetSink(Sink sink) {
  std::lock_guard lock(g_mu);
  g_sink = std::move(sink);
}

}  // namespace rkv::log
