"""Parameter counts against the Transformer's (LRA's 10% rule), without memory."""

from efficient_transformers import presets
from efficient_transformers.training.model_summary import parameter_report


def test_parameter_report_ratios():
  records = parameter_report(presets.make, ["transformer", "linformer", "performer"],
                             ["image"])
  by_model = {r["model"]: r for r in records}
  assert by_model["transformer"]["ratio_to_transformer"] == 1.0
  # Performer's random features are not parameters; Linformer adds projections.
  assert by_model["performer"]["num_params"] == by_model["transformer"]["num_params"]
  assert by_model["linformer"]["num_params"] > by_model["transformer"]["num_params"]
  assert all(isinstance(r["within_10_percent"], bool) for r in records)
