// Driver of the fuzz test. `kiln_fuzz SOURCE_DIR [TARGET=COUNT ...]` runs each target's CI count
// (or COUNT) of mutated inputs from a fixed seed (the same inputs every run, so CI is reproducible) and prints the count
// per target; any exception other than kiln::Error saves the input and fails. Built with ASan and
// UBSan, a memory error or undefined behaviour aborts the run. With -DKILN_LIBFUZZER it is instead
// a libFuzzer target for the parser named by $KILN_FUZZ_TARGET (for long local runs).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>

#include "core/error.h"
#include "fuzz.h"

using namespace kiln::fuzz;

namespace {

// One to four byte-level edits: flips, interesting bytes and numbers, inserts, deletes, copies,
// truncation, splicing with another seed.
std::string mutate(std::string s, const std::vector<std::string>& pool, std::mt19937_64& rng) {
  static const char* numbers[] = {"0", "-1", "1e309", "4294967296", "18446744073709551615", "9223372036854775807",
                                  "-9223372036854775808", "65535", "3.5", "null", "\"\"", "[]", "{}", "true"};
  static const char bytes[] = {0, '\xff', '"', '{', '}', '[', ']', ':', ',', '\\', '\n', '-', '9', '\x80'};
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : 0; };
  for (int k = 0, edits = 1 + int(rng() % 4); k < edits; ++k) {
    size_t at = pick(s.size() + 1);
    switch (rng() % 9) {
      case 0: if (!s.empty()) s[pick(s.size())] ^= char(1 << (rng() % 8)); break;
      case 1: if (!s.empty()) s[pick(s.size())] = bytes[rng() % sizeof bytes]; break;
      case 2: s.insert(at, numbers[rng() % (sizeof numbers / sizeof *numbers)]); break;
      case 3: s.insert(at, std::string(1 + rng() % 8, char(rng()))); break;
      case 4: if (at < s.size()) s.erase(at, 1 + pick(std::min<size_t>(64, s.size() - at))); break;
      case 5: if (at < s.size()) { size_t n = 1 + pick(std::min<size_t>(64, s.size() - at)); s.insert(pick(s.size()), s.substr(at, n)); } break;
      case 6: s.resize(pick(s.size() + 1)); break;
      case 7: {  // replace a run of digits with an interesting number
        size_t d = s.find_first_of("0123456789", at);
        if (d != std::string::npos) {
          size_t e = s.find_first_not_of("0123456789", d);
          s.replace(d, (e == std::string::npos ? s.size() : e) - d, numbers[rng() % 8]);
        }
        break;
      }
      default: {  // splice: our head, another seed's tail
        const std::string& o = pool[rng() % pool.size()];
        s = s.substr(0, at) + o.substr(std::min(o.size(), pick(o.size() + 1)));
      }
    }
  }
  return s;
}

// Runs one input; returns true if accepted, false if rejected with kiln::Error. Anything else is
// a bug: the input is saved and the process exits 1.
bool run_one(const Target& t, const std::string& in, uint64_t index) {
  try {
    t.run(in);
    return true;
  } catch (const kiln::Error&) {
    return false;
  } catch (const std::exception& e) {
    std::string path = std::string("fuzz-crash-") + t.name + "-" + std::to_string(index);
    std::ofstream(path, std::ios::binary) << in;
    fprintf(stderr, "[fuzz] %s: input %llu threw %s, not kiln::Error; input saved to %s\n", t.name,
            (unsigned long long)index, e.what(), path.c_str());
    std::exit(1);
  }
}

}  // namespace

#ifdef KILN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Target* t = [] {
    const char* want = std::getenv("KILN_FUZZ_TARGET");
    for (const auto& x : targets())
      if (want && std::string(want) == x.name) return &x;
    fprintf(stderr, "set KILN_FUZZ_TARGET to one of the targets\n");
    std::exit(2);
  }();
  run_one(*t, std::string(reinterpret_cast<const char*>(data), size), 0);
  return 0;
}
#else
int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: kiln_fuzz SOURCE_DIR [TARGET=COUNT ...]   (no TARGET: every target, CI counts)\n");
    return 2;
  }
  const std::string source = argv[1];
  std::map<std::string, uint64_t> only;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    size_t eq = a.find('=');
    only[a.substr(0, eq)] = eq == std::string::npos ? 0 : std::strtoull(a.c_str() + eq + 1, nullptr, 10);
  }
  uint64_t total = 0;
  for (const auto& t : targets()) {
    if (!only.empty() && !only.count(t.name)) continue;
    const uint64_t count = only.count(t.name) && only[t.name] ? only[t.name] : t.ci_count;
    auto pool = seeds(t.name, source);
    std::mt19937_64 rng(0x6b696c6eULL);  // fixed: the same inputs every run
    for (const auto& s : pool) try {
        t.run(s);
      } catch (const std::exception& e) {
        fprintf(stderr, "[fuzz] %s: a seed (a valid file) was rejected: %s\n", t.name, e.what());
        return 1;
      }
    uint64_t ok = 0;
    for (uint64_t i = 1; i <= count; ++i) {
      std::string in = mutate(pool[rng() % pool.size()], pool, rng);
      const bool accepted_now = run_one(t, in, i);
      ok += accepted_now;
      if (accepted_now && rng() % 4 == 0) pool.push_back(std::move(in));  // accepted: mutate it further
      if (pool.size() > 256) pool.erase(pool.begin() + 8);
    }
    printf("[fuzz] %-16s %llu inputs tried: %llu accepted, %llu rejected with kiln::Error, 0 crashes, "
           "0 sanitizer reports\n", t.name, (unsigned long long)count, (unsigned long long)ok,
           (unsigned long long)(count - ok));
    fflush(stdout);
    total += count;
  }
  printf("[fuzz] %llu inputs in all\n", (unsigned long long)total);
  return 0;
}
#endif
