// Logging: one line per event, `event=name key=value ...`.
//
//   RKV_LOG_INFO("event=truncate_tail file={} bytes={}", path, n);
//
// The format arguments are evaluated only when the level is enabled. Output
// goes to stderr (spdlog underneath) unless a test installs a sink.
#ifndef RKV_COMMON_LOGGING_H_
#define RKV_COMMON_LOGGING_H_

#include <fmt/format.h>

#include <functional>
#include <string_view>

namespace rkv::log {

enum class Level : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void SetLevel(Level level);
Level GetLevel();
inline bool Enabled(Level level);

// Parses "debug", "info", "warn", "error", "off". Returns false if unknown.
bool ParseLevel(std::string_view name, Level* level);

// Emit lines as JSON objects ({"ts":..,"level":..,"msg":..}) instead of text.
void SetJson(bool json);

void Write(Level level, std::string_view message);
void Flush();

// Replaces the output with `sink` (tests capture log lines this way); an
// empty function restores stderr.
using Sink = std::function<void(Level, std::string_view)>;
void SetSink(Sink sink);

namespace internal {
extern int g_level;
}
inline bool Enabled(Level level) { return static_cast<int>(level) >= internal::g_level; }

}  // namespace rkv::log

#define RKV_LOG(level, ...)                                                    \
  do {                                                                         \
    if (::rkv::log::Enabled(level)) ::rkv::log::Write(level, fmt::format(__VA_ARGS__)); \
  } while (0)
#define RKV_LOG_DEBUG(...) RKV_LOG(::rkv::log::Level::kDebug, __VA_ARGS__)
#define RKV_LOG_INFO(...) RKV_LOG(::rkv::log::Level::kInfo, __VA_ARGS__)
#define RKV_LOG_WARN(...) RKV_LOG(::rkv::log::Level::kWarn, __VA_ARGS__)
#define RKV_LOG_ERROR(...) RKV_LOG(::rkv::log::Level::kError, __VA_ARGS__)

#endif  // RKV_COMMON_LOGGING_H_
