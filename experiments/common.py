"""What the binaries share: flags, set-up, the CPU split, the XLA cache.

Each binary is `common.main(work, cpu_split)`: --config and --workdir are
parsed here, the process is set up (quiet orbax logs, persistent XLA cache,
the CPU split the config asks for), then `work(config, workdir)` runs and
its outcome becomes the exit status:

  0    the run completed;
  2    bad input (`errors.UserError`: a config value, data, genotype,
       batch size, workdir): one line on stderr, no traceback (--traceback
       shows it); nothing was run;
  3    a non-finite loss or gradient stopped the run; the last good
       checkpoint, if any, is kept;
  130  interrupted by Ctrl-C, 143 by SIGTERM: a checkpoint was saved first,
       and re-running the same command resumes;
  1    anything else (a bug: the traceback is printed).
"""

import ast
import logging as std_logging
import os
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from nasjax import errors
from nasjax import loop
from nasjax import parallel

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3
EXIT_CTRL_C = 130
EXIT_SIGTERM = 143

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file and variant: experiments/configs/FILE.py:ARG.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Output directory; re-running with it resumes.')
_TRACEBACK = flags.DEFINE_bool(
    'traceback', False, 'Print the traceback of input errors too (they are '
    'reported in one line by default).')


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO chatter (dozens of lines per checkpoint)."""

  def filter(self, record):
    return (record.levelno >= std_logging.WARNING or
            'orbax' not in record.pathname)


def cpu_devices(batch_sizes, cores: int | None = None) -> int:
  """The most CPU devices (<= cores) that divide every batch size."""
  cores = cores or os.cpu_count() or 1
  return max(d for d in range(1, cores + 1)
             if all(b % d == 0 for b in batch_sizes))


def split_cpu(requested: int, batch_sizes) -> None:
  """Splits XLA's CPU platform into several devices (data-parallel on CPU).

  One XLA:CPU device left cores idle in the memory-bound steps of a 32x32
  search on the 2-core machines of the earlier measurements: one device per
  core, with the batch sharded over them, ran the same step
  (tests/parallel_test.py) 1.2-1.4x faster there. On another 2-core machine
  (benchmarks/README.md) the devices' all-reduces and rendezvous cost more than the
  split gains and one device was 1.1-1.3x faster; `cpu_devices=1` there.
  On tiny inputs (8x8 digits) the split costs more than it gains, so those
  configs ask for 1. Only the CPU platform changes; GPUs and
  TPUs are untouched. Must run before JAX initialises its backends; a count
  already in XLA_FLAGS wins.

  Args:
    requested: devices wanted (config.cpu_devices); 0 = as many as there are
      cores, reduced until it divides every batch size; 1 = no split.
    batch_sizes: the global batch sizes the run will shard.
  """
  if requested == 1:
    return
  n = requested or cpu_devices(batch_sizes)
  parallel.add_xla_flags([f'--xla_force_host_platform_device_count={n}'])
  parallel.size_cpu_thread_pool(n)


def setup() -> None:
  """Call first in every binary's main()."""
  parallel.add_xla_flags()
  # orbax logs through absl's logger; a logger filter sees its records.
  logging.get_absl_logger().addFilter(_QuietOrbax())
  # Compiled steps persist across runs: a resumed or repeated run with the
  # same shapes skips XLA compilation (minutes on a small CPU). Set
  # NASJAX_XLA_CACHE='' to turn it off.
  cache = os.environ.get('NASJAX_XLA_CACHE',
                         os.path.expanduser('~/.cache/nasjax/xla'))
  if cache:
    jax.config.update('jax_compilation_cache_dir', cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


Config = ml_collections.ConfigDict


def device_count(num_devices: int) -> int:
  """The devices a run with config.num_devices = `num_devices` shards over."""
  return num_devices or jax.device_count()


def _exit(status: int, message: str) -> None:
  print(message, file=sys.stderr, flush=True)
  sys.exit(status)


def _parse_flags(argv):
  """absl's flag parsing, with bad flags and --config overrides (unknown
  fields, values of the wrong type, unknown variants) as user errors."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    if '--traceback' in argv:
      raise
    _exit(EXIT_USER_ERROR, f'Error: bad command-line flag: {_flag_error(e)}')


def _flag_error(e: Exception) -> str:
  """One line from what absl and ml_collections raise for a bad flag."""
  text = str(e)
  if 'Traceback' in text:  # A config file's get_config raised: keep its line.
    text = text.strip().splitlines()[-1]
  if isinstance(e, (AttributeError, KeyError)):
    try:  # ml_collections nests the repr of a KeyError's message.
      text = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      pass
    text = f'unknown config field {text}'
  return ' '.join(text.split())


def main(work: Callable[[Config, str], str],
         cpu_split: Callable[[Config], tuple[int, list[int]]]) -> None:
  """Runs a binary: `work(config, workdir)` after the shared set-up.

  Args:
    work: the binary's job; returns the run's status, 'completed' or
      'interrupted' (`loop.Result.status`).
    cpu_split: config -> (cpu_devices, global batch sizes), see `split_cpu`.
  """
  flags.mark_flags_as_required(['config', 'workdir'])

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    setup()
    config = _CONFIG.value
    try:
      split_cpu(*cpu_split(config))
      logging.info('JAX devices: %s', jax.devices())
      status = work(config, _WORKDIR.value)
    except errors.UserError as e:
      if _TRACEBACK.value:
        raise
      _exit(EXIT_USER_ERROR, f'Error: {e}')
    except loop.NonFiniteError as e:
      if _TRACEBACK.value:
        raise
      _exit(EXIT_NON_FINITE, f'Stopped: {e}')
    except KeyboardInterrupt:
      _exit(EXIT_CTRL_C, 'Interrupted (Ctrl-C). Run the same command again '
            'to resume from the last checkpoint.')
    if status == 'interrupted':
      _exit(EXIT_SIGTERM, 'Interrupted (SIGTERM); a checkpoint was saved. '
            'Run the same command again to resume.')

  app.run(_main, flags_parser=_parse_flags)
