#include "raft/message.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/coding.h"

namespace rkv::raft {

uint64_t EntriesBytes(const std::vector<Entry>& entries) {
  uint64_t total = 0;
  for (const Entry& e : entries) total += EntryBytes(e);
  return total;
}

bool Configuration::IsVoter(NodeId id) const {
  return std::binary_search(voters.begin(), voters.end(), id);
}

bool Configuration::IsLearner(NodeId id) const {
  return std::binary_search(learners.begin(), learners.end(), id);
}

namespace {
Status CheckSortedIds(const std::vector<NodeId>& ids, std::string_view what) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == kNoNode) return Status::InvalidArgument(fmt::format("{} contain node id 0", what));
    if (i > 0 && !(ids[i - 1] < ids[i])) {
      return Status::InvalidArgument(fmt::format("{} are not sorted and unique", what));
    }
  }
  return Status::OK();
}
}  // namespace

Status CheckConfiguration(const Configuration& configuration) {
  RKV_RETURN_IF_ERROR(CheckSortedIds(configuration.voters, "voters"));
  RKV_RETURN_IF_ERROR(CheckSortedIds(configuration.learners, "learners"));
  for (NodeId learner : configuration.learners) {
    if (configuration.IsVoter(learner)) {
      return Status::InvalidArgument(fmt::format("node {} is both voter and learner", learner.value()));
    }
  }
  return Status::OK();
}

std::string EncodeConfChange(const ConfChange& change) {
  std::string out;
  out.push_back(static_cast<char>(change.type));
  PutFixed64(&out, change.node_id.value());
  out.append(change.context);
  return out;
}

Result<ConfChange> DecodeConfChange(std::string_view data) {
  if (data.size() < 9) return Status::Corruption("conf change: truncated");
  const auto type = static_cast<uint8_t>(data[0]);
  if (type < 1 || type > 4) return Status::Corruption("conf change: unknown type");
  data.remove_prefix(1);
  uint64_t id = 0;
  if (!GetFixed64(&data, &id) || id == 0) return Status::Corruption("conf change: bad node id");
  return ConfChange{static_cast<ConfChangeType>(type), NodeId{id}, std::string(data)};
}

namespace {
struct NameVisitor {
  std::string_view operator()(const RequestVoteRequest&) const { return "RequestVoteRequest"; }
  std::string_view operator()(const RequestVoteResponse&) const { return "RequestVoteResponse"; }
  std::string_view operator()(const AppendEntriesRequest&) const { return "AppendEntriesRequest"; }
  std::string_view operator()(const AppendEntriesResponse&) const { return "AppendEntriesResponse"; }
  std::string_view operator()(const HeartbeatRequest&) const { return "HeartbeatRequest"; }
  std::string_view operator()(const HeartbeatResponse&) const { return "HeartbeatResponse"; }
  std::string_view operator()(const InstallSnapshotRequest&) const { return "InstallSnapshotRequest"; }
  std::string_view operator()(const InstallSnapshotResponse&) const { return "InstallSnapshotResponse"; }
  std::string_view operator()(const TimeoutNowRequest&) const { return "TimeoutNowRequest"; }
  std::string_view operator()(const ReadIndexRequest&) const { return "ReadIndexRequest"; }
  std::string_view operator()(const ReadIndexResponse&) const { return "ReadIndexResponse"; }
  std::string_view operator()(const ProposeRequest&) const { return "ProposeRequest"; }
};

struct DescribeVisitor {
  std::string operator()(const RequestVoteRequest& r) const {
    return fmt::format("last_log_index={} last_log_term={} pre_vote={} transfer={}",
                       r.last_log_index.value(), r.last_log_term.value(), r.pre_vote,
                       r.leadership_transfer);
  }
  std::string operator()(const RequestVoteResponse& r) const {
    return fmt::format("granted={} pre_vote={}", r.vote_granted, r.pre_vote);
  }
  std::string operator()(const AppendEntriesRequest& r) const {
    std::string out = fmt::format("prev={}/{} commit={} entries=[", r.prev_log_index.value(),
                                  r.prev_log_term.value(), r.leader_commit.value());
    for (size_t i = 0; i < r.entries.size(); ++i) {
      out += fmt::format("{}{}/{}", i ? " " : "", r.entries[i].index.value(), r.entries[i].term.value());
    }
    return out + "]";
  }
  std::string operator()(const AppendEntriesResponse& r) const {
    if (r.success) return fmt::format("success match={}", r.match_index.value());
    return fmt::format("reject index={} hint={}/{}", r.rejected_index.value(),
                       r.conflict_index.value(), r.conflict_term.value());
  }
  std::string operator()(const HeartbeatRequest& r) const {
    return fmt::format("commit={} round={}", r.leader_commit.value(), r.read_round);
  }
  std::string operator()(const HeartbeatResponse& r) const {
    return fmt::format("round={}", r.read_round);
  }
  std::string operator()(const InstallSnapshotRequest& r) const {
    return fmt::format("snapshot={}/{} offset={} bytes={} done={}", r.metadata.last_index.value(),
                       r.metadata.last_term.value(), r.offset, r.data.size(), r.done);
  }
  std::string operator()(const InstallSnapshotResponse& r) const {
    return fmt::format("snapshot={} next_offset={} done={} match={}", r.snapshot_index.value(),
                       r.next_offset, r.done, r.match_index.value());
  }
  std::string operator()(const TimeoutNowRequest&) const { return {}; }
  std::string operator()(const ReadIndexRequest& r) const {
    return fmt::format("request={}", r.request_id);
  }
  std::string operator()(const ReadIndexResponse& r) const {
    return fmt::format("request={} index={}", r.request_id, r.index.value());
  }
  std::string operator()(const ProposeRequest& r) const {
    return fmt::format("commands={}", r.commands.size());
  }
};
}  // namespace

std::string_view MessageTypeName(const Message& m) { return std::visit(NameVisitor{}, m.body); }

std::string DescribeMessage(const Message& m) {
  return fmt::format("{}->{} term={} {} {}", m.from.value(), m.to.value(), m.term.value(),
                     MessageTypeName(m), std::visit(DescribeVisitor{}, m.body));
}

bool IsLeaderRequest(const Message& m) {
  return std::holds_alternative<AppendEntriesRequest>(m.body) ||
         std::holds_alternative<HeartbeatRequest>(m.body) ||
         std::holds_alternative<InstallSnapshotRequest>(m.body) ||
         std::holds_alternative<TimeoutNowRequest>(m.body);
}

}  // namespace rkv::raft
