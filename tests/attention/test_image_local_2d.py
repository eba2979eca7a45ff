"""`image_local_2d` (Image Transformer 2-D local attention) in the shared base."""

import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, random_qkv
from efficient_transformers import attention


class TestImageLocal2d(AttentionContract):
  name = "image_local_2d"
  cross_lengths = False
  shapes = [(2, 16, 16, 2, 8), (1, 24, 24, 3, 4)]  # 4x4 and 4x6 images

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    width = {16: 4, 24: 6}.get(q_len, 32)  # memory check: n/32 rows of 32
    # Blocks of 2x3 do not divide a width of 4; a flange of 2 columns is not a
    # multiple of 3: both ragged cases are exercised.
    return {"shape": (q_len // width, width), "query_shape": (2, 3),
            "memory_flange": (1, 2)}


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("query_shape", [(2, 3), (4, 6)])
def test_flange_covering_the_image_equals_dense(causal, query_shape):
  q, k, v = random_qkv(0, 2, 24, 24, 2, 4)
  out = attention.image_local_2d(q, k, v, causal=causal, shape=(4, 6),
                                 query_shape=query_shape, memory_flange=(4, 6))
  np.testing.assert_allclose(out, attention.dense(q, k, v, causal=causal),
                             rtol=1e-5, atol=1e-5)


def test_pattern_memory_region():
  # 4x6 image, query block (2, 3), flange (1, 1): block (1, 1) covers rows
  # 2-3, columns 3-5; its memory is rows 1-3 (1-4 clipped), columns 2-5.
  pairs = attention.pattern("image_local_2d", 24, 24, shape=(4, 6),
                            query_shape=(2, 3), memory_flange=(1, 1))[0]
  seen = pairs[2 * 6 + 4].reshape(4, 6)
  want = np.zeros((4, 6), bool)
  want[1:4, 2:6] = True
  np.testing.assert_array_equal(seen, want)
  causal = attention.pattern("image_local_2d", 24, 24, causal=True, shape=(4, 6),
                             query_shape=(2, 3), memory_flange=(1, 1))[0]
  want[2, 5] = want[3] = False  # raster order: after (2, 4)
  np.testing.assert_array_equal(causal[2 * 6 + 4].reshape(4, 6), want)


def test_rejects_length_not_matching_shape():
  q, k, v = random_qkv(0, 1, 12, 12, 1, 4)
  with pytest.raises(ValueError, match="height \\* width"):
    attention.image_local_2d(q, k, v, shape=(3, 5))
  with pytest.raises(ValueError, match="shape"):
    attention.image_local_2d(q, k, v)
