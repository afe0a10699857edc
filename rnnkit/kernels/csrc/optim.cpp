// Adam updates in one pass per tensor (rnnkit/adam.py, rnnkit/adam_in_layers.py).

#include "common.h"

namespace rnnkit {
namespace {

// --------------------------------------------------------- optimizers ----
// One pass over each tensor: the update of torch.optim.Adam (L2 weight decay) or
// AdamW (decoupled), without the Python bookkeeping per step.

// Adam's constants for one step of one tensor (the layout of a row of a deferred table's
// history, adam_deferred_step).
template <typename T> struct AdamConstants {
  T b1, b2, c1, c2, step_size, eps, inv_bc2_sqrt, decay, l2;
  static constexpr int64_t kCount = 9;
  AdamConstants(T lr, T beta1, T beta2, T eps_, T weight_decay, bool decoupled, int64_t step)
      : b1(beta1), b2(beta2), c1(T(1) - beta1), c2(T(1) - beta2),
        step_size(lr / (T(1) - std::pow(beta1, T(step)))), eps(eps_),
        inv_bc2_sqrt(T(1) / std::sqrt(T(1) - std::pow(beta2, T(step)))),
        decay(decoupled ? T(1) - lr * weight_decay : T(1)), l2(decoupled ? T(0) : weight_decay) {}
  explicit AdamConstants(const T* row) { std::memcpy(this, row, sizeof(*this)); }
  void save(T* row) const { std::memcpy(row, this, sizeof(*this)); }
};
static_assert(sizeof(AdamConstants<float>) == AdamConstants<float>::kCount * sizeof(float), "no padding");

// Adam's constants for one step of one tensor, as vectors.
template <typename T> struct AdamStep {
  using V = Vec<T>;
  V b1, b2, c1, c2, step_size, eps, inv_bc2_sqrt, decay, l2;
  explicit AdamStep(const AdamConstants<T>& c)
      : b1(c.b1), b2(c.b2), c1(c.c1), c2(c.c2), step_size(c.step_size), eps(c.eps), inv_bc2_sqrt(c.inv_bc2_sqrt),
        decay(c.decay), l2(c.l2) {}
  AdamStep(T lr, T beta1, T beta2, T eps_, T weight_decay, bool decoupled, int64_t step)
      : AdamStep(AdamConstants<T>(lr, beta1, beta2, eps_, weight_decay, decoupled, step)) {}

  // One vector of values p, moments m, v, held in registers, updated with the gradient g.
  // Every multiply-add is explicit: the compiler contracts none differently from one caller
  // to the next, so a value is the same bits whichever pass updates it (catch_up_row).
  void step_values(V& p, V g, V& m, V& v) const {
    using at::vec::fmadd;
    p = p * decay;
    g = fmadd(l2, p, g);
    m = fmadd(b1, m, c1 * g);
    v = fmadd(b2, v, c2 * g * g);
    p = at::vec::fnmadd(step_size * m, recip_positive(fmadd(v.sqrt(), inv_bc2_sqrt, eps)), p);
  }

  // One vector: the k values at p, m, v updated with the gradient g; returns the new p.
  V step_vector(T* p, V g, T* m, T* v, int k) const {
    V pv = V::loadu(p, k), mv = V::loadu(m, k), vv = V::loadu(v, k);
    step_values(pv, g, mv, vv);
    mv.store(m, k); vv.store(v, k); pv.store(p, k);
    return pv;
  }

  // p, m, v[0, n) updated with the gradient g[0, n), or with a zero gradient when g is null
  // (the same arithmetic: 0 + x is x).
  void operator()(T* p, const T* g, T* m, T* v, int64_t n) const {
    for (int64_t i = 0; i < n; i += V::size()) {
      const int k = static_cast<int>(std::min<int64_t>(V::size(), n - i));
      step_vector(p + i, g ? V::loadu(g + i, k) : V(T(0)), m + i, v + i, k);
    }
  }
};

// bfloat16 <-> float32 for 16 values (k of them), as raw 16-bit patterns: widening puts the
// 16 bits on top of a float's 32; narrowing rounds to nearest even, NaN staying NaN.
#if defined(CPU_CAPABILITY_AVX512)
inline __mmask16 first(int k) { return k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << k) - 1); }
inline Vec<float> widen_bf16(const uint16_t* src, int k) {
  const __m256i h = _mm256_maskz_loadu_epi16(first(k), src);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline void narrow_bf16(const Vec<float>& x, uint16_t* dst, int k) {
  const __m512 f = x;
  const __m512i bits = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  _mm512_mask_cvtepi32_storeu_epi16(dst, first(k), r);
}
#else  // c10's conversions, value by value
inline Vec<float> widen_bf16(const uint16_t* src, int k) {
  float out[Vec<float>::size()] = {};
  for (int j = 0; j < k; ++j) out[j] = static_cast<float>(c10::BFloat16(src[j], c10::BFloat16::from_bits()));
  return Vec<float>::loadu(out);
}
inline void narrow_bf16(const Vec<float>& x, uint16_t* dst, int k) {
  float in[Vec<float>::size()];
  x.store(in);
  for (int j = 0; j < k; ++j) dst[j] = c10::BFloat16(in[j]).x;
}
#endif

// The positions of an uncoalesced sparse gradient's rows, sorted by row (stable).
std::vector<int64_t> sorted_rows(const int64_t* r, int64_t N) {
  std::vector<int64_t> order(N);
  for (int64_t i = 0; i < N; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return r[a] < r[b]; });
  return order;
}

// sum = the rows of g (D wide) that order[i, j) names, where j is the first position past
// row r[order[i]]; returns j.
template <typename T>
int64_t sum_row(const T* g, const int64_t* r, const std::vector<int64_t>& order, int64_t i, int64_t D, T* sum) {
  const int64_t N = static_cast<int64_t>(order.size()), row = r[order[i]];
  std::memcpy(sum, g + order[i] * D, sizeof(T) * D);
  int64_t j = i + 1;
  for (; j < N && r[order[j]] == row; ++j)
    for (int64_t d = 0; d < D; ++d) sum[d] += g[order[j] * D + d];
  return j;
}

}  // namespace

void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
               const std::vector<Tensor>& v, const std::vector<int64_t>& steps, double lr, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled) {
  for (size_t i = 0; i < params.size(); ++i) {
    TORCH_CHECK(params[i].is_contiguous() && grads[i].is_contiguous() && m[i].is_contiguous() &&
                v[i].is_contiguous() && grads[i].numel() == params[i].numel(), "adam_step: contiguous, same size");
    AT_DISPATCH_FLOATING_TYPES(params[i].scalar_type(), "adam_step", [&] {
      using T = scalar_t;
      const AdamStep<T> update(lr, beta1, beta2, eps, weight_decay, decoupled, steps[i]);
      T *p = ptr<T>(params[i]), *mp = ptr<T>(m[i]), *vp = ptr<T>(v[i]);
      const T* g = ptr<T>(grads[i]);
      at::parallel_for(0, params[i].numel(), 32768, [&](int64_t begin, int64_t end) {
        FlushDenormals ftz;  // the moments of unused rows decay towards zero every step
        update(p + begin, g + begin, mp + begin, vp + begin, end - begin);
      });
    });
  }
}

// The rows and values of an uncoalesced sparse gradient of `param` (rows of D values),
// and the positions of its rows sorted by row.
struct RowGrad {
  Tensor rows, values;
  int64_t N, D;
  std::vector<int64_t> order;
  RowGrad(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const char* who)
      : rows(rows_in.contiguous()), values(values_in.contiguous()), N(rows.numel()),
        D(param.dim() ? param.numel() / param.size(0) : 1) {
    TORCH_CHECK(param.dim() >= 1 && rows.scalar_type() == at::kLong && values.numel() == N * D &&
                values.dtype() == param.dtype(), who, ": int64 rows, one row of values per row, the parameter's type");
    const int64_t* r = rows.data_ptr<int64_t>();
    order = sorted_rows(r, N);
    TORCH_CHECK(N == 0 || (r[order[0]] >= 0 && r[order[N - 1]] < param.size(0)), who, ": a row is out of range");
  }
};

// Adam on the rows a sparse gradient names (uncoalesced: repeated rows are summed first),
// with torch.optim.SparseAdam's update: p -= lr sqrt(bc2)/bc1 * m / (sqrt(v) + eps).
void lazy_adam_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                    const Tensor& v, int64_t step, double lr, double beta1, double beta2, double eps) {
  TORCH_CHECK(param.is_contiguous() && m.is_contiguous() && v.is_contiguous(), "lazy_adam_step: contiguous tensors");
  const RowGrad grad(param, rows_in, values_in, "lazy_adam_step");
  const int64_t N = grad.N, D = grad.D;
  const int64_t* r = grad.rows.data_ptr<int64_t>();
  const std::vector<int64_t>& order = grad.order;
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "lazy_adam_step", [&] {
    using T = scalar_t;
    using V = Vec<T>;
    const T bc1 = T(1) - std::pow(T(beta1), T(step)), bc2 = T(1) - std::pow(T(beta2), T(step));
    const V b1(beta1), b2(beta2), c1(T(1) - beta1), c2(T(1) - beta2), ve(eps), vs(T(lr) * std::sqrt(bc2) / bc1);
    T *p = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T* g = ptr<T>(grad.values);
    std::vector<T> sum(D);
    for (int64_t i = 0; i < N;) {
      const int64_t row = r[order[i]];
      i = sum_row(g, r, order, i, D, sum.data());
      T *pr = p + row * D, *mr = mp + row * D, *vr = vp + row * D;
      for (int64_t d = 0; d < D; d += V::size()) {
        const int k = static_cast<int>(std::min<int64_t>(V::size(), D - d));
        const V gv = V::loadu(sum.data() + d, k);
        const V mv = b1 * V::loadu(mr + d, k) + c1 * gv;
        const V vv = b2 * V::loadu(vr + d, k) + c2 * gv * gv;
        (V::loadu(pr + d, k) - vs * mv * recip_positive(vv.sqrt() + ve)).store(pr + d, k);
        mv.store(mr + d, k); vv.store(vr + d, k);
      }
    }
  });
}

// Adam (or AdamW) on every row, as adam_step with the sparse gradient made dense, without
// making it: rows the gradient does not name take a zero gradient (their moments decay and
// their values still move), so neither a dense zero gradient is written nor read.
void adam_rows_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                    const Tensor& v, int64_t step, double lr, double beta1, double beta2, double eps,
                    double weight_decay, bool decoupled) {
  TORCH_CHECK(param.is_contiguous() && m.is_contiguous() && v.is_contiguous(), "adam_rows_step: contiguous tensors");
  const RowGrad grad(param, rows_in, values_in, "adam_rows_step");
  const int64_t N = grad.N, D = grad.D, R = param.size(0);
  const int64_t* r = grad.rows.data_ptr<int64_t>();
  const std::vector<int64_t>& order = grad.order;
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "adam_rows_step", [&] {
    using T = scalar_t;
    const AdamStep<T> update(lr, beta1, beta2, eps, weight_decay, decoupled, step);
    T *p = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T* g = ptr<T>(grad.values);
    at::parallel_for(0, R, std::max<int64_t>(1, 32768 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
      FlushDenormals ftz;
      std::vector<T> sum(D);
      // the first position in `order` at or after row `begin`
      int64_t i = std::lower_bound(order.begin(), order.end(), begin,
                                   [&](int64_t pos, int64_t row) { return r[pos] < row; }) - order.begin();
      for (int64_t row = begin; row < end;) {
        const int64_t next = i < N ? std::min(r[order[i]], end) : end;  // rows [row, next) take no gradient
        if (next > row) {
          update(p + row * D, nullptr, mp + row * D, vp + row * D, (next - row) * D);
          row = next;
          continue;
        }
        i = sum_row(g, r, order, i, D, sum.data());
        update(p + row * D, sum.data(), mp + row * D, vp + row * D, D);
        ++row;
      }
    });
  });
}

// ------------------------------------------------ deferred dense Adam ----
// adam_rows_step's update (every row moves every step) with each row's zero-gradient steps
// taken when the row is next needed rather than every step: a table's row `r` holds its
// values and moments as of step current[r]; history (S, 9) holds the constants of steps
// base+1 .. base+S. Bringing a row up to date runs those steps on it while it sits in cache,
// with the arithmetic of adam_rows_step in the same order, so the values are bitwise the same;
// a step then costs the used rows, not a pass over the table at memory speed.

// Row `row` (D values) of p, m, v brought from step current[row] to step `to`, the row in L1
// throughout. (Holding a few vectors in registers through all the steps was slower: the
// square roots bound either form.)
template <typename T>
void catch_up_row(T* p, T* m, T* v, int64_t D, int64_t row, int64_t to, int64_t* current, const T* history,
                  int64_t base) {
  TORCH_CHECK(current[row] >= base, "adam deferred rows: row ", row, " is at step ", current[row],
              ", before the history's start ", base);
  for (int64_t s = current[row] + 1; s <= to; ++s)
    AdamStep<T>(AdamConstants<T>(history + (s - base - 1) * AdamConstants<T>::kCount))(
        p + row * D, nullptr, m + row * D, v + row * D, D);
  current[row] = std::max(current[row], to);
}

struct Deferred {
  Tensor param, m, v, current, history;
  int64_t base, R, D;
  Deferred(const Tensor& param_, const Tensor& m_, const Tensor& v_, const Tensor& current_, const Tensor& history_,
           int64_t base_, const char* who)
      : param(param_), m(m_), v(v_), current(current_), history(history_), base(base_), R(param_.size(0)),
        D(param_.numel() / std::max<int64_t>(param_.size(0), 1)) {
    TORCH_CHECK(param.dim() >= 1 && param.is_contiguous() && m.is_contiguous() && v.is_contiguous() &&
                current.is_contiguous() && current.scalar_type() == at::kLong && current.numel() == R &&
                history.is_contiguous() && history.dim() == 2 && history.size(1) == 9 &&
                history.dtype() == param.dtype(), who, ": contiguous tensors, an int64 step per row and a (S, 9) "
                "history of the parameter's type");
  }
  int64_t* steps() const { return current.data_ptr<int64_t>(); }
};

// Rows `rows` (any shape, repeats allowed) of the table brought up to step `to`; all rows
// when `rows` is undefined.
void adam_catch_up(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& current,
                   const Tensor& history, int64_t base, int64_t to, const std::optional<Tensor>& rows) {
  const Deferred t(param, m, v, current, history, base, "adam_catch_up");
  TORCH_CHECK(to - base <= history.size(0), "adam_catch_up: step ", to, " is past the history");
  std::vector<int64_t> wanted;
  if (rows.has_value()) {
    const Tensor r = rows->to(at::kLong).contiguous();
    wanted.assign(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    TORCH_CHECK(wanted.empty() || (wanted.front() >= 0 && wanted.back() < t.R), "adam_catch_up: a row is out of range");
  }
  const int64_t n = rows.has_value() ? static_cast<int64_t>(wanted.size()) : t.R;
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "adam_catch_up", [&] {
    using T = scalar_t;
    T *p = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T* h = ptr<T>(history);
    at::parallel_for(0, n, std::max<int64_t>(1, 4096 / std::max<int64_t>(t.D, 1)), [&](int64_t begin, int64_t end) {
      FlushDenormals ftz;
      for (int64_t i = begin; i < end; ++i)
        catch_up_row(p, mp, vp, t.D, rows.has_value() ? wanted[i] : i, to, t.steps(), h, base);
    });
  });
}

// Step `step` of the table, from a sparse gradient (uncoalesced: repeated rows summed): its
// constants written to the history, then every row the gradient names brought up to the step
// before and updated with its gradient. Other rows wait.
void adam_deferred_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                        const Tensor& v, const Tensor& current, const Tensor& history, int64_t base, int64_t step,
                        double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
  const Deferred t(param, m, v, current, history, base, "adam_deferred_step");
  TORCH_CHECK(step > base && step - base <= history.size(0), "adam_deferred_step: step ", step,
              " is past the history");
  const RowGrad grad(param, rows_in, values_in, "adam_deferred_step");
  const int64_t N = grad.N, D = grad.D;
  const int64_t* r = grad.rows.data_ptr<int64_t>();
  std::vector<int64_t> starts;  // the first position in grad.order of each row
  for (int64_t i = 0; i < N; ++i)
    if (i == 0 || r[grad.order[i]] != r[grad.order[i - 1]]) starts.push_back(i);
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "adam_deferred_step", [&] {
    using T = scalar_t;
    const AdamConstants<T> constants(lr, beta1, beta2, eps, weight_decay, decoupled, step);
    constants.save(ptr<T>(history) + (step - base - 1) * AdamConstants<T>::kCount);
    const AdamStep<T> update(constants);
    T *p = ptr<T>(param), *mp = ptr<T>(m), *vp = ptr<T>(v);
    const T *g = ptr<T>(grad.values), *h = ptr<T>(history);
    const int64_t U = static_cast<int64_t>(starts.size());
    at::parallel_for(0, U, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
      FlushDenormals ftz;
      std::vector<T> sum(D);
      for (int64_t u = begin; u < end; ++u) {
        const int64_t row = r[grad.order[starts[u]]];
        sum_row(g, r, grad.order, starts[u], D, sum.data());
        catch_up_row(p, mp, vp, D, row, step - 1, t.steps(), h, base);
        update(p + row * D, sum.data(), mp + row * D, vp + row * D, D);
        t.steps()[row] = step;
      }
    });
  });
}

// Adam on a float32 parameter from a bfloat16 gradient (the output of a bfloat16 product,
// rnnkit.adam_in_layers.AdamInLayers under autocast), also writing the parameter's bfloat16
// copy (rounded to nearest even), which the next forward pass multiplies with instead of
// casting the weight again.
void adam_low_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& low,
                   int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                   bool decoupled) {
  TORCH_CHECK(param.scalar_type() == at::kFloat && grad.scalar_type() == at::kBFloat16 &&
              low.scalar_type() == at::kBFloat16 && param.is_contiguous() && grad.is_contiguous() &&
              low.is_contiguous() && m.is_contiguous() && v.is_contiguous() && grad.numel() == param.numel() &&
              low.numel() == param.numel(), "adam_low_step: a float32 parameter, bfloat16 gradient and copy");
  const AdamStep<float> update(lr, beta1, beta2, eps, weight_decay, decoupled, step);
  float *p = ptr<float>(param), *mp = ptr<float>(m), *vp = ptr<float>(v);
  const uint16_t* g = reinterpret_cast<const uint16_t*>(grad.data_ptr<at::BFloat16>());
  uint16_t* lo = reinterpret_cast<uint16_t*>(low.data_ptr<at::BFloat16>());
  at::parallel_for(0, param.numel(), 32768, [&](int64_t begin, int64_t end) {
    FlushDenormals ftz;
    constexpr int64_t K = Vec<float>::size();
    for (int64_t i = begin; i < end; i += K) {
      const int k = static_cast<int>(std::min<int64_t>(K, end - i));
      narrow_bf16(update.step_vector(p + i, widen_bf16(g + i, k), mp + i, vp + i, k), lo + i, k);
    }
  });
}

// The backward of a softmax layer's weight products with Adam's step of the weight fused in
// (rnnkit.adam_in_layers.AdamInLayers): per block of vocabulary rows, while the block is in
// cache, dh += g_b W_b (the weight before its update), dW_b = g_b^T hs into a small buffer,
// then Adam on W_b. The (V, H) gradient is never written or read back.
// g (N, V): dL/dlogits; w (V, H): the parameter; hs (N, H): the inputs times the upstream
// scale. Returns g w (N, H), before the update.
Tensor linear_adam_backward(const Tensor& g, const Tensor& w, const Tensor& hs, const Tensor& m, const Tensor& v,
                            int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                            bool decoupled, int64_t block_elements) {
  TORCH_CHECK(g.dim() == 2 && w.dim() == 2 && hs.dim() == 2 && g.size(0) == hs.size(0) && g.size(1) == w.size(0) &&
              w.size(1) == hs.size(1) && g.is_contiguous() && w.is_contiguous() && hs.is_contiguous() &&
              m.is_contiguous() && v.is_contiguous() && g.dtype() == w.dtype() && hs.dtype() == w.dtype(),
              "linear_adam_backward: g (N, V), w (V, H), hs (N, H), contiguous, one type");
  const int64_t N = g.size(0), V = w.size(0), H = w.size(1);
  const int64_t rows = std::max<int64_t>(1, block_elements / std::max<int64_t>(H, 1));  // rows of W per block
  const int64_t blocks = (V + rows - 1) / rows;
  const Tensor partial = at::zeros({at::get_num_threads(), N, H}, w.options());  // dh of each thread
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "linear_adam_backward", [&] {
    using T = scalar_t;
    const AdamStep<T> update(lr, beta1, beta2, eps, weight_decay, decoupled, step);
    const T *gp = ptr<T>(g), *hp = ptr<T>(hs);
    T *wp = ptr<T>(w), *mp = ptr<T>(m), *vp = ptr<T>(v);
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals ftz;
      T* dh = ptr<T>(partial) + at::get_thread_num() * N * H;
      std::vector<T> dw(rows * H);
      const T one(1), zero(0);
      const int n = static_cast<int>(N), h = static_cast<int>(H), ldg = static_cast<int>(V);
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t r0 = blk * rows, r = std::min(rows, V - r0);
        const int rb = static_cast<int>(r);
        T* wb = wp + r0 * H;
        // row-major dh (N, H) += g[:, r0:r0+r] (N, r) W_b (r, H), as column-major dh^T += W_b^T g_b^T
        blas("N", "N", &h, &n, &rb, &one, wb, &h, gp + r0, &ldg, &one, dh, &h);
        // row-major dW_b (r, H) = g_b^T (r, N) hs (N, H), as column-major dW_b^T = hs^T g_b
        blas("N", "T", &h, &rb, &n, &one, hp, &h, gp + r0, &ldg, &zero, dw.data(), &h);
        update(wb, dw.data(), mp + r0 * H, vp + r0 * H, r * H);
      }
    });
  });
  return partial.sum(0);
}

}  // namespace rnnkit
