"""Sparse Transformer attention: factorised "strided" and "fixed" patterns.

Paper: Child et al. 2019, "Generating Long Sequences with Sparse Transformers",
  §4.2 (strided and fixed factorised attention) and §4.3 (combining the two
  components across heads: "merged" or one component per head).
Family: fixed patterns (strided / combined), Tay et al.'s survey.
Complexity: O(L * (stride + L / stride * s) * head_dim) time with s = 1
  ("strided") or num_summary ("fixed"): O(L * sqrt(L)) for stride ~ sqrt(L)
  as in the paper. Memory O(L * (stride + chunk * s / stride)): the
  long-range component is computed one chunk of queries at a time.
Exact: yes, equals `dense` with `strided_pattern` as pair_mask.
Causal: yes (the paper's patterns are causal; bidirectional variants below).

Pattern with stride l, query i, key j (causal adds j <= i to every component):
  pattern="strided":
    A (local):  |i - j| < l            (causal: the previous l tokens, self included)
    B (stride): (i - j) mod l == 0     (every l-th token; bidirectional: both sides)
  pattern="fixed":
    A (block):   i // l == j // l      (the block of l tokens containing i)
    B (summary): j mod l >= l - c      (the last c = num_summary positions of
                 every block; bidirectional: the summaries of every block)
  The paper's summary set {l-c, ..., l} (1-indexed) is read as the last c
  positions of each block (openai/sparse_attention's convention); LRA's
  transcription marks c + 1 positions. Bidirectional "fixed" is the paper's
  remark that the fixed pattern needs no causality: every token sees its whole
  block and every block's summaries.

Heads:
  heads="combined" (default, the paper's "merged" head): every head attends to
    A ∪ B in one softmax (A and B computed separately, merged with log-sum-exp;
    pairs in both counted once).
  heads="split": heads [0, ceil(N/2)) attend to A, the rest to B. With one
    head only A is used. `strided_pattern` then needs `num_heads`.

Options:
  stride: l (default 50, LRA's Fixed pattern block).
  pattern: "strided" or "fixed" (default "fixed", LRA's choice).
  num_summary: c, 1 <= c <= stride, "fixed" only (default 10, LRA's c;
    ignored by "strided").
  heads: "combined" or "split".
  num_heads: optional; if given it must equal q.shape[2] (the pattern needs it
    for heads="split").
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py).

Limits: self-attention only (q_len == kv_len). Lengths that are not a multiple
of stride are padded internally (padded keys masked, padded queries dropped).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import block_sparse
from efficient_transformers.attention import softmax_partials as sp
from efficient_transformers.attention.local import block_partials
from efficient_transformers.attention.sliding_window import band_partials

_QUERY_CHUNK = 256  # queries per step of the long-range component


def _check_options(stride, pattern, num_summary, heads):
  stride = sp.check_int("stride", stride, 1)
  if pattern not in ("strided", "fixed"):
    raise ValueError(f"pattern must be 'strided' or 'fixed', got {pattern!r}")
  if heads not in ("combined", "split"):
    raise ValueError(f"heads must be 'combined' or 'split', got {heads!r}")
  if pattern == "strided":
    return stride, num_summary  # num_summary is a "fixed" option: ignored
  num_summary = sp.check_int("num_summary", num_summary, 1)
  if num_summary > stride:
    raise ValueError(f"num_summary {num_summary} must be <= stride {stride}")
  return stride, num_summary


def _component_a(q, k, v, ok, *, stride, pattern, causal, query_chunk):
  del query_chunk
  if pattern == "strided":
    return band_partials(q, k, v, ok, window=stride - 1, causal=causal)
  return block_partials(q, k, v, ok, block_size=stride, causal=causal)


def _component_b(q, k, v, ok, *, stride, pattern, num_summary, causal, exclude_a,
                 query_chunk):
  """The long-range component; exclude_a drops the pairs that A already has."""
  length, head_dim = q.shape[-2], q.shape[-1]
  padded = -(-length // stride) * stride
  ok = jnp.broadcast_to(ok, (*ok.shape[:-1], length))

  def blocks(x, value=0):  # [..., L, H] -> [..., L/l, l, H]
    x = sp.pad_axis(x, -2, padded, value)
    return x.reshape(*x.shape[:-2], padded // stride, stride, x.shape[-1])

  if pattern == "strided":
    # Residue classes: [..., l, L/l, H]; B is full attention inside a class.
    cls = lambda x, value=0: blocks(x, value).swapaxes(-3, -2)
    def allowed(i, j):
      out = (j <= i) if causal else jnp.ones(jnp.broadcast_shapes(i.shape, j.shape), bool)
      return (out & (j != i)) if exclude_a else out
    pos = np.arange(padded // stride)
    parts = sp.chunked_partials(
        cls(q), cls(k), cls(v), cls(ok[..., None], False)[..., 0], pos, pos,
        allowed, max(1, query_chunk // stride))
    unclass = lambda x: x.swapaxes(-3, -2).reshape(*x.shape[:-3], padded, head_dim)
    flat = lambda x: x.swapaxes(-2, -1).reshape(*x.shape[:-2], padded)
    return sp.Partials(unclass(parts.acc)[..., :length, :],
                       flat(parts.row_max)[..., :length], flat(parts.row_sum)[..., :length])
  # "fixed": the summary keys, the last num_summary positions of every block.
  summary = lambda x: x[..., stride - num_summary:, :].reshape(*x.shape[:-3], -1, x.shape[-1])
  k_pos = (np.arange(padded).reshape(-1, stride)[:, stride - num_summary:]).reshape(-1)
  def allowed(i, j):
    out = (j <= i) if causal else jnp.ones(jnp.broadcast_shapes(i.shape, j.shape), bool)
    return (out & (j // stride != i // stride)) if exclude_a else out
  return sp.chunked_partials(
      q, summary(blocks(k)), summary(blocks(v)),
      summary(blocks(ok[..., None], False))[..., 0], np.arange(length), k_pos,
      allowed, query_chunk)


def strided(q, k, v, *, mask=None, causal=False, stride=50, pattern="fixed",
            num_summary=10, heads="combined", num_heads=None, impl="xla"):
  """Sparse Transformer attention, BTNH layout (see the module docstring)."""
  stride, num_summary = _check_options(stride, pattern, num_summary, heads)
  if num_heads is not None and num_heads != q.shape[2]:
    raise ValueError(f"num_heads {num_heads} != the inputs' heads {q.shape[2]}")
  sp.self_attention_inputs("strided", q, k, v, mask)  # checks, before tracing
  if block_sparse.check_impl("strided", impl) == "pallas":
    return block_sparse.attend(
        "strided", strided_pattern, q, k, v, mask=mask, causal=causal,
        stride=stride, pattern=pattern, num_summary=num_summary, heads=heads,
        num_heads=q.shape[2] if heads == "split" else None)
  return _strided(q, k, v, mask, causal=bool(causal), stride=stride, pattern=pattern,
                  num_summary=num_summary, heads=heads, query_chunk=_QUERY_CHUNK)


@functools.partial(jax.jit, static_argnames=(
    "causal", "stride", "pattern", "num_summary", "heads", "query_chunk"))
def _strided(q, k, v, mask, *, causal, stride, pattern, num_summary, heads, query_chunk):
  q_t, k_t, v_t, ok = sp.self_attention_inputs("strided", q, k, v, mask)
  kw = dict(stride=stride, pattern=pattern, causal=causal, query_chunk=query_chunk)
  if heads == "combined":
    parts = sp.merge(
        _component_a(q_t, k_t, v_t, ok, **kw),
        _component_b(q_t, k_t, v_t, ok, num_summary=num_summary, exclude_a=True, **kw))
    return sp.finish(parts, q.dtype).swapaxes(1, 2)
  heads_a = -(-q.shape[2] // 2)
  head_slice = lambda x, lo, hi: x[:, lo:hi]
  out = [sp.finish(_component_a(*(head_slice(x, 0, heads_a) for x in (q_t, k_t, v_t)),
                                ok, **kw), q.dtype)]
  if heads_a < q.shape[2]:
    rest = [head_slice(x, heads_a, q.shape[2]) for x in (q_t, k_t, v_t)]
    out.append(sp.finish(_component_b(*rest, ok, num_summary=num_summary,
                                      exclude_a=False, **kw), q.dtype))
  return jnp.concatenate(out, axis=1).swapaxes(1, 2)


def strided_pattern(q_len: int, kv_len: int, *, causal: bool = False,
                    stride: int = 50, pattern: str = "fixed", num_summary: int = 10,
                    heads: str = "combined", num_heads: int | None = None) -> np.ndarray:
  """bool [1, L, L] ("combined") or [num_heads, L, L] ("split")."""
  sp.check_same_length("strided", q_len, kv_len)
  stride, num_summary = _check_options(stride, pattern, num_summary, heads)
  i, j = np.arange(q_len)[:, None], np.arange(kv_len)[None, :]
  if pattern == "strided":
    a, b = np.abs(i - j) < stride, (i - j) % stride == 0
  else:
    a, b = i // stride == j // stride, np.broadcast_to(j % stride >= stride - num_summary, (q_len, kv_len))
  if causal:
    a, b = a & (j <= i), b & (j <= i)
  if heads == "combined":
    return (a | b)[None]
  if num_heads is None:
    raise ValueError("strided_pattern with heads='split' needs num_heads")
  heads_a = -(-num_heads // 2)
  return np.stack([a] * heads_a + [b] * (num_heads - heads_a))
