"""Speed and memory benchmarks behind scripts/benchmark.py.

  measure.py  timing (warm-up, repeats, median, block_until_ready), memory
              (device peak or compiled analysis), OOM as data, matmul FLOP/s
  kernel.py   the attention function alone: variants, options, FLOP counts
  train.py    a training step of LRA's text model for every preset
  report.py   ratios to the baseline, fitted exponents, markdown, plots
"""
