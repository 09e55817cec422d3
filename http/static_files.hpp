// static_files(root): a handler serving GET and HEAD of the files under `root` (a directory), for a route
// prefix: the rest of the request path, percent-decoded, names the file; a directory serves its
// index.html. Content-Type by extension, an ETag (size and modification time) honoured in If-None-Match
// (304), bodies read through the reactor (io_uring reads; on epoll, non-blocking reads where the pages are
// cached) and sent as they are read. No path escapes the root: ".." segments, NUL, and symlinks that lead
// outside it (the kernel's RESOLVE_BENEATH) are 404, as are missing files; other methods are 405.
//   routes.prefix("GET", "/static/", http::static_files("/srv/www", "/static/"));
#pragma once
#include <string>
#include <string_view>

#include "corio/http/server.hpp"

namespace corio::http {

// Throws std::system_error if `root` cannot be opened as a directory.
Handler static_files(const std::string& root, std::string_view route_prefix = "/");

// The Content-Type for a file name's extension ("application/octet-stream" when unknown).
std::string_view content_type_for(std::string_view name) noexcept;

}  // namespace corio::http
