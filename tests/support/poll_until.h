// PollUntil: waits for a condition by polling it, for tests that await
// what another thread or process does (never a fixed sleep in its place).
#ifndef TASKTRAIL_TESTS_SUPPORT_POLL_UNTIL_H_
#define TASKTRAIL_TESTS_SUPPORT_POLL_UNTIL_H_

#include <chrono>
#include <functional>
#include <thread>

namespace tasktrail::testing {

// Calls `condition` every 20 ms until it holds or `seconds` pass (generous
// by default: sanitizer builds are slow); returns whether it held.
inline bool PollUntil(const std::function<bool()>& condition,
                      int seconds = 90) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_POLL_UNTIL_H_
