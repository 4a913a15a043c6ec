// ZeRO-1 partition and weight broadcast; see zero1.h. Per-parameter broadcasts keep no extra copy
// of the model (a d20 has ~120 tensors, so the message count stays small).
#include "dist/zero1.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace kiln::dist {

std::vector<int> partition_params(const std::vector<int64_t>& numels, int world) {
  if (world < 1) throw Error("[dist] partition_params: world must be >= 1, got " + std::to_string(world));
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  std::vector<int> owner(numels.size(), 0);
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[static_cast<size_t>(r)] += numels[i];
  }
  return owner;
}

std::vector<int64_t> owned_elements(const std::vector<int64_t>& numels, const std::vector<int>& owner, int world) {
  std::vector<int64_t> out(static_cast<size_t>(world), 0);
  for (size_t i = 0; i < numels.size(); ++i) out.at(static_cast<size_t>(owner.at(i))) += numels[i];
  return out;
}

Ownership::Ownership(const torch::OrderedDict<std::string, torch::Tensor>& named_params, int rank, int world)
    : rank_(rank) {
  std::vector<int64_t> numels;
  for (const auto& p : named_params) {
    index_[p.key()] = numels.size();
    numels.push_back(p.value().numel());
  }
  owner_ = partition_params(numels, world);
}

bool Ownership::owns(const std::string& name) const {
  if (!sharded()) return true;
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("[dist] ZeRO-1: the model has no parameter '" + name + "'");
  return owns(it->second);
}

void broadcast_from_owners(const std::vector<torch::Tensor>& params, const std::vector<int>& owner, Comm& comm) {
  TORCH_CHECK(params.size() == owner.size(), "broadcast_from_owners: ", owner.size(), " owners for ", params.size(),
              " parameters");
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params.size(); ++i) {
    torch::Tensor t = params[i];  // shares storage: the broadcast writes the parameter itself
    comm.broadcast(t, owner[i]);
  }
}

}  // namespace kiln::dist
