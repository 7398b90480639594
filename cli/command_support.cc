#include "cli/command_support.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_split.h"

namespace tasktrail::cli {
namespace {

// Returns the contents of `path`. Errors: InvalidArgument naming `flag`.
absl::StatusOr<std::string> ReadFile(const std::string& flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", flag, " file ", path));
  }
  return buffer.str();
}

// TLS credentials when --tls-ca is given, else insecure ones.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const GlobalOptions& global) {
  if (global.tls_ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  absl::StatusOr<std::string> ca = ReadFile("--tls-ca", global.tls_ca);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = *std::move(ca);
  if (!global.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile("--tls-cert", global.tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile("--tls-key", global.tls_key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

void Print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void PrintError(const std::string& line) {
  std::fprintf(stderr, "tasktrail: %s\n",
               EscapeControlCharacters(line).c_str());
}

int PrintJson(const google::protobuf::Message& message, bool pretty) {
  absl::StatusOr<std::string> json = ToJson(message, pretty);
  if (!json.ok()) {
    PrintError(absl::StrCat("cannot print the answer as JSON: ",
                            json.status().message()));
    return kExitOther;
  }
  Print(*json);
  return kExitOk;
}

FormatOptions MakeFormatOptions(const GlobalOptions& global) {
  FormatOptions opts;
  if (global.utc) opts.zone = absl::UTCTimeZone();
  opts.now = absl::Now();
  return opts;
}

bool Client::Connect(const grpc::ChannelArguments& arguments) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeCredentials(global_);
  if (!creds.ok()) {
    PrintError(std::string(creds.status().message()));
    return false;
  }
  stub_ = v1::TaskTracker::NewStub(
      grpc::CreateCustomChannel(global_.server, *std::move(creds), arguments));
  return true;
}

void Client::Prepare(grpc::ClientContext* ctx, bool unary) const {
  if (!global_.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + global_.token);
  }
  if (unary) {
    auto timeout =
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(global_.timeout_seconds));
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  }
}

int Client::Fail(const grpc::Status& status) const {
  PrintError(FormatRpcError(status.error_code(), status.error_message(),
                            global_.server));
  for (absl::string_view line :
       absl::StrSplit(FormatErrorDetails(status.error_details()), '\n',
                      absl::SkipEmpty())) {
    std::fprintf(stderr, "%s\n", EscapeControlCharacters(line).c_str());
  }
  return ExitCodeFor(status.error_code(), status.error_message());
}

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* field) {
  const int64_t nanos = absl::ToUnixNanos(time);
  field->set_seconds(absl::ToUnixSeconds(time));
  field->set_nanos(static_cast<int32_t>(nanos - absl::ToUnixSeconds(time) *
                                                    int64_t{1000000000}));
}

void SetDuration(absl::Duration span, google::protobuf::Duration* field) {
  const int64_t nanos = absl::ToInt64Nanoseconds(span);
  field->set_seconds(nanos / 1000000000);
  field->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

int SetOlderThan(const std::string& older_than,
                 google::protobuf::Duration* field) {
  if (older_than.empty()) return kExitOk;
  absl::StatusOr<absl::Duration> span = ParseSpan(older_than);
  if (!span.ok()) {
    PrintError(absl::StrCat("--older-than: ", span.status().message()));
    return kExitUsage;
  }
  SetDuration(*span, field);
  return kExitOk;
}

int ListTaskPages(const GlobalOptions& global, v1::ListTasksRequest request,
                  PageBounds bounds, v1::ListTasksResponse* all,
                  bool* stopped_at_work_bound) {
  constexpr int kMaxPageSize = 1000;
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  if (stopped_at_work_bound != nullptr) *stopped_at_work_bound = false;
  const int want = bounds.want;
  int64_t scanned = 0;
  while (true) {
    request.set_page_size(want > 0
                              ? std::min(want - all->tasks_size(), kMaxPageSize)
                              : kMaxPageSize);
    v1::ListTasksResponse page;
    grpc::Status status = client.Call(&Stub::ListTasks, request, &page);
    if (!status.ok()) return client.Fail(status);
    scanned += page.scanned_count();
    for (v1::Task& task : *page.mutable_tasks()) {
      *all->add_tasks() = std::move(task);
    }
    for (v1::QueueStatus& queue : *page.mutable_queue_statuses()) {
      *all->add_queue_statuses() = std::move(queue);
    }
    all->set_next_page_token(page.next_page_token());
    all->set_scanned_count(scanned);
    if (page.next_page_token().empty() ||
        (want > 0 && all->tasks_size() >= want)) {
      return kExitOk;
    }
    if (bounds.scan_bound > 0 && scanned >= bounds.scan_bound) {
      if (stopped_at_work_bound != nullptr) *stopped_at_work_bound = true;
      return kExitOk;
    }
    request.set_page_token(page.next_page_token());
  }
}

}  // namespace tasktrail::cli
