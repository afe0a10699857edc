// Adam updates in one pass per tensor (rnnkit/optim.py).

#include "common.h"

namespace rnnkit {
namespace {

// --------------------------------------------------------- optimizers ----
// One pass over each tensor: the update of torch.optim.Adam (L2 weight decay) or
// AdamW (decoupled), without the Python bookkeeping per step.

template <typename T>
void adam_tensor(T* p, const T* g, T* m, T* v, int64_t numel, T lr, T beta1, T beta2, T eps, T weight_decay,
                 bool decoupled, int64_t step) {
  using V = Vec<T>;
  const T bc1 = T(1) - std::pow(beta1, T(step)), bc2_sqrt = std::sqrt(T(1) - std::pow(beta2, T(step)));
  const T step_size = lr / bc1, inv_bc2_sqrt = T(1) / bc2_sqrt, decay = decoupled ? T(1) - lr * weight_decay : T(1);
  const T l2 = decoupled ? T(0) : weight_decay;
  const V b1(beta1), b2(beta2), c1(T(1) - beta1), c2(T(1) - beta2), vs(step_size), ve(eps), vb(inv_bc2_sqrt);
  const V vdecay(decay), vl2(l2);
  at::parallel_for(0, numel, 32768, [&](int64_t begin, int64_t end) {
    FlushDenormals ftz;  // the moments of unused rows decay towards zero every step
    for (int64_t i = begin; i < end; i += V::size()) {
      const int k = static_cast<int>(std::min<int64_t>(V::size(), end - i));
      V pv = V::loadu(p + i, k) * vdecay;
      const V gv = V::loadu(g + i, k) + vl2 * pv;
      const V mv = b1 * V::loadu(m + i, k) + c1 * gv;
      const V vv = b2 * V::loadu(v + i, k) + c2 * gv * gv;
      pv = pv - vs * mv * recip_positive(vv.sqrt() * vb + ve);
      mv.store(m + i, k); vv.store(v + i, k); pv.store(p + i, k);
    }
  });
}

}  // namespace

void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
               const std::vector<Tensor>& v, const std::vector<int64_t>& steps, double lr, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled) {
  for (size_t i = 0; i < params.size(); ++i) {
    TORCH_CHECK(params[i].is_contiguous() && grads[i].is_contiguous() && m[i].is_contiguous() &&
                v[i].is_contiguous() && grads[i].numel() == params[i].numel(), "adam_step: contiguous, same size");
    AT_DISPATCH_FLOATING_TYPES(params[i].scalar_type(), "adam_step", [&] {
      adam_tensor<scalar_t>(ptr<scalar_t>(params[i]), ptr<scalar_t>(grads[i]), ptr<scalar_t>(m[i]),
                            ptr<scalar_t>(v[i]), params[i].numel(), lr, beta1, beta2, eps, weight_decay,
                            decoupled, steps[i]);
    });
  }
}

// Adam on the rows a sparse gradient names (uncoalesced: repeated rows are summed first),
// with torch.optim.SparseAdam's update: p -= lr sqrt(bc2)/bc1 * m / (sqrt(v) + eps).
void lazy_adam_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                    const Tensor& v, int64_t step, double lr, double beta1, double beta2, double eps) {
  const Tensor rows = rows_in.contiguous(), values = values_in.contiguous();
  TORCH_CHECK(param.is_contiguous() && m.is_contiguous() && v.is_contiguous() && rows.scalar_type() == at::kLong,
              "lazy_adam_step: contiguous tensors and int64 rows");
  const int64_t N = rows.numel(), D = N ? values.numel() / N : 0;
  const int64_t* r = rows.data_ptr<int64_t>();
  std::vector<int64_t> order(N);
  for (int64_t i = 0; i < N; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return r[a] < r[b]; });
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "lazy_adam_step", [&] {
    using T = scalar_t;
    using V = Vec<T>;
    const T bc1 = T(1) - std::pow(T(beta1), T(step)), bc2 = T(1) - std::pow(T(beta2), T(step));
    const V b1(beta1), b2(beta2), c1(T(1) - beta1), c2(T(1) - beta2), ve(eps), vs(T(lr) * std::sqrt(bc2) / bc1);
    T *p = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T* g = ptr<T>(values);
    std::vector<T> sum(D);
    for (int64_t i = 0; i < N;) {
      const int64_t row = r[order[i]];
      std::memcpy(sum.data(), g + order[i] * D, sizeof(T) * D);
      int64_t j = i + 1;
      for (; j < N && r[order[j]] == row; ++j)
        for (int64_t d = 0; d < D; ++d) sum[d] += g[order[j] * D + d];
      T *pr = p + row * D, *mr = mp + row * D, *vr = vp + row * D;
      for (int64_t d = 0; d < D; d += V::size()) {
        const int k = static_cast<int>(std::min<int64_t>(V::size(), D - d));
        const V gv = V::loadu(sum.data() + d, k);
        const V mv = b1 * V::loadu(mr + d, k) + c1 * gv;
        const V vv = b2 * V::loadu(vr + d, k) + c2 * gv * gv;
        (V::loadu(pr + d, k) - vs * mv * recip_positive(vv.sqrt() + ve)).store(pr + d, k);
        mv.store(mr + d, k); vv.store(vr + d, k);
      }
      i = j;
    }
  });
}

}  // namespace rnnkit
