// Catalog and validation through the real server and the CLI: rich error
// details, ValidateTask, ListModels, --catalog, SIGHUP reload, and the
// `validate` / `models` commands.
#include <signal.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// A one-model catalog.
std::string SmallCatalog(const std::string& version, const std::string& name) {
  return R"({"catalog_version": ")" + version + R"(", "models": [{"name": ")" +
         name + R"(", "kind": "TASK_KIND_VIDEO", "aspect_ratios": ["16:9"],
         "resolutions": [{"name": "720p"}], "durations": [5],
         "defaults": {"aspect_ratio": "16:9", "resolution": "720p",
                      "duration_seconds": 5}}]})";
}

class CatalogE2eTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>(db_.path(), std::move(args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  CommandResult Cli(const std::vector<std::string>& args) {
    return server_->RunCli(args);
  }

  std::string Version() {
    v1::ListModelsResponse models;
    EXPECT_TRUE(stub_
                    ->ListModels(DeadlineContext().get(),
                                 v1::ListModelsRequest(), &models)
                    .ok());
    return models.catalog_version();
  }

  TempDir db_;
  TempDir files_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

v1::SubmitTaskRequest BadKlingRequest() {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-1");
  request.set_model("kling-v2-1");
  request.mutable_params()->set_prompt("a storm over the sea");
  request.mutable_params()->set_aspect_ratio("4:3");
  request.mutable_params()->set_duration_seconds(7);
  auto* image = request.mutable_params()->add_reference_images();
  image->set_uri("https://cdn.example.com/ref.png");
  image->set_mime_type("image/png");
  image->set_size_bytes(12 * 1024 * 1024);
  return request;
}

TEST_F(CatalogE2eTest,
       SubmitRejectsWithStandardRichErrorDetailsAndStoresNothing) {
  StartServer();
  v1::SubmitTaskResponse response;
  grpc::Status status =
      stub_->SubmitTask(DeadlineContext().get(), BadKlingRequest(), &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("3 problems"));

  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  google::rpc::BadRequest bad_request;
  google::rpc::ErrorInfo info;
  for (const auto& any : details.details()) {
    if (any.Is<google::rpc::BadRequest>()) any.UnpackTo(&bad_request);
    if (any.Is<google::rpc::ErrorInfo>()) any.UnpackTo(&info);
  }
  std::vector<std::pair<std::string, std::string>> violations;
  for (const auto& violation : bad_request.field_violations()) {
    violations.emplace_back(violation.field(), violation.reason());
    EXPECT_FALSE(violation.description().empty());
  }
  EXPECT_THAT(
      violations,
      UnorderedElementsAre(
          std::make_pair("params.aspect_ratio", "RATIO_UNSUPPORTED"),
          std::make_pair("params.duration_seconds", "DURATION_UNSUPPORTED"),
          std::make_pair("params.reference_images[0].size_bytes",
                         "REFERENCE_IMAGE_TOO_LARGE")));
  EXPECT_EQ(info.reason(), "INVALID_TASK_PARAMETERS");
  EXPECT_EQ(info.domain(), "tasktrail.v1");
  EXPECT_EQ(info.metadata().at("model"), "kling-v2-1");
  EXPECT_EQ(info.metadata().at("violations"), "3");

  v1::ListTasksResponse tasks;
  ASSERT_TRUE(
      stub_->ListTasks(DeadlineContext().get(), v1::ListTasksRequest(), &tasks)
          .ok());
  EXPECT_EQ(tasks.tasks_size(), 0);
}

TEST_F(CatalogE2eTest, ValidateAnswersOkWithViolationsAndRecordsNothing) {
  StartServer();
  v1::ValidateTaskRequest request;
  request.set_model("veo3");
  v1::ValidateTaskResponse response;
  ASSERT_TRUE(
      stub_->ValidateTask(DeadlineContext().get(), request, &response).ok());
  ASSERT_EQ(response.violations_size(), 1);
  EXPECT_EQ(response.violations(0).field(), "model");
  EXPECT_EQ(response.violations(0).reason(), "MODEL_UNKNOWN");
  EXPECT_THAT(response.violations(0).description(), HasSubstr("veo-3"));
  EXPECT_FALSE(response.catalog_version().empty());

  request.set_model("veo-3");
  request.mutable_params()->set_prompt("waves");
  ASSERT_TRUE(
      stub_->ValidateTask(DeadlineContext().get(), request, &response).ok());
  EXPECT_EQ(response.violations_size(), 0);
}

TEST_F(CatalogE2eTest, AcceptedTaskRecordsKindCatalogVersionAndDefaults) {
  StartServer();
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-1");
  request.set_model("veo-3");
  request.mutable_params()->set_prompt("a lighthouse");
  request.mutable_params()->set_resolution("1080P");
  v1::SubmitTaskResponse response;
  ASSERT_TRUE(
      stub_->SubmitTask(DeadlineContext().get(), request, &response).ok());
  EXPECT_EQ(response.task().kind(), v1::TASK_KIND_VIDEO);
  EXPECT_EQ(response.task().catalog_version(), Version());
  EXPECT_EQ(response.task().params().aspect_ratio(), "16:9");
  EXPECT_EQ(response.task().params().resolution(), "1080p");
  EXPECT_EQ(response.task().params().duration_seconds(), 8);
}

TEST_F(CatalogE2eTest, ListModelsFiltersByKind) {
  StartServer();
  v1::ListModelsRequest request;
  request.set_kind(v1::TASK_KIND_IMAGE);
  v1::ListModelsResponse response;
  ASSERT_TRUE(
      stub_->ListModels(DeadlineContext().get(), request, &response).ok());
  std::set<std::string> names;
  for (const auto& model : response.models()) names.insert(model.name());
  EXPECT_EQ(names, (std::set<std::string>{"gpt-image-1", "dall-e-3"}));
}

TEST_F(CatalogE2eTest, ModelsJsonIsACatalogTheServerAccepts) {
  StartServer();
  CommandResult models = Cli({"models", "--json"});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  const std::string path = files_.Write("catalog.json", models.out);
  const std::string version = Version();

  TempDir other_db;
  ServerProcess second(other_db.path(), {"--catalog", path});
  std::string error;
  ASSERT_TRUE(second.Start(&error)) << error;
  auto stub = second.NewStub();
  v1::ListModelsResponse reloaded;
  ASSERT_TRUE(stub->ListModels(DeadlineContext().get(), v1::ListModelsRequest(),
                               &reloaded)
                  .ok());
  EXPECT_EQ(reloaded.catalog_version(), version);
  EXPECT_EQ(reloaded.models_size(), 7);
}

TEST_F(CatalogE2eTest, BadCatalogFileStopsStartupWithTheFieldPath) {
  const std::string path = files_.Write(
      "bad.json", R"({"models": [{"name": "x", "kind": "TASK_KIND_VIDEO",
      "aspect_ratios": ["16-9"], "durations": [5]}]})");
  ServerProcess server(db_.path(), {"--catalog", path});
  std::string error;
  EXPECT_FALSE(server.Start(&error));
  EXPECT_THAT(error, HasSubstr("models[0].aspect_ratios[0]"));
}

TEST_F(CatalogE2eTest, SighupReloadsAGoodCatalogAndKeepsTheOldOnABadOne) {
  const std::string path =
      files_.Write("catalog.json", SmallCatalog("v1", "model-a"));
  StartServer({"--catalog", path});
  EXPECT_EQ(Version(), "v1");

  files_.Write("catalog.json", SmallCatalog("v2", "model-b"));
  server_->Notify(SIGHUP);
  ASSERT_TRUE(server_->WaitForLog("catalog reloaded path=")) << server_->Log();
  EXPECT_EQ(Version(), "v2");

  files_.Write("catalog.json", R"({"models": [{"name": "broken"}]})");
  server_->Notify(SIGHUP);
  ASSERT_TRUE(server_->WaitForLog("catalog reload rejected"));
  EXPECT_THAT(server_->Log(), HasSubstr("models[0].kind"));
  EXPECT_EQ(Version(), "v2");
  v1::ValidateTaskRequest request;
  request.set_model("model-b");
  request.mutable_params()->set_prompt("still here");
  v1::ValidateTaskResponse response;
  ASSERT_TRUE(
      stub_->ValidateTask(DeadlineContext().get(), request, &response).ok());
  EXPECT_EQ(response.violations_size(), 0);
}

TEST_F(CatalogE2eTest, CliValidateExitsOneOnViolationsAndZeroWhenValid) {
  StartServer();
  CommandResult bad = Cli({"validate", "--model", "kling-v2-1", "--prompt", "x",
                           "--ratio", "4:3", "--duration", "7"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  const std::string all = bad.out + bad.err;
  EXPECT_THAT(all, HasSubstr("params.aspect_ratio"));
  EXPECT_THAT(all, HasSubstr("16:9"));
  EXPECT_THAT(all, HasSubstr("params.duration_seconds"));

  CommandResult good =
      Cli({"validate", "--model", "kling-v2-1", "--prompt", "x", "--ratio",
           "16 : 9", "--duration", "10", "--ref-image",
           "https://cdn.example.com/a.png,image/png,1000,800x600"});
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;

  CommandResult table = Cli({"models", "--kind", "video"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_THAT(table.out, HasSubstr("kling-v2-1"));
  EXPECT_THAT(table.out, ::testing::Not(HasSubstr("dall-e-3")));
}

}  // namespace
}  // namespace tasktrail::testing
