// Start-up helpers: the compiled-in default model, tuple strings, and the
// store the gateway's authorize stage checks against.
#include <fmt/format.h>

#include <algorithm>

#include "authz/authz.h"
#include "authz/engine_internal.h"

namespace aigis::authz {

Result<TupleKey> ParseTupleString(std::string_view text) {
  size_t hash = text.find('#');
  size_t at = hash == std::string_view::npos ? hash : text.find('@', hash);
  if (at == std::string_view::npos) {
    return InvalidArgument(fmt::format("'{}' is not a tuple: write object#relation@user", text.substr(0, 200)));
  }
  TupleKey t;
  t.object = std::string(text.substr(0, hash));
  t.relation = std::string(text.substr(hash + 1, at - hash - 1));
  t.user = std::string(text.substr(at + 1));
  if (!internal::ParseObject(t.object) || t.relation.empty() || !internal::ParseUser(t.user)) {
    return InvalidArgument(fmt::format("'{}' is not a tuple: write object#relation@user", text.substr(0, 200)));
  }
  return t;
}

Result<std::string> EnsureStore(Service& service, const std::string& tenant, const std::string& name,
                                std::string_view model_dsl, const std::vector<std::string>& seed_tuples) {
  std::vector<ModelError> errors;
  auto wanted = ParseDsl(model_dsl, &errors);
  if (!wanted.ok()) {
    std::string where = errors.empty() ? "" : fmt::format(" (line {}, column {})", errors[0].line, errors[0].column);
    return InvalidArgument(fmt::format("authorization model: {}{}", wanted.status().message(), where));
  }
  std::string wanted_json = ToJson(*wanted);

  std::string store_id;
  if (auto found = service.FindStoreByName(tenant, name); found.ok()) {
    store_id = found->id;
  } else {
    ASSIGN_OR_RETURN(StoreInfo created, service.CreateStore(tenant, name));
    store_id = created.id;
  }
  auto latest = service.GetModel(tenant, store_id, "");
  if (!latest.ok() || ToJson(latest->engine->model()) != wanted_json) {
    RETURN_IF_ERROR(service.WriteModel(tenant, store_id, wanted_json).status());
  }
  if (seed_tuples.empty()) return store_id;
  ASSIGN_OR_RETURN(StoreView view, service.View(tenant, store_id, ""));
  std::vector<TupleKey> missing;
  for (const auto& text : seed_tuples) {
    ASSIGN_OR_RETURN(TupleKey t, ParseTupleString(text));
    bool dup = std::any_of(missing.begin(), missing.end(), [&](const TupleKey& m) { return m == t; });
    if (!dup && !view.tuples.Contains(t)) missing.push_back(std::move(t));
  }
  if (!missing.empty()) RETURN_IF_ERROR(service.Write(tenant, store_id, "", missing, {}));
  return store_id;
}

}  // namespace aigis::authz
