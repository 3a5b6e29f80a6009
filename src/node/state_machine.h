// StateMachine: applies committed Raft entries to the Bitcask engine, with
// exactly-once client sessions (docs/formats/state-machine.md).
//
// Durability. The engine runs in `none` sync mode: the Raft log is the
// durable copy of every committed write, so applying does not fsync. Each
// entry is applied in ONE atomic engine batch holding the user changes, the
// session update and the new applied index, so whatever a crash leaves of the
// engine is the state after some prefix 1..k of the log, with data, sessions
// and applied index agreeing. Checkpoint() syncs the engine; from then on
// durable_applied_index() survives any crash and the WAL may drop its prefix
// up to it. Restart: open the engine, Open() the state machine (which reads
// the applied index and the session table), replay the WAL entries after
// applied_index().
//
// Determinism. Every server applies the same entries and must end in the same
// state, so nothing here reads a clock, iterates a hash table, or depends on
// local configuration beyond StateMachineOptions (which must be equal on every
// member). Time is the leader's timestamp in each command, made monotonic: the
// state machine's time is the largest timestamp applied so far. Session
// expiry, eviction and TTLs are functions of that time and the log alone.
//
// Exactly-once. A write carries (client id, sequence). The session of a client
// keeps the last sequence it applied and that write's result: a retry of the
// same sequence is answered from there without applying, an older one is
// refused (kStaleSequence), a newer one is applied and recorded. Client id 0
// is a write without session, applied every time it is committed. A session
// idle for longer than session_ttl_ms (in entry time) is dropped when a later
// entry's time passes that, and beyond max_sessions the least recently used
// is evicted; a retry after either is applied again, so a client must not
// retry longer than the TTL.
//
// Keys. User keys live under a one-byte prefix so no user key can collide
// with the state machine's own records (sessions, metadata, the expiry
// index). The engine must therefore take keys kKeyOverhead bytes longer than
// the user key limit, and values kValueOverhead bytes larger:
// FitEngineOptions sets that up.
//
// TTLs. An expiry is stored with the value (not as the engine's own expiry,
// which the engine checks against the local clock and would make a
// compare-and-swap answer differently on different servers). Expired keys read
// as absent and are deleted deterministically, a bounded number per entry,
// through an index ordered by expiry.
//
// Threads: Apply, Checkpoint and sessions() from one thread (the node's
// apply loop); Get and the index accessors from any thread meanwhile.
#ifndef RKV_NODE_STATE_MACHINE_H_
#define RKV_NODE_STATE_MACHINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/types.h"
#include "node/command.h"
#include "node/kv_types.h"

namespace rkv {

namespace storage {
class Engine;
class WriteBatch;
struct Options;
}  // namespace storage

// Must be equal on every member of a cluster: they decide what every server
// writes.
struct StateMachineOptions {
  // A session idle for longer than this (entry time) is dropped.
  uint64_t session_ttl_ms = 60 * 60 * 1000;
  // At most this many sessions; beyond it the least recently used goes.
  size_t max_sessions = 100'000;
  // Commands breaking these are applied as kRejected (nothing written).
  size_t max_key_size = 4096;
  size_t max_value_size = 16u << 20;
  // At most this many expired keys are deleted per applied entry.
  size_t expiry_sweep_max = 64;
};

// One client's session, as the state machine holds it.
struct SessionInfo {
  uint64_t client_id = 0;
  uint64_t last_sequence = 0;
  uint64_t last_active_ms = 0;  // entry time of its last applied write
  CommandResult last_result;

  friend bool operator==(const SessionInfo&, const SessionInfo&) = default;
};

class StateMachine {
 public:
  // Key prefixes in the engine (docs/formats/state-machine.md).
  static constexpr char kMetaPrefix = 'm';
  static constexpr char kSessionPrefix = 's';
  static constexpr char kUserPrefix = 'u';
  static constexpr char kExpiryPrefix = 'x';
  // Bytes an engine key may take beyond the user key (the expiry index key:
  // prefix and expiry).
  static constexpr size_t kKeyOverhead = 9;
  // Bytes a stored value may take beyond the user value (its envelope:
  // flags, expiry and revision).
  static constexpr size_t kValueOverhead = 21;
  // The version of the state machine's records in the engine. Version 2
  // session records hold results with revisions; version 1 records are
  // still read.
  static constexpr uint8_t kFormatVersion = 2;

  // `engine` (not owned, must outlive the state machine) is open, normally in
  // sync mode none. Reads the applied index, the entry time and the session
  // table, then syncs the engine once, so what it found is durable.
  // NotSupported if the engine holds records of a newer format; Corruption
  // if they are malformed.
  static Result<std::unique_ptr<StateMachine>> Open(storage::Engine* engine,
                                                    StateMachineOptions options = {});

  // Raises the engine's key and value limits to what the records of a state
  // machine with `options` need. An engine that refuses a record would stop
  // the node: Apply fails on it rather than skip the entry.
  static void FitEngineOptions(const StateMachineOptions& options, storage::Options* engine_options);

  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // The value of user key `key`. NotFound if absent or expired: expired means
  // an expiry at or before max(now_ms, time_ms()); a read path that wants
  // wall-clock TTLs passes its clock's time, 0 reads at the entry time.
  Result<std::string> Get(std::string_view key, uint64_t now_ms = 0) const;
  // The same, with the key's revision.
  Result<KvEntry> GetEntry(std::string_view key, uint64_t now_ms = 0) const;
  // A page of user keys in byte order (kv_types.h), expired keys left out,
  // judged as Get judges them. Reads the engine as it is: consistent as of
  // one applied index only while nothing is applied meanwhile (the node
  // thread, between entries).
  Result<ScanResult> Scan(const ScanRequest& request, uint64_t now_ms = 0) const;

  // Applies the committed normal entry (index, term, data). Empty data is
  // the leader's no-op: only the applied index moves. A kConfChange entry is
  // applied the same way (with empty data), so the applied index stays
  // contiguous. An index at or below applied_index() (a replay after a
  // restart) is skipped and answered kAlreadyApplied; an index past
  // applied_index() + 1 is a bug.
  //
  // Errors: Corruption if the data is not a command this version can apply;
  // an engine error if the write failed. Either way nothing changed, and the
  // node cannot go on applying (it stops rather than skip an entry).
  Result<CommandResult> Apply(LogIndex index, Term term, std::string_view data);

  // Syncs the engine; afterwards durable_applied_index() is the applied index
  // as of the call, which survives any crash.
  Status Checkpoint();

  LogIndex applied_index() const { return LogIndex{applied_index_.load(std::memory_order_acquire)}; }
  Term applied_term() const { return Term{applied_term_.load(std::memory_order_acquire)}; }
  LogIndex durable_applied_index() const {
    return LogIndex{durable_applied_index_.load(std::memory_order_acquire)};
  }
  // The state machine's time: the largest leader timestamp applied so far.
  uint64_t time_ms() const { return time_ms_.load(std::memory_order_acquire); }

  // Every session, by client id. Apply thread only.
  std::vector<SessionInfo> sessions() const;
  size_t session_count() const { return sessions_.size(); }

  // The member address table: each member's addresses as the log recorded
  // them (set by kSetMember, dropped by kRemoveMember), by member id. It
  // travels in snapshots with the data. Apply thread only.
  const std::map<uint64_t, MemberAddress>& members() const { return members_; }
  // Grows whenever members() may have changed, so a caller can skip
  // comparing the table when it has not.
  uint64_t members_version() const { return members_version_; }
  // The cluster id recorded by Seed; 0 if none was.
  uint64_t cluster_id() const { return cluster_id_; }

  // Records a new node's cluster id and initial member table, before any
  // entry is applied (every member of a new cluster seeds the same table,
  // from the same --initial-cluster; a joining node seeds what the cluster
  // told it). Synced before it returns. InvalidArgument once an entry has
  // been applied.
  Status Seed(uint64_t cluster_id, const std::map<uint64_t, MemberAddress>& members);
  // The same at any applied index, for a restored backup becoming a member
  // of a new cluster (restore.h), which also drops the old cluster's
  // sessions (drop_sessions): the new cluster's clients and node slots
  // start over, and must not be taken for stale retries of the old ones.
  Status Reseed(uint64_t cluster_id, const std::map<uint64_t, MemberAddress>& members, bool drop_sessions);

 private:
  struct Session {
    uint64_t last_sequence = 0;
    uint64_t last_active_ms = 0;
    CommandResult last_result;
  };
  // What applying one entry changes in the session table, kept aside until
  // the engine batch is written so a failed write changes nothing.
  struct SessionChanges {
    std::vector<uint64_t> removed;  // expired or evicted client ids
    bool upsert = false;
    uint64_t client_id = 0;
    Session session;
  };

  StateMachine(storage::Engine* engine, StateMachineOptions options);

  Status Load();
  // Adds to `batch` the deletion of up to expiry_sweep_max keys expired at
  // `now`; sets *next_expiry to a lower bound of the expiries left.
  Status SweepExpired(uint64_t now, storage::WriteBatch* batch, uint64_t* next_expiry) const;
  // Adds the command's writes to `batch` (or decides it is rejected or a
  // failed CAS); new expiry index entries lower *next_expiry.
  Result<CommandResult> ApplyCommand(const Command& command, LogIndex index, uint64_t now,
                                     storage::WriteBatch* batch, uint64_t* next_expiry) const;
  // The user value and revision of `key` (its stored value after the
  // envelope), or nullopt when it is absent or expired at `now`.
  Result<std::optional<KvEntry>> ReadUser(std::string_view key, uint64_t now) const;
  Status CheckUserKey(std::string_view key) const;
  void CommitSessions(const SessionChanges& changes);
  void CommitMembers(const Command& command);

  storage::Engine* const engine_;
  const StateMachineOptions options_;

  std::atomic<uint64_t> applied_index_{0};
  std::atomic<uint64_t> applied_term_{0};
  std::atomic<uint64_t> durable_applied_index_{0};
  std::atomic<uint64_t> time_ms_{0};

  // A lower bound of every expiry in the expiry index (UINT64_MAX when it is
  // empty), so entries do not scan the index while nothing can have expired.
  uint64_t next_expiry_ms_ = UINT64_MAX;

  std::map<uint64_t, MemberAddress> members_;
  uint64_t members_version_ = 0;
  uint64_t cluster_id_ = 0;

  std::map<uint64_t, Session> sessions_;              // by client id
  std::set<std::pair<uint64_t, uint64_t>> by_activity_;  // (last_active_ms, client id)
};

}  // namespace rkv

#endif  // RKV_NODE_STATE_MACHINE_H_
