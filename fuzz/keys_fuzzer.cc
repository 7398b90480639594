// Fuzzes the key and value decoders of store/keys.h with arbitrary bytes (a
// corrupt or foreign key read back from RocksDB must be rejected, never read
// out of bounds) and checks that whatever decodes re-encodes to the same
// bytes, and that encoded values decode to what was encoded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "store/keys.h"

namespace {

using namespace tasktrail::store;  // NOLINT: a fuzz target of this header

// Stops the run with a crash libFuzzer records (an invariant was broken).
void Check(bool condition) {
  if (!condition) __builtin_trap();
}

// The longest part AppendLength16 encodes without clamping.
constexpr size_t kMax16 = 0xffff;

void DecodeThenEncode(absl::string_view in) {
  if (auto event = ParseEventKey(in)) {
    Check(EventKey(event->task_id, event->seq) == in);
    Check(absl::string_view(in).substr(0, 2 + event->task_id.size()) ==
          EventPrefix(event->task_id));
  }
  if (auto counter = ParseCounterKey(in)) {
    Check(CounterKey(counter->unix_minute, counter->model, counter->name) ==
          in);
    Check(in.substr(0, 9) == CounterMinuteStart(counter->unix_minute));
  }
  if (auto exit_micros = QueueSampleExitMicros(in)) {
    // QueueSampleExitMicros accepted it, so the model length fits.
    const size_t length =
        (static_cast<uint8_t>(in[1]) << 8) | static_cast<uint8_t>(in[2]);
    const absl::string_view model = in.substr(3, length);
    const absl::string_view task_id = in.substr(3 + length + 8);
    Check(QueueSampleKey(model, *exit_micros, task_id) == in);
    Check(in.substr(0, 3 + length) == QueueSamplePrefix(model));
  }
  if (auto record = DecodeDedupRecord(in)) {
    Check(EncodeDedupRecord(*record) == in);
  }
  if (in.size() == 8) Check(EncodeInt64(DecodeInt64(in)) == in);
  // Any split of the input into a prefix and a key.
  if (!in.empty()) {
    const size_t split = static_cast<uint8_t>(in[0]) % in.size();
    const absl::string_view prefix = in.substr(1, split);
    const absl::string_view key = in.substr(1 + prefix.size());
    if (auto task_id = TaskIdFromIndexKey(prefix, key)) {
      Check(!task_id->empty());
      Check(std::string(prefix) + *task_id == key);
    } else {
      Check(key.size() <= prefix.size() || !absl::StartsWith(key, prefix));
    }
  }
}

// Splits the input into parts and checks encode -> decode.
void EncodeThenDecode(absl::string_view in) {
  if (in.size() < 9) return;
  const int64_t number = static_cast<int64_t>(ReadBigEndian64(in));
  const uint8_t kind_byte = static_cast<uint8_t>(in[8]);
  absl::string_view rest = in.substr(9);
  const size_t cut = rest.empty() ? 0 : (kind_byte * 7919u) % (rest.size() + 1);
  const absl::string_view a = rest.substr(0, cut);
  const absl::string_view b = rest.substr(cut);
  if (a.size() > kMax16) return;

  auto event = ParseEventKey(EventKey(a, number));
  Check(event && event->task_id == a && event->seq == number);

  auto counter = ParseCounterKey(CounterKey(number, a, b));
  Check(counter && counter->unix_minute == number && counter->model == a &&
        counter->name == b);

  auto exit_micros = QueueSampleExitMicros(QueueSampleKey(a, number, b));
  Check(exit_micros && *exit_micros == number);

  DedupRecord record;
  record.expire_unix_micros = number;
  record.task_id = std::string(a);
  record.payload = std::string(b);
  auto decoded = DecodeDedupRecord(EncodeDedupRecord(record));
  Check(decoded && decoded->expire_unix_micros == number &&
        decoded->task_id == a && decoded->payload == b);

  Check(DecodeInt64(EncodeInt64(number)) == number);

  const IndexKind kind = static_cast<IndexKind>(1 + kind_byte % 8);
  auto task_id = TaskIdFromIndexKey(IndexPrefix(kind, a), IndexKey(kind, a, b));
  if (b.empty()) {
    Check(!task_id);
  } else {
    Check(task_id && *task_id == b);
  }
  // Keys of different values of one index never share a prefix.
  if (!b.empty()) {
    Check(!TaskIdFromIndexKey(IndexPrefix(kind, b), IndexKey(kind, a, b)) ||
          a == b);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  DecodeThenEncode(in);
  EncodeThenDecode(in);
  return 0;
}
