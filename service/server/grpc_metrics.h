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
// A method is counted either by its handler (CountInHandler; tasktraild's
// unary TaskTracker methods, whose handlers call CountStarted and
// CountHandled) or by a gRPC server interceptor (NewInterceptorFactory), so
// that every served method is counted, the health and reflection services
// too. gRPC runs every operation of a call that has an interceptor through
// its interception hooks, which costs a cheap unary call about a tenth of
// its CPU time; a handler counts for a fraction of that. A call is started
// when its handler (or interceptor) is created and handled when its status
// is sent; the handling time is the span between the two.
//
// Thread safety: thread-safe once constructed and once every CountInHandler
// has been called; the series of each method are resolved up front, so a
// call costs a hash lookup of its path (none when its handler counts it),
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
    // Counted by its handler, not by an interceptor.
    bool counted_by_handler = false;
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

  // Marks the method at `path` as counted by its handler, which then calls
  // CountStarted and CountHandled for each of its calls; interceptors leave
  // it alone. Returns its series, or nullptr when `path` is not a method of
  // the services given to Create. REQUIRES: called before the server starts.
  MethodSeries* CountInHandler(absl::string_view path);

  // Counts one started call of `series`.
  static void CountStarted(MethodSeries* series);

  // Counts one handled call of `series` with status `code` that took
  // `seconds` from its start.
  void CountHandled(MethodSeries* series, int code, double seconds);

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
