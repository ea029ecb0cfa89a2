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

import data
from experiments import common
from nasjax.final import search_vs_random


def work(config, workdir):
  d = config.train.data
  if (config.search.data.name, config.search.data.data_dir) != (d.name,
                                                                d.data_dir):
    raise app.UsageError('search.data and train.data must name the same '
                         'dataset.')
  dataset = data.get_dataset(d.name, d.data_dir or None, d.image_shape)
  summary = search_vs_random.run(config, workdir, dataset)
  with open(os.path.join(workdir, 'results.md')) as f:
    print(f.read())
  print(f"searched genotype rank: {summary['searched_rank']} of "
        f"{len(summary['rows'])}")


if __name__ == '__main__':
  # One process: the search config's CPU split holds for both stages.
  common.main(work, lambda c: (c.search.cpu_devices, [
      c.search.batch_size, c.train.batch_size, c.train.eval_batch_size]))
