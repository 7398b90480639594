// End-to-end tests of tasktraild's Prometheus metrics: a real daemon with
// --metrics-listen, a known sequence of calls, then /metrics read back and
// checked series by series; promtool accepts the exposition; a real
// Prometheus server scrapes the daemon.
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Labels = std::map<std::string, std::string>;

// One sample line of the Prometheus text format.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// The samples of an exposition (comments skipped). Label values here hold
// no escaped quotes.
std::vector<Sample> ParseExposition(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (brace != std::string::npos && brace < space) {
      sample.name = line.substr(0, brace);
      const size_t close = line.rfind('}');
      std::string body = line.substr(brace + 1, close - brace - 1);
      size_t at = 0;
      while (at < body.size()) {
        const size_t equals = body.find('=', at);
        const size_t end = body.find('"', equals + 2);
        sample.labels[body.substr(at, equals - at)] =
            body.substr(equals + 2, end - equals - 2);
        at = end + 1;
        if (at < body.size() && body[at] == ',') ++at;
      }
    } else {
      sample.name = line.substr(0, space);
    }
    sample.value = std::stod(line.substr(space + 1));
    samples.push_back(std::move(sample));
  }
  return samples;
}

// The value of the sample `name` with exactly `labels`, or -1 when absent.
double ValueOf(const std::vector<Sample>& samples, const std::string& name,
               const Labels& labels = {}) {
  for (const Sample& sample : samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return -1;
}

Labels TrackerMethod(const std::string& method,
                     const std::string& type = "unary") {
  return {{"grpc_method", method},
          {"grpc_service", "tasktrail.v1.TaskTracker"},
          {"grpc_type", type}};
}

Labels WithCode(Labels labels, const std::string& code) {
  labels["grpc_code"] = code;
  return labels;
}

// Listening TCP sockets (IPv4 and IPv6) of process `pid`.
int ListeningSockets(pid_t pid) {
  std::vector<std::string> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir)) {
    std::error_code error;
    const std::string target =
        std::filesystem::read_symlink(entry.path(), error).string();
    if (!error && target.rfind("socket:[", 0) == 0) {
      inodes.push_back(target.substr(8, target.size() - 9));
    }
  }
  int listening = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid,
          timeout, inode;
      fields >> sl >> local >> remote >> state >> queues >> timer >>
          retransmits >> uid >> timeout >> inode;
      if (state == "0A" &&
          std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
        ++listening;
      }
    }
  }
  return listening;
}

class MetricsE2eTest : public ::testing::Test {
 protected:
  // Starts a daemon on db_ serving metrics on a free port.
  void StartServer(std::vector<std::string> extra = {}) {
    metrics_address_ = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
    extra.push_back("--metrics-listen");
    extra.push_back(metrics_address_);
    server_ = std::make_unique<ServerProcess>(db_.path(), extra);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  std::string ScrapeText() {
    HttpResponse response = HttpGet(metrics_address_, "/metrics");
    EXPECT_EQ(response.status, 200) << response.body;
    return response.body;
  }

  std::vector<Sample> Scrape() { return ParseExposition(ScrapeText()); }

  v1::SubmitTaskRequest Request(const std::string& model,
                                const std::string& prompt,
                                const std::string& request_id = "") {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-metrics");
    request.set_model(model);
    request.set_endpoint("/v1/videos");
    request.set_request_id(request_id);
    request.set_charge_units(40);
    request.mutable_params()->set_prompt(prompt);
    request.mutable_params()->set_aspect_ratio("16:9");
    return request;
  }

  grpc::Status Submit(const v1::SubmitTaskRequest& request,
                      v1::SubmitTaskResponse* response) {
    return stub_->SubmitTask(DeadlineContext().get(), request, response);
  }

  v1::Task SubmitOk(const v1::SubmitTaskRequest& request) {
    v1::SubmitTaskResponse response;
    const grpc::Status status = Submit(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task();
  }

  v1::RecordEventResponse Record(const v1::RecordEventRequest& request) {
    v1::RecordEventResponse response;
    const grpc::Status status =
        stub_->RecordEvent(DeadlineContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  void Queue(const std::string& task_id) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_queued()->set_upstream_task_id("up-" + task_id);
    request.mutable_queued()->set_queue_position(3);
    Record(request);
  }

  TempDir db_{"tasktrail-metrics"};
  std::string metrics_address_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(MetricsE2eTest, KnownCallsGiveExactSeries) {
  StartServer();
  // Two new tasks, one duplicate of each (by request_id, by content).
  const v1::Task veo = SubmitOk(Request("veo-3", "a fox in snow", "req-1"));
  const v1::Task kling = SubmitOk(Request("kling-v2-1", "a boat at dawn"));
  v1::SubmitTaskResponse duplicate;
  ASSERT_TRUE(
      Submit(Request("veo-3", "a fox in snow", "req-1"), &duplicate).ok());
  EXPECT_EQ(duplicate.dedup_reason(), v1::DEDUP_REASON_SAME_REQUEST_ID);
  ASSERT_TRUE(Submit(Request("kling-v2-1", "a boat at dawn"), &duplicate).ok());
  EXPECT_EQ(duplicate.dedup_reason(), v1::DEDUP_REASON_SAME_CONTENT);
  // Two rejections: a ratio veo-3 does not take, a model nobody knows.
  v1::SubmitTaskRequest bad_ratio = Request("veo-3", "a cat");
  bad_ratio.mutable_params()->set_aspect_ratio("4:3");
  grpc::Status status = Submit(bad_ratio, &duplicate);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status),
              ::testing::ElementsAre("params.aspect_ratio RATIO_UNSUPPORTED"));
  status = Submit(Request("no-such-model-7", "a cat"), &duplicate);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status),
              ::testing::Contains("model MODEL_UNKNOWN"));

  // veo-3: queued, failed upstream with a 503 (refunded by a later event);
  // kling stays queued.
  Queue(veo.task_id());
  v1::RecordEventRequest failed;
  failed.set_task_id(veo.task_id());
  failed.mutable_failed()->set_http_status(503);
  failed.mutable_failed()->set_message("service unavailable");
  const v1::RecordEventResponse failed_answer = Record(failed);
  EXPECT_EQ(failed_answer.task().failure().category(),
            v1::FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE);
  EXPECT_EQ(failed_answer.task().failure().origin(),
            v1::FAILURE_ORIGIN_PROVIDER);
  v1::RecordEventRequest refund;
  refund.set_task_id(veo.task_id());
  refund.mutable_refunded()->set_units(40);
  Record(refund);
  Queue(kling.task_id());

  // One health check.
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      server_->address(), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(health->Check(DeadlineContext().get(), {}, &serving).ok());
  // One WatchTask of the finished veo-3 task: it replays and ends OK.
  {
    std::unique_ptr<grpc::ClientContext> context = DeadlineContext();
    v1::WatchTaskRequest watch;
    watch.set_task_id(veo.task_id());
    auto reader = stub_->WatchTask(context.get(), watch);
    v1::TaskEvent event;
    int events = 0;
    while (reader->Read(&event)) ++events;
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_GT(events, 0);
  }

  const std::string text = ScrapeText();
  const std::vector<Sample> samples = ParseExposition(text);

  // gRPC, with go-grpc-prometheus's names and labels.
  const Labels submit = TrackerMethod("SubmitTask");
  EXPECT_EQ(ValueOf(samples, "grpc_server_started_total", submit), 6);
  EXPECT_EQ(
      ValueOf(samples, "grpc_server_handled_total", WithCode(submit, "OK")), 4);
  EXPECT_EQ(ValueOf(samples, "grpc_server_handled_total",
                    WithCode(submit, "InvalidArgument")),
            2);
  EXPECT_EQ(ValueOf(samples, "grpc_server_handling_seconds_count", submit), 6);
  EXPECT_EQ(ValueOf(samples, "grpc_server_handled_total",
                    WithCode(TrackerMethod("RecordEvent"), "OK")),
            4);
  const Labels check = {{"grpc_method", "Check"},
                        {"grpc_service", "grpc.health.v1.Health"},
                        {"grpc_type", "unary"}};
  EXPECT_EQ(
      ValueOf(samples, "grpc_server_handled_total", WithCode(check, "OK")), 1);
  // Unary TaskTracker methods are counted by their handlers, streaming ones
  // by the interceptor, as the health service's are: all the same way.
  const Labels watch = TrackerMethod("WatchTask", "server_stream");
  EXPECT_EQ(ValueOf(samples, "grpc_server_started_total", watch), 1);
  EXPECT_EQ(
      ValueOf(samples, "grpc_server_handled_total", WithCode(watch, "OK")), 1);
  EXPECT_EQ(ValueOf(samples, "grpc_server_handling_seconds_count", watch), 1);
  EXPECT_EQ(ValueOf(samples, "grpc_server_handling_seconds_count", check), 1);
  // Methods not called yet are there at zero, with their type.
  EXPECT_EQ(ValueOf(samples, "grpc_server_handled_total",
                    WithCode(TrackerMethod("GetStats"), "OK")),
            0);
  EXPECT_EQ(ValueOf(samples, "grpc_server_started_total",
                    TrackerMethod("ExportTasks", "server_stream")),
            0);
  EXPECT_EQ(
      ValueOf(samples, "grpc_server_started_total",
              {{"grpc_method", "ServerReflectionInfo"},
               {"grpc_service", "grpc.reflection.v1alpha.ServerReflection"},
               {"grpc_type", "bidi_stream"}}),
      0);

  // The domain.
  EXPECT_EQ(
      ValueOf(samples, "tasktrail_tasks_submitted_total", {{"model", "veo-3"}}),
      1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_tasks_submitted_total",
                    {{"model", "kling-v2-1"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_task_transitions_total",
                    {{"model", "veo-3"}, {"state", "SUBMITTED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_task_transitions_total",
                    {{"model", "veo-3"}, {"state", "QUEUED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_task_transitions_total",
                    {{"model", "veo-3"}, {"state", "FAILED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_task_transitions_total",
                    {{"model", "kling-v2-1"}, {"state", "QUEUED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_task_failures_total",
                    {{"model", "veo-3"},
                     {"category", "UPSTREAM_UNAVAILABLE"},
                     {"origin", "PROVIDER"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_duplicates_blocked_total",
                    {{"model", "veo-3"}, {"reason", "SAME_REQUEST_ID"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_duplicates_blocked_total",
                    {{"model", "kling-v2-1"}, {"reason", "SAME_CONTENT"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_validation_rejections_total",
                    {{"model", "veo-3"}, {"reason", "RATIO_UNSUPPORTED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_validation_rejections_total",
                    {{"model", "(unknown)"}, {"reason", "MODEL_UNKNOWN"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_refunds_total", {{"model", "veo-3"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_queue_wait_seconds_count",
                    {{"model", "veo-3"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_queue_wait_seconds_count",
                    {{"model", "kling-v2-1"}}),
            0);
  EXPECT_EQ(ValueOf(samples, "tasktrail_tasks_unfinished",
                    {{"model", "kling-v2-1"}, {"state", "QUEUED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_tasks_unfinished",
                    {{"model", "veo-3"}, {"state", "QUEUED"}}),
            0);
  EXPECT_EQ(
      ValueOf(samples, "tasktrail_tasks_stalled", {{"model", "kling-v2-1"}}),
      0);

  // The store and the process.
  EXPECT_EQ(ValueOf(samples, "tasktrail_store_failed"), 0);
  EXPECT_GE(ValueOf(samples, "tasktrail_store_commit_batch_size_count"), 1);
  EXPECT_GE(ValueOf(samples, "tasktrail_store_commit_seconds_count"), 1);
  EXPECT_GE(ValueOf(samples, "tasktrail_rocksdb_block_cache_usage_bytes"), 0);
  EXPECT_GE(ValueOf(samples, "tasktrail_rocksdb_live_data_bytes"), 0);
  EXPECT_GT(ValueOf(samples, "process_resident_memory_bytes"), 0);
  EXPECT_GT(ValueOf(samples, "process_open_fds"), 0);
  EXPECT_GT(ValueOf(samples, "process_max_fds"), 0);
  EXPECT_GT(ValueOf(samples, "process_start_time_seconds"), 1.7e9);

  // No id becomes a label; client-chosen model names do not either.
  EXPECT_THAT(text, Not(HasSubstr(veo.task_id())));
  EXPECT_THAT(text, Not(HasSubstr("acct-metrics")));
  EXPECT_THAT(text, Not(HasSubstr("no-such-model-7")));

  // promtool accepts the exposition.
  if (!std::filesystem::exists("/usr/bin/promtool")) {
    FAIL() << "promtool is not installed (Debian package prometheus; bash "
              "scripts/install-deps.sh --test installs it)";
  }
  const std::string path = db_.Write("metrics.txt", text);
  const CommandResult checked = RunCommand(
      {"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + path});
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

TEST_F(MetricsE2eTest, AnUnknownMethodPathIsCountedUnderAFixedLabel) {
  StartServer();
  auto channel = grpc::CreateChannel(server_->address(),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  for (int i = 0; i < 3; ++i) {
    grpc::Slice empty_message("", 0);
    grpc::ByteBuffer request(&empty_message, 1);
    grpc::ByteBuffer response;
    std::unique_ptr<grpc::ClientContext> context = DeadlineContext();
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(
        context.get(),
        "/tasktrail.v1.TaskTracker/NoSuchMethod" + std::to_string(i),
        grpc::StubOptions(), &request, &response, [&](grpc::Status answer) {
          status = answer;
          done.Notify();
        });
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  const std::string text = ScrapeText();
  EXPECT_THAT(text, Not(HasSubstr("NoSuchMethod")));
  const std::vector<Sample> samples = ParseExposition(text);
  const Labels unknown = {{"grpc_method", "(unknown)"},
                          {"grpc_service", "(unknown)"},
                          {"grpc_type", "unknown"}};
  EXPECT_EQ(ValueOf(samples, "grpc_server_handled_total",
                    WithCode(unknown, "Unimplemented")),
            3);
}

TEST_F(MetricsE2eTest, GaugesDescribeTheStoreRightAfterARestart) {
  StartServer();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(
        SubmitOk(Request("veo-3", "restart take " + std::to_string(i)))
            .task_id());
  }
  Queue(ids[0]);
  ASSERT_EQ(server_->Stop(), 0);

  StartServer();
  const std::vector<Sample> samples = Scrape();
  EXPECT_EQ(ValueOf(samples, "tasktrail_tasks_unfinished",
                    {{"model", "veo-3"}, {"state", "SUBMITTED"}}),
            2);
  EXPECT_EQ(ValueOf(samples, "tasktrail_tasks_unfinished",
                    {{"model", "veo-3"}, {"state", "QUEUED"}}),
            1);
  EXPECT_EQ(ValueOf(samples, "tasktrail_tasks_unfinished",
                    {{"model", "veo-3"}, {"state", "RUNNING"}}),
            0);
  // Counters count what this process did.
  EXPECT_EQ(
      ValueOf(samples, "tasktrail_tasks_submitted_total", {{"model", "veo-3"}}),
      0);
}

TEST_F(MetricsE2eTest, StalledTasksAreCountedOnceTheirPollerIsLate) {
  StartServer({"--stale-after", "1s"});
  const v1::Task task = SubmitOk(Request("kling-v2-1", "stalled take"));
  Queue(task.task_id());
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  double stalled = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    stalled =
        ValueOf(Scrape(), "tasktrail_tasks_stalled", {{"model", "kling-v2-1"}});
    if (stalled == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(stalled, 1);
  // A poll brings it back.
  v1::RecordEventRequest polled;
  polled.set_task_id(task.task_id());
  polled.mutable_polled()->set_upstream_status("queued");
  Record(polled);
  EXPECT_EQ(
      ValueOf(Scrape(), "tasktrail_tasks_stalled", {{"model", "kling-v2-1"}}),
      0);
}

TEST_F(MetricsE2eTest, OffByDefault) {
  ServerProcess server(db_.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  EXPECT_TRUE(server.WaitForLog("metrics=off"));
  EXPECT_EQ(ListeningSockets(server.pid()), 1);  // the gRPC port alone
  ASSERT_EQ(server.Stop(), 0);

  StartServer();
  EXPECT_EQ(ListeningSockets(server_->pid()), 2);
}

TEST_F(MetricsE2eTest, ABadMetricsAddressStopsTheStartNamingTheFlag) {
  // A port in use.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string taken =
      "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  for (const std::string& metrics :
       {taken, std::string("not-an-address"), std::string("0.0.0.0:9464")}) {
    SCOPED_TRACE(metrics);
    ServerProcess server(db_.path(), {"--metrics-listen", metrics});
    std::string error;
    EXPECT_FALSE(server.Start(&error));
    EXPECT_THAT(error, HasSubstr("--metrics-listen"));
  }
  close(fd);
}

TEST_F(MetricsE2eTest, ARealPrometheusScrapesTheServer) {
  if (!std::filesystem::exists("/usr/bin/prometheus")) {
    FAIL() << "prometheus is not installed (Debian package prometheus; bash "
              "scripts/install-deps.sh --test installs it)";
  }
  StartServer();
  for (int i = 0; i < 3; ++i) {
    SubmitOk(Request("veo-3", "scraped take " + std::to_string(i)));
  }
  TempDir run("tasktrail-prometheus");
  run.Write("prometheus.yml",
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: tasktrail\n"
            "    static_configs:\n"
            "      - targets: ['" +
                metrics_address_ + "']\n");
  const std::string web = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  BackgroundProcess prometheus;
  ASSERT_TRUE(prometheus.Start(
      {"/usr/bin/prometheus", "--config.file=" + run.File("prometheus.yml"),
       "--storage.tsdb.path=" + run.File("data"),
       "--web.listen-address=" + web},
      run.path(), run.File("prometheus.log")));

  // grpc_server_handled_total{grpc_method="SubmitTask",grpc_code="OK"}
  const std::string query =
      "/api/v1/query?query=grpc_server_handled_total%7Bgrpc_method%3D%22"
      "SubmitTask%22%2Cgrpc_code%3D%22OK%22%7D";
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::string answer;
  bool found = false;
  while (!found && std::chrono::steady_clock::now() < deadline) {
    answer = HttpGet(web, query).body;
    found = answer.find("\"job\":\"tasktrail\"") != std::string::npos &&
            answer.find(",\"3\"]") != std::string::npos;
    if (!found) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(found) << "last answer: " << answer << "\nprometheus log:\n"
                     << [&] {
                          std::ifstream in(run.File("prometheus.log"));
                          std::stringstream text;
                          text << in.rdbuf();
                          return text.str().substr(0, 4000);
                        }();
  prometheus.Stop();
}

}  // namespace
}  // namespace tasktrail::testing
