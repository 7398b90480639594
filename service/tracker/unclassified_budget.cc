#include "service/tracker/unclassified_budget.h"

namespace tasktrail {

std::string UnclassifiedBudget::Admit(int64_t unix_minute,
                                      absl::string_view model,
                                      absl::string_view message) {
  absl::MutexLock lock(&mutex_);
  // Forget the minutes further than one from this one (a clock that jumped
  // back leaves nothing behind either).
  for (auto it = admitted_.begin(); it != admitted_.end();) {
    if (it->first < unix_minute - 1 || it->first > unix_minute + 1) {
      it = admitted_.erase(it);
    } else {
      ++it;
    }
  }
  absl::flat_hash_set<std::string>& messages =
      admitted_[unix_minute][std::string(model)];
  if (messages.contains(message)) return std::string(message);
  if (static_cast<int>(messages.size()) >= max_per_minute_) {
    return std::string(kOtherUnclassifiedMessages);
  }
  messages.emplace(message);
  return std::string(message);
}

}  // namespace tasktrail
