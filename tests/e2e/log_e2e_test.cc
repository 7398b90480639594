// tasktraild --log-format json: a real daemon's stderr, through a start, a
// catalog reload that works and one that fails, a request libprotobuf cannot
// parse, gRPC's own lines and a stop, is one JSON object per line with time,
// level, message and the keys of the text format; no secret reaches it.
// (disk_full_e2e_test.cc checks the lines of a store failure.)
#include <signal.h>
#include <stdlib.h>

#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using Struct = google::protobuf::Struct;

// An OpenAI-style key, as a catalog file might carry by mistake.
constexpr char kSecret[] = "sk-proj-4fJk29Xz0qLmN8vB7cR1tY6wE3";

std::string OneModelCatalog(const std::string& version,
                            const std::string& kind) {
  return R"({"catalog_version": ")" + version +
         R"(", "models": [{"name": "model-a", "kind": ")" + kind +
         R"(", "aspect_ratios": ["16:9"], "resolutions": [{"name": "720p"}],
         "durations": [5], "defaults": {"aspect_ratio": "16:9",
         "resolution": "720p", "duration_seconds": 5}}]})";
}

std::string String(const Struct& line, const std::string& key) {
  auto it = line.fields().find(key);
  if (it == line.fields().end() ||
      it->second.kind_case() != google::protobuf::Value::kStringValue) {
    return "<no string " + key + ">";
  }
  return it->second.string_value();
}

// True when `key` holds a JSON number.
bool IsNumber(const Struct& line, const std::string& key) {
  auto it = line.fields().find(key);
  return it != line.fields().end() &&
         it->second.kind_case() == google::protobuf::Value::kNumberValue;
}

// The first line whose `key` is `value`, or nullptr.
const Struct* Find(const std::vector<Struct>& lines, const std::string& key,
                   const std::string& value) {
  for (const Struct& line : lines) {
    if (String(line, key) == value) return &line;
  }
  return nullptr;
}

TEST(JsonLogE2eTest, EveryLineIsAJsonObjectWithTheTextFormatsKeys) {
  TempDir db;
  TempDir files;
  const std::string catalog =
      files.Write("catalog.json", OneModelCatalog("v1", "TASK_KIND_VIDEO"));
  // gRPC writes lines of its own at info level when asked to; they go
  // through the same formatter.
  setenv("GRPC_VERBOSITY", "info", 1);
  ServerProcess server(db.path(),
                       {"--log-format", "json", "--catalog", catalog});
  std::string error;
  const bool started = server.Start(&error);
  unsetenv("GRPC_VERBOSITY");
  ASSERT_TRUE(started) << error;

  // A reload that works, then one whose error quotes a secret.
  files.Write("catalog.json", OneModelCatalog("v2", "TASK_KIND_VIDEO"));
  server.Notify(SIGHUP);
  ASSERT_TRUE(server.WaitForLog(R"("message":"catalog reloaded")"))
      << server.Log();
  files.Write("catalog.json", OneModelCatalog("v3", kSecret));
  server.Notify(SIGHUP);
  ASSERT_TRUE(server.WaitForLog(R"("message":"catalog reload rejected")"))
      << server.Log();

  // A prompt that is not UTF-8: the server cannot parse the request, and
  // libprotobuf logs why.
  {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-1");
    request.set_model("model-a");
    request.mutable_params()->set_prompt("caf\xE9 \xFF");
    v1::SubmitTaskResponse response;
    const grpc::Status status = server.NewStub()->SubmitTask(
        DeadlineContext().get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
  }  // closes the connection, which would hold up the shutdown
  ASSERT_TRUE(server.WaitForLog(R"("component":"libprotobuf")"))
      << server.Log();
  EXPECT_EQ(server.Stop(), 0) << server.Log();

  const std::string log = server.Log();
  EXPECT_THAT(log, Not(HasSubstr("sk-proj-4fJk")));
  std::vector<Struct> lines;
  ASSERT_TRUE(ParseJsonLog(log, &lines, &error)) << error;
  const std::regex rfc3339_utc(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  for (const Struct& line : lines) {
    SCOPED_TRACE(line.DebugString());
    EXPECT_TRUE(std::regex_match(String(line, "time"), rfc3339_utc));
    EXPECT_THAT(String(line, "level"),
                AnyOf("info", "warning", "error", "critical"));
    EXPECT_FALSE(String(line, "message").empty());
  }

  const Struct* started_line = Find(lines, "message", "tasktraild started");
  ASSERT_NE(started_line, nullptr) << log;
  EXPECT_EQ(String(*started_line, "level"), "info");
  EXPECT_EQ(String(*started_line, "listen"), server.address());
  EXPECT_EQ(String(*started_line, "db"), db.path());
  EXPECT_FALSE(String(*started_line, "version").empty());
  EXPECT_TRUE(IsNumber(*started_line, "pid"));
  EXPECT_TRUE(started_line->fields().at("sync").bool_value());

  const Struct* reloaded = Find(lines, "message", "catalog reloaded");
  ASSERT_NE(reloaded, nullptr) << log;
  EXPECT_EQ(String(*reloaded, "path"), catalog);
  EXPECT_EQ(String(*reloaded, "version"), "v2");
  EXPECT_EQ(reloaded->fields().at("models").number_value(), 1);

  const Struct* rejected = Find(lines, "message", "catalog reload rejected");
  ASSERT_NE(rejected, nullptr) << log;
  EXPECT_EQ(String(*rejected, "level"), "error");
  EXPECT_EQ(String(*rejected, "path"), catalog);
  EXPECT_EQ(String(*rejected, "kept"), "v2");
  EXPECT_THAT(String(*rejected, "error"), HasSubstr("models[0].kind"));
  EXPECT_THAT(String(*rejected, "error"), HasSubstr("[REDACTED]"));

  const Struct* protobuf = Find(lines, "component", "libprotobuf");
  ASSERT_NE(protobuf, nullptr) << log;
  EXPECT_THAT(String(*protobuf, "message"), HasSubstr("invalid UTF-8"));
  EXPECT_FALSE(String(*protobuf, "file").empty());
  EXPECT_TRUE(IsNumber(*protobuf, "line"));
  EXPECT_TRUE(IsNumber(*protobuf, "suppressed"));

  const Struct* grpc_line = Find(lines, "component", "grpc");
  ASSERT_NE(grpc_line, nullptr) << log;
  EXPECT_FALSE(String(*grpc_line, "file").empty());
  EXPECT_TRUE(IsNumber(*grpc_line, "line"));

  const Struct* shutting_down = Find(lines, "message", "shutting down");
  ASSERT_NE(shutting_down, nullptr) << log;
  EXPECT_FALSE(String(*shutting_down, "signal").empty());
  const Struct* stopped = Find(lines, "message", "tasktraild stopped");
  ASSERT_NE(stopped, nullptr) << log;
  EXPECT_TRUE(IsNumber(*stopped, "writes"));
  EXPECT_TRUE(IsNumber(*stopped, "fsync_groups"));
}

TEST(JsonLogE2eTest, TextStaysTheDefaultAndAnUnknownFormatIsAUsageError) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_THAT(server.Log(), HasSubstr(" info tasktraild started version="));
  std::vector<Struct> lines;
  EXPECT_FALSE(ParseJsonLog(server.Log(), &lines, &error));

  const CommandResult bad =
      RunCommand({DaemonPath(), "--db", db.path(), "--log-format", "xml"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--log-format: expected text or json"));
}

}  // namespace
}  // namespace tasktrail::testing
