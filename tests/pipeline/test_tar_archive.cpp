// make_tar: archives read back with libarchive's reader and with the system
// tar; name validation.
#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pipeline/tar_archive.hpp"

namespace {

using pixpool::ErrorCode;
using pixpool::make_tar;
using pixpool::TarEntry;

struct ReadEntry {
  std::string name;
  std::string bytes;
  la_int64_t size = 0;
  unsigned mode = 0;  // file type and permission bits
  time_t mtime = 0;
};

// Every entry of a tar archive in memory, or a failed CHECK.
std::vector<ReadEntry> read_tar(const std::string& tar) {
  std::vector<ReadEntry> entries;
  archive* a = archive_read_new();
  REQUIRE(a != nullptr);
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_memory(a, tar.data(), tar.size()) == ARCHIVE_OK);
  archive_entry* entry = nullptr;
  int rc = ARCHIVE_OK;
  // ARCHIVE_WARN: a UTF-8 name that the test's "C" locale cannot show; the
  // entry is fine and the _utf8 getter below still has the name.
  while ((rc = archive_read_next_header(a, &entry)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    ReadEntry e;
    const char* utf8 = archive_entry_pathname_utf8(entry);
    e.name = utf8 != nullptr ? utf8 : archive_entry_pathname(entry);
    e.size = archive_entry_size(entry);
    e.mode = archive_entry_mode(entry);
    e.mtime = archive_entry_mtime(entry);
    char buffer[64 * 1024];
    la_ssize_t n = 0;
    while ((n = archive_read_data(a, buffer, sizeof buffer)) > 0) {
      e.bytes.append(buffer, static_cast<std::size_t>(n));
    }
    CHECK(n == 0);
    entries.push_back(std::move(e));
  }
  const char* error = archive_error_string(a);
  CHECK_MESSAGE(rc == ARCHIVE_EOF, std::string(error != nullptr ? error : ""));
  archive_read_free(a);
  return entries;
}

std::string tar_or_fail(
    const std::vector<TarEntry>& entries,
    std::chrono::system_clock::time_point mtime = std::chrono::system_clock::now()) {
  auto tar = make_tar(entries, mtime);
  REQUIRE_MESSAGE(tar.ok(), tar.error().message);
  return std::move(tar).value();
}

// Writes `tar` to a temp file and returns `tar -tvf` output; `status` gets
// tar's exit status.
std::string system_tar_listing(const std::string& tar, int& status) {
  char path[] = "/tmp/pixpool-test-tar-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, tar.data(), tar.size()) == static_cast<ssize_t>(tar.size()));
  close(fd);
  const std::string command = std::string("LC_ALL=C.UTF-8 tar -tvf ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int wait_status = pclose(pipe);
  status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
  unlink(path);
  return output;
}

}  // namespace

TEST_CASE("tar: entries read back in order with names, sizes, contents, mode and mtime") {
  const auto mtime = std::chrono::system_clock::from_time_t(1700000000);
  const std::vector<TarEntry> input = {
      {"0001-photo.jpg", "jpeg bytes"},
      {"a/b.png", "png bytes, in a subdirectory"},
      {"empty.bin", ""},
      {"0000-last-but-sorts-first.jpg", "order is kept, not sorted"},
  };
  const std::string tar = tar_or_fail(input, mtime);
  CHECK(tar.size() % 512 == 0);

  const auto entries = read_tar(tar);
  REQUIRE(entries.size() == input.size());
  for (std::size_t i = 0; i < input.size(); ++i) {
    CAPTURE(i);
    CHECK(entries[i].name == input[i].name);
    CHECK(entries[i].size == static_cast<la_int64_t>(input[i].bytes.size()));
    CHECK(entries[i].bytes == input[i].bytes);
    CHECK(entries[i].mode == (AE_IFREG | 0644));
    CHECK(entries[i].mtime == 1700000000);
  }
}

TEST_CASE("tar: an mtime before the epoch is kept to the second") {
  const auto mtime =
      std::chrono::system_clock::from_time_t(-86400) + std::chrono::milliseconds(500);
  const auto entries = read_tar(tar_or_fail({{"old.jpg", "x"}}, mtime));
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].mtime == -86400);
}

TEST_CASE("tar: a 5 MB entry and binary bytes with NULs survive intact") {
  std::string big(static_cast<std::size_t>(5) * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919 + 13) % 251);
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  binary += std::string(1000, '\0');
  binary += "tail";

  const std::string tar = tar_or_fail({{"big.raw", big}, {"binary.bin", binary}});
  CHECK(tar.size() > big.size());
  const auto entries = read_tar(tar);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].name == "big.raw");
  CHECK(entries[0].size == static_cast<la_int64_t>(big.size()));
  CHECK(entries[0].bytes == big);
  CHECK(entries[1].name == "binary.bin");
  CHECK(entries[1].bytes.size() == binary.size());
  CHECK(entries[1].bytes == binary);
}

TEST_CASE("tar: long and non-ASCII names use pax headers and read back whole") {
  const std::string long_name =
      "dir/" + std::string(150, 'x') + "/" + std::string(120, 'y') + ".jpg";
  const std::string utf8_name = "\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe-\xe5\x86\x99\xe7\x9c\x9f.jpg";
  const std::string tar = tar_or_fail({{long_name, "long"}, {utf8_name, "utf8"}});
  const auto entries = read_tar(tar);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].name == long_name);
  CHECK(entries[0].bytes == "long");
  CHECK(entries[1].name == utf8_name);
  CHECK(entries[1].bytes == "utf8");

  // Plain UTF-8 pax paths: GNU tar shows the name and warns about nothing
  // (a "C"-locale fallback would add hdrcharset=BINARY, which it ignores).
  int status = -1;
  const std::string listing = system_tar_listing(tar, status);
  INFO("tar -tvf output:\n" << listing);
  CHECK(status == 0);
  CHECK(listing.find(utf8_name) != std::string::npos);
  CHECK(listing.find(long_name) != std::string::npos);
  CHECK(listing.find("hdrcharset") == std::string::npos);
}

TEST_CASE("tar: a name that is not valid UTF-8 is still written, byte for byte") {
  const std::string name = "bad\xff\xfe.jpg";
  const std::string tar = tar_or_fail({{name, "raw"}, {"next.jpg", "after"}});
  const auto entries = read_tar(tar);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].name == name);
  CHECK(entries[0].bytes == "raw");
  CHECK(entries[1].name == "next.jpg");
}

TEST_CASE("tar: an empty list gives a valid archive with no entries") {
  const std::string tar = tar_or_fail({});
  CHECK_FALSE(tar.empty());  // the end-of-archive blocks
  CHECK(read_tar(tar).empty());
  int status = -1;
  const std::string listing = system_tar_listing(tar, status);
  CHECK(status == 0);
  CHECK(listing.empty());
}

TEST_CASE("tar: the system tar lists the archive") {
  const std::string tar =
      tar_or_fail({{"0001-photo.jpg", std::string(1234, 'p')}, {"a/b.png", "png"}});
  int status = -1;
  const std::string listing = system_tar_listing(tar, status);
  INFO("tar -tvf output:\n" << listing);
  CHECK(status == 0);
  const auto first = listing.find("0001-photo.jpg");
  const auto second = listing.find("a/b.png");
  CHECK(first != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(first < second);
  CHECK(listing.find("-rw-r--r--") == 0);
  CHECK(listing.find(" 1234 ") != std::string::npos);
}

TEST_CASE("tar: names are validated and the offending entry is named") {
  const std::vector<std::string> bad = {
      "",          "/abs.jpg",
      "/",         "..",
      "../up.jpg", "a/../../b.jpg",
      "a/..",      "a//b.jpg",
      "dir/",      std::string("nul\0byte.jpg", 12),
  };
  for (const std::string& name : bad) {
    CAPTURE(name);
    const auto tar = make_tar({{"ok.jpg", "fine"}, {name, "bytes"}});
    REQUIRE_FALSE(tar.ok());
    CHECK(tar.error().code == ErrorCode::invalid_parameter);
    CHECK(tar.error().message.find("entry 1") != std::string::npos);
  }
  const auto nul = make_tar({{std::string("nul\0byte.jpg", 12), "x"}});
  REQUIRE_FALSE(nul.ok());
  CHECK(nul.error().message.find("nul\\0byte.jpg") != std::string::npos);
  const auto absolute = make_tar({{"/etc/passwd", "x"}});
  REQUIRE_FALSE(absolute.ok());
  CHECK(absolute.error().message.find("/etc/passwd") != std::string::npos);

  // Dots that are not a ".." component are ordinary names.
  const std::string tar = tar_or_fail({{"..hidden", "1"}, {"a..b.jpg", "2"}, {"./c.jpg", "3"}});
  const auto entries = read_tar(tar);
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].name == "..hidden");
  CHECK(entries[1].name == "a..b.jpg");
}
