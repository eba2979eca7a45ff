"""The shared attention test base: every registered mechanism runs these checks.

A mechanism joins with a few lines (see test_dense.py):

    class TestLocal(AttentionContract):
      name = "local"
      options = {"block_size": 4}
      cross_lengths = False     # needs q_len == kv_len

and declares what it supports. The checks are plain functions (`check_*`) so
that tests/attention/test_contract_checks.py can show that each of them fails
on a deliberately broken mechanism.

What is checked (docs/design.md, "Tests"):
- output shape and dtype (float32, bfloat16); jit equals eager;
- padding invariance: changing padded keys/values changes nothing;
- causality by gradients: no gradient reaches keys/values in the future;
- fully masked rows give finite outputs (zeros for exact mechanisms) and
  finite gradients;
- exact mechanisms equal `dense(pair_mask=attention.pattern(name, ...))`,
  outputs and gradients, with and without causal masking and padding;
- approximate mechanisms converge to dense at `limit_options`;
- mechanisms that are not quadratic by design do not build an
  O(q_len * kv_len) array: compiled temporary memory grows sub-quadratically.
Inputs are random (normal, not zeros) and drawn fresh from hypothesis seeds.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from efficient_transformers import attention
from efficient_transformers.attention import masks

# Examples per property test: the loaded hypothesis profile's (tests/conftest.py:
# 4, or 1 in the quick tier `pytest -m "not slow"`).
SETTINGS = hypothesis.settings(deadline=None, derandomize=False,
                               suppress_health_check=list(hypothesis.HealthCheck))
SEEDS = st.integers(0, 2**31 - 1)


# ----------------------------------------------------------------------------
# Inputs.


def random_qkv(seed, batch, q_len, kv_len, heads, head_dim, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(batch, q_len, heads, head_dim))
  k = rng.normal(size=(batch, kv_len, heads, head_dim))
  v = rng.normal(size=(batch, kv_len, heads, head_dim))
  return tuple(jnp.asarray(x, dtype) for x in (q, k, v))


def random_padding(seed, batch, kv_len):
  """bool [batch, kv_len]: a random-length real prefix (>= 1), the rest padded."""
  rng = np.random.default_rng(seed + 1)
  lengths = rng.integers(1, kv_len + 1, size=batch)
  lengths[0] = max(1, kv_len // 2)  # at least one row is really padded
  return jnp.asarray(np.arange(kv_len)[None] < lengths[:, None])


def _vjp(fn, q, k, v, cotangent):
  out, pullback = jax.vjp(fn, q, k, v)
  return out, pullback(cotangent)


# ----------------------------------------------------------------------------
# Checks, usable on any function with the attention signature.


def check_shape_and_dtype(fn, q, k, v):
  out = fn(q, k, v)
  assert out.shape == q.shape[:3] + (v.shape[3],), out.shape
  assert out.dtype == q.dtype, (out.dtype, q.dtype)
  assert bool(jnp.all(jnp.isfinite(out.astype(jnp.float32))))


def check_jit_matches_eager(fn, q, k, v, mask, causal):
  eager = fn(q, k, v, mask=mask, causal=causal)
  jitted = jax.jit(functools.partial(fn, causal=causal))(q, k, v, mask=mask)
  np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-5)


def check_padding_invariance(fn, q, k, v, mask, causal, seed):
  """Replacing padded keys and values by other random values changes nothing."""
  noise = np.random.default_rng(seed + 2).normal(size=k.shape) * 10
  pad = ~mask[:, :, None, None]
  k2 = jnp.where(pad, k + noise, k)
  v2 = jnp.where(pad, v - noise, v)
  out1 = fn(q, k, v, mask=mask, causal=causal)
  out2 = fn(q, k2, v2, mask=mask, causal=causal)
  np.testing.assert_allclose(out1, out2, rtol=1e-5, atol=1e-5)


def check_causal_gradients(fn, q, k, v, rows=None):
  """Output row i gets no gradient from keys/values at j > i (+ kv_len - q_len),
  and does get some from the past (so the check can fail)."""
  q_len, kv_len = q.shape[1], k.shape[1]
  allowed = masks.causal_pairs(q_len, kv_len)
  rows = rows if rows is not None else sorted({0, q_len // 2, q_len - 1})
  f = functools.partial(fn, causal=True)
  for i in rows:
    cot = jnp.zeros(q.shape[:3] + (v.shape[3],), q.dtype).at[:, i].set(1.0)
    _, (_, dk, dv) = _vjp(f, q, k, v, cot)
    future = ~allowed[i]
    for name, grad in (("key", dk), ("value", dv)):
      leak = np.abs(np.asarray(grad, np.float32))[:, future].max(initial=0.0)
      assert leak == 0.0, f"row {i} receives gradient {leak} from future {name}s"
    past = np.abs(np.asarray(dv, np.float32))[:, allowed[i]].max(initial=0.0)
    assert past > 0, f"row {i} receives no gradient from any allowed value"


def check_fully_masked_rows(fn, q, k, v, causal, exact):
  """A batch row whose keys are all padding: finite outputs and gradients."""
  mask = jnp.ones(k.shape[:2], bool).at[0].set(False)
  f = functools.partial(fn, mask=mask, causal=causal)
  out, grads = _vjp(f, q, k, v, jnp.ones(q.shape[:3] + (v.shape[3],), q.dtype))
  assert bool(jnp.all(jnp.isfinite(out))), "NaN/inf output for a fully masked row"
  for g in grads:
    assert bool(jnp.all(jnp.isfinite(g))), "NaN/inf gradient for a fully masked row"
  if exact:
    np.testing.assert_array_equal(np.asarray(out[0]), 0.0)


def check_matches_reference(fn, reference, q, k, v, mask, causal, seed,
                            rtol, atol):
  """Outputs and gradients (w.r.t. q, k, v) of fn equal those of reference."""
  cot = jnp.asarray(np.random.default_rng(seed + 3).normal(
      size=q.shape[:3] + (v.shape[3],)), q.dtype)
  f = functools.partial(fn, mask=mask, causal=causal)
  g = functools.partial(reference, mask=mask, causal=causal)
  out, grads = _vjp(f, q, k, v, cot)
  ref_out, ref_grads = _vjp(g, q, k, v, cot)
  np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol,
                             err_msg="outputs differ from the reference")
  for name, a, b in zip("qkv", grads, ref_grads):
    np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10,
                               err_msg=f"d{name} differs from the reference")


def compiled_temp_bytes(fn, length, heads=1, head_dim=16):
  spec = jax.ShapeDtypeStruct((1, length, heads, head_dim), jnp.float32)
  loss = lambda q, k, v: fn(q, k, v).sum()
  grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  return grad.lower(spec, spec, spec).compile().memory_analysis().temp_size_in_bytes


def check_subquadratic_memory(make_fn, length=512, factor=4):
  """Forward+backward temporary memory grows by less than factor**2 / 2 when
  the length grows by `factor` (quadratic growth would be factor**2).

  make_fn(length) returns the attention function for that length.
  """
  small = compiled_temp_bytes(make_fn(length), length)
  large = compiled_temp_bytes(make_fn(length * factor), length * factor)
  ratio = large / max(small, 1)
  assert ratio < factor**2 / 2, (
      f"temporary memory grows {ratio:.1f}x for a {factor}x longer sequence"
      f" ({small} -> {large} bytes): an O(L^2) array is being built")


# ----------------------------------------------------------------------------
# The base class.


class AttentionContract:
  """Subclass as `Test<Mechanism>` and declare what the mechanism supports."""

  name: str = ""
  options: dict[str, Any] = {}
  exact: bool = True  # equals dense with `pattern(name, ...)` as pair_mask
  supports_causal: bool = True
  supports_padding: bool = True
  cross_lengths: bool = True  # accepts q_len != kv_len
  quadratic_by_design: bool = False  # exempt from the memory-scaling check
  limit_options: dict[str, Any] | None = None  # approximate: converges here
  limit_tolerance: float = 1e-2
  # (batch, q_len, kv_len, heads, head_dim); lengths not multiples of 8 on purpose.
  shapes = [(2, 16, 16, 2, 8), (1, 37, 37, 3, 4)]
  rtol, atol = 2e-5, 2e-5

  def make_options(self, q_len, kv_len, heads, head_dim, causal) -> dict:
    """Options for a call; override when they are arrays sized by the inputs."""
    del q_len, kv_len, heads, head_dim, causal
    return dict(self.options)

  # -- helpers ---------------------------------------------------------------

  def _shapes(self):
    shapes = list(self.shapes)
    if self.cross_lengths:
      shapes.append((2, 12, 20, 2, 8))
    return shapes

  def bound(self, shape, causal=False, options=None) -> Callable:
    _, q_len, kv_len, heads, head_dim = shape
    if options is None:
      options = self.make_options(q_len, kv_len, heads, head_dim, causal)
    return functools.partial(attention.get(self.name), **options)

  def reference(self, shape, causal) -> Callable:
    _, q_len, kv_len, heads, head_dim = shape
    options = self.make_options(q_len, kv_len, heads, head_dim, causal)
    pairs = attention.pattern(self.name, q_len, kv_len, causal=causal, **options)
    return functools.partial(attention.dense, pair_mask=pairs)

  def _causal_values(self):
    return [False, True] if self.supports_causal else [False]

  # -- tests -----------------------------------------------------------------

  def test_registered(self):
    assert attention.get(self.name) is attention.REGISTRY[self.name]

  @pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
  def test_shape_and_dtype(self, dtype):
    for shape in self._shapes():
      check_shape_and_dtype(self.bound(shape), *random_qkv(0, *shape, dtype=dtype))

  def test_jit_matches_eager(self):
    shape = self._shapes()[0]
    q, k, v = random_qkv(1, *shape)
    mask = random_padding(1, shape[0], shape[2]) if self.supports_padding else None
    for causal in self._causal_values():
      check_jit_matches_eager(self.bound(shape, causal), q, k, v, mask, causal)

  @hypothesis.given(seed=SEEDS)
  @SETTINGS
  def test_padding_invariance(self, seed):
    shape = self._shapes()[seed % len(self._shapes())]
    q, k, v = random_qkv(seed, *shape)
    mask = random_padding(seed, shape[0], shape[2])
    if not self.supports_padding:
      with pytest.raises(ValueError):
        self.bound(shape)(q, k, v, mask=mask)
      return
    for causal in self._causal_values():
      check_padding_invariance(self.bound(shape, causal), q, k, v, mask, causal, seed)

  @hypothesis.given(seed=SEEDS)
  @SETTINGS
  def test_causal_gradients(self, seed):
    shape = self._shapes()[seed % len(self._shapes())]
    q, k, v = random_qkv(seed, *shape)
    if not self.supports_causal:
      with pytest.raises(ValueError):
        self.bound(shape, causal=True)(q, k, v, causal=True)
      return
    check_causal_gradients(self.bound(shape, causal=True), q, k, v)

  def test_fully_masked_rows(self):
    if not self.supports_padding:
      pytest.skip(f"{self.name} takes no padding mask")
    for shape in self._shapes():
      q, k, v = random_qkv(2, *shape)
      for causal in self._causal_values():
        check_fully_masked_rows(self.bound(shape, causal), q, k, v, causal, self.exact)

  @hypothesis.given(seed=SEEDS)
  @SETTINGS
  def test_matches_dense_with_pattern(self, seed):
    if not self.exact:
      pytest.skip(f"{self.name} is approximate: see test_converges_to_dense")
    shape = self._shapes()[seed % len(self._shapes())]
    q, k, v = random_qkv(seed, *shape)
    masks_ = [None] + ([random_padding(seed, shape[0], shape[2])]
                       if self.supports_padding else [])
    for causal in self._causal_values():
      for mask in masks_:
        check_matches_reference(self.bound(shape, causal), self.reference(shape, causal),
                                q, k, v, mask, causal, seed, self.rtol, self.atol)

  @pytest.mark.slow
  def test_converges_to_dense(self):
    if self.exact:
      pytest.skip(f"{self.name} is exact: see test_matches_dense_with_pattern")
    assert self.limit_options is not None, (
        f"approximate mechanism {self.name} must declare limit_options")
    shape = self._shapes()[0]
    q, k, v = random_qkv(4, *shape)
    for causal in self._causal_values():
      check_matches_reference(
          self.bound(shape, causal, self.limit_options),
          functools.partial(attention.dense), q, k, v, None, causal, 4,
          self.limit_tolerance, self.limit_tolerance)

  @pytest.mark.slow
  def test_memory_is_subquadratic(self):
    if self.quadratic_by_design:
      pytest.skip(f"{self.name} is quadratic by design")
    check_subquadratic_memory(lambda n: self.bound((1, n, n, 1, 16)))
