#include "corio/http/response.hpp"

#include "corio/http/headers.hpp"

namespace corio::http {

void Response::header(std::string_view name, std::string_view value) {
  if (!is_token(name)) {
    throw std::invalid_argument("http: header name \"" + std::string(name) + "\" is not a token");
  }
  if (value.find_first_of("\r\n") != std::string_view::npos || value.find('\0') != std::string_view::npos) {
    throw std::invalid_argument("http: the value of header " + std::string(name) + " holds CR, LF or NUL");
  }
  headers_.append(name).append(": ").append(value).append("\r\n");
}

task<net::Result<void>> Response::write(std::string_view data) {
  if (sink_ == nullptr) throw std::logic_error("http: Response::write outside a handler");
  streaming_ = true;
  co_return co_await sink_->send_chunk(data);
}

void Response::reset(detail::BodySink* sink) noexcept {
  status = 200;
  content_type = "text/plain";
  body.clear();
  headers_.clear();
  sink_ = sink;
  streaming_ = false;
  length_.reset();
}

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace corio::http
