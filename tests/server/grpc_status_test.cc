// Tests of ToGrpcStatus (service/server/grpc_status.h): every absl code
// becomes the same gRPC code with the same message, and the payloads of
// service/rules/errors.h become the details of a google.rpc.Status.
#include "service/server/grpc_status.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "service/rules/errors.h"

namespace tasktrail {
namespace {

TEST(GrpcStatusTest, OkIsOk) {
  const grpc::Status status = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(status.error_message(), "");
  EXPECT_EQ(status.error_details(), "");
}

TEST(GrpcStatusTest, EveryCodeKeepsItsNumberAndMessage) {
  struct Pair {
    absl::StatusCode absl_code;
    grpc::StatusCode grpc_code;
  };
  const Pair pairs[] = {
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded,
       grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied,
       grpc::StatusCode::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted,
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition,
       grpc::StatusCode::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const Pair& pair : pairs) {
    const std::string message =
        "task 01ARZ3 is " + absl::StatusCodeToString(pair.absl_code);
    SCOPED_TRACE(message);
    const grpc::Status status =
        ToGrpcStatus(absl::Status(pair.absl_code, message));
    EXPECT_FALSE(status.ok());
    EXPECT_EQ(status.error_code(), pair.grpc_code);
    EXPECT_EQ(status.error_message(), message);
    // No payload: no details trailer.
    EXPECT_EQ(status.error_details(), "");
  }
}

TEST(GrpcStatusTest, BadRequestAndErrorInfoBecomeTheStatusDetails) {
  const std::vector<v1::FieldViolation> violations = {
      Violation("params.aspect_ratio", "UNSUPPORTED_VALUE",
                "4:3 is not offered"),
      Violation("params.duration_seconds", "OUT_OF_RANGE", "7 is not offered"),
  };
  const absl::Status error =
      InvalidArgument(kInvalidTaskParameters, "kling-v2-1", violations);
  ASSERT_EQ(error.code(), absl::StatusCode::kInvalidArgument);

  const grpc::Status status = ToGrpcStatus(error);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), std::string(error.message()));

  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), std::string(error.message()));

  google::rpc::BadRequest bad_request;
  google::rpc::ErrorInfo error_info;
  int bad_requests = 0;
  int error_infos = 0;
  for (const google::protobuf::Any& any : details.details()) {
    if (any.Is<google::rpc::BadRequest>()) {
      EXPECT_EQ(any.type_url(), kBadRequestTypeUrl);
      ASSERT_TRUE(any.UnpackTo(&bad_request));
      ++bad_requests;
    } else if (any.Is<google::rpc::ErrorInfo>()) {
      EXPECT_EQ(any.type_url(), kErrorInfoTypeUrl);
      ASSERT_TRUE(any.UnpackTo(&error_info));
      ++error_infos;
    } else {
      ADD_FAILURE() << "unexpected detail " << any.type_url();
    }
  }
  EXPECT_EQ(bad_requests, 1);
  EXPECT_EQ(error_infos, 1);
  ASSERT_EQ(bad_request.field_violations_size(), 2);
  EXPECT_EQ(bad_request.field_violations(0).field(), "params.aspect_ratio");
  EXPECT_EQ(bad_request.field_violations(0).description(),
            "4:3 is not offered");
  EXPECT_EQ(bad_request.field_violations(1).field(), "params.duration_seconds");
  EXPECT_EQ(error_info.domain(), kErrorDomain);
  EXPECT_EQ(error_info.reason(), kInvalidTaskParameters);
}

TEST(GrpcStatusTest, AnyPayloadIsCopiedWithItsTypeUrlAndBytes) {
  absl::Status error = absl::FailedPreconditionError("task is finished");
  google::rpc::ErrorInfo info;
  info.set_reason("TASK_FINISHED");
  info.set_domain("tasktrail.v1");
  error.SetPayload("type.googleapis.com/google.rpc.ErrorInfo",
                   absl::Cord(info.SerializeAsString()));
  // Bytes that are not a known message travel as they are.
  static constexpr char kOpaqueBytes[] = "\x00\x01 not a proto \xff";
  const std::string opaque(kOpaqueBytes, sizeof(kOpaqueBytes) - 1);
  error.SetPayload("type.example.com/acme.Opaque", absl::Cord(opaque));

  const grpc::Status status = ToGrpcStatus(error);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "task is finished");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(),
            static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(details.message(), "task is finished");
  ASSERT_EQ(details.details_size(), 2);
  bool saw_info = false;
  bool saw_opaque = false;
  for (const google::protobuf::Any& any : details.details()) {
    if (any.type_url() == "type.googleapis.com/google.rpc.ErrorInfo") {
      google::rpc::ErrorInfo copied;
      ASSERT_TRUE(any.UnpackTo(&copied));
      EXPECT_EQ(copied.reason(), "TASK_FINISHED");
      saw_info = true;
    } else if (any.type_url() == "type.example.com/acme.Opaque") {
      EXPECT_EQ(any.value(), opaque);
      saw_opaque = true;
    }
  }
  EXPECT_TRUE(saw_info);
  EXPECT_TRUE(saw_opaque);
}

}  // namespace
}  // namespace tasktrail
