// The codec: every message type round-trips with random field values; frames
// carry batches; truncated, bit-flipped, foreign, oversized and malformed
// input is refused without crashing or over-allocating; the incremental
// decoder gives the same frames whatever way the bytes are split.
#include "transport/codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/random.h"
#include "support/test_util.h"
#include "transport_test_util.h"

namespace rkv::transport {
namespace {

using test::Heartbeat;
using test::kMessageTypes;
using test::RandomBytes;
using test::RandomMessage;
using test::SameMessage;

constexpr uint64_t kCluster = 0x5eed'c1a5'7e00'0001;

// A frame assembled by hand from the layout in docs/formats/transport.md, so
// tests can give it any header field and any payload with valid checksums.
std::string RawFrame(uint64_t cluster_id, uint8_t type, std::string_view payload,
                     uint8_t version = 1, uint16_t reserved = 0) {
  std::string frame("rkvT");
  frame.push_back(static_cast<char>(version));
  frame.push_back(static_cast<char>(type));
  PutFixed16(&frame, reserved);
  PutFixed64(&frame, cluster_id);
  PutFixed32(&frame, static_cast<uint32_t>(payload.size()));
  PutFixed32(&frame, crc32c::Value(payload));
  PutFixed32(&frame, crc32c::Value(frame.data(), frame.size()));
  frame.append(payload);
  return frame;
}

// A messages payload: each message length-prefixed.
std::string Payload(const std::vector<std::string>& encoded_messages) {
  std::string payload;
  for (const std::string& m : encoded_messages) PutLengthPrefixed(&payload, m);
  return payload;
}

std::vector<raft::Message> RandomBatch(Random& rng, size_t n) {
  std::vector<raft::Message> batch;
  for (size_t i = 0; i < n; ++i) batch.push_back(RandomMessage(rng, rng.Uniform(kMessageTypes)));
  return batch;
}

void ExpectSameMessages(const std::vector<raft::Message>& want,
                        const std::vector<raft::Message>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(SameMessage(want[i], got[i])) << "at " << i;
}

// ---- Messages. ----

TEST(CodecTest, EveryMessageTypeRoundTripsWithRandomFields) {
  const uint64_t seed = rkv::test::TestSeed(20240611);
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (size_t type = 0; type < kMessageTypes; ++type) {
    for (int i = 0; i < 300; ++i) {
      const raft::Message m = RandomMessage(rng, type);
      ASSERT_EQ(m.body.index(), type);
      const std::string encoded = EncodeMessage(m);
      Result<raft::Message> decoded = DecodeMessage(encoded);
      ASSERT_OK(decoded);
      ASSERT_TRUE(SameMessage(m, *decoded));
      // Encoding is deterministic: the same message gives the same bytes.
      ASSERT_EQ(EncodeMessage(*decoded), encoded);
    }
  }
}

TEST(CodecTest, EncodingOfAHeartbeatIsPinned) {
  // The wire format is a contract between versions of the program: this
  // catches an accidental change (field order, varint vs fixed, tag).
  const std::string encoded = EncodeMessage(Heartbeat(NodeId{1}, NodeId{2}, 300));
  // version 1, tag 5, from 1, to 2, term 7, commit 3, round 300 (varint ac 02)
  EXPECT_EQ(encoded, std::string("\x01\x05\x01\x02\x07\x03\xac\x02", 8));
}

TEST(CodecTest, HelloRoundTrips) {
  for (Channel channel : {Channel::kRegular, Channel::kSnapshot}) {
    const Hello hello{NodeId{3}, NodeId{~uint64_t{0}}, channel};
    Result<Hello> decoded = DecodeHello(EncodeHello(hello));
    ASSERT_OK(decoded);
    EXPECT_EQ(*decoded, hello);
  }
  EXPECT_FALSE(DecodeHello(EncodeHello(Hello{kNoNode, NodeId{2}, Channel::kRegular})).ok());
  std::string bad_channel = EncodeHello(Hello{NodeId{1}, NodeId{2}, Channel::kRegular});
  bad_channel.back() = 7;
  EXPECT_TRUE(DecodeHello(bad_channel).status().IsCorruption());
}

TEST(CodecTest, EveryStrictPrefixOfAMessageIsRefused) {
  Random rng(rkv::test::TestSeed(7));
  for (size_t type = 0; type < kMessageTypes; ++type) {
    for (int i = 0; i < 20; ++i) {
      const std::string encoded = EncodeMessage(RandomMessage(rng, type));
      for (size_t len = 0; len < encoded.size(); ++len) {
        Result<raft::Message> decoded = DecodeMessage(std::string_view(encoded).substr(0, len));
        ASSERT_FALSE(decoded.ok()) << "type " << type << " prefix " << len;
        ASSERT_TRUE(decoded.status().IsCorruption()) << decoded.status().ToString();
      }
      // One byte too many is refused as well.
      EXPECT_TRUE(DecodeMessage(encoded + '\0').status().IsCorruption());
    }
  }
}

TEST(CodecTest, MalformedMessagesAreRefused) {
  const std::string heartbeat = EncodeMessage(Heartbeat(NodeId{1}, NodeId{2}, 9));
  auto with_byte = [&](size_t at, char value) {
    std::string s = heartbeat;
    s[at] = value;
    return s;
  };
  EXPECT_TRUE(DecodeMessage("").status().IsCorruption());
  // Another version: NotSupported, so a log line can say "upgrade".
  EXPECT_EQ(DecodeMessage(with_byte(0, 2)).status().code(), StatusCode::kNotSupported);
  EXPECT_TRUE(DecodeMessage(with_byte(1, 0)).status().IsCorruption());   // tag 0
  EXPECT_TRUE(DecodeMessage(with_byte(1, 12)).status().IsCorruption());  // past the last tag
  EXPECT_TRUE(DecodeMessage(with_byte(2, 0)).status().IsCorruption());   // from node 0
  EXPECT_TRUE(DecodeMessage(with_byte(3, 0)).status().IsCorruption());   // to node 0

  // Unknown flag bits.
  raft::Message vote;
  vote.from = NodeId{1};
  vote.to = NodeId{2};
  vote.body = raft::RequestVoteResponse{true, true};
  std::string encoded = EncodeMessage(vote);
  encoded.back() = static_cast<char>(0x04);
  EXPECT_TRUE(DecodeMessage(encoded).status().IsCorruption());

  // An unknown entry type.
  raft::Message append;
  append.from = NodeId{1};
  append.to = NodeId{2};
  raft::AppendEntriesRequest r;
  r.entries.push_back(raft::Entry{Term{1}, LogIndex{1}, raft::EntryType::kNormal, "x"});
  append.body = r;
  encoded = EncodeMessage(append);
  // ... version tag from to term prev_index prev_term commit count term index TYPE len 'x'
  ASSERT_EQ(encoded[11], 0);
  encoded[11] = 2;
  EXPECT_TRUE(DecodeMessage(encoded).status().IsCorruption());

  // An invalid configuration (voters out of order) in snapshot metadata.
  raft::Message snapshot = test::SnapshotChunk(NodeId{1}, NodeId{2}, 0, "data");
  std::get<raft::InstallSnapshotRequest>(snapshot.body).metadata.configuration.voters = {
      NodeId{3}, NodeId{2}};
  Result<raft::Message> decoded = DecodeMessage(EncodeMessage(snapshot));
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("configuration"), std::string::npos);
}

TEST(CodecTest, HugeCountsAreRefusedBeforeAllocating) {
  // An AppendEntries that claims 2^62 entries in a few bytes: refused by the
  // count check, not by running out of memory.
  std::string m;
  m.push_back(1);  // version
  m.push_back(3);  // AppendEntriesRequest
  PutVarint64(&m, 1);
  PutVarint64(&m, 2);
  PutVarint64(&m, 1);
  PutVarint64(&m, 0);
  PutVarint64(&m, 0);
  PutVarint64(&m, 0);
  PutVarint64(&m, uint64_t{1} << 62);
  Result<raft::Message> decoded = DecodeMessage(m);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("exceeds the input"), std::string::npos);

  // A data length far beyond the input.
  std::string s = EncodeMessage(test::SnapshotChunk(NodeId{1}, NodeId{2}, 0, ""));
  s.pop_back();  // the empty data's length (0)
  PutVarint64(&s, uint64_t{1} << 40);
  EXPECT_TRUE(DecodeMessage(s).status().IsCorruption());
}

TEST(CodecTest, RandomMutationsOfMessagesNeverCrash) {
  // Mutated input may still decode (a changed varint is another valid
  // value); what matters is that decoding returns, and that whatever it
  // returns encodes again.
  Random rng(rkv::test::TestSeed(99));
  for (int i = 0; i < 20000; ++i) {
    std::string encoded = EncodeMessage(RandomMessage(rng, rng.Uniform(kMessageTypes)));
    const int edits = 1 + static_cast<int>(rng.Uniform(4));
    for (int e = 0; e < edits && !encoded.empty(); ++e) {
      const size_t at = rng.Uniform(encoded.size());
      switch (rng.Uniform(3)) {
        case 0:
          encoded[at] = static_cast<char>(rng.Uniform(256));
          break;
        case 1:
          encoded.erase(at, 1);
          break;
        default:
          encoded.insert(at, 1, static_cast<char>(rng.Uniform(256)));
      }
    }
    Result<raft::Message> decoded = DecodeMessage(encoded);
    if (decoded.ok()) {
      ASSERT_OK(DecodeMessage(EncodeMessage(*decoded)));
    }
  }
  for (int i = 0; i < 20000; ++i) {
    (void)DecodeMessage(RandomBytes(rng, rng.Uniform(64)));
  }
}

// ---- Frames. ----

TEST(CodecTest, BatchFramesRoundTrip) {
  Random rng(rkv::test::TestSeed(42));
  for (int i = 0; i < 200; ++i) {
    const std::vector<raft::Message> batch = RandomBatch(rng, 1 + rng.Uniform(40));
    const std::string frame = EncodeFrame(kCluster, batch);
    Result<Frame> decoded = DecodeFrame(frame, kCluster);
    ASSERT_OK(decoded);
    EXPECT_EQ(decoded->type, FrameType::kMessages);
    EXPECT_EQ(decoded->cluster_id, kCluster);
    EXPECT_EQ(decoded->wire_bytes, frame.size());
    ExpectSameMessages(batch, decoded->messages);
  }
}

TEST(CodecTest, FrameBuilderMatchesEncodeFrameAndIsReusable) {
  Random rng(5);
  FrameBuilder builder(kCluster);
  for (int round = 0; round < 3; ++round) {
    const std::vector<raft::Message> batch = RandomBatch(rng, 5);
    size_t expected = kFrameHeaderSize;
    for (const raft::Message& m : batch) {
      const std::string encoded = EncodeMessage(m);
      expected += FrameBuilder::AddedBytes(encoded.size());
      builder.Add(encoded);
    }
    EXPECT_EQ(builder.message_count(), 5u);
    EXPECT_EQ(builder.frame_bytes(), expected);
    const std::string frame = builder.Finish();
    EXPECT_EQ(frame.size(), expected);
    EXPECT_EQ(frame, EncodeFrame(kCluster, batch));
    EXPECT_EQ(builder.message_count(), 0u);
  }
}

TEST(CodecTest, HelloFrameRoundTrips) {
  const Hello hello{NodeId{1}, NodeId{2}, Channel::kSnapshot};
  Result<Frame> decoded = DecodeFrame(EncodeHelloFrame(kCluster, hello), kCluster);
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->type, FrameType::kHello);
  EXPECT_EQ(decoded->hello, hello);
  EXPECT_TRUE(decoded->messages.empty());
}

TEST(CodecTest, FrameHeaderLayoutMatchesTheFormatDoc) {
  const std::vector<raft::Message> batch = {Heartbeat(NodeId{1}, NodeId{2}, 1),
                                            Heartbeat(NodeId{1}, NodeId{2}, 2)};
  const std::string payload =
      Payload({EncodeMessage(batch[0]), EncodeMessage(batch[1])});
  EXPECT_EQ(EncodeFrame(kCluster, batch), RawFrame(kCluster, 2, payload));
}

TEST(CodecTest, EveryTruncationOfAFrameIsRefusedOrIncomplete) {
  Random rng(11);
  const std::string frame = EncodeFrame(kCluster, RandomBatch(rng, 6));
  for (size_t len = 0; len < frame.size(); ++len) {
    const std::string_view prefix = std::string_view(frame).substr(0, len);
    // As a whole frame: an error, never a shorter batch.
    ASSERT_TRUE(DecodeFrame(prefix, kCluster).status().IsCorruption()) << "length " << len;
    // As the start of a stream: not complete yet, and not an error either.
    FrameDecoder decoder(kCluster);
    decoder.Append(prefix);
    Result<std::optional<Frame>> next = decoder.Next();
    ASSERT_OK(next);
    ASSERT_FALSE(next->has_value()) << "length " << len;
    // The rest completes it.
    decoder.Append(std::string_view(frame).substr(len));
    next = decoder.Next();
    ASSERT_OK(next);
    ASSERT_TRUE(next->has_value());
  }
}

TEST(CodecTest, EveryBitFlipInAFrameIsDetected) {
  // Every byte of a frame is covered by a checksum or checked by value, so
  // a single flipped bit anywhere can never produce a frame.
  Random rng(12);
  const std::vector<raft::Message> batch = RandomBatch(rng, 4);
  for (const std::string& frame :
       {EncodeFrame(kCluster, batch),
        EncodeHelloFrame(kCluster, Hello{NodeId{1}, NodeId{2}, Channel::kRegular})}) {
    for (size_t byte = 0; byte < frame.size(); ++byte) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string flipped = frame;
        flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << bit));
        ASSERT_FALSE(DecodeFrame(flipped, kCluster).ok()) << "byte " << byte << " bit " << bit;
        FrameDecoder decoder(kCluster);
        decoder.Append(flipped);
        Result<std::optional<Frame>> next = decoder.Next();
        ASSERT_TRUE(!next.ok() || !next->has_value()) << "byte " << byte << " bit " << bit;
      }
    }
  }
}

TEST(CodecTest, HeaderErrorsSayWhatIsWrong) {
  const std::string payload = Payload({EncodeMessage(Heartbeat(NodeId{1}, NodeId{2}, 1))});
  struct Case {
    std::string frame;
    StatusCode code;
    std::string says;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(20, ' '), StatusCode::kCorruption,
       "magic"},
      {RawFrame(kCluster, 2, payload, /*version=*/2), StatusCode::kNotSupported, "version 2"},
      {RawFrame(kCluster + 1, 2, payload), StatusCode::kInvalidArgument, "cluster"},
      {RawFrame(kCluster, 9, payload), StatusCode::kCorruption, "frame type"},
      {RawFrame(kCluster, 2, payload, 1, /*reserved=*/1), StatusCode::kCorruption, "reserved"},
      {RawFrame(kCluster, 2, ""), StatusCode::kCorruption, "no messages"},
      {RawFrame(kCluster, 2, "\x05" "abc"), StatusCode::kCorruption, "truncated"},
      {RawFrame(kCluster, 2, Payload({"\x01\x63"})), StatusCode::kCorruption, "tag 99"},
      {RawFrame(kCluster, 1, "\x01\x01"), StatusCode::kCorruption, "hello"},
  };
  for (const Case& c : cases) {
    Result<Frame> decoded = DecodeFrame(c.frame, kCluster);
    ASSERT_FALSE(decoded.ok()) << c.says;
    EXPECT_EQ(decoded.status().code(), c.code) << decoded.status().ToString();
    EXPECT_NE(decoded.status().message().find(c.says), std::string::npos)
        << decoded.status().ToString();
    FrameDecoder decoder(kCluster);
    decoder.Append(c.frame);
    EXPECT_EQ(decoder.Next().status(), decoded.status());
  }
}

TEST(CodecTest, WrongClusterIsRefusedAndTheStreamStaysBroken) {
  const std::string foreign =
      EncodeHelloFrame(kCluster + 1, Hello{NodeId{1}, NodeId{2}, Channel::kRegular});
  FrameDecoder decoder(kCluster);
  decoder.Append(foreign);
  Result<std::optional<Frame>> next = decoder.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_TRUE(next.status().IsInvalidArgument());
  // Sticky: a good frame after it is not looked at, nor buffered.
  decoder.Append(EncodeHelloFrame(kCluster, Hello{NodeId{1}, NodeId{2}, Channel::kRegular}));
  EXPECT_EQ(decoder.Next().status(), next.status());
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(CodecTest, OversizedFramesAreRefusedFromTheHeaderAlone) {
  // A header declaring 4 GiB - 1 bytes: refused once the 28 header bytes
  // are in, long before any payload would be buffered.
  std::string header("rkvT\x01\x02\x00\x00", 8);
  PutFixed64(&header, kCluster);
  PutFixed32(&header, 0xFFFFFFFFu);
  PutFixed32(&header, 0);
  PutFixed32(&header, crc32c::Value(header.data(), header.size()));
  FrameDecoder decoder(kCluster);
  decoder.Append(header);
  Result<std::optional<Frame>> next = decoder.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_TRUE(next.status().IsInvalidArgument());
  EXPECT_NE(next.status().message().find("exceeds the limit"), std::string::npos);

  // A configured limit applies the same way.
  const std::string big =
      EncodeFrame(kCluster, std::vector{test::SnapshotChunk(NodeId{1}, NodeId{2}, 0,
                                                            std::string(5000, 'x'))});
  EXPECT_OK(DecodeFrame(big, kCluster, 8192));
  EXPECT_TRUE(DecodeFrame(big, kCluster, 4096).status().IsInvalidArgument());
  FrameDecoder small(kCluster, 4096);
  small.Append(std::string_view(big).substr(0, kFrameHeaderSize));
  EXPECT_TRUE(small.Next().status().IsInvalidArgument());
}

TEST(CodecTest, FrameDecoderFedOneByteAtATime) {
  Random rng(rkv::test::TestSeed(3));
  std::string stream = EncodeHelloFrame(kCluster, Hello{NodeId{4}, NodeId{5}, Channel::kRegular});
  std::vector<std::vector<raft::Message>> batches;
  for (int i = 0; i < 10; ++i) {
    batches.push_back(RandomBatch(rng, 1 + rng.Uniform(8)));
    stream += EncodeFrame(kCluster, batches.back());
  }
  FrameDecoder decoder(kCluster);
  std::vector<Frame> frames;
  for (char c : stream) {
    decoder.Append(std::string_view(&c, 1));
    Result<std::optional<Frame>> next = decoder.Next();
    ASSERT_OK(next);
    if (next->has_value()) frames.push_back(std::move(**next));
    // At most one frame completes per byte.
    next = decoder.Next();
    ASSERT_OK(next);
    ASSERT_FALSE(next->has_value());
  }
  EXPECT_EQ(decoder.buffered(), 0u);
  ASSERT_EQ(frames.size(), batches.size() + 1);
  EXPECT_EQ(frames[0].type, FrameType::kHello);
  EXPECT_EQ(frames[0].hello.from, NodeId{4});
  for (size_t i = 0; i < batches.size(); ++i) ExpectSameMessages(batches[i], frames[i + 1].messages);
}

TEST(CodecTest, FrameDecoderHandlesRandomSplitsAndManyFramesPerAppend) {
  Random rng(rkv::test::TestSeed(8));
  std::string stream;
  std::vector<std::vector<raft::Message>> batches;
  for (int i = 0; i < 50; ++i) {
    batches.push_back(RandomBatch(rng, 1 + rng.Uniform(5)));
    stream += EncodeFrame(kCluster, batches.back());
  }
  FrameDecoder decoder(kCluster);
  std::vector<Frame> frames;
  size_t at = 0;
  while (at < stream.size()) {
    const size_t n = std::min<size_t>(stream.size() - at, 1 + rng.Uniform(3 * stream.size() / 50));
    decoder.Append(std::string_view(stream).substr(at, n));
    at += n;
    for (;;) {
      Result<std::optional<Frame>> next = decoder.Next();
      ASSERT_OK(next);
      if (!next->has_value()) break;
      frames.push_back(std::move(**next));
    }
  }
  ASSERT_EQ(frames.size(), batches.size());
  for (size_t i = 0; i < batches.size(); ++i) ExpectSameMessages(batches[i], frames[i].messages);
}

TEST(CodecTest, GarbageIsRefusedAtItsFirstByte) {
  FrameDecoder decoder(kCluster);
  decoder.Append("G");
  EXPECT_TRUE(decoder.Next().status().IsCorruption());
}

TEST(CodecTest, RandomGarbageNeverCrashesOrYieldsAFrame) {
  Random rng(rkv::test::TestSeed(1234));
  for (int i = 0; i < 5000; ++i) {
    // Either pure garbage, or garbage behind a valid-looking start.
    std::string input = RandomBytes(rng, rng.Uniform(200));
    if (rng.OneIn(2)) input = std::string("rkvT\x01", 5) + input;
    FrameDecoder decoder(kCluster);
    decoder.Append(input);
    Result<std::optional<Frame>> next = decoder.Next();
    ASSERT_TRUE(!next.ok() || !next->has_value());
    ASSERT_FALSE(DecodeFrame(input, kCluster).ok());
  }
  // Random payloads inside valid framing: the checksums pass, so this is the
  // message decoder's turn to refuse (or, rarely, accept) them.
  for (int i = 0; i < 5000; ++i) {
    std::string payload = RandomBytes(rng, rng.Uniform(100));
    if (rng.OneIn(2) && !payload.empty()) {
      payload[0] = static_cast<char>(payload.size() - 1);  // a plausible length prefix
      if (payload.size() > 1) payload[1] = 1;             // and message version
    }
    Result<Frame> decoded = DecodeFrame(RawFrame(kCluster, 2, payload), kCluster);
    if (decoded.ok()) {
      EXPECT_FALSE(decoded->messages.empty());
    }
  }
}

}  // namespace
}  // namespace rkv::transport
