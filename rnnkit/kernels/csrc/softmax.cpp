// The softmax layer's loss, row by row (rnnkit/softmax.py).

#include "common.h"

#include <limits>
#include <mutex>
#include <type_traits>

namespace rnnkit {
namespace {

// ------------------------------------------------------ softmax loss ----
// z (n, V): logits in; softmax(z) - onehot(target) out, in place (the gradient of the
// summed cross-entropy). Returns each row's loss, logsumexp(z) - z[target]. Three passes
// over a row: max; exp, stored and summed; scale.

// Adds the bias to r in place (if given) and returns the row's maximum.
template <typename T> T row_bias_max_(T* r, int64_t V, const T* bias) {
  using Vv = Vec<T>;
  constexpr int64_t K = Vv::size();
  Vv mv(-std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + K <= V; j += K) {
    Vv v = Vv::loadu(r + j);
    if (bias) {
      v = v + Vv::loadu(bias + j);
      v.store(r + j);
    }
    mv = at::vec::maximum(mv, v);
  }
  T lanes[K];
  mv.store(lanes);
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < K; ++i) m = std::max(m, lanes[i]);
  for (; j < V; ++j) m = std::max(m, r[j] += bias ? bias[j] : T(0));
  return m;
}

// r[j] <- exp(r[j] - shift); returns their sum.
template <typename T> T row_exp_(T* r, int64_t V, T shift) {
  using Vv = Vec<T>;
  constexpr int64_t K = Vv::size();
  Vv acc(T(0));
  const Vv vs(shift);
  int64_t j = 0;
  for (; j + K <= V; j += K) {
    const Vv e = (Vv::loadu(r + j) - vs).exp();
    e.store(r + j);
    acc = acc + e;
  }
  T lanes[K];
  acc.store(lanes);
  T sum = 0;
  for (int64_t i = 0; i < K; ++i) sum += lanes[i];
  for (; j < V; ++j) sum += (r[j] = std::exp(r[j] - shift));
  return sum;
}

// One row in T (float or double): z + bias -> its loss, and the row overwritten with
// softmax - onehot; db (if given) += that row. One exp per element: the exponentials are
// stored, then scaled by 1 / their sum.
template <typename T> T xent_row(T* r, int64_t V, int64_t t, const T* bias, T* db) {
  using Vv = Vec<T>;
  const T m = row_bias_max_(r, V, bias), target = r[t];
  const T sum = row_exp_(r, V, m);
  const T loss = m + std::log(sum) - target;
  // Probabilities below the smallest normal number are written as 0: denormal
  // operands make the gradient GEMMs that read this row many times slower.
  const Vv scale(T(1) / sum), zero(T(0)), tiny(std::numeric_limits<T>::min());
  for_vectors<T>(V, [&](int64_t j, int k) {
    Vv p = Vv::loadu(r + j, k) * scale;
    p = Vv::blendv(p, zero, p < tiny);
    p.store(r + j, k);
    if (db) (Vv::loadu(db + j, k) + p).store(db + j, k);
  });
  r[t] -= T(1);
  if (db) db[t] -= T(1);
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
      T* part = db ? partial.data() : nullptr;
      if constexpr (std::is_same_v<S, T>) {
        lp[b] = xent_row(r, V, tp[b], bias, part);
      } else {  // bfloat16 storage: the row in T, and back
        for (int64_t j = 0; j < V; ++j) buffer[j] = static_cast<T>(r[j]);
        lp[b] = xent_row(buffer.data(), V, tp[b], bias, part);
        for (int64_t j = 0; j < V; ++j) r[j] = static_cast<S>(buffer[j]);
      }
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
