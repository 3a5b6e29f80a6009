// The search: Wing & Gong's algorithm with Lowe's memoisation, per key.
//
// For one key's operations, the history becomes a list of call and return
// entries ordered by time (a call before a return at the same time, so equal
// stamps count as concurrent; unknown outcomes return at +infinity). The
// search walks the list: at a call it tries to linearize that operation now
// (the model accepts it, and the pair (set of linearized operations, model
// state) was not seen before), removes its call and return from the list and
// starts over from the head; reaching a return means that operation should
// have been linearized already, so it backtracks. The list empties exactly
// when a linearization exists.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "common/assert.h"
#include "common/random.h"
#include "tools/lincheck/lincheck.h"

namespace rkv::lincheck {

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kLinearizable: return "linearizable";
    case Verdict::kNotLinearizable: return "not linearizable";
    case Verdict::kUnknown: return "unknown";
  }
  return "?";
}

namespace {

constexpr int32_t kAbsentState = -1;
constexpr size_t kMaxPrefixShown = 20;
constexpr size_t kMaxCandidatesShown = 10;

// An operation reduced to what the model needs; values are interned ids.
enum class Kind : uint8_t { kPut, kDelete, kGet, kCasOk, kCasFail, kCasMaybe };

struct ModelOp {
  Kind kind;
  int32_t a = kAbsentState;  // put: value; get: result; cas: expected
  int32_t b = kAbsentState;  // cas: new value
  bool known = true;         // false: outcome unknown (returns at +infinity)
};

bool Step(int32_t state, const ModelOp& op, int32_t* next) {
  switch (op.kind) {
    case Kind::kPut: *next = op.a; return true;
    case Kind::kDelete: *next = kAbsentState; return true;
    case Kind::kGet: *next = state; return state == op.a;
    case Kind::kCasOk: *next = op.b; return state == op.a;
    case Kind::kCasFail: *next = state; return state != op.a;
    case Kind::kCasMaybe: *next = state == op.a ? op.b : state; return true;
  }
  return false;
}

uint64_t MixState(int32_t state) {
  uint64_t z = static_cast<uint32_t>(state);
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The configurations seen: (linearized set, state). The linearized set is
// split into its known-outcome part K and its unknown-outcome part Y. A
// configuration (K, Y, s) is dominated by a seen (K, Y', s) with Y' a subset
// of Y: the operations in Y \ Y' never have to precede anything (they return
// at +infinity and the model accepts them in any state), so any completion
// from (K, Y, s) is also one from (K, Y', s), with them moved to the end.
// A seen configuration was either fully explored (so it has no completion),
// or it is on the search stack, reached from it through unknown-outcome
// operations only; it then has a completion shorter (in operations up to the
// last known-outcome one) than the pruned one, which the search still finds
// from it. With all Y empty this is Lowe's plain memoisation.
class Cache {
 public:
  Cache(size_t known_words, size_t unknown_words) : kw_(known_words), uw_(unknown_words) {
    slots_.assign(1024, 0);
  }

  // Records the configuration; false if a seen one dominates it.
  bool Insert(const std::vector<uint64_t>& known, const std::vector<uint64_t>& unknown, int32_t state,
              uint64_t hash) {
    if ((groups_ + 1) * 2 > slots_.size()) Grow();
    const size_t mask = slots_.size() - 1;
    size_t i = static_cast<size_t>(hash) & mask;
    for (;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0) break;
      const size_t g = slot - 1;
      if (hashes_[g] == hash && states_[g] == state &&
          std::equal(known.begin(), known.end(), known_.begin() + static_cast<std::ptrdiff_t>(g * kw_))) {
        for (uint32_t y = first_y_[g]; y != kNone; y = next_y_[y]) {
          if (Subset(y, unknown)) return false;
        }
        AddY(g, unknown);
        return true;
      }
    }
    const size_t g = groups_++;
    slots_[i] = static_cast<uint32_t>(g + 1);
    hashes_.push_back(hash);
    states_.push_back(state);
    known_.insert(known_.end(), known.begin(), known.end());
    first_y_.push_back(kNone);
    AddY(g, unknown);
    return true;
  }

  size_t size() const { return next_y_.size(); }
  size_t Bytes() const {
    return slots_.size() * sizeof(uint32_t) +
           groups_ * (sizeof(uint64_t) + sizeof(int32_t) + sizeof(uint32_t) + kw_ * 8) +
           next_y_.size() * (sizeof(uint32_t) + uw_ * 8);
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  bool Subset(uint32_t y, const std::vector<uint64_t>& unknown) const {
    const uint64_t* stored = &ys_[static_cast<size_t>(y) * uw_];
    for (size_t w = 0; w < uw_; ++w) {
      if ((stored[w] & ~unknown[w]) != 0) return false;
    }
    return true;
  }

  void AddY(size_t g, const std::vector<uint64_t>& unknown) {
    const auto y = static_cast<uint32_t>(next_y_.size());
    next_y_.push_back(first_y_[g]);
    first_y_[g] = y;
    ys_.insert(ys_.end(), unknown.begin(), unknown.end());
  }

  void Grow() {
    std::vector<uint32_t> old = std::move(slots_);
    slots_.assign(old.size() * 2, 0);
    const size_t mask = slots_.size() - 1;
    for (uint32_t slot : old) {
      if (slot == 0) continue;
      size_t i = static_cast<size_t>(hashes_[slot - 1]) & mask;
      while (slots_[i] != 0) i = (i + 1) & mask;
      slots_[i] = slot;
    }
  }

  size_t kw_;
  size_t uw_;
  size_t groups_ = 0;
  std::vector<uint32_t> slots_;
  // Per group (K, s):
  std::vector<uint64_t> hashes_;
  std::vector<int32_t> states_;
  std::vector<uint64_t> known_;
  std::vector<uint32_t> first_y_;
  // Per Y, linked per group:
  std::vector<uint32_t> next_y_;
  std::vector<uint64_t> ys_;
};

// What the whole Check call may still spend.
struct Budget {
  uint64_t steps_left;  // UINT64_MAX when unlimited
  bool has_deadline = false;
  int64_t deadline_micros = 0;
  size_t max_cache_bytes = 0;
  const Clock* clock = nullptr;
};

struct PartitionOutcome {
  Verdict verdict = Verdict::kLinearizable;
  uint64_t steps = 0;
  uint64_t cache_entries = 0;
  std::string why_unknown;
  // kNotLinearizable:
  std::vector<size_t> prefix;        // indices into the partition's ops
  size_t unplaceable = 0;
  std::vector<size_t> candidates;    // calls that were before the blocking return
  int32_t state_after_prefix = kAbsentState;
  std::string direct_reason;         // set when found without a search
};

class PartitionChecker {
 public:
  PartitionChecker(std::vector<ModelOp> ops, const std::vector<const Operation*>& originals, Budget* budget)
      : ops_(std::move(ops)), originals_(originals), budget_(budget) {}

  PartitionOutcome Run() {
    PartitionOutcome out;
    const size_t n = ops_.size();
    if (n == 0) return out;
    // Entries 0..2n-1: call of op i is 2i, its return 2i+1. `head` is 2n.
    struct Entry {
      int64_t time;
      bool call;
      uint32_t op;
    };
    std::vector<Entry> order;
    order.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
      const Operation& o = *originals_[i];
      order.push_back({o.invoke_time, true, static_cast<uint32_t>(i)});
      // A completion recorded before the invocation (only possible in a
      // history built by hand) is read as "at the invocation".
      const int64_t ret = ops_[i].known ? std::max(o.complete_time, o.invoke_time) : kNoTime;
      order.push_back({ret, false, static_cast<uint32_t>(i)});
    }
    std::stable_sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) {
      if (a.time != b.time) return a.time < b.time;
      return a.call && !b.call;
    });
    // Known-outcome returns at kNoTime (no recorded completion) still come
    // before every unknown-outcome return, so the first return the search
    // meets is a known one while any is left.
    std::stable_partition(order.begin(), order.end(), [&](const Entry& e) {
      return e.call || e.time != kNoTime || ops_[e.op].known;
    });
    const int32_t head = static_cast<int32_t>(2 * n);
    std::vector<int32_t> next(2 * n + 1, -1), prev(2 * n + 1, -1);
    int32_t last = head;
    for (const Entry& e : order) {
      const int32_t id = static_cast<int32_t>(2 * e.op + (e.call ? 0 : 1));
      next[static_cast<size_t>(last)] = id;
      prev[static_cast<size_t>(id)] = last;
      last = id;
    }
    auto at = [](std::vector<int32_t>& v, int32_t i) -> int32_t& { return v[static_cast<size_t>(i)]; };
    auto lift = [&](int32_t call) {
      const int32_t ret = call + 1;
      at(next, at(prev, call)) = at(next, call);
      if (at(next, call) != -1) at(prev, at(next, call)) = at(prev, call);
      at(next, at(prev, ret)) = at(next, ret);
      if (at(next, ret) != -1) at(prev, at(next, ret)) = at(prev, ret);
    };
    auto unlift = [&](int32_t call) {
      const int32_t ret = call + 1;
      at(next, at(prev, ret)) = ret;
      if (at(next, ret) != -1) at(prev, at(next, ret)) = ret;
      at(next, at(prev, call)) = call;
      if (at(next, call) != -1) at(prev, at(next, call)) = call;
    };

    // Each operation's bit in its class: known or unknown outcome.
    std::vector<size_t> bit(n);
    size_t known_count = 0;
    size_t unknown_count = 0;
    for (size_t i = 0; i < n; ++i) bit[i] = ops_[i].known ? known_count++ : unknown_count++;
    size_t known_left = known_count;

    std::vector<uint64_t> zobrist(n);
    Random rng(0x6c696e636865636bULL ^ n);
    for (auto& z : zobrist) z = rng.Next();

    Cache cache((known_count + 63) / 64, (unknown_count + 63) / 64);
    std::vector<uint64_t> known_bits((known_count + 63) / 64, 0);
    std::vector<uint64_t> unknown_bits((unknown_count + 63) / 64, 0);
    uint64_t known_hash = 0;
    int32_t state = kAbsentState;
    struct Frame {
      int32_t call;
      int32_t state;
    };
    std::vector<Frame> stack;
    bool have_best = false;

    auto toggle = [&](size_t op) {
      const size_t b = bit[op];
      if (ops_[op].known) {
        known_bits[b / 64] ^= uint64_t{1} << (b % 64);
        known_hash ^= zobrist[op];
      } else {
        unknown_bits[b / 64] ^= uint64_t{1} << (b % 64);
      }
    };

    // From each configuration the list is scanned twice up to its first
    // return: first trying only known-outcome calls, then only unknown-outcome
    // ones. Either order is complete; this one linearizes unknown outcomes
    // only when needed, which keeps the configurations the cache sees small.
    bool unknown_pass = false;
    int32_t entry = next[static_cast<size_t>(head)];
    while (known_left > 0) {  // with none left, the rest may all take effect last
      if (!Spend(&out, cache)) {
        out.verdict = Verdict::kUnknown;
        out.cache_entries = cache.size();
        return out;
      }
      const auto op = static_cast<size_t>(entry / 2);
      if (entry % 2 == 0) {  // a call
        int32_t next_state;
        if (ops_[op].known != unknown_pass && Step(state, ops_[op], &next_state)) {
          toggle(op);
          if (cache.Insert(known_bits, unknown_bits, next_state, known_hash ^ MixState(next_state))) {
            stack.push_back({entry, state});
            state = next_state;
            lift(entry);
            if (ops_[op].known) --known_left;
            unknown_pass = false;
            entry = next[static_cast<size_t>(head)];
            continue;
          }
          toggle(op);
        }
        entry = next[static_cast<size_t>(entry)];
        continue;
      }
      // A return: its operation was not linearized in time on this path.
      RKV_DASSERT(ops_[op].known);
      if (!unknown_pass && unknown_count > 0) {
        unknown_pass = true;
        entry = next[static_cast<size_t>(head)];
        continue;
      }
      if (!have_best || stack.size() > out.prefix.size()) {
        have_best = true;
        out.prefix.clear();
        for (const Frame& f : stack) out.prefix.push_back(static_cast<size_t>(f.call / 2));
        out.unplaceable = op;
        out.state_after_prefix = state;
        out.candidates.clear();
        for (int32_t e = next[static_cast<size_t>(head)]; e != entry; e = next[static_cast<size_t>(e)]) {
          if (e % 2 == 0 && static_cast<size_t>(e / 2) != op) out.candidates.push_back(static_cast<size_t>(e / 2));
        }
      }
      if (stack.empty()) {
        out.verdict = Verdict::kNotLinearizable;
        out.cache_entries = cache.size();
        return out;
      }
      const Frame top = stack.back();
      stack.pop_back();
      const auto undone = static_cast<size_t>(top.call / 2);
      toggle(undone);
      state = top.state;
      unlift(top.call);
      if (ops_[undone].known) ++known_left;
      unknown_pass = !ops_[undone].known;
      entry = next[static_cast<size_t>(top.call)];
    }
    out.verdict = Verdict::kLinearizable;
    out.cache_entries = cache.size();
    return out;
  }

 private:
  // Counts one step; false when the budget is spent.
  bool Spend(PartitionOutcome* out, const Cache& cache) {
    if (budget_->steps_left == 0) {
      out->why_unknown = "the step budget ran out";
      return false;
    }
    if (budget_->steps_left != UINT64_MAX) --budget_->steps_left;
    ++out->steps;
    if ((out->steps & 1023) == 0) {
      if (budget_->has_deadline && budget_->clock->NowMicros() >= budget_->deadline_micros) {
        out->why_unknown = "the time limit ran out";
        return false;
      }
      if (budget_->max_cache_bytes != 0 && cache.Bytes() > budget_->max_cache_bytes) {
        out->why_unknown = fmt::format("the cache outgrew its memory limit ({} bytes)", budget_->max_cache_bytes);
        return false;
      }
    }
    return true;
  }

  std::vector<ModelOp> ops_;
  const std::vector<const Operation*>& originals_;
  Budget* budget_;
};

// Dropped before checking: known not to have taken effect, or (a get) with
// nothing observed.
bool Dropped(const Operation& op) {
  switch (op.outcome) {
    case Outcome::kRejected: return true;
    case Outcome::kFail: return op.type != OpType::kCas;
    case Outcome::kUnknown:
    case Outcome::kPending: return op.type == OpType::kGet;
    case Outcome::kOk: return false;
  }
  return true;
}

// An unknown-outcome write (put, delete, cas) whose value no other operation
// on the key observes (no get read it, no cas expected it) can be left out
// when no cas on the key failed: in any linearization that has it, the value
// it leaves is overwritten before anything could see it; a cas with an unknown
// outcome that would have swapped in its place can move to the end. Removing
// it takes a factor of two off the search for every point it could go.
std::vector<const Operation*> WithoutUnobservedUnknownWrites(const std::vector<const Operation*>& ops,
                                                             size_t* pruned) {
  std::map<std::optional<std::string>, size_t> observers;
  for (const Operation* op : ops) {
    if (op->type == OpType::kGet) ++observers[op->result];
    if (op->type == OpType::kCas) {
      if (op->outcome == Outcome::kFail) return ops;  // a failed cas observes any other value
      ++observers[op->value];
    }
  }
  std::vector<const Operation*> kept;
  kept.reserve(ops.size());
  for (const Operation* op : ops) {
    const bool unknown = op->outcome == Outcome::kUnknown || op->outcome == Outcome::kPending;
    if (!unknown || op->type == OpType::kGet) {
      kept.push_back(op);
      continue;
    }
    std::optional<std::string> written;
    if (op->type == OpType::kPut) written = op->value;
    if (op->type == OpType::kCas) written = op->new_value;
    size_t seen_by = observers[written];
    if (op->type == OpType::kCas && op->value == written) --seen_by;  // itself
    if (seen_by == 0) {
      ++*pruned;
    } else {
      kept.push_back(op);
    }
  }
  return kept;
}

std::string Quote(const std::optional<std::string>& v) {
  return v.has_value() ? EscapeToken(*v) : std::string("absent");
}

std::string ExplainPartition(const std::string& key, const std::vector<const Operation*>& ops,
                             const std::vector<std::string>& values, const PartitionOutcome& p) {
  std::string s = fmt::format("key {} is not linearizable ({} operations on it).\n", EscapeToken(key), ops.size());
  if (!p.direct_reason.empty()) {
    s += p.direct_reason + "\n  " + FormatOperation(*ops[p.unplaceable]) + "\n";
    return s;
  }
  s += fmt::format("Longest linearizable order found ({} of {} operations):\n", p.prefix.size(), ops.size());
  size_t first = 0;
  if (p.prefix.size() > kMaxPrefixShown) {
    first = p.prefix.size() - kMaxPrefixShown;
    s += fmt::format("  ... {} earlier operations\n", first);
  }
  for (size_t i = first; i < p.prefix.size(); ++i) {
    s += fmt::format("  {}. {}\n", i + 1, FormatOperation(*ops[p.prefix[i]]));
  }
  const std::optional<std::string> state =
      p.state_after_prefix == kAbsentState
          ? std::nullopt
          : std::optional<std::string>(values[static_cast<size_t>(p.state_after_prefix)]);
  s += fmt::format("Value of {} after it: {}\n", EscapeToken(key), Quote(state));
  s += fmt::format("Could not place next (it completed before any remaining order worked):\n  {}\n",
                   FormatOperation(*ops[p.unplaceable]));
  if (!p.candidates.empty()) {
    s += "Other operations that could have gone next:\n";
    for (size_t i = 0; i < p.candidates.size() && i < kMaxCandidatesShown; ++i) {
      s += fmt::format("  {}\n", FormatOperation(*ops[p.candidates[i]]));
    }
    if (p.candidates.size() > kMaxCandidatesShown) {
      s += fmt::format("  ... and {} more\n", p.candidates.size() - kMaxCandidatesShown);
    }
  }
  return s;
}

}  // namespace

CheckResult Check(const History& history, const CheckOptions& options) {
  CheckResult result;
  result.stats.operations = history.ops.size();

  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const Operation& op : history.ops) {
    if (Dropped(op)) {
      ++result.stats.dropped;
      continue;
    }
    by_key[op.key].push_back(&op);
  }
  result.stats.partitions = by_key.size();

  // Small partitions first: they are cheap, and a verdict on them is not lost
  // if a large one uses up the budget.
  std::vector<const std::pair<const std::string, std::vector<const Operation*>>*> order;
  for (const auto& kv : by_key) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto* a, const auto* b) { return a->second.size() < b->second.size(); });

  Budget budget;
  budget.steps_left = options.max_steps == 0 ? UINT64_MAX : options.max_steps;
  budget.clock = options.clock != nullptr ? options.clock : Clock::Real();
  if (options.time_limit.count() > 0) {
    budget.has_deadline = true;
    budget.deadline_micros = budget.clock->NowMicros() + options.time_limit.count() * 1000;
  }
  budget.max_cache_bytes = options.max_cache_bytes;

  std::string first_bad_explanation;
  std::string unknown_key;
  std::string unknown_why;
  for (const auto* part : order) {
    const std::string& key = part->first;
    const std::vector<const Operation*>& all_ops = part->second;
    PartitionReport report;
    report.key = key;
    report.operations = all_ops.size();
    if (!unknown_key.empty()) {  // the budget is gone
      result.partitions.push_back(std::move(report));
      continue;
    }
    report.checked = true;

    const std::vector<const Operation*> ops = WithoutUnobservedUnknownWrites(all_ops, &result.stats.pruned);

    // Intern values; find reads of values nobody wrote.
    std::unordered_map<std::string, int32_t> ids;
    std::vector<std::string> values;
    auto intern = [&](const std::string& v) {
      auto [it, added] = ids.emplace(v, static_cast<int32_t>(values.size()));
      if (added) values.push_back(v);
      return it->second;
    };
    for (const Operation* op : ops) {
      if (op->type == OpType::kPut) intern(*op->value);
      if (op->type == OpType::kCas) intern(op->new_value);
    }
    const size_t written = values.size();
    PartitionOutcome outcome;
    std::vector<ModelOp> model;
    model.reserve(ops.size());
    for (size_t i = 0; i < ops.size() && outcome.direct_reason.empty(); ++i) {
      const Operation& op = *ops[i];
      ModelOp m;
      m.known = op.outcome == Outcome::kOk || op.outcome == Outcome::kFail;
      auto id_of = [&](const std::optional<std::string>& v) {
        return v.has_value() ? intern(*v) : kAbsentState;
      };
      switch (op.type) {
        case OpType::kPut:
          m.kind = Kind::kPut;
          m.a = id_of(op.value);
          break;
        case OpType::kDelete: m.kind = Kind::kDelete; break;
        case OpType::kGet:
          m.kind = Kind::kGet;
          m.a = id_of(op.result);
          if (m.a != kAbsentState && static_cast<size_t>(m.a) >= written) {
            outcome.direct_reason = "It reads a value that no put or cas on the key ever wrote:";
            outcome.unplaceable = i;
          }
          break;
        case OpType::kCas:
          m.kind = !m.known ? Kind::kCasMaybe : op.outcome == Outcome::kOk ? Kind::kCasOk : Kind::kCasFail;
          m.a = id_of(op.value);
          m.b = intern(op.new_value);
          if (m.kind == Kind::kCasOk && m.a != kAbsentState && static_cast<size_t>(m.a) >= written) {
            outcome.direct_reason = "A cas succeeded expecting a value that no put or cas on the key ever wrote:";
            outcome.unplaceable = i;
          }
          break;
      }
      model.push_back(m);
    }
    if (!outcome.direct_reason.empty()) {
      outcome.verdict = Verdict::kNotLinearizable;
    } else {
      PartitionChecker checker(std::move(model), ops, &budget);
      outcome = checker.Run();
    }
    report.verdict = outcome.verdict;
    report.steps = outcome.steps;
    report.cache_entries = outcome.cache_entries;
    result.stats.steps += outcome.steps;
    result.stats.cache_entries += outcome.cache_entries;

    if (outcome.verdict == Verdict::kNotLinearizable) {
      result.bad_keys.push_back(key);
      if (first_bad_explanation.empty()) {
        first_bad_explanation = ExplainPartition(key, ops, values, outcome);
        result.key = key;
        if (outcome.direct_reason.empty()) {
          for (size_t i : outcome.prefix) result.longest_prefix.push_back(*ops[i]);
        }
        result.unplaceable = *ops[outcome.unplaceable];
      }
    } else if (outcome.verdict == Verdict::kUnknown) {
      unknown_key = key;
      unknown_why = fmt::format(
          "Checking key {} ({} operations) stopped after {} steps: {}.", EscapeToken(key), ops.size(),
          outcome.steps, outcome.why_unknown);
    }
    result.partitions.push_back(std::move(report));
  }

  if (!result.bad_keys.empty()) {
    result.verdict = Verdict::kNotLinearizable;
    result.explanation = first_bad_explanation;
    if (result.bad_keys.size() > 1) {
      std::string all;
      for (const auto& k : result.bad_keys) all += " " + EscapeToken(k);
      result.explanation += fmt::format("Keys not linearizable ({}):{}\n", result.bad_keys.size(), all);
    }
    if (!unknown_key.empty()) {
      result.explanation += unknown_why + " Keys after it were not checked.\n";
    }
  } else if (!unknown_key.empty()) {
    result.verdict = Verdict::kUnknown;
    result.key = unknown_key;
    size_t checked = 0;
    for (const auto& p : result.partitions) checked += p.verdict == Verdict::kLinearizable && p.checked ? 1 : 0;
    result.explanation = unknown_why + fmt::format(
        " {} of {} keys were found linearizable; the others were not decided.\n", checked,
        result.partitions.size());
  } else {
    result.verdict = Verdict::kLinearizable;
  }
  return result;
}

}  // namespace rkv::lincheck
