// One layer of a stack, every direction, in one call each way (rnnkit/kernels/fused.py):
// the input projections of all steps (one GEMM per direction), the recurrences of
// recurrent.cpp, the outputs side by side; and the backward pass of all of it. A
// one-sentence BiLSTM update is then two calls instead of ~200 operators.
//
// This file also binds the module.

#include "common.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <tuple>

namespace rnnkit {
namespace {

enum Kind : int64_t { kElman = 0, kLstm = 1, kGru = 2 };

// Per direction, the tensors Python passes, in this order (empty for an absent one;
// an empty initial state means zeros):
//   Elman: w_ih, b, h0, w_hh
//   LSTM:  w_ih, b, h0, c0, w_hh, w_ch, w_hr
//   GRU:   w_ih, b_ih, h0, w_hh, b_hh
int64_t per_direction(int64_t kind) { return kind == kLstm ? 7 : kind == kGru ? 5 : 4; }

// The recurrent weight W_hh of the first direction.
const Tensor& recurrent_weight(int64_t kind, const std::vector<Tensor>& params) { return params[kind == kLstm ? 4 : 3]; }

Tensor or_zeros(const Tensor& state, int64_t B, int64_t n, const Tensor& like) {
  return state.numel() ? state : at::zeros({B, n}, like.options());
}

// x rounded up to a multiple of 16, or of 1/16 of x's power of two if larger: at most 8
// sizes per doubling, at most 1/8 more (as rnnkit.softmax._padded_rows).
inline int64_t padded(int64_t x) {
  int64_t bits = 0;
  while ((int64_t(1) << bits) < x) ++bits;  // bits = bit length of x - 1
  const int64_t align = std::max<int64_t>(16, int64_t(1) << std::max<int64_t>(0, bits - 4));
  return (x + align - 1) / align * align;
}

// a (m, k) @ b (k, n) or its transposes, in bfloat16 products when low (the result in a's
// dtype). oneDNN compiles a kernel for every new shape, and batches vary in B·T: in bfloat16, m and k are padded with zeros (padded()).
Tensor product(const Tensor& a, const Tensor& b, bool low) {
  if (!low) return product_of(a, b);
  const int64_t m = a.size(0), k = a.size(1), mp = padded(m), kp = padded(k);
  Tensor al = mp == m && kp == k ? a.to(at::kBFloat16) : at::zeros({mp, kp}, a.options().dtype(at::kBFloat16));
  if (mp != m || kp != k) al.narrow(0, 0, m).narrow(1, 0, k).copy_(a);
  Tensor bl = kp == k ? b.to(at::kBFloat16) : at::zeros({kp, b.size(1)}, b.options().dtype(at::kBFloat16));
  if (kp != k) bl.narrow(0, 0, k).copy_(b);
  return at::mm(al, bl).narrow(0, 0, m).to(a.scalar_type());
}

// x2d (T·B, I) -> xp (T, B, G) = x W_ih^T + b.
Tensor project(const Tensor& x2d, const Tensor& w_ih, const Tensor& b, int64_t T, int64_t B, bool low) {
  Tensor xp;
  if (b.numel() && !low && !onednn_product(x2d.scalar_type(), x2d.size(0), x2d.size(1), w_ih.size(0))) {
    xp = at::addmm(b, x2d, w_ih.t());
  } else {
    xp = product(x2d, w_ih.t(), low);
    if (b.numel()) xp.add_(b);
  }
  return xp.view({T, B, w_ih.size(0)});
}

// Products here are rnnkit's own choice of precision (``low``), never autocast's.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

}  // namespace

// x (T, B, I) in the weights' dtype; params: per_direction(kind) tensors per direction.
// Returns y (T, B, D·R); the final states stacked over directions, h (D, B, R) and for the
// LSTM c (D, B, H); and what layer_backward needs.
std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> layer_forward(
    int64_t kind, const Tensor& x_in, const std::vector<Tensor>& params, int64_t activation,
    const Tensor& lengths, bool low) {
  NoAutocast no_autocast;
  const Tensor x = x_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), P = per_direction(kind);
  const int64_t D = static_cast<int64_t>(params.size()) / P;
  TORCH_CHECK(D >= 1 && static_cast<int64_t>(params.size()) == D * P, "layer_forward: parameters per direction");
  const Tensor x2d = x.view({T * B, x.size(2)});
  const SerialBlas serial(B * recurrent_weight(kind, params).numel());  // the per-step product's size
  std::vector<Tensor> ys, hs, cs, saved;
  for (int64_t d = 0; d < D; ++d) {
    const Tensor* p = params.data() + d * P;
    const bool reverse = d == 1;
    const Tensor xp = project(x2d, p[0], p[1], T, B, low);  // the LSTM takes it over as its gates
    std::vector<Tensor> out;
    if (kind == kLstm) {  // out: y, h, c, gates, cs, hprev, cprev, m
      const int64_t H = p[4].size(0) / 4, R = p[4].size(1);
      out = lstm_forward(xp, or_zeros(p[2], B, R, x), or_zeros(p[3], B, H, x), p[4], p[5], p[6], lengths, reverse);
      cs.push_back(out[2]);
      saved.insert(saved.end(), out.begin() + 3, out.end());
    } else if (kind == kGru) {  // out: y, h, act, hn, hprev
      out = gru_forward(xp, or_zeros(p[2], B, p[3].size(1), x), p[3], p[4], lengths, reverse);
      saved.insert(saved.end(), out.begin() + 2, out.end());
    } else {  // out: y, h, hprev
      out = elman_forward(xp, or_zeros(p[2], B, p[3].size(1), x), p[3], activation, lengths, reverse);
      saved.push_back(out[0]);
      saved.push_back(out[2]);
    }
    ys.push_back(out[0]);
    hs.push_back(out[1]);
  }
  std::vector<Tensor> finals{at::stack(hs)};
  if (kind == kLstm) finals.push_back(at::stack(cs));
  return {D == 1 ? ys[0] : at::cat(ys, 2), finals, saved};
}

// dy (T, B, D·R); dfinals: the gradients of layer_forward's finals. Returns d x (or
// undefined unless need_dx), then the gradient of every parameter in params' order
// (undefined for an empty one).
std::vector<Tensor> layer_backward(int64_t kind, const Tensor& dy, const std::vector<Tensor>& dfinals,
                                   const Tensor& x_in, const std::vector<Tensor>& params,
                                   const std::vector<Tensor>& saved, int64_t activation, const Tensor& lengths,
                                   bool low, bool need_dx) {
  NoAutocast no_autocast;
  const Tensor x = x_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), P = per_direction(kind);
  const int64_t D = static_cast<int64_t>(params.size()) / P, R = dy.size(2) / D;
  const int64_t S = static_cast<int64_t>(saved.size()) / D;
  const Tensor x2d = x.view({T * B, x.size(2)});
  const SerialBlas serial(B * recurrent_weight(kind, params).numel());  // the per-step product's size
  std::vector<Tensor> grads(1 + params.size());
  auto keep = [&](int64_t d, int64_t k, const Tensor& g) {  // the gradient of params[d·P + k], if it is one
    if (params[d * P + k].numel()) grads[1 + d * P + k] = g;
  };
  for (int64_t d = 0; d < D; ++d) {
    const Tensor* p = params.data() + d * P;
    const Tensor* s = saved.data() + d * S;
    const bool reverse = d == 1;
    const Tensor dy_d = dy.narrow(2, d * R, R), dh = dfinals[0].select(0, d);
    Tensor dxp;
    if (kind == kLstm) {  // out: d xp, d h0, d c0, d w_hh, d w_ch, d w_hr
      auto out = lstm_backward(dy_d, dh, dfinals[1].select(0, d), s[0], s[1], s[2], s[3], s[4], p[4], p[5], p[6],
                               lengths, reverse);
      dxp = out[0];
      keep(d, 2, out[1]); keep(d, 3, out[2]); keep(d, 4, out[3]); keep(d, 5, out[4]); keep(d, 6, out[5]);
    } else if (kind == kGru) {  // out: d xp, d h0, d w_hh, d b_hh
      auto out = gru_backward(dy_d, dh, s[0], s[1], s[2], p[3], p[4].numel() > 0, lengths, reverse);
      dxp = out[0];
      keep(d, 2, out[1]); keep(d, 3, out[2]); keep(d, 4, out[3]);
    } else {  // out: d xp, d h0, d w_hh
      auto out = elman_backward(dy_d, dh, s[0], s[1], p[3], activation, lengths, reverse);
      dxp = out[0];
      keep(d, 2, out[1]); keep(d, 3, out[2]);
    }
    const Tensor dxp2d = dxp.view({T * B, dxp.size(2)});  // (T·B, G); zero rows past each length
    keep(d, 0, product(dxp2d.t(), x2d, low));  // d w_ih (G, I)
    keep(d, 1, dxp2d.sum(0));  // d b (G,)
    if (need_dx) {
      const Tensor dx_d = product(dxp2d, p[0], low);  // (T·B, I)
      grads[0] = d == 0 ? dx_d : grads[0].add_(dx_d);
    }
  }
  if (need_dx) grads[0] = grads[0].view({T, B, x.size(2)});
  return grads;
}

}  // namespace rnnkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's fused CPU recurrences (a layer, every direction, time-major), softmax loss and Adam updates";
  m.def("layer_forward", &rnnkit::layer_forward);
  m.def("layer_backward", &rnnkit::layer_backward);
  m.def("softmax_xent_", &rnnkit::softmax_xent_);
  m.def("adam_step", &rnnkit::adam_step);
  m.def("lazy_adam_step", &rnnkit::lazy_adam_step);
  m.def("adam_rows_step", &rnnkit::adam_rows_step);
  m.def("adam_catch_up", &rnnkit::adam_catch_up);
  m.def("adam_deferred_step", &rnnkit::adam_deferred_step);
  m.def("linear_adam_backward", &rnnkit::linear_adam_backward);
  m.def("adam_low_step", &rnnkit::adam_low_step);
  m.def("kept_empty", &rnnkit::kept_empty);
  m.attr("ONEDNN_MACS") = rnnkit::kOneDnnMacs;  // the size rule, read by its test against rnnkit.kernels.gemm's
}
