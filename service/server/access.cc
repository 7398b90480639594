#include "service/server/access.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/rules/digests.h"
#include "service/rules/errors.h"
#include "service/rules/operator_file.h"

namespace tasktrail {
namespace {

// `text` without the spaces (only ' ') around it.
absl::string_view TrimSpaces(absl::string_view text) {
  while (absl::ConsumePrefix(&text, " ")) {
  }
  while (absl::ConsumeSuffix(&text, " ")) {
  }
  return text;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kBackend:
      return "backend";
    case Role::kSupport:
      return "support";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kValidateTask:
      return "ValidateTask";
    case Rpc::kSubmitTask:
      return "SubmitTask";
    case Rpc::kRecordEvent:
      return "RecordEvent";
    case Rpc::kGetTask:
      return "GetTask";
    case Rpc::kListTasks:
      return "ListTasks";
    case Rpc::kGetQueueStatus:
      return "GetQueueStatus";
    case Rpc::kWatchTask:
      return "WatchTask";
    case Rpc::kAddNote:
      return "AddNote";
    case Rpc::kListModels:
      return "ListModels";
    case Rpc::kGetStats:
      return "GetStats";
    case Rpc::kListAudit:
      return "ListAudit";
    case Rpc::kBatchGetTasks:
      return "BatchGetTasks";
    case Rpc::kClassifyFailure:
      return "ClassifyFailure";
    case Rpc::kCreateBackup:
      return "CreateBackup";
    case Rpc::kListBackups:
      return "ListBackups";
    case Rpc::kExportTasks:
      return "ExportTasks";
    case Rpc::kPurgeTask:
      return "PurgeTask";
  }
  return "unknown";
}

bool Allowed(Role role, Rpc rpc) {
  switch (rpc) {
    case Rpc::kSubmitTask:
    case Rpc::kRecordEvent:
      return role == Role::kBackend || role == Role::kAdmin;
    case Rpc::kAddNote:
      return role == Role::kSupport || role == Role::kAdmin;
    case Rpc::kListAudit:
    case Rpc::kCreateBackup:
    case Rpc::kListBackups:
    case Rpc::kExportTasks:
    case Rpc::kPurgeTask:
      return role == Role::kAdmin;
    default:  // the reads, ClassifyFailure among them: every role
      return true;
  }
}

absl::Status Authorize(const Caller& caller, Rpc rpc) {
  if (Allowed(caller.role, rpc)) return absl::OkStatus();
  std::vector<std::string> allowed;
  for (Role role : {Role::kBackend, Role::kSupport, Role::kAdmin}) {
    if (Allowed(role, rpc)) allowed.emplace_back(RoleName(role));
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "role ", RoleName(caller.role), " (", caller.name, ") may not call ",
      RpcName(rpc), "; allowed roles: ", absl::StrJoin(allowed, ", ")));
}

std::string TokenDigest(absl::string_view token) { return Sha256Hex(token); }

absl::StatusOr<std::shared_ptr<const AccessTable>> AccessTable::Parse(
    absl::string_view text, absl::string_view origin) {
  std::shared_ptr<AccessTable> table(new AccessTable());
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_number, ": ", why));
    };
    if (fields.size() != 3) {
      return fail("expected `ROLE PRINCIPAL SHA256HEX`");
    }
    Caller caller;
    if (fields[0] == "backend") {
      caller.role = Role::kBackend;
    } else if (fields[0] == "support") {
      caller.role = Role::kSupport;
    } else if (fields[0] == "admin") {
      caller.role = Role::kAdmin;
    } else {
      return fail(absl::StrCat("unknown role \"", fields[0],
                               "\"; use backend, support or admin"));
    }
    if (const size_t at = FindControlCharacter(fields[1]);
        at != absl::string_view::npos) {
      return fail(absl::StrCat(
          "the principal holds a control character at byte ", at,
          "; principals are recorded as actors, authors and in the audit "
          "log, and must not contain control characters"));
    }
    caller.name = std::string(fields[1]);
    const std::string digest = absl::AsciiStrToLower(fields[2]);
    if (digest.size() != 64 ||
        !std::all_of(digest.begin(), digest.end(), [](char c) {
          return absl::ascii_isxdigit(static_cast<unsigned char>(c));
        })) {
      return fail(
          "the third field must be the SHA-256 of the token, 64 hex "
          "digits (never the token itself)");
    }
    if (!table->by_digest_.emplace(digest, std::move(caller)).second) {
      return fail("this token digest is listed twice");
    }
  }
  return std::shared_ptr<const AccessTable>(std::move(table));
}

absl::StatusOr<std::shared_ptr<const AccessTable>> AccessTable::FromFile(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadOperatorFile(path, "auth file");
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

absl::StatusOr<Caller> AccessTable::Authenticate(
    absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "no credentials: send `authorization: Bearer TOKEN`");
  }
  // A control character is part of no scheme or token (RFC 7235 token68);
  // CR and LF in particular are refused rather than trimmed.
  if (std::any_of(authorization.begin(), authorization.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte < 0x20 || byte == 0x7f;
      })) {
    return absl::UnauthenticatedError(
        "the authorization header contains a control character");
  }
  absl::string_view credentials = TrimSpaces(authorization);
  const size_t space = credentials.find(' ');
  const absl::string_view scheme = credentials.substr(0, space);
  const absl::string_view token =
      space == absl::string_view::npos
          ? absl::string_view()
          : TrimSpaces(credentials.substr(space + 1));
  if (!absl::EqualsIgnoreCase(scheme, "bearer") || token.empty() ||
      token.find(' ') != absl::string_view::npos) {
    return absl::UnauthenticatedError(
        "the authorization header must be `Bearer TOKEN`");
  }
  auto it = by_digest_.find(TokenDigest(token));
  if (it == by_digest_.end()) {
    return absl::UnauthenticatedError("unknown token");
  }
  return it->second;
}

}  // namespace tasktrail
