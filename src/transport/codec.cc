// Layouts are in docs/formats/transport.md. In brief:
//
//   frame    := header payload
//   header   := magic "rkvT" | version u8 | type u8 | reserved u16 = 0 |
//               cluster_id u64 | length u32 | payload_crc u32 | header_crc u32
//   payload  := hello | (varint length, message)+
//   message  := version u8 | tag u8 | from v | to v | term v | body
//
// (v: varint64; all fixed-width integers little-endian.)
#include "transport/codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <variant>

#include "common/coding.h"
#include "common/crc32c.h"

namespace rkv::transport {

namespace {

// The wire tag of each message type. Never renumber: tags are part of the
// format. A new message type takes the next free tag.
enum class Tag : uint8_t {
  kRequestVoteRequest = 1,
  kRequestVoteResponse = 2,
  kAppendEntriesRequest = 3,
  kAppendEntriesResponse = 4,
  kHeartbeatRequest = 5,
  kHeartbeatResponse = 6,
  kInstallSnapshotRequest = 7,
  kInstallSnapshotResponse = 8,
  kTimeoutNowRequest = 9,
  kReadIndexRequest = 10,
  kReadIndexResponse = 11,
  kProposeRequest = 12,
};
// Adding a message type to raft::MessageBody must add a tag, an encoder and a
// decoder here (and a row in the format doc).
static_assert(std::variant_size_v<raft::MessageBody> == 12);

// Flag bits of the one-byte flag fields. Bits a body does not define must be
// zero.
constexpr uint8_t kVotePreVote = 1u << 0;
constexpr uint8_t kVoteLeadershipTransfer = 1u << 1;
constexpr uint8_t kVoteGranted = 1u << 0;
constexpr uint8_t kVoteResponsePreVote = 1u << 1;
constexpr uint8_t kAppendSuccess = 1u << 0;
constexpr uint8_t kSnapshotDone = 1u << 0;

// The smallest encoding of one entry (term, index, type, data length), the
// bound used to refuse entry counts the input cannot hold.
constexpr size_t kMinEntryBytes = 4;

uint8_t Flag(bool set, uint8_t bit) { return set ? bit : uint8_t{0}; }

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

void PutIds(std::string* out, const std::vector<NodeId>& ids) {
  PutVarint64(out, ids.size());
  for (NodeId id : ids) PutVarint64(out, id.value());
}

void PutSnapshotMetadata(std::string* out, const raft::SnapshotMetadata& metadata) {
  PutVarint64(out, metadata.last_index.value());
  PutVarint64(out, metadata.last_term.value());
  PutIds(out, metadata.configuration.voters);
  PutIds(out, metadata.configuration.learners);
}

struct BodyEncoder {
  std::string* out;
  const raft::Message* message;  // whose envelope follows the tag

  void operator()(const raft::RequestVoteRequest& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kRequestVoteRequest));
    Envelope();
    PutVarint64(out, r.last_log_index.value());
    PutVarint64(out, r.last_log_term.value());
    PutU8(out, Flag(r.pre_vote, kVotePreVote) |
                   Flag(r.leadership_transfer, kVoteLeadershipTransfer));
  }
  void operator()(const raft::RequestVoteResponse& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kRequestVoteResponse));
    Envelope();
    PutU8(out, Flag(r.vote_granted, kVoteGranted) | Flag(r.pre_vote, kVoteResponsePreVote));
  }
  void operator()(const raft::AppendEntriesRequest& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kAppendEntriesRequest));
    Envelope();
    PutVarint64(out, r.prev_log_index.value());
    PutVarint64(out, r.prev_log_term.value());
    PutVarint64(out, r.leader_commit.value());
    PutVarint64(out, r.entries.size());
    for (const raft::Entry& e : r.entries) {
      PutVarint64(out, e.term.value());
      PutVarint64(out, e.index.value());
      PutU8(out, static_cast<uint8_t>(e.type));
      PutLengthPrefixed(out, e.data);
    }
  }
  void operator()(const raft::AppendEntriesResponse& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kAppendEntriesResponse));
    Envelope();
    PutU8(out, Flag(r.success, kAppendSuccess));
    PutVarint64(out, r.match_index.value());
    PutVarint64(out, r.rejected_index.value());
    PutVarint64(out, r.conflict_term.value());
    PutVarint64(out, r.conflict_index.value());
  }
  void operator()(const raft::HeartbeatRequest& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kHeartbeatRequest));
    Envelope();
    PutVarint64(out, r.leader_commit.value());
    PutVarint64(out, r.read_round);
  }
  void operator()(const raft::HeartbeatResponse& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kHeartbeatResponse));
    Envelope();
    PutVarint64(out, r.read_round);
  }
  void operator()(const raft::InstallSnapshotRequest& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kInstallSnapshotRequest));
    Envelope();
    PutSnapshotMetadata(out, r.metadata);
    PutVarint64(out, r.offset);
    PutU8(out, Flag(r.done, kSnapshotDone));
    PutLengthPrefixed(out, r.data);
  }
  void operator()(const raft::InstallSnapshotResponse& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kInstallSnapshotResponse));
    Envelope();
    PutVarint64(out, r.snapshot_index.value());
    PutVarint64(out, r.next_offset);
    PutU8(out, Flag(r.done, kSnapshotDone));
    PutVarint64(out, r.match_index.value());
  }
  void operator()(const raft::TimeoutNowRequest&) const {
    PutU8(out, static_cast<uint8_t>(Tag::kTimeoutNowRequest));
    Envelope();
  }
  void operator()(const raft::ReadIndexRequest& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kReadIndexRequest));
    Envelope();
    PutVarint64(out, r.request_id);
  }
  void operator()(const raft::ReadIndexResponse& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kReadIndexResponse));
    Envelope();
    PutVarint64(out, r.request_id);
    PutVarint64(out, r.index.value());
  }
  void operator()(const raft::ProposeRequest& r) const {
    PutU8(out, static_cast<uint8_t>(Tag::kProposeRequest));
    Envelope();
    PutVarint64(out, r.commands.size());
    for (const std::string& command : r.commands) PutLengthPrefixed(out, command);
  }

  void Envelope() const {
    PutVarint64(out, message->from.value());
    PutVarint64(out, message->to.value());
    PutVarint64(out, message->term.value());
  }
};

// A rough upper bound of the encoding's size, so the output is allocated once.
size_t EstimateSize(const raft::Message& m) {
  size_t size = 64;
  if (const auto* append = std::get_if<raft::AppendEntriesRequest>(&m.body)) {
    for (const raft::Entry& e : append->entries) size += e.data.size() + 32;
  } else if (const auto* snapshot = std::get_if<raft::InstallSnapshotRequest>(&m.body)) {
    size += snapshot->data.size() + 10 * (snapshot->metadata.configuration.voters.size() +
                                          snapshot->metadata.configuration.learners.size());
  } else if (const auto* propose = std::get_if<raft::ProposeRequest>(&m.body)) {
    for (const std::string& command : propose->commands) size += command.size() + 10;
  }
  return size;
}

// Reads fields off the front of an input, remembering the first failure.
class Reader {
 public:
  explicit Reader(std::string_view input) : input_(input) {}

  bool U8(uint8_t* v) {
    if (input_.empty()) return Fail("truncated");
    *v = static_cast<uint8_t>(input_.front());
    input_.remove_prefix(1);
    return true;
  }
  bool Varint(uint64_t* v) { return GetVarint64(&input_, v) || Fail("truncated or bad varint"); }
  template <typename Tag>
  bool Id(StrongId<Tag>* id) {
    uint64_t v = 0;
    if (!Varint(&v)) return false;
    *id = StrongId<Tag>{v};
    return true;
  }
  bool Bytes(std::string* out) {
    std::string_view value;
    if (!GetLengthPrefixed(&input_, &value)) return Fail("truncated or bad length-prefixed bytes");
    out->assign(value);
    return true;
  }
  // A flag byte whose bits outside `known` must be zero.
  bool Flags(uint8_t known, uint8_t* v) {
    if (!U8(v)) return false;
    if ((*v & ~known) != 0) return Fail(fmt::format("unknown flag bits 0x{:02x}", *v & ~known));
    return true;
  }
  // A count of items, each at least `min_item_bytes` long, so a count the
  // input cannot possibly hold is refused before anything is reserved.
  bool Count(size_t min_item_bytes, size_t* count) {
    uint64_t n = 0;
    if (!Varint(&n)) return false;
    if (n > input_.size() / min_item_bytes) return Fail(fmt::format("count {} exceeds the input", n));
    *count = static_cast<size_t>(n);
    return true;
  }
  bool Ids(std::vector<NodeId>* ids) {
    size_t n = 0;
    if (!Count(1, &n)) return false;
    ids->reserve(n);
    for (size_t i = 0; i < n; ++i) {
      NodeId id;
      if (!Id(&id)) return false;
      ids->push_back(id);
    }
    return true;
  }
  bool SnapshotMetadata(raft::SnapshotMetadata* metadata) {
    if (!Id(&metadata->last_index) || !Id(&metadata->last_term) ||
        !Ids(&metadata->configuration.voters) || !Ids(&metadata->configuration.learners)) {
      return false;
    }
    Status s = raft::CheckConfiguration(metadata->configuration);
    if (!s.ok()) return Fail("bad configuration: " + s.message());
    return true;
  }

  bool Fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  bool empty() const { return input_.empty(); }
  size_t remaining() const { return input_.size(); }
  const std::string& error() const { return error_; }

 private:
  std::string_view input_;
  std::string error_;
};

bool DecodeBody(Tag tag, Reader* in, raft::MessageBody* body) {
  switch (tag) {
    case Tag::kRequestVoteRequest: {
      raft::RequestVoteRequest r;
      uint8_t flags = 0;
      if (!in->Id(&r.last_log_index) || !in->Id(&r.last_log_term) ||
          !in->Flags(kVotePreVote | kVoteLeadershipTransfer, &flags)) {
        return false;
      }
      r.pre_vote = (flags & kVotePreVote) != 0;
      r.leadership_transfer = (flags & kVoteLeadershipTransfer) != 0;
      *body = r;
      return true;
    }
    case Tag::kRequestVoteResponse: {
      raft::RequestVoteResponse r;
      uint8_t flags = 0;
      if (!in->Flags(kVoteGranted | kVoteResponsePreVote, &flags)) return false;
      r.vote_granted = (flags & kVoteGranted) != 0;
      r.pre_vote = (flags & kVoteResponsePreVote) != 0;
      *body = r;
      return true;
    }
    case Tag::kAppendEntriesRequest: {
      raft::AppendEntriesRequest r;
      size_t count = 0;
      if (!in->Id(&r.prev_log_index) || !in->Id(&r.prev_log_term) || !in->Id(&r.leader_commit) ||
          !in->Count(kMinEntryBytes, &count)) {
        return false;
      }
      r.entries.reserve(count);
      for (size_t i = 0; i < count; ++i) {
        raft::Entry e;
        uint8_t type = 0;
        if (!in->Id(&e.term) || !in->Id(&e.index) || !in->U8(&type)) return false;
        if (type != static_cast<uint8_t>(raft::EntryType::kNormal) &&
            type != static_cast<uint8_t>(raft::EntryType::kConfChange)) {
          return in->Fail(fmt::format("unknown entry type {}", type));
        }
        e.type = static_cast<raft::EntryType>(type);
        if (!in->Bytes(&e.data)) return false;
        r.entries.push_back(std::move(e));
      }
      *body = std::move(r);
      return true;
    }
    case Tag::kAppendEntriesResponse: {
      raft::AppendEntriesResponse r;
      uint8_t flags = 0;
      if (!in->Flags(kAppendSuccess, &flags) || !in->Id(&r.match_index) ||
          !in->Id(&r.rejected_index) || !in->Id(&r.conflict_term) || !in->Id(&r.conflict_index)) {
        return false;
      }
      r.success = (flags & kAppendSuccess) != 0;
      *body = r;
      return true;
    }
    case Tag::kHeartbeatRequest: {
      raft::HeartbeatRequest r;
      if (!in->Id(&r.leader_commit) || !in->Varint(&r.read_round)) return false;
      *body = r;
      return true;
    }
    case Tag::kHeartbeatResponse: {
      raft::HeartbeatResponse r;
      if (!in->Varint(&r.read_round)) return false;
      *body = r;
      return true;
    }
    case Tag::kInstallSnapshotRequest: {
      raft::InstallSnapshotRequest r;
      uint8_t flags = 0;
      if (!in->SnapshotMetadata(&r.metadata) || !in->Varint(&r.offset) ||
          !in->Flags(kSnapshotDone, &flags) || !in->Bytes(&r.data)) {
        return false;
      }
      r.done = (flags & kSnapshotDone) != 0;
      *body = std::move(r);
      return true;
    }
    case Tag::kInstallSnapshotResponse: {
      raft::InstallSnapshotResponse r;
      uint8_t flags = 0;
      if (!in->Id(&r.snapshot_index) || !in->Varint(&r.next_offset) ||
          !in->Flags(kSnapshotDone, &flags) || !in->Id(&r.match_index)) {
        return false;
      }
      r.done = (flags & kSnapshotDone) != 0;
      *body = r;
      return true;
    }
    case Tag::kTimeoutNowRequest:
      *body = raft::TimeoutNowRequest{};
      return true;
    case Tag::kReadIndexRequest: {
      raft::ReadIndexRequest r;
      if (!in->Varint(&r.request_id)) return false;
      *body = r;
      return true;
    }
    case Tag::kReadIndexResponse: {
      raft::ReadIndexResponse r;
      if (!in->Varint(&r.request_id) || !in->Id(&r.index)) return false;
      *body = r;
      return true;
    }
    case Tag::kProposeRequest: {
      raft::ProposeRequest r;
      size_t count = 0;
      if (!in->Count(1, &count)) return false;
      r.commands.resize(count);
      for (std::string& command : r.commands) {
        if (!in->Bytes(&command)) return false;
      }
      *body = std::move(r);
      return true;
    }
  }
  return in->Fail(fmt::format("unknown message tag {}", static_cast<int>(tag)));
}

constexpr uint8_t kMaxTag = static_cast<uint8_t>(Tag::kProposeRequest);

// A FrameDecoder's buffer above this size is released once it is drained.
constexpr size_t kKeepBufferBytes = size_t{1} << 20;

// Header field offsets.
constexpr size_t kVersionOffset = 4;
constexpr size_t kTypeOffset = 5;
constexpr size_t kReservedOffset = 6;
constexpr size_t kClusterOffset = 8;
constexpr size_t kLengthOffset = 16;
constexpr size_t kPayloadCrcOffset = 20;
constexpr size_t kHeaderCrcOffset = 24;

std::string MakeFrame(uint64_t cluster_id, FrameType type, std::string_view payload) {
  RKV_ASSERT(payload.size() <= kMaxFrameBytesLimit);
  std::string frame;
  frame.resize(kFrameHeaderSize);
  char* h = frame.data();
  std::memcpy(h, kFrameMagic.data(), kFrameMagic.size());
  h[kVersionOffset] = static_cast<char>(kFrameVersion);
  h[kTypeOffset] = static_cast<char>(type);
  EncodeFixed16(h + kReservedOffset, 0);
  EncodeFixed64(h + kClusterOffset, cluster_id);
  EncodeFixed32(h + kLengthOffset, static_cast<uint32_t>(payload.size()));
  EncodeFixed32(h + kPayloadCrcOffset, crc32c::Value(payload));
  EncodeFixed32(h + kHeaderCrcOffset, crc32c::Value(h, kHeaderCrcOffset));
  frame.append(payload);
  return frame;
}

// What a valid header says.
struct Header {
  FrameType type;
  uint64_t cluster_id;
  uint32_t length;
  uint32_t payload_crc;
};

// Checks a complete header. Magic and version first, so that garbage and a
// newer peer get a message that says so rather than "checksum mismatch".
Result<Header> ParseHeader(const char* h, uint64_t cluster_id, size_t max_frame_bytes) {
  if (std::memcmp(h, kFrameMagic.data(), kFrameMagic.size()) != 0) {
    return Status::Corruption("bad frame magic");
  }
  const auto version = static_cast<uint8_t>(h[kVersionOffset]);
  if (version != kFrameVersion) {
    return Status::NotSupported(fmt::format("frame version {} (this node speaks {})", version,
                                            kFrameVersion));
  }
  const uint32_t header_crc = DecodeFixed32(h + kHeaderCrcOffset);
  if (crc32c::Value(h, kHeaderCrcOffset) != header_crc) {
    return Status::Corruption("frame header checksum mismatch");
  }
  const auto type = static_cast<uint8_t>(h[kTypeOffset]);
  if (type != static_cast<uint8_t>(FrameType::kHello) &&
      type != static_cast<uint8_t>(FrameType::kMessages)) {
    return Status::Corruption(fmt::format("unknown frame type {}", type));
  }
  if (DecodeFixed16(h + kReservedOffset) != 0) {
    return Status::Corruption("frame reserved field is not zero");
  }
  Header header{static_cast<FrameType>(type), DecodeFixed64(h + kClusterOffset),
                DecodeFixed32(h + kLengthOffset), DecodeFixed32(h + kPayloadCrcOffset)};
  if (header.cluster_id != cluster_id) {
    return Status::InvalidArgument(
        fmt::format("frame from cluster {} (this node is in cluster {})", header.cluster_id,
                    cluster_id));
  }
  if (header.length > max_frame_bytes) {
    return Status::InvalidArgument(fmt::format("frame of {} bytes exceeds the limit of {}",
                                               header.length, max_frame_bytes));
  }
  return header;
}

// Checks and decodes a payload whose header was valid.
Result<Frame> ParsePayload(const Header& header, std::string_view payload) {
  if (crc32c::Value(payload) != header.payload_crc) {
    return Status::Corruption("frame payload checksum mismatch");
  }
  Frame frame;
  frame.type = header.type;
  frame.cluster_id = header.cluster_id;
  frame.wire_bytes = kFrameHeaderSize + payload.size();
  if (header.type == FrameType::kHello) {
    Result<Hello> hello = DecodeHello(payload);
    if (!hello.ok()) return hello.status();
    frame.hello = *hello;
    return frame;
  }
  if (payload.empty()) return Status::Corruption("frame carries no messages");
  // Each message takes at least 2 bytes (length and version), which bounds
  // the reservation by the input.
  frame.messages.reserve(std::min<size_t>(payload.size() / 2, 1024));
  while (!payload.empty()) {
    std::string_view encoded;
    if (!GetLengthPrefixed(&payload, &encoded)) {
      return Status::Corruption(fmt::format("message {} of the frame is truncated",
                                            frame.messages.size()));
    }
    Result<raft::Message> m = DecodeMessage(encoded);
    if (!m.ok()) {
      if (!m.status().IsCorruption()) return m.status();
      return Status::Corruption(fmt::format("message {} of the frame: {}", frame.messages.size(),
                                            m.status().message()));
    }
    frame.messages.push_back(std::move(m).value());
  }
  return frame;
}

}  // namespace

std::string_view ChannelName(Channel channel) {
  switch (channel) {
    case Channel::kRegular:
      return "regular";
    case Channel::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

std::string EncodeMessage(const raft::Message& m) {
  std::string out;
  out.reserve(EstimateSize(m));
  PutU8(&out, kMessageVersion);
  std::visit(BodyEncoder{&out, &m}, m.body);
  return out;
}

Result<raft::Message> DecodeMessage(std::string_view data) {
  Reader in(data);
  uint8_t version = 0;
  uint8_t tag = 0;
  if (!in.U8(&version)) return Status::Corruption("message: empty");
  if (version != kMessageVersion) {
    return Status::NotSupported(fmt::format("message version {} (this node speaks {})", version,
                                            kMessageVersion));
  }
  if (!in.U8(&tag)) return Status::Corruption("message: no type tag");
  if (tag == 0 || tag > kMaxTag) {
    return Status::Corruption(fmt::format("message: unknown type tag {}", tag));
  }
  raft::Message m;
  if (!in.Id(&m.from) || !in.Id(&m.to) || !in.Id(&m.term)) {
    return Status::Corruption("message envelope: " + in.error());
  }
  if (m.from == kNoNode || m.to == kNoNode) return Status::Corruption("message: node id 0");
  if (!DecodeBody(static_cast<Tag>(tag), &in, &m.body)) {
    return Status::Corruption(fmt::format("message {} (tag {}): {}", MessageTypeName(m), tag,
                                          in.error()));
  }
  if (!in.empty()) {
    return Status::Corruption(fmt::format("message {}: {} trailing bytes", MessageTypeName(m),
                                          in.remaining()));
  }
  return m;
}

std::string EncodeHello(const Hello& hello) {
  std::string out;
  PutU8(&out, kMessageVersion);
  PutVarint64(&out, hello.from.value());
  PutVarint64(&out, hello.to.value());
  PutU8(&out, static_cast<uint8_t>(hello.channel));
  return out;
}

Result<Hello> DecodeHello(std::string_view data) {
  Reader in(data);
  uint8_t version = 0;
  if (!in.U8(&version)) return Status::Corruption("hello: empty");
  if (version != kMessageVersion) {
    return Status::NotSupported(fmt::format("hello version {} (this node speaks {})", version,
                                            kMessageVersion));
  }
  Hello hello;
  uint8_t channel = 0;
  if (!in.Id(&hello.from) || !in.Id(&hello.to) || !in.U8(&channel)) {
    return Status::Corruption("hello: " + in.error());
  }
  if (hello.from == kNoNode || hello.to == kNoNode) return Status::Corruption("hello: node id 0");
  if (channel != static_cast<uint8_t>(Channel::kRegular) &&
      channel != static_cast<uint8_t>(Channel::kSnapshot)) {
    return Status::Corruption(fmt::format("hello: unknown channel {}", channel));
  }
  hello.channel = static_cast<Channel>(channel);
  if (!in.empty()) return Status::Corruption("hello: trailing bytes");
  return hello;
}

FrameBuilder::FrameBuilder(uint64_t cluster_id) : cluster_id_(cluster_id) {}

size_t FrameBuilder::AddedBytes(size_t encoded_size) {
  return static_cast<size_t>(VarintLength(encoded_size)) + encoded_size;
}

void FrameBuilder::Add(std::string_view encoded_message) {
  PutLengthPrefixed(&payload_, encoded_message);
  ++count_;
}

std::string FrameBuilder::Finish() {
  RKV_ASSERT(count_ > 0);
  std::string frame = MakeFrame(cluster_id_, FrameType::kMessages, payload_);
  payload_.clear();
  count_ = 0;
  return frame;
}

std::string EncodeFrame(uint64_t cluster_id, std::span<const raft::Message> messages) {
  FrameBuilder builder(cluster_id);
  for (const raft::Message& m : messages) builder.Add(EncodeMessage(m));
  return builder.Finish();
}

std::string EncodeHelloFrame(uint64_t cluster_id, const Hello& hello) {
  return MakeFrame(cluster_id, FrameType::kHello, EncodeHello(hello));
}

Result<Frame> DecodeFrame(std::string_view data, uint64_t cluster_id, size_t max_frame_bytes) {
  if (data.size() < kFrameHeaderSize) return Status::Corruption("truncated frame header");
  Result<Header> header =
      ParseHeader(data.data(), cluster_id, std::min(max_frame_bytes, kMaxFrameBytesLimit));
  if (!header.ok()) return header.status();
  const std::string_view payload = data.substr(kFrameHeaderSize);
  if (payload.size() < header->length) return Status::Corruption("truncated frame payload");
  if (payload.size() > header->length) {
    return Status::Corruption(fmt::format("{} bytes after the frame",
                                          payload.size() - header->length));
  }
  return ParsePayload(*header, payload);
}

FrameDecoder::FrameDecoder(uint64_t cluster_id, size_t max_frame_bytes)
    : cluster_id_(cluster_id), max_frame_bytes_(std::min(max_frame_bytes, kMaxFrameBytesLimit)) {}

void FrameDecoder::Append(std::string_view bytes) {
  if (!error_.ok()) return;  // the stream is dead; do not hold its bytes
  // Drop consumed bytes before growing, so a long-lived connection does not
  // keep every frame it ever read.
  if (consumed_ > 0 && (consumed_ == buffer_.size() || consumed_ >= buffer_.size() / 2)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<Frame>> FrameDecoder::Next() {
  if (!error_.ok()) return error_;
  const std::string_view pending = std::string_view(buffer_).substr(consumed_);
  if (pending.size() < kFrameHeaderSize) {
    // Refuse garbage as soon as its first bytes show it, not once a whole
    // header's worth has arrived.
    const size_t n = std::min(pending.size(), kFrameMagic.size());
    if (pending.substr(0, n) != kFrameMagic.substr(0, n)) {
      error_ = Status::Corruption("bad frame magic");
      return error_;
    }
    return std::optional<Frame>();
  }
  Result<Header> header = ParseHeader(pending.data(), cluster_id_, max_frame_bytes_);
  if (!header.ok()) {
    error_ = header.status();
    buffer_.clear();
    consumed_ = 0;
    return error_;
  }
  if (pending.size() - kFrameHeaderSize < header->length) return std::optional<Frame>();
  Result<Frame> frame = ParsePayload(*header, pending.substr(kFrameHeaderSize, header->length));
  if (!frame.ok()) {
    error_ = frame.status();
    buffer_.clear();
    consumed_ = 0;
    return error_;
  }
  consumed_ += kFrameHeaderSize + header->length;
  if (consumed_ == buffer_.size()) {
    // Give back the room a large frame (a snapshot chunk) needed, rather
    // than keep it for the life of the connection.
    if (buffer_.capacity() > kKeepBufferBytes) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    consumed_ = 0;
  }
  return std::optional<Frame>(std::move(frame).value());
}

}  // namespace rkv::transport
