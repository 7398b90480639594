// Tests of access control (service/server/access.h): the auth file's good
// and malformed lines, bearer token checks, the role table and the refusal
// message.
#include "service/server/access.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kBackendToken[] = "backend-token-7f3a9c";
constexpr char kSupportToken[] = "support-token-51be20";
constexpr char kAdminToken[] = "admin-token-c0ffee11";

std::shared_ptr<const AccessTable> MustParse(const std::string& text) {
  auto table = AccessTable::Parse(text, "auth");
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *table : nullptr;
}

std::string ThreeRoles() {
  return absl::StrCat("# role principal sha256(token)\n",  //
                      "backend gateway-1 ", TokenDigest(kBackendToken),
                      "\n",                                                //
                      "\n",                                                //
                      "support alice ", TokenDigest(kSupportToken), "\n",  //
                      "   # an indented comment\n",                        //
                      "admin root ", TokenDigest(kAdminToken), "\n");
}

TEST(TokenDigestTest, IsTheLowerCaseHexSha256OfTheToken) {
  // FIPS 180-2 test vector.
  EXPECT_EQ(TokenDigest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(TokenDigest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(AccessTableTest, ParsesEveryRoleAndSkipsBlankAndCommentLines) {
  auto table = MustParse(ThreeRoles());
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->size(), 3u);

  auto backend = table->Authenticate(absl::StrCat("Bearer ", kBackendToken));
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ(backend->name, "gateway-1");
  EXPECT_EQ(backend->role, Role::kBackend);

  auto support = table->Authenticate(absl::StrCat("Bearer ", kSupportToken));
  ASSERT_TRUE(support.ok()) << support.status();
  EXPECT_EQ(support->name, "alice");
  EXPECT_EQ(support->role, Role::kSupport);

  auto admin = table->Authenticate(absl::StrCat("Bearer ", kAdminToken));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->name, "root");
  EXPECT_EQ(admin->role, Role::kAdmin);
}

TEST(AccessTableTest, AcceptsTabsRunsOfSpacesAndUpperCaseDigests) {
  const std::string text =
      absl::StrCat("  support\t\tbob    ",
                   absl::AsciiStrToUpper(TokenDigest(kSupportToken)), "  \r\n");
  auto table = MustParse(text);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->size(), 1u);
  auto caller = table->Authenticate(absl::StrCat("Bearer ", kSupportToken));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "bob");
  EXPECT_EQ(caller->role, Role::kSupport);
}

TEST(AccessTableTest, AnEmptyFileIsAnEmptyTable) {
  auto table = MustParse("# nobody yet\n\n");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->Authenticate("Bearer anything").status().code(),
            absl::StatusCode::kUnauthenticated);
}

struct MalformedCase {
  const char* name;
  std::string text;
  int line;
  const char* mentions;
};

TEST(AccessTableTest, EachMalformedLineIsInvalidArgumentNamingItsLine) {
  const std::string good =
      absl::StrCat("backend gw ", TokenDigest(kBackendToken), "\n");
  const std::string digest = TokenDigest(kSupportToken);
  const MalformedCase cases[] = {
      {"unknown role", good + "superuser eve " + digest + "\n", 2,
       "unknown role \"superuser\""},
      {"role in capitals", "Admin root " + digest + "\n", 1, "unknown role"},
      {"missing digest", "# header\n" + good + "support alice\n", 3,
       "ROLE PRINCIPAL SHA256HEX"},
      {"role alone", "admin\n", 1, "ROLE PRINCIPAL SHA256HEX"},
      {"extra field", "support alice " + digest + " extra\n", 1,
       "ROLE PRINCIPAL SHA256HEX"},
      {"digest one digit short", "support alice " + digest.substr(1) + "\n", 1,
       "64 hex"},
      {"digest one digit long", "support alice " + digest + "0\n", 1, "64 hex"},
      {"digest not hex", "support alice " + std::string(64, 'g') + "\n", 1,
       "64 hex"},
      {"the token instead of its digest",
       absl::StrCat("support alice ", kSupportToken, "\n"), 1, "64 hex"},
      {"digest listed twice",
       good + "\n" + "admin root " + TokenDigest(kBackendToken) + "\n", 3,
       "listed twice"},
      {"digest listed twice in another case",
       good + "admin root " +
           absl::AsciiStrToUpper(TokenDigest(kBackendToken)) + "\n",
       2, "listed twice"},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto table = AccessTable::Parse(c.text, "/etc/tasktrail/auth");
    ASSERT_FALSE(table.ok()) << c.text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(table.status().message()),
                StartsWith(absl::StrCat("/etc/tasktrail/auth:", c.line, ": ")));
    EXPECT_THAT(std::string(table.status().message()), HasSubstr(c.mentions));
  }
}

TEST(AccessTableTest, FromFileReadsTheFileAndNamesItInErrors) {
  testing::TempDir dir("access-test");
  const std::string good = dir.Write("auth", ThreeRoles());
  auto table = AccessTable::FromFile(good);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)->size(), 3u);

  const std::string bad = dir.Write("bad", "admin root 1234\n");
  auto refused = AccessTable::FromFile(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              StartsWith(bad + ":1: "));

  auto missing = AccessTable::FromFile(dir.File("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing"));
}

TEST(AuthenticateTest, MissingMalformedOrUnknownCredentialsAreUnauthenticated) {
  auto table = MustParse(ThreeRoles());
  ASSERT_NE(table, nullptr);
  const std::string digest = TokenDigest(kAdminToken);
  for (const std::string& authorization : {
           std::string(""),
           std::string(kAdminToken),                   // no scheme
           absl::StrCat("Basic ", kAdminToken),        // another scheme
           absl::StrCat("Bearer", kAdminToken),        // no space
           std::string("Bearer "),                     // no token
           std::string("Bearer not-a-known-token"),    //
           absl::StrCat("Bearer ", kAdminToken, "x"),  // a longer token
           absl::StrCat("Bearer ", digest),            // the digest itself
       }) {
    SCOPED_TRACE(authorization);
    auto caller = table->Authenticate(authorization);
    ASSERT_FALSE(caller.ok());
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(caller.status().message()),
                ::testing::Not(HasSubstr(kAdminToken)));
  }
}

TEST(AuthenticateTest, TheSchemeMayBeLowerCaseAndSpacesAroundAreIgnored) {
  auto table = MustParse(ThreeRoles());
  ASSERT_NE(table, nullptr);
  for (const std::string& authorization : {
           absl::StrCat("bearer ", kSupportToken),
           absl::StrCat("  Bearer ", kSupportToken, " "),
           absl::StrCat("Bearer   ", kSupportToken),
       }) {
    SCOPED_TRACE(authorization);
    auto caller = table->Authenticate(authorization);
    ASSERT_TRUE(caller.ok()) << caller.status();
    EXPECT_EQ(caller->name, "alice");
    EXPECT_EQ(caller->role, Role::kSupport);
  }
}

TEST(AllowedTest, EachRpcAllowsTheRolesTheHeaderLists) {
  struct Row {
    Rpc rpc;
    bool backend, support, admin;
  };
  const Row rows[] = {
      {Rpc::kSubmitTask, true, false, true},
      {Rpc::kRecordEvent, true, false, true},
      {Rpc::kValidateTask, true, true, true},
      {Rpc::kGetTask, true, true, true},
      {Rpc::kBatchGetTasks, true, true, true},
      {Rpc::kListTasks, true, true, true},
      {Rpc::kGetQueueStatus, true, true, true},
      {Rpc::kWatchTask, true, true, true},
      {Rpc::kListModels, true, true, true},
      {Rpc::kGetStats, true, true, true},
      {Rpc::kAddNote, false, true, true},
      {Rpc::kListAudit, false, false, true},
      // Read-only: the roles of GetTask.
      {Rpc::kClassifyFailure, true, true, true},
      {Rpc::kCreateBackup, false, false, true},
      {Rpc::kListBackups, false, false, true},
      {Rpc::kExportTasks, false, false, true},
      {Rpc::kPurgeTask, false, false, true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(std::string(RpcName(row.rpc)));
    EXPECT_EQ(Allowed(Role::kBackend, row.rpc), row.backend);
    EXPECT_EQ(Allowed(Role::kSupport, row.rpc), row.support);
    EXPECT_EQ(Allowed(Role::kAdmin, row.rpc), row.admin);
  }
}

TEST(AuthorizeTest, ARefusalIsPermissionDeniedNamingRoleCallerRpcAndAllowed) {
  EXPECT_TRUE(Authorize({"gateway-1", Role::kBackend}, Rpc::kSubmitTask).ok());
  EXPECT_TRUE(Authorize({"alice", Role::kSupport}, Rpc::kAddNote).ok());

  const absl::Status denied =
      Authorize({"alice", Role::kSupport}, Rpc::kSubmitTask);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("support"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("alice"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("SubmitTask"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("backend, admin"));

  const absl::Status audit =
      Authorize({"gateway-1", Role::kBackend}, Rpc::kListAudit);
  EXPECT_EQ(audit.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(audit.message()), HasSubstr("ListAudit"));
}

TEST(AccessNamesTest, RolesAndRpcsHaveTheirWireNames) {
  EXPECT_EQ(RoleName(Role::kBackend), "backend");
  EXPECT_EQ(RoleName(Role::kSupport), "support");
  EXPECT_EQ(RoleName(Role::kAdmin), "admin");
  EXPECT_EQ(RpcName(Rpc::kValidateTask), "ValidateTask");
  EXPECT_EQ(RpcName(Rpc::kSubmitTask), "SubmitTask");
  EXPECT_EQ(RpcName(Rpc::kRecordEvent), "RecordEvent");
  EXPECT_EQ(RpcName(Rpc::kGetTask), "GetTask");
  EXPECT_EQ(RpcName(Rpc::kListTasks), "ListTasks");
  EXPECT_EQ(RpcName(Rpc::kGetQueueStatus), "GetQueueStatus");
  EXPECT_EQ(RpcName(Rpc::kWatchTask), "WatchTask");
  EXPECT_EQ(RpcName(Rpc::kAddNote), "AddNote");
  EXPECT_EQ(RpcName(Rpc::kListModels), "ListModels");
  EXPECT_EQ(RpcName(Rpc::kGetStats), "GetStats");
  EXPECT_EQ(RpcName(Rpc::kListAudit), "ListAudit");
  EXPECT_EQ(RpcName(Rpc::kBatchGetTasks), "BatchGetTasks");
  EXPECT_EQ(RpcName(Rpc::kClassifyFailure), "ClassifyFailure");
  EXPECT_EQ(RpcName(Rpc::kCreateBackup), "CreateBackup");
  EXPECT_EQ(RpcName(Rpc::kListBackups), "ListBackups");
  EXPECT_EQ(RpcName(Rpc::kExportTasks), "ExportTasks");
  EXPECT_EQ(RpcName(Rpc::kPurgeTask), "PurgeTask");
}

}  // namespace
}  // namespace tasktrail
