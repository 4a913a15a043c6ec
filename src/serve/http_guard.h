// What one connection may cost ./serve before a handler sees it. Debian's cpp-httplib 0.11.4 is a
// compiled library: its header macros (CPPHTTPLIB_HEADER_MAX_LENGTH, ...) are fixed inside the
// .so, and that build reads any number of header lines (each line of any length before its check),
// reads a chunked body or one without a length whole, waits on a client that sends one byte every
// few seconds with no overall deadline, and keeps reading a slow client after stop(). GuardedServer
// serves each connection through its own httplib::Stream (ConnectionStream) that enforces:
//   - a cap on the request line + header bytes and on the header lines (431, then close);
//   - a deadline for a whole request, headers and body (408, then close);
//   - a cap on the body bytes on the wire (chunk framing included; the handler answers 413);
//   - an end to every read within 100 ms of stop().
// The bytes a handler keeps after decompression are capped by the handler's own receiver.
#pragma once
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace kiln::serve {

struct ConnectionLimits {
  size_t header_bytes = 64u << 10;  // request line + headers + the blank line
  size_t header_lines = 128;        // request line + header lines
  size_t body_wire_bytes = (8u << 20) + (64u << 10);  // a 4 MiB body in chunks of >= 8 bytes
  std::chrono::milliseconds request_time{10000};      // headers + body of one request
  std::chrono::milliseconds keep_alive{2000};         // idle wait for the next request
  std::chrono::milliseconds write_time{5000};         // a client that reads nothing for this long
  size_t requests_per_connection = 100;
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(ConnectionLimits limits) : limits_(limits) {
    // What httplib writes in its Keep-Alive response header; the loop that keeps them is ours.
    set_keep_alive_timeout(std::max<time_t>(1, limits.keep_alive.count() / 1000));
    set_keep_alive_max_count(limits.requests_per_connection);
  }
  const ConnectionLimits& limits() const { return limits_; }
  // After bind: httplib's compiled-in listen backlog is 5, so a burst of connections (slow clients
  // included) overflows it and a new client's SYN waits a 1 s retransmit. Linux lets listen() be
  // called again on a listening socket to raise it.
  void raise_backlog(int backlog) { ::listen(svr_sock_, backlog); }
  // True once stop() was called (httplib invalidates the listening socket).
  bool stopping() const { return svr_sock_ == INVALID_SOCKET; }

  // For a handler, on the worker thread that serves its request (no-ops elsewhere):
  // why its body could not be read: 413 (more bytes than body_wire_bytes), 408 (the request's
  // deadline passed), 503 (the server is stopping), 0 (something else: malformed framing).
  static int body_failure();
  // The connection closes after this response (a refused body was not read to its end).
  static void close_after_response();
  // The client hung up (its end of the socket is closed or reset): a non-streaming request's
  // handler polls this while it waits, so that its rows are freed (nothing is written until then).
  static bool client_gone();

 private:
  bool process_and_close_socket(socket_t sock) override;  // httplib's per-connection entry
  ConnectionLimits limits_;
};

}  // namespace kiln::serve
