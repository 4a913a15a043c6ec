// GuardedServer; see http_guard.h. ConnectionStream is the one httplib::Stream of a connection
// (httplib's own makes a new one, and drops its read-ahead, per request). httplib reads the
// request line and headers one byte at a time through read(), so the stream sees exactly where
// the headers end (the first empty line) and counts header bytes and lines up to there; what
// follows is body, counted against the wire cap. A refusal in the header phase is written here
// (an OpenAI-shaped JSON error) and the stream goes dead: reads fail, httplib's own error reply
// is swallowed, and the connection closes.
#include "serve/http_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "serve/openai_json.h"
#include "serve/request.h"

namespace kiln::serve {

namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t sock, const ConnectionLimits& limits, const std::atomic<socket_t>& listener)
      : sock_(sock), L_(limits), listener_(listener), buf_(16384) {}

  // Waits up to the keep-alive time for the first byte of the next request; false: close.
  bool next_request() {
    if (dead_ || close_after_) return false;
    if (pos_ == len_ && !fill(Clock::now() + L_.keep_alive, /*idle=*/true)) return false;
    if (pos_ == len_) return false;  // the client closed
    headers_ = true, header_bytes_ = header_lines_ = line_len_ = body_bytes_ = 0, failure_ = 0;
    deadline_ = Clock::now() + L_.request_time;
    return true;
  }
  bool dead() const { return dead_ || close_after_; }

  // After a refusal the client may still be sending what was refused. Closing with unread bytes
  // makes the kernel reset the connection, and a client that is still writing may never read the
  // answer: so shut down our side and read on (discarding) for at most 1 s or 16 MiB first.
  void linger() {
    ::shutdown(sock_, SHUT_WR);
    const auto until = Clock::now() + milliseconds(1000);
    for (size_t drained = 0; drained < (16u << 20) && !stopping();) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
      pollfd p{sock_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100))) < 0) break;
      if (!(p.revents & POLLIN)) continue;
      const ssize_t n = ::recv(sock_, buf_.data(), buf_.size(), 0);
      if (n <= 0) break;
      drained += static_cast<size_t>(n);
    }
  }
  int failure() const { return failure_; }
  void close_after() { close_after_ = true; }

  bool is_readable() const override { return !dead_ && (pos_ < len_ || wait(POLLIN, milliseconds(0))); }
  bool is_writable() const override { return !dead_ && wait(POLLOUT, milliseconds(0)); }

  ssize_t read(char* ptr, size_t size) override {
    if (dead_) return -1;
    if (pos_ == len_) {
      if (!fill(deadline_, /*idle=*/false)) return -1;
      if (pos_ == len_) return 0;  // end of stream
    }
    size_t n = std::min(size, len_ - pos_);
    if (headers_) {  // byte by byte up to the empty line that ends the headers
      size_t i = 0;
      while (i < n && headers_) {
        const char c = buf_[pos_ + i++];
        ++header_bytes_;
        if (c == '\n') {
          ++header_lines_;
          if (line_len_ == 0) headers_ = false;
          line_len_ = 0;
        } else if (c != '\r') {
          ++line_len_;
        }
      }
      n = i;
      if (header_bytes_ > L_.header_bytes || header_lines_ > L_.header_lines + 1) {
        refuse(431, "Request Header Fields Too Large",
               "the request line and headers exceed " + std::to_string(L_.header_bytes) + " bytes or " +
                   std::to_string(L_.header_lines) + " lines");
        return -1;
      }
    } else {
      body_bytes_ += n;
      if (body_bytes_ > L_.body_wire_bytes) {
        failure_ = 413;
        return -1;
      }
    }
    std::memcpy(ptr, buf_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (dead_) return static_cast<ssize_t>(size);  // httplib's reply after our refusal: dropped
    if (!wait(POLLOUT, L_.write_time)) return -1;
    return ::send(sock_, ptr, size, MSG_NOSIGNAL);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  bool stopping() const { return listener_ == INVALID_SOCKET; }

  bool wait(short events, milliseconds timeout) const {
    pollfd p{sock_, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    return r > 0 && (p.revents & (events | POLLHUP)) && !(p.revents & (POLLERR | POLLNVAL));
  }

  // Reads what has arrived, waiting in 100 ms slices (so that stop() is seen) until `until`.
  // false: the deadline passed, the server stops, or the socket failed.
  bool fill(Clock::time_point until, bool idle) {
    pos_ = len_ = 0;
    while (true) {
      if (stopping()) {
        failure_ = 503;
        return false;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (left.count() <= 0) {
        if (idle) return false;
        failure_ = 408;
        if (headers_) refuse(408, "Request Timeout",
                             "the request was not received within " + std::to_string(L_.request_time.count() / 1000.0) +
                                 " s");
        return false;
      }
      pollfd p{sock_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
      if (r < 0 && errno != EINTR) return false;
      if (r <= 0) continue;
      const ssize_t n = ::recv(sock_, buf_.data(), buf_.size(), 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return false;
      }
      len_ = static_cast<size_t>(n);
      return true;
    }
  }

  // Answers now (the connection then closes): httplib would read on, or answer 400 without a body.
  void refuse(int status, const char* reason, const std::string& message) {
    const std::string body = dump(error_json(ApiError(status, message, status == 431 ? "headers_too_large" : "timeout")));
    const std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                             "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n";
    write(head.data(), head.size());
    write(body.data(), body.size());
    dead_ = true;
  }

  void address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ip.clear(), port = 0;
    if ((peer ? ::getpeername : ::getsockname)(sock_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    char s[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
      ::inet_ntop(AF_INET, &v4->sin_addr, s, sizeof s);
      port = ntohs(v4->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, s, sizeof s);
      port = ntohs(v6->sin6_port);
    }
    ip = s;
  }

  socket_t sock_;
  const ConnectionLimits& L_;
  const std::atomic<socket_t>& listener_;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
  bool headers_ = true, dead_ = false, close_after_ = false;
  size_t header_bytes_ = 0, header_lines_ = 0, line_len_ = 0, body_bytes_ = 0;
  int failure_ = 0;
  Clock::time_point deadline_ = Clock::now();
};

// The stream of the request this worker thread serves (handlers run on that thread).
thread_local ConnectionStream* current = nullptr;
}  // namespace

int GuardedServer::body_failure() { return current ? current->failure() : 0; }
void GuardedServer::close_after_response() {
  if (current) current->close_after();
}

bool GuardedServer::client_gone() {
  if (!current) return false;
  pollfd p{current->socket(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  // Readable: a pipelined next request (bytes) or the end of the stream (0 bytes).
  char c;
  return ::recv(p.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  ConnectionStream strm(sock, limits_, svr_sock_);
  current = &strm;
  bool ret = false;
  for (size_t left = limits_.requests_per_connection; left > 0 && strm.next_request(); --left) {
    bool closed = false;
    ret = process_request(strm, /*close_connection=*/left == 1, closed, nullptr);
    if (!ret || closed) break;
  }
  current = nullptr;
  if (strm.dead()) strm.linger();
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace kiln::serve
