r"""Draws the Hessian monitor's dominant eigenvalue per epoch of the searches
in a JSON lines file of `benchmarks/nb201_search.py --hessian_every_epochs=1`,
one line per search, labelled with its derived cell's table accuracy and
parameter-free op count.

  python benchmarks/hessian_plot.py --rows=/tmp/collapse.jsonl \
      --out=docs/hessian_nb201.png
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from nasjax import plot

_ROWS = flags.DEFINE_string('rows', None, 'JSON lines of nb201_search.py.',
                            required=True)
_OUT = flags.DEFINE_string('out', None, 'PNG to write.', required=True)


def main(argv):
  del argv
  with open(_ROWS.value) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  rows = [r for r in rows if r.get('hessian_max_eigenvalue')]
  if not rows:
    raise app.UsageError('No row has eigenvalues (run nb201_search.py with '
                         '--hessian_every_epochs=1).')
  fig = plot._figure(figsize=(7, 4), layout='constrained')  # pylint: disable=protected-access
  ax = fig.subplots()
  styles = {'darts': '-', 'darts2': '--'}
  for i, r in enumerate(rows):
    ev = r['hessian_max_eigenvalue']
    ax.plot(range(len(ev)), ev, marker='o', markersize=3, color=f'C{i}',
            linestyle=styles.get(r['strategy'], ':'),
            label=(f"{r['strategy']} seed {r['seed']}: "
                   f"{r.get('cifar10-test', float('nan')):.2f} %, "
                   f"{r['parameter_free_ops']}/6 parameter-free"))
  ax.set_xlabel('epoch')
  ax.set_ylabel('dominant eigenvalue of the Hessian in alpha')
  ax.legend(fontsize=7)
  plot.save(fig, _OUT.value)
  print(f'wrote {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
