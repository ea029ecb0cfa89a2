r"""Choosing a cell: the DARTS paper's protocol, or search vs random.

  python experiments/selection.py \
      --config=experiments/configs/selection.py:darts_cifar10 \
      --config.data_dir=/path/to/cifar-10-batches-py --workdir=/tmp/sel

K searches with different seeds (and M random genotypes), each candidate
trained alike and compared, the best optionally trained in full
(nasjax/configs/selection.py). Prints the table (results.md in the
workdir). Re-running with the same --workdir resumes every stage. Exit
status as the other binaries (experiments/common.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # pylint: disable=g-import-not-at-top
from nasjax import config_checks
from nasjax import data
from nasjax.darts import rnn_search
from nasjax.final import selection


def work(config, workdir):
  config_checks.check_selection_config(
      config, common.device_count(config.search.num_devices),
      common.device_count(config.candidate_train.num_devices))
  d = config.search.data
  if config.method in ('darts_rnn', 'enas_rnn'):
    dataset = rnn_search.load_corpus(config.search)
  else:
    dataset = data.get_dataset(d.name, d.data_dir or None, d.image_shape,
                               data_dir_field='config.data_dir')
  result = selection.run(config, workdir, dataset)
  if result.status == 'completed':
    print(result.table)
    print(f'chosen: {result.chosen}')
  return result.status


if __name__ == '__main__':
  # One process: the search config's CPU split holds for every stage.
  common.main(work, lambda c: (c.search.cpu_devices, [
      c.search.batch_size, c.candidate_train.batch_size,
      c.final_train.batch_size]), ('selection',))
