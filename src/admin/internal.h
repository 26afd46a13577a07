// Private to src/admin: helpers admin.cc defines and audit.cc uses (the
// admin API's conventions: bearer token, tenant, query parameters, JSON
// errors). Nothing outside this folder includes this file.
#pragma once

#include <boost/json/value.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/admin.h"

namespace aigis::admin::internal {

std::string Printable(std::string_view s, size_t max);
gateway::HttpResponse JsonResponse(int status, const boost::json::value& v);
gateway::HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);
gateway::HttpResponse ErrorResponse(const Status& st);
gateway::HttpResponse Unauthorized(std::string_view message);
gateway::HttpResponse MethodNotAllowed(std::string_view method, std::string_view allow);
gateway::HttpResponse NoRoute(std::string_view path);

struct Query {
  std::vector<std::pair<std::string, std::string>> items;
  const std::string* Find(std::string_view key) const;
  std::string Get(std::string_view key) const;
  // Every parameter must be one of `allowed` (or "tenant").
  Status Only(std::initializer_list<std::string_view> allowed) const;
};
Result<Query> ParseQuery(std::string_view text);
Result<std::string> ResolveTenant(const gateway::HttpRequest& req, const Query& q);
bool Authorized(const AdminOptions& opt, const gateway::HttpRequest& req, std::string* why);

}  // namespace aigis::admin::internal
