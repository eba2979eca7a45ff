"""Lowering the Pallas GPU kernels ahead of time on a host without a GPU.

The Triton lowering asks which GPU it targets (compute capability). jax 0.10
and 0.11 fall back to a default when the host has none; from jax 0.12 it
raises "No supported GPU devices found" unless an abstract device is named in
the context. `for_gpu` names one, and works the same on every supported jax
(>= 0.10.2), so tests and users can check that the kernels lower for a GPU
from a CPU-only machine:

    with aot_lowering.for_gpu():
      text = jax.jit(f).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()
"""

from __future__ import annotations

import contextlib

import jax


@contextlib.contextmanager
def for_gpu(device_kind: str = "NVIDIA H200"):
  """Lowerings inside target the GPU `device_kind` (as `jax.Device.device_kind`)."""
  device = jax.sharding.AbstractDevice(device_kind=device_kind, num_cores=None,
                                       platform="gpu")
  with jax.sharding.use_abstract_mesh(
      jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)):
    yield
