r"""Trains a genotype from scratch (the DARTS evaluation protocol).

  python experiments/darts_train.py \
      --config=experiments/configs/darts_train.py:digits --workdir=/tmp/train \
      --config.genotype=/tmp/darts/genotype.json

Re-running with the same --workdir resumes from the latest checkpoint.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging  # pylint: disable=g-import-not-at-top

import data
from experiments import common
from nasjax import genotype as genotype_lib
from nasjax.final import train


def work(config, workdir):
  genotype = genotype_lib.load(config.genotype)
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape)
  summary = train.train(config, workdir, dataset, genotype)
  logging.info('Done: %s', summary)
  print(f"test accuracy {summary['test_accuracy']:.4f}, "
        f"{summary['param_count']} parameters")


if __name__ == '__main__':
  common.main(work, lambda c: (c.cpu_devices,
                               [c.batch_size, c.eval_batch_size]))
