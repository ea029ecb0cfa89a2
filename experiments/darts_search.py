r"""DARTS search binary.

  python experiments/darts_search.py \
      --config=experiments/configs/darts_search.py:digits --workdir=/tmp/darts
  python experiments/darts_search.py \
      --config=experiments/configs/darts_rnn_search.py:synthetic \
      --workdir=/tmp/darts_rnn

The recurrent cell search runs when the config says `cell='recurrent'`
(experiments/configs/darts_rnn_search.py).

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
from nasjax import genotype
from nasjax.darts import rnn_search
from nasjax.darts import search


def work(config, workdir):
  if config.get('cell') == 'recurrent':
    return work_recurrent(config, workdir)
  config_checks.check_search_config(config,
                                    common.device_count(config.num_devices))
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape)
  result = search.search(config, workdir, dataset)
  if result.status == 'completed':
    print(f'genotype: {genotype.to_notation(result.genotype)}')
    print(f"written to {workdir}: genotype.json, genotype_*.svg, alpha.png")
  return result.status


def work_recurrent(config, workdir):
  config_checks.check_rnn_search_config(
      config, common.device_count(config.num_devices))
  result = rnn_search.search(config, workdir)
  if result.status == 'completed':
    print(f'genotype: {result.genotype}')
    print(f'validation perplexity: {result.summary["valid_perplexity"]:.2f}')
    print(f'written to {workdir}: genotype.json, genotype.svg, history.json')
  return result.status


if __name__ == '__main__':
  common.main(work, lambda c: (c.cpu_devices, [c.batch_size]),
              ('darts_search', 'darts_rnn_search'))
