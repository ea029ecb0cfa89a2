"""Published architectures by name: DARTS-space cells and ENAS arcs."""

import os

from nasjax.genotype import recurrent
from nasjax.genotype.cell import Genotype, GenotypeError, make
from nasjax.genotype.notation import from_notation, parse
from nasjax.search_spaces import enas as enas_space

# The published DARTS cells, in the reference's notation (cnn/genotypes.py).
DARTS_V1 = from_notation(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = from_notation(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


# Published cells from other searches, as the reference writes them
# (quark0/darts cnn/genotypes.py). They have 5 nodes, and
# AmoebaNet uses 'conv_7x1_1x7' and 'sep_conv_7x7', outside the DARTS space.
NASNET = make(
    normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0),
            ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0),
            ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1),
            ('skip_connect', 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1),
            ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0),
            ('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2),
            ('max_pool_3x3', 1)],
    reduce_concat=[4, 5, 6])
AMOEBANET = make(
    normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0),
            ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3),
            ('sep_conv_3x3', 1), ('skip_connect', 1), ('skip_connect', 0),
            ('avg_pool_3x3', 1)],
    normal_concat=[4, 5, 6],
    reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0),
            ('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1),
            ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('conv_7x1_1x7', 0),
            ('sep_conv_3x3', 5)],
    reduce_concat=[3, 4, 6])
# The ENAS micro cell (melodyguan/enas scripts/cifar10_micro_final.sh, decoded
# in docs/reference_figures.md 6) in the DARTS cell: identity ->
# skip_connect, the output concatenates the loose ends (nodes no other node
# reads). Differences from ENAS's own child: ENAS reorders the cell inputs,
# standardises input 1 with ReLU-1x1-BN only, and reduces with its own
# factorised path; here the DARTS cell's preprocessing and strides apply.
ENAS = make(
    normal=[('avg_pool_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 0),
            ('sep_conv_5x5', 0), ('skip_connect', 0), ('sep_conv_5x5', 1),
            ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('avg_pool_3x3', 0),
            ('sep_conv_5x5', 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('max_pool_3x3', 0),
            ('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 3),
            ('sep_conv_3x3', 1), ('skip_connect', 0), ('max_pool_3x3', 0),
            ('sep_conv_5x5', 1)],
    reduce_concat=[2, 4, 5, 6])

# Published genotypes by name. 'DARTS' is DARTS_V2, as in the reference.
ZOO: dict[str, Genotype] = {
    'DARTS_V1': DARTS_V1, 'DARTS_V2': DARTS_V2, 'DARTS': DARTS_V2,
    'NASNet': NASNET, 'AmoebaNet': AMOEBANET, 'ENAS': ENAS,
}


def get(name: str) -> 'Genotype | enas_space.EnasArc':
  """A published architecture by name: a DARTS-space genotype (`ZOO`) or an
  ENAS arc ('ENAS_MICRO', 'ENAS_MACRO'); unknown names list the valid
  ones."""
  if name in enas_space.PUBLISHED:
    return enas_space.EnasArc(*enas_space.published(name))
  if name in recurrent.RECURRENT_ZOO:
    return recurrent.RECURRENT_ZOO[name]
  try:
    return ZOO[name]
  except KeyError:
    raise GenotypeError(
        f'Unknown genotype {name!r}. Published genotypes and arcs: '
        f'{sorted(ZOO) + list(enas_space.PUBLISHED)}, recurrent cells '
        f'{list(recurrent.RECURRENT_ZOO)}; or give a path to a '
        'genotype or arc JSON file, or a genotype notation file.') from None


def load(spec: str) -> 'Genotype | enas_space.EnasArc':
  """A published name, a file (JSON or notation), or notation/JSON text
  itself. DARTS genotypes and ENAS arcs (their JSON, `EnasArc.to_dict`)."""
  spec = spec.strip()
  if (spec in ZOO or spec in enas_space.PUBLISHED or
      spec in recurrent.RECURRENT_ZOO):
    return get(spec)
  if spec.startswith(('Genotype(', '{', 's1=', '|')):
    return parse(spec)
  if os.path.isdir(spec):
    raise GenotypeError(f'{spec} is a directory, not a genotype or arc file.')
  if os.path.exists(spec):
    try:
      with open(spec, encoding='utf-8') as f:
        text = f.read()
    except (OSError, UnicodeDecodeError) as e:
      raise GenotypeError(f'{spec}: not a readable text file '
                          f'({type(e).__name__}).') from None
    try:
      return parse(text)
    except GenotypeError as e:
      raise GenotypeError(f'{spec}: {e}') from None
  if os.sep in spec or spec.endswith(('.json', '.txt')):
    raise GenotypeError(f'No genotype or arc file at {spec}.')
  return get(spec)
