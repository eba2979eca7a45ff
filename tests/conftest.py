"""Test-wide settings: CPU only, so tests never depend on an accelerator."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
