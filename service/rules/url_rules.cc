#include "service/rules/url_rules.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tasktrail {
namespace {

constexpr absl::string_view kHttpsPrefix = "https://";
constexpr size_t kMaxDomainLength = 253;
constexpr size_t kMaxLabelLength = 63;

absl::string_view FieldName(UrlUse use) {
  return use == UrlUse::kCallback ? "callback_url" : "reference image URI";
}

// The parts of the authority ("host[:port]") of an https URL.
struct Authority {
  absl::string_view host;
  bool has_port = false;
  absl::string_view port;
};

// `rest` is the URL after "https://"; the authority ends at the first '/',
// '?' or '#'. A bracketed host ("[::1]:443") keeps its brackets.
absl::string_view AuthorityOf(absl::string_view rest) {
  return rest.substr(0, std::min(rest.find_first_of("/?#"), rest.size()));
}

Authority SplitAuthority(absl::string_view authority) {
  Authority parts;
  size_t colon = authority.find(':');
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    colon =
        close == absl::string_view::npos ? close : authority.find(':', close);
  }
  parts.host = authority.substr(0, colon);
  if (colon != absl::string_view::npos) {
    parts.has_port = true;
    parts.port = authority.substr(colon + 1);
  }
  return parts;
}

bool IsValidPort(absl::string_view port) {
  int value = 0;
  return !port.empty() && port.size() <= 5 &&
         std::all_of(port.begin(), port.end(), absl::ascii_isdigit) &&
         absl::SimpleAtoi(port, &value) && value >= 1 && value <= 65535;
}

// True for a label that an IPv4 parser (inet_aton) reads as a number:
// decimal, octal (leading 0) or hex ("0x...").
bool IsNumericLabel(absl::string_view label) {
  if (absl::ConsumePrefix(&label, "0x") || absl::ConsumePrefix(&label, "0X")) {
    return std::all_of(label.begin(), label.end(), absl::ascii_isxdigit);
  }
  return !label.empty() &&
         std::all_of(label.begin(), label.end(), absl::ascii_isdigit);
}

// `host` has no trailing dot and no brackets (IPv6 is checked before). Every
// IPv4 notation ends in a numeric label and no top-level domain is numeric, so
// that label decides.
bool IsIpv4Literal(absl::string_view host) {
  const size_t dot = host.rfind('.');
  return IsNumericLabel(dot == absl::string_view::npos ? host
                                                       : host.substr(dot + 1));
}

bool IsLocalhost(absl::string_view host) {
  return absl::EqualsIgnoreCase(host, "localhost") ||
         absl::EndsWithIgnoreCase(host, ".localhost");
}

bool IsLabel(absl::string_view label) {
  return !label.empty() && label.size() <= kMaxLabelLength &&
         label.front() != '-' && label.back() != '-' &&
         std::all_of(label.begin(), label.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '-'; });
}

// `host` has no trailing dot.
bool IsDomainName(absl::string_view host) {
  const std::vector<absl::string_view> labels = absl::StrSplit(host, '.');
  return host.size() <= kMaxDomainLength && labels.size() >= 2 &&
         std::all_of(labels.begin(), labels.end(), IsLabel);
}

// The problem with `host` (as written in the URL), if any.
absl::optional<std::string> CheckHost(absl::string_view written,
                                      absl::string_view field) {
  const std::string must = absl::StrCat(
      field, " must be an https URL whose host is a domain name; ");
  if (written.empty()) return absl::StrCat(must, "this URL has no host");
  // Before the percent check: "[fe80::1%25eth0]" is first of all an address.
  if (absl::StartsWith(written, "[")) {
    return absl::StrCat(must, written, " is an IP address");
  }
  const bool ascii =
      std::all_of(written.begin(), written.end(), absl::ascii_isascii);
  if (!ascii || absl::StrContains(written, '%')) {
    return absl::StrCat(must, written,
                        " is percent-encoded or not ASCII; pass the ASCII "
                        "(punycode) form, e.g. xn--bcher-kva.example");
  }
  absl::string_view host = written;
  absl::ConsumeSuffix(&host, ".");
  if (IsLocalhost(host)) {
    return absl::StrCat(must, written, " is localhost, not a public host");
  }
  if (IsIpv4Literal(host)) {
    return absl::StrCat(must, written, " is an IP address");
  }
  if (!IsDomainName(host)) {
    return absl::StrCat(must, written,
                        " is not one (it needs two or more labels of "
                        "letters, digits and '-', separated by dots)");
  }
  return absl::nullopt;
}

}  // namespace

absl::optional<std::string> CheckPublicHttpsUrl(absl::string_view url,
                                                UrlUse use, size_t max_length) {
  const absl::string_view field = FieldName(use);
  // Before the length check: a data: URI is usually long, and the useful
  // answer is what to send instead.
  if (absl::StartsWithIgnoreCase(url, "data:")) {
    if (use == UrlUse::kCallback) {
      return absl::StrCat(field, " must be an https URL, not a data: URI");
    }
    return absl::StrCat(field,
                        " must be an https URL, not a data: URI; upload the "
                        "image and pass its https URL, because tasktrail "
                        "keeps evidence, not media");
  }
  if (url.size() > max_length) {
    return absl::StrCat(field, " is ", url.size(), " bytes long; the limit is ",
                        max_length, " bytes");
  }
  if (std::any_of(url.begin(), url.end(), [](char c) {
        return absl::ascii_isspace(c) || absl::ascii_iscntrl(c);
      })) {
    return absl::StrCat(field,
                        " must not contain whitespace or control characters; "
                        "percent-encode them");
  }
  if (!absl::StartsWithIgnoreCase(url, kHttpsPrefix)) {
    return absl::StrCat(field, " must be an https URL starting with https://");
  }
  const absl::string_view authority =
      AuthorityOf(url.substr(kHttpsPrefix.size()));
  if (absl::StrContains(authority, '\\')) {
    return absl::StrCat(field,
                        " must not contain a backslash before the path; "
                        "write https://host/path");
  }
  if (absl::StrContains(authority, '@')) {
    return absl::StrCat(field,
                        " must not contain a user name or password ('@' "
                        "before the path); write https://host/path");
  }
  const Authority parts = SplitAuthority(authority);
  if (parts.has_port && !IsValidPort(parts.port)) {
    return absl::StrCat(field, " has port \"", parts.port,
                        "\"; a port must be a number from 1 to 65535");
  }
  return CheckHost(parts.host, field);
}

}  // namespace tasktrail
