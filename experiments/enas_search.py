r"""ENAS search binary: child and controller, then the derived arc.

  python experiments/enas_search.py \
      --config=experiments/configs/enas_search.py:digits --workdir=/tmp/enas

Variants: micro (the reference's cell search), macro, digits, micro_tiny,
macro_tiny. With --config=experiments/configs/enas_rnn_search.py:VARIANT
(ptb, synthetic, tiny) it searches a recurrent cell on PTB
(`nasjax.enas.lm_search`); retrain the result with darts_train.py and
--config.genotype=WORKDIR/arc.json. Re-running with the same --workdir resumes from the latest
checkpoint. Exit status as the other binaries (experiments/common.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # pylint: disable=g-import-not-at-top
from nasjax import config_checks
from nasjax import data
from nasjax.enas import lm_search
from nasjax.enas import search


def work_recurrent(config, workdir):
  config_checks.check_enas_rnn_config(config,
                                      common.device_count(config.num_devices))
  result = lm_search.search(config, workdir)
  if result.status == 'completed':
    print(f'cell: {result.genotype.space.to_genotype(result.arc)} '
          f'[{result.arc_string}] (perplexity {result.perplexity:.2f} on the '
          'derive windows)')
    print(f'written to {workdir}: arc.json, genotype.json, results.json')
  return result.status


def work(config, workdir):
  if config.get('space') == 'recurrent':
    return work_recurrent(config, workdir)
  config_checks.check_enas_config(config,
                                  common.device_count(config.num_devices))
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape)
  result = search.search(config, workdir, dataset)
  if result.status == 'completed':
    print(f'arc: {result.arc_string} (validation accuracy '
          f'{result.accuracy:.4f} on the derive batches)')
    print(f'written to {workdir}: arc.json, arc.txt, results.json')
  return result.status


if __name__ == '__main__':
  common.main(work, lambda c: (c.cpu_devices, [c.batch_size]),
              ('enas_search', 'enas_rnn_search'))
