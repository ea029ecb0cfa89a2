r"""Search vs random: one DARTS search and K random genotypes, trained alike.

  python experiments/search_vs_random.py \
      --config=experiments/configs/search_vs_random.py:cifar10_subset \
      --config.data_dir=/path/to/cifar-10-batches-py --workdir=/tmp/svr

Prints a table of test accuracy and parameter count (results.md in the
workdir). Re-running with the same --workdir resumes every stage. Exit
status as the other binaries (experiments/common.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import data  # pylint: disable=g-import-not-at-top
from experiments import common
from nasjax import config_checks
from nasjax.final import search_vs_random


def work(config, workdir):
  config_checks.check_search_vs_random_config(
      config, common.device_count(config.search.num_devices),
      common.device_count(config.train.num_devices))
  d = config.train.data
  dataset = data.get_dataset(d.name, d.data_dir or None, d.image_shape,
                             data_dir_field='config.data_dir')
  summary = search_vs_random.run(config, workdir, dataset)
  if summary['status'] == 'completed':
    with open(os.path.join(workdir, 'results.md')) as f:
      print(f.read())
    print(f"searched genotype rank: {summary['searched_rank']} of "
          f"{len(summary['rows'])}")
  return summary['status']


if __name__ == '__main__':
  # One process: the search config's CPU split holds for both stages.
  common.main(work, lambda c: (c.search.cpu_devices, [
      c.search.batch_size, c.train.batch_size]))
