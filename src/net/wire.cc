#include "net/internal.h"

namespace aigis::net {
namespace {

bool IsTokenChar(unsigned char c) {
  return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c));
}

bool SafeHeader(const Header& h) {
  if (h.name.empty()) return false;
  for (unsigned char c : h.name) {
    if (!IsTokenChar(c)) return false;
  }
  for (unsigned char c : h.value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return !EqualsIgnoreCase(h.name, "content-length") && !EqualsIgnoreCase(h.name, "transfer-encoding") &&
         !EqualsIgnoreCase(h.name, "connection");
}

}  // namespace

void AppendHeaders(std::string& out, const Headers& headers) {
  for (const auto& h : headers) {
    if (!SafeHeader(h)) continue;
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
}

std::string ResponseHead(int status, const Headers& headers, bool keep_alive, std::optional<uint64_t> content_length) {
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
  out.append(http::obsolete_reason(static_cast<http::status>(status))).append("\r\n");
  AppendHeaders(out, headers);
  if (content_length) out.append("Content-Length: ").append(std::to_string(*content_length)).append("\r\n");
  else out.append("Transfer-Encoding: chunked\r\n");
  if (!keep_alive) out.append("Connection: close\r\n");
  out.append("\r\n");
  return out;
}

std::string RequestHead(std::string_view method, std::string_view target, std::string_view host,
                        const Headers& headers, uint64_t content_length) {
  std::string out;
  out.reserve(512);
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(host).append("\r\n");
  AppendHeaders(out, headers);
  if (content_length > 0 || method == "POST" || method == "PUT" || method == "PATCH") {
    out.append("Content-Length: ").append(std::to_string(content_length)).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

}  // namespace aigis::net
