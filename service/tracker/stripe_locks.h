// StripeLocks: exclusive locks on keys, striped by the key's hash, held
// through a Lease that may be released on any thread.
//
// A write prepared under a lease hands the lease to the store's commit
// callback, which releases it once the write is durable; the thread that
// prepared the write moves on at once. Keys that share a stripe exclude each
// other (harmless: only less concurrency).
//
// A lease is either waited for (Acquire) or taken only when it is free at
// once (TryAcquire). A stripe that someone waits for is not free to
// TryAcquire, so that tries never overtake a waiter: a waiter takes the
// stripe next.
//
// Not reentrant: a thread that holds a lease and Acquires another of the
// same StripeLocks may deadlock (TryAcquire never waits).
// Thread safety: all methods are safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_TRACKER_STRIPE_LOCKS_H_
#define TASKTRAIL_SERVICE_TRACKER_STRIPE_LOCKS_H_

#include <array>
#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"

namespace tasktrail {

class StripeLocks {
 private:
  struct Stripe;

 public:
  static constexpr size_t kStripes = 4096;

  // Holds one stripe until destroyed or Release()d. Movable, not copyable.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept : stripe_(other.stripe_) {
      other.stripe_ = nullptr;
    }
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        Release();
        stripe_ = other.stripe_;
        other.stripe_ = nullptr;
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Release(); }

    // Releases the stripe now; a no-op on an empty lease.
    void Release() {
      if (stripe_ == nullptr) return;
      absl::MutexLock lock(&stripe_->mutex);
      stripe_->held = false;
      stripe_ = nullptr;
    }

   private:
    friend class StripeLocks;
    explicit Lease(Stripe* stripe) : stripe_(stripe) {}
    Stripe* stripe_ = nullptr;
  };

  // Waits until the stripe of `key` is free and takes it.
  Lease Acquire(absl::string_view key) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock lock(&stripe.mutex);
    ++stripe.waiting;
    stripe.mutex.Await(absl::Condition(&IsFree, &stripe));
    --stripe.waiting;
    stripe.held = true;
    return Lease(&stripe);
  }

  // Takes the stripe of `key` when it is free now; nullopt, at once, when
  // another lease holds it or an Acquire waits for it. Never waits for a
  // lease to be released.
  absl::optional<Lease> TryAcquire(absl::string_view key) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock lock(&stripe.mutex);
    if (stripe.held || stripe.waiting > 0) return absl::nullopt;
    stripe.held = true;
    return Lease(&stripe);
  }

  // How many Acquire calls wait for the stripe of `key` now (for tests).
  int Waiting(absl::string_view key) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock lock(&stripe.mutex);
    return stripe.waiting;
  }

 private:
  struct Stripe {
    absl::Mutex mutex;
    bool held ABSL_GUARDED_BY(mutex) = false;
    int waiting ABSL_GUARDED_BY(mutex) = 0;
  };

  Stripe& StripeOf(absl::string_view key) {
    return stripes_[absl::HashOf(key) % kStripes];
  }

  static bool IsFree(Stripe* stripe) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !stripe->held;
  }

  std::array<Stripe, kStripes> stripes_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_STRIPE_LOCKS_H_
