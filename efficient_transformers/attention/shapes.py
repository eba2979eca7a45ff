"""Shape checks for the attention contract: q [B, Tq, N, H], k/v [B, Tk, N, H]."""

from __future__ import annotations


def check_qkv(q, k, v) -> None:
  """Raises ValueError unless q, k, v follow the BTNH attention contract."""
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(
        "q, k, v must be [batch, length, heads, head_dim]; got shapes"
        f" {q.shape}, {k.shape}, {v.shape}")
  if k.shape[:3] != v.shape[:3]:
    raise ValueError(f"k {k.shape} and v {v.shape} differ in batch/length/heads")
  if (q.shape[0], q.shape[2], q.shape[3]) != (k.shape[0], k.shape[2], k.shape[3]):
    raise ValueError(
        f"q {q.shape} and k {k.shape} must share batch, heads and head_dim")
