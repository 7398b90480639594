// Fuzzes ReadQueueFacts (and through it ForEachWireField) with arbitrary
// bytes, as a corrupt or foreign snapshot read back from RocksDB would be:
// it must never read out of bounds, and whenever protobuf's own parser
// accepts the bytes as a v1::Task, the facts must be read and be exactly
// those of the parsed task.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "service/rules/queue_verdict.h"
#include "tasktrail/v1/task.pb.h"

namespace {

// Stops the run with a crash libFuzzer records (an invariant was broken).
void Check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view snapshot(reinterpret_cast<const char*>(data), size);
  const absl::optional<tasktrail::QueueFacts> facts =
      tasktrail::ReadQueueFacts(snapshot);
  tasktrail::v1::Task task;
  if (task.ParseFromArray(data, static_cast<int>(size))) {
    Check(facts.has_value());
    Check(*facts == tasktrail::QueueFactsOf(task));
  }
  return 0;
}
