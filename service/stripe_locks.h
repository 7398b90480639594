// StripeLocks: exclusive locks on keys, striped by the key's hash, held
// through a Lease that may be released on any thread.
//
// A write prepared under a lease hands the lease to the store's commit
// callback, which releases it once the write is durable; the thread that
// prepared the write moves on at once. Keys that share a stripe exclude each
// other (harmless: only less concurrency).
//
// Not reentrant: holding two leases of one StripeLocks at once may deadlock.
// Thread safety: all methods are safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_STRIPE_LOCKS_H_
#define TASKTRAIL_SERVICE_STRIPE_LOCKS_H_

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
    stripe.mutex.LockWhen(absl::Condition(&IsFree, &stripe));
    stripe.held = true;
    stripe.mutex.Unlock();
    return Lease(&stripe);
  }

  // Takes the stripe of `key` when it is free now; nullopt, at once, when
  // another lease holds it. Never waits for a lease to be released.
  absl::optional<Lease> TryAcquire(absl::string_view key) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock lock(&stripe.mutex);
    if (stripe.held) return absl::nullopt;
    stripe.held = true;
    return Lease(&stripe);
  }

 private:
  struct Stripe {
    absl::Mutex mutex;
    bool held ABSL_GUARDED_BY(mutex) = false;
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

#endif  // TASKTRAIL_SERVICE_STRIPE_LOCKS_H_
