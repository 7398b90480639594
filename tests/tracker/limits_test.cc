// GetTask's limits on what one answer carries: a long timeline is cut to its
// first entry and the newest ones (by count and by bytes), the ones between
// counted in omitted_event_count; notes are capped per task and the snapshot
// keeps only the newest few; the largest task there can be fits a client's
// default 4 MiB message limit.
#include "service/rules/limits.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/task_store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

constexpr int64_t kClientLimit = int64_t{4} << 20;  // gRPC's default

// The size of an event framed as a Task.events entry.
int64_t FramedSize(const v1::TaskEvent& event) {
  const size_t size = event.ByteSizeLong();
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(size) +
         static_cast<int64_t>(size);
}

class LimitsTest : public ::testing::Test {
 protected:
  // Opens a Tracker with `options` on a store without fsyncs (the limits do
  // not depend on durability, and long timelines are written quickly).
  void Open(TrackerOptions options) {
    tracker_.reset();
    store_.reset();
    store::StoreOptions store_options;
    store_options.path = dir_.path();
    store_options.sync_writes = false;
    options.id_seed = 4242 + ++openings_;
    absl::StatusOr<testing::OpenedTracker> opened =
        testing::OpenTracker(store_options, &catalog_, &clock_, &hub_, options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(opened->store);
    tracker_ = std::move(opened->tracker);
  }

  void SetUp() override { Open(TrackerOptions{}); }

  void TearDown() override {
    tracker_.reset();
    store_.reset();
  }

  std::string Submit(v1::SubmitTaskRequest request = {}) {
    if (request.account_id().empty()) request.set_account_id("acct");
    if (request.model().empty()) {
      request.set_model("veo-3");
      request.mutable_params()->set_prompt("a fox in the snow");
    }
    request.set_force_new(true);
    auto response =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend-1");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->task().task_id() : "";
  }

  // Records polls 1..n with distinct bodies (none is folded).
  void Polls(const std::string& id, int n) {
    for (int i = 1; i <= n; ++i) {
      v1::RecordEventRequest poll;
      poll.set_task_id(id);
      poll.mutable_polled()->set_upstream_status(absl::StrCat("poll ", i));
      auto recorded = AwaitWrite(*tracker_, &Tracker::RecordEvent, poll, "");
      ASSERT_TRUE(recorded.ok()) << recorded.status();
    }
  }

  void Record(v1::RecordEventRequest request) {
    auto recorded = AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "");
    ASSERT_TRUE(recorded.ok()) << recorded.status();
  }

  void Complete(const std::string& id, int uris = 1, size_t uri_bytes = 40) {
    v1::RecordEventRequest completed;
    completed.set_task_id(id);
    for (int i = 0; i < uris; ++i) {
      completed.mutable_completed()->add_result_uris(LongUri(i, uri_bytes));
    }
    Record(completed);
  }

  // An https URI of `bytes` bytes. Padding and other long test values use
  // letters that are not hex digits: a long hex run is scrubbed as a secret.
  static std::string LongUri(int n, size_t bytes) {
    std::string uri = absl::StrCat("https://cdn.example.com/", n, "/");
    uri.resize(std::max(uri.size(), bytes), 'x');
    return uri;
  }

  absl::StatusOr<v1::Task> Get(const std::string& id) const {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    request.set_include_events(true);
    return tracker_->GetTask(request);
  }

  // GetTask's answer, checked against the raw composition and against the
  // stored timeline: the first entry, then the newest ones, gapless, ending
  // with the newest, the ones between counted in omitted_event_count.
  v1::Task GetChecked(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    request.set_include_events(true);
    absl::StatusOr<v1::Task> task = tracker_->GetTask(request);
    EXPECT_TRUE(task.ok()) << task.status();
    if (!task.ok()) return {};
    absl::StatusOr<std::string> bytes = tracker_->GetStoredTaskBytes(request);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    v1::Task from_bytes;
    EXPECT_TRUE(from_bytes.ParseFromString(*bytes));
    EXPECT_TRUE(MessageDifferencer::Equals(from_bytes, *task));

    const int64_t last = task->last_event_seq();
    EXPECT_GE(task->events_size(), 1);
    if (task->events_size() == 0) return *task;
    EXPECT_EQ(task->events(0).seq(), 1);
    EXPECT_EQ(task->events(task->events_size() - 1).seq(), last);
    for (int i = 2; i < task->events_size(); ++i) {
      EXPECT_EQ(task->events(i).seq(), task->events(i - 1).seq() + 1);
    }
    EXPECT_EQ(task->omitted_event_count(), last - task->events_size());
    // What is returned is what is stored.
    absl::StatusOr<std::vector<v1::TaskEvent>> stored =
        store_->ReadEvents(id, 0, 1000000);
    EXPECT_TRUE(stored.ok());
    EXPECT_EQ(static_cast<int64_t>(stored->size()), last);
    for (const v1::TaskEvent& event : task->events()) {
      EXPECT_TRUE(MessageDifferencer::Equals(
          event, (*stored)[static_cast<size_t>(event.seq() - 1)]))
          << event.seq();
    }
    return *task;
  }

  testing::TempDir dir_{"tasktrail-limits"};
  CatalogHolder catalog_{Catalog::BuiltIn()};
  ManualClock clock_{absl::FromUnixSeconds(1790000000)};
  EventHub hub_;
  std::unique_ptr<store::TaskStore> store_;
  std::unique_ptr<Tracker> tracker_;
  int openings_ = 0;
};

TEST_F(LimitsTest, ShortTimelineIsWholeWithNothingOmitted) {
  const std::string id = Submit();
  Polls(id, 3);
  Complete(id);
  const v1::Task task = GetChecked(id);
  EXPECT_EQ(task.events_size(), 5);
  EXPECT_EQ(task.omitted_event_count(), 0);
  // Without events, nothing is counted either.
  v1::GetTaskRequest bare;
  bare.set_task_id(id);
  absl::StatusOr<v1::Task> snapshot = tracker_->GetTask(bare);
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->events_size(), 0);
  EXPECT_EQ(snapshot->omitted_event_count(), 0);
}

TEST_F(LimitsTest, LongTimelineKeepsTheFirstAndNewestEntries) {
  // 10,002 entries (submitted, 10,000 polls, completed) at the default limit
  // of 10,000: the first and the newest 9,999, two omitted.
  const std::string id = Submit();
  Polls(id, 10000);
  Complete(id);
  const v1::Task task = GetChecked(id);
  EXPECT_EQ(task.last_event_seq(), 10002);
  EXPECT_EQ(task.events_size(), 10000);
  EXPECT_EQ(task.omitted_event_count(), 2);
  EXPECT_EQ(task.events(0).type(), v1::EVENT_TYPE_SUBMITTED);
  EXPECT_EQ(task.events(1).seq(), 4);
  EXPECT_EQ(task.events(task.events_size() - 1).type(),
            v1::EVENT_TYPE_COMPLETED);
}

TEST_F(LimitsTest, CountLimitAppliesToShortTimelinesToo) {
  TrackerOptions options;
  options.max_events_returned = 4;
  Open(options);
  const std::string id = Submit();
  Polls(id, 6);
  Complete(id);
  const v1::Task task = GetChecked(id);
  ASSERT_EQ(task.events_size(), 4);
  EXPECT_EQ(task.events(1).seq(), 6);
  EXPECT_EQ(task.omitted_event_count(), 4);
}

TEST_F(LimitsTest, ByteBudgetCutsBeforeTheCountLimit) {
  TrackerOptions options;
  options.max_event_bytes_returned = 64 * 1024;
  Open(options);
  const std::string id = Submit();
  Complete(id);
  for (int i = 0; i < 60; ++i) {  // about 2 KiB each: 120 KiB
    v1::RecordEventRequest downloaded;
    downloaded.set_task_id(id);
    downloaded.mutable_downloaded()->set_uri(LongUri(i, kMaxUriBytes));
    Record(downloaded);
  }
  const v1::Task task = GetChecked(id);
  EXPECT_EQ(task.last_event_seq(), 62);
  EXPECT_GT(task.omitted_event_count(), 0);
  EXPECT_LT(task.events_size(), 40);
  int64_t size = 0;
  for (const v1::TaskEvent& event : task.events()) size += FramedSize(event);
  EXPECT_LE(size, options.max_event_bytes_returned);
  // The next older entry would not have fitted.
  absl::StatusOr<std::vector<v1::TaskEvent>> next = store_->ReadEventRange(
      id, task.events(1).seq() - 1, task.events(1).seq() - 1);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 1u);
  EXPECT_GT(size + FramedSize(next->front()), options.max_event_bytes_returned);
}

TEST_F(LimitsTest, ByteBudgetAppliesToShortTimelinesToo) {
  TrackerOptions options;
  options.max_event_bytes_returned = 8 * 1024;
  Open(options);
  const std::string id = Submit();
  Complete(id);
  for (int i = 0; i < 10; ++i) {
    v1::RecordEventRequest downloaded;
    downloaded.set_task_id(id);
    downloaded.mutable_downloaded()->set_uri(LongUri(i, kMaxUriBytes));
    Record(downloaded);
  }
  const v1::Task task = GetChecked(id);
  EXPECT_EQ(task.events_size(), 4);  // the first and three downloads
  EXPECT_EQ(task.omitted_event_count(), 8);
}

v1::AddNoteRequest MaxNote(const std::string& id, int n) {
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_author(std::string(kMaxIdBytes, 'w'));
  std::string text = absl::StrCat("note ", n, " ");
  text.resize(kMaxTextBytes, 't');
  note.set_text(text);
  note.set_final_cause(std::string(kMaxTextBytes, 'k'));
  return note;
}

TEST_F(LimitsTest, NotesAreCappedAndTheSnapshotKeepsTheNewest) {
  const std::string id = Submit();
  const int cap = TrackerOptions{}.max_notes_per_task;
  ASSERT_EQ(cap, 100);
  int64_t first_snapshot_bytes = 0;
  for (int n = 1; n <= cap; ++n) {
    auto added = AwaitWrite(*tracker_, &Tracker::AddNote, MaxNote(id, n), "");
    ASSERT_TRUE(added.ok()) << n << ": " << added.status();
    EXPECT_EQ(added->note_count(), n);
    EXPECT_EQ(added->notes_size(), std::min(n, kNotesInSnapshot));
    EXPECT_THAT(added->notes(added->notes_size() - 1).text(),
                HasSubstr(absl::StrCat("note ", n, " ")));
    if (n == kNotesInSnapshot) {
      first_snapshot_bytes = static_cast<int64_t>(added->ByteSizeLong());
    }
  }
  auto refused = AwaitWrite(*tracker_, &Tracker::AddNote, MaxNote(id, 101), "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("at most 100 notes"));

  // What every write rewrites stays as small as it was at 10 notes.
  absl::StatusOr<v1::Task> snapshot = store_->GetTask(id);
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->notes_size(), kNotesInSnapshot);
  EXPECT_EQ(snapshot->note_count(), cap);
  EXPECT_LE(static_cast<int64_t>(snapshot->ByteSizeLong()),
            first_snapshot_bytes + 64);
  EXPECT_LT(snapshot->ByteSizeLong(), 100u * 1024);
  EXPECT_THAT(
      snapshot->notes(0).text(),
      HasSubstr(absl::StrCat("note ", cap - kNotesInSnapshot + 1, " ")));
  // Every note is in the timeline.
  absl::StatusOr<std::vector<v1::TaskEvent>> events =
      store_->ReadEvents(id, 0, 1000);
  ASSERT_TRUE(events.ok());
  int notes = 0;
  for (const v1::TaskEvent& event : *events) {
    if (event.type() == v1::EVENT_TYPE_NOTE_ADDED) ++notes;
  }
  EXPECT_EQ(notes, cap);
  // A lifecycle event keeps the count.
  Complete(id);
  snapshot = store_->GetTask(id);
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->note_count(), cap);
  EXPECT_EQ(snapshot->notes_size(), kNotesInSnapshot);
}

TEST_F(LimitsTest, NotesCapIsAnOption) {
  TrackerOptions options;
  options.max_notes_per_task = 2;
  Open(options);
  const std::string id = Submit();
  for (int n = 1; n <= 2; ++n) {
    ASSERT_TRUE(
        AwaitWrite(*tracker_, &Tracker::AddNote, MaxNote(id, n), "").ok());
  }
  auto refused = AwaitWrite(*tracker_, &Tracker::AddNote, MaxNote(id, 3), "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("at most 2 notes"));
}

TEST_F(LimitsTest, SnapshotStoredWithAllItsNotesIsAnsweredWithTheNewest) {
  // A snapshot written before the cap: 30 notes, no note_count.
  const std::string id = Submit();
  absl::StatusOr<v1::Task> before = store_->GetTask(id);
  ASSERT_TRUE(before.ok());
  v1::Task legacy = *before;
  for (int n = 1; n <= 30; ++n) {
    legacy.add_notes()->set_text(absl::StrCat("old ", n));
  }
  store::TaskWrite write;
  write.previous = &*before;
  write.task = &legacy;
  ASSERT_TRUE(store_->Write(write).ok());

  const v1::Task task = GetChecked(id);
  EXPECT_EQ(task.note_count(), 30);
  ASSERT_EQ(task.notes_size(), kNotesInSnapshot);
  EXPECT_EQ(task.notes(0).text(), "old 21");
  EXPECT_EQ(task.notes(kNotesInSnapshot - 1).text(), "old 30");

  // A few notes and no count: counted.
  v1::Task few = *before;
  few.add_notes()->set_text("one");
  few.add_notes()->set_text("two");
  write.previous = &legacy;
  write.task = &few;
  ASSERT_TRUE(store_->Write(write).ok());
  EXPECT_EQ(GetChecked(id).note_count(), 2);

  // The next note trims what is stored.
  write.previous = &few;
  write.task = &legacy;
  ASSERT_TRUE(store_->Write(write).ok());
  auto added = AwaitWrite(*tracker_, &Tracker::AddNote, MaxNote(id, 31), "");
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->note_count(), 31);
  absl::StatusOr<v1::Task> stored = store_->GetTask(id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->notes_size(), kNotesInSnapshot);
  EXPECT_EQ(stored->note_count(), 31);
}

TEST_F(LimitsTest, LargestTaskFitsTheDefaultClientLimit) {
  // Every field at its limit (gpt-image-1 takes 16 reference images and a
  // prompt of 32,000 characters: 16,384 two-byte ones are 32 KiB), 64 result
  // URIs, the cap of notes at their largest, and a timeline far over 3 MiB.
  v1::SubmitTaskRequest submit;
  submit.set_account_id(std::string(kMaxIdBytes, 'A'));
  submit.set_api_key_id(std::string(kMaxIdBytes, 'K'));
  submit.set_group(std::string(kMaxIdBytes, 'G'));
  submit.set_endpoint(std::string(kMaxEndpointBytes, 'e'));
  submit.set_request_id(std::string(kMaxIdBytes, 'R'));
  submit.set_model("gpt-image-1");
  v1::TaskParams* params = submit.mutable_params();
  std::string prompt;
  for (size_t i = 0; i < kMaxPromptBytes / 2; ++i) prompt += "\xc3\xa9";
  params->set_prompt(prompt);
  params->set_negative_prompt(std::string(kMaxPromptBytes, 'n'));
  params->set_callback_url(LongUri(99, kMaxUriBytes));
  for (int i = 0; i < kMaxReferenceImages; ++i) {
    v1::ReferenceImage* image = params->add_reference_images();
    image->set_uri(LongUri(i, kMaxUriBytes));
    image->set_mime_type("image/png");
    image->set_size_bytes(1 << 20);
    image->set_width(1024);
    image->set_height(1024);
  }
  const std::string id = Submit(submit);
  ASSERT_FALSE(id.empty());
  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id(std::string(kMaxIdBytes, 'u'));
  Record(queued);
  Complete(id, kMaxResultUris, kMaxUriBytes);
  for (int n = 1; n <= TrackerOptions{}.max_notes_per_task; ++n) {
    ASSERT_TRUE(
        AwaitWrite(*tracker_, &Tracker::AddNote, MaxNote(id, n), "").ok());
  }
  for (int i = 0; i < 1600; ++i) {  // about 3.5 MB of downloads
    v1::RecordEventRequest downloaded;
    downloaded.set_task_id(id);
    downloaded.mutable_downloaded()->set_uri(LongUri(i, kMaxUriBytes));
    downloaded.mutable_downloaded()->set_client(std::string(kMaxIdBytes, 'k'));
    Record(downloaded);
  }
  const v1::Task task = GetChecked(id);
  EXPECT_GT(task.omitted_event_count(), 0);
  EXPECT_EQ(task.note_count(), 100);
  EXPECT_EQ(task.notes_size(), kNotesInSnapshot);
  EXPECT_EQ(task.params().reference_images_size(), kMaxReferenceImages);
  EXPECT_EQ(task.result_uris_size(), kMaxResultUris);
  EXPECT_LT(static_cast<int64_t>(task.ByteSizeLong()),
            kClientLimit - 512 * 1024)
      << task.ByteSizeLong();
  int64_t timeline = 0;
  for (const v1::TaskEvent& event : task.events())
    timeline += FramedSize(event);
  EXPECT_LE(timeline, int64_t{3} << 20);
  EXPECT_GT(timeline, (int64_t{3} << 20) - 8 * 1024);
}

}  // namespace
}  // namespace tasktrail
