#include "store/postgres/pg_write.h"

#include <atomic>
#include <cstdint>
#include <random>

namespace tasktrail::store::postgres {

int NextCounterShard() {
  static std::atomic<uint32_t> next{std::random_device{}()};
  return static_cast<int>(next.fetch_add(1, std::memory_order_relaxed) %
                          kCounterShards);
}

}  // namespace tasktrail::store::postgres
