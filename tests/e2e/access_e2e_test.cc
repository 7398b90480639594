// Who may do what, through the real server: bearer tokens and roles, the
// principal recorded as actor and author, the audit log of support reads,
// the loopback-only rule without an auth file, TLS and mutual TLS.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kBackendToken[] = "backend-token-7f3a9c";
constexpr char kSupportToken[] = "support-token-51be20";
constexpr char kAdminToken[] = "admin-token-c0ffee11";

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth_file_ =
        files_.Write("auth",
                     "# role principal sha256(token)\n"
                     "backend gateway-1 " +
                         Sha256Hex(kBackendToken) + "\n" + "support alice " +
                         Sha256Hex(kSupportToken) + "\n\n" + "admin root " +
                         Sha256Hex(kAdminToken) + "\n");
    server_ = std::make_unique<ServerProcess>(
        db_.path(), std::vector<std::string>{"--auth-file", auth_file_});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  grpc::Status Submit(const std::string& token, v1::SubmitTaskResponse* out) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-1");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt("northern lights over a fjord");
    return stub_->SubmitTask(AuthContext(token).get(), request, out);
  }

  CommandResult Cli(const std::string& token,
                    const std::vector<std::string>& args) {
    std::vector<std::string> env;
    if (!token.empty()) env.push_back("TASKTRAIL_TOKEN=" + token);
    return server_->RunCli(args, env);
  }

  TempDir db_;
  TempDir files_;
  std::string auth_file_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(AccessTest, MissingOrUnknownTokensAreUnauthenticated) {
  v1::SubmitTaskResponse response;
  EXPECT_EQ(Submit("", &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Submit("not-a-known-token", &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::ListModelsResponse models;
  EXPECT_EQ(
      stub_->ListModels(AuthContext("").get(), v1::ListModelsRequest(), &models)
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AccessTest, RolesAreCheckedPerRpcAndNamedWhenRefused) {
  v1::SubmitTaskResponse response;
  grpc::Status denied = Submit(kSupportToken, &response);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("support"));
  EXPECT_THAT(denied.error_message(), HasSubstr("SubmitTask"));

  ASSERT_TRUE(Submit(kBackendToken, &response).ok());
  v1::AddNoteRequest note;
  note.set_task_id(response.task().task_id());
  note.set_text("backends do not write notes");
  v1::Task task;
  grpc::Status backend_note =
      stub_->AddNote(AuthContext(kBackendToken).get(), note, &task);
  EXPECT_EQ(backend_note.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(backend_note.error_message(), HasSubstr("AddNote"));
  EXPECT_TRUE(Submit(kAdminToken, &response).ok());
}

TEST_F(AccessTest, ThePrincipalIsTheActorAndTheNoteAuthor) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(Submit(kBackendToken, &submitted).ok());
  v1::AddNoteRequest note;
  note.set_task_id(submitted.task().task_id());
  note.set_author("mallory");  // ignored: the token says who wrote it
  note.set_text("user asked about the charge");
  v1::Task task;
  ASSERT_TRUE(
      stub_->AddNote(AuthContext(kSupportToken).get(), note, &task).ok());
  ASSERT_EQ(task.notes_size(), 1);
  EXPECT_EQ(task.notes(0).author(), "alice");

  v1::GetTaskRequest get;
  get.set_task_id(submitted.task().task_id());
  get.set_include_events(true);
  ASSERT_TRUE(
      stub_->GetTask(AuthContext(kSupportToken).get(), get, &task).ok());
  ASSERT_EQ(task.events_size(), 2);
  EXPECT_EQ(task.events(0).actor(), "gateway-1");
  EXPECT_EQ(task.events(1).actor(), "alice");
}

TEST_F(AccessTest, SupportReadsAreAuditedForAdminsOnly) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(Submit(kBackendToken, &submitted).ok());
  const std::string id = submitted.task().task_id();
  v1::GetTaskRequest get;
  get.set_task_id(id);
  v1::Task task;
  ASSERT_TRUE(
      stub_->GetTask(AuthContext(kSupportToken).get(), get, &task).ok());
  ASSERT_TRUE(
      stub_->GetTask(AuthContext(kBackendToken).get(), get, &task).ok());
  v1::GetQueueStatusRequest queued;
  queued.set_task_id(id);
  v1::QueueStatus status;
  ASSERT_TRUE(
      stub_->GetQueueStatus(AuthContext(kSupportToken).get(), queued, &status)
          .ok());

  v1::ListAuditRequest request;
  request.set_task_id(id);
  v1::ListAuditResponse audit;
  EXPECT_EQ(stub_->ListAudit(AuthContext(kSupportToken).get(), request, &audit)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(
      stub_->ListAudit(AuthContext(kAdminToken).get(), request, &audit).ok());
  // Backend reads are the gateway's own business and are not audited.
  ASSERT_EQ(audit.entries_size(), 2);
  EXPECT_EQ(audit.entries(0).rpc(), "GetQueueStatus");  // newest first
  EXPECT_EQ(audit.entries(1).rpc(), "GetTask");
  EXPECT_EQ(audit.entries(1).principal(), "alice");
  EXPECT_EQ(audit.entries(1).role(), "support");

  CommandResult cli = Cli(kAdminToken, {"audit", id});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("alice"));
  EXPECT_EQ(Cli(kSupportToken, {"audit", id}).exit_code, 5);
  EXPECT_EQ(Cli("", {"get", id}).exit_code, 5);
  CommandResult with_token = Cli(kSupportToken, {"get", id});
  EXPECT_EQ(with_token.exit_code, 0) << with_token.err;
  EXPECT_THAT(with_token.out + with_token.err,
              ::testing::Not(HasSubstr(kSupportToken)));
}

TEST_F(AccessTest, HealthNeedsNoToken) {
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      server_->address(), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(AuthContext("").get(), request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(ListenPolicyTest, NonLoopbackNeedsAnAuthFileOrInsecure) {
  TempDir db;
  CommandResult refused = RunCommand(
      {DaemonPath(), "--listen", "0.0.0.0:0", "--db", db.File("data")});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("--auth-file"));

  ServerProcess insecure(db.File("data"),
                         {"--listen", "0.0.0.0:0", "--insecure"});
  std::string error;
  ASSERT_TRUE(insecure.Start(&error)) << error;
  EXPECT_THAT(insecure.Log(), HasSubstr("INSECURE"));
}

TEST(ListenPolicyTest, ABadAuthFileStopsStartupNamingTheLine) {
  TempDir dir;
  const std::string auth = dir.Write(
      "auth", "backend gw " + Sha256Hex("x") + "\nsuperuser eve abc\n");
  CommandResult result =
      RunCommand({DaemonPath(), "--db", dir.File("data"), "--auth-file", auth});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr(auth + ":2"));
  EXPECT_THAT(result.err, HasSubstr("superuser"));
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, made
// with the openssl command line in a temp dir.
class Pki {
 public:
  Pki() {
    const std::string script =
        "set -e; cd '" + dir_.path() +
        "';"
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
        "  -keyout ca.key -out ca.pem 2>/dev/null;"
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext;"
        "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
        "  -keyout server.key -out server.csr 2>/dev/null;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "  -CAcreateserial -days 2 -extfile san.ext -out server.pem "
        "2>/dev/null;"
        "openssl req -newkey rsa:2048 -nodes -subj /CN=client "
        "  -keyout client.key -out client.csr 2>/dev/null;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "  -CAcreateserial -days 2 -out client.pem 2>/dev/null";
    CommandResult result = RunCommand({"/bin/sh", "-c", script});
    ok_ = result.exit_code == 0;
    error_ = result.err;
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  TempDir dir_;
  bool ok_ = false;
  std::string error_;
};

TEST(TlsTest, TlsServesTlsClientsAndRefusesPlaintext) {
  Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  TempDir db;
  ServerProcess server(db.path(), {"--tls-cert", pki.File("server.pem"),
                                   "--tls-key", pki.File("server.key")});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;

  CommandResult tls = RunCommand({CliPath(), "--server", server.address(),
                                  "--tls-ca", pki.File("ca.pem"), "models"});
  EXPECT_EQ(tls.exit_code, 0) << tls.err;
  EXPECT_THAT(tls.out, HasSubstr("kling-v2-1"));
  CommandResult plaintext = RunCommand(
      {CliPath(), "--server", server.address(), "--timeout", "3", "models"});
  EXPECT_EQ(plaintext.exit_code, 4);
}

TEST(TlsTest, MutualTlsNeedsAClientCertificate) {
  Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  TempDir db;
  ServerProcess server(db.path(), {"--tls-cert", pki.File("server.pem"),
                                   "--tls-key", pki.File("server.key"),
                                   "--tls-client-ca", pki.File("ca.pem")});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  CommandResult without =
      RunCommand({CliPath(), "--server", server.address(), "--tls-ca",
                  pki.File("ca.pem"), "--timeout", "3", "models"});
  EXPECT_NE(without.exit_code, 0);
  CommandResult with =
      RunCommand({CliPath(), "--server", server.address(), "--tls-ca",
                  pki.File("ca.pem"), "--tls-cert", pki.File("client.pem"),
                  "--tls-key", pki.File("client.key"), "models"});
  EXPECT_EQ(with.exit_code, 0) << with.err;
}

}  // namespace
}  // namespace tasktrail::testing
