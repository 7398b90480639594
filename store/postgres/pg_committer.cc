#include "store/postgres/pg_committer.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"

namespace tasktrail::store::postgres {
namespace {

// Who a statement of a flight belongs to: a write of the batch (its index),
// or the batch as a whole.
constexpr int kBatch = -1;

// The statements sent in one flight and whom each belongs to.
class Flight {
 public:
  // Adds a statement that outlives the flight.
  void Add(absl::string_view sql, const PgParams* params, int owner,
           const std::string* conflict = nullptr) {
    statements_.push_back({sql, params});
    owners_.push_back(owner);
    conflicts_.push_back(conflict);
  }
  // Adds a statement of the batch, kept by the flight.
  void AddOwned(Statement statement) {
    const Statement& kept = owned_.emplace_back(std::move(statement));
    Add(kept.sql, &kept.params, kBatch);
  }

  const std::vector<PgPipelineStatement>& statements() const {
    return statements_;
  }
  int owner(size_t i) const { return owners_[i]; }
  // The conflict text of statement `i`, or nullptr.
  const std::string* conflict(size_t i) const { return conflicts_[i]; }

 private:
  std::vector<PgPipelineStatement> statements_;
  std::vector<int> owners_;
  std::vector<const std::string*> conflicts_;
  std::deque<Statement> owned_;
};

std::string Savepoint(size_t write) { return absl::StrCat("w", write); }

// What `answer` of a statement with `conflict` text (or none) means for its
// write: OK, or the failure its caller gets. A conflict (no row changed)
// and a unique violation are ABORTED: re-read and retry.
absl::Status FailureOf(const absl::StatusOr<PgRows>& answer,
                       const std::string* conflict) {
  if (!answer.ok()) {
    return answer.status().code() == absl::StatusCode::kAlreadyExists
               ? absl::AbortedError(answer.status().message())
               : answer.status();
  }
  if (conflict != nullptr && answer->affected == 0) {
    return absl::AbortedError(absl::StrCat(*conflict, "; re-read and retry"));
  }
  return absl::OkStatus();
}

// Sets every OK result to `status`.
void FailTheRest(const absl::Status& status,
                 std::vector<absl::Status>& results) {
  for (absl::Status& result : results) {
    if (result.ok()) result = status;
  }
}

size_t CountOk(const std::vector<absl::Status>& results) {
  size_t ok = 0;
  for (const absl::Status& result : results) ok += result.ok() ? 1 : 0;
  return ok;
}

}  // namespace

Committer::Committer(ConnectionPool* pool, Notifier* notifier,
                     int max_batch_writes)
    : pool_(pool),
      notifier_(notifier),
      max_batch_writes_(static_cast<size_t>(max_batch_writes)),
      thread_([this] { Run(); }) {}

Committer::~Committer() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void Committer::Enqueue(std::unique_ptr<PgWrite> write, std::string what,
                        absl::AnyInvocable<void(absl::Status)> done) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back({std::move(write), std::move(what), std::move(done)});
}

Committer* Committer::Current() { return current_; }

void Committer::ApplyNow(std::unique_ptr<PgWrite> write, std::string what,
                         absl::AnyInvocable<void(absl::Status)> done) {
  std::vector<Job> batch;
  batch.push_back({std::move(write), std::move(what), std::move(done)});
  Process(std::move(batch));
}

void Committer::Run() {
  current_ = this;
  while (true) {
    std::vector<Job> batch = TakeBatch();
    if (batch.empty()) return;  // stopping, and drained
    Process(std::move(batch));
  }
}

void Committer::Process(std::vector<Job> batch) {
  const std::vector<absl::Status> results = Apply(batch);
  std::vector<std::string> notifications;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!results[i].ok()) continue;
    for (std::string& payload : batch[i].write->notifications) {
      notifications.push_back(std::move(payload));
    }
  }
  if (!notifications.empty()) notifier_->Enqueue(std::move(notifications));
  for (size_t i = 0; i < batch.size(); ++i) {
    std::move(batch[i].done)(NamingTheWork(batch[i].what, results[i]));
  }
}

std::vector<Committer::Job> Committer::TakeBatch() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(
      +[](Committer* committer)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(committer->mutex_) {
             return committer->stopping_ || !committer->queue_.empty();
           },
      this));
  std::vector<Job> batch;
  while (!queue_.empty() && batch.size() < max_batch_writes_ &&
         (batch.empty() || queue_.front().write->synchronous ==
                               batch.front().write->synchronous)) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return batch;
}

std::vector<absl::Status> Committer::Apply(absl::Span<const Job> batch) {
  std::vector<absl::Status> results;
  results.reserve(batch.size());
  for (const Job& job : batch) results.push_back(job.write->invalid);
  if (CountOk(results) == 0) return results;
  absl::StatusOr<ConnectionPool::Lease> lease = pool_->Acquire();
  if (lease.ok() && lease->reused() && !lease->connection().CheckAlive()) {
    lease->Discard();
    lease = pool_->Acquire(/*fresh=*/true);
  }
  // A stale prepared statement voids the transaction (nothing committed):
  // the batch runs once more from the start, prepared afresh.
  for (int attempt = 1;; ++attempt) {
    if (!lease.ok()) {
      FailTheRest(lease.status(), results);
      return results;
    }
    Transact(*lease, batch, results);
    if (attempt == 2 || std::none_of(results.begin(), results.end(),
                                     IsStalePreparedStatement)) {
      return results;
    }
    lease->Discard();
    for (size_t i = 0; i < batch.size(); ++i) {
      results[i] = batch[i].write->invalid;
    }
    lease = pool_->Acquire(/*fresh=*/true);
  }
}

void Committer::Transact(ConnectionPool::Lease& lease,
                         absl::Span<const Job> batch,
                         std::vector<absl::Status>& results) {
  PgConnection& connection = lease.connection();
  const auto roll_back = [&] {
    if (!connection.Execute("ROLLBACK", "rolling back").ok()) lease.Discard();
  };
  const bool savepoints = CountOk(results) > 1;
  const int shard = NextCounterShard();
  bool first_flight = true;
  // The writes from `next` on are sent in the next flight, after rolling
  // back to the savepoint of write `rollback_to` (when set).
  size_t next = 0;
  absl::optional<size_t> rollback_to;
  while (true) {
    Flight flight;
    std::deque<std::string> control;
    if (first_flight) {
      flight.Add("BEGIN", nullptr, kBatch);
      if (!batch.front().write->synchronous) {
        flight.Add("SET LOCAL synchronous_commit TO OFF", nullptr, kBatch);
      }
    }
    if (rollback_to.has_value()) {
      flight.Add(control.emplace_back(absl::StrCat("ROLLBACK TO SAVEPOINT ",
                                                   Savepoint(*rollback_to))),
                 nullptr, kBatch);
    }
    bool may_conflict = false;
    std::vector<CounterAdd> adds;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!results[i].ok()) continue;
      const PgWrite& write = *batch[i].write;
      adds.insert(adds.end(), write.counter_adds.begin(),
                  write.counter_adds.end());
      if (i < next) continue;
      if (savepoints) {
        flight.Add(
            control.emplace_back(absl::StrCat("SAVEPOINT ", Savepoint(i))),
            nullptr, kBatch);
      }
      for (const Statement& statement : write.statements) {
        const bool checked = !statement.conflict.empty();
        flight.Add(statement.sql, &statement.params, static_cast<int>(i),
                   checked ? &statement.conflict : nullptr);
        may_conflict |= checked;
      }
    }
    if (!adds.empty()) flight.AddOwned(CounterAddsStatement(adds, shard));
    // Without a statement whose changing no row fails its write, COMMIT
    // goes in the same flight: an error before it makes the server skip it.
    const bool commits = !may_conflict;
    if (commits) flight.Add("COMMIT", nullptr, kBatch);

    absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> answers =
        connection.RunPipeline(flight.statements(), "writing");
    if (!answers.ok()) {
      FailTheRest(answers.status(), results);
      return;
    }
    first_flight = false;
    // A stale prepared statement voids the transaction wherever it stands
    // in the flight, even behind a write whose conflict the server did not
    // see as an error: its connection, dropped, rolls the transaction back.
    for (const absl::StatusOr<PgRows>& answer : *answers) {
      if (!answer.ok() && IsStalePreparedStatement(answer.status())) {
        FailTheRest(answer.status(), results);
        return;
      }
    }
    size_t failed = answers->size();
    absl::Status failure;
    for (size_t i = 0; i < answers->size(); ++i) {
      failure = FailureOf((*answers)[i], flight.conflict(i));
      if (!failure.ok()) {
        failed = i;
        break;
      }
    }
    if (failed == answers->size()) {
      absl::Status committed;
      if (!commits) {
        static const PgPipelineStatement kCommit[] = {{"COMMIT", nullptr}};
        absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> answer =
            connection.RunPipeline(kCommit, "committing");
        committed = answer.ok() ? (*answer)[0].status() : answer.status();
      }
      if (!committed.ok()) {
        FailTheRest(committed, results);
      } else {
        transactions_.fetch_add(1, std::memory_order_relaxed);
        writes_.fetch_add(static_cast<int64_t>(CountOk(results)),
                          std::memory_order_relaxed);
      }
      return;
    }
    const int owner = flight.owner(failed);
    if (owner == kBatch) {
      // BEGIN, a savepoint, the counters or COMMIT: the batch as a whole.
      FailTheRest(failure, results);
      roll_back();
      return;
    }
    results[static_cast<size_t>(owner)] = failure;
    if (!savepoints || CountOk(results) == 0) {
      roll_back();
      return;
    }
    rollback_to = static_cast<size_t>(owner);
    next = static_cast<size_t>(owner) + 1;
  }
}

}  // namespace tasktrail::store::postgres
