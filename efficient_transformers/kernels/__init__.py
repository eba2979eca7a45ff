"""Pallas kernels, each beside (and tested against) its attention/ reference.

  block_layout.py            host-side block tables from a bool pattern
  flash_tile.py              the FlashAttention-2 tile math shared by the kernels
  block_sparse_gpu.py        the GPU (Triton) forward and backward kernels
  block_sparse_tpu.py        the TPU (scalar prefetch) kernels
  block_sparse_attention.py  the custom VJP and the entry point
  aot_lowering.py            lowering the GPU kernels on a host without a GPU

kernels/ imports nothing from attention/: callers build the layouts from
`attention.pattern()` and pass them in.
"""
