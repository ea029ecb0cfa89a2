r"""One-shot search binary: a search space and a strategy, named by the preset.

  python experiments/search.py \
      --config=experiments/configs/one_shot_search.py:nb201_gdas_digits \
      --workdir=/tmp/nb201_gdas
  python experiments/search.py \
      --config=experiments/configs/one_shot_search.py:nb201_darts \
      --config.data.data_dir=/path/to/cifar-10-batches-py \
      --config.table=/path/to/nb201_table.csv --workdir=/tmp/nb201_darts

Presets are `<space>_<strategy>[_<size>]`
(experiments/configs/one_shot_search.py): space nb201; strategy darts,
darts2 (exact second order), gdas, rsps.
The DARTS cell and ENAS searches have their own binaries (darts_search.py,
enas_search.py). Re-running with the same --workdir resumes; exit status as
experiments/common.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # pylint: disable=g-import-not-at-top
from nasjax import config_checks
from nasjax import data
from nasjax import one_shot


def work(config, workdir):
  config_checks.check_one_shot_config(config,
                                      common.device_count(config.num_devices))
  dataset = data.get_dataset(config.data.name, config.data.data_dir or None,
                             config.data.image_shape)
  result = one_shot.search(config, workdir, dataset)
  if result.status == 'completed':
    print(f'cell: {result.cell_string}')
    lookup = result.summary.get('lookup')
    if lookup:
      test = f'{config.table_dataset}-test'
      print(f'{test} in the table: {lookup[test]:.2f} (all-skip cell '
            f'{lookup["all_skip_test"]:.2f}, best cell by validation '
            f'{lookup["best_by_val_test"]:.2f})')
    print(f'written to {workdir}: cell.txt, results.json, history.json')
  return result.status


if __name__ == '__main__':
  common.main(work, lambda c: (c.cpu_devices, [c.batch_size]),
              ('one_shot_search',))
