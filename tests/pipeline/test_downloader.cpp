// Downloader and SSRF guard. The origin is a cpp-httplib server on a loopback
// port started by each test; nothing leaves the machine: forbidden addresses
// (169.254.169.254, 10.0.0.1) are refused at connect time, before a packet.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/address_policy.hpp"
#include "pipeline/downloader.hpp"
#include "tests/support/images.hpp"
#include "tests/support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using pixpool::Download;
using pixpool::Downloader;
using pixpool::DownloadOptions;
using pixpool::ErrorCode;
using pixpool::Result;
using Clock = std::chrono::steady_clock;
using pixpool::test::wait_until;

constexpr std::size_t kMaxBytes = 100000;
constexpr std::size_t kHugeBytes = 1000000;

// --- is_forbidden_address ----------------------------------------------------

sockaddr_storage make_address(const std::string& text) {
  sockaddr_storage storage{};
  if (text.find(':') == std::string::npos) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    REQUIRE(inet_pton(AF_INET, text.c_str(), &in.sin_addr) == 1);
    std::memcpy(&storage, &in, sizeof in);
  } else {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    REQUIRE(inet_pton(AF_INET6, text.c_str(), &in6.sin6_addr) == 1);
    std::memcpy(&storage, &in6, sizeof in6);
  }
  return storage;
}

bool forbidden(const std::string& text) {
  const sockaddr_storage storage = make_address(text);
  return pixpool::is_forbidden_address(reinterpret_cast<const sockaddr*>(&storage));
}

// --- the loopback origin -------------------------------------------------------

class Origin {
 public:
  Origin() : image_(pixpool::test::read_test_data("fruits_320x240.jpg")) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(16); };
    server_.Get("/image", [this](const httplib::Request&, httplib::Response& res) {
      ++image_requests_;
      res.set_content(image_, "image/jpeg");
    });
    server_.Get("/text", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hello, this is not an image", "text/plain");
    });
    // Sleeps ?ms= (default 5 s) in small steps, so stopping the origin is quick.
    server_.Get("/slow", [this](const httplib::Request& req, httplib::Response& res) {
      ++slow_requests_;
      const int ms = req.has_param("ms") ? std::stoi(req.get_param_value("ms")) : 5000;
      const auto until = Clock::now() + std::chrono::milliseconds(ms);
      while (!stopping_ && Clock::now() < until) std::this_thread::sleep_for(10ms);
      res.set_content("late", "text/plain");
    });
    // Announces kHugeBytes in Content-Length.
    server_.Get("/huge", [](const httplib::Request&, httplib::Response& res) {
      res.set_content_provider(kHugeBytes, "application/octet-stream",
                               [](std::size_t, std::size_t length, httplib::DataSink& sink) {
                                 const std::string chunk(std::min<std::size_t>(length, 16384), 'x');
                                 return sink.write(chunk.data(), chunk.size());
                               });
    });
    // Streams kHugeBytes chunked, without Content-Length: only counting catches it.
    server_.Get("/huge-chunked", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/octet-stream",
                                       [this](std::size_t offset, httplib::DataSink& sink) {
                                         if (offset >= kHugeBytes || stopping_) {
                                           sink.done();
                                           return true;
                                         }
                                         const std::string chunk(16384, 'x');
                                         return sink.write(chunk.data(), chunk.size());
                                       });
    });
    server_.Get("/chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/octet-stream",
                                       [](std::size_t offset, httplib::DataSink& sink) {
                                         if (offset >= 9) {
                                           sink.done();
                                           return true;
                                         }
                                         return sink.write("abc", 3);
                                       });
    });
    // /redirect/N: N redirects, then /image. Relative Locations, except the last.
    server_.Get(R"(/redirect/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      const int n = std::stoi(req.matches[1]);
      res.set_redirect(n > 1 ? "/redirect/" + std::to_string(n - 1) : url("/image"));
    });
    server_.Get("/redirect-forbidden", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("http://169.254.169.254/latest/meta-data/");
    });
    server_.Get("/redirect-ftp", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("ftp://127.0.0.1/image");
    });
    server_.Get("/redirect-nowhere", [](const httplib::Request&, httplib::Response& res) {
      res.status = 302;  // no Location
    });
    server_.Get("/404", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("no such image", "text/plain");
    });
    server_.Get("/500", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("origin broke", "text/plain");
    });

    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the server runs: wait for it (bounded).
    if (!wait_until([this] { return server_.is_running(); }, 10s)) {
      server_.stop();  // listen_after_bind may still start: make it return at once
      thread_.join();
      FAIL("the loopback origin did not start listening within 10 s");
    }
  }

  ~Origin() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }

  Origin(const Origin&) = delete;
  Origin& operator=(const Origin&) = delete;

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string prefix() const { return url("/"); }
  int port() const { return port_; }
  const std::string& image() const { return image_; }
  int image_requests() const { return image_requests_.load(); }
  int slow_requests() const { return slow_requests_.load(); }

 private:
  std::string image_;
  httplib::Server server_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> image_requests_{0};  // requests for /image that reached the origin
  std::atomic<int> slow_requests_{0};   // requests for /slow that reached the origin
  int port_ = 0;
  std::thread thread_;
};

// --- a loopback TLS origin with a test CA ---------------------------------------

// Runs `argv` (PATH lookup) with `cwd` as its working directory, stdin from
// /dev/null and stdout+stderr appended to `log`. Returns the child's pid.
pid_t spawn(const std::vector<std::string>& argv, const std::string& cwd, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return -1;
  return pid;
}

// A port that was free a moment ago on 127.0.0.1.
int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  const bool bound = bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  close(fd);
  REQUIRE(bound);
  return ntohs(address.sin_port);
}

bool accepts_connections(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  close(fd);
  return ok;
}

// `openssl s_server -WWW` on 127.0.0.1 serving /img.jpg over TLS, with a
// certificate for IP 127.0.0.1 issued by a CA made for this test (ca_file()).
// The server process is killed and the directory removed on destruction.
class TlsOrigin {
 public:
  TlsOrigin()
      : dir_(pixpool::test::make_temp_dir("tls-origin")),
        image_(pixpool::test::read_test_data("fruits_320x240.jpg")) {
    try {
      start();
    } catch (...) {
      cleanup();
      throw;
    }
  }
  ~TlsOrigin() { cleanup(); }
  TlsOrigin(const TlsOrigin&) = delete;
  TlsOrigin& operator=(const TlsOrigin&) = delete;

  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string prefix() const { return url("/"); }
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  const std::string& image() const { return image_; }
  std::string log() const { return pixpool::test::read_file(log_); }

 private:
  void openssl(const std::vector<std::string>& openssl_args) {
    // Built front to back (an insert at begin() trips GCC 12's
    // -Wnull-dereference once start() is inlined differently).
    std::vector<std::string> args;
    args.reserve(openssl_args.size() + 1);
    args.emplace_back("openssl");
    for (const std::string& arg : openssl_args) args.push_back(arg);
    const pid_t pid = spawn(args, dir_, log_);
    REQUIRE_MESSAGE(pid > 0, "cannot run openssl");
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                    "openssl " << args[1] << " failed: " << log());
  }

  void start() {
    const std::vector<std::string> ec_key = {"-newkey", "ec", "-pkeyopt",
                                             "ec_paramgen_curve:prime256v1", "-nodes"};
    auto with_key = [&ec_key](std::vector<std::string> args) {
      args.insert(args.begin() + 1, ec_key.begin(), ec_key.end());
      return args;
    };
    openssl(with_key({"req", "-x509", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
                      "/CN=pixpool test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"}));
    openssl(
        with_key({"req", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"}));
    pixpool::test::write_file(dir_ + "/server.ext",
                              "subjectAltName=IP:127.0.0.1\n"
                              "basicConstraints=CA:FALSE\n"
                              "keyUsage=critical,digitalSignature\n"
                              "extendedKeyUsage=serverAuth\n");
    openssl({"x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-set_serial", "2", "-days", "2", "-extfile", "server.ext", "-out", "server.pem"});
    pixpool::test::write_file(dir_ + "/img.jpg", image_);

    // The port may be taken between picking and listening: try a few.
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      port_ = free_loopback_port();
      pid_ =
          spawn({"openssl", "s_server", "-quiet", "-WWW", "-accept",
                 "127.0.0.1:" + std::to_string(port_), "-cert", "server.pem", "-key", "server.key"},
                dir_, log_);
      REQUIRE_MESSAGE(pid_ > 0, "cannot run openssl s_server");
      bool exited = false;  // e.g. the port was taken meanwhile: try another
      const bool listening = wait_until(
          [&] {
            exited = waitpid(pid_, nullptr, WNOHANG) == pid_;
            return exited || accepts_connections(port_);
          },
          10s, 10ms);
      if (exited) pid_ = -1;
      REQUIRE_MESSAGE(listening, "s_server did not listen within 10 s: " << log());
    }
    REQUIRE_MESSAGE(pid_ > 0, "s_server did not start: " << log());
  }

  void cleanup() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::string log_ = dir_ + "/openssl.log";
  std::string image_;
  int port_ = 0;
  pid_t pid_ = -1;
};

DownloadOptions options_for(const Origin& origin) {
  DownloadOptions options;
  options.io_threads = 2;
  options.timeout = 10s;
  options.max_bytes = kMaxBytes;
  options.allowed_prefixes = {origin.prefix()};
  return options;
}

Result<Download> fetch(Downloader& downloader, const std::string& url) {
  return downloader.fetch(url).get();
}

// The error's code and message for a failed download (FAIL on success).
pixpool::Error failure(const Result<Download>& result) {
  if (result.ok()) {
    FAIL_CHECK("expected a failure, the download succeeded");
    return pixpool::Error{ErrorCode::internal, "succeeded"};
  }
  return result.error();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("is_forbidden_address: IPv4 ranges") {
  // Forbidden: loopback, link-local/metadata, RFC 1918, CGNAT, multicast,
  // unspecified, broadcast.
  for (const char* a : {"127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1",
                        "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1",
                        "192.168.255.255", "100.64.0.1", "100.127.255.255", "224.0.0.1",
                        "239.255.255.255", "0.0.0.0", "0.1.2.3", "255.255.255.255"}) {
    CAPTURE(a);
    CHECK(forbidden(a));
  }
  // Allowed: public, and the neighbours just outside each range.
  for (const char* a : {"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.15.0.1",
                        "172.32.0.1", "192.167.255.255", "192.169.0.1", "169.253.255.255",
                        "126.255.255.255", "128.0.0.1", "11.0.0.1", "223.255.255.255"}) {
    CAPTURE(a);
    CHECK_FALSE(forbidden(a));
  }
}

TEST_CASE("is_forbidden_address: IPv6 ranges") {
  for (const char* a :
       {"::1", "::", "fe80::1", "febf::1", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1",
        // IPv4-mapped: judged by the embedded IPv4.
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",
        // IPv4-compatible: all refused.
        "::127.0.0.1", "::8.8.8.8",
        // NAT64 with an internal embedded IPv4; deprecated site-local.
        "64:ff9b::a9fe:a9fe", "fec0::1"}) {
    CAPTURE(a);
    CHECK(forbidden(a));
  }
  for (const char* a : {"2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8",
                        "64:ff9b::808:808", "fe7f::1", "fbff::1", "fe00::1"}) {
    CAPTURE(a);
    CHECK_FALSE(forbidden(a));
  }
}

TEST_CASE("is_forbidden_address: other families and address_to_string") {
  sockaddr_storage unix_address{};
  unix_address.ss_family = AF_UNIX;
  CHECK(pixpool::is_forbidden_address(reinterpret_cast<const sockaddr*>(&unix_address)));

  const sockaddr_storage v4 = make_address("169.254.169.254");
  CHECK(pixpool::address_to_string(reinterpret_cast<const sockaddr*>(&v4)) == "169.254.169.254");
  const sockaddr_storage v6 = make_address("::ffff:127.0.0.1");
  CHECK(pixpool::address_to_string(reinterpret_cast<const sockaddr*>(&v6)) == "::ffff:127.0.0.1");
}

TEST_CASE("Downloader: an allowlisted loopback origin downloads") {
  Origin origin;
  Downloader downloader(options_for(origin));
  const auto result = fetch(downloader, origin.url("/image"));
  REQUIRE_MESSAGE(result.ok(), result.error().message);
  CHECK(result->bytes == origin.image());
  CHECK(result->status == 200);
  CHECK(result->final_url == origin.url("/image"));
  CHECK(result->ms >= 0);

  // Types are not judged here: the caller decodes (and answers 415).
  const auto text = fetch(downloader, origin.url("/text"));
  REQUIRE_MESSAGE(text.ok(), text.error().message);
  CHECK(text->bytes == "hello, this is not an image");

  const auto stats = downloader.stats();
  CHECK(stats.completed == 2);
  CHECK(stats.failed == 0);
  CHECK(stats.active == 0);
  CHECK(stats.queued == 0);
}

TEST_CASE("Downloader: allow_private reaches loopback without an allowlist") {
  Origin origin;
  DownloadOptions options = options_for(origin);
  options.allowed_prefixes.clear();
  options.allow_private = true;
  Downloader downloader(options);
  const auto result = fetch(downloader, origin.url("/image"));
  REQUIRE_MESSAGE(result.ok(), result.error().message);
  CHECK(result->bytes == origin.image());
}

TEST_CASE("Downloader: loopback is refused by default") {
  Origin origin;
  DownloadOptions options = options_for(origin);
  options.allowed_prefixes.clear();
  Downloader downloader(options);

  const auto error = failure(fetch(downloader, origin.url("/image")));
  CHECK(error.code == ErrorCode::source_forbidden);
  CHECK_MESSAGE(contains(error.message, "127.0.0.1"), error.message);
  CHECK_MESSAGE(contains(error.message, "loopback"), error.message);
  CHECK_MESSAGE(contains(error.message, "--allow-private-sources"), error.message);

  // Another port's prefix does not cover this origin.
  options.allowed_prefixes = {"http://127.0.0.1:" + std::to_string(origin.port() + 1) + "/"};
  Downloader other(options);
  CHECK(failure(fetch(other, origin.url("/image"))).code == ErrorCode::source_forbidden);

  CHECK(downloader.stats().failed == 1);
}

TEST_CASE("Downloader: internal addresses are refused before connecting") {
  Origin origin;
  DownloadOptions options = options_for(origin);
  options.allowed_prefixes.clear();
  options.timeout = 3s;  // a real connect attempt would end as timeout, not source_forbidden
  Downloader downloader(options);
  const std::string port = std::to_string(origin.port());
  struct Case {
    std::string url;
    std::string address;
  };
  for (const Case& c : {Case{"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
                        Case{"http://10.0.0.1/image.jpg", "10.0.0.1"},
                        Case{"http://192.168.1.1:8080/x", "192.168.1.1"},
                        Case{"http://[::1]:" + port + "/image", "::1"},
                        Case{"http://[::ffff:127.0.0.1]:" + port + "/image", "::ffff:127.0.0.1"},
                        Case{"http://localhost:" + port + "/image", ""},
                        Case{"http://0.0.0.0:" + port + "/image", "0.0.0.0"}}) {
    CAPTURE(c.url);
    const auto error = failure(fetch(downloader, c.url));
    CHECK(error.code == ErrorCode::source_forbidden);
    CHECK_MESSAGE(contains(error.message, "address " + c.address), error.message);
    CHECK_MESSAGE(contains(error.message, "is not allowed"), error.message);
  }
}

TEST_CASE("Downloader: an allowlist prefix matches only at a boundary") {
  Origin origin;
  DownloadOptions options = options_for(origin);
  // Without a trailing '/': still covers paths of this origin...
  options.allowed_prefixes = {"http://127.0.0.1:" + std::to_string(origin.port())};
  Downloader downloader(options);
  const auto ok = fetch(downloader, origin.url("/image"));
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  // ...but not a URL whose host merely comes after it (userinfo trick).
  const auto error = failure(
      fetch(downloader, "http://127.0.0.1:" + std::to_string(origin.port()) + "@10.0.0.1/image"));
  CHECK(error.code == ErrorCode::source_forbidden);
  CHECK_MESSAGE(contains(error.message, "10.0.0.1"), error.message);
}

TEST_CASE("Downloader: a redirect is judged by its own URL") {
  Origin origin;
  Downloader downloader(options_for(origin));
  const auto error = failure(fetch(downloader, origin.url("/redirect-forbidden")));
  CHECK(error.code == ErrorCode::source_forbidden);
  CHECK_MESSAGE(contains(error.message, "address 169.254.169.254 is not allowed"), error.message);

  const auto ftp = failure(fetch(downloader, origin.url("/redirect-ftp")));
  CHECK(ftp.code == ErrorCode::source_forbidden);
  CHECK_MESSAGE(contains(ftp.message, "ftp"), ftp.message);

  const auto nowhere = failure(fetch(downloader, origin.url("/redirect-nowhere")));
  CHECK(nowhere.code == ErrorCode::origin_failed);
}

TEST_CASE("Downloader: at most max_redirects redirects") {
  Origin origin;
  Downloader downloader(options_for(origin));
  const auto five = fetch(downloader, origin.url("/redirect/5"));
  REQUIRE_MESSAGE(five.ok(), five.error().message);
  CHECK(five->bytes == origin.image());
  CHECK(five->final_url == origin.url("/image"));

  const auto six = failure(fetch(downloader, origin.url("/redirect/6")));
  CHECK(six.code == ErrorCode::origin_failed);
  CHECK_MESSAGE(contains(six.message, "too many redirects"), six.message);
}

TEST_CASE("Downloader: only http and https") {
  Origin origin;
  Downloader downloader(options_for(origin));
  for (const std::string url :
       {"ftp://127.0.0.1/image", "file:///etc/passwd", "gopher://127.0.0.1/",
        "dict://127.0.0.1:11211/stats", "FILE:///etc/passwd", "made-up-scheme://host/x"}) {
    CAPTURE(url);
    CHECK(failure(fetch(downloader, url)).code == ErrorCode::source_forbidden);
  }
}

TEST_CASE("Downloader: malformed URLs") {
  Origin origin;
  Downloader downloader(options_for(origin));
  for (const std::string url :
       {"", "not a url", "http://", "127.0.0.1/image", "http://[::1/x", "http://exa mple.com/"}) {
    CAPTURE(url);
    CHECK(failure(fetch(downloader, url)).code == ErrorCode::invalid_parameter);
  }
}

TEST_CASE("Downloader: origin errors") {
  Origin origin;
  Downloader downloader(options_for(origin));
  const auto not_found = failure(fetch(downloader, origin.url("/404")));
  CHECK(not_found.code == ErrorCode::origin_failed);
  CHECK_MESSAGE(contains(not_found.message, "404"), not_found.message);

  const auto broken = failure(fetch(downloader, origin.url("/500")));
  CHECK(broken.code == ErrorCode::origin_failed);
  CHECK_MESSAGE(contains(broken.message, "500"), broken.message);

  // A bound but not listening socket: connecting to its port is refused.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  DownloadOptions options = options_for(origin);
  options.allow_private = true;
  Downloader private_downloader(options);
  const auto refused = failure(fetch(
      private_downloader, "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/x"));
  close(fd);
  CHECK(refused.code == ErrorCode::origin_failed);
}

TEST_CASE("Downloader: the total timeout") {
  Origin origin;
  DownloadOptions options = options_for(origin);
  options.timeout = 500ms;
  Downloader downloader(options);
  const auto start = Clock::now();
  const auto error = failure(fetch(downloader, origin.url("/slow?ms=5000")));
  CHECK(error.code == ErrorCode::timeout);
  CHECK(Clock::now() - start < 4s);  // far below the origin's 5 s
}

TEST_CASE("Downloader: the byte cap") {
  Origin origin;
  Downloader downloader(options_for(origin));
  SUBCASE("announced by Content-Length") {
    const auto error = failure(fetch(downloader, origin.url("/huge")));
    CHECK(error.code == ErrorCode::source_too_large);
    CHECK_MESSAGE(contains(error.message, std::to_string(kMaxBytes)), error.message);
  }
  SUBCASE("counted while streaming, chunked") {
    const auto error = failure(fetch(downloader, origin.url("/huge-chunked")));
    CHECK(error.code == ErrorCode::source_too_large);
    CHECK_MESSAGE(contains(error.message, std::to_string(kMaxBytes)), error.message);
  }
  SUBCASE("a small chunked body is fine") {
    const auto result = fetch(downloader, origin.url("/chunked"));
    REQUIRE_MESSAGE(result.ok(), result.error().message);
    CHECK(result->bytes == "abcabcabc");
  }
}

TEST_CASE("Downloader: proxies from the environment are ignored") {
  // Set before any thread of this test reads the environment.
  setenv("http_proxy", "http://10.0.0.1:3128", 1);
  setenv("HTTP_PROXY", "http://10.0.0.1:3128", 1);
  setenv("ALL_PROXY", "http://10.0.0.1:3128", 1);
  {
    Origin origin;
    Downloader downloader(options_for(origin));
    const auto result = fetch(downloader, origin.url("/image"));
    CHECK_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
  }
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("ALL_PROXY");
}

TEST_CASE("Downloader: 20 parallel downloads on 4 I/O threads") {
  Origin origin;
  DownloadOptions options = options_for(origin);
  options.io_threads = 4;
  Downloader downloader(options);
  std::vector<std::future<Result<Download>>> futures;
  futures.reserve(20);
  for (int i = 0; i < 20; ++i) {
    futures.push_back(downloader.fetch(origin.url(i % 2 == 0 ? "/image" : "/redirect/2")));
  }
  for (auto& future : futures) {
    const auto result = future.get();
    REQUIRE_MESSAGE(result.ok(), result.error().message);
    CHECK(result->bytes == origin.image());
  }
  const auto stats = downloader.stats();
  CHECK(stats.completed == 20);
  CHECK(stats.failed == 0);
  CHECK(stats.active == 0);
  CHECK(stats.queued == 0);
}

TEST_CASE("Downloader: the destructor fails pending downloads promptly") {
  Origin origin;
  std::vector<std::future<Result<Download>>> futures;
  DownloadOptions options = options_for(origin);
  options.io_threads = 2;
  options.timeout = 60s;
  auto downloader = std::make_unique<Downloader>(options);
  futures.reserve(6);
  for (int i = 0; i < 6; ++i) futures.push_back(downloader->fetch(origin.url("/slow?ms=30000")));
  // Let the I/O threads start two of them, so the destructor has running
  // downloads to abort as well as queued ones.
  REQUIRE(wait_until([&] { return downloader->stats().active == 2; }, 10s));
  const auto start = Clock::now();
  downloader.reset();
  CHECK(Clock::now() - start < 10s);  // the origin would answer only after 30 s
  for (auto& future : futures) {
    REQUIRE(future.wait_for(0s) == std::future_status::ready);
    const auto result = future.get();
    CHECK(failure(result).code == ErrorCode::shutting_down);
  }
}

TEST_CASE("Downloader: https from an origin whose CA is given as ca_file") {
  TlsOrigin origin;
  DownloadOptions options;
  options.io_threads = 2;
  options.timeout = 10s;
  options.max_bytes = kHugeBytes;
  options.allowed_prefixes = {origin.prefix()};
  options.ca_file = origin.ca_file();
  {
    Downloader downloader(options);
    const auto result = fetch(downloader, origin.url("/img.jpg"));
    REQUIRE_MESSAGE(result.ok(), result.error().message << "\n" << origin.log());
    CHECK(result->bytes == origin.image());
    CHECK(result->final_url == origin.url("/img.jpg"));
    CHECK(result->status == 200);
  }
  {
    // allow_private instead of the prefix: the same bytes.
    DownloadOptions open = options;
    open.allowed_prefixes.clear();
    open.allow_private = true;
    Downloader downloader(open);
    const auto result = fetch(downloader, origin.url("/img.jpg"));
    REQUIRE_MESSAGE(result.ok(), result.error().message);
    CHECK(result->bytes == origin.image());
  }
  {
    // Without the CA file the origin's certificate is not trusted.
    DownloadOptions system_cas = options;
    system_cas.ca_file.clear();
    Downloader downloader(system_cas);
    const auto error = failure(fetch(downloader, origin.url("/img.jpg")));
    CHECK(error.code == ErrorCode::origin_failed);
    CHECK_MESSAGE(contains(error.message, "certificate"), error.message);
  }
}

// --- admission: the bounded download queue and its deadline (issue 11) ---------

TEST_CASE("Downloader: beyond io_threads running and max_queued waiting, fetch refuses at once") {
  Origin origin;
  DownloadOptions options;
  options.io_threads = 1;
  options.max_queued = 2;
  options.allow_private = true;
  Downloader downloader(options);
  auto running = downloader.fetch(origin.url("/slow?ms=1500"));
  REQUIRE(wait_until([&] { return downloader.stats().active == 1; }, 10s));
  auto waiting1 = downloader.fetch(origin.url("/image"));
  auto waiting2 = downloader.fetch(origin.url("/image"));
  CHECK(downloader.stats().queued == 2);

  const auto asked = Clock::now();
  auto refused = downloader.fetch(origin.url("/image"));
  REQUIRE(refused.wait_for(0s) == std::future_status::ready);  // no waiting for a thread
  CHECK(Clock::now() - asked < 100ms);
  auto result = refused.get();
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::download_queue_full);
  CHECK(result.error().message.find("--download-queue") != std::string::npos);
  CHECK(downloader.stats().refused == 1);

  CHECK(running.get().ok());
  CHECK(waiting1.get().ok());
  CHECK(waiting2.get().ok());
  CHECK(origin.image_requests() == 2);  // the refused one never reached the origin
  // Room again once the queue has drained.
  CHECK(downloader.fetch(origin.url("/image")).get().ok());
}

TEST_CASE("Downloader: max_queued 0 runs io_threads downloads and queues none") {
  Origin origin;
  DownloadOptions options;
  options.io_threads = 2;
  options.max_queued = 0;
  options.allow_private = true;
  Downloader downloader(options);
  auto a = downloader.fetch(origin.url("/slow?ms=800"));
  auto b = downloader.fetch(origin.url("/slow?ms=800"));
  auto c = downloader.fetch(origin.url("/image")).get();
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == ErrorCode::download_queue_full);
  CHECK(a.get().ok());
  CHECK(b.get().ok());
}

TEST_CASE("Downloader: the wait for an I/O thread counts toward the timeout") {
  Origin origin;
  DownloadOptions options;
  options.io_threads = 1;
  options.timeout = 600ms;
  options.allow_private = true;
  Downloader downloader(options);
  const auto start = Clock::now();
  // The first holds the only thread for its 600 ms; the second starts with
  // (about) nothing left; the third's 600 ms have all passed in the queue.
  auto first = downloader.fetch(origin.url("/slow?ms=5000"));
  auto second = downloader.fetch(origin.url("/slow?ms=5000"));
  auto third = downloader.fetch(origin.url("/image"));
  for (auto* f : {&first, &second}) {
    auto result = f->get();
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == ErrorCode::timeout);
  }
  auto third_result = third.get();
  REQUIRE_FALSE(third_result.ok());
  CHECK(third_result.error().code == ErrorCode::timeout);
  CHECK(third_result.error().message.find("waiting") != std::string::npos);
  // All within about one timeout of fetch(), not one after the other.
  CHECK(Clock::now() - start < 1100ms);
  CHECK(origin.image_requests() == 0);  // the third never connected
}

TEST_CASE("Downloader: a cancelled download is dropped from the queue, or aborted while running") {
  Origin origin;
  DownloadOptions options;
  options.io_threads = 1;
  options.allow_private = true;
  Downloader downloader(options);
  auto running_token = std::make_shared<pixpool::CancelToken>();
  auto queued_token = std::make_shared<pixpool::CancelToken>();
  auto running = downloader.fetch(origin.url("/slow?ms=8000"), running_token);
  REQUIRE(wait_until([&] { return origin.slow_requests() == 1; }, 10s));
  auto queued = downloader.fetch(origin.url("/image"), queued_token);
  CHECK(downloader.stats().queued == 1);

  queued_token->cancel();
  REQUIRE(queued.wait_for(0s) == std::future_status::ready);  // withdrawn at once
  CHECK(queued.get().error().code == ErrorCode::client_gone);
  CHECK(downloader.stats().queued == 0);

  const auto cancelled_at = Clock::now();
  running_token->cancel();
  auto result = running.get();  // curl's progress callback aborts it (about once a second)
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::client_gone);
  CHECK(Clock::now() - cancelled_at < 3s);
  CHECK(downloader.stats().abandoned == 2);
  CHECK(origin.image_requests() == 0);
}
