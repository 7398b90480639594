// A Tracker on a real store (TrackerFixtureBase) with the steps of a task's
// life as one-liners: submit, the upstream's events (queued, started,
// polled, completed, failed, canceled, refunded), and the reads support
// makes (queue status, the task with its timeline, stats). Shared by the
// queue status, refund and stats tests of the Tracker.
//
// Thread safety: as TrackerFixtureBase. Record may be called from several
// threads at once; Submit may not (it numbers its prompts in a plain int).
#ifndef TASKTRAIL_TESTS_TRACKER_LIFECYCLE_FIXTURE_H_
#define TASKTRAIL_TESTS_TRACKER_LIFECYCLE_FIXTURE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {

class LifecycleFixture : public TrackerFixtureBase {
 protected:
  std::string Submit(const std::string& model = "veo-3",
                     int64_t charge_units = 10,
                     const std::string& account = "acct") {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model(model);
    request.set_charge_units(charge_units);
    request.mutable_params()->set_prompt(absl::StrCat("scene ", ++prompts_));
    auto response =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->task().task_id() : "";
  }

  absl::StatusOr<v1::RecordEventResponse> Record(v1::RecordEventRequest event,
                                                 const std::string& id) {
    event.set_task_id(id);
    return AwaitWrite(*tracker_, &Tracker::RecordEvent, event, "poller");
  }

  void MustRecord(const v1::RecordEventRequest& event, const std::string& id) {
    auto result = Record(event, id);
    ASSERT_TRUE(result.ok()) << result.status();
  }

  static v1::RecordEventRequest Queued() {
    v1::RecordEventRequest event;
    event.mutable_queued()->set_upstream_task_id("up");
    event.mutable_queued()->set_queue_position(3);
    return event;
  }
  static v1::RecordEventRequest Started() {
    v1::RecordEventRequest event;
    event.mutable_started()->set_progress_percent(1);
    return event;
  }
  static v1::RecordEventRequest Polled(int progress) {
    v1::RecordEventRequest event;
    event.mutable_polled()->set_upstream_status("queued");
    event.mutable_polled()->set_progress_percent(progress);
    return event;
  }
  static v1::RecordEventRequest Completed() {
    v1::RecordEventRequest event;
    event.mutable_completed()->add_result_uris("https://cdn.example.com/r.mp4");
    return event;
  }
  static v1::RecordEventRequest Failed(int http_status,
                                       const std::string& error_code,
                                       const std::string& message,
                                       bool refunded = false) {
    v1::RecordEventRequest event;
    event.mutable_failed()->set_http_status(http_status);
    event.mutable_failed()->set_error_code(error_code);
    event.mutable_failed()->set_message(message);
    event.mutable_failed()->set_refunded(refunded);
    return event;
  }
  static v1::RecordEventRequest Canceled() {
    v1::RecordEventRequest event;
    event.mutable_canceled()->set_reason("user canceled");
    return event;
  }
  static v1::RecordEventRequest Refund(int64_t units) {
    v1::RecordEventRequest event;
    event.mutable_refunded()->set_units(units);
    event.mutable_refunded()->set_reason("provider failure");
    return event;
  }

  // A task of `model` that waited `wait` in the queue and then started.
  std::string QueuedThenStarted(const std::string& model, absl::Duration wait) {
    const std::string id = Submit(model);
    MustRecord(Queued(), id);
    clock_.Advance(wait);
    MustRecord(Started(), id);
    return id;
  }

  v1::QueueStatus Status(const std::string& id) {
    v1::GetQueueStatusRequest request;
    request.set_task_id(id);
    v1::QueueStatus status;
    const absl::Status judged = tracker_->GetQueueStatus(request, &status);
    EXPECT_TRUE(judged.ok()) << judged;
    return status;
  }

  v1::Task Get(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    request.set_include_events(true);
    auto task = tracker_->GetTask(request);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : v1::Task();
  }

  absl::StatusOr<v1::Stats> Stats(absl::Duration window,
                                  const std::string& model = "") {
    v1::GetStatsRequest request;
    *request.mutable_window() = ToProtoDuration(window);
    request.set_model(model);
    return tracker_->GetStats(request);
  }

  int prompts_ = 0;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_TESTS_TRACKER_LIFECYCLE_FIXTURE_H_
