"""The attention layer owns memory-compressed attention's convolution weights."""

import jax
import numpy as np
from flax import nnx

from efficient_transformers import attention
from efficient_transformers.models.attention_layer import AttentionLayer


def test_layer_owns_and_passes_the_compression_weights():
  layer = AttentionLayer(16, 2, attention="memory_compressed",
                         attention_kw={"compression": 2}, rngs=nnx.Rngs(0))
  assert layer.mechanism.compress_k[...].shape == (2, 2, 8, 8)
  x = jax.random.normal(jax.random.key(0), (2, 8, 16))
  q, k, v = ((x @ p.kernel[...]).reshape(2, 8, 2, 8)
             for p in (layer.query, layer.key, layer.value))
  want = attention.memory_compressed(
      q, k, v, causal=True, compression=2,
      compress_k=layer.mechanism.compress_k[...],
      compress_v=layer.mechanism.compress_v[...])
  np.testing.assert_allclose(layer(x, causal=True),
                             want.reshape(2, 8, 16) @ layer.out.kernel[...],
                             atol=1e-5)
  grads = nnx.grad(lambda m: m(x).sum())(layer)
  assert np.abs(np.asarray(grads.mechanism.compress_k[...])).max() > 0
