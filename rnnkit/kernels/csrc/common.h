// Shared by rnnkit's C++ kernels: ATen's vector type, row loops, direct BLAS calls.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <optional>
#include <cmath>
#include <cstring>
#include <vector>

namespace rnnkit {

using at::Tensor;

// The elementwise loops run on ATen's vector type (AVX-512/AVX2 with Sleef's
// exp and tanh where torch was built for them); the last partial vector of a
// row is loaded and stored with a count.
template <typename T> using Vec = at::vec::Vectorized<T>;
// 1 / x for finite x > 0 (Adam's denominators): on AVX-512 an estimate (rcp14) and one
// Newton step, relative error below 2^-27, instead of a division, whose unit also takes the
// square roots. Not for 0 or infinity.
template <typename T> inline Vec<T> recip_positive(const Vec<T>& x) { return Vec<T>(T(1)) / x; }
#if defined(CPU_CAPABILITY_AVX512)
template <> inline Vec<float> recip_positive(const Vec<float>& x) {
  const __m512 a = x, r = _mm512_rcp14_ps(a);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(2.f)));  // r (2 - a r)
}
#endif
// The gates' sigmoid and tanh. On AVX-512 in float32: e^-x to 2 ulp (Sleef's u20 exp,
// its argument capped at 80 so that 1 + e^-x stays finite) and the reciprocal above, and
// tanh(x) = 2 sigmoid(2x) - 1; within 3e-7 of the exact functions, at less than half the
// cost of the 1-ulp exp, the division and Sleef's tanh.
template <typename T> inline Vec<T> vsigm(const Vec<T>& x) { return Vec<T>(T(1)) / (Vec<T>(T(1)) + x.neg().exp()); }
template <typename T> inline Vec<T> vtanh(const Vec<T>& x) { return x.tanh(); }
#if defined(CPU_CAPABILITY_AVX512)
template <> inline Vec<float> vsigm(const Vec<float>& x) {
  return recip_positive(Vec<float>(1.f) + at::vec::minimum(x.neg(), Vec<float>(80.f)).exp_u20());
}
template <> inline Vec<float> vtanh(const Vec<float>& x) { return Vec<float>(2.f) * vsigm(x + x) - Vec<float>(1.f); }
#endif

// Calls f(j, count) for each vector of a row of width H.
template <typename T, typename F> inline void for_vectors(int64_t H, const F& f) {
  constexpr int64_t K = Vec<T>::size();
  for (int64_t j = 0; j < H; j += K) f(j, static_cast<int>(std::min<int64_t>(K, H - j)));
}

// Sub-normal operands and results are taken as zero while one of these lives on a thread
// (its previous mode restored after). Without it, a value decaying below 1.2e-38 (Adam's
// moments of rarely used rows) costs a microcode assist per operation.
struct FlushDenormals {
#if defined(__x86_64__) || defined(_M_X64)
  const unsigned int saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// Parallel over rows, with enough work per task to pay for a thread.
template <typename F> void for_rows(int64_t n, int64_t width, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(width, 1));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) f(b);
  });
}

// The per-step products call BLAS directly (the Fortran interface of the BLAS
// torch is linked with): no tensor is made inside the time loop.
extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}

inline void blas(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                 const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                 const int* ldc) { sgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); }
inline void blas(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
                 const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
                 const int* ldc) { dgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); }

// MKL's own threads, off while one of these lives on a thread (the thread's previous
// setting restored after) for a layer whose per-step product is small: it finishes
// before a second thread wakes, and the wake-ups cost more than they save; a large
// per-step product (an LSTM of 256 units: 1 x 1024 x 256) keeps MKL's threads. A weak
// reference: with a BLAS other than MKL this does nothing.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));
constexpr int64_t kSerialBlasMacs = int64_t(1) << 17;  // multiply-adds per step
struct SerialBlas {
  int saved = -1;
  explicit SerialBlas(int64_t macs) {
    if (macs > kSerialBlasMacs || MKL_Set_Num_Threads_Local == nullptr) return;
    at::internal::lazy_init_num_threads();  // its first run on a thread resets MKL's setting: before ours
    saved = MKL_Set_Num_Threads_Local(1);
  }
  ~SerialBlas() { if (saved >= 0) MKL_Set_Num_Threads_Local(saved); }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;
};

}  // namespace rnnkit

namespace at::native {  // torch's oneDNN matmul (ATen/native/mkldnn/Matmul.h): result = beta result + alpha mat1 mat2
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha);
}

namespace rnnkit {

// Large float32 products go to oneDNN's matmul (torch's own, the one its nn.LSTM runs) rather
// than BLAS: the two compute the same products, and on some processors the BLAS takes a slower
// path. A product of fewer than kOneDnnMacs multiply-adds stays with BLAS, whose call costs less
// to set up. rnnkit/kernels/gemm.py applies the same rule (ONEDNN_MACS) to Python's products.
constexpr int64_t kOneDnnMacs = int64_t(1) << 21;
inline bool onednn_product(at::ScalarType dtype, int64_t m, int64_t k, int64_t n) {
  return dtype == at::kFloat && m * k * n >= kOneDnnMacs && at::hasMKLDNN();
}

// a (m, k) @ b (k, n), any strides: at::mm, or oneDNN's matmul for a large float32 product.
inline Tensor product_of(const Tensor& a, const Tensor& b) {
  if (!onednn_product(a.scalar_type(), a.size(0), a.size(1), b.size(1))) return at::mm(a, b);
  // other strides (a column slice, say) would run on oneDNN's slow reference kernel
  auto dense = [](const Tensor& t) { return t.is_contiguous() || t.t().is_contiguous() ? t : t.contiguous(); };
  Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(dense(a), dense(b), out, 0.f, 1.f);
  return out;
}

// Row-major C (m, n) = op(A) op(B) + beta C, with op(A) (m, k) and op(B) (k, n): the
// column-major product C^T = op(B)^T op(A)^T, whose transposition flags are the same.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T beta, T* c) {
  if (m == 0 || n == 0) return;
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
  const int lda = static_cast<int>(trans_b ? k : n), ldb = static_cast<int>(trans_a ? m : k), ldc = M;
  const T one(1);
  blas(&tb, &ta, &M, &N, &K, &one, b, &lda, a, &ldb, &beta, c, &ldc);
}

// out (rows, width) = c (rows, n) M (n, width) + beta out (beta 0 or 1) for a row-major M:
// each c[b, i] broadcast and multiplied into row i of M, a few vectors of the outputs held
// in registers. The general form runs one row at a time (4 vectors of outputs summed at
// once); on AVX-512 in float32 a tile of 4 rows by 64 outputs (16 registers) takes each
// vector of M once for 4 rows, which keeps both multiply-add units busy. Where at most 32
// outputs are left (a width of 32, the LSTM's backward at H 32), the tile is 4 rows by 32:
// the 4 by 64 one would multiply masked-off zeros half the time.
template <typename T> struct RowCombine {
  static constexpr bool kTiled = false;  // whether many rows run faster here than in BLAS
  static void run(int64_t rows, const T* c, const T* M, int64_t n, int64_t width, T beta, T* out) {
    using V = Vec<T>;
    constexpr int64_t S = V::size(), A = 4;  // values per vector; vectors summed at once
    for (int64_t b = 0; b < rows; ++b) {
      const T* cb = c + b * n;
      T* ob = out + b * width;
      for (int64_t j = 0; j < width; j += A * S) {
        V acc[A];
        int count[A];  // past the width: 0 (nothing loaded or stored)
        for (int64_t a = 0; a < A; ++a) {
          count[a] = static_cast<int>(std::clamp<int64_t>(width - j - a * S, 0, S));
          acc[a] = beta != T(0) ? V::loadu(ob + j + a * S, count[a]) : V(T(0));
        }
        for (int64_t i = 0; i < n; ++i) {
          const V ci(cb[i]);
          const T* row = M + i * width + j;
          for (int64_t a = 0; a < A; ++a) acc[a] = at::vec::fmadd(ci, V::loadu(row + a * S, count[a]), acc[a]);
        }
        for (int64_t a = 0; a < A; ++a)
          if (count[a] > 0) acc[a].store(ob + j + a * S, count[a]);
      }
    }
  }
};

#if defined(CPU_CAPABILITY_AVX512)
template <> struct RowCombine<float> {
  static constexpr bool kTiled = true;
  // rows R (1-4) of out, columns [j, j + 16 C) for C = 4 or 2 vectors (the masks cut the
  // last tile at the width). The accumulators are named variables: held in an array, they
  // are spilled every step.
  template <int R, int C>
  static void tile(const float* __restrict c, int64_t n, const float* __restrict M, int64_t width, float beta,
                   float* __restrict out, int64_t j, const __mmask16 (&mask)[4]) {
    __m512 a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33;
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 =
        _mm512_setzero_ps();
    const __mmask16 m0 = mask[0], m1 = mask[1], m2 = mask[2], m3 = mask[3];
    const float* m = M + j;
    for (int64_t i = 0; i < n; ++i, m += width) {
      const __m512 w0 = _mm512_maskz_loadu_ps(m0, m), w1 = _mm512_maskz_loadu_ps(m1, m + 16);
      __m512 w2 = w0, w3 = w0;
      if constexpr (C > 2) w2 = _mm512_maskz_loadu_ps(m2, m + 32), w3 = _mm512_maskz_loadu_ps(m3, m + 48);
      __m512 b = _mm512_set1_ps(c[i]);
      a00 = _mm512_fmadd_ps(b, w0, a00); a01 = _mm512_fmadd_ps(b, w1, a01);
      if constexpr (C > 2) { a02 = _mm512_fmadd_ps(b, w2, a02); a03 = _mm512_fmadd_ps(b, w3, a03); }
      if constexpr (R > 1) {
        b = _mm512_set1_ps(c[n + i]);
        a10 = _mm512_fmadd_ps(b, w0, a10); a11 = _mm512_fmadd_ps(b, w1, a11);
        if constexpr (C > 2) { a12 = _mm512_fmadd_ps(b, w2, a12); a13 = _mm512_fmadd_ps(b, w3, a13); }
      }
      if constexpr (R > 2) {
        b = _mm512_set1_ps(c[2 * n + i]);
        a20 = _mm512_fmadd_ps(b, w0, a20); a21 = _mm512_fmadd_ps(b, w1, a21);
        if constexpr (C > 2) { a22 = _mm512_fmadd_ps(b, w2, a22); a23 = _mm512_fmadd_ps(b, w3, a23); }
      }
      if constexpr (R > 3) {
        b = _mm512_set1_ps(c[3 * n + i]);
        a30 = _mm512_fmadd_ps(b, w0, a30); a31 = _mm512_fmadd_ps(b, w1, a31);
        if constexpr (C > 2) { a32 = _mm512_fmadd_ps(b, w2, a32); a33 = _mm512_fmadd_ps(b, w3, a33); }
      }
    }
    auto put = [&](int r, __m512 x0, __m512 x1, __m512 x2, __m512 x3) {
      float* o = out + r * width + j;
      if (beta != 0.f) {
        x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, o));
        x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, o + 16));
        if constexpr (C > 2) {
          x2 = _mm512_add_ps(x2, _mm512_maskz_loadu_ps(m2, o + 32));
          x3 = _mm512_add_ps(x3, _mm512_maskz_loadu_ps(m3, o + 48));
        }
      }
      _mm512_mask_storeu_ps(o, m0, x0); _mm512_mask_storeu_ps(o + 16, m1, x1);
      if constexpr (C > 2) { _mm512_mask_storeu_ps(o + 32, m2, x2); _mm512_mask_storeu_ps(o + 48, m3, x3); }
    };
    put(0, a00, a01, a02, a03);
    if constexpr (R > 1) put(1, a10, a11, a12, a13);
    if constexpr (R > 2) put(2, a20, a21, a22, a23);
    if constexpr (R > 3) put(3, a30, a31, a32, a33);
  }
  template <int C>
  static void columns(int64_t rows, const float* c, const float* M, int64_t n, int64_t width, float beta,
                      float* out, int64_t j) {
    __mmask16 mask[4];
    for (int a = 0; a < 4; ++a)
      mask[a] = static_cast<__mmask16>((1u << std::clamp<int64_t>(width - j - 16 * a, 0, 16)) - 1u);
    int64_t b = 0;
    for (; b + 4 <= rows; b += 4) tile<4, C>(c + b * n, n, M, width, beta, out + b * width, j, mask);
    const float* cb = c + b * n;
    float* ob = out + b * width;
    switch (rows - b) {
      case 3: tile<3, C>(cb, n, M, width, beta, ob, j, mask); break;
      case 2: tile<2, C>(cb, n, M, width, beta, ob, j, mask); break;
      case 1: tile<1, C>(cb, n, M, width, beta, ob, j, mask); break;
      default: break;
    }
  }
  static void run(int64_t rows, const float* c, const float* M, int64_t n, int64_t width, float beta, float* out) {
    for (int64_t j = 0; j < width; j += 64) {
      if (width - j > 32) columns<4>(rows, c, M, n, width, beta, out, j);
      else columns<2>(rows, c, M, n, width, beta, out, j);
    }
  }
};
#endif

// The per-step product out (rows, N) = h (rows, K) W^T + beta out (beta 0 or 1) of a
// row-major W (N, K), and the backward's out (rows, K) = g (rows, N) W. BLAS takes each
// output of a product by a transposed matrix as a dot product of a row of W with h, and at
// a few rows of a small W its horizontal sums dominate; RowCombine broadcasts h instead.
// For a W of at most kElements values (it stays in the core's cache), W is transposed once
// per call into (K, N), and a step runs on RowCombine: for any number of rows where it is
// tiled (float32 on AVX-512), else for at most kRows rows. Larger products keep BLAS, or
// oneDNN from kOneDnnMacs.
template <typename T> struct StepProduct {
  static constexpr int64_t kRows = 4, kElements = int64_t(1) << 15;
  const T* w;
  int64_t N, K;
  std::vector<T> wt;  // W^T (K, N), or empty: BLAS
  static bool by_rows(int64_t rows, int64_t N, int64_t K) {
    return N * K <= kElements && (RowCombine<T>::kTiled || rows <= kRows);
  }
  // forward: whether operator() will be used (it needs the transposed copy)
  StepProduct(const T* w_, int64_t N_, int64_t K_, int64_t B, bool forward = true) : w(w_), N(N_), K(K_) {
    if (!forward || !by_rows(B, N, K)) return;
    wt.resize(N * K);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) wt[k * N + n] = w[n * K + k];
  }
  void operator()(int64_t rows, const T* h, T beta, T* out) const {
    if (onednn_product(c10::CppTypeToScalarType<T>::value, rows, K, N)) {
      onednn(rows, h, true, K, N, beta, out);
      return;
    }
    if (wt.empty()) {
      gemm<T>(false, true, rows, N, K, h, w, beta, out);
      return;
    }
    RowCombine<T>::run(rows, h, wt.data(), K, N, beta, out);
  }

  // W's rows as they are (no copy); one row of a large W too (it reads W once).
  void backward(int64_t rows, const T* g, T beta, T* out) const {
    if (onednn_product(c10::CppTypeToScalarType<T>::value, rows, N, K)) {
      onednn(rows, g, false, N, K, beta, out);
      return;
    }
    if (rows > 1 && !by_rows(rows, N, K)) {
      gemm<T>(false, false, rows, K, N, g, w, beta, out);
      return;
    }
    RowCombine<T>::run(rows, g, w, N, K, beta, out);
  }

  // out (rows, width) = a (rows, k) op(W) + beta out on oneDNN's matmul, op(W) = W^T (k = K,
  // width = N) if transposed, else W (k = N, width = K).
  void onednn(int64_t rows, const T* a, bool transposed, int64_t k, int64_t width, T beta, T* out) const {
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    const Tensor weight = at::from_blob(const_cast<T*>(w), {N, K}, opts);
    at::native::mkldnn_matmul(at::from_blob(const_cast<T*>(a), {rows, k}, opts),
                              transposed ? weight.t() : weight, at::from_blob(out, {rows, width}, opts),
                              static_cast<float>(beta), 1.f);
  }
};

template <typename T> inline void copy_rows(T* dst, const T* src, int64_t count) {
  std::memcpy(dst, src, sizeof(T) * count);
}

template <typename T> inline T* ptr(const Tensor& t) { return t.numel() ? t.data_ptr<T>() : nullptr; }

// One direction of one layer (recurrent.cpp), run by layer.cpp. xp (T, B, G): the
// input projections; lengths: CPU int64 (B,) sorted longest first, or empty for all T.
std::vector<Tensor> lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const Tensor& w_ch, const Tensor& w_hr, const Tensor& lengths, bool reverse);
std::vector<Tensor> lstm_backward(const Tensor& dy, const Tensor& dhT, const Tensor& dcT, const Tensor& gates,
                                  const Tensor& cs, const Tensor& hprev, const Tensor& cprev, const Tensor& m,
                                  const Tensor& w_hh, const Tensor& w_ch, const Tensor& w_hr, const Tensor& lengths,
                                  bool reverse);
std::vector<Tensor> gru_forward(const Tensor& xp, const Tensor& h0, const Tensor& w_hh, const Tensor& b_hh,
                                const Tensor& lengths, bool reverse);
std::vector<Tensor> gru_backward(const Tensor& dy, const Tensor& dhT, const Tensor& act, const Tensor& hn,
                                 const Tensor& hprev, const Tensor& w_hh, bool bias, const Tensor& lengths,
                                 bool reverse);
std::vector<Tensor> elman_forward(const Tensor& xp, const Tensor& h0, const Tensor& w_hh, int64_t activation,
                                  const Tensor& lengths, bool reverse);
std::vector<Tensor> elman_backward(const Tensor& dy, const Tensor& dhT, const Tensor& y, const Tensor& hprev,
                                   const Tensor& w_hh, int64_t activation, const Tensor& lengths, bool reverse);

// The entry points of softmax.cpp and optim.cpp (bound in layer.cpp).
Tensor softmax_xent_(Tensor& z, const Tensor& target, const Tensor& bias, Tensor& db);
void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
               const std::vector<Tensor>& v, const std::vector<int64_t>& steps, double lr, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled);
void lazy_adam_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                    const Tensor& v, int64_t step, double lr, double beta1, double beta2, double eps);
void adam_rows_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                    const Tensor& v, int64_t step, double lr, double beta1, double beta2, double eps,
                    double weight_decay, bool decoupled);
void adam_catch_up(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& current,
                   const Tensor& history, int64_t base, int64_t to, const std::optional<Tensor>& rows);
void adam_deferred_step(const Tensor& param, const Tensor& rows_in, const Tensor& values_in, const Tensor& m,
                        const Tensor& v, const Tensor& current, const Tensor& history, int64_t base, int64_t step,
                        double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled);
Tensor linear_adam_backward(const Tensor& g, const Tensor& w, const Tensor& hs, const Tensor& m, const Tensor& v,
                            int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                            bool decoupled, int64_t block_elements);
void adam_low_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& low,
                   int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                   bool decoupled);

// blocks.cpp: an uninitialised (rows, cols) tensor of like's type whose block is kept for
// the next call when the tensor is freed.
Tensor kept_empty(int64_t rows, int64_t cols, const Tensor& like);

}  // namespace rnnkit
