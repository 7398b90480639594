#include "store/postgres/pg_write.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/postgres/pg_values.h"

namespace tasktrail::store::postgres {

int NextCounterShard() {
  static std::atomic<uint32_t> next{std::random_device{}()};
  return static_cast<int>(next.fetch_add(1, std::memory_order_relaxed) %
                          kCounterShards);
}

Statement CounterAddsStatement(absl::Span<const CounterAdd> adds, int shard) {
  std::map<std::tuple<int64_t, std::string, std::string>, int64_t> sums;
  for (const CounterAdd& add : adds) {
    sums[{add.unix_minute, add.model, add.name}] += add.delta;
  }
  Statement statement;
  statement.params.push_back(Text(shard));
  std::string rows;
  for (const auto& [counter, delta] : sums) {
    const auto& [minute, model, name] = counter;
    const size_t first = statement.params.size() + 1;
    absl::StrAppend(&rows, rows.empty() ? "" : ", ", "($", first, ", $",
                    first + 1, ", $", first + 2, ", $", first + 3, ", $1)");
    statement.params.push_back(Text(minute));
    statement.params.push_back(model);
    statement.params.push_back(name);
    statement.params.push_back(Text(delta));
  }
  statement.sql = absl::StrCat(
      "INSERT INTO tasktrail.stats_counters AS c (unix_minute, model, name, "
      "value, shard) VALUES ",
      rows,
      " ON CONFLICT (unix_minute, model, name, shard) "
      "DO UPDATE SET value = c.value + excluded.value");
  return statement;
}

void PgWrite::AddCounter(CounterAdd add) {
  if (!counters_in_order_) {
    counter_adds.push_back(std::move(add));
    return;
  }
  statements.push_back(CounterAddsStatement({add}, in_order_shard_));
}

void PgWrite::KeepCountersInOrder() {
  if (counters_in_order_) return;
  counters_in_order_ = true;
  in_order_shard_ = NextCounterShard();
  if (counter_adds.empty()) return;
  statements.push_back(CounterAddsStatement(counter_adds, in_order_shard_));
  counter_adds.clear();
}

}  // namespace tasktrail::store::postgres
