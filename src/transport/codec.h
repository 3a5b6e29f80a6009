// The bytes peers exchange, as docs/formats/transport.md defines them: the
// encoding of every Raft message, and the checksummed frames that carry them
// over a stream. Pure functions and a pure incremental decoder; no sockets,
// threads or clocks here, so the decoders can be fed anything (tests, fuzzers)
// and the TCP transport only moves bytes.
//
//   std::string frame = EncodeFrame(cluster_id, messages);
//   ...
//   FrameDecoder decoder(cluster_id);
//   decoder.Append(bytes_as_they_arrive);
//   for (;;) {
//     Result<std::optional<Frame>> next = decoder.Next();
//     if (!next.ok()) { /* close the connection: the stream is unusable */ }
//     if (!next->has_value()) break;  // wait for more bytes
//     Use(**next);
//   }
//
// Decoding input from the network never asserts and never allocates more than
// a small multiple of the bytes it was given: every count is checked against
// the bytes that remain before anything is reserved, and a frame's declared
// length is checked against the limit before its payload is buffered.
#ifndef RKV_TRANSPORT_CODEC_H_
#define RKV_TRANSPORT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "common/types.h"
#include "raft/message.h"

namespace rkv::transport {

// The first byte of every encoded message. A decoder refuses any other
// version (NotSupported); the versioning rule is in the format doc.
inline constexpr uint8_t kMessageVersion = 1;
// The frame header's version byte.
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr std::string_view kFrameMagic = "rkvT";

// magic(4) version(1) type(1) reserved(2) cluster_id(8) length(4)
// payload_crc(4) header_crc(4)
inline constexpr size_t kFrameHeaderSize = 28;
static_assert(kFrameHeaderSize == 4 + 1 + 1 + 2 + 8 + 4 + 4 + 4);

// Default cap on a frame's payload. A header that declares more is refused
// before any of the payload is buffered.
inline constexpr size_t kDefaultMaxFrameBytes = size_t{64} << 20;
// The length field is 32 bits; no limit can go beyond it.
inline constexpr size_t kMaxFrameBytesLimit = 0xFFFFFFFFu;

enum class FrameType : uint8_t {
  kHello = 1,     // the first frame on every connection: who is talking to whom
  kMessages = 2,  // one or more encoded Raft messages (a batch)
};

// Which of the two connections a sender keeps to a peer a frame travels on.
// InstallSnapshot requests go on their own connection so a large chunk never
// holds up heartbeats and appends.
enum class Channel : uint8_t {
  kRegular = 0,
  kSnapshot = 1,
};
std::string_view ChannelName(Channel channel);

// The hello frame's payload: the dialing node names itself and the node it
// believes it dialed, so a misconfigured address is caught on the first frame.
struct Hello {
  NodeId from;
  NodeId to;
  Channel channel = Channel::kRegular;

  friend bool operator==(const Hello&, const Hello&) = default;
};

// A decoded frame. `hello` is set for kHello, `messages` (never empty) for
// kMessages.
struct Frame {
  FrameType type = FrameType::kMessages;
  uint64_t cluster_id = 0;
  Hello hello;
  std::vector<raft::Message> messages;
  // Header plus payload bytes, as received.
  size_t wire_bytes = 0;
};

// ---- Messages. ----

// The encoding of one message (version byte, type tag, envelope, body).
std::string EncodeMessage(const raft::Message& m);
// Corruption for anything that is not exactly one well-formed message: a
// truncated or overlong input, an unknown tag or flag bit, a node id 0, an
// invalid configuration. NotSupported for another version.
Result<raft::Message> DecodeMessage(std::string_view data);

std::string EncodeHello(const Hello& hello);
Result<Hello> DecodeHello(std::string_view data);

// ---- Frames. ----

// Builds one kMessages frame from messages already encoded with
// EncodeMessage, so a sender can encode once (when it queues a message) and
// batch later.
class FrameBuilder {
 public:
  explicit FrameBuilder(uint64_t cluster_id);

  void Add(std::string_view encoded_message);

  size_t message_count() const { return count_; }
  // The frame's size if finished now.
  size_t frame_bytes() const { return kFrameHeaderSize + payload_.size(); }
  // The bytes Add(encoded) would add to the payload.
  static size_t AddedBytes(size_t encoded_size);

  // The whole frame. REQUIRES: message_count() > 0. The builder is empty
  // afterwards and can be reused.
  std::string Finish();

 private:
  uint64_t cluster_id_;
  std::string payload_;
  size_t count_ = 0;
};

// One kMessages frame carrying `messages` in order. REQUIRES: not empty.
std::string EncodeFrame(uint64_t cluster_id, std::span<const raft::Message> messages);
std::string EncodeHelloFrame(uint64_t cluster_id, const Hello& hello);

// Decodes `data` as exactly one frame (for tests and tools; connections use
// FrameDecoder). Errors as FrameDecoder's, plus Corruption for a truncated
// frame or trailing bytes.
Result<Frame> DecodeFrame(std::string_view data, uint64_t cluster_id,
                          size_t max_frame_bytes = kDefaultMaxFrameBytes);

// Cuts a byte stream into frames. Bytes go in as they arrive (any split);
// Next() yields each complete frame once, or an error. Errors are sticky: a
// stream with one bad frame cannot be resynchronised, so the connection must
// be closed.
//
//   Corruption       bad magic, header or payload checksum mismatch, a
//                    reserved field not zero, an unknown frame type, a
//                    payload that does not decode
//   NotSupported     another frame or message version
//   InvalidArgument  another cluster id; a declared length above the limit
//
// Memory: the decoder holds at most the bytes appended and not yet consumed.
// A caller that appends one bounded read at a time and drains Next() after
// each keeps that below kFrameHeaderSize + max_frame_bytes + one read.
class FrameDecoder {
 public:
  // `max_frame_bytes` is capped at kMaxFrameBytesLimit.
  explicit FrameDecoder(uint64_t cluster_id, size_t max_frame_bytes = kDefaultMaxFrameBytes);

  void Append(std::string_view bytes);

  // The next complete frame, nullopt if more bytes are needed, or the error
  // that broke the stream.
  Result<std::optional<Frame>> Next();

  // Bytes appended and not yet consumed by a frame.
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  uint64_t cluster_id_;
  size_t max_frame_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;
  Status error_;
};

}  // namespace rkv::transport

#endif  // RKV_TRANSPORT_CODEC_H_
