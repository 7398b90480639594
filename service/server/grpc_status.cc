#include "service/server/grpc_status.h"

#include <string>
#include <utility>

#include "absl/container/node_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/status.pb.h"
#include "service/server/log.h"
#include "service/server/log_limiter.h"

namespace tasktrail {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());
  google::rpc::Status details;
  status.ForEachPayload(
      [&details](absl::string_view type_url, const absl::Cord& payload) {
        google::protobuf::Any* any = details.add_details();
        any->set_type_url(std::string(type_url));
        any->set_value(std::string(payload));
      });
  if (details.details_size() == 0) return grpc::Status(code, message);
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  return grpc::Status(code, message, details.SerializeAsString());
}

void LogServerError(Rpc rpc, const grpc::Status& status) {
  const grpc::StatusCode code = status.error_code();
  if (code != grpc::StatusCode::INTERNAL &&
      code != grpc::StatusCode::UNAVAILABLE) {
    return;
  }
  static absl::Mutex* const mutex = new absl::Mutex();
  static auto* const limiters =
      new absl::node_hash_map<std::pair<Rpc, grpc::StatusCode>, LogLimiter>();
  LogLimiter* limiter = nullptr;
  {
    absl::MutexLock lock(mutex);
    limiter = &limiters->try_emplace({rpc, code}, absl::Seconds(1))
                   .first->second;  // node_hash_map: the address is stable
  }
  int64_t suppressed = 0;
  if (!limiter->Allow(absl::Now(), &suppressed)) return;
  Log(code == grpc::StatusCode::INTERNAL ? LogLevel::kError
                                         : LogLevel::kWarning,
      "request failed",
      {{"method", RpcName(rpc)},
       {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))},
       {"error", status.error_message()},
       {"suppressed", suppressed}});
}

}  // namespace tasktrail
