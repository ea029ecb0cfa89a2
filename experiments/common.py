"""Set-up shared by the binaries: quiet orbax logs, a persistent XLA cache."""

import logging as std_logging
import os

from absl import logging
import jax


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO chatter (dozens of lines per checkpoint)."""

  def filter(self, record):
    return (record.levelno >= std_logging.WARNING or
            'orbax' not in record.pathname)


def setup() -> None:
  """Call first in every binary's main()."""
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
