// The one place where absl::Status becomes grpc::Status. Payloads attached by
// service/errors.h (google.rpc.BadRequest, google.rpc.ErrorInfo) become the
// details of a google.rpc.Status sent in the `grpc-status-details-bin`
// trailer.
#ifndef TASKTRAIL_SERVICE_SERVER_GRPC_STATUS_H_
#define TASKTRAIL_SERVICE_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace tasktrail {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_GRPC_STATUS_H_
