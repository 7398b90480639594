// GrpcMetrics: the server's gRPC metrics under the names of
// go-grpc-prometheus, which dashboards already use:
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}
// grpc_type is "unary", "client_stream", "server_stream" or "bidi_stream";
// grpc_code is Go's codes.Code name ("OK", "InvalidArgument", ...).
//
// The method labels come from the served services' descriptors, never from
// the path a client sends: a call to a path that is not one of their methods
// is counted under grpc_service="(unknown)", grpc_method="(unknown)",
// grpc_type="unknown". Every known method's series with grpc_code="OK" exist
// from the start (zeros), as go-grpc-prometheus's InitializeMetrics makes
// them; the series of other codes appear with their first call.
//
// The counting is a gRPC server interceptor (NewInterceptorFactory), so
// every served method is counted, the health and reflection services too.
// A call is started when gRPC creates its interceptors and handled when its
// status is sent; the handling time is the span between the two.
//
// Thread safety: thread-safe once constructed; the series of each method
// are resolved at construction, so a call costs a hash lookup of its path,
// atomic increments and one histogram observation.
#ifndef TASKTRAIL_SERVICE_SERVER_GRPC_METRICS_H_
#define TASKTRAIL_SERVICE_SERVER_GRPC_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tasktrail {

// Go's codes.Code String() of a gRPC status code (0 to 16), as
// go-grpc-prometheus labels grpc_code; "Code(N)" for any other number.
std::string GrpcCodeName(int code);

class GrpcMetrics {
 public:
  // The series of one method.
  struct MethodSeries {
    prometheus::Counter* started = nullptr;
    prometheus::Histogram* handling = nullptr;
    // grpc_server_handled_total by status code, made at first use.
    std::array<std::atomic<prometheus::Counter*>, 17> handled{};
    prometheus::Labels labels;  // grpc_type, grpc_service, grpc_method
  };

  // Adds the families to `registry` and the series of every method of the
  // `services` (full names, such as "grpc.health.v1.Health"), described by
  // protobuf's generated descriptor pool. INVALID_ARGUMENT naming a service
  // the pool does not describe.
  static absl::StatusOr<std::unique_ptr<GrpcMetrics>> Create(
      prometheus::Registry& registry, const std::vector<std::string>& services);

  // A factory of interceptors that count every call into these metrics, for
  // ServerBuilder::experimental().SetInterceptorCreators. REQUIRES: this
  // GrpcMetrics outlives the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  // The series of the method at `path` ("/package.Service/Method"), or of
  // the unknown method.
  MethodSeries* Find(absl::string_view path);

  // Counts one handled call of `series` with status `code`.
  void CountHandled(MethodSeries* series, int code);

 private:
  GrpcMetrics(prometheus::Registry& registry);

  // The grpc_server_handled_total series of `series` with status `code`
  // (an unknown code counts as UNKNOWN), made at first use.
  prometheus::Counter* HandledCounter(MethodSeries* series, int code);

  // Adds the series of one method (labels given) under `path`.
  MethodSeries* AddMethod(const std::string& path, prometheus::Labels labels);

  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
  std::vector<std::unique_ptr<MethodSeries>> series_;
  // Filled by Create, read-only afterwards.
  absl::flat_hash_map<std::string, MethodSeries*> by_path_;
  MethodSeries* unknown_ = nullptr;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_GRPC_METRICS_H_
