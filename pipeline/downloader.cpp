#include "pipeline/downloader.hpp"

#include <curl/curl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "pipeline/address_policy.hpp"

namespace pixpool {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kMaxConnectTimeout{5000};

// curl_global_init is not thread-safe: run it once, before any I/O thread.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// RAII for the two curl handle types used here.
struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A URL parsed and normalized by curl: what will actually be requested.
struct ParsedUrl {
  std::string url;     // normalized, e.g. "http://host:8080/path"
  std::string scheme;  // lower case
};

// invalid_parameter for malformed URLs, source_forbidden for other schemes.
Result<ParsedUrl> parse_url(const std::string& url) {
  UrlPtr handle(curl_url());
  if (!handle) return Error{ErrorCode::internal, "curl_url() failed"};
  // NON_SUPPORT_SCHEME: parse any scheme so "gopher://" reports the scheme, not "malformed".
  const CURLUcode set =
      curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (set != CURLUE_OK) {
    return Error{ErrorCode::invalid_parameter,
                 "malformed URL '" + url + "': " + curl_url_strerror(set)};
  }
  char* raw = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_SCHEME, &raw, 0) != CURLUE_OK || raw == nullptr) {
    return Error{ErrorCode::invalid_parameter, "malformed URL '" + url + "': no scheme"};
  }
  ParsedUrl parsed;
  parsed.scheme = lower(CurlString(raw).get());
  if (parsed.scheme != "http" && parsed.scheme != "https") {
    return Error{ErrorCode::source_forbidden,
                 "scheme '" + parsed.scheme + "' is not allowed (only http and https)"};
  }
  raw = nullptr;
  const bool has_host = curl_url_get(handle.get(), CURLUPART_HOST, &raw, 0) == CURLUE_OK;
  const CurlString host(raw);
  if (!has_host || !host || host.get()[0] == '\0') {
    return Error{ErrorCode::invalid_parameter, "malformed URL '" + url + "': no host"};
  }
  raw = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_URL, &raw, 0) != CURLUE_OK || raw == nullptr) {
    return Error{ErrorCode::invalid_parameter, "malformed URL '" + url + "'"};
  }
  parsed.url = CurlString(raw).get();
  return parsed;
}

// True when `url` starts with `prefix` at a boundary: a prefix without a
// trailing '/' must not match "http://allowed.example.evil.com/" or
// "http://allowed.example@evil.com/".
bool matches_prefix(const std::string& url, const std::string& prefix) {
  if (prefix.empty() || url.compare(0, prefix.size(), prefix) != 0) return false;
  if (url.size() == prefix.size()) return true;
  const char last = prefix.back();
  if (last == '/' || last == '?' || last == '#') return true;
  const char next = url[prefix.size()];
  return next == '/' || next == '?' || next == '#';
}

// Per-attempt state shared with the curl callbacks (one request, no redirects).
struct Transfer {
  const std::atomic<bool>* stop = nullptr;  // the downloader is being destroyed
  const CancelToken* cancel = nullptr;      // the requester went away (may be null)
  bool check_address = true;                // false: allow_private or allowlisted URL
  std::size_t max_bytes = 0;
  const std::string* ca_file = nullptr;  // CA bundle for https; empty = libcurl's default
  std::string body;
  // Why the callbacks aborted the transfer, if they did.
  std::string refused_address;  // the SSRF guard refused a connect
  const char* refused_reason = nullptr;
  long error_status = 0;  // origin answered >= 400
  bool too_large = false;
  bool out_of_memory = false;
  CURL* easy = nullptr;
};

// Every connection goes through here, after DNS: refuse forbidden addresses
// before a packet is sent. curl then tries the next address, or fails with
// CURLE_COULDNT_CONNECT.
curl_socket_t open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  if (t->check_address) {
    const char* reason = forbidden_address_reason(&address->addr);
    if (reason != nullptr) {
      t->refused_address = address_to_string(&address->addr);
      t->refused_reason = reason;
      return CURL_SOCKET_BAD;
    }
  }
  // CLOEXEC: the socket must not leak into processes forked later.
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Called per header line; the empty line ends a response's headers. Fails
// early on an error status or an announced Content-Length over the cap.
// NOLINTNEXTLINE(readability-non-const-parameter): libcurl's CURLOPT_HEADERFUNCTION type
std::size_t on_header(char* data, std::size_t size, std::size_t count, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const std::size_t n = size * count;
  if (!(n == 2 && data[0] == '\r') && !(n == 1 && data[0] == '\n')) return n;
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400) {
    t->error_status = status;
    return 0;  // no need for the error body
  }
  if (status < 200 || status >= 300) return n;  // 1xx interim, 3xx (body is discarded)
  curl_off_t length = -1;
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  if (length > 0 && static_cast<std::uint64_t>(length) > t->max_bytes) {
    t->too_large = true;
    return 0;
  }
  if (length > 0) {
    try {
      t->body.reserve(static_cast<std::size_t>(length));
    } catch (...) {
      t->out_of_memory = true;
      return 0;
    }
  }
  return n;
}

// The body, counted as it streams: Content-Length may be absent (chunked) or wrong.
std::size_t on_body(char* data, std::size_t size, std::size_t count, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const std::size_t n = size * count;
  if (n > t->max_bytes - std::min(t->body.size(), t->max_bytes)) {
    t->too_large = true;
    return 0;
  }
  try {
    t->body.append(data, n);
  } catch (...) {  // never let an exception cross curl's C frames
    t->out_of_memory = true;
    return 0;
  }
  return n;
}

// Called at least about once a second, even while waiting: aborts on
// shutdown and once the requester has gone.
int on_progress(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<Transfer*>(clientp);
  return t->stop->load() || (t->cancel != nullptr && t->cancel->cancelled()) ? 1 : 0;
}

Error client_gone_error(const std::string& url) {
  return Error{ErrorCode::client_gone, "the client went away; download of " + url + " dropped"};
}

long to_ms(std::chrono::nanoseconds d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// One request without following redirects. On success `transfer.body` holds
// the body; `status` and `redirect` report the answer.
struct Answer {
  long status = 0;
  std::string redirect;  // absolute Location of a 3xx, resolved by curl
};

Result<Answer> request_once(const std::string& url, Transfer& t, Clock::time_point deadline,
                            std::chrono::milliseconds total_timeout) {
  EasyPtr easy(curl_easy_init());
  if (!easy) return Error{ErrorCode::internal, "curl_easy_init() failed"};
  CURL* e = easy.get();
  t.easy = e;
  const long remaining = std::max(1L, to_ms(deadline - Clock::now()));
  char error_buffer[CURL_ERROR_SIZE] = {};

  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // each hop is re-checked by us
  curl_easy_setopt(e, CURLOPT_PROXY, "");           // ignore http_proxy & co.: no guard bypass
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);        // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "pixpool");
  if (t.ca_file != nullptr && !t.ca_file->empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, t.ca_file->c_str());
  }
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   std::min(remaining, static_cast<long>(kMaxConnectTimeout.count())));
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);

  const CURLcode code = curl_easy_perform(e);

  // The callbacks' own reasons first: they explain the curl error they caused.
  if (code == CURLE_ABORTED_BY_CALLBACK && t.stop->load())
    return Error{ErrorCode::shutting_down, "the downloader is shutting down"};
  if (code == CURLE_ABORTED_BY_CALLBACK && t.cancel != nullptr && t.cancel->cancelled())
    return client_gone_error(url);
  if (t.too_large) {
    return Error{ErrorCode::source_too_large,
                 "source is larger than " + std::to_string(t.max_bytes) + " bytes"};
  }
  if (t.error_status >= 400) {
    return Error{ErrorCode::origin_failed,
                 "origin answered " + std::to_string(t.error_status) + " for " + url};
  }
  if (t.out_of_memory) return Error{ErrorCode::out_of_memory, "no memory for the download"};
  if (code == CURLE_COULDNT_CONNECT && !t.refused_address.empty()) {
    return Error{ErrorCode::source_forbidden,
                 "address " + t.refused_address + " is not allowed (" + t.refused_reason +
                     "); use --allow-private-sources or --allowed-sources"};
  }
  if (code != CURLE_OK) {
    const std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        return Error{ErrorCode::timeout, "download of " + url + " timed out (limit " +
                                             std::to_string(total_timeout.count()) +
                                             " ms): " + detail};
      case CURLE_FILESIZE_EXCEEDED:
        return Error{ErrorCode::source_too_large,
                     "source is larger than " + std::to_string(t.max_bytes) + " bytes"};
      case CURLE_UNSUPPORTED_PROTOCOL:
        return Error{ErrorCode::source_forbidden, "cannot download " + url + ": " + detail};
      case CURLE_URL_MALFORMAT:
        return Error{ErrorCode::invalid_parameter, "malformed URL '" + url + "': " + detail};
      default:  // refused, reset, DNS failure, TLS failure, ...
        return Error{ErrorCode::origin_failed, "cannot download " + url + ": " + detail};
    }
  }

  Answer answer;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &answer.status);
  if (answer.status >= 300 && answer.status < 400) {
    char* location = nullptr;
    curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &location);
    if (location != nullptr) answer.redirect = location;
  }
  return answer;
}

}  // namespace

struct Downloader::State {
  struct Task {
    std::string url;
    std::promise<Result<Download>> promise;
    Clock::time_point queued_at;
    Clock::time_point deadline;  // queued_at + options.timeout
    std::shared_ptr<CancelToken> cancel;
    CancelToken::HookId withdraw_hook = 0;  // cancel's hook for this task, 0 if none
  };

  explicit State(DownloadOptions o) : options(std::move(o)) {}

  Result<Download> download(const Task& task);
  void run();
  // The cancel token's hook: drops `task` if it still waits in the queue.
  void withdraw(const std::shared_ptr<Task>& task);
  // Fails a task that never ran (counted as failed).
  void fail_unrun(Task& task, Error error);

  const DownloadOptions options;
  std::atomic<bool> stop{false};  // aborts running transfers (destructor)

  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::shared_ptr<Task>> queue;  // guarded by mutex
  bool stopping = false;                    // guarded by mutex: no new tasks are taken
  std::size_t active = 0;                   // guarded by mutex
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> abandoned{0};
  std::vector<std::thread> threads;
};

Result<Download> Downloader::State::download(const Task& task) {
  const std::string& url = task.url;
  const auto deadline = task.deadline;
  std::string current = url;
  for (int redirects = 0;; ++redirects) {
    if (stop.load()) return Error{ErrorCode::shutting_down, "the downloader is shutting down"};
    if (task.cancel != nullptr && task.cancel->cancelled()) return client_gone_error(url);
    auto parsed = parse_url(current);
    if (!parsed) return parsed.error();
    Transfer t;
    t.stop = &stop;
    t.cancel = task.cancel.get();
    t.max_bytes = options.max_bytes;
    t.ca_file = &options.ca_file;
    // Each hop is judged by its own URL: an allowlisted origin cannot redirect
    // to an internal address.
    t.check_address =
        !options.allow_private &&
        std::none_of(options.allowed_prefixes.begin(), options.allowed_prefixes.end(),
                     [&](const std::string& p) { return matches_prefix(parsed->url, p); });
    auto answer = request_once(parsed->url, t, deadline, options.timeout);
    if (!answer) return answer.error();

    const long status = answer->status;
    if (status >= 200 && status < 300) {
      Download d;
      d.bytes = std::move(t.body);
      d.final_url = parsed->url;
      d.status = status;
      d.ms = std::chrono::duration<double, std::milli>(Clock::now() - task.queued_at).count();
      return d;
    }
    if (status < 300 || status >= 400) {
      return Error{ErrorCode::origin_failed,
                   "origin answered " + std::to_string(status) + " for " + parsed->url};
    }
    if (answer->redirect.empty()) {
      return Error{ErrorCode::origin_failed, "origin answered " + std::to_string(status) +
                                                 " without a Location for " + parsed->url};
    }
    if (redirects >= options.max_redirects) {
      return Error{ErrorCode::origin_failed, "too many redirects (more than " +
                                                 std::to_string(options.max_redirects) +
                                                 ") starting at " + url};
    }
    if (Clock::now() >= deadline) {
      return Error{ErrorCode::timeout, "download of " + url + " timed out (limit " +
                                           std::to_string(options.timeout.count()) + " ms)"};
    }
    current = std::move(answer->redirect);
  }
}

void Downloader::State::run() {
  for (;;) {
    std::shared_ptr<Task> task;
    {
      std::unique_lock lock(mutex);
      wake.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping
      task = std::move(queue.front());
      queue.pop_front();
      ++active;
    }
    // Ours now: a cancel aborts the transfer through on_progress instead.
    if (task->cancel != nullptr) task->cancel->clear_withdraw(task->withdraw_hook);
    Result<Download> result = Error{ErrorCode::internal, "download did not run"};
    const auto now = Clock::now();
    if (now >= task->deadline) {
      // Its whole --download-timeout went on waiting for a thread: never connect.
      const auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - task->queued_at);
      result = Error{ErrorCode::timeout,
                     "download of " + task->url + " timed out (limit " +
                         std::to_string(options.timeout.count()) + " ms) after waiting " +
                         std::to_string(waited.count()) + " ms for a download thread"};
    } else {
      try {
        result = download(*task);
      } catch (const std::bad_alloc&) {
        result = Error{ErrorCode::out_of_memory, "no memory for the download"};
      } catch (const std::exception& e) {
        result = Error{ErrorCode::internal, std::string("download failed: ") + e.what()};
      }
    }
    // Stats first, so a caller woken by the future sees them updated.
    (result.ok() ? completed : failed).fetch_add(1);
    if (!result.ok() && result.error().code == ErrorCode::client_gone) abandoned.fetch_add(1);
    {
      std::lock_guard lock(mutex);
      --active;
    }
    task->promise.set_value(std::move(result));
  }
}

void Downloader::State::withdraw(const std::shared_ptr<Task>& task) {
  {
    std::lock_guard lock(mutex);
    const auto it = std::find(queue.begin(), queue.end(), task);
    if (it == queue.end()) return;  // running (it aborts) or done
    queue.erase(it);
  }
  abandoned.fetch_add(1);
  fail_unrun(*task, client_gone_error(task->url));
}

void Downloader::State::fail_unrun(Task& task, Error error) {
  failed.fetch_add(1);
  task.promise.set_value(std::move(error));
}

Downloader::Downloader(DownloadOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
  init_curl_once();
  const int count = std::max(1, state_->options.io_threads);
  state_->threads.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    state_->threads.emplace_back([s = state_.get()] { s->run(); });
  }
}

Downloader::~Downloader() {
  std::deque<std::shared_ptr<State::Task>> pending;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    pending.swap(state_->queue);
  }
  state_->stop.store(true);  // running transfers abort at their next progress callback
  state_->wake.notify_all();
  for (auto& task : pending) {
    if (task->cancel != nullptr) task->cancel->clear_withdraw(task->withdraw_hook);
    state_->fail_unrun(*task, Error{ErrorCode::shutting_down, "the downloader is shutting down"});
  }
  for (auto& thread : state_->threads) thread.join();
}

std::future<Result<Download>> Downloader::fetch(std::string url,
                                                std::shared_ptr<CancelToken> cancel) {
  auto task = std::make_shared<State::Task>();
  task->url = std::move(url);
  task->queued_at = Clock::now();
  task->deadline = task->queued_at + state_->options.timeout;
  task->cancel = std::move(cancel);
  auto future = task->promise.get_future();
  if (task->cancel != nullptr) {
    // Before the task is queued, so a cancel from now on finds it (the hook
    // waits for the mutex); not under the mutex, as a cancelled token runs it at once.
    task->withdraw_hook =
        task->cancel->set_withdraw([s = state_.get(), weak = std::weak_ptr<State::Task>(task)] {
          if (auto t = weak.lock()) s->withdraw(t);
        });
  }
  std::optional<Error> refusal;
  {
    std::lock_guard lock(state_->mutex);
    // Running + waiting: a task an idle thread has not picked up yet still
    // counts as waiting, so max_queued 0 admits exactly io_threads.
    const std::size_t threads = static_cast<std::size_t>(std::max(1, state_->options.io_threads));
    if (state_->stopping) {
      refusal = Error{ErrorCode::shutting_down, "the downloader is shutting down"};
    } else if (task->cancel != nullptr && task->cancel->cancelled()) {
      refusal = client_gone_error(task->url);
    } else if (state_->active + state_->queue.size() >= threads + state_->options.max_queued) {
      refusal = Error{ErrorCode::download_queue_full,
                      "all " + std::to_string(threads) + " download threads are busy and " +
                          std::to_string(state_->queue.size()) +
                          " downloads are waiting (--download-queue); retry later"};
    } else {
      state_->queue.push_back(task);
      state_->wake.notify_one();
    }
  }
  if (refusal) {
    if (task->cancel != nullptr) task->cancel->clear_withdraw(task->withdraw_hook);
    if (refusal->code == ErrorCode::download_queue_full) state_->refused.fetch_add(1);
    if (refusal->code == ErrorCode::client_gone) state_->abandoned.fetch_add(1);
    state_->fail_unrun(*task, std::move(*refusal));
    return future;
  }
  return future;
}

Downloader::Stats Downloader::stats() const {
  Stats s;
  {
    std::lock_guard lock(state_->mutex);
    s.active = state_->active;
    s.queued = state_->queue.size();
  }
  s.completed = state_->completed.load();
  s.failed = state_->failed.load();
  s.refused = state_->refused.load();
  s.abandoned = state_->abandoned.load();
  return s;
}

}  // namespace pixpool
