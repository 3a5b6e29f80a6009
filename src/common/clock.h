// Clock: the one way code reads time, so tests and the simulator can drive it.
//
// The Raft core never reads a clock (it counts ticks); the state machine uses
// timestamps the leader put into entries. Only the node loop, the storage
// engine's background work and the servers read a Clock.
#ifndef RKV_COMMON_CLOCK_H_
#define RKV_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace rkv {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time in microseconds since an arbitrary origin.
  virtual int64_t NowMicros() const = 0;
  // Wall-clock time in milliseconds since the Unix epoch.
  virtual int64_t WallMillis() const = 0;

  // The process-wide real clock.
  static Clock* Real();
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_micros = 0, int64_t wall_start_millis = 1'700'000'000'000)
      : now_micros_(start_micros), wall_start_millis_(wall_start_millis) {}
  int64_t NowMicros() const override { return now_micros_.load(std::memory_order_relaxed); }
  int64_t WallMillis() const override { return wall_start_millis_ + NowMicros() / 1000; }
  void AdvanceMicros(int64_t delta) { now_micros_.fetch_add(delta, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_micros_;
  int64_t wall_start_millis_;
};

}  // namespace rkv

#endif  // RKV_COMMON_CLOCK_H_
