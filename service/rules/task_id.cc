#include "service/rules/task_id.h"

#include <algorithm>

namespace tasktrail {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int DecodeChar(char c) {
  const char* found = std::find(kAlphabet, kAlphabet + 32, c);
  return found == kAlphabet + 32 ? -1 : static_cast<int>(found - kAlphabet);
}

}  // namespace

TaskIdGenerator::TaskIdGenerator(uint64_t seed)
    : random_(seed != 0 ? seed : std::random_device{}()) {}

std::string TaskIdGenerator::Next(absl::Time now) {
  const int64_t millis_signed = absl::ToUnixMillis(now);
  uint64_t millis =
      millis_signed > 0 ? static_cast<uint64_t>(millis_signed) : 0;
  millis &= (uint64_t{1} << 48) - 1;
  absl::MutexLock lock(&mutex_);
  if (millis > last_millis_) {
    last_millis_ = millis;
    last_high_ = static_cast<uint16_t>(random_());
    // Keep headroom so that increments within one millisecond never wrap.
    last_low_ = random_() >> 1;
  } else if (++last_low_ == 0) {
    ++last_high_;
  }
  // 128 bits: 48 of time, 16 high random, 64 low random; encoded as 26 base32
  // digits of 5 bits (the first digit carries the top 3 bits).
  std::string id(kTaskIdLength, '0');
  const uint64_t high = (last_millis_ << 16) | last_high_;
  const uint64_t low = last_low_;
  for (int i = 25; i >= 0; --i) {
    const int bit = (25 - i) * 5;  // position of this digit's lowest bit
    uint32_t digit = 0;
    for (int b = 0; b < 5; ++b) {
      const int position = bit + b;
      uint64_t value = 0;
      if (position < 64) {
        value = (low >> position) & 1;
      } else if (position < 128) {
        value = (high >> (position - 64)) & 1;
      }
      digit |= static_cast<uint32_t>(value) << b;
    }
    id[i] = kAlphabet[digit];
  }
  return id;
}

bool LooksLikeTaskId(absl::string_view id) {
  if (id.size() != kTaskIdLength) return false;
  if (DecodeChar(id[0]) > 7) return false;  // 128 bits: top digit is 3 bits
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return DecodeChar(c) >= 0; });
}

absl::Time TaskIdTime(absl::string_view id) {
  // The first 10 digits carry 50 bits: 2 zero bits and 48 bits of millis.
  uint64_t millis = 0;
  for (int i = 0; i < 10; ++i) {
    millis = (millis << 5) | static_cast<uint64_t>(DecodeChar(id[i]));
  }
  return absl::FromUnixMillis(static_cast<int64_t>(millis));
}

std::string TaskIdFloor(absl::Time t) {
  constexpr int64_t kMaxMillis = (int64_t{1} << 48) - 1;
  const int64_t millis = std::clamp<int64_t>(
      t <= absl::UnixEpoch() ? 0 : absl::ToUnixMillis(t), 0, kMaxMillis);
  std::string id(kTaskIdLength, '0');
  for (int i = 0; i < 10; ++i) {
    id[i] = kAlphabet[(static_cast<uint64_t>(millis) >> ((9 - i) * 5)) & 31];
  }
  return id;
}

}  // namespace tasktrail
