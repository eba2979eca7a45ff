import jax
import ml_collections
import pytest
from flax import nnx

from efficient_transformers import models

VOCAB = 11
CONFIG = dict(attention="dense", attention_kw={}, num_layers=1, emb_dim=16,
              num_heads=2, qkv_dim=None, mlp_dim=32, dropout_rate=0.1,
              position="learned", pooling="mean")


def _build(config, head="classifier"):
  return models.build(config, head=head, vocab_size=VOCAB, num_classes=3,
                      max_length=8, rngs=nnx.Rngs(0))


@pytest.mark.slow
@pytest.mark.parametrize("head,two_inputs,shape", [
    ("classifier", False, (2, 3)),
    ("matcher", True, (2, 3)),
    ("causal_lm", False, (2, 8, VOCAB)),
    ("encoder_decoder", True, (2, 8, VOCAB)),
])
def test_build_every_head(tokens, head, two_inputs, shape):
  model = _build(ml_collections.ConfigDict(CONFIG), head)
  assert isinstance(model, models.HEADS[head])
  inputs = (tokens, tokens[::-1]) if two_inputs else (tokens,)
  assert model(*inputs, deterministic=True).shape == shape
  assert models.count_params(model) > 0
  assert not jax.tree.leaves(nnx.state(model, nnx.Not(nnx.Param)))


def test_build_reads_pooling_and_qkv_dim():
  model = _build({**CONFIG, "pooling": "cls", "qkv_dim": 8})
  assert model.encoder.pooling == "cls" and model.encoder.encoder.use_cls
  assert model.encoder.encoder.blocks[0].attention.query.kernel.shape == (16, 8)


def test_unknown_head():
  with pytest.raises(ValueError, match="regressor.*classifier, matcher"):
    _build(CONFIG, "regressor")


def test_unknown_attention():
  with pytest.raises(ValueError, match="nope.*dense"):
    _build({**CONFIG, "attention": "nope"})


def test_qkv_dim_not_divisible():
  with pytest.raises(ValueError, match="qkv_dim 9"):
    _build({**CONFIG, "qkv_dim": 9}, "causal_lm")


def test_missing_key():
  with pytest.raises(ValueError, match="num_heads"):
    _build({k: v for k, v in CONFIG.items() if k != "num_heads"})
