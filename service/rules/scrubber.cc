#include "service/rules/scrubber.h"

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "service/rules/digests.h"

namespace tasktrail {
namespace {

// A half-open byte range [begin, end) of the text to replace by kRedacted.
struct Span {
  size_t begin;
  size_t end;
};
using Spans = std::vector<Span>;

// --- Character classes (ASCII only; other bytes are in no class). ---

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlnum(char c) { return IsDigit(c) || IsUpper(c) || IsLower(c); }
bool IsHex(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
// The base64url alphabet: what vendor keys and header/parameter names use.
bool IsKeyChar(char c) { return IsAlnum(c) || c == '-' || c == '_'; }
bool IsWordChar(char c) { return IsAlnum(c) || c == '_'; }
bool IsUpperAlnum(char c) { return IsUpper(c) || IsDigit(c); }
bool IsDottedKeyChar(char c) { return IsKeyChar(c) || c == '.'; }
// Standard and URL-safe base64 together (padding '=' is handled apart).
bool IsBase64Char(char c) { return IsKeyChar(c) || c == '+' || c == '/'; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsSpace(char c) {
  return absl::ascii_isspace(static_cast<unsigned char>(c));
}
bool IsQuote(char c) { return c == '"' || c == '\'' || c == '`'; }

using CharClass = bool (*)(char);

// The end of the run of `in_class` characters that starts at `pos`.
size_t RunEnd(absl::string_view text, size_t pos, CharClass in_class) {
  while (pos < text.size() && in_class(text[pos])) ++pos;
  return pos;
}

size_t SkipBlanks(absl::string_view text, size_t pos) {
  return RunEnd(text, pos, IsBlank);
}

// True when a word may start at `pos`: the byte before is not in `word`.
bool AtWordStart(absl::string_view text, size_t pos, CharClass word) {
  return pos == 0 || !word(text[pos - 1]);
}

void AddSpan(size_t begin, size_t end, Spans* spans) {
  if (end > begin) spans->push_back({begin, end});
}

// 1 upper, 2 lower, 3 digit, 0 anything else.
int ClassOf(char c) {
  if (IsUpper(c)) return 1;
  if (IsLower(c)) return 2;
  if (IsDigit(c)) return 3;
  return 0;
}

// True when at least 15 % of the neighbouring pairs of `run` change between
// upper case, lower case and digits, not counting upper->lower (the start of
// a capitalized word). Random base64 scores ~42 %; paths, slugs and file
// names ("Video_2024_Final_Cut") score under 10 %.
bool LooksRandom(absl::string_view run) {
  if (run.size() < 2) return false;
  size_t changes = 0;
  for (size_t i = 1; i < run.size(); ++i) {
    const int a = ClassOf(run[i - 1]);
    const int b = ClassOf(run[i]);
    if (a == 0 || b == 0 || a == b || (a == 1 && b == 2)) continue;
    ++changes;
  }
  return changes * 20 >= (run.size() - 1) * 3;
}

bool HasAllClasses(absl::string_view run) {
  bool digit = false, upper = false, lower = false;
  for (char c : run) {
    digit |= IsDigit(c);
    upper |= IsUpper(c);
    lower |= IsLower(c);
  }
  return digit && upper && lower;
}

// A token after "Bearer": >= 8 characters and a digit, a lower->upper
// change, or >= 20 characters. Words of prose do not qualify. Placeholders
// left by an earlier scrub do not count, so that scrubbing is idempotent.
bool LooksLikeCredential(absl::string_view token) {
  std::string without_placeholders;
  if (absl::StrContains(token, kRedacted)) {
    without_placeholders = absl::StrReplaceAll(token, {{kRedacted, ""}});
    token = without_placeholders;
  }
  if (token.size() < 8) return false;
  if (token.size() >= 20) return true;
  for (size_t i = 0; i < token.size(); ++i) {
    if (IsDigit(token[i])) return true;
    if (i > 0 && IsLower(token[i - 1]) && IsUpper(token[i])) return true;
  }
  return false;
}

// The end of a credential token starting at `pos`.
size_t TokenEnd(absl::string_view text, size_t pos) {
  while (pos < text.size()) {
    const char c = text[pos];
    if (IsSpace(c) || IsQuote(c) || c == ',' || c == ';' || c == '\\' ||
        c == '<' || c == '>') {
      break;
    }
    ++pos;
  }
  return pos;
}

// If a quoted string starts at `pos` ('"', '\'', '`' or an escaped \"),
// stores the range of its contents and returns true. An unterminated string
// runs to the end of the line: truncated messages still lose the secret.
bool ReadQuoted(absl::string_view text, size_t pos, Span* contents) {
  if (pos >= text.size()) return false;
  if (text[pos] == '\\' && pos + 1 < text.size() && text[pos + 1] == '"') {
    const size_t begin = pos + 2;
    size_t end = text.find("\\\"", begin);
    if (end == absl::string_view::npos) end = text.find('\n', begin);
    if (end == absl::string_view::npos) end = text.size();
    *contents = {begin, end};
    return true;
  }
  if (!IsQuote(text[pos])) return false;
  const char quote = text[pos];
  size_t end = pos + 1;
  while (end < text.size() && text[end] != quote && text[end] != '\n') {
    end += text[end] == '\\' ? 2 : 1;
  }
  *contents = {pos + 1, std::min(end, text.size())};
  return true;
}

// --- Vendor keys with a known prefix. ---

struct VendorPrefix {
  absl::string_view prefix;
  CharClass tail_class;
  size_t min_tail;
  bool exact;  // the tail has exactly min_tail characters
};

constexpr VendorPrefix kVendorPrefixes[] = {
    {"sk-", IsKeyChar, 20, false},       // OpenAI, Anthropic, DeepSeek, ...
    {"rk-", IsKeyChar, 16, false},       // restricted keys
    {"sk_live_", IsKeyChar, 16, false},  // Stripe
    {"sk_test_", IsKeyChar, 16, false},
    {"rk_live_", IsKeyChar, 16, false},
    {"rk_test_", IsKeyChar, 16, false},
    {"pk_live_", IsKeyChar, 16, false},
    {"pk_test_", IsKeyChar, 16, false},
    {"whsec_", IsKeyChar, 16, false},
    {"AIza", IsKeyChar, 35, false},         // Google API key
    {"ya29.", IsDottedKeyChar, 20, false},  // Google OAuth access token
    {"AKIA", IsUpperAlnum, 16, true},       // AWS access key id
    {"ASIA", IsUpperAlnum, 16, true},       // AWS temporary access key id
    {"ghp_", IsWordChar, 20, false},        // GitHub
    {"gho_", IsWordChar, 20, false},
    {"ghs_", IsWordChar, 20, false},
    {"ghu_", IsWordChar, 20, false},
    {"ghr_", IsWordChar, 20, false},
    {"github_pat_", IsWordChar, 20, false},
    {"glpat-", IsKeyChar, 20, false},  // GitLab
    {"xoxa-", IsKeyChar, 10, false},   // Slack
    {"xoxb-", IsKeyChar, 10, false},
    {"xoxp-", IsKeyChar, 10, false},
    {"xoxr-", IsKeyChar, 10, false},
    {"hf_", IsAlnum, 30, false},  // Hugging Face
    {"r8_", IsAlnum, 30, false},  // Replicate
    {"npm_", IsAlnum, 36, false},
};

// The shortest vendor key: "xoxa-" + 10.
constexpr size_t kMinVendorKeyLength = 15;

void FindVendorKeys(absl::string_view text, Spans* spans) {
  // Word by word: a prefix only counts at the start of a word.
  size_t i = 0;
  while (i < text.size()) {
    if (!IsKeyChar(text[i])) {
      ++i;
      continue;
    }
    const size_t word_end = RunEnd(text, i, IsKeyChar);
    const absl::string_view rest = text.substr(i);
    size_t next = word_end;
    // "ya29." is the one prefix whose key goes on past a '.'.
    if (word_end - i >= kMinVendorKeyLength ||
        absl::StartsWith(rest, "ya29.")) {
      for (const VendorPrefix& vendor : kVendorPrefixes) {
        if (rest[0] != vendor.prefix[0] ||
            !absl::StartsWith(rest, vendor.prefix)) {
          continue;
        }
        const size_t tail_begin = i + vendor.prefix.size();
        const size_t end = RunEnd(text, tail_begin, vendor.tail_class);
        const size_t tail = end - tail_begin;
        const bool match = vendor.exact
                               ? tail == vendor.min_tail &&
                                     (end == text.size() || !IsAlnum(text[end]))
                               : tail >= vendor.min_tail;
        if (match) {
          // The rest of a word glued to the key goes with it.
          next = std::max(next, end);
          AddSpan(i, next, spans);
          break;
        }
      }
    }
    i = next;
  }
}

// --- "Bearer <token>" anywhere. ---

void FindBearerTokens(absl::string_view text, Spans* spans) {
  constexpr absl::string_view kBearer = "bearer";
  for (size_t i = 0; i + kBearer.size() < text.size(); ++i) {
    if ((text[i] != 'b' && text[i] != 'B') || !AtWordStart(text, i, IsAlnum) ||
        !absl::StartsWithIgnoreCase(text.substr(i), kBearer) ||
        !IsBlank(text[i + kBearer.size()])) {
      continue;
    }
    const size_t begin = SkipBlanks(text, i + kBearer.size());
    const size_t end = TokenEnd(text, begin);
    if (LooksLikeCredential(text.substr(begin, end - begin))) {
      AddSpan(begin, end, spans);
    }
  }
}

// --- Credential headers ("Name: value"). ---

struct CredentialHeader {
  absl::string_view name;  // lower case
  // The value runs to the end of the line (and may start with a scheme
  // word), rather than being one token.
  bool rest_of_line;
};

constexpr CredentialHeader kCredentialHeaders[] = {
    {"authorization", true},
    {"proxy-authorization", true},
    {"cookie", true},
    {"set-cookie", true},
    {"x-api-key", false},
    {"api-key", false},
    {"x-goog-api-key", false},
    {"x-auth-token", false},
    {"x-amz-security-token", false},
    {"ocp-apim-subscription-key", false},
};

// Authorization schemes kept in front of the redacted credentials.
constexpr absl::string_view kAuthSchemes[] = {
    "bearer", "basic", "digest",    "token", "bot",
    "apikey", "key",   "negotiate", "ntlm",  "aws4-hmac-sha256",
};

// The end of a header value starting at `pos`: end of line, ", ", '"', '\'
// (an escaped newline or quote in JSON text) or `closing_quote` (the quote
// before the header name, as in curl -H 'Authorization: ...'), trailing
// blanks dropped.
size_t HeaderValueEnd(absl::string_view text, size_t pos, char closing_quote) {
  size_t end = pos;
  while (end < text.size()) {
    const char c = text[end];
    if (c == '\r' || c == '\n' || c == '"' || c == '\\' ||
        (closing_quote != '\0' && c == closing_quote)) {
      break;
    }
    if (c == ',' && end + 1 < text.size() && text[end + 1] == ' ') break;
    ++end;
  }
  while (end > pos && IsSpace(text[end - 1])) --end;
  return end;
}

// If `value` starts with a known scheme word followed by blanks and more
// text, returns the length to keep ("Basic  "); else 0.
size_t SchemeLength(absl::string_view value) {
  const size_t word = RunEnd(value, 0, IsKeyChar);
  const size_t after = SkipBlanks(value, word);
  if (after == word || after == value.size()) return 0;
  for (absl::string_view scheme : kAuthSchemes) {
    if (absl::EqualsIgnoreCase(value.substr(0, word), scheme)) return after;
  }
  return 0;
}

void FindCredentialHeaders(absl::string_view text, Spans* spans) {
  // Word by word: a header name is a whole word followed by ':'.
  size_t i = 0;
  while (i < text.size()) {
    if (!IsKeyChar(text[i])) {
      ++i;
      continue;
    }
    const size_t name_end = RunEnd(text, i, IsKeyChar);
    size_t next = name_end;
    if (name_end < text.size() && text[name_end] == ':') {
      const absl::string_view name = text.substr(i, name_end - i);
      for (const CredentialHeader& header : kCredentialHeaders) {
        if (!absl::EqualsIgnoreCase(name, header.name)) continue;
        size_t begin = SkipBlanks(text, name_end + 1);
        size_t end;
        if (header.rest_of_line) {
          const char before = i > 0 ? text[i - 1] : '\0';
          end = HeaderValueEnd(text, begin, IsQuote(before) ? before : '\0');
          begin += SchemeLength(text.substr(begin, end - begin));
        } else {
          end = TokenEnd(text, begin);
        }
        AddSpan(begin, end, spans);
        // The value is redacted whole; not scanning it again keeps
        // "cookie:cookie:..." linear.
        next = std::max(next, end);
        break;
      }
    }
    i = next;
  }
}

// --- NAME=VALUE and "NAME": "VALUE". ---

// Secret names with '-' and '_' removed, lower case.
constexpr absl::string_view kSecretNames[] = {
    "key",
    "apikey",
    "xapikey",
    "apitoken",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "xauthtoken",
    "sessiontoken",
    "securitytoken",
    "xamzsecuritytoken",
    "secret",
    "clientsecret",
    "secretkey",
    "secretaccesskey",
    "privatekey",
    "privatetoken",
    "password",
    "passwd",
    "pwd",
    "signature",
    "sig",
    "xgoogsignature",
    "xamzsignature",
    "authorization",
    "proxyauthorization",
};

// Suffixes that make any name a secret name ("OPENAI_API_KEY").
constexpr absl::string_view kSecretNameSuffixes[] = {
    "apikey",    "apitoken",  "secret",     "password",  "accesstoken",
    "authtoken", "secretkey", "privatekey", "signature",
};

bool IsSecretName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  std::string compact;
  for (char c : name) {
    if (c != '-' && c != '_') compact.push_back(absl::ascii_tolower(c));
  }
  for (absl::string_view secret : kSecretNames) {
    if (compact == secret) return true;
  }
  for (absl::string_view suffix : kSecretNameSuffixes) {
    if (absl::EndsWith(compact, suffix)) return true;
  }
  return false;
}

// The end of an unquoted parameter value starting at `pos`: '&', '#', '\',
// whitespace, a quote, or a ',' before whitespace ("key=a, b" keeps ", b").
size_t ParamValueEnd(absl::string_view text, size_t pos) {
  while (pos < text.size()) {
    const char c = text[pos];
    if (c == '&' || c == '#' || c == '\\' || IsSpace(c) || IsQuote(c)) break;
    if (c == ',' && (pos + 1 == text.size() || IsSpace(text[pos + 1]))) break;
    ++pos;
  }
  return pos;
}

void FindNamedParams(absl::string_view text, Spans* spans) {
  for (size_t eq = text.find('='); eq != absl::string_view::npos;
       eq = text.find('=', eq + 1)) {
    size_t name_begin = eq;
    while (name_begin > 0 && IsKeyChar(text[name_begin - 1])) --name_begin;
    if (!IsSecretName(text.substr(name_begin, eq - name_begin))) continue;
    Span value;
    if (!ReadQuoted(text, eq + 1, &value)) {
      value = {eq + 1, ParamValueEnd(text, eq + 1)};
    }
    AddSpan(value.begin, value.end, spans);
    // Whatever is inside the value is redacted with it; skipping it keeps
    // the scan linear ("key=key=key=...").
    if (value.end > eq + 1) eq = value.end - 1;
  }
}

void FindJsonValues(absl::string_view text, Spans* spans) {
  for (size_t i = 0; i < text.size(); ++i) {
    const char quote = text[i];
    if (quote != '"' && quote != '\'') continue;
    const bool escaped = i > 0 && text[i - 1] == '\\';
    const size_t name_begin = i + 1;
    const size_t name_end = RunEnd(text, name_begin, IsKeyChar);
    size_t after = name_end;
    if (escaped) {
      if (after >= text.size() || text[after] != '\\') continue;
      ++after;
    }
    if (after >= text.size() || text[after] != quote) continue;
    if (!IsSecretName(text.substr(name_begin, name_end - name_begin))) {
      continue;
    }
    after = SkipBlanks(text, after + 1);
    if (after >= text.size() || text[after] != ':') continue;
    Span value;
    if (ReadQuoted(text, SkipBlanks(text, after + 1), &value)) {
      AddSpan(value.begin, value.end, spans);
      i = value.end;  // the closing quote, or past the end when there is none
    }
  }
}

// --- Opaque tokens: JWTs, long hex, long random base64. ---

void FindJwts(absl::string_view text, Spans* spans) {
  constexpr size_t kMinPart = 10;
  for (size_t i = text.find("eyJ"); i != absl::string_view::npos;
       i = text.find("eyJ", i + 1)) {
    if (!AtWordStart(text, i, IsKeyChar)) continue;
    const size_t header_end = RunEnd(text, i, IsKeyChar);
    if (header_end - i < kMinPart || header_end >= text.size() ||
        text[header_end] != '.') {
      continue;
    }
    const size_t payload_end = RunEnd(text, header_end + 1, IsKeyChar);
    if (payload_end - header_end - 1 < kMinPart || payload_end >= text.size() ||
        text[payload_end] != '.') {
      continue;
    }
    // The signature may be empty (alg "none"); the dot goes either way.
    AddSpan(i, RunEnd(text, payload_end + 1, IsKeyChar), spans);
  }
}

constexpr size_t kMinHexRun = 32;
constexpr size_t kMinBase64Run = 40;

bool IsOpaqueBase64(absl::string_view run) {
  return run.size() >= kMinBase64Run && HasAllClasses(run) && LooksRandom(run);
}

// Adds each word of letters and digits in [begin, end) that holds >= 32 hex
// digits in a row.
void FindHexWords(absl::string_view text, size_t begin, size_t end,
                  Spans* spans) {
  size_t word_begin = begin;
  while (word_begin < end) {
    if (!IsAlnum(text[word_begin])) {
      ++word_begin;
      continue;
    }
    const size_t word_end = RunEnd(text.substr(0, end), word_begin, IsAlnum);
    size_t hex_run = 0;
    for (size_t i = word_begin; i < word_end && hex_run < kMinHexRun; ++i) {
      hex_run = IsHex(text[i]) ? hex_run + 1 : 0;
    }
    if (hex_run >= kMinHexRun) AddSpan(word_begin, word_end, spans);
    word_begin = word_end;
  }
}

void FindOpaqueRuns(absl::string_view text, Spans* spans) {
  size_t begin = 0;
  while (begin < text.size()) {
    if (!IsBase64Char(text[begin])) {
      ++begin;
      continue;
    }
    const size_t end = RunEnd(text, begin, IsBase64Char);
    if (end - begin >= kMinHexRun) FindHexWords(text, begin, end, spans);
    const absl::string_view run = text.substr(begin, end - begin);
    if (IsOpaqueBase64(run)) {
      size_t padded = end;
      while (padded < text.size() && padded < end + 2 && text[padded] == '=') {
        ++padded;
      }
      AddSpan(begin, padded, spans);
    } else if (run.size() >= kMinBase64Run &&
               run.find('/') != absl::string_view::npos) {
      // A path whose words dilute a token: judge each segment alone.
      size_t segment = begin;
      while (segment < end) {
        size_t segment_end = text.find('/', segment);
        if (segment_end == absl::string_view::npos || segment_end > end) {
          segment_end = end;
        }
        if (IsOpaqueBase64(text.substr(segment, segment_end - segment))) {
          AddSpan(segment, segment_end, spans);
        }
        segment = segment_end + 1;
      }
    }
    begin = end;
  }
}

// --- Putting it together. ---

// True when `span` holds only placeholders and whitespace, as a header value
// does after a scrub ("Cookie: [REDACTED] [REDACTED]").
bool IsAlreadyRedacted(absl::string_view span) {
  bool placeholder = false;
  size_t i = 0;
  while (i < span.size()) {
    if (IsSpace(span[i])) {
      ++i;
    } else if (absl::StartsWith(span.substr(i), kRedacted)) {
      placeholder = true;
      i += kRedacted.size();
    } else {
      return false;
    }
  }
  return placeholder;
}

// The spans to redact, sorted and merged (overlapping or touching). Spans
// that are already redacted ("key=[REDACTED]") are dropped, so that scrubbed
// text usually has no spans at all.
Spans FindSecrets(absl::string_view text) {
  Spans spans;
  FindVendorKeys(text, &spans);
  FindBearerTokens(text, &spans);
  FindCredentialHeaders(text, &spans);
  FindNamedParams(text, &spans);
  FindJsonValues(text, &spans);
  FindJwts(text, &spans);
  FindOpaqueRuns(text, &spans);
  if (spans.empty()) return spans;
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end > b.end);
  });
  Spans merged;
  for (const Span& span : spans) {
    if (!merged.empty() && span.begin <= merged.back().end) {
      merged.back().end = std::max(merged.back().end, span.end);
    } else {
      merged.push_back(span);
    }
  }
  merged.erase(std::remove_if(merged.begin(), merged.end(),
                              [text](const Span& span) {
                                return IsAlreadyRedacted(text.substr(
                                    span.begin, span.end - span.begin));
                              }),
               merged.end());
  return merged;
}

std::string Redact(absl::string_view text, const Spans& spans) {
  std::string out;
  out.reserve(text.size());
  size_t copied = 0;
  for (const Span& span : spans) {
    absl::StrAppend(&out, text.substr(copied, span.begin - copied), kRedacted);
    copied = span.end;
  }
  absl::StrAppend(&out, text.substr(copied));
  return out;
}

// --- SafeKeyId. ---

constexpr absl::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026
constexpr size_t kFingerprintHexDigits = 12;
constexpr size_t kTailBytes = 4;
constexpr size_t kMinLengthForTail = 16;
constexpr size_t kMaxIdentifierLength = 64;
constexpr size_t kMaxSegmentLength = 32;
constexpr size_t kMinRandomSegment = 16;

bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }
bool IsPrintableAscii(char c) { return c > ' ' && c < 0x7f; }

bool IsUuid(absl::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !IsHex(id[i])) return false;
  }
  return true;
}

bool IsUlid(absl::string_view id) {
  if (id.size() != 26) return false;
  for (char c : id) {
    if (!IsUpperAlnum(c) || c == 'I' || c == 'L' || c == 'O' || c == 'U') {
      return false;
    }
  }
  return true;
}

// "fp:" + 12 lower-case hex digits, optionally + ellipsis + 4 printable bytes.
bool IsFingerprint(absl::string_view id) {
  constexpr absl::string_view kPrefix = "fp:";
  const size_t hex_end = kPrefix.size() + kFingerprintHexDigits;
  if (!absl::StartsWith(id, kPrefix) || id.size() < hex_end ||
      RunEnd(id.substr(0, hex_end), kPrefix.size(), IsLowerHex) != hex_end) {
    return false;
  }
  const absl::string_view tail = id.substr(hex_end);
  return tail.empty() || (tail.size() == kEllipsis.size() + kTailBytes &&
                          absl::StartsWith(tail, kEllipsis) &&
                          std::all_of(tail.begin() + kEllipsis.size(),
                                      tail.end(), IsPrintableAscii));
}

bool IsSeparator(char c) {
  return c == '-' || c == '_' || c == '.' || c == ':';
}

bool LooksLikeIdentifier(absl::string_view id) {
  if (id.empty()) return true;
  if (id.size() > kMaxIdentifierLength) return false;
  for (char c : id) {
    if (!IsAlnum(c) && !IsSeparator(c)) return false;
  }
  if (IsUuid(id) || IsUlid(id)) return true;
  if (ContainsSecret(id)) return false;
  size_t begin = 0;
  while (begin <= id.size()) {
    size_t end = begin;
    while (end < id.size() && !IsSeparator(id[end])) ++end;
    const absl::string_view segment = id.substr(begin, end - begin);
    if (segment.size() > kMaxSegmentLength) return false;
    if (segment.size() >= kMinRandomSegment && LooksRandom(segment)) {
      return false;
    }
    begin = end + 1;
  }
  return true;
}

}  // namespace

std::string ScrubSecrets(absl::string_view text) {
  Spans spans = FindSecrets(text);
  if (spans.empty()) return std::string(text);
  // Redacting can reveal a shape that was hidden by its neighbours (a name
  // glued to a key: "<key>-token=hunter2"), so scrub again until nothing
  // changes. Every round that changes the text removes at least one
  // character that is not part of a placeholder, so this ends; in practice
  // the second round finds nothing.
  std::string scrubbed = Redact(text, spans);
  while (!(spans = FindSecrets(scrubbed)).empty()) {
    std::string again = Redact(scrubbed, spans);
    if (again == scrubbed) break;
    scrubbed = std::move(again);
  }
  return scrubbed;
}

bool ContainsSecret(absl::string_view text) {
  return ScrubSecrets(text) != text;
}

std::string SafeKeyId(absl::string_view id) {
  if (LooksLikeIdentifier(id) || IsFingerprint(id)) return std::string(id);
  std::string out =
      absl::StrCat("fp:", Sha256Hex(id).substr(0, kFingerprintHexDigits));
  const absl::string_view tail =
      id.substr(id.size() - std::min(id.size(), kTailBytes));
  if (id.size() >= kMinLengthForTail &&
      std::all_of(tail.begin(), tail.end(), IsPrintableAscii)) {
    absl::StrAppend(&out, kEllipsis, tail);
  }
  return out;
}

}  // namespace tasktrail
