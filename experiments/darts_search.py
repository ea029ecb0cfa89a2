r"""DARTS search binary.

  python experiments/darts_search.py \
      --config=experiments/configs/darts_search.py:digits --workdir=/tmp/darts

Re-running with the same --workdir resumes from the latest checkpoint.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

import data
from experiments import common
from nasjax.darts import search

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Search config file (experiments/configs/...:variant).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  common.setup()
  config = _CONFIG.value
  common.split_cpu(config.cpu_devices, [config.batch_size])
  logging.info('JAX devices: %s', jax.devices())
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape)
  summary = search.search(config, _WORKDIR.value, dataset)
  logging.info('Done: %s', summary)
  print(f"genotype: {summary['genotype']}")


if __name__ == '__main__':
  app.run(main)
