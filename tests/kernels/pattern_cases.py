"""The fixed-pattern cases the kernel tests share: (name, length, options, causal values)."""

# Every fixed pattern, small options; L = 37 or 40 (ragged last blocks).
PATTERN_CASES = [
    ("dense", 37, {}, (False, True)),
    ("local", 37, {"block_size": 5}, (False, True)),
    ("sliding_window", 37, {"window": 3, "dilation": 2}, (False, True)),
    ("longformer", 37, {"window": 3, "num_global": 2}, (False,)),
    ("strided", 37, {"stride": 6, "pattern": "fixed", "num_summary": 2}, (False, True)),
    ("strided", 37, {"stride": 6, "pattern": "strided", "heads": "split",
                     "num_heads": 3}, (False, True)),
    ("bigbird", 37, {"block_size": 4, "num_random_blocks": 2, "rng": 3,
                     "heads": 2}, (False,)),
    ("etc", 37, {"num_global": 2, "local_radius": 5}, (False,)),
    ("image_local_1d", 37, {"query_block_size": 8, "memory_flange": 4}, (False, True)),
    ("image_local_2d", 40, {"shape": (5, 8), "query_shape": (2, 4),
                            "memory_flange": (1, 2)}, (False, True)),
    ("axial", 40, {"shape": (5, 8), "axis": 0}, (False, True)),
]
