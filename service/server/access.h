// Who may do what. The auth file maps bearer tokens (by their SHA-256, never
// the plaintext) to a principal and a role; each RPC allows some roles.
//
// Auth file lines: `ROLE PRINCIPAL SHA256HEX`, roles backend, support and
// admin; blank lines and lines starting with '#' are ignored.
//
// Thread safety: AccessTable is immutable after loading; safe to share.
#ifndef TASKTRAIL_SERVICE_SERVER_ACCESS_H_
#define TASKTRAIL_SERVICE_SERVER_ACCESS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tasktrail {

enum class Role { kBackend, kSupport, kAdmin };

// The RPCs, for access rules and audit records.
enum class Rpc {
  kValidateTask,
  kSubmitTask,
  kRecordEvent,
  kGetTask,
  kListTasks,
  kGetQueueStatus,
  kWatchTask,
  kAddNote,
  kListModels,
  kGetStats,
  kListAudit,
  kBatchGetTasks,
  kClassifyFailure,
  kCreateBackup,
  kListBackups,
  kExportTasks,
  kPurgeTask,
};

// The number of Rpc values (kPurgeTask is the last).
inline constexpr int kRpcCount = static_cast<int>(Rpc::kPurgeTask) + 1;

absl::string_view RoleName(Role role);
absl::string_view RpcName(Rpc rpc);

// Who called: the principal and its role. `name` is empty when access
// control is off.
struct Caller {
  std::string name;
  Role role = Role::kAdmin;
};

// True when `role` may call `rpc`:
//   SubmitTask, RecordEvent: backend, admin
//   ValidateTask, GetTask, BatchGetTasks, ListTasks, GetQueueStatus,
//   WatchTask, ListModels, GetStats, ClassifyFailure: backend, support,
//   admin
//   AddNote: support, admin
//   ListAudit, CreateBackup, ListBackups, ExportTasks: admin
//   ListAudit, CreateBackup, ListBackups, PurgeTask: admin
bool Allowed(Role role, Rpc rpc);

class AccessTable {
 public:
  // Parses an auth file. INVALID_ARGUMENT naming `origin` and the line for
  // an unknown role, a missing field, a principal holding a control
  // character, a digest that is not 64 hex digits, or a digest listed twice.
  static absl::StatusOr<std::shared_ptr<const AccessTable>> Parse(
      absl::string_view text, absl::string_view origin);
  static absl::StatusOr<std::shared_ptr<const AccessTable>> FromFile(
      const std::string& path);

  // The caller presenting `authorization` (the metadata value, "Bearer
  // TOKEN"). The scheme is case-insensitive (RFC 7235); spaces around the
  // scheme and the token are ignored. UNAUTHENTICATED when it is missing,
  // malformed (no token, a space inside it, another scheme) or unknown, and
  // when the value holds a control character (C0, including CR, LF and TAB,
  // or DEL).
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization) const;

  size_t size() const { return by_digest_.size(); }

 private:
  AccessTable() = default;
  // Lower-case hex SHA-256 of the token -> caller.
  absl::flat_hash_map<std::string, Caller> by_digest_;
};

// OK when `caller` may call `rpc`; PERMISSION_DENIED naming the role and the
// RPC otherwise.
absl::Status Authorize(const Caller& caller, Rpc rpc);

// Lower-case hex SHA-256 of `token`.
std::string TokenDigest(absl::string_view token);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_ACCESS_H_
