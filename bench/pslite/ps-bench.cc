// The ps-lite baseline of `bench ps` (bench/ps.ts): the same work as hybridps's server and
// benchmark client, in C++ over ps-lite's ZeroMQ van. One binary for every role (DMLC_ROLE):
// a server holds its key range of a ROWS x DIM float table (row id -> slot in an unordered_map,
// rows and the AdaGrad accumulator in contiguous slabs, rows created on first touch) and
// applies SGD or AdaGrad in its request handle; a worker fills every row once, then runs
// WARMUP untimed and ROUNDS timed rounds of pull + push of KEYS unique random rows and prints
// one JSON line with its timings and its process's CPU time over the timed rounds (`TIMED_START`
// on a line of its own marks their start, for the bench to sample the servers' CPU). Like ours, a push with a non-finite gradient or a repeated key
// is refused before anything changes, so both sides check every pushed value.
//
// Env: ROWS, DIM, KEYS, ROUNDS, WARMUP, SEED, OPT (sgd | adagrad), LR; ps-lite's DMLC_* vars.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <algorithm>
#include <sys/resource.h>
#include "ps/ps.h"

namespace {

uint64_t envU64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : def;
}

struct Config {
  uint64_t rows = envU64("ROWS", 1000000);
  int dim = static_cast<int>(envU64("DIM", 64));
  int keys = static_cast<int>(envU64("KEYS", 4096));
  int rounds = static_cast<int>(envU64("ROUNDS", 200));
  int warmup = static_cast<int>(envU64("WARMUP", 20));
  uint64_t seed = envU64("SEED", 1);
  bool adagrad = std::string(std::getenv("OPT") ? std::getenv("OPT") : "adagrad") == "adagrad";
  float lr = std::getenv("LR") ? std::strtof(std::getenv("LR"), nullptr) : 0.01f;
  // ps-lite slices a request by key range, servers owning equal ranges of [0, kMaxKey): row r
  // is sent as key r * stride so that rows spread over every server as ours do.
  ps::Key stride() const { return ps::kMaxKey / rows; }
};

/** One server's shard: slot per key, rows and accumulator slabs grown by push_back. */
class Shard {
 public:
  explicit Shard(const Config& c) : c_(c), dim_(c.dim) { index_.reserve(c.rows / ps::NumServers() + 1); }

  void Handle(const ps::KVMeta& meta, const ps::KVPairs<float>& req, ps::KVServer<float>* server) {
    const size_t n = req.keys.size();
    ps::KVPairs<float> res;
    if (meta.push) {
      if (req.vals.size() != n * dim_) { std::fprintf(stderr, "push: %zu values for %zu keys\n", req.vals.size(), n); server->Response(meta, res); return; }
      const float* g = req.vals.data();
      for (size_t i = 0; i < n * dim_; i++) if (!std::isfinite(g[i])) { server->Response(meta, res); return; }
      // ps-lite keys arrive sorted: a repeated key is a neighbour (ours refuses duplicates too).
      for (size_t i = 1; i < n; i++) if (req.keys[i] == req.keys[i - 1]) { server->Response(meta, res); return; }
      for (size_t i = 0; i < n; i++) Apply(SlotOf(req.keys[i]), g + i * dim_);
    } else {
      res.keys = req.keys;
      res.vals.resize(n * dim_);
      float* out = res.vals.data();
      for (size_t i = 0; i < n; i++) std::memcpy(out + i * dim_, &values_[SlotOf(req.keys[i]) * dim_], dim_ * sizeof(float));
    }
    server->Response(meta, res);
  }

 private:
  size_t SlotOf(ps::Key k) {
    auto it = index_.find(k);
    if (it != index_.end()) return it->second;
    const size_t s = index_.size();
    index_.emplace(k, s);
    // Uniform in [-0.01, 0.01) from the key, as our 'uniform' initializer (a different hash).
    uint64_t x = k * 0x9E3779B97F4A7C15ull + 1;
    for (int j = 0; j < dim_; j++) {
      x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33;
      values_.push_back(((x >> 40) * (1.0f / (1 << 24)) * 2 - 1) * 0.01f);
    }
    if (c_.adagrad) acc_.resize(acc_.size() + dim_, 0.0f);
    return s;
  }

  void Apply(size_t s, const float* g) {
    float* w = &values_[s * dim_];
    if (!c_.adagrad) {
      for (int j = 0; j < dim_; j++) w[j] -= c_.lr * g[j];
      return;
    }
    float* a = &acc_[s * dim_];
    for (int j = 0; j < dim_; j++) {  // acc += g^2; w -= lr * g / (sqrt(acc) + eps), as ours
      a[j] += g[j] * g[j];
      w[j] -= c_.lr * g[j] / (std::sqrt(a[j]) + 1e-10f);
    }
  }

  const Config& c_;
  const size_t dim_;
  std::unordered_map<ps::Key, size_t> index_;
  std::vector<float> values_, acc_;
};

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/** User + system CPU time of this process (every thread: ZeroMQ's I/O threads too), ms. */
double CpuMs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

void RunWorker(const Config& c) {
  ps::KVWorker<float> kv(0, 0);
  const ps::Key stride = c.stride();
  // Fill (worker 0): every row once (zero gradients change nothing), in key order.
  for (uint64_t start = 0; ps::MyRank() == 0 && start < c.rows; start += c.keys) {
    const uint64_t n = std::min<uint64_t>(c.keys, c.rows - start);
    std::vector<ps::Key> keys(n);
    for (uint64_t i = 0; i < n; i++) keys[i] = (start + i) * stride;
    std::vector<float> zero(n * c.dim, 0.0f);
    kv.Wait(kv.Push(keys, zero));
  }
  ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
  // 16 batches of unique random rows, sorted (ps-lite needs sorted keys), reused round-robin as
  // ours does.
  uint32_t x = static_cast<uint32_t>(c.seed) ? static_cast<uint32_t>(c.seed) : 1;
  std::vector<ps::SArray<ps::Key>> batches;
  for (int b = 0; b < std::min(c.rounds, 16); b++) {
    std::unordered_set<uint64_t> set;
    while (set.size() < static_cast<size_t>(c.keys)) {
      x ^= x << 13; x ^= x >> 17; x ^= x << 5;
      set.insert(x % c.rows);
    }
    std::vector<uint64_t> rows(set.begin(), set.end());
    std::sort(rows.begin(), rows.end());
    ps::SArray<ps::Key> keys(rows.size());
    for (size_t i = 0; i < rows.size(); i++) keys[i] = rows[i] * stride;
    batches.push_back(keys);
  }
  ps::SArray<float> g(static_cast<size_t>(c.keys) * c.dim, 0.001f);
  double pullMs = 0, pushMs = 0, cpu0 = 0;
  for (int r = 0; r < c.warmup + c.rounds; r++) {
    if (r == c.warmup) { std::printf("TIMED_START\n"); std::fflush(stdout); cpu0 = CpuMs(); }
    const auto& keys = batches[r % batches.size()];
    ps::SArray<float> vals;
    auto t0 = std::chrono::steady_clock::now();
    kv.Wait(kv.ZPull(keys, &vals));
    auto t1 = std::chrono::steady_clock::now();
    kv.Wait(kv.ZPush(keys, g));
    auto t2 = std::chrono::steady_clock::now();
    if (vals.size() != keys.size() * c.dim) { std::fprintf(stderr, "pull returned %zu values\n", vals.size()); std::exit(1); }
    if (r >= c.warmup) { pullMs += Ms(t0, t1); pushMs += Ms(t1, t2); }
  }
  std::printf("{\"pullMs\":%.3f,\"pushMs\":%.3f,\"cpuMs\":%.3f,\"rounds\":%d,\"keysPer\":%d,\"dim\":%d}\n", pullMs, pushMs, CpuMs() - cpu0, c.rounds, c.keys, c.dim);
  std::fflush(stdout);
}

}  // namespace

int main() {
  static Config c;
  ps::Start(0);
  if (ps::IsServer()) {
    auto* shard = new Shard(c);
    auto* server = new ps::KVServer<float>(0);
    server->set_request_handle([shard](const ps::KVMeta& m, const ps::KVPairs<float>& d, ps::KVServer<float>* s) { shard->Handle(m, d, s); });
    ps::RegisterExitCallback([server, shard]() { delete server; delete shard; });
  }
  // Without this barrier a worker's first push can reach a server before its handle is set
  // (ps-lite aborts: "Check failed: request_handle_").
  if (!ps::IsScheduler()) ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  if (ps::IsWorker()) RunWorker(c);
  ps::Finalize(0, true);
  return 0;
}
