"""Process set-up: the platform defaults, in one call.

`setup()` makes the process-wide choices that suit the machine. The binaries
call it first; the Python API (`nasjax.search`, `nasjax.retrain`) calls it
with the defaults if nobody did. Every choice can be overridden:

* XLA:CPU options (`parallel.XLA_CPU_FLAGS`: the classic fusion emitters,
  half the peak memory when compiling the search steps). Only the CPU backend
  reads them; a flag already in $XLA_FLAGS wins.
* `cpu_devices`: split the CPU into that many XLA devices (the batch is then
  sharded over them); 1 (default) keeps one device.
* The persistent XLA compilation cache (`~/.cache/nasjax/xla`, or
  $NASJAX_XLA_CACHE; '' turns it off): a repeated run with the same shapes
  skips compiling, which takes minutes on a small CPU.
* The depthwise-convolution formulation for `depthwise_impl='auto'` (the
  configs' default): 'shift' on CPUs (measured fastest there), 'grouped' (one
  grouped convolution, the form GPU and TPU compilers handle natively) on
  accelerators.

XLA flags and the CPU split only take effect before JAX initialises its
backends (the first `jax.devices()` or computation); after that `setup`
says so in a warning and leaves them.

  import nasjax
  nasjax.setup()                      # or nasjax.setup(cpu_devices=2)
"""

import logging as std_logging
import os
import warnings

import jax
from jax._src import xla_bridge

from nasjax import parallel

DEFAULT_CACHE = os.path.join('~', '.cache', 'nasjax', 'xla')
_DONE = [False]


def backends_initialized() -> bool:
  return xla_bridge.backends_are_initialized()


def cpu_devices_dividing(batch_sizes, cores: int | None = None) -> int:
  """The most CPU devices (<= cores) that divide every batch size."""
  cores = cores or os.cpu_count() or 1
  return max(d for d in range(1, cores + 1)
             if all(b % d == 0 for b in batch_sizes))


def split_cpu(requested: int, batch_sizes=()) -> None:
  """Splits XLA's CPU platform into `requested` devices (0: one per core,
  as many as divide every batch size; 1: no split).

  At 32x32 on 2 cores the split ran 1.2-1.4x faster on one kind of machine
  and 1.1-1.3x slower on another; at 8x8 it is slower (benchmarks/README.md);
  hence one device by default. GPUs and TPUs are untouched; a device count
  already in $XLA_FLAGS wins.
  """
  if requested == 1:
    return
  n = requested or cpu_devices_dividing(batch_sizes)
  parallel.add_xla_flags([f'--xla_force_host_platform_device_count={n}'])
  parallel.size_cpu_thread_pool(n)


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO chatter (dozens of lines per checkpoint)."""

  def filter(self, record):
    return (record.levelno >= std_logging.WARNING or
            'orbax' not in record.pathname)


def setup(*, cpu_devices: int = 1, batch_sizes=(),
          xla_cpu_flags=parallel.XLA_CPU_FLAGS,
          compile_cache: str | None = None) -> None:
  """The process-wide defaults; see the module docstring.

  Args:
    cpu_devices: CPU only: XLA devices to split the CPU into (1: none, 0: as
      many as there are cores and divide every one of `batch_sizes`).
    batch_sizes: the global batches the run will shard (for cpu_devices=0).
    xla_cpu_flags: XLA:CPU options added to $XLA_FLAGS (() for none).
    compile_cache: the persistent compilation cache directory; None: the
      default ($NASJAX_XLA_CACHE, else ~/.cache/nasjax/xla); '': off.
  """
  if backends_initialized():
    if cpu_devices != 1 or xla_cpu_flags != parallel.XLA_CPU_FLAGS:
      warnings.warn('JAX is already initialised: nasjax.setup() cannot '
                    'change XLA flags or split the CPU any more (call it '
                    'before the first JAX computation, e.g. right after '
                    'import).', stacklevel=2)
  else:
    parallel.add_xla_flags(tuple(xla_cpu_flags))
    split_cpu(cpu_devices, batch_sizes)
  # orbax logs through absl's logger; a logger filter sees its records.
  from absl import logging  # pylint: disable=g-import-not-at-top
  if not any(isinstance(f, _QuietOrbax)
             for f in logging.get_absl_logger().filters):
    logging.get_absl_logger().addFilter(_QuietOrbax())
  if compile_cache is None and jax.config.jax_compilation_cache_dir:
    compile_cache = ''  # Someone chose a cache already: keep theirs.
  elif compile_cache is None:
    compile_cache = os.environ.get('NASJAX_XLA_CACHE',
                                   os.path.expanduser(DEFAULT_CACHE))
  if compile_cache:
    jax.config.update('jax_compilation_cache_dir', compile_cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  _DONE[0] = True


def ensure_setup() -> None:
  """`setup()` with the defaults, unless it ran already in this process."""
  if not _DONE[0]:
    setup()


def is_setup() -> bool:
  return _DONE[0]


def depthwise_impl(requested: str) -> str:
  """The depthwise formulation for this platform when `requested` is 'auto'."""
  if requested != 'auto':
    return requested
  return 'shift' if jax.default_backend() == 'cpu' else 'grouped'
