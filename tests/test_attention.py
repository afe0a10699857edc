"""Attention: each scoring against its formula written out, weights zero on the padding and
summing to one, NaN in the padding reaching nothing (values nor gradients), all steps at
once equal to one step at a time, float64 gradcheck, and dot's size rule."""

import pytest
import torch

from rnnkit.attention import Attention, Scoring
from rnnkit.settings import SettingError


def _memory(B=3, S=5, M=4, lengths=(5, 2, 3)):
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, S, M, generator=g, dtype=torch.float64), torch.tensor(lengths)


def _by_hand(att, q, m, n):
    """Context and weights of one query q (Q,) over one source m (S, M) of length n."""
    m = m[:n]
    if att.scoring is Scoring.ADDITIVE:
        e = torch.stack([att.v.weight[0] @ torch.tanh(att.query_proj.weight @ q + att.query_proj.bias
                                                     + att.memory_proj.weight @ m_s) for m_s in m])
    elif att.scoring is Scoring.DOT:
        e = m @ q
    else:
        e = torch.stack([q @ (att.memory_proj.weight @ m_s) for m_s in m])
    alpha = e.softmax(0)
    return alpha @ m, alpha


@pytest.mark.parametrize("scoring", list(Scoring))
def test_each_scoring_against_its_formula(scoring):
    torch.manual_seed(1)
    memory, lengths = _memory()
    Q = 4 if scoring is Scoring.DOT else 6
    att = Attention(scoring, Q, 4, attention_size=7).double()
    q = torch.randn(3, Q, dtype=torch.float64)
    context, alpha = att(q, att.prepare(memory, lengths))
    for b, n in enumerate(lengths.tolist()):
        c, a = _by_hand(att, q[b], memory[b], n)
        torch.testing.assert_close(context[b], c)
        torch.testing.assert_close(alpha[b, :n], a)
        assert torch.all(alpha[b, n:] == 0)


@pytest.mark.parametrize("scoring", list(Scoring))
def test_padding_is_never_read_and_all_steps_equal_one_at_a_time(scoring):
    torch.manual_seed(2)
    memory, lengths = _memory()
    att = Attention(scoring, 4, 4).double()
    poisoned = memory.clone()
    for b, n in enumerate(lengths.tolist()):
        poisoned[b, n:] = float("nan")
    poisoned.requires_grad_(True)
    q = torch.randn(3, 6, 4, dtype=torch.float64)  # (B, T, Q)
    context, alpha = att(q, att.prepare(poisoned, lengths))
    clean_context, _ = att(q, att.prepare(memory, lengths))
    torch.testing.assert_close(context, clean_context)
    context.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in att.parameters()) and torch.isfinite(poisoned.grad).all()
    for t in range(6):
        c_t, a_t = att(q[:, t], att.prepare(memory, lengths))
        torch.testing.assert_close(c_t, context[:, t])
        torch.testing.assert_close(a_t, alpha[:, t])


@pytest.mark.parametrize("scoring", list(Scoring))
def test_gradcheck(scoring):
    torch.manual_seed(3)
    memory, lengths = _memory(B=2, S=3, M=4, lengths=(3, 2))
    att = Attention(scoring, 4, 4, attention_size=3).double()
    q = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    memory.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, m: att(q, att.prepare(m, lengths))[0], (q, memory))


def test_dot_needs_equal_widths():
    with pytest.raises(SettingError, match="attention dot needs the decoder's width"):
        Attention(Scoring.DOT, 8, 6)
