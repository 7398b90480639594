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
  std::vector<int64_t> minutes;
  std::vector<std::string> models;
  std::vector<std::string> names;
  std::vector<int64_t> deltas;
  for (const auto& [counter, delta] : sums) {
    const auto& [minute, model, name] = counter;
    minutes.push_back(minute);
    models.push_back(model);
    names.push_back(name);
    deltas.push_back(delta);
  }
  // One text for any number of counters (prepared once per connection);
  // rows in key order, so that concurrent batches lock shared rows in the
  // same order.
  Statement statement;
  statement.sql =
      "INSERT INTO tasktrail.stats_counters AS c (unix_minute, model, name, "
      "value, shard) SELECT a.minute, a.model, a.name, a.delta, $1 "
      "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[]) "
      "WITH ORDINALITY AS a(minute, model, name, delta, i) ORDER BY a.i "
      "ON CONFLICT (unix_minute, model, name, shard) "
      "DO UPDATE SET value = c.value + excluded.value";
  statement.params = {Text(shard), IntArray(minutes), TextArray(models),
                      TextArray(names), IntArray(deltas)};
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
