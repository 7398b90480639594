// Catalog: the model specs tasktrail validates against, loaded from the
// proto3 JSON of ListModelsResponse (the file `tasktraild --catalog` reads and
// `tasktrail models --json` prints), checked for consistency, and compiled
// into lookup tables. CatalogHolder publishes the catalog in force and swaps
// it atomically on reload.
//
// Thread safety: a Catalog is immutable once built and safe to share.
// CatalogHolder is safe for concurrent Get/Set.
#ifndef TASKTRAIL_SERVICE_RULES_CATALOG_H_
#define TASKTRAIL_SERVICE_RULES_CATALOG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/rules/media_shapes.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// A model spec with its shapes parsed once.
struct CompiledModel {
  v1::ModelSpec spec;
  // Accepted ratios (reduced, without duplicates) and how the catalog
  // writes them, in catalog order. From `aspect_ratios`, or else from the
  // exact sizes.
  std::vector<Ratio> ratios;
  std::vector<std::string> ratio_texts;
  // Exact sizes and their names ("1280x720").
  std::vector<PixelSize> sizes;
  // Resolution classes by short side ("720p" -> 720).
  std::vector<int64_t> classes;
  bool accepts_auto_resolution = false;
  // Every accepted resolution name, for messages.
  std::vector<std::string> resolution_names;
};

class Catalog {
 public:
  // Parses and checks a catalog document. Errors: INVALID_ARGUMENT whose
  // message starts with `origin` and names the offending field's path (for
  // example "models[2].aspect_ratios[1]").
  static absl::StatusOr<std::shared_ptr<const Catalog>> FromJson(
      absl::string_view json, absl::string_view origin);

  // Reads and parses a catalog file; errors as FromJson, or as
  // ReadOperatorFile (a file that is missing, not a regular file or over
  // 4 MiB).
  static absl::StatusOr<std::shared_ptr<const Catalog>> FromFile(
      const std::string& path);

  // The catalog compiled into the binary (service/rules/default_catalog.json).
  static std::shared_ptr<const Catalog> BuiltIn();

  // The model named exactly `name`, or nullptr.
  const CompiledModel* Find(absl::string_view name) const;

  // Up to three catalog names close to `name` (case, separators, spaces and
  // small typos), closest first.
  std::vector<std::string> Suggest(absl::string_view name) const;

  // The explicit `catalog_version`, or "sha256:" and 16 hex digits of the
  // document's content.
  const std::string& version() const { return document_.catalog_version(); }

  // The document, with `catalog_version` filled in.
  const v1::ListModelsResponse& document() const { return document_; }

 private:
  Catalog() = default;

  v1::ListModelsResponse document_;
  absl::flat_hash_map<std::string, CompiledModel> models_;
};

// The catalog in force.
class CatalogHolder {
 public:
  explicit CatalogHolder(std::shared_ptr<const Catalog> catalog)
      : catalog_(std::move(catalog)) {}

  std::shared_ptr<const Catalog> Get() const {
    absl::MutexLock lock(&mutex_);
    return catalog_;
  }
  void Set(std::shared_ptr<const Catalog> catalog) {
    absl::MutexLock lock(&mutex_);
    catalog_ = std::move(catalog);
  }

 private:
  mutable absl::Mutex mutex_;
  std::shared_ptr<const Catalog> catalog_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_CATALOG_H_
