"""What the binaries share: flags, set-up, the CPU split, the XLA cache.

Each binary is `common.main(work, cpu_split)`: --config and --workdir are
parsed here, the process is set up (quiet orbax logs, persistent XLA cache,
the CPU split the config asks for), then `work(config, workdir)` runs.
"""

import logging as std_logging
import os
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from nasjax import parallel

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file and variant: experiments/configs/FILE.py:ARG.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Output directory; re-running with it resumes.')


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
  (README, Speed) the devices' all-reduces and rendezvous cost more than the
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


def main(work: Callable[[Config, str], None],
         cpu_split: Callable[[Config], tuple[int, list[int]]]) -> None:
  """Runs a binary: `work(config, workdir)` after the shared set-up.

  Args:
    work: the binary's job.
    cpu_split: config -> (cpu_devices, global batch sizes), see `split_cpu`.
  """
  flags.mark_flags_as_required(['config', 'workdir'])

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    setup()
    config = _CONFIG.value
    split_cpu(*cpu_split(config))
    logging.info('JAX devices: %s', jax.devices())
    work(config, _WORKDIR.value)

  app.run(_main)
