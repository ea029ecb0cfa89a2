r"""Trains a genotype from scratch (the DARTS evaluation protocol), or an ENAS
arc in ENAS's final network (the enas_* presets).

  python experiments/darts_train.py \
      --config=experiments/configs/darts_train.py:digits --workdir=/tmp/train \
      --config.genotype=/tmp/darts/genotype.json
  python experiments/darts_train.py \
      --config=experiments/configs/darts_train.py:enas_digits \
      --workdir=/tmp/enas_train --config.genotype=/tmp/enas/arc.json
  python experiments/darts_train.py \
      --config=experiments/configs/lm_train.py:synthetic --workdir=/tmp/lm \
      --config.genotype=DARTS_V2_RNN

A config with cell='recurrent' (experiments/configs/lm_train.py) trains a
recurrent genotype in the language model (`nasjax.final.lm_train`).

Re-running with the same --workdir resumes from the latest checkpoint. Exit
status: 0 done, 2 bad input, 3 non-finite loss, 130 / 143 interrupted
(experiments/common.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # pylint: disable=g-import-not-at-top
from nasjax import data
from nasjax import config_checks
from nasjax import genotype as genotype_lib
from nasjax.final import lm_train
from nasjax.final import train


def work(config, workdir):
  if config.get('cell') == 'recurrent':
    return work_recurrent(config, workdir)
  config_checks.check_train_config(config,
                                   common.device_count(config.num_devices))
  genotype = genotype_lib.load(config.genotype)
  stream = {k: config.data[k] for k in ('workers', 'prefetch')
            if k in config.data}
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape, stream=stream or None)
  result = train.train(config, workdir, dataset, genotype)
  if result.status == 'completed':
    print(f'test accuracy {result.test_accuracy:.4f}, '
          f'{result.param_count:,} parameters')
  return result.status


def work_recurrent(config, workdir):
  config_checks.check_lm_train_config(config,
                                      common.device_count(config.num_devices))
  result = lm_train.train(config, workdir)
  if result.status == 'completed':
    print(f'validation perplexity {result.valid_perplexity:.2f}, test '
          f'perplexity {result.test_perplexity:.2f}, '
          f'{result.param_count:,} parameters')
  return result.status


if __name__ == '__main__':
  # The eval batch is rounded up to a multiple of the devices, so only the
  # training batch constrains the CPU split.
  common.main(work, lambda c: (c.cpu_devices, [c.batch_size]),
              ('darts_train', 'lm_train'))
