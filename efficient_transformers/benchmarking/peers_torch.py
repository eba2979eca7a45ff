"""The PyTorch side of peers.py: each peer built and timed forward+backward.

Needs the `peers` extra (`pip install -e ".[peers]"`: a CPU build of torch and
lucidrains' attention packages). Inputs are peers.inputs_numpy's arrays (the
same values as ours), moved to [batch, heads, length, head_dim] where the peer
wants that layout; the loss is sum(out * cotangent) and gradients are taken
w.r.t. q, k, v only (every module parameter is frozen). Modules that wrap
their attention in projections (Linformer, Nystromformer) get identities in
place of those projections, so only the attention is measured.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F

from efficient_transformers.benchmarking import peers

HEADS, HEAD_DIM = 4, 64


class _Given(nn.Module):
  """Ignores its input and returns `value` (set before each call)."""

  def __init__(self):
    super().__init__()
    self.value = None

  def forward(self, x):  # pylint: disable=unused-argument
    return self.value


def _frozen(module: nn.Module) -> nn.Module:
  for p in module.parameters():
    p.requires_grad_(False)
  return module.eval()


def build(name: str, length: int) -> Callable:
  """fn(q, k, v) on [batch, heads, length, head_dim] tensors -> output."""
  n, h, d = length, HEADS, HEAD_DIM
  if name == "dense_chunked":
    return F.scaled_dot_product_attention
  if name == "performer":
    from performer_pytorch import FastAttention  # pylint: disable=g-import-not-at-top
    return _frozen(FastAttention(dim_heads=d, nb_features=256))
  if name.startswith("reformer_"):
    from reformer_pytorch import LSHAttention  # pylint: disable=g-import-not-at-top
    lsh = _frozen(LSHAttention(bucket_size=64, n_hashes=int(name.split("_")[1])))

    def reformer(q, k, v):  # shared QK: the peer's qk is our q; k is unused
      b = q.shape[0]
      out = lsh(q.reshape(b * h, n, d), v.reshape(b * h, n, d))[0]
      return out.reshape(b, h, n, d) + 0 * k.sum()
    return reformer
  if name in ("local", "sliding_window"):
    from local_attention import LocalAttention  # pylint: disable=g-import-not-at-top
    look = 0 if name == "local" else 1
    return _frozen(LocalAttention(window_size=128, look_backward=look, look_forward=look,
                                  autopad=True, use_rotary_pos_emb=False))
  if name == "routing":
    from routing_transformer.routing_transformer import KmeansAttention  # pylint: disable=g-import-not-at-top
    module = _frozen(KmeansAttention(num_clusters=n // 64, window_size=64, num_heads=h,
                                     head_dim=d))
    module.kmeans.initted.fill_(True)  # random means; no k-means initialisation
    return lambda q, k, v: module(q, k, v)[0]
  if name == "linear":
    from linear_attention_transformer.linear_attention_transformer import linear_attn  # pylint: disable=g-import-not-at-top
    return linear_attn
  if name == "nystromformer":
    from nystrom_attention import NystromAttention  # pylint: disable=g-import-not-at-top
    module = NystromAttention(dim=h * d, dim_head=d, heads=h, num_landmarks=256,
                              pinv_iterations=6, residual=True, residual_conv_kernel=33)
    module.to_qkv, module.to_out = nn.Identity(), nn.Identity()
    module = _frozen(module)

    def nystromformer(q, k, v):
      b = q.shape[0]
      flat = lambda x: x.transpose(1, 2).reshape(b, n, h * d)
      out = module(torch.cat([flat(q), flat(k), flat(v)], -1))
      return out.reshape(b, n, h, d).transpose(1, 2)
    return nystromformer
  if name == "sinkhorn":
    from sinkhorn_transformer.sinkhorn_transformer import SinkhornAttention  # pylint: disable=g-import-not-at-top
    return _frozen(SinkhornAttention(bucket_size=64, dim=h * d, dim_heads=d, heads=h,
                                     max_seq_len=n))
  if name == "linformer":
    from linformer import LinformerSelfAttention  # pylint: disable=g-import-not-at-top
    module = LinformerSelfAttention(dim=h * d, seq_len=n, k=256, heads=h, dim_head=d)
    module.to_q, module.to_k, module.to_out = nn.Identity(), nn.Identity(), nn.Identity()
    module.to_v = _Given()
    module = _frozen(module)

    def linformer(q, k, v):
      b = q.shape[0]
      flat = lambda x: x.transpose(1, 2).reshape(b, n, h * d)
      module.to_v.value = flat(v)
      out = module(flat(q), context=flat(k))
      return out.reshape(b, n, h, d).transpose(1, 2)
    return linformer
  raise ValueError(f"no peer for {name!r}; valid: {', '.join(peers.PAIRS)}")


def measure(name: str, length: int, repeats: int) -> dict[str, Any]:
  torch.manual_seed(0)
  fn = build(name, length)
  q, k, v, cot = (torch.from_numpy(x).transpose(1, 2).contiguous()
                  for x in peers.inputs_numpy(length))
  for x in (q, k, v):
    x.requires_grad_(True)

  def call():
    for x in (q, k, v):
      x.grad = None
    (fn(q, k, v) * cot).sum().backward()
    return q.grad, k.grad, v.grad

  result = peers.time_and_memory(call, lambda out: out, repeats)
  result["torch"] = torch.__version__
  result["threads"] = torch.get_num_threads()
  return result
