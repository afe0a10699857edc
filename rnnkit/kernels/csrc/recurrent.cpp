// Fused CPU recurrences for rnnkit: Elman, LSTM (peepholes, projection) and GRU.
//
// One direction of one layer, time-major. The input half of every step is
// already done (xp = x W_ih^T + b for all T steps: one GEMM in layer.cpp).
// Per step: one recurrent product (StepProduct in common.h: a direct BLAS call, or
// for a few rows of a small weight a vector loop; no tensor made in the time loop)
// into a preallocated buffer, then the gate arithmetic in one vectorised loop. The
// backward pass through time is written out (the LSTM's rules as in Graves 2012, ch. 4): per
// step one fused loop and one product for the gradient of the previous state; the
// weight gradients are single large GEMMs over all steps at the end.
//
// Variable lengths: the batch is sorted by length, longest first, so the
// sequences still running at time t are the rows [0, n_t). Rows past their
// length are never touched: their state stays as it was (the final state of a
// sequence is the state after its own last step) and their outputs and
// gradients stay zero. The backward direction runs t = T-1 .. 0 under the same
// rule, so each sequence starts at its own last position.
//
// Shapes: T steps, B batch, H hidden, R = H or the projection size P.
//
// layer.cpp runs these per direction for a whole layer (the input projections
// included) and binds the module.

#include "common.h"

namespace rnnkit {


// Rows still running at each time step: n[t] = #{b : lengths[b] > t}.
std::vector<int64_t> active_rows(const Tensor& lengths, int64_t T, int64_t B) {
  std::vector<int64_t> n(T, B);
  if (lengths.numel() == 0) return n;
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == B && lengths.scalar_type() == at::kLong &&
              lengths.device().is_cpu(), "lengths must be a CPU int64 tensor of shape (B,)");
  auto len = lengths.accessor<int64_t, 1>();
  for (int64_t b = 1; b < B; ++b) TORCH_CHECK(len[b] <= len[b - 1], "lengths must be sorted, longest first");
  int64_t rows = B;
  for (int64_t t = 0; t < T; ++t) {
    while (rows > 0 && len[rows - 1] <= t) --rows;
    n[t] = rows;
  }
  return n;
}

// A buffer every row of which the loop writes when no lengths are given; zeros
// otherwise (rows past a length stay zero: outputs, and finite terms of the GEMMs).
inline Tensor buffer(at::IntArrayRef sizes, const at::TensorOptions& opts, const Tensor& lengths) {
  return lengths.numel() == 0 ? at::empty(sizes, opts) : at::zeros(sizes, opts);
}

inline int64_t step_time(int64_t k, int64_t T, bool reverse) { return reverse ? T - 1 - k : k; }


// ---------------------------------------------------------------- LSTM ----

// gates (n, 4H): pre-activations in, activations i, f, g, o out. c (n, H):
// c(t-1) in, c(t) out. peep: (3, H) or null. m (n, H): o * tanh(c(t)).
template <typename T>
void lstm_step(T* gates, T* c, T* c_out, T* m, const T* peep, int64_t n, int64_t H) {
  using V = Vec<T>;
  for_rows(n, 4 * H, [&](int64_t b) {
    T* g = gates + b * 4 * H;
    T* cb = c + b * H;
    T* co = c_out + b * H;
    T* mb = m + b * H;
    for_vectors<T>(H, [&](int64_t j, int k) {
      const V cp = V::loadu(cb + j, k);
      V zi = V::loadu(g + j, k), zf = V::loadu(g + H + j, k), zo = V::loadu(g + 3 * H + j, k);
      if (peep) { zi = zi + V::loadu(peep + j, k) * cp; zf = zf + V::loadu(peep + H + j, k) * cp; }
      const V i = vsigm(zi), f = vsigm(zf), gg = vtanh(V::loadu(g + 2 * H + j, k));
      const V cn = f * cp + i * gg;
      if (peep) zo = zo + V::loadu(peep + 2 * H + j, k) * cn;
      const V o = vsigm(zo);
      i.store(g + j, k); f.store(g + H + j, k); gg.store(g + 2 * H + j, k); o.store(g + 3 * H + j, k);
      cn.store(cb + j, k); cn.store(co + j, k);
      (o * vtanh(cn)).store(mb + j, k);
    });
  });
}

// dm (n, H): gradient of m(t). dc (n, H): gradient of c(t) in, of c(t-1) out.
// dgates (n, 4H): gradients of the gate pre-activations out.
template <typename T>
void lstm_step_back(const T* gates, const T* cs, const T* cprev, const T* dm, T* dc, T* dgates,
                    const T* peep, int64_t n, int64_t H) {
  using V = Vec<T>;
  const V one(T(1));
  for_rows(n, 4 * H, [&](int64_t b) {
    const T* g = gates + b * 4 * H;
    T* dg = dgates + b * 4 * H;
    const T* cn = cs + b * H;
    const T* cp = cprev + b * H;
    const T* dmb = dm + b * H;
    T* dcb = dc + b * H;
    for_vectors<T>(H, [&](int64_t j, int k) {
      const V i = V::loadu(g + j, k), f = V::loadu(g + H + j, k);
      const V gg = V::loadu(g + 2 * H + j, k), o = V::loadu(g + 3 * H + j, k);
      const V tc = vtanh(V::loadu(cn + j, k)), d_m = V::loadu(dmb + j, k), c_prev = V::loadu(cp + j, k);
      const V d_o = d_m * tc * o * (one - o);
      V d_c = V::loadu(dcb + j, k) + d_m * o * (one - tc * tc);
      if (peep) d_c = d_c + d_o * V::loadu(peep + 2 * H + j, k);
      const V d_i = d_c * gg * i * (one - i);
      const V d_f = d_c * c_prev * f * (one - f);
      const V d_g = d_c * i * (one - gg * gg);
      V d_cp = d_c * f;
      if (peep) d_cp = d_cp + d_i * V::loadu(peep + j, k) + d_f * V::loadu(peep + H + j, k);
      d_i.store(dg + j, k); d_f.store(dg + H + j, k); d_g.store(dg + 2 * H + j, k); d_o.store(dg + 3 * H + j, k);
      d_cp.store(dcb + j, k);
    });
  });
}

// Returns y (T,B,R), h_T (B,R), c_T (B,H) and what the backward pass needs:
// gates (T,B,4H) activated, cs (T,B,H) = c(t), hprev (T,B,R), cprev (T,B,H), m (T,B,H) if projected.
// xp becomes the gates (its running rows; the rest, never read, keep xp's values): the
// caller's projections are not kept.
std::vector<Tensor> lstm_forward(const Tensor& xp_in, const Tensor& h0, const Tensor& c0, const Tensor& w_hh_in,
                                 const Tensor& w_ch_in, const Tensor& w_hr_in, const Tensor& lengths, bool reverse) {
  const Tensor xp = xp_in.contiguous(), w_hh = w_hh_in.contiguous(), w_ch = w_ch_in.contiguous();
  const Tensor w_hr = w_hr_in.contiguous();
  const int64_t T = xp.size(0), B = xp.size(1), H = xp.size(2) / 4, R = h0.size(1);
  const bool proj = w_hr.numel() > 0;
  const auto n = active_rows(lengths, T, B);
  auto opts = xp.options();
  Tensor gates = xp, cs = buffer({T, B, H}, opts, lengths);
  Tensor hprev = buffer({T, B, R}, opts, lengths), cprev = buffer({T, B, H}, opts, lengths);
  Tensor y = buffer({T, B, R}, opts, lengths);
  Tensor m = proj ? buffer({T, B, H}, opts, lengths) : at::empty({0}, opts);
  Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    using T_ = scalar_t;
    T_ *g = ptr<T_>(gates), *cs_p = ptr<T_>(cs), *hp = ptr<T_>(hprev), *cp = ptr<T_>(cprev), *y_p = ptr<T_>(y);
    T_ *m_p = ptr<T_>(m), *h_p = ptr<T_>(h), *c_p = ptr<T_>(c);
    const T_ *w = ptr<T_>(w_hh), *peep = ptr<T_>(w_ch), *w_r = ptr<T_>(w_hr);
    const StepProduct<T_> recur(w, 4 * H, R, B), project(w_r, proj ? R : 0, H, B);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_time(k, T, reverse), rows = n[t];
      if (rows == 0) continue;
      T_* g_t = g + t * B * 4 * H;
      T_* y_t = y_p + t * B * R;
      T_* m_t = proj ? m_p + t * B * H : y_t;
      copy_rows(hp + t * B * R, h_p, rows * R);
      copy_rows(cp + t * B * H, c_p, rows * H);
      recur(rows, h_p, T_(1), g_t);  // xp + h W_hh^T
      lstm_step<T_>(g_t, c_p, cs_p + t * B * H, m_t, peep, rows, H);
      if (proj) project(rows, m_t, T_(0), y_t);  // r = m W_hr^T
      copy_rows(h_p, y_t, rows * R);
    }
  });
  return {y, h, c, gates, cs, hprev, cprev, m};
}

// Returns d xp (T,B,4H), d h0, d c0, d w_hh, d w_ch (or empty), d w_hr (or empty).
std::vector<Tensor> lstm_backward(const Tensor& dy_in, const Tensor& dhT, const Tensor& dcT, const Tensor& gates,
                                  const Tensor& cs, const Tensor& hprev, const Tensor& cprev, const Tensor& m,
                                  const Tensor& w_hh_in, const Tensor& w_ch_in, const Tensor& w_hr_in,
                                  const Tensor& lengths, bool reverse) {
  const Tensor dy = dy_in.contiguous(), w_hh = w_hh_in.contiguous(), w_ch = w_ch_in.contiguous();
  const Tensor w_hr = w_hr_in.contiguous();
  const int64_t T = gates.size(0), B = gates.size(1), H = gates.size(2) / 4, R = hprev.size(2);
  const bool proj = w_hr.numel() > 0, peephole = w_ch.numel() > 0;
  const auto n = active_rows(lengths, T, B);
  auto opts = gates.options();
  Tensor dgates = buffer({T, B, 4 * H}, opts, lengths);
  Tensor dr_all = proj ? buffer({T, B, R}, opts, lengths) : at::empty({0}, opts);
  Tensor dr_buf = at::empty({B, R}, opts), dm_buf = at::empty({B, H}, opts);
  Tensor dh = dhT.contiguous().clone(), dc = dcT.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    using T_ = scalar_t;
    const T_ *g = ptr<T_>(gates), *cs_p = ptr<T_>(cs), *cp = ptr<T_>(cprev), *dy_p = ptr<T_>(dy);
    const T_ *w = ptr<T_>(w_hh), *peep = ptr<T_>(w_ch), *w_r = ptr<T_>(w_hr);
    T_ *dg = ptr<T_>(dgates), *dr_p = ptr<T_>(dr_all), *drb = ptr<T_>(dr_buf), *dmb = ptr<T_>(dm_buf);
    T_ *dh_p = ptr<T_>(dh), *dc_p = ptr<T_>(dc);
    const StepProduct<T_> recur(w, 4 * H, R, B, false);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_time(k, T, !reverse), rows = n[t];
      if (rows == 0) continue;
      T_* dr = proj ? dr_p + t * B * R : drb;
      const T_* dy_t = dy_p + t * B * R;
      for (int64_t i = 0; i < rows * R; ++i) dr[i] = dy_t[i] + dh_p[i];  // d r(t): output and next step
      T_* dm = dr;
      if (proj) { dm = dmb; gemm<T_>(false, false, rows, H, R, dr, w_r, T_(0), dm); }  // d m = d r W_hr
      T_* dg_t = dg + t * B * 4 * H;
      lstm_step_back<T_>(g + t * B * 4 * H, cs_p + t * B * H, cp + t * B * H, dm, dc_p, dg_t, peep, rows, H);
      recur.backward(rows, dg_t, T_(0), dh_p);  // d r(t-1) = d gates W_hh
    }
  });
  Tensor flat = dgates.view({T * B, 4 * H});
  Tensor d_w_hh = product_of(flat.t(), hprev.view({T * B, R}));
  Tensor d_w_hr = proj ? product_of(dr_all.view({T * B, R}).t(), m.view({T * B, H})) : at::empty({0}, opts);
  Tensor d_w_ch = at::empty({0}, opts);
  if (peephole) {
    d_w_ch = at::stack({(dgates.narrow(2, 0, H) * cprev).sum({0, 1}),
                        (dgates.narrow(2, H, H) * cprev).sum({0, 1}),
                        (dgates.narrow(2, 3 * H, H) * cs).sum({0, 1})});
  }
  return {dgates, dh, dc, d_w_hh, d_w_ch, d_w_hr};
}

// ----------------------------------------------------------------- GRU ----

// xp (n, 3H) pre-activations of the input; hp (n, 3H) = h W_hh^T + b_hh.
// act (n, 3H) out: r, z, n. h (n, H): h(t-1) in, h(t) out, also written to y.
template <typename T>
void gru_step(const T* xp, const T* hp, T* act, T* hn, T* h, T* y, int64_t n, int64_t H) {
  using V = Vec<T>;
  for_rows(n, 3 * H, [&](int64_t b) {
    const T* x = xp + b * 3 * H;
    const T* p = hp + b * 3 * H;
    T* a = act + b * 3 * H;
    T* hb = h + b * H;
    for_vectors<T>(H, [&](int64_t j, int k) {
      const V r = vsigm(V::loadu(x + j, k) + V::loadu(p + j, k));
      const V z = vsigm(V::loadu(x + H + j, k) + V::loadu(p + H + j, k));
      const V p_n = V::loadu(p + 2 * H + j, k);
      const V nn = vtanh(V::loadu(x + 2 * H + j, k) + r * p_n);
      const V hnew = nn + z * (V::loadu(hb + j, k) - nn);
      r.store(a + j, k); z.store(a + H + j, k); nn.store(a + 2 * H + j, k);
      p_n.store(hn + b * H + j, k);
      hnew.store(hb + j, k); hnew.store(y + b * H + j, k);
    });
  });
}

// dh (n, H): gradient of h(t) in, of h(t-1) through the direct path out.
// dxp, dhp (n, 3H): gradients of the input and recurrent pre-activations.
template <typename T>
void gru_step_back(const T* act, const T* hn, const T* hprev, T* dh, T* dxp, T* dhp, int64_t n, int64_t H) {
  using V = Vec<T>;
  const V one(T(1));
  for_rows(n, 3 * H, [&](int64_t b) {
    const T* a = act + b * 3 * H;
    T* dx = dxp + b * 3 * H;
    T* dp = dhp + b * 3 * H;
    T* dhb = dh + b * H;
    for_vectors<T>(H, [&](int64_t j, int k) {
      const V r = V::loadu(a + j, k), z = V::loadu(a + H + j, k), nn = V::loadu(a + 2 * H + j, k);
      const V d = V::loadu(dhb + j, k);
      const V dn = d * (one - z) * (one - nn * nn);
      const V dz = d * (V::loadu(hprev + b * H + j, k) - nn) * z * (one - z);
      const V dr = dn * V::loadu(hn + b * H + j, k) * r * (one - r);
      dr.store(dx + j, k); dz.store(dx + H + j, k); dn.store(dx + 2 * H + j, k);
      dr.store(dp + j, k); dz.store(dp + H + j, k); (dn * r).store(dp + 2 * H + j, k);
      (d * z).store(dhb + j, k);
    });
  });
}

// Returns y (T,B,H), h_T and, for the backward pass, act (T,B,3H), hn (T,B,H), hprev (T,B,H).
std::vector<Tensor> gru_forward(const Tensor& xp_in, const Tensor& h0, const Tensor& w_hh_in, const Tensor& b_hh_in,
                                const Tensor& lengths, bool reverse) {
  const Tensor xp = xp_in.contiguous(), w_hh = w_hh_in.contiguous(), b_hh = b_hh_in.contiguous();
  const int64_t T = xp.size(0), B = xp.size(1), H = xp.size(2) / 3;
  const auto n = active_rows(lengths, T, B);
  auto opts = xp.options();
  Tensor act = buffer({T, B, 3 * H}, opts, lengths), hn = buffer({T, B, H}, opts, lengths);
  Tensor hprev = buffer({T, B, H}, opts, lengths), y = buffer({T, B, H}, opts, lengths);
  Tensor hp = at::empty({B, 3 * H}, opts), h = h0.contiguous().clone();
  const bool bias = b_hh.numel() > 0;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    using T_ = scalar_t;
    const T_ *x_p = ptr<T_>(xp), *w = ptr<T_>(w_hh), *bh = ptr<T_>(b_hh);
    T_ *a_p = ptr<T_>(act), *hn_p = ptr<T_>(hn), *hprev_p = ptr<T_>(hprev), *y_p = ptr<T_>(y);
    T_ *hp_p = ptr<T_>(hp), *h_p = ptr<T_>(h);
    const StepProduct<T_> recur(w, 3 * H, H, B);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_time(k, T, reverse), rows = n[t];
      if (rows == 0) continue;
      copy_rows(hprev_p + t * B * H, h_p, rows * H);
      if (bias) for (int64_t b = 0; b < rows; ++b) copy_rows(hp_p + b * 3 * H, bh, 3 * H);
      recur(rows, h_p, bias ? T_(1) : T_(0), hp_p);  // h W_hh^T + b_hh
      gru_step<T_>(x_p + t * B * 3 * H, hp_p, a_p + t * B * 3 * H, hn_p + t * B * H, h_p, y_p + t * B * H,
                   rows, H);
    }
  });
  return {y, h, act, hn, hprev};
}

// Returns d xp (T,B,3H), d h0, d w_hh, d b_hh (or empty).
std::vector<Tensor> gru_backward(const Tensor& dy_in, const Tensor& dhT, const Tensor& act, const Tensor& hn,
                                 const Tensor& hprev, const Tensor& w_hh_in, bool bias, const Tensor& lengths,
                                 bool reverse) {
  const Tensor dy = dy_in.contiguous(), w_hh = w_hh_in.contiguous();
  const int64_t T = act.size(0), B = act.size(1), H = act.size(2) / 3;
  const auto n = active_rows(lengths, T, B);
  auto opts = act.options();
  Tensor dxp = buffer({T, B, 3 * H}, opts, lengths), dhp = buffer({T, B, 3 * H}, opts, lengths);
  Tensor dh = dhT.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "gru_backward", [&] {
    using T_ = scalar_t;
    const T_ *a_p = ptr<T_>(act), *hn_p = ptr<T_>(hn), *hprev_p = ptr<T_>(hprev), *dy_p = ptr<T_>(dy);
    const T_* w = ptr<T_>(w_hh);
    T_ *dx_p = ptr<T_>(dxp), *dhp_p = ptr<T_>(dhp), *dh_p = ptr<T_>(dh);
    const StepProduct<T_> recur(w, 3 * H, H, B, false);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_time(k, T, !reverse), rows = n[t];
      if (rows == 0) continue;
      const T_* dy_t = dy_p + t * B * H;
      for (int64_t i = 0; i < rows * H; ++i) dh_p[i] += dy_t[i];  // d h(t): output and next step
      T_* dhp_t = dhp_p + t * B * 3 * H;
      gru_step_back<T_>(a_p + t * B * 3 * H, hn_p + t * B * H, hprev_p + t * B * H, dh_p, dx_p + t * B * 3 * H,
                        dhp_t, rows, H);
      recur.backward(rows, dhp_t, T_(1), dh_p);  // direct path + d hp W_hh
    }
  });
  Tensor flat = dhp.view({T * B, 3 * H});
  Tensor d_w_hh = product_of(flat.t(), hprev.view({T * B, H}));
  Tensor d_b_hh = bias ? flat.sum(0) : at::empty({0}, opts);
  return {dxp, dh, d_w_hh, d_b_hh};
}

// --------------------------------------------------------------- Elman ----

enum Act : int64_t { kTanh = 0, kRelu = 1, kSigmoid = 2 };

template <typename T> inline Vec<T> activate(const Vec<T>& z, int64_t a) {
  return a == kTanh ? vtanh(z) : a == kRelu ? at::vec::maximum(z, Vec<T>(T(0))) : vsigm(z);
}

// Derivative through the activation's output y.
template <typename T> inline Vec<T> activate_grad(const Vec<T>& y, int64_t a) {
  const Vec<T> one(T(1)), zero(T(0));
  if (a == kTanh) return one - y * y;
  if (a == kRelu) return Vec<T>::blendv(zero, one, y > zero);
  return y * (one - y);
}

std::vector<Tensor> elman_forward(const Tensor& xp_in, const Tensor& h0, const Tensor& w_hh_in, int64_t activation,
                                  const Tensor& lengths, bool reverse) {
  const Tensor xp = xp_in.contiguous(), w_hh = w_hh_in.contiguous();
  const int64_t T = xp.size(0), B = xp.size(1), H = xp.size(2);
  TORCH_CHECK(activation >= kTanh && activation <= kSigmoid, "unknown activation ", activation);
  const auto n = active_rows(lengths, T, B);
  auto opts = xp.options();
  Tensor hprev = buffer({T, B, H}, opts, lengths), y = buffer({T, B, H}, opts, lengths);
  Tensor h = h0.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "elman_forward", [&] {
    using T_ = scalar_t;
    using V = Vec<T_>;
    const T_ *x_p = ptr<T_>(xp), *w = ptr<T_>(w_hh);
    T_ *hprev_p = ptr<T_>(hprev), *y_p = ptr<T_>(y), *h_p = ptr<T_>(h);
    const StepProduct<T_> recur(w, H, H, B);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_time(k, T, reverse), rows = n[t];
      if (rows == 0) continue;
      T_* y_t = y_p + t * B * H;
      copy_rows(hprev_p + t * B * H, h_p, rows * H);
      copy_rows(y_t, x_p + t * B * H, rows * H);
      recur(rows, h_p, T_(1), y_t);  // xp + h W_hh^T
      for_rows(rows, H, [&](int64_t b) {
        for_vectors<T_>(H, [&](int64_t j, int c) {
          activate(V::loadu(y_t + b * H + j, c), activation).store(y_t + b * H + j, c);
        });
      });
      copy_rows(h_p, y_t, rows * H);
    }
  });
  return {y, h, hprev};
}

// Returns d xp (T,B,H), d h0, d w_hh.
std::vector<Tensor> elman_backward(const Tensor& dy_in, const Tensor& dhT, const Tensor& y, const Tensor& hprev,
                                   const Tensor& w_hh_in, int64_t activation, const Tensor& lengths, bool reverse) {
  const Tensor dy = dy_in.contiguous(), w_hh = w_hh_in.contiguous();
  const int64_t T = y.size(0), B = y.size(1), H = y.size(2);
  const auto n = active_rows(lengths, T, B);
  Tensor dpre = buffer({T, B, H}, y.options(), lengths), dh = dhT.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "elman_backward", [&] {
    using T_ = scalar_t;
    using V = Vec<T_>;
    const T_ *y_p = ptr<T_>(y), *dy_p = ptr<T_>(dy), *w = ptr<T_>(w_hh);
    T_ *d_p = ptr<T_>(dpre), *dh_p = ptr<T_>(dh);
    const StepProduct<T_> recur(w, H, H, B, false);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_time(k, T, !reverse), rows = n[t];
      if (rows == 0) continue;
      const T_ *y_t = y_p + t * B * H, *dy_t = dy_p + t * B * H;
      T_* d_t = d_p + t * B * H;
      for_rows(rows, H, [&](int64_t b) {
        for_vectors<T_>(H, [&](int64_t j, int c) {
          const int64_t i = b * H + j;
          ((V::loadu(dy_t + i, c) + V::loadu(dh_p + i, c)) * activate_grad(V::loadu(y_t + i, c), activation))
              .store(d_t + i, c);
        });
      });
      recur.backward(rows, d_t, T_(0), dh_p);  // d h(t-1) = d pre W_hh
    }
  });
  Tensor d_w_hh = product_of(dpre.view({T * B, H}).t(), hprev.view({T * B, H}));
  return {dpre, dh, d_w_hh};
}

}  // namespace rnnkit
