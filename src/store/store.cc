// Backend-independent helpers of the store interface: Row accessors and
// Session::QueryOne.
#include "store/store.h"

#include <utility>

namespace aigis::store {
namespace {

// Text() returns a reference, so NULL and wrong-typed cells need a string that
// outlives every row.
const std::string& EmptyString() {
  static const std::string kEmpty;
  return kEmpty;
}

// SQLite types values per cell, not per column: an integral result of an
// arithmetic expression on a REAL column can come back as INTEGER. Widening it
// is exact for the magnitudes we store, so Real accepts both.
double AsReal(const Value& value, double fallback) {
  if (const auto* v = std::get_if<double>(&value)) return *v;
  if (const auto* v = std::get_if<int64_t>(&value)) return static_cast<double>(*v);
  return fallback;
}

}  // namespace

// An index past the end reads as NULL: accessors never throw or crash on a
// caller's mismatched SELECT list.
bool Row::IsNull(size_t i) const {
  return i >= values.size() || std::holds_alternative<std::nullptr_t>(values[i]);
}

int64_t Row::Int(size_t i, int64_t fallback) const {
  if (i >= values.size()) return fallback;
  if (const auto* v = std::get_if<int64_t>(&values[i])) return *v;
  return fallback;
}

double Row::Real(size_t i, double fallback) const {
  if (i >= values.size()) return fallback;
  return AsReal(values[i], fallback);
}

const std::string& Row::Text(size_t i) const {
  if (i >= values.size()) return EmptyString();
  if (const auto* v = std::get_if<std::string>(&values[i])) return *v;
  if (const auto* v = std::get_if<Blob>(&values[i])) return v->bytes;
  return EmptyString();
}

// Reads every row and keeps the first: backends stay one virtual call wide.
// Callers that may match many rows add LIMIT 1.
Result<std::optional<Row>> Session::QueryOne(std::string_view sql, const std::vector<Value>& params) {
  ASSIGN_OR_RETURN(std::vector<Row> rows, Query(sql, params));
  if (rows.empty()) return std::optional<Row>();
  return std::optional<Row>(std::move(rows.front()));
}

}  // namespace aigis::store
