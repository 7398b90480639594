// tasktraild: the tasktrail server. Parses flags, opens the store, serves
// TaskTracker, health and reflection over gRPC, and shuts down cleanly on
// SIGTERM or SIGINT (signals are handled on a dedicated thread). It exits 1
// when gRPC's listener stops accepting connections for good, so that a
// supervisor restarts it.
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/health/v1/health.pb.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/rules/failure_rules.h"
#include "service/rules/operator_file.h"
#include "service/rules/time_util.h"
#include "service/server/access.h"
#include "service/server/domain_metrics.h"
#include "service/server/grpc_metrics.h"
#include "service/server/grpc_service.h"
#include "service/server/log.h"
#include "service/server/log_limiter.h"
#include "service/server/store_metrics.h"
#include "service/server/store_selection.h"
#include "service/server/work_pool.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/export_pacer.h"
#include "service/tracker/retention_sweeper.h"
#include "service/tracker/tracker.h"

namespace tasktrail {
namespace {

constexpr char kServiceName[] = "tasktrail.v1.TaskTracker";
constexpr char kHealthServiceName[] = "grpc.health.v1.Health";
constexpr char kReflectionServiceName[] =
    "grpc.reflection.v1alpha.ServerReflection";

struct DaemonFlags {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen;  // empty: no metrics endpoint
  StoreFlags store;
  std::string port_file;
  std::string catalog;
  std::string failure_rules;
  bool check = false;
  std::string auth_file;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  bool insecure = false;
  int max_concurrent_streams = 256;
  absl::Duration max_connection_idle = absl::Minutes(5);
  absl::Duration handshake_timeout = absl::Seconds(10);
  EdgeOptions edge;
  int write_threads = 32;
  EventHub::Options hub;
  int max_receive_bytes = 64 * 1024;
  int shutdown_grace_seconds = 3;
  LogFormat log_format = LogFormat::kText;
  TrackerOptions tracker;
  std::string restore_from;
  int64_t backup_id = 0;
  absl::Duration retention_sweep_interval = absl::Minutes(1);
  ExportPacer::Options export_pacing;
};

// Adds a flag whose value is a span of time written like 90s, 5m or 24h.
void AddDurationOption(CLI::App& app, const std::string& name,
                       absl::Duration* target, const std::string& help) {
  app.add_option_function<std::string>(
         name,
         [target, name](const std::string& text) {
           absl::Duration parsed;
           if (!absl::ParseDuration(text, &parsed) ||
               parsed < absl::ZeroDuration()) {
             throw CLI::ValidationError(
                 name, "expected a span like 90s, 5m or 24h, got " + text);
           }
           *target = parsed;
         },
         help)
      ->default_str(absl::FormatDuration(*target));
}

// Adds a flag whose value is a retention span: whole days like 90d, or a
// span like 36h; 0 keeps forever.
CLI::Option* AddRetentionOption(CLI::App& app, const std::string& name,
                                absl::Duration* target,
                                const std::string& help) {
  return app
      .add_option_function<std::string>(
          name,
          [target, name](const std::string& text) {
            if (!ParseRetention(text, target)) {
              throw CLI::ValidationError(
                  name, "expected a span like 90d, 36h or 0, got " + text);
            }
          },
          help)
      ->default_str(FormatRetention(*target));
}

// `span` as a gRPC channel argument in milliseconds, at least 1.
int ChannelMillis(absl::Duration span) {
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(span), 1, INT_MAX));
}

// Writes `port` to `path` atomically (write then rename), so that a reader
// never sees a partial file.
bool WritePortFile(const std::string& path, int port) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << "\n";
    if (!out) return false;
  }
  return std::rename(temporary.c_str(), path.c_str()) == 0;
}

// The listen address with the port the kernel picked.
std::string BoundAddress(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  return absl::StrCat(
      colon == std::string::npos ? listen : listen.substr(0, colon), ":", port);
}

// True when `listen` (HOST:PORT) binds a loopback address only.
bool IsLoopback(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

// Set by the gRPC log hook when the listener has stopped for good.
std::atomic<bool> listener_failed{false};

// gRPC 1.51 logs "Failed accept4: ..." when accept fails with an error other
// than EAGAIN or ECONNABORTED (EMFILE, ENFILE, ENOBUFS, ...) and then never
// accepts on that listener again, while the process stays up. tasktraild
// then shuts down and exits 1, so that a supervisor restarts it, rather than
// live on as a zombie listener. gRPC's lines go to the log with the others.
void OnGrpcLog(gpr_log_func_args* args) {
  const LogLevel level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
      : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                : LogLevel::kDebug;
  Log(level, args->message,
      {{"component", "grpc"}, {"file", args->file}, {"line", args->line}});
  if (absl::StartsWith(args->message, "Failed accept4") &&
      !listener_failed.exchange(true)) {
    Log(LogLevel::kCritical,
        "the listener stopped accepting connections; shutting down to be "
        "restarted",
        {{"error", args->message}});
    kill(getpid(), SIGTERM);  // handled by the signal thread
  }
}

// libprotobuf logs an ERROR line for each request with a string field that
// is not UTF-8; a client must not be able to flood the log with them. At
// most one protobuf line per second reaches the log, with the number held
// back since the previous one. A FATAL line always does.
void OnProtobufLog(google::protobuf::LogLevel level, const char* filename,
                   int line, const std::string& message) {
  if (level >= google::protobuf::LOGLEVEL_FATAL) {
    Log(LogLevel::kCritical, message,
        {{"component", "libprotobuf"}, {"file", filename}, {"line", line}});
    return;
  }
  static LogLimiter* const limiter = new LogLimiter(absl::Seconds(1));
  int64_t suppressed = 0;
  if (!limiter->Allow(absl::Now(), &suppressed)) return;
  Log(LogLevel::kWarning, message,
      {{"component", "libprotobuf"},
       {"file", filename},
       {"line", line},
       {"suppressed", suppressed}});
}

// Raises the soft limit on open files to the hard limit: every connection
// holds a descriptor, and gRPC's listener stops for good when accept runs
// out of them.
void RaiseDescriptorLimit() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    Log(LogLevel::kWarning, "cannot read the open file limit",
        {{"error", strerror(errno)}});
    return;
  }
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      Log(LogLevel::kWarning, "cannot raise the open file limit",
          {{"soft", before},
           {"hard", limit.rlim_max},
           {"error", strerror(errno)}});
      return;
    }
  }
  Log(LogLevel::kInfo, "open file limit",
      {{"soft", limit.rlim_cur},
       {"hard", limit.rlim_max},
       {"raised_from", before}});
}

// The contents of a PEM file given by a flag (bounded like every operator
// file), or empty when it cannot be read.
std::string ReadPemOrEmpty(const std::string& path, absl::string_view flag) {
  absl::StatusOr<std::string> text = ReadOperatorFile(path, flag);
  if (!text.ok()) {
    Log(LogLevel::kError, text.status().message());
    return "";
  }
  return *std::move(text);
}

// The listening credentials: TLS when a certificate is given (mutual TLS
// with --tls-client-ca), else plaintext.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const DaemonFlags& flags) {
  if (flags.tls_cert.empty() && flags.tls_key.empty()) {
    if (!flags.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(
          "--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (flags.tls_cert.empty() || flags.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  pair.cert_chain = ReadPemOrEmpty(flags.tls_cert, "--tls-cert");
  pair.private_key = ReadPemOrEmpty(flags.tls_key, "--tls-key");
  if (pair.cert_chain.empty() || pair.private_key.empty()) {
    return absl::InvalidArgumentError("cannot read --tls-cert or --tls-key");
  }
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!flags.tls_client_ca.empty()) {
    options.pem_root_certs =
        ReadPemOrEmpty(flags.tls_client_ca, "--tls-client-ca");
    if (options.pem_root_certs.empty()) {
      return absl::InvalidArgumentError("cannot read --tls-client-ca");
    }
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// Who may connect. Without --auth-file every caller has every role, which is
// allowed on loopback only, unless --insecure says otherwise.
absl::Status CheckAccessPolicy(DaemonFlags* flags) {
  if (!flags->auth_file.empty()) {
    absl::StatusOr<std::shared_ptr<const AccessTable>> table =
        AccessTable::FromFile(flags->auth_file);
    if (!table.ok()) return table.status();
    Log(LogLevel::kInfo, "access control on",
        {{"auth_file", flags->auth_file}, {"principals", (*table)->size()}});
    flags->edge.access = *std::move(table);
    return absl::OkStatus();
  }
  if (IsLoopback(flags->listen)) {
    Log(LogLevel::kWarning,
        "no --auth-file: every local client may call every RPC; "
        "serving on loopback only");
    return absl::OkStatus();
  }
  if (!flags->insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve ", flags->listen,
        " without --auth-file: anyone who can reach it could read and write "
        "billing evidence; give --auth-file, listen on 127.0.0.1, or pass "
        "--insecure to accept the risk"));
  }
  Log(LogLevel::kWarning,
      "INSECURE: serving without --auth-file; every client may call every "
      "RPC (--insecure)",
      {{"listen", flags->listen}});
  return absl::OkStatus();
}

// Where /metrics may be served: loopback, or any address when the gRPC port
// may be served beyond loopback (--auth-file or --insecure), as for that
// port. The metrics name models and counts, never a task, account or secret.
absl::Status CheckMetricsPolicy(const DaemonFlags& flags) {
  if (flags.metrics_listen.empty() || IsLoopback(flags.metrics_listen) ||
      !flags.auth_file.empty() || flags.insecure) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing --metrics-listen ", flags.metrics_listen,
      ": a non-loopback metrics address needs --auth-file or --insecure, as "
      "the gRPC address does; listen on 127.0.0.1 or give one of them"));
}

// Serves /metrics on --metrics-listen, or fails naming the flag (a malformed
// address, a port in use, an address not on this host).
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartExposer(
    const std::string& address) {
  try {
    return std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve --metrics-listen ", address,
                     " (address in use or invalid): ", error.what()));
  }
}

// Server reflection lists every service the server serves and describes each
// from protobuf's generated descriptor pool, which holds a .proto file only
// when its generated code is linked into the binary. gRPC's default health
// service does not use the generated code of grpc/health/v1/health.proto, so
// nothing would link it (it sits in a static library) and reflection would
// list grpc.health.v1.Health yet fail to describe it. This links it, and
// fails, naming the service, when a served service has no descriptor.
absl::Status CheckServicesDescribed() {
  // Links grpc/health/v1/health.pb.cc, which adds its file to the pool.
  grpc::health::v1::HealthCheckRequest::descriptor();
  const google::protobuf::DescriptorPool* pool =
      google::protobuf::DescriptorPool::generated_pool();
  for (const char* service :
       {kServiceName, kHealthServiceName, kReflectionServiceName}) {
    if (pool->FindServiceByName(service) == nullptr) {
      return absl::InternalError(
          absl::StrCat("server reflection cannot describe ", service,
                       ": its descriptor is not linked into this binary"));
    }
  }
  return absl::OkStatus();
}

// Reloads the catalog file on SIGHUP. A bad file is rejected with the path
// of the offending field and the catalog in force stays.
void ReloadCatalog(const std::string& path, CatalogHolder* holder) {
  if (path.empty()) {
    Log(LogLevel::kInfo,
        "SIGHUP: serving the built-in catalog; nothing to reload");
    return;
  }
  absl::StatusOr<std::shared_ptr<const Catalog>> loaded =
      Catalog::FromFile(path);
  if (!loaded.ok()) {
    Log(LogLevel::kError, "catalog reload rejected",
        {{"path", path},
         {"kept", holder->Get()->version()},
         {"error", loaded.status().message()}});
    return;
  }
  const std::string version = (*loaded)->version();
  const int models = (*loaded)->document().models_size();
  // Logged once in force, so that a reader of the log sees the new catalog.
  holder->Set(*std::move(loaded));
  Log(LogLevel::kInfo, "catalog reloaded",
      {{"path", path}, {"version", version}, {"models", models}});
}

// --check: validates the failure rules (the --failure-rules file, or the
// built-in table without one) and prints one line: on stdout
// "ok: FILE: N rules (M vendor-scoped), version V" and returns 0, or on
// stderr the first problem, naming the file and the field, and returns 1.
// Opens no store and serves nothing.
int CheckFailureRules(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const FailureClassifier>> rules =
      path.empty() ? FailureClassifier::BuiltIn()
                   : FailureClassifier::FromFile(path);
  if (!rules.ok()) {
    std::fprintf(stderr, "%s\n", std::string(rules.status().message()).c_str());
    return 1;
  }
  const v1::FailureRules& document = (*rules)->document();
  int scoped = 0;
  for (const v1::FailureRule& rule : document.rules()) {
    if (!rule.vendor().empty()) ++scoped;
  }
  std::printf("ok: %s: %d rules (%d vendor-scoped), version %s\n",
              path.empty() ? "built-in failure rules" : path.c_str(),
              document.rules_size(), scoped, document.version().c_str());
  return 0;
}

// Sets the serving status of the whole server and of the TaskTracker
// service.
void SetServing(grpc::HealthCheckServiceInterface* health, bool serving) {
  health->SetServingStatus("", serving);
  health->SetServingStatus(kServiceName, serving);
}

int Run(DaemonFlags flags) {
  // Block the shutdown signals before any thread starts, so that only the
  // signal thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  RaiseDescriptorLimit();

  if (absl::Status described = CheckServicesDescribed(); !described.ok()) {
    Log(LogLevel::kError, described.message());
    return 1;
  }
  if (absl::Status policy = CheckAccessPolicy(&flags); !policy.ok()) {
    Log(LogLevel::kError, policy.message());
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(flags);
  if (!credentials.ok()) {
    Log(LogLevel::kError, credentials.status().message());
    return 1;
  }

  if (absl::Status metrics = CheckMetricsPolicy(flags); !metrics.ok()) {
    Log(LogLevel::kError, metrics.message());
    return 1;
  }
  // The registry and the commit histograms outlive the store, whose commit
  // thread feeds them; nullptr without --metrics-listen.
  std::shared_ptr<prometheus::Registry> registry;
  std::shared_ptr<StoreMetrics> store_metrics;
  // Outlives the service, which counts its unary calls into it, and the
  // server, whose interceptors count the other calls.
  std::unique_ptr<GrpcMetrics> grpc_metrics;
  if (!flags.metrics_listen.empty()) {
    registry = std::make_shared<prometheus::Registry>();
    store_metrics = std::make_shared<StoreMetrics>(*registry);
    absl::StatusOr<std::unique_ptr<GrpcMetrics>> created = GrpcMetrics::Create(
        *registry, {kServiceName, kHealthServiceName, kReflectionServiceName});
    if (!created.ok()) {
      Log(LogLevel::kError, created.status().message());
      return 1;
    }
    grpc_metrics = *std::move(created);
    flags.edge.metrics = grpc_metrics.get();
  }

  // The callbacks of the RocksDB store (OpenSelectedStore sets the rest).
  store::StoreOptions store_options;
  if (store_metrics != nullptr) {
    store_options.on_commit = [metrics = store_metrics.get()](size_t writes,
                                                              double seconds) {
      metrics->OnCommit(writes, seconds);
    };
  }
  // Set once the server runs; a failure reported before that is checked for
  // then.
  std::atomic<grpc::HealthCheckServiceInterface*> health_service{nullptr};
  store_options.on_failure = [&health_service](const absl::Status& failure) {
    Log(LogLevel::kError, "store failed; refusing writes, health NOT_SERVING",
        {{"error", failure.message()}});
    if (grpc::HealthCheckServiceInterface* health = health_service.load()) {
      health->SetServingStatus("", false);
      health->SetServingStatus(kServiceName, false);
    }
  };
  absl::StatusOr<SelectedStore> opened =
      OpenSelectedStore(flags.store, std::move(store_options));
  if (!opened.ok()) return 1;  // logged
  const SelectedStore selected_store = *std::move(opened);
  store::TaskStore* const task_store = selected_store.get();

  std::shared_ptr<const Catalog> initial_catalog = Catalog::BuiltIn();
  if (!flags.catalog.empty()) {
    absl::StatusOr<std::shared_ptr<const Catalog>> loaded =
        Catalog::FromFile(flags.catalog);
    if (!loaded.ok()) {
      Log(LogLevel::kError, "cannot load catalog",
          {{"path", flags.catalog}, {"error", loaded.status().message()}});
      return 1;
    }
    initial_catalog = *std::move(loaded);
  }
  CatalogHolder catalog(initial_catalog);
  TrackerOptions tracker_options = flags.tracker;
  Log(LogLevel::kInfo, "catalog loaded",
      {{"source", flags.catalog.empty() ? "built-in" : flags.catalog},
       {"version", initial_catalog->version()},
       {"models", initial_catalog->document().models_size()}});

  if (!flags.failure_rules.empty()) {
    absl::StatusOr<std::shared_ptr<const FailureClassifier>> rules =
        FailureClassifier::FromFile(flags.failure_rules);
    if (!rules.ok()) {
      Log(LogLevel::kError, "cannot load failure rules",
          {{"path", flags.failure_rules}, {"error", rules.status().message()}});
      return 1;
    }
    tracker_options.failure_rules = *std::move(rules);
  }

  std::unique_ptr<DomainMetrics> domain_metrics;
  if (registry != nullptr) {
    domain_metrics = std::make_unique<DomainMetrics>(
        *registry, &catalog, tracker_options.stale_after);
    tracker_options.observer = domain_metrics.get();
  }

  EventHub hub(flags.hub);
  Tracker tracker(task_store, &catalog, SystemClock::Get(), &hub,
                  tracker_options);
  RetentionSweeper::Options sweeper_options;
  sweeper_options.interval = flags.retention_sweep_interval;
  sweeper_options.on_sweep = [](int64_t purged, const absl::Status& status) {
    if (!status.ok()) {
      Log(LogLevel::kError, "retention sweep failed",
          {{"purged", purged}, {"error", status.message()}});
    } else if (purged > 0) {
      Log(LogLevel::kInfo, "retention sweep", {{"purged", purged}});
    }
  };
  RetentionSweeper sweeper(&tracker, std::move(sweeper_options));
  auto write_pool = std::make_unique<WorkPool>(flags.write_threads);
  // One thread reads the pages of every export, at normal priority: the
  // pacer makes it yield to tasktraild's own calls. At nice 19 (or
  // SCHED_IDLE) an export on an idle tasktraild crawled at a few hundred
  // tasks/s whenever other processes kept the machine busy
  // (docs/PERFORMANCE.md, "Export").
  auto export_pool = std::make_unique<WorkPool>(
      1, WorkPool::Options{"tt-export", /*background=*/false});
  ExportPacer export_pacer(SystemClock::Get(), flags.export_pacing);
  TaskTrackerService service(&tracker, &hub, write_pool.get(),
                             export_pool.get(), &export_pacer, flags.edge);

  // Declared after everything its collectors read, so that it stops
  // serving scrapes before they go away.
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<UnfinishedCollector> unfinished_collector;
  std::shared_ptr<ProcessCollector> process_collector;
  if (registry != nullptr) {
    // The store gauges are RocksDB properties; on PostgreSQL they are left
    // out (the database has its own statistics views).
    store_metrics->SetStore(selected_store.rocksdb.get());
    // Before serving: no write runs while the tally is loaded.
    if (absl::Status loaded = domain_metrics->unfinished().Load(tracker);
        !loaded.ok()) {
      Log(LogLevel::kError, "cannot count the unfinished tasks",
          {{"error", loaded.message()}});
      return 1;
    }
    unfinished_collector = std::make_shared<UnfinishedCollector>(
        &domain_metrics->unfinished(), &domain_metrics->labels(),
        SystemClock::Get());
    process_collector = std::make_shared<ProcessCollector>();
    absl::StatusOr<std::unique_ptr<prometheus::Exposer>> started =
        StartExposer(flags.metrics_listen);
    if (!started.ok()) {
      Log(LogLevel::kError, started.status().message());
      return 1;
    }
    exposer = *std::move(started);
    exposer->RegisterCollectable(registry);
    exposer->RegisterCollectable(store_metrics);
    exposer->RegisterCollectable(unfinished_collector);
    exposer->RegisterCollectable(process_collector);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (grpc_metrics != nullptr) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(grpc_metrics->NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  int port = 0;
  builder.AddListeningPort(flags.listen, *credentials, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(flags.max_receive_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             flags.max_concurrent_streams);
  // Header blocks over the limit are refused. gRPC 1.51 has this one limit
  // and applies it once a connection has acknowledged the server's settings;
  // the service checks the same limit for calls from connections that have
  // not (EdgeOptions::max_metadata_bytes).
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             static_cast<int>(flags.edge.max_metadata_bytes));
  // Connections that hold a descriptor without doing anything are closed:
  // one without a call for --max-connection-idle, one that has not finished
  // its handshake (TLS, HTTP/2 settings) within --handshake-timeout.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             ChannelMillis(flags.max_connection_idle));
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             ChannelMillis(flags.handshake_timeout));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    Log(LogLevel::kError, "cannot listen (address in use or invalid)",
        {{"listen", flags.listen}});
    return 1;
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  SetServing(health, true);
  health_service.store(health);
  // A failure reported before the health service was known (RocksDB's own
  // threads may fail a flush at any time) did not reach it.
  if (task_store->failed()) SetServing(health, false);
  std::unique_ptr<DatabaseHealthProbe> database_probe;
  if (selected_store.postgres != nullptr) {
    database_probe = std::make_unique<DatabaseHealthProbe>(
        selected_store.postgres.get(),
        [health](bool serving) { SetServing(health, serving); });
  }

  if (tracker_options.task_retention > absl::ZeroDuration() ||
      tracker_options.unfinished_retention > absl::ZeroDuration()) {
    sweeper.Start();
  }

  const std::string address = BoundAddress(flags.listen, port);
  if (!flags.port_file.empty() && !WritePortFile(flags.port_file, port)) {
    Log(LogLevel::kError, "cannot write port file",
        {{"path", flags.port_file}});
    server->Shutdown();
    return 1;
  }
  Log(LogLevel::kInfo, "tasktraild started",
      {{"version", TASKTRAIL_VERSION},
       {"listen", address},
       {"store", selected_store.kind()},
       {"db", selected_store.postgres != nullptr ? "" : flags.store.db},
       {"sync", flags.store.sync},
       {"tls", flags.tls_cert.empty() ? "off" : "on"},
       {"auth", flags.edge.access == nullptr ? "off" : "on"},
       {"metrics", flags.metrics_listen.empty() ? "off" : flags.metrics_listen},
       {"task_retention", FormatRetention(tracker_options.task_retention)},
       {"unfinished_retention",
        FormatRetention(tracker_options.unfinished_retention)},
       {"pid", static_cast<int64_t>(getpid())}});

  std::thread signal_thread([&] {
    while (true) {
      int received = 0;
      if (sigwait(&signals, &received) != 0) continue;
      if (received == SIGHUP) {
        ReloadCatalog(flags.catalog, &catalog);
        if (!flags.failure_rules.empty() || !flags.auth_file.empty()) {
          Log(LogLevel::kWarning,
              "SIGHUP reloads the catalog only; restart to apply changes to "
              "--failure-rules or --auth-file");
        }
        continue;
      }
      Log(LogLevel::kInfo, "shutting down", {{"signal", strsignal(received)}});
      break;
    }
    if (database_probe != nullptr) database_probe->Stop();
    SetServing(health, false);
    hub.Close();  // ends open WatchTask streams with UNAVAILABLE
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(flags.shutdown_grace_seconds));
  });

  server->Wait();
  signal_thread.join();
  sweeper.Stop();
  export_pool.reset();  // reads no more pages; may still schedule writes
  write_pool.reset();   // runs the writes already accepted
  exposer.reset();      // no scrape reads the tracker or the store after this
  if (selected_store.rocksdb != nullptr) {
    const store::CommitQueue::Counts commits =
        selected_store.rocksdb->commit_counts();
    Log(LogLevel::kInfo, "tasktraild stopped",
        {{"writes", commits.writes}, {"fsync_groups", commits.groups}});
  } else {
    Log(LogLevel::kInfo, "tasktraild stopped");
  }
  if (listener_failed.load()) {
    Log(LogLevel::kError,
        "exiting 1: the listener had stopped accepting connections");
    return 1;
  }
  return 0;
}

// Restores backup --backup-id (default: the newest) of --restore-from into
// --db, printing what it restored; 0 when restored and verified, 1 (with
// the reason on stderr) otherwise.
int RestoreBackup(const DaemonFlags& flags) {
  absl::StatusOr<store::BackupInfo> restored =
      store::RocksDbTaskStore::RestoreBackup(flags.restore_from,
                                             flags.backup_id, flags.store.db);
  if (!restored.ok()) {
    std::fprintf(stderr, "restore failed: %s\n",
                 std::string(restored.status().message()).c_str());
    return 1;
  }
  std::printf(
      "restored backup %lld (taken %s, %lld tasks, %lld bytes) from %s into "
      "%s; verified. Serve it with: tasktraild --db %s\n",
      static_cast<long long>(restored->backup_id),
      absl::FormatTime(absl::RFC3339_sec,
                       absl::FromUnixSeconds(restored->create_unix_seconds),
                       absl::UTCTimeZone())
          .c_str(),
      static_cast<long long>(restored->task_count),
      static_cast<long long>(restored->size_bytes), flags.restore_from.c_str(),
      flags.store.db.c_str(), flags.store.db.c_str());
  return 0;
}

int Main(int argc, char** argv) {
  DaemonFlags flags;
  CLI::App app{
      "tasktraild: the evidence trail of image and video generation "
      "jobs (gRPC server on an embedded RocksDB store)"};
  app.add_option("--listen", flags.listen, "HOST:PORT to serve on")
      ->capture_default_str();
  app.add_option("--metrics-listen", flags.metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on (/metrics); off "
                 "when not given. Loopback only unless --auth-file or "
                 "--insecure is given");
  app.add_option("--db", flags.store.db,
                 "RocksDB data directory (created when missing); the default "
                 "store")
      ->capture_default_str();
  app.add_option("--postgres", flags.store.postgres,
                 "serve from PostgreSQL instead of --db: a libpq URI "
                 "(postgresql://USER@HOST:PORT/DB) or key=value string; the "
                 "password may come from PGPASSWORD or ~/.pgpass. The schema "
                 "is created or migrated at start. Several tasktraild "
                 "replicas may share one database");
  app.add_option("--postgres-pool", flags.store.postgres_pool,
                 "--postgres: connections (and commit threads) per replica")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--postgres-batch", flags.store.postgres_batch,
                 "--postgres: writes a commit thread commits together in one "
                 "transaction (group commit), each still all or nothing for "
                 "its caller; 1: a transaction per write")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--postgres-listen", flags.store.postgres_listen,
                 "--postgres: where the one connection that LISTENs for the "
                 "other replicas' writes (for WatchTask) goes, when not to "
                 "--postgres: it needs a session of its own, so behind "
                 "PgBouncer in transaction mode point it at the database or "
                 "at a session-mode pool");
  app.add_option("--postgres-prepared-statements",
                 flags.store.postgres_prepared_statements,
                 "--postgres: prepare each statement once per connection, "
                 "so that PostgreSQL parses it once rather than "
                 "on every call; false behind a pooler that does not keep "
                 "prepared statements across transactions (PgBouncer "
                 "before 1.21 in transaction mode)")
      ->capture_default_str();
  app.add_option("--sync", flags.store.sync,
                 "fsync every write before acknowledging it; false is unsafe "
                 "(acknowledged writes may be lost on a crash), for benchmarks")
      ->capture_default_str();
  app.add_option("--catalog", flags.catalog,
                 "model catalog JSON (the format `tasktrail models --json` "
                 "prints); SIGHUP reloads it. Default: the built-in catalog");
  app.add_option("--failure-rules", flags.failure_rules,
                 "failure classification rules JSON; default: the built-in "
                 "table");
  app.add_flag("--check", flags.check,
               "validate the failure rules (--failure-rules FILE, else the "
               "built-in table), print one line and exit: 0 valid, 1 not "
               "(naming the file and the field)");
  app.add_option("--auth-file", flags.auth_file,
                 "access control: lines `ROLE PRINCIPAL SHA256HEX` (roles "
                 "backend, support, admin; the SHA-256 of the bearer token)");
  app.add_option("--tls-cert", flags.tls_cert, "server certificate chain PEM");
  app.add_option("--tls-key", flags.tls_key, "server private key PEM");
  app.add_option("--tls-client-ca", flags.tls_client_ca,
                 "CA PEM for client certificates: require mutual TLS");
  app.add_flag("--insecure", flags.insecure,
               "serve a non-loopback address without --auth-file");
  app.add_option("--max-in-flight", flags.edge.max_in_flight,
                 "calls admitted at once; more get RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-concurrent-streams", flags.max_concurrent_streams,
                 "HTTP/2 streams per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--max-metadata-bytes", flags.edge.max_metadata_bytes,
                 "largest request header block (metadata) accepted, in bytes; "
                 "a larger one is refused RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 20));
  AddDurationOption(app, "--max-connection-idle", &flags.max_connection_idle,
                    "close a connection that has had no call for this long");
  AddDurationOption(app, "--handshake-timeout", &flags.handshake_timeout,
                    "close a connection that has not completed its TLS and "
                    "HTTP/2 handshake within this long");
  app.add_option("--port-file", flags.port_file,
                 "write the bound port to this file once serving");
  app.add_option("--block-cache-mb", flags.store.block_cache_mb,
                 "RocksDB block cache size in MiB")
      ->capture_default_str()
      ->check(CLI::Range(8, 65536));
  app.add_option("--write-threads", flags.write_threads,
                 "threads that prepare writes (a write to a task waits "
                 "there until the previous one to that task is durable)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--max-receive-bytes", flags.max_receive_bytes,
                 "largest request accepted, in bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024, 64 << 20));
  app.add_option("--watch-buffer", flags.hub.buffer_events,
                 "events a WatchTask stream may fall behind before it ends "
                 "UNAVAILABLE (the client resumes with after_seq)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  AddDurationOption(app, "--watch-max-lifetime", &flags.edge.watch_max_lifetime,
                    "a WatchTask stream ends UNAVAILABLE after this long; "
                    "clients resume with after_seq");
  AddDurationOption(app, "--stale-after", &flags.tracker.stale_after,
                    "a queued or running task with no upstream event for "
                    "longer than this is reported as POLLING_STALLED");
  AddDurationOption(app, "--dedup-retention", &flags.tracker.dedup_retention,
                    "how long a request_id keeps returning its task");
  AddDurationOption(app, "--dedup-window-after-success",
                    &flags.tracker.dedup_window_after_success,
                    "how long after an original succeeded an identical "
                    "submission is still blocked as a double click");
  app.add_option_function<std::string>(
         "--log-format",
         [&flags](const std::string& name) {
           absl::StatusOr<LogFormat> format = ParseLogFormat(name);
           if (!format.ok()) {
             throw CLI::ValidationError(std::string(format.status().message()));
           }
           flags.log_format = *format;
         },
         "log lines on stderr: text (TIME LEVEL MESSAGE key=value ...) or "
         "json (one object per line: time, level, message and the same "
         "keys)")
      ->default_str("text");
  app.add_option("--backup-dir", flags.store.backup_dir,
                 "enable CreateBackup (`tasktrail backup`): backups go to "
                 "this directory, best on another disk than --db");
  app.add_option("--backup-keep", flags.store.backup_keep,
                 "backups CreateBackup keeps, newest first")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  CLI::Option* restore_from = app.add_option(
      "--restore-from", flags.restore_from,
      "restore a backup of this backup directory into --db (which must be "
      "new or empty), verify it, print what was restored and exit");
  app.add_option("--backup-id", flags.backup_id,
                 "--restore-from: the backup to restore (default: the newest)")
      ->needs(restore_from)
      ->check(CLI::Range(int64_t{1}, int64_t{UINT32_MAX}));
  AddRetentionOption(app, "--task-retention", &flags.tracker.task_retention,
                     "how long a finished task (SUCCEEDED, FAILED, CANCELED) "
                     "is kept after it finished, then purged with its "
                     "timeline, notes and audit log; 0 keeps forever");
  CLI::Option* unfinished_retention = AddRetentionOption(
      app, "--unfinished-retention", &flags.tracker.unfinished_retention,
      "how long an unfinished task is kept after its last event (abandoned), "
      "then purged; 0 keeps forever. Default: twice --task-retention");
  unfinished_retention->default_str("2 x --task-retention");
  AddDurationOption(app, "--retention-sweep-interval",
                    &flags.retention_sweep_interval,
                    "how often the tasks past their retention are looked for "
                    "and purged (in small batches, yielding to other writes)");
  app.add_option("--export-busy-rate",
                 flags.export_pacing.busy_tasks_per_second,
                 "tasks per second all ExportTasks streams together read "
                 "while other calls are being served (0: no limit); an "
                 "export on an otherwise idle server reads at "
                 "--export-idle-rate")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--export-idle-rate",
                 flags.export_pacing.idle_tasks_per_second,
                 "tasks per second all ExportTasks streams together read "
                 "once no other call has come for 500 ms (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  CLI11_PARSE(app, argc, argv);
  if (unfinished_retention->count() == 0) {
    flags.tracker.unfinished_retention = 2 * flags.tracker.task_retention;
  }
  if (flags.retention_sweep_interval <= absl::ZeroDuration()) {
    std::fprintf(stderr, "--retention-sweep-interval must be above 0\n");
    return 2;
  }
  if (flags.check) return CheckFailureRules(flags.failure_rules);
  if (absl::Status store_flags =
          CheckStoreFlags(flags.store,
                          [&app](absl::string_view flag) {
                            return app.count(std::string(flag)) > 0;
                          });
      !store_flags.ok()) {
    std::fprintf(stderr, "%s\n", std::string(store_flags.message()).c_str());
    return 2;
  }
  if (!flags.restore_from.empty()) {
    if (app.count("--db") == 0) {
      std::fprintf(stderr,
                   "--restore-from needs --db NEWDIR: the directory to "
                   "restore into (new or empty)\n");
      return 2;
    }
    return RestoreBackup(flags);
  }

  // Debian's abseil checks every Mutex acquisition for lock-order cycles;
  // that costs a few percent of CPU on every call and finds nothing the
  // tests do not.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  SetLogFormat(flags.log_format);
  gpr_set_log_function(&OnGrpcLog);
  google::protobuf::SetLogHandler(&OnProtobufLog);
  return Run(std::move(flags));
}

}  // namespace
}  // namespace tasktrail

int main(int argc, char** argv) { return tasktrail::Main(argc, argv); }
