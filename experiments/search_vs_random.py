r"""Search vs random: one DARTS search and K random genotypes, trained alike.

  python experiments/search_vs_random.py \
      --config=experiments/configs/search_vs_random.py:cifar10_subset \
      --workdir=/tmp/svr

Prints a table of test accuracy and parameter count (results.md in the
workdir). Re-running with the same --workdir resumes every stage.
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
from nasjax.final import search_vs_random

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file (experiments/configs/...:variant).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  common.setup()
  config = _CONFIG.value
  # One process: the search config's CPU split holds for both stages.
  common.split_cpu(config.search.cpu_devices,
                   [config.search.batch_size, config.train.batch_size,
                    config.train.eval_batch_size])
  logging.info('JAX devices: %s', jax.devices())
  d = config.train.data
  if (config.search.data.name, config.search.data.data_dir) != (d.name,
                                                                d.data_dir):
    raise app.UsageError('search.data and train.data must name the same '
                         'dataset.')
  dataset = data.get_dataset(d.name, d.data_dir or None, d.image_shape)
  summary = search_vs_random.run(config, _WORKDIR.value, dataset)
  with open(os.path.join(_WORKDIR.value, 'results.md')) as f:
    print(f.read())
  print(f"searched genotype rank: {summary['searched_rank']} of "
        f"{len(summary['rows'])}")


if __name__ == '__main__':
  app.run(main)
