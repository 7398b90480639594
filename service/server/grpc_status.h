// The one place where absl::Status becomes grpc::Status. Payloads attached by
// service/errors.h (google.rpc.BadRequest, google.rpc.ErrorInfo) become the
// details of a google.rpc.Status sent in the `grpc-status-details-bin`
// trailer. And the log line of a call the server could not do.
#ifndef TASKTRAIL_SERVICE_SERVER_GRPC_STATUS_H_
#define TASKTRAIL_SERVICE_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "service/server/access.h"

namespace tasktrail {

grpc::Status ToGrpcStatus(const absl::Status& status);

// Logs a call answered INTERNAL or UNAVAILABLE: the server could not do what
// was asked (a store failure, a bug), which ordinary answers, successful or
// refused, are not. At most one line per second per method and code reaches
// the log, with the number held back since the previous one (after a store
// failure every write is refused). The message is scrubbed by Log.
// Thread safety: may be called concurrently.
void LogServerError(Rpc rpc, const grpc::Status& status);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_GRPC_STATUS_H_
