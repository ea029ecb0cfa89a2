"""Architectures as data: DARTS genotypes and ENAS arcs.

What a search hands to retraining, in one place for every family:

* `cell`: the DARTS-space `Genotype` (a normal and a reduction cell);
* `derive`: genotypes from alpha (the paper's rule) and random ones;
* `notation`: JSON and the papers' notation (`to_dict`, `from_dict`,
  `parse` take DARTS genotypes and ENAS arcs, `search_spaces.enas.EnasArc`);
* `zoo`: published architectures by name (`get`, `load`);
* `recurrent`: recurrent cell genotypes (`RecurrentGenotype`, derivation,
  the published recurrent cells);
* `draw`: pictures of cells, recurrent cells and ENAS macro networks.

Synopsis:

  g = genotype.from_alpha(state.alpha, space)
  g == genotype.parse(genotype.to_json(g)) == genotype.parse(
      genotype.to_notation(g))
  arc = genotype.load('ENAS_MICRO')           # or a file a search wrote
  genotype.write_files(g, '/tmp/run/genotype')  # .json, .txt, pictures
"""

from nasjax.genotype.cell import FIELDS, Genotype, GenotypeError, Pair, make
from nasjax.genotype.derive import (derive_cell, from_alpha, random_cell,
                                    random_genotype, softmax)
from nasjax.genotype.draw import (OP_COLORS, Arc, CellLayout, cell_layout,
                                  cell_svg, network_svg, recurrent_svg,
                                  write_svg)
from nasjax.genotype.notation import (from_dict, from_json, from_notation,
                                      parse, to_dict, to_json, to_notation)
from nasjax.genotype.zoo import (AMOEBANET, DARTS_V1, DARTS_V2, ENAS, NASNET,
                                 ZOO, get, load)
from nasjax.genotype.recurrent import (DARTS_V1_RNN, DARTS_V2_RNN, ENAS_RNN,
                                       RECURRENT_ZOO, RecurrentGenotype)
from nasjax.search_spaces import enas as enas_space

__all__ = [
    'FIELDS', 'Genotype', 'GenotypeError', 'Pair', 'make', 'derive_cell',
    'from_alpha', 'random_cell', 'random_genotype', 'softmax', 'OP_COLORS',
    'Arc', 'CellLayout', 'cell_layout', 'cell_svg', 'network_svg',
    'write_svg', 'from_dict', 'from_json', 'from_notation', 'parse',
    'to_dict', 'to_json', 'to_notation', 'AMOEBANET', 'DARTS_V1', 'DARTS_V2',
    'ENAS', 'NASNET', 'ZOO', 'get', 'load', 'write_files', 'recurrent_svg',
    'RecurrentGenotype', 'DARTS_V1_RNN', 'DARTS_V2_RNN', 'ENAS_RNN',
    'RECURRENT_ZOO']


def write_files(g: 'Genotype | enas_space.EnasArc | RecurrentGenotype',
                prefix: str) -> None:
  """`<prefix>.json`, `<prefix>.txt` (notation, or an ENAS arc string) and
  the pictures (`search_spaces.enas.write_files` for ENAS arcs,
  `<prefix>.svg` for a recurrent cell)."""
  if isinstance(g, enas_space.EnasArc):
    enas_space.write_files(g.space, g.arc, prefix)
    return
  with open(prefix + '.json', 'w') as f:
    f.write(to_json(g) + '\n')
  with open(prefix + '.txt', 'w') as f:
    f.write(to_notation(g) + '\n')
  if isinstance(g, RecurrentGenotype):
    with open(prefix + '.svg', 'w') as f:
      f.write(recurrent_svg(g.recurrent, g.concat))
    return
  if isinstance(g, Genotype):  # An NB201 cell has no picture yet.
    write_svg(g, prefix)
