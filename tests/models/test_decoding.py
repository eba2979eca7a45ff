"""Incremental decoding: token by token equals the parallel causal forward.

Attention level: scanning `attention.DECODERS[name].step` over a sequence
equals fn(q, k, v, mask=..., causal=True). Model level: a 2-layer CausalLM
decoded token by token (models/decoding.py) gives the parallel forward's logits
at every position, and greedy `generate` picks their argmax.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers import attention
from efficient_transformers.attention.performer import orthogonal_features
from efficient_transformers.models import CausalLM, decoding

VOCAB = 11
B, L, N, H = 2, 10, 2, 4

ATTENTION_CASES = [
    ("dense", {}),
    ("local", {"block_size": 3}),
    ("local", {"block_size": 64}),  # one block longer than the sequence
    ("sliding_window", {"window": 2}),
    ("sliding_window", {"window": 2, "dilation": 3}),
    ("sliding_window", {"window": 0}),
    ("linear", {}),
    ("performer", {"features": orthogonal_features(jax.random.key(3), 8, H)}),
    ("performer", {"kernel": "relu"}),
]


def _decode_sequence(name, q, k, v, mask, options):
  """Runs the decoder over all positions: [B, L, N, H] -> [B, L, N, H]."""
  dec = attention.decoder(name)

  @jax.jit
  def run(q, k, v, mask):
    state = dec.init_state(B, N, H, L, q.dtype, **options)

    def step(state, x):
      q_t, k_t, v_t, mask_t = x
      out, state = dec.step(state, q_t, k_t, v_t, key_mask=mask_t, **options)
      return state, out

    xs = tuple(jnp.moveaxis(a, 1, 0) for a in (q, k, v)) + (mask.T,)
    _, out = jax.lax.scan(step, state, xs)
    return jnp.moveaxis(out, 0, 1)

  return run(q, k, v, mask)


@pytest.mark.slow
@pytest.mark.parametrize("name,options", ATTENTION_CASES, ids=[
    "dense", "local-3", "local-64", "sliding_window-2", "sliding_window-2-dilation-3",
    "sliding_window-0", "linear", "performer-softmax", "performer-relu"])
def test_decoder_steps_equal_parallel_causal(name, options):
  kq, kk, kv = jax.random.split(jax.random.key(0), 3)
  q, k, v = (jax.random.normal(key, (B, L, N, H)) for key in (kq, kk, kv))
  # Padding anywhere, including the first key (a row with nothing to attend).
  mask = jnp.array([[True] * L, [False, True, True, False] + [True] * (L - 4)])
  want = attention.get(name)(q, k, v, mask=mask, causal=True, **options)
  got = _decode_sequence(name, q, k, v, mask, options)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_decoder_errors_name_the_decodable_mechanisms():
  with pytest.raises(ValueError, match="decodable: dense, linear, local, performer, sliding_window"):
    attention.decoder("bigbird")
  with pytest.raises(ValueError, match="unknown attention"):
    attention.decoder("no_such_attention")
  with pytest.raises(ValueError, match="pair_mask"):
    attention.decoder("dense").init_state(1, 1, 4, 8, jnp.float32,
                                          pair_mask=np.ones((1, 8, 8), bool))


MODEL_CASES = [
    ("dense", {}, "sinusoidal"),
    ("local", {"block_size": 3}, "sinusoidal"),
    ("sliding_window", {"window": 2, "dilation": 2}, "sinusoidal"),
    ("linear", {}, "learned"),
    ("performer", {"num_features": 8}, "sinusoidal"),
]


def _lm(name, options, position="sinusoidal", max_length=16):
  return CausalLM(VOCAB, max_length, rngs=nnx.Rngs(0), num_layers=2, emb_dim=16,
                  num_heads=2, mlp_dim=32, attention=name, attention_kw=options,
                  dropout_rate=0.1, position=position)


TOKENS = jnp.array([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3],
                    [5, 3, 5, 8, 9, 7, 2, 0, 0, 0]], jnp.int32)
PROMPT = jnp.array([[3, 1, 4, 1], [5, 3, 5, 0]], jnp.int32)  # lengths 4 and 3


@pytest.mark.slow
@pytest.mark.parametrize("name,options,position", MODEL_CASES,
                         ids=[c[0] for c in MODEL_CASES])
def test_token_by_token_equals_parallel_and_greedy_is_argmax(name, options, position):
  model = _lm(name, options, position)
  # Teacher forcing, with padding (id 0) in the second row.
  np.testing.assert_allclose(decoding.decode_logits(model, TOKENS),
                             model(TOKENS, deterministic=True), atol=2e-5)
  # Greedy generation (same compiled scan: 4 + 7 - 1 = 10 steps).
  out, logits = decoding.generate(model, PROMPT, num_tokens=7, return_logits=True)
  assert out.shape == (B, 11)
  parallel = model(out[:, :-1], deterministic=True)
  np.testing.assert_allclose(logits, parallel, atol=2e-5)
  lengths = [4, 3]
  for b, length in enumerate(lengths):
    np.testing.assert_array_equal(out[b, :length], PROMPT[b, :length])
    # Every generated token is the argmax over real ids (0 is padding).
    want = np.argmax(np.asarray(parallel[b, length - 1:, 1:]), -1) + 1
    np.testing.assert_array_equal(out[b, length:], want)


@pytest.mark.slow
def test_generate_is_deterministic_and_samples_from_top_k():
  model = _lm("dense", {})
  greedy = model.generate(PROMPT, num_tokens=7)
  np.testing.assert_array_equal(greedy, model.generate(PROMPT, num_tokens=7))
  np.testing.assert_array_equal(greedy, decoding.generate(model, PROMPT, num_tokens=7))
  key = jax.random.key(7)
  sample = lambda: model.generate(PROMPT, num_tokens=7, rng=key, temperature=1.0, top_k=2)
  sampled = sample()
  np.testing.assert_array_equal(sampled, sample())
  assert not np.array_equal(sampled, greedy)
  logits = np.asarray(model(sampled[:, :-1], deterministic=True))[..., 1:]
  top2 = np.argsort(logits, -1)[..., -2:] + 1
  for b, length in enumerate([4, 3]):
    for t in range(length, sampled.shape[1]):
      assert sampled[b, t] in top2[b, t - 1]


def test_generate_errors():
  with pytest.raises(ValueError, match="layer 0: attention 'strided' has no incremental decoder"):
    _lm("strided", {"stride": 2}).generate(PROMPT, num_tokens=2)
  moe = CausalLM(VOCAB, 8, rngs=nnx.Rngs(0), num_layers=2, emb_dim=16, num_heads=2,
                 mlp_dim=32, attention="dense", moe={"num_experts": 2})
  with pytest.raises(ValueError, match=r"Mixture-of-Experts FFN \(layer 1\)"):
    moe.generate(PROMPT, num_tokens=2)
  model = _lm("dense", {}, max_length=8)
  with pytest.raises(ValueError, match="left padding"):
    model.generate(jnp.array([[0, 3, 4]]), num_tokens=2)
  with pytest.raises(ValueError, match="max_length 8"):
    model.generate(PROMPT, num_tokens=5)
  with pytest.raises(ValueError, match="needs rng"):
    model.generate(PROMPT, num_tokens=2, temperature=0.5)
