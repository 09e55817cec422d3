#include "corio/http/static_files.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <system_error>
#include <utility>

#include "corio/runtime/read.hpp"

namespace corio::http {

namespace {

constexpr std::size_t kWholeBody = std::size_t{64} * 1024;  // up to this, one read and one response; larger: streamed
constexpr std::size_t kChunk = std::size_t{64} * 1024;

struct Fd {
  int fd = -1;
  explicit Fd(int f) noexcept : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

// Percent-decodes `path` and checks each segment: false for NUL, "..", or a malformed escape.
bool decode_path(std::string_view path, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) return false;
      const int hi = hex_digit(path[i + 1]), lo = hex_digit(path[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out.push_back(c);
  }
  std::string_view rest = out;
  while (!rest.empty()) {
    const std::size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    if (segment == "..") return false;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return true;
}

// Opens `relative` beneath `root`: the kernel refuses any resolution that leaves it (.., absolute
// symlinks, symlinks that climb out), and magic links.
int open_beneath(int root, const std::string& relative) noexcept {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const char* name = relative.empty() ? "." : relative.c_str();
  return static_cast<int>(::syscall(SYS_openat2, root, name, &how, sizeof how));
}

std::string etag_of(const struct stat& st) {
  char buf[64];
  const auto mtime = static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1'000'000'000ull +
                     static_cast<unsigned long long>(st.st_mtim.tv_nsec);
  int n = std::snprintf(buf, sizeof buf, "\"%llx-%llx\"", static_cast<unsigned long long>(st.st_size), mtime);
  return std::string(buf, static_cast<std::size_t>(n));
}

// If-None-Match: "*", or a list that holds this tag (weak comparison).
bool matches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    const std::size_t comma = if_none_match.find(',');
    std::string_view tag = if_none_match.substr(0, comma);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

void not_found(Response& res) {
  res.status = 404;
  res.body = "not found\n";
}

struct Root {
  Root(int f, std::string_view p) : fd(f), prefix(p) {}
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;
  ~Root() { ::close(fd); }
  int fd;
  std::string prefix;
};

task<void> serve_file(const Root& root, Request& req, Response& res) {
  if (req.method != "GET" && req.method != "HEAD") {
    res.status = 405;
    res.header("Allow", "GET, HEAD");
    res.body = "method not allowed\n";
    co_return;
  }
  std::string relative;
  std::string_view path = req.path.substr(std::min(req.path.size(), root.prefix.size()));
  while (path.starts_with('/')) path.remove_prefix(1);
  if (!decode_path(path, relative)) co_return not_found(res);
  Fd file(open_beneath(root.fd, relative));
  if (file.fd < 0) co_return not_found(res);
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) co_return not_found(res);
  if (S_ISDIR(st.st_mode)) {
    Fd index(::openat(file.fd, "index.html", O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (index.fd < 0 || ::fstat(index.fd, &st) != 0 || !S_ISREG(st.st_mode)) co_return not_found(res);
    std::swap(file.fd, index.fd);
    relative = "index.html";
  }
  if (!S_ISREG(st.st_mode)) co_return not_found(res);
  const std::string etag = etag_of(st);
  res.header("ETag", etag);
  res.content_type = content_type_for(relative);
  if (std::string_view inm = req.headers.get("if-none-match"); !inm.empty() && matches(inm, etag)) {
    res.status = 304;
    co_return;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (req.method == "HEAD") {
    res.stream_length(size);
    (void)co_await res.write({});
    co_return;
  }
  if (size <= kWholeBody) {
    res.body.resize(size);
    std::size_t have = 0;
    while (have < size) {
      const int n = co_await corio::read(file.fd, std::span(res.body).subspan(have));
      if (n <= 0) throw std::system_error(n < 0 ? -n : EIO, std::generic_category(), "http: reading " + relative);
      have += static_cast<std::size_t>(n);
    }
    co_return;
  }
  res.stream_length(size);
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (std::uint64_t sent = 0; sent < size;) {
    const int n = co_await corio::read(file.fd, std::span(buf.get(), static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - sent))));
    if (n <= 0) throw std::system_error(n < 0 ? -n : EIO, std::generic_category(), "http: reading " + relative);
    if (!co_await res.write(std::string_view(buf.get(), static_cast<std::size_t>(n)))) co_return;
    sent += static_cast<std::uint64_t>(n);
  }
}

}  // namespace

std::string_view content_type_for(std::string_view name) noexcept {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 22> kTypes{{
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"}, {".md", "text/markdown; charset=utf-8"},
      {".xml", "application/xml"},           {".svg", "image/svg+xml"},
      {".png", "image/png"},                 {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},               {".gif", "image/gif"},
      {".webp", "image/webp"},               {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},         {".pdf", "application/pdf"},
      {".mp4", "video/mp4"},                 {".woff2", "font/woff2"},
      {".gz", "application/gzip"},           {".zip", "application/zip"},
  }};
  const std::size_t dot = name.rfind('.');
  if (dot != std::string_view::npos && name.find('/', dot) == std::string_view::npos) {
    const std::string_view ext = name.substr(dot);
    for (const auto& [e, type] : kTypes) {
      if (equals_ignore_case(e, ext)) return type;
    }
  }
  return "application/octet-stream";
}

Handler static_files(const std::string& root, std::string_view route_prefix) {
  const int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "http: static files root " + root);
  auto r = std::make_shared<Root>(fd, route_prefix);
  return [r](Request& req, Response& res) { return serve_file(*r, req, res); };
}

}  // namespace corio::http
