"""Small helpers shared by the binaries."""

import logging as std_logging

from absl import logging


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO chatter (dozens of lines per checkpoint)."""

  def filter(self, record):
    return (record.levelno >= std_logging.WARNING or
            'orbax' not in record.pathname)


def quiet_orbax() -> None:
  # orbax logs through absl's logger; a logger filter sees its records.
  logging.get_absl_logger().addFilter(_QuietOrbax())
