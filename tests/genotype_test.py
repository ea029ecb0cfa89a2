"""Genotype derivation, JSON and notation round trips, errors, pictures."""

import json

import numpy as np
import pytest

from nasjax import genotype as G
from nasjax.search_spaces import DartsCellSpace

SPACE = DartsCellSpace()


def test_derivation_keeps_top_two_non_none_edges():
  logits = np.zeros((14, 8))
  logits[:, 0] = 10.0  # 'none' dominates everywhere but must be ignored.
  # Node 0 (rows 0, 1): input 1 has sep_conv_5x5 strongest.
  logits[1, 5] = 3.0
  logits[0, 1] = 2.0  # max_pool_3x3 on input 0
  # Node 3 (rows 9..13): inputs 4 and 2 are the strongest, in that order.
  logits[13, 7] = 5.0
  logits[11, 3] = 4.0
  g = G.from_alpha({'normal': logits, 'reduce': logits}, SPACE)
  assert g.normal[:2] == (('sep_conv_5x5', 1), ('max_pool_3x3', 0))
  assert g.normal[6:] == (('dil_conv_5x5', 4), ('skip_connect', 2))
  # Ties: equal rows keep the lower input index, the first op among equals.
  assert g.normal[2:4] == (('max_pool_3x3', 0), ('max_pool_3x3', 1))
  assert g.normal_concat == (2, 3, 4, 5)
  assert all(op != 'none' for op, _ in g.normal + g.reduce)


def test_derivation_ranks_edges_by_softmax_weight_per_cell_type():
  """Edges are ranked by their strongest non-'none' *softmax* weight, which
  depends on each row's 'none' logit; raw logits would rank otherwise. The
  normal and reduce alphas derive their own cells."""
  normal, reduce = np.zeros((14, 8)), np.zeros((14, 8))
  # Node 1 (rows 2, 3, 4 read states 0, 1, 2). Softmax weights of the best
  # op: 0.74 (input 0), 0.0025 (input 1: 'none' dominates), 0.51 (input 2).
  # By raw logit: input 1 (4.0), then input 0 (3.0).
  normal[2, 4] = 3.0                     # sep_conv_3x3 on state 0
  normal[3, 0], normal[3, 5] = 10.0, 4.0  # sep_conv_5x5 on state 1
  normal[4, 6] = 2.0                     # dil_conv_3x3 on state 2
  # Reduce: node 0 (rows 0, 1) picks avg_pool on 1, then dil_conv_5x5 on 0.
  reduce[0, 7], reduce[1, 2] = 1.0, 5.0
  g = G.from_alpha({'normal': normal, 'reduce': reduce}, SPACE)
  assert g.normal[2:4] == (('sep_conv_3x3', 0), ('dil_conv_3x3', 2))
  assert g.reduce[0:2] == (('avg_pool_3x3', 1), ('dil_conv_5x5', 0))
  # Rows left at zero: ties keep the lower inputs, the first op among equals.
  assert g.normal[0:2] == (('max_pool_3x3', 0), ('max_pool_3x3', 1))
  assert g.reduce[2:4] == (('max_pool_3x3', 0), ('max_pool_3x3', 1))


def test_round_trips():
  for g in (G.DARTS_V1, G.DARTS_V2):
    assert G.from_json(G.to_json(g)) == g
    assert G.from_notation(G.to_notation(g)) == g
    assert G.parse(G.to_json(g)) == g == G.parse(G.to_notation(g))


def test_published_notation_with_range_parses():
  text = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
          "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
          "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
          "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
          "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
          "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
          "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
  assert G.from_notation(text) == G.DARTS_V2


@pytest.mark.parametrize('text,match', [
    ('{"normal": [["sep_conv_3x3", 0]', 'Malformed genotype JSON'),
    ('[1, 2]', 'must be a JSON object'),
    ('{"normal": []}', "missing \\['normal_concat'"),
    (json.dumps({'normal': [['sep_conv_9x9', 0], ['skip_connect', 1]],
                 'normal_concat': [2], 'reduce': [], 'reduce_concat': [0]}),
     "unknown op 'sep_conv_9x9'.*Valid ops"),
    (json.dumps({'normal': [['skip_connect', 2], ['skip_connect', 1]],
                 'normal_concat': [2], 'reduce': [], 'reduce_concat': [0]}),
     'cannot read state 2'),
    (json.dumps({'normal': [['skip_connect', 0]], 'normal_concat': [2],
                 'reduce': [], 'reduce_concat': [0]}), 'two \\(op, input\\)'),
    ("Genotype(normal=__import__('os'))", 'only literals'),
    ('Genotype(normal=[', 'Malformed genotype notation'),
    ('Foo(normal=[])', "must be a call 'Genotype"),
])
def test_malformed_input_gives_clear_error(text, match):
  with pytest.raises(G.GenotypeError, match=match):
    G.parse(text)


def test_svg_pictures(tmp_path):
  paths = G.write_svg(G.DARTS_V2, str(tmp_path / 'g'))
  for p in paths:
    text = open(p).read()
    assert text.startswith('<svg') and text.rstrip().endswith('</svg>')
    assert 'sep_conv_3x3' in text or 'max_pool_3x3' in text


def test_random_genotypes_are_valid_and_cover_the_space():
  space = DartsCellSpace()
  rng = np.random.default_rng(0)
  seen_ops, seen_inputs = set(), set()
  for _ in range(200):
    g = G.random_genotype(space, rng)   # Validated by Genotype itself.
    for node in range(space.steps):
      a, b = g.normal[2 * node], g.normal[2 * node + 1]
      assert a[1] != b[1]               # Two distinct inputs per node.
      seen_inputs.update([(node, a[1]), (node, b[1])])
    seen_ops.update(op for op, _ in g.normal + g.reduce)
  assert seen_ops == set(space.primitives) - {'none'}
  assert seen_inputs == set(space.edges())


def _inside(point, box):
  x, y = point
  bx, by, bw, bh = box
  return bx + 1 < x < bx + bw - 1 and by + 1 < y < by + bh - 1


@pytest.mark.parametrize('name', ['DARTS_V1', 'DARTS_V2', 'NASNet',
                                  'AmoebaNet', 'ENAS', 'random'])
def test_cell_pictures_keep_labels_apart_and_edges_off_the_boxes(name):
  """In every zoo cell (and 20 random ones): no two op labels overlap, no
  edge runs through a state's box, and every edge ends at its state."""
  if name == 'random':
    rng = np.random.default_rng(0)
    space = DartsCellSpace()
    cells = [(c.normal, c.normal_concat) for c in
             (G.random_genotype(space, rng) for _ in range(20))]
  else:
    g = G.load(name)
    cells = [(g.normal, g.normal_concat), (g.reduce, g.reduce_concat)]
  for pairs, concat in cells:
    lay = G.cell_layout(pairs, concat)
    labels = lay.label_boxes()
    assert len(labels) == len(pairs)
    for i, (x1, y1, w1, h1) in enumerate(labels):
      for x2, y2, w2, h2 in labels[i + 1:]:
        assert not (x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and
                    y2 < y1 + h1), (name, pairs)
    assert len(lay.arcs) == len(pairs) + len(concat)
    for arc in lay.arcs:
      for point in arc.points()[2:-2]:
        for box in lay.boxes.values():
          assert not _inside(point, box), (name, arc)
    for n, (_, src) in enumerate(pairs):
      arc = lay.arcs[n]
      for (x, y), state in (((arc.x1, arc.y1), src),
                            ((arc.x2, arc.y2), n // 2 + 2)):
        bx, by, bw, bh = lay.boxes[state]
        assert bx <= x <= bx + bw and y in (by, by + bh), (name, arc)


def test_bad_genotype_paths_say_what_is_wrong(tmp_path):
  """A missing file is not called an unknown name; a directory and a binary
  file are refused with a GenotypeError (a user error: exit 2), not a
  traceback."""
  missing = str(tmp_path / 'found' / 'genotype.json')
  with pytest.raises(G.GenotypeError, match='No genotype or arc file at'):
    G.load(missing)
  with pytest.raises(G.GenotypeError, match='is a directory'):
    G.load(str(tmp_path))
  binary = tmp_path / 'weights.bin'
  binary.write_bytes(bytes(range(256)))
  with pytest.raises(G.GenotypeError, match='not a readable text file'):
    G.load(str(binary))
  with pytest.raises(G.GenotypeError, match='Unknown genotype'):
    G.load('DARTS_V3')
