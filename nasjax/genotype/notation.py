"""Reading and writing architectures: JSON and the papers' notation.

DARTS genotypes round-trip through JSON and the reference code's notation,

  Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
           reduce=[('max_pool_3x3', 0), ...], reduce_concat=range(2, 6))

parsed with `ast` (never `eval`). ENAS arcs (`search_spaces.enas.EnasArc`)
through JSON holding the reference's arc string; recurrent genotypes
(`recurrent.RecurrentGenotype`) through JSON and `s1=act(s0); ...`;
`to_dict`, `from_dict` and `parse` take every family.
"""

import ast
import json
from typing import Mapping

from nasjax import errors
from nasjax.genotype import recurrent
from nasjax.genotype.cell import FIELDS, Genotype, GenotypeError, make
from nasjax.search_spaces import enas as enas_space
from nasjax.search_spaces.nb201 import encoding as nb201

def to_dict(g: 'Genotype | enas_space.EnasArc') -> dict:
  """JSON-able form of a DARTS genotype or an ENAS arc (`EnasArc.to_dict`)."""
  if isinstance(g, (enas_space.EnasArc, recurrent.RecurrentGenotype)):
    return g.to_dict()
  if isinstance(g, nb201.Nb201Cell):
    return {'nb201': str(g)}
  return {'normal': [list(p) for p in g.normal],
          'normal_concat': list(g.normal_concat),
          'reduce': [list(p) for p in g.reduce],
          'reduce_concat': list(g.reduce_concat)}


def from_dict(d: Mapping) -> 'Genotype | enas_space.EnasArc':
  """`to_dict`'s inverse: an ENAS arc if `d` names its space, else a DARTS
  genotype."""
  if not isinstance(d, Mapping):
    raise GenotypeError(f'A genotype must be a JSON object, got '
                        f'{type(d).__name__}.')
  if 'recurrent' in d:
    return recurrent.from_dict(d)
  if 'nb201' in d:
    try:
      return nb201.from_string(str(d['nb201']))
    except errors.UserError as e:
      raise GenotypeError(str(e)) from None
  if 'space' in d:
    try:
      return enas_space.arc_from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
      raise GenotypeError(f'Malformed ENAS arc: {e}') from None
  missing = [f for f in FIELDS if f not in d]
  extra = [f for f in d if f not in FIELDS]
  if missing or extra:
    raise GenotypeError(f'Genotype fields: missing {missing}, unexpected '
                        f'{extra}; expected exactly {list(FIELDS)}.')
  return make(**{f: d[f] for f in FIELDS})


def to_json(g: Genotype) -> str:
  return json.dumps(to_dict(g))


def from_json(text: str) -> 'Genotype | enas_space.EnasArc':
  try:
    d = json.loads(text)
  except json.JSONDecodeError as e:
    raise GenotypeError(f'Malformed genotype JSON: {e}.') from None
  return from_dict(d)


# ---------------------------------------------------------------- notation


def to_notation(g: 'Genotype | enas_space.EnasArc') -> str:
  """The reference code's `Genotype(...)` repr; for an ENAS arc the
  reference's arc string."""
  if isinstance(g, (enas_space.EnasArc, recurrent.RecurrentGenotype,
                    nb201.Nb201Cell)):
    return str(g)
  cell = lambda pairs: '[' + ', '.join(f'({op!r}, {i})' for op, i in pairs) + ']'
  return (f'Genotype(normal={cell(g.normal)}, '
          f'normal_concat={list(g.normal_concat)}, '
          f'reduce={cell(g.reduce)}, reduce_concat={list(g.reduce_concat)})')


def _literal(node: ast.AST, field: str):
  # `range(a, b)` is how the reference writes concat lists.
  if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and
      node.func.id == 'range' and not node.keywords):
    args = [_literal(a, field) for a in node.args]
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
      raise GenotypeError(f'{field}: bad range(...) arguments.')
    return list(range(*args))
  try:
    return ast.literal_eval(node)
  except ValueError:
    raise GenotypeError(f'{field}: only literals and range(...) are allowed, '
                        f'got {ast.unparse(node)!r}.') from None


def from_notation(text: str) -> Genotype:
  """Parses `Genotype(normal=[...], normal_concat=..., reduce=[...], ...)`."""
  try:
    tree = ast.parse(text.strip(), mode='eval')
  except SyntaxError as e:
    raise GenotypeError(f'Malformed genotype notation: {e.msg} at column '
                        f'{e.offset}.') from None
  call = tree.body
  if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and
          call.func.id == 'Genotype'):
    raise GenotypeError("Genotype notation must be a call 'Genotype(...)'.")
  if call.args:
    values = [_literal(a, f) for a, f in zip(call.args, FIELDS)]
    if len(call.args) != 4:
      raise GenotypeError(f'Genotype(...) takes 4 fields, got '
                          f'{len(call.args)} positional.')
    return make(*values)
  return from_dict({kw.arg: _literal(kw.value, kw.arg) for kw in call.keywords})


def parse(text: str) -> 'Genotype | enas_space.EnasArc':
  """JSON or notation, whichever `text` is."""
  if text.lstrip()[:1] in ('{', '['):
    return from_json(text)
  if text.lstrip().startswith('s1='):
    return recurrent.from_notation(text)
  if text.lstrip().startswith('|'):  # A NAS-Bench-201 cell.
    try:
      return nb201.from_string(text.strip())
    except errors.UserError as e:
      raise GenotypeError(str(e)) from None
  return from_notation(text)
