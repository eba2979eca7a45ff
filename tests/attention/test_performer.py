"""`performer` (FAVOR+) in the shared contract; exact equality with the quadratic
form of the same features; error to softmax falling with the number of features;
a causal stabiliser that does not see the future; the relu kernel against a
float64 transcription of google-research's `make_fast_generalized_attention`."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_matches_reference,
                                compiled_temp_bytes, random_padding, random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention import masks
from efficient_transformers.attention.performer import (haar_orthogonal,
                                                        orthogonal_features)

# The package binds `performer` to the function; this is the module.
performer_lib = importlib.import_module("efficient_transformers.attention.performer")


def quadratic_performer(q, k, v, *, mask=None, causal=False, features=None,
                        kernel="softmax", kernel_epsilon=1e-3, normalize_data=None,
                        **unused):
  """normalize(phi(Q) phi(K)^T) V with the unstabilised feature map."""
  if normalize_data is None:
    normalize_data = kernel == "softmax"
  x_hat = lambda x: x * q.shape[-1] ** -0.25 if normalize_data else x
  if kernel == "softmax":
    phi = lambda x: jnp.exp(jnp.einsum("btnd,md->btnm", x_hat(x), features)
                            - 0.5 * jnp.sum(x_hat(x) ** 2, -1, keepdims=True))
  elif features is None:
    phi = lambda x: jax.nn.relu(x_hat(x)) + kernel_epsilon
  else:
    phi = lambda x: jax.nn.relu(
        jnp.einsum("btnd,md->btnm", x_hat(x), features)) + kernel_epsilon
  w = jnp.einsum("bqnm,bknm->bnqk", phi(q), phi(k))
  allowed = masks.allowed_pairs(q.shape[0], q.shape[1], k.shape[1], mask=mask,
                                causal=causal)
  if allowed is not None:
    w = jnp.where(allowed, w, 0.0)
  den = jnp.moveaxis(w.sum(-1), 1, 2)[..., None]
  return jnp.einsum("bnqk,bknh->bqnh", w, v) / jnp.where(den > 0, den, 1.0)


class TestPerformer(AttentionContract):
  name = "performer"
  exact = False
  limit_options = {}  # see test_converges_to_dense
  kernel = "softmax"

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"features": orthogonal_features(jax.random.key(0), 24, head_dim),
            "chunk_size": 5, "kernel": self.kernel}

  def test_converges_to_dense(self):
    """The base's limit (dense) needs m -> infinity at small norms, which
    test_error_falls_with_num_features checks; here, the exact identity with
    the quadratic form of the same features (outputs and gradients)."""
    for shape in (self._shapes()[0], self._shapes()[-1]):
      q, k, v = random_qkv(4, *shape)
      q, k = q * 0.5, k * 0.5  # keeps exp() of the unstabilised reference tame
      for causal in (False, True):
        options = self.make_options(*shape[1:], causal)
        for mask in (random_padding(4, shape[0], shape[2]),):
          check_matches_reference(
              self.bound(shape, causal),
              functools.partial(quadratic_performer, **options),
              q, k, v, mask, causal, 4, 1e-4, 1e-5)


class TestPerformerReluDeterministic(TestPerformer):
  """LRA's default "Performer": relu(x) + 1e-3, no random features."""

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"kernel": "relu", "chunk_size": 5}


class TestPerformerReluNormalized(TestPerformer):
  """The relu kernel on x d^-1/4 (the reference's normalize_data=True)."""

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"kernel": "relu", "normalize_data": True, "chunk_size": 5,
            "features": orthogonal_features(jax.random.key(0), 24, head_dim)}


def generalized_attention_float64(q, k, v, *, causal=False, features=None,
                                  normalize_data=False, kernel_epsilon=1e-3):
  """google-research performer/fast_attention/jax/fast_attention.py,
  `make_fast_generalized_attention` with its defaults (kernel_fn relu,
  kernel_epsilon 1e-3, normalize_data False, renormalize_attention True,
  numerical_stabilizer 0, features_type "deterministic", or a given projection
  for "ortho"/"iid"), written out as the quadratic form. The reference ignores
  padding (its `bias` is unused): call it on the real keys only."""
  x_hat = lambda x: x * q.shape[-1] ** -0.25 if normalize_data else x
  if features is None:
    phi = lambda x: jax.nn.relu(x_hat(x)) + kernel_epsilon
  else:
    phi = lambda x: jax.nn.relu(
        jnp.einsum("btnd,md->btnm", x_hat(x), features)) + kernel_epsilon
  w = jnp.einsum("bqnm,bknm->bnqk", phi(q), phi(k))
  if causal:  # the reference's prefix sums (unidirectional=True)
    w = jnp.where(jnp.tril(jnp.ones(w.shape[-2:], bool)), w, 0.0)
  den = jnp.moveaxis(w.sum(-1), 1, 2)[..., None]
  return jnp.einsum("bnqk,bknh->bqnh", w, v) / den


def _float64_vjp(fn, cot, *arrays):
  """Output and input gradients of fn in float64 (x64 enabled here only)."""
  with jax.enable_x64(True):
    arrays = [jnp.asarray(np.asarray(a), jnp.float64) for a in arrays]
    out, pull = jax.vjp(fn, *arrays)
    grads = pull(jnp.asarray(np.asarray(cot), jnp.float64))
    return np.asarray(out), [np.asarray(g) for g in grads]


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_features", [False, True])
@pytest.mark.parametrize("normalize_data", [None, True])
def test_relu_kernel_matches_google_research_generalized_attention(
    causal, with_features, normalize_data):
  """kernel="relu" with default options is google-research's generalised
  attention with its defaults (normalize_data False), LRA's "Performer";
  normalize_data=True is the reference's normalize_data=True. Outputs and
  gradients against float64, no padding (the reference ignores it). Measured
  max abs error: 4.2e-7 (outputs), 7.9e-6 (gradients, |grad| up to 9.4). Before
  the option, the default scaled by d^-1/4: off by up to 2.7 (outputs) and 9.8
  (gradients) here."""
  for seed, shape in enumerate([(2, 16, 16, 2, 8), (1, 37, 37, 3, 4),
                                (1, 33, 33, 2, 64)]):
    q, k, v = random_qkv(seed, *shape)
    cot = np.random.default_rng(seed).normal(size=q.shape).astype(np.float32)
    features = (orthogonal_features(jax.random.key(seed), 24, shape[-1])
                if with_features else None)
    fn = functools.partial(attention.performer, causal=causal, kernel="relu",
                           features=features, normalize_data=normalize_data,
                           chunk_size=5)
    out, pull = jax.vjp(fn, q, k, v)
    grads = pull(jnp.asarray(cot))
    ref = functools.partial(generalized_attention_float64, causal=causal,
                            normalize_data=bool(normalize_data))
    ref_out, ref_grads = _float64_vjp(
        lambda q, k, v, *f: ref(q, k, v, features=f[0] if f else None), cot,
        q, k, v, *([features] if with_features else []))
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    for name, a, b in zip("qkv", grads, ref_grads):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5, err_msg=f"d{name}")


def test_relu_kernel_padding_drops_keys():
  """The one deliberate difference to the reference: padded keys are left
  out (phi(k) = 0), i.e. ours with padding is the reference on the real keys."""
  q, k, v = random_qkv(11, 2, 20, 20, 2, 8)
  lengths = (13, 20)
  mask = jnp.arange(20)[None] < jnp.array(lengths)[:, None]
  out = attention.performer(q, k, v, mask=mask, kernel="relu")
  for b, n in enumerate(lengths):
    with jax.enable_x64(True):
      ref = generalized_attention_float64(
          *(jnp.asarray(np.asarray(x), jnp.float64)
            for x in (q[b:b + 1], k[b:b + 1, :n], v[b:b + 1, :n])))
      ref = np.asarray(ref)
    np.testing.assert_allclose(out[b:b + 1], ref, rtol=1e-5, atol=1e-6)


def test_normalize_data_default_per_kernel():
  """None means the reference's choice per kernel: softmax normalises (the
  estimator of softmax(q.k / sqrt(d)) needs it), relu does not."""
  q, k, v = random_qkv(12, 1, 9, 9, 2, 16)
  features = orthogonal_features(jax.random.key(3), 32, 16)
  for kernel, default in (("softmax", True), ("relu", False)):
    fn = functools.partial(attention.performer, q, k, v, kernel=kernel,
                           features=features)
    np.testing.assert_array_equal(fn(), fn(normalize_data=default))
    assert not np.allclose(fn(), fn(normalize_data=not default))


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_error_falls_with_num_features(causal):
  """Mean absolute error to softmax attention over seeds, at small norms."""
  errors = []
  for num_features in (64, 256, 1024):
    err = []
    for seed in range(3):
      q, k, v = random_qkv(seed, 1, 64, 64, 2, 16)
      q, k = 0.25 * q, 0.25 * k
      out = attention.performer(q, k, v, causal=causal, num_features=num_features,
                                rng=jax.random.key(seed))
      err.append(float(jnp.abs(out - attention.dense(q, k, v, causal=causal)).mean()))
    errors.append(np.mean(err))
  assert errors[0] > errors[1] > errors[2], errors
  assert errors[2] < 0.4 * errors[0], errors  # ~1/sqrt(m): 0.25


def test_causal_known_answer():
  """q = k = 1 (one dimension), v = e_0: the causal mean [1, 1/2, 1/3]."""
  q = k = jnp.ones((1, 3, 1, 1))
  v = jnp.eye(3)[None, :, None, :]
  v = jnp.asarray(v[..., :1])
  out = attention.performer(q, k, v, causal=True, num_features=64,
                            rng=jax.random.key(0))
  np.testing.assert_allclose(out[0, :, 0, 0], [1, 1 / 2, 1 / 3], rtol=1e-5)


def test_causal_stabiliser_ignores_the_future():
  """A huge future key (which would underflow every earlier feature under a
  global maximum) changes no earlier output, not even by rounding."""
  q, k, v = random_qkv(3, 1, 12, 12, 1, 8)
  k_big = k.at[:, 8].set(30.0)
  options = dict(causal=True, num_features=32, rng=jax.random.key(1), chunk_size=4)
  a = attention.performer(q, k, v, **options)
  b = attention.performer(q, k_big, v, **options)
  np.testing.assert_array_equal(np.asarray(a[:, :8]), np.asarray(b[:, :8]))
  c = attention.performer(q[:, :8], k[:, :8], v[:, :8], **options)
  np.testing.assert_allclose(a[:, :8], c, rtol=1e-6, atol=1e-6)


def test_orthogonal_features():
  w = np.asarray(orthogonal_features(jax.random.key(0), 20, 8))
  assert w.shape == (20, 8)
  unit = w / np.linalg.norm(w, axis=1, keepdims=True)
  np.testing.assert_allclose(unit[:8] @ unit[:8].T, np.eye(8), atol=1e-5)
  w1 = orthogonal_features(jax.random.key(0), 20, 8, scaling=1)
  np.testing.assert_allclose(np.linalg.norm(w1, axis=1), np.sqrt(8), rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_haar_orthogonal_is_qr_with_positive_diagonal(seed):
  """The Householder QR equals LAPACK's Q with column signs from diag(R)."""
  gaussian = np.random.default_rng(seed).normal(size=(16, 16)).astype(np.float32)
  q, r = np.linalg.qr(gaussian.astype(np.float64))
  expected = q * np.sign(np.diagonal(r))[None, :]
  got = np.asarray(haar_orthogonal(jnp.asarray(gaussian)))
  np.testing.assert_allclose(got, expected, atol=2e-5)
  np.testing.assert_allclose(got.T @ got, np.eye(16), atol=2e-5)


def test_feature_draw_calls_no_lapack():
  """jaxlib 0.10's CPU LAPACK kernels can deadlock when a program runs two
  side by side (one per layer); the draw must stay in plain XLA ops."""
  hlo = jax.jit(orthogonal_features, static_argnums=(1, 2)).lower(
      jax.random.key(0), 24, 8).as_text()
  assert "custom_call" not in hlo and "lapack" not in hlo.lower()


def test_option_errors():
  q, k, v = random_qkv(0, 1, 4, 4, 2, 8)
  with pytest.raises(ValueError, match="needs `features` or `rng`"):
    attention.performer(q, k, v)
  with pytest.raises(ValueError, match="unknown kernel"):
    attention.performer(q, k, v, kernel="cos", rng=jax.random.key(0))
  with pytest.raises(ValueError, match="features must be"):
    attention.performer(q, k, v, features=jnp.ones((4, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_memory_is_linear(causal):
  f = functools.partial(attention.performer, causal=causal, num_features=64,
                        rng=jax.random.key(0))
  small, large = (compiled_temp_bytes(f, n, heads=2, head_dim=32) for n in (512, 2048))
  assert large <= 4.5 * small, (small, large)


@pytest.mark.slow
@pytest.mark.parametrize("kernel,normalize_data",
                         [("softmax", None), ("relu", None), ("relu", True)])
def test_recurrent_steps_equal_causal_prefix_sums(kernel, normalize_data):
  """Token-by-token decoding (with its running stabiliser) == the chunked
  causal form, outputs and gradients."""
  q, k, v = random_qkv(5, 2, 11, 11, 2, 8)
  mask = random_padding(5, 2, 11)
  features = orthogonal_features(jax.random.key(2), 12, 8)

  def recurrent(q, k, v):
    state = performer_lib.init_state(2, 2, 12, 8)
    step = lambda s, x: performer_lib.recurrent_step(
        s, *x[:3], key_mask=x[3], features=features, kernel=kernel,
        normalize_data=normalize_data)
    xs = tuple(jnp.moveaxis(a, 1, 0) for a in (q, k, v, mask))
    return jnp.moveaxis(jax.lax.scan(step, state, xs)[1], 0, 1)

  parallel = functools.partial(attention.performer, mask=mask, causal=True,
                               features=features, kernel=kernel,
                               normalize_data=normalize_data, chunk_size=4)
  cot = jnp.asarray(np.random.default_rng(0).normal(size=q.shape), jnp.float32)
  a_out, a_pull = jax.vjp(parallel, q, k, v)
  b_out, b_pull = jax.vjp(recurrent, q, k, v)
  for a, b in zip((a_out,) + a_pull(cot), (b_out,) + b_pull(cot)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
