"""The published numbers our runs are compared with, and each model's paper.

LRA_TABLE1: test accuracy (%) from Tay et al., "Long Range Arena", ICLR 2021,
Table 1 (the repository README's leaderboard has the same per-task numbers;
shared/reference/lra.md §1.1). Path-X: every model failed (None). Models not
in the paper have no entry. Used by the config docstrings
(scripts/write_configs.py) and by scripts/results_table.py.
"""

from __future__ import annotations

LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")

_COLUMNS = ("listops", "text", "retrieval", "image", "pathfinder")
_ROWS = {
    "transformer": (36.37, 64.27, 57.46, 42.44, 71.40),
    "local": (15.82, 52.98, 53.39, 41.46, 66.63),
    "sparse": (17.07, 63.58, 59.59, 44.24, 71.71),
    "longformer": (35.63, 62.85, 56.89, 42.22, 69.71),
    "linformer": (35.70, 53.94, 52.27, 38.56, 76.34),
    "reformer": (37.27, 56.10, 53.40, 38.07, 68.50),
    "sinkhorn": (33.67, 61.20, 53.83, 41.23, 67.45),
    "synthesizer": (36.99, 61.68, 54.67, 41.61, 69.45),
    "bigbird": (36.05, 64.02, 59.29, 40.83, 74.87),
    "linear": (16.13, 65.90, 53.09, 42.34, 75.30),
    "performer": (18.01, 65.40, 53.82, 42.77, 77.05),
}
LRA_TABLE1: dict[str, dict[str, float | None]] = {
    model: {**dict(zip(_COLUMNS, row)), "pathx": None} for model, row in _ROWS.items()}

# Model preset -> (short name as in the paper, citation).
PAPERS = {
    "transformer": ("Transformer", "Vaswani et al. 2017"),
    "local": ("Local Attention", "Liu et al. 2018; LRA's block-local baseline"),
    "sparse": ("Sparse Transformer", "Child et al. 2019"),
    "longformer": ("Longformer", "Beltagy et al. 2020"),
    "bigbird": ("BigBird", "Zaheer et al. 2020"),
    "etc": ("ETC", "Ainslie et al. 2020"),
    "image_transformer": ("Image Transformer", "Parmar et al. 2018"),
    "axial": ("Axial Transformer", "Ho et al. 2019"),
    "memory_compressed": ("Memory-Compressed Transformer", "Liu et al. 2018"),
    "linformer": ("Linformer", "Wang et al. 2020"),
    "performer": ("Performer", "Choromanski et al. 2020"),
    "linear": ("Linear Transformer", "Katharopoulos et al. 2020"),
    "synthesizer": ("Synthesizer", "Tay et al. 2020"),
    "nystromformer": ("Nystromformer", "Xiong et al. 2021"),
    "reformer": ("Reformer", "Kitaev et al. 2020"),
    "routing": ("Routing Transformer", "Roy et al. 2021"),
    "sinkhorn": ("Sinkhorn Transformer", "Tay et al. 2020"),
    "set_transformer": ("Set Transformer", "Lee et al. 2019"),
    "funnel": ("Funnel-Transformer", "Dai et al. 2020"),
    "moe": ("Switch-style Mixture-of-Experts", "Fedus et al. 2021"),
    "transformer_xl": ("Transformer-XL", "Dai et al. 2019"),
    "compressive": ("Compressive Transformer", "Rae et al. 2020"),
}


def expected(model: str, task: str) -> str:
  """The docstring line stating the published number (or its absence)."""
  if task == "pathx":
    return ("Expected test accuracy: none published; every model of the LRA paper"
            " failed Path-X (about 50%, chance).")
  value = LRA_TABLE1.get(model, {}).get(task)
  if value is None:
    return "Expected test accuracy: none published (not in the LRA paper)."
  return f"Expected test accuracy: {value:.2f} (LRA paper, Table 1)."
