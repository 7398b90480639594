#include "service/server/grpc_metrics.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

namespace tasktrail {
namespace {

// go-grpc-prometheus's default buckets (Prometheus' DefBuckets), in seconds.
const prometheus::Histogram::BucketBoundaries& HandlingBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{
          0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

const char* TypeName(const google::protobuf::MethodDescriptor& method) {
  if (method.client_streaming()) {
    return method.server_streaming() ? "bidi_stream" : "client_stream";
  }
  return method.server_streaming() ? "server_stream" : "unary";
}

// Counts one call: started at construction, handled when its status is sent
// (or as Canceled when the call ends without one).
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(GrpcMetrics* metrics, GrpcMetrics::MethodSeries* series)
      : metrics_(metrics),
        series_(series),
        start_(std::chrono::steady_clock::now()) {
    GrpcMetrics::CountStarted(series_);
  }

  ~MetricsInterceptor() override {
    if (!handled_) Handled(grpc::StatusCode::CANCELLED);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!handled_ &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Handled(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Handled(int code) {
    handled_ = true;
    metrics_->CountHandled(
        series_, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count());
  }

  GrpcMetrics* const metrics_;
  GrpcMetrics::MethodSeries* const series_;
  const std::chrono::steady_clock::time_point start_;
  bool handled_ = false;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(GrpcMetrics* metrics)
      : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* method = info->method();
    GrpcMetrics::MethodSeries* series =
        metrics_->Find(method == nullptr ? "" : method);
    if (series->counted_by_handler) return nullptr;
    return new MetricsInterceptor(metrics_, series);
  }

 private:
  GrpcMetrics* const metrics_;
};

}  // namespace

std::string GrpcCodeName(int code) {
  static constexpr const char* kNames[] = {"OK",
                                           "Canceled",
                                           "Unknown",
                                           "InvalidArgument",
                                           "DeadlineExceeded",
                                           "NotFound",
                                           "AlreadyExists",
                                           "PermissionDenied",
                                           "ResourceExhausted",
                                           "FailedPrecondition",
                                           "Aborted",
                                           "OutOfRange",
                                           "Unimplemented",
                                           "Internal",
                                           "Unavailable",
                                           "DataLoss",
                                           "Unauthenticated"};
  if (code >= 0 && code < static_cast<int>(std::size(kNames))) {
    return kNames[code];
  }
  return absl::StrCat("Code(", code, ")");
}

GrpcMetrics::GrpcMetrics(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("Total number of RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("Total number of RPCs completed on the server, "
                         "regardless of success or failure.")
                   .Register(registry)),
      handling_(prometheus::BuildHistogram()
                    .Name("grpc_server_handling_seconds")
                    .Help("Histogram of response latency (seconds) of gRPC "
                          "that had been application-level handled by the "
                          "server.")
                    .Register(registry)) {}

absl::StatusOr<std::unique_ptr<GrpcMetrics>> GrpcMetrics::Create(
    prometheus::Registry& registry, const std::vector<std::string>& services) {
  std::unique_ptr<GrpcMetrics> metrics(new GrpcMetrics(registry));
  const google::protobuf::DescriptorPool* pool =
      google::protobuf::DescriptorPool::generated_pool();
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* service =
        pool->FindServiceByName(name);
    if (service == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gRPC metrics: no descriptor of the service ", name, " is linked"));
    }
    for (int i = 0; i < service->method_count(); ++i) {
      const google::protobuf::MethodDescriptor& method = *service->method(i);
      MethodSeries* series =
          metrics->AddMethod(absl::StrCat("/", name, "/", method.name()),
                             {{"grpc_type", TypeName(method)},
                              {"grpc_service", name},
                              {"grpc_method", method.name()}});
      metrics->HandledCounter(series, 0);  // the OK series, at zero
    }
  }
  metrics->unknown_ = metrics->AddMethod("", {{"grpc_type", "unknown"},
                                              {"grpc_service", "(unknown)"},
                                              {"grpc_method", "(unknown)"}});
  return metrics;
}

GrpcMetrics::MethodSeries* GrpcMetrics::AddMethod(const std::string& path,
                                                  prometheus::Labels labels) {
  auto series = std::make_unique<MethodSeries>();
  series->started = &started_.Add(labels);
  series->handling = &handling_.Add(labels, HandlingBuckets());
  series->labels = std::move(labels);
  MethodSeries* added = series.get();
  series_.push_back(std::move(series));
  if (!path.empty()) by_path_[path] = added;
  return added;
}

GrpcMetrics::MethodSeries* GrpcMetrics::Find(absl::string_view path) {
  auto found = by_path_.find(path);
  return found == by_path_.end() ? unknown_ : found->second;
}

GrpcMetrics::MethodSeries* GrpcMetrics::CountInHandler(absl::string_view path) {
  auto found = by_path_.find(path);
  if (found == by_path_.end()) return nullptr;
  found->second->counted_by_handler = true;
  return found->second;
}

void GrpcMetrics::CountStarted(MethodSeries* series) {
  series->started->Increment();
}

void GrpcMetrics::CountHandled(MethodSeries* series, int code, double seconds) {
  HandledCounter(series, code)->Increment();
  series->handling->Observe(seconds);
}

prometheus::Counter* GrpcMetrics::HandledCounter(MethodSeries* series,
                                                 int code) {
  if (code < 0 || code >= static_cast<int>(series->handled.size())) {
    code = static_cast<int>(grpc::StatusCode::UNKNOWN);
  }
  std::atomic<prometheus::Counter*>& slot = series->handled[code];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Family::Add returns the existing series for the same labels, so two
    // threads racing here get the same counter.
    prometheus::Labels labels = series->labels;
    labels["grpc_code"] = GrpcCodeName(code);
    counter = &handled_.Add(labels);
    slot.store(counter, std::memory_order_release);
  }
  return counter;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcMetrics::NewInterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

}  // namespace tasktrail
