#include "pipeline/result_store.hpp"

// STUB: to be implemented (issue 4, result store).
namespace pixpool {
struct ResultStore::State {};
ResultStore::ResultStore(ResultStoreOptions) : state_(std::make_unique<State>()) {}
ResultStore::~ResultStore() = default;
std::optional<std::string> ResultStore::put(StoredResult) { return std::nullopt; }
std::shared_ptr<const StoredResult> ResultStore::get(const std::string&) const { return nullptr; }
ResultStore::Stats ResultStore::stats() const { return {}; }
std::string random_id() { return "0"; }
}  // namespace pixpool
