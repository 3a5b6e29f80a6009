// ResponseParser: reads the HTTP/1.x responses of a keep-alive connection as
// cheaply as it can. It keeps what a load generator needs (the status, the
// framing, whether the connection stays open) and skips the body without
// storing it, except for the start of an error reply's body (for
// messages). Bytes may arrive in pieces of any size.
//
//   ResponseParser parser;
//   size_t used = parser.Feed(bytes);          // call again with more bytes
//   if (parser.state() == ResponseParser::State::kComplete) {
//     int status = parser.status();            // bytes past `used` belong to no request
//     parser.Reset();                          // ready for the next response
//   }
//
// Framing follows RFC 9112: no body for 1xx, 204 and 304; chunked when
// Transfer-Encoding ends in chunked; else Content-Length; else the body
// runs until the server closes the connection (FeedEof ends it). Interim
// 1xx responses (100 Continue) are skipped. Anything else malformed, or a
// header section larger than kMaxHeaderBytes, is an error: state() is
// kError and error() says why.
#ifndef RKV_APPS_RAFT_KV_BENCH_HTTP_RESPONSE_H_
#define RKV_APPS_RAFT_KV_BENCH_HTTP_RESPONSE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rkv::bench {

class ResponseParser {
 public:
  enum class State { kIncomplete, kComplete, kError };

  static constexpr size_t kMaxHeaderBytes = 64 * 1024;
  // How much of a non-2xx reply's body is kept for body_prefix().
  static constexpr size_t kMaxCapturedBody = 256;

  // Consumes the bytes of one response and returns how many of `data` it
  // used: all of them while the response is incomplete, up to its last
  // byte once it is complete. After kComplete or kError it uses nothing
  // until Reset().
  size_t Feed(std::string_view data);
  // The server closed the connection: a body that runs until the close is
  // complete; any other unfinished response is an error.
  void FeedEof();
  // Forgets the response, ready for the next one on the same connection.
  void Reset();

  State state() const { return state_; }
  // Whether any byte of this response has arrived.
  bool started() const { return started_; }
  // The status code, once the status line has been read (else 0).
  int status() const { return status_; }
  // Whether the connection may carry another request after this response.
  bool keep_alive() const { return keep_alive_; }
  // Why the response is malformed (kError only).
  const std::string& error() const { return error_; }
  // The first bytes of the body of a reply whose status is not 2xx.
  const std::string& body_prefix() const { return body_prefix_; }

 private:
  enum class Phase {
    kStatusLine,
    kHeaders,
    kBody,          // body_left_ bytes of Content-Length
    kChunkSize,
    kChunkData,     // body_left_ bytes of the current chunk
    kChunkDataEnd,  // the CRLF after a chunk
    kTrailers,
    kUntilEof,
    kDone,
  };

  // One complete line (without its CRLF or LF) of the current phase.
  void OnLine(std::string_view line);
  void OnStatusLine(std::string_view line);
  void OnHeader(std::string_view line);
  void OnHeadersEnd();
  void OnChunkSize(std::string_view line);
  void SkipBody(std::string_view data);
  void Complete();
  void Fail(std::string_view why);

  State state_ = State::kIncomplete;
  Phase phase_ = Phase::kStatusLine;
  bool started_ = false;
  int status_ = 0;
  int minor_version_ = 1;
  bool keep_alive_ = true;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool chunked_ = false;
  bool has_transfer_encoding_ = false;
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;
  uint64_t body_left_ = 0;
  // Bytes of the current header (or trailer) section so far.
  size_t header_bytes_ = 0;
  // The line being read, when it spans more than one Feed.
  std::string line_;
  std::string error_;
  std::string body_prefix_;
};

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_HTTP_RESPONSE_H_
