#include "pipeline/tar_archive.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <clocale>
#include <memory>
#include <string>
#include <string_view>

namespace pixpool {
namespace {

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;
using EntryPtr = std::unique_ptr<archive_entry, EntryDeleter>;

// libarchive's write callback: appends each block to the std::string passed
// as client data. Never fails short of std::bad_alloc, which must not unwind
// through C frames, so it is reported as an error instead.
la_ssize_t append_block(archive* a, void* client_data, const void* buffer, size_t length) {
  try {
    static_cast<std::string*>(client_data)->append(static_cast<const char*>(buffer), length);
  } catch (...) {
    archive_set_error(a, ENOMEM, "out of memory while building the archive");
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

// The name for an error message: NULs shown as \0, long names cut.
std::string printable(std::string_view name) {
  constexpr std::size_t kMax = 200;
  std::string out;
  for (const char c : name.substr(0, kMax)) {
    if (c == '\0') {
      out += "\\0";
    } else {
      out += c;
    }
  }
  if (name.size() > kMax) out += "...";
  return out;
}

// Why `name` may not be written, or empty when it may. Rejects names that
// would escape or confuse the extraction directory: absolute paths, ".."
// components, NULs (the C API would truncate), and empty components
// ("a//b", a trailing "/" that would read back as a directory).
std::string_view name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.find('\0') != std::string_view::npos) return "contains a NUL byte";
  if (name.front() == '/') return "is absolute";
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view part = name.substr(start, end - start);
    if (part == "..") return "contains a \"..\" component";
    if (part.empty()) return "contains an empty path component";
    start = end + 1;
  }
  return {};
}

// Makes the calling thread use a UTF-8 LC_CTYPE while it lives. The pax
// writer converts names from the current locale to UTF-8; the server never
// calls setlocale, and in the "C" locale every non-ASCII name would fall back
// to a "hdrcharset=BINARY" header that GNU tar warns about. uselocale() is
// per thread, so concurrent callers do not interfere. Without C.UTF-8 (not
// expected on glibc >= 2.35) the current locale stays in effect.
class Utf8LocaleScope {
 public:
  Utf8LocaleScope() {
    static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t{});
    if (utf8 != locale_t{}) previous_ = uselocale(utf8);
  }
  ~Utf8LocaleScope() {
    if (previous_ != locale_t{}) uselocale(previous_);
  }
  Utf8LocaleScope(const Utf8LocaleScope&) = delete;
  Utf8LocaleScope& operator=(const Utf8LocaleScope&) = delete;

 private:
  locale_t previous_{};
};

Error archive_failure(archive* a, const std::string& context) {
  const char* detail = archive_error_string(a);
  return Error{ErrorCode::internal, "tar: " + context + ": " +
                                        (detail != nullptr ? detail : "unknown libarchive error")};
}

}  // namespace

Result<std::string> make_tar(const std::vector<TarEntry>& entries,
                             std::chrono::system_clock::time_point mtime) {
  // Validate everything first so a bad name costs no archive work.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string_view problem = name_problem(entries[i].name);
    if (!problem.empty()) {
      return Error{ErrorCode::invalid_parameter, "tar entry " + std::to_string(i) + " name \"" +
                                                     printable(entries[i].name) + "\" " +
                                                     std::string(problem)};
    }
  }

  const Utf8LocaleScope utf8_locale;
  // Declared before the archive: archive_write_free may still flush into it.
  std::string out;
  std::size_t estimate = 10240;  // libarchive pads the archive to 10 KiB blocks
  for (const TarEntry& item : entries) estimate += item.bytes.size() + 1536;  // + headers
  out.reserve(estimate);
  ArchivePtr a(archive_write_new());
  EntryPtr entry(archive_entry_new());
  if (!a || !entry) return Error{ErrorCode::internal, "tar: cannot allocate libarchive objects"};
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK) {
    return archive_failure(a.get(), "set format");
  }
  if (archive_write_open(a.get(), &out, nullptr, append_block, nullptr) != ARCHIVE_OK) {
    return archive_failure(a.get(), "open");
  }

  const auto since_epoch = mtime.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);  // nanos >= 0
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds);

  for (const TarEntry& item : entries) {
    archive_entry_clear(entry.get());
    // The multibyte setter keeps the bytes as given. (The _utf8 setter would
    // make libarchive 3.6 crash on names it cannot convert back.) Names that
    // are not valid UTF-8 are still written, raw, with hdrcharset=BINARY,
    // and the header call returns ARCHIVE_WARN for them.
    archive_entry_set_pathname(entry.get(), item.name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(item.bytes.size()));
    archive_entry_set_mtime(entry.get(), static_cast<time_t>(seconds.count()),
                            static_cast<long>(nanos.count()));
    if (archive_write_header(a.get(), entry.get()) < ARCHIVE_WARN) {
      return archive_failure(a.get(), "header for \"" + printable(item.name) + "\"");
    }
    // archive_write_data may accept less than asked; loop until all is in.
    std::size_t written = 0;
    while (written < item.bytes.size()) {
      const la_ssize_t n =
          archive_write_data(a.get(), item.bytes.data() + written, item.bytes.size() - written);
      if (n <= 0) return archive_failure(a.get(), "data for \"" + printable(item.name) + "\"");
      written += static_cast<std::size_t>(n);
    }
  }
  // Close writes the end-of-archive blocks; only then is `out` complete.
  if (archive_write_close(a.get()) != ARCHIVE_OK) return archive_failure(a.get(), "close");
  return out;
}

}  // namespace pixpool
