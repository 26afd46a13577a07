// aigis_fake_mcp_server: an MCP server over Streamable HTTP that answers at
// once and depends on no MCP SDK, the upstream of bench/mcp/run.sh (both
// through aigis and directly). It speaks just enough: initialize (with an
// Mcp-Session-Id), notifications (202), tools/list (one tool, echo),
// tools/call (echo's text back), DELETE. Prints its port, runs until
// SIGTERM/SIGINT. Listens on 127.0.0.1 only.
#include <boost/json.hpp>
#include <csignal>
#include <cstdio>

#include "net/net.h"

namespace json = boost::json;
using aigis::net::Request;
using aigis::net::Response;
using aigis::net::ResponseWriter;
using aigis::net::Task;

namespace {

json::object Answer(const std::string& method, const json::object& params) {
  if (method == "initialize") {
    const auto* v = params.if_contains("protocolVersion");
    return {{"protocolVersion", v && v->is_string() ? v->get_string() : json::string("2025-06-18")},
            {"capabilities", {{"tools", json::object()}}},
            {"serverInfo", {{"name", "fake"}, {"version", "1"}}}};
  }
  if (method == "tools/list") {
    return {{"tools", json::array{json::object{
                          {"name", "echo"},
                          {"description", "Echoes the text back."},
                          {"inputSchema", {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}}}}}}};
  }
  if (method == "tools/call") {
    std::string text;
    if (const auto* a = params.if_contains("arguments"); a && a->is_object()) {
      if (const auto* t = a->get_object().if_contains("text"); t && t->is_string()) text = t->get_string().c_str();
    }
    return {{"content", json::array{json::object{{"type", "text"}, {"text", text}}}}};
  }
  return {};
}

Task<void> Handle(Request& req, ResponseWriter& w) {
  Response r;
  r.headers.Add("Content-Type", "application/json");
  std::error_code ec;
  json::value v = req.method == "POST" ? json::parse(req.body, ec) : json::value();
  const json::object* msg = v.if_object();
  if (req.method == "DELETE") {
    r.status = 200;
  } else if (ec || msg == nullptr) {
    r.status = 400;
    r.body = R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})";
  } else if (!msg->contains("id")) {
    r.status = 202;
  } else {
    std::string method = msg->contains("method") ? std::string(msg->at("method").as_string().c_str()) : "";
    json::object params = msg->contains("params") && msg->at("params").is_object() ? msg->at("params").get_object() : json::object();
    json::object out{{"jsonrpc", "2.0"}, {"id", msg->at("id")}};
    if (method == "initialize" || method == "tools/list" || method == "tools/call" || method == "ping") {
      out["result"] = Answer(method, params);
      if (method == "initialize") r.headers.Add("Mcp-Session-Id", "fake-session");
    } else {
      out["error"] = json::object{{"code", -32601}, {"message", "Method not found"}};
    }
    r.body = json::serialize(out);
  }
  co_await w.Send(std::move(r));
}

}  // namespace

int main() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  aigis::net::IoPool pool(1);
  aigis::net::ServerOptions o;
  o.name = "fake-mcp";
  o.host = "127.0.0.1";
  o.port = 0;
  aigis::net::Server server(pool, o, Handle);
  auto port = server.Listen();
  if (!port.ok()) {
    std::fprintf(stderr, "listen: %s\n", port.status().message().c_str());
    return 1;
  }
  pool.Start();
  std::printf("%u\n", static_cast<unsigned>(*port));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server.CloseAll();
  pool.Stop();
  return 0;
}
