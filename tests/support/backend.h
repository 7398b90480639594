// The stores tasktraild serves from, as the parameter of the tests written
// once and run on each: the store conformance suite and the end-to-end
// suites parametrized over the store. Header-only, no dependencies.
//
// The PostgreSQL instances of a parametrized test end in "/Postgres": ctest
// gives the tests named so the shared PostgreSQL cluster
// (tests/CMakeLists.txt, postgres_cluster.h).
#ifndef TASKTRAIL_TESTS_SUPPORT_BACKEND_H_
#define TASKTRAIL_TESTS_SUPPORT_BACKEND_H_

#include <ostream>
#include <string>

namespace tasktrail::testing {

enum class Backend { kRocksDb, kPostgres };

// "RocksDb" or "Postgres".
inline std::string BackendName(Backend backend) {
  return backend == Backend::kRocksDb ? "RocksDb" : "Postgres";
}

// The name generator of INSTANTIATE_TEST_SUITE_P: the test's suffix.
struct BackendParamName {
  template <typename ParamInfo>
  std::string operator()(const ParamInfo& info) const {
    return BackendName(info.param);
  }
};

// Names the store in gtest's messages.
inline void PrintTo(Backend backend, std::ostream* os) {
  *os << BackendName(backend);
}

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_BACKEND_H_
