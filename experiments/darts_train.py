r"""Trains a genotype from scratch (the DARTS evaluation protocol).

  python experiments/darts_train.py \
      --config=experiments/configs/darts_train.py:digits --workdir=/tmp/train \
      --config.genotype=/tmp/darts/genotype.json

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
from nasjax import genotype as genotype_lib
from nasjax.final import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Training config file (experiments/configs/...:variant).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  common.setup()
  config = _CONFIG.value
  common.split_cpu(config.cpu_devices,
                   [config.batch_size, config.eval_batch_size])
  logging.info('JAX devices: %s', jax.devices())
  genotype = genotype_lib.load(config.genotype)
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape)
  summary = train.train(config, _WORKDIR.value, dataset, genotype)
  logging.info('Done: %s', summary)
  print(f"test accuracy {summary['test_accuracy']:.4f}, "
        f"{summary['param_count']} parameters")


if __name__ == '__main__':
  app.run(main)
