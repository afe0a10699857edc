// The softmax layer's loss, row by row (rnnkit/fused_softmax.py).

#include "common.h"

#include <limits>
#include <mutex>
#include <type_traits>

namespace rnnkit {
namespace {

// ------------------------------------------------------ softmax loss ----
// z (n, V): logits in; softmax(z) - onehot(target) out, in place (the gradient of the
// summed cross-entropy). Returns each row's loss, logsumexp(z) - z[target]. Two passes
// over a row (max, then exp-sum), a third to write the softmax.

template <typename T> T row_max(const T* r, int64_t V) {
  using Vv = Vec<T>;
  constexpr int64_t K = Vv::size();
  Vv mv(-std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + K <= V; j += K) mv = at::vec::maximum(mv, Vv::loadu(r + j));
  T lanes[K];
  mv.store(lanes);
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < K; ++i) m = std::max(m, lanes[i]);
  for (; j < V; ++j) m = std::max(m, r[j]);
  return m;
}

template <typename T> T row_exp_sum(const T* r, int64_t V, T shift) {
  using Vv = Vec<T>;
  constexpr int64_t K = Vv::size();
  Vv acc(T(0)), vs(shift);
  int64_t j = 0;
  for (; j + K <= V; j += K) acc = acc + (Vv::loadu(r + j) - vs).exp();
  T lanes[K];
  acc.store(lanes);
  T sum = 0;
  for (int64_t i = 0; i < K; ++i) sum += lanes[i];
  for (; j < V; ++j) sum += std::exp(r[j] - shift);
  return sum;
}

// One row in T (float or double): loss, and the row overwritten with softmax - onehot.
template <typename T> T xent_row(T* r, int64_t V, int64_t t) {
  using Vv = Vec<T>;
  const T m = row_max(r, V);
  const T lse = m + std::log(row_exp_sum(r, V, m));
  const T loss = lse - r[t];
  // Probabilities below the smallest normal number are written as 0: denormal
  // operands make the gradient GEMMs that read this row many times slower.
  const Vv vl(lse), zero(T(0)), tiny(std::numeric_limits<T>::min());
  for_vectors<T>(V, [&](int64_t j, int k) {
    const Vv p = (Vv::loadu(r + j, k) - vl).exp();
    Vv::blendv(p, zero, p < tiny).store(r + j, k);
  });
  r[t] -= T(1);
  return loss;
}

// Rows of z (n, V) stored in S (float, double or bfloat16), computed in T (float or
// double): z + bias -> softmax - onehot, stored back in S; loss (n,) and, if db is given,
// db (V,) += the column sums of softmax - onehot (per-task partial sums, merged at the end).
template <typename S, typename T>
void xent_rows(S* zp, int64_t ld, int64_t n, int64_t V, const int64_t* tp, const T* bias, T* lp, T* db) {
  std::mutex merge;
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> buffer(std::is_same_v<S, T> ? 0 : V), partial(db ? V : 0, T(0));
    for (int64_t b = begin; b < end; ++b) {
      S* r = zp + b * ld;
      T* row = nullptr;
      if constexpr (std::is_same_v<S, T>) row = r; else row = buffer.data();
      for (int64_t j = 0; j < V; ++j) row[j] = static_cast<T>(r[j]) + (bias ? bias[j] : T(0));
      lp[b] = xent_row(row, V, tp[b]);
      if constexpr (!std::is_same_v<S, T>) for (int64_t j = 0; j < V; ++j) r[j] = static_cast<S>(row[j]);
      if (db) for (int64_t j = 0; j < V; ++j) partial[j] += row[j];
    }
    if (db) {
      std::lock_guard<std::mutex> lock(merge);
      for (int64_t j = 0; j < V; ++j) db[j] += partial[j];
    }
  });
}

// z (n, V) float, double or bfloat16; bias (V,) and db (V,) in the compute type (float for
// bfloat16) or empty. Returns the loss of each row (n,) in the compute type.
}  // namespace

Tensor softmax_xent_(Tensor& z, const Tensor& target, const Tensor& bias, Tensor& db) {
  TORCH_CHECK(z.dim() == 2 && z.stride(1) == 1 && target.scalar_type() == at::kLong, "softmax_xent_: z (n, V)");
  const int64_t n = z.size(0), V = z.size(1), ld = z.stride(0);
  const Tensor tgt = target.contiguous(), b = bias.contiguous();
  const int64_t* tp = tgt.data_ptr<int64_t>();
  const auto compute = z.scalar_type() == at::kBFloat16 ? at::kFloat : z.scalar_type();
  TORCH_CHECK((b.numel() == 0 || b.scalar_type() == compute) && (db.numel() == 0 || db.scalar_type() == compute),
              "softmax_xent_: bias and db in the compute dtype");
  Tensor loss = at::empty({n}, z.options().dtype(compute));
  AT_DISPATCH_FLOATING_TYPES(compute, "softmax_xent_", [&] {
    using T = scalar_t;
    if (z.scalar_type() == at::kBFloat16)
      xent_rows<at::BFloat16, T>(z.data_ptr<at::BFloat16>(), ld, n, V, tp, ptr<T>(b), ptr<T>(loss), ptr<T>(db));
    else
      xent_rows<T, T>(ptr<T>(z), ld, n, V, tp, ptr<T>(b), ptr<T>(loss), ptr<T>(db));
  });
  return loss;
}

}  // namespace rnnkit
