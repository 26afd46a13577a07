#include "net/net.h"

namespace aigis::net {

bool SseParser::NextEvent(SseEvent& ev) {
  const std::string& b = buffer_;
  size_t pos = scan_ < consumed_ ? consumed_ : scan_;
  while (true) {
    size_t eol = b.find_first_of("\r\n", pos);
    if (eol == std::string::npos) {
      scan_ = pos;
      return false;
    }
    size_t next = eol + 1;
    if (b[eol] == '\r') {
      if (eol + 1 == b.size()) {  // "\r" may still become "\r\n"
        scan_ = pos;
        return false;
      }
      if (b[eol + 1] == '\n') next = eol + 2;
    }
    if (eol != pos) {
      pos = next;
      continue;
    }
    // An empty line ends the event that started at consumed_.
    ev.event = {};
    ev.id = {};
    ev.data.clear();
    size_t line = consumed_;
    while (line < pos) {
      size_t end = b.find_first_of("\r\n", line);
      std::string_view l(b.data() + line, end - line);
      line = end + ((b[end] == '\r' && end + 1 < b.size() && b[end + 1] == '\n') ? 2 : 1);
      if (l.empty() || l.front() == ':') continue;  // comment
      size_t colon = l.find(':');
      std::string_view field = l.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (field == "data") {
        ev.data.append(value);
        ev.data.push_back('\n');
      } else if (field == "event") {
        ev.event = value;
      } else if (field == "id") {
        ev.id = value;
      }
    }
    if (!ev.data.empty()) ev.data.pop_back();
    ev.raw = std::string_view(b.data() + consumed_, next - consumed_);
    consumed_ = scan_ = next;
    return true;
  }
}

void SseParser::Compact() {
  if (consumed_ == 0) return;
  if (consumed_ == buffer_.size() || consumed_ > 64 * 1024) {
    buffer_.erase(0, consumed_);
    scan_ -= consumed_;
    consumed_ = 0;
  }
}

}  // namespace aigis::net
