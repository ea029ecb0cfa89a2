"""The NAS-Bench-201 space: cell strings, the table, the networks (checked
against the NB201 authors' code), and its supernet's two ways of mixing."""

import csv
import json
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasjax import errors
from nasjax import layers
from nasjax.mixing import Mixing
from nasjax.mixing import one_hot
from nasjax.search_spaces import nb201
from nasjax.search_spaces.nb201 import encoding
from nasjax.search_spaces.nb201 import networks
from nasjax.search_spaces.nb201 import table as table_lib
from tests import conftest
from tests import enas_final_test

BEST = ('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|'
        'nor_conv_1x1~1|nor_conv_3x3~2|')
SKIP = ('|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|'
        'skip_connect~1|skip_connect~2|')


def test_every_cell_string_round_trips():
  cells = encoding.all_cells()
  assert cells.shape == (15625, 6)
  strings = {encoding.to_string(c) for c in cells}
  assert len(strings) == 15625
  for i in (0, 1, 1234, 15624):
    c = tuple(cells[i])
    assert encoding.enumeration_index(c) == i
    assert encoding.from_enumeration_index(i) == c
    assert encoding.from_string(encoding.to_string(c)) == c
  assert encoding.from_string(BEST) == (3, 3, 3, 1, 2, 3)
  assert encoding.to_string((1,) * 6) == SKIP


@pytest.mark.parametrize('text,message', [
    ('|skip_connect~0|+|skip_connect~0|skip_connect~1|', 'expected 3 nodes'),
    ('|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|',
     "Unknown NB201 op 'conv'"),
    ('|none~1|+|none~0|none~1|+|none~0|none~1|none~2|', 'expected "<op>~0"'),
    ('|none~0|+|none~0|+|none~0|none~1|none~2|', 'node 2 has 1 inputs'),
    ('none~0+|none~0|none~1|+|none~0|none~1|none~2|', 'not enclosed'),
])
def test_malformed_cell_strings_are_user_errors(text, message):
  with pytest.raises(errors.UserError, match=message):
    encoding.from_string(text)


def test_cells_outside_the_space_are_user_errors():
  for bad in [(1, 2, 3), (0, 0, 0, 0, 0, 5), 'abc', None]:
    with pytest.raises(errors.UserError):
      encoding.check(bad)


def _shared_table():
  return table_lib.load(conftest.require_data(
      f'{conftest.TEST_DATA}/nb201/nb201_hp12.csv'))


def test_the_shared_table_reads_back_its_readme_facts():
  """The facts ../shared/data/nb201/README.md states, read through the
  table: every row's cell string parses to a cell whose string is the
  row's; the all-skip cell is index 1835 at 36.84 % CIFAR-10 test; the best
  cell by cifar10-val; random search best-of-k."""
  t = _shared_table()
  with open(t.path, newline='') as f:
    for row in csv.DictReader(f):
      cell = encoding.from_string(row['cellstr'])
      assert encoding.to_string(cell) == row['cellstr']
      assert t.index(cell) == int(row['arch'])
  skip = encoding.from_string(SKIP)
  assert t.index(skip) == 1835
  assert t.accuracy(skip, 'cifar10-test') == 36.84
  best = t.best('cifar10-val')
  assert encoding.to_string(best) == BEST
  assert t.accuracy(best, 'cifar10-test') == 89.03
  assert t.columns['cifar10-test'].max() == 89.16
  for k, mean in ((10, 86.05), (100, 88.10)):
    m, _ = t.random_search(k, repeats=2000)
    assert abs(m - mean) < 0.15, (k, m)


def _write_table(path, rows, header=('arch', 'cellstr', 'cifar10-val',
                                     'cifar10-test')):
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)
  return str(path)


def _synthetic_rows():
  rng = np.random.default_rng(0)
  val = rng.uniform(10, 90, 15625)
  return [(15624 - i, encoding.to_string(c), f'{val[i]:.3f}',
           f'{val[i] + 1:.3f}') for i, c in enumerate(encoding.all_cells())]


def test_a_user_table_is_looked_up_and_never_selected_on_test(tmp_path):
  rows = _synthetic_rows()
  t = table_lib.load(_write_table(tmp_path / 't.csv', rows[::-1]))
  i = int(np.argmax([float(r[2]) for r in rows]))
  assert t.best('cifar10-val') == tuple(encoding.all_cells()[i])
  assert t.index(encoding.from_enumeration_index(3)) == 15621
  assert t.accuracy(encoding.from_enumeration_index(3), 'cifar10-test') == (
      float(rows[3][3]))
  with pytest.raises(errors.UserError, match='Select on a -val column'):
    t.best('cifar10-test')
  with pytest.raises(errors.UserError, match="no column 'cifar100-val'"):
    t.random_search(10, dataset='cifar100')
  with pytest.raises(errors.UserError, match="no column 'cifar100-val'"):
    t.best('cifar100-val')


def test_bad_tables_are_data_errors_naming_the_problem(tmp_path):
  rows = _synthetic_rows()
  cases = {
      'missing': (None, 'No NB201 table at'),
      'columns': (_write_table(tmp_path / 'c.csv', [r[:2] for r in rows],
                               header=('arch', 'cellstr')),
                  'needs the columns'),
      'short': (_write_table(tmp_path / 's.csv', rows[:-1]), 'has 15624 of'),
      'twice': (_write_table(tmp_path / 'd.csv', rows + rows[:1]),
                'line 15627: cell .* appears twice'),
      'bad cell': (_write_table(tmp_path / 'b.csv', [
          (0, '|bogus~0|', 1, 2)] + rows), 'line 2: Malformed'),
      'bad number': (_write_table(tmp_path / 'n.csv', [
          rows[0][:2] + ('x', '1')] + rows[1:]), 'line 2:'),
  }
  for name, (path, message) in cases.items():
    with pytest.raises(errors.UserError, match=message):
      table_lib.load(path or str(tmp_path / 'none.csv'))
    del name


# Parameter counts of the discrete networks (C=16, N=5, 10 classes) as the
# NB201 authors' code counts them (docs/reference_figures.md, section 7).
AUTODL_PARAMS = {
    BEST: 1_073_466,
    SKIP: 73_306,
    '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|': 73_306,
    '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|'
    'nor_conv_3x3~1|nor_conv_3x3~2|': 1_531_546,
    '|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|'
    'nor_conv_1x1~1|nor_conv_1x1~2|': 241_306,
    '|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|'
    'avg_pool_3x3~1|avg_pool_3x3~2|': 73_306,
}
AUTODL_SUPERNET_PARAMS = 1_692_826


def _count(module, *args):
  shapes = jax.eval_shape(functools.partial(module.init, train=False),
                          jax.random.key(0), jnp.zeros((1, 32, 32, 3)), *args)
  return layers.param_count(shapes['params'])


def test_parameter_counts_equal_the_nb201_authors_code():
  for text, count in AUTODL_PARAMS.items():
    assert _count(networks.Network(encoding.from_string(text))) == count, text
  # AutoDL's search cells give their convs a bias (bias = not affine) that
  # BatchNorm in training mode cancels exactly; ours have none: 2 convs x
  # (16 + 32 + 64) channels x 6 edges x 5 cells fewer.
  mixing = {'cell': Mixing(jnp.zeros((6, 5)))}
  assert (_count(networks.Supernet(), mixing) ==
          AUTODL_SUPERNET_PARAMS - 2 * (16 + 32 + 64) * 6 * 5)


SMALL = dict(num_classes=10, channels=4, cells_per_stage=1)
CELL = (3, 2, 4, 1, 0, 3)  # Every op kind, one 'none'.


def _supernet_and_network(unselected='reference'):
  sup = networks.Supernet(**SMALL, unselected_weights=unselected)
  net = networks.Network(CELL, **SMALL)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  v = sup.init(jax.random.key(0), x, {'cell': Mixing(jnp.ones((6, 5)) / 5)},
               train=False)
  nv = net.init(jax.random.key(2), x, train=False)

  def copy(dst, src):  # The network's weights from the supernet's.
    return {k: (d if k not in src else
                copy(d, src[k]) if isinstance(d, dict) else src[k])
            for k, d in dst.items()}

  return sup, net, x, v, {'params': copy(nv['params'], v['params']),
                          'batch_stats': nv['batch_stats']}


def test_the_supernet_under_one_cell_computes_that_cells_network():
  """The supernet with a one-hot mixing of a cell (every op computed and
  weighted, and only the selected op by `nn.switch`) equals the discrete
  network of that cell holding the same weights (affine BatchNorm at its
  initial scale 1, shift 0): logits and the gradient of every shared
  weight."""
  sup, net, x, v, nv = _supernet_and_network()
  mix = one_hot(jnp.asarray(CELL), 5)
  labels = jnp.arange(4)

  def sup_loss(params, m):
    logits, _ = sup.apply({'params': params, 'batch_stats': v['batch_stats']},
                          x, {'cell': m}, train=True, mutable=['batch_stats'])
    return jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels]), logits

  def net_loss(params):
    logits, _ = net.apply({'params': params, 'batch_stats': nv['batch_stats']},
                          x, train=True, mutable=['batch_stats'])
    return jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels]), logits

  (_, want), gn = jax.value_and_grad(net_loss, has_aux=True)(nv['params'])
  for m in (mix, Mixing(mix.weights)):  # Selected op only; every op.
    (_, got), gs = jax.value_and_grad(sup_loss, has_aux=True)(v['params'], m)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    flat_n = dict(jax.tree_util.tree_leaves_with_path(gn))
    flat_s = dict(jax.tree_util.tree_leaves_with_path(gs))
    for path, g in flat_n.items():
      if path[-1].key in ('scale', 'bias') and 'edge' in str(path):
        continue  # The network's affine BatchNorm has no supernet twin.
      np.testing.assert_allclose(flat_s[path], g, rtol=2e-4, atol=1e-6,
                                 err_msg=str(path))
    # The ops the cell does not use get no gradient.
    for path, g in flat_s.items():
      if path not in flat_n:
        assert not np.any(g), path


def test_unselected_weights_reference_drop_and_every_op():
  """Under a hard mixing the three forms compute the same logits and give
  the selected ops the same weight gradient, and the shared weights the
  same gradients; for the unselected ops' weights 'reference' passes the
  gradient of a scalar (AutoDL's forward_gdas: the same for every op of an
  edge), 'drop' none, 'every_op' that of the op's output (the
  straight-through form, differing op by op)."""
  grads = {}
  for form in networks.UNSELECTED_WEIGHTS:
    sup, _, x, v, _ = _supernet_and_network(form)
    index = jnp.asarray(CELL)

    def f(w, params):
      logits, _ = sup.apply({**v, 'params': params}, x,
                            {'cell': Mixing(w, index)}, train=True,
                            mutable=['batch_stats'])
      return jnp.sum(jnp.sin(logits)), logits

    (_, logits), g = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
        jax.nn.one_hot(index, 5), v['params'])
    grads[form] = (logits,) + g
  l_ref, g_ref, p_ref = grads['reference']
  selected = np.asarray(jax.nn.one_hot(jnp.asarray(CELL), 5), bool)
  for form in ('drop', 'every_op'):
    logits, g, p = grads[form]
    np.testing.assert_allclose(logits, l_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g[selected], g_ref[selected], rtol=1e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, rtol=1e-4, atol=1e-6), p, p_ref)
  g_drop, g_every = grads['drop'][1], grads['every_op'][1]
  assert not np.any(g_drop[~selected])
  assert np.all(g_ref[~selected] != 0)
  # 'none' outputs zeros, so its weight's gradient under every_op is 0.
  assert np.all(g_every[:, 1:][~selected[:, 1:]] != 0)
  assert not np.any(g_every[:, 0][~selected[:, 0]])
  for e in range(6):  # One scalar per edge, against one value per op.
    np.testing.assert_allclose(g_ref[e][~selected[e]],
                               g_ref[e][~selected[e]][0], rtol=1e-6)
  assert not np.allclose(g_every[~selected], g_ref[~selected])


def test_the_space_object_derives_and_samples_cells():
  space = nb201.SPACE
  alpha = np.zeros((6, 5))
  alpha[np.arange(6), CELL] = 1.0
  assert space.from_alpha({'cell': alpha}) == CELL
  rng = np.random.default_rng(0)
  cells = np.asarray([space.random_arch(rng) for _ in range(5000)])
  counts = np.bincount(cells.ravel(), minlength=5)
  assert np.all(np.abs(counts - 6000) < 4 * np.sqrt(6000 * 0.8)), counts
  m = space.arch_mixing(CELL)['cell']
  assert m.index.tolist() == list(CELL)
  np.testing.assert_array_equal(m.weights, np.eye(5)[list(CELL)])
  assert space.from_decisions(np.asarray(CELL)) == CELL


# An independent NumPy forward pass of the discrete network in inference
# mode (float64), transcribed from AutoDL-Projects' `TinyNetwork`,
# `InferCell`, `ReLUConvBN`, `POOLING` and `ResNetBasicblock`.


def _np_bn(x, p, s, eps=1e-5):
  return (x - s['mean']) / np.sqrt(s['var'] + eps) * p['scale'] + p['bias']


def _np_relu_conv_bn(x, p, s, stride=1):
  return _np_bn(enas_final_test._np_conv(np.maximum(x, 0), p['kernel'],
                                         stride), p['bn'], s['bn'])


def _np_network(cell, x, p, s):
  x = _np_bn(enas_final_test._np_conv(x, p['stem_conv']), p['stem_bn'],
             s['stem_bn'])
  for i in range(len([k for k in p if k.startswith('layer')])):
    lp, ls = p[f'layer{i}'], s[f'layer{i}']
    if 'conv_a' in lp:  # The basic block: residual + two convs.
      y = _np_relu_conv_bn(x, lp['conv_a'], ls['conv_a'], stride=2)
      y = _np_relu_conv_bn(y, lp['conv_b'], ls['conv_b'])
      b, h, w, c = x.shape
      pooled = x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))
      x = y + pooled @ lp['downsample']
      continue
    nodes = [x]
    for node in range(1, 4):
      total = np.zeros_like(x)
      for j in range(node):
        e = encoding.EDGES.index((node, j))
        op = encoding.OPS[cell[e]]
        if 'conv' in op:
          total += _np_relu_conv_bn(nodes[j], lp[f'edge{e}_{op}'],
                                    ls[f'edge{e}_{op}'])
        elif op == 'avg_pool_3x3':
          total += enas_final_test._np_pool(nodes[j], 1, 'avg')
        elif op == 'skip_connect':
          total += nodes[j]
      nodes.append(total)
    x = nodes[-1]
  x = np.maximum(_np_bn(x, p['last_bn'], s['last_bn']), 0).mean((1, 2))
  return x @ p['classifier']['kernel'] + p['classifier']['bias']


@pytest.mark.parametrize('cell', [CELL, (2, 4, 1, 3, 3, 4)])
def test_the_network_equals_an_independent_numpy_forward_pass(cell):
  """Every op (3x3 and 1x1 ReLU-conv-BN, the average pool that does not
  count padding, identity, none), the basic block's strided convs and
  pooled shortcut, stem and head, with random weights, BatchNorm affine
  parameters and running statistics: inference logits equal the NumPy
  transcription above."""
  net = networks.Network(cell, **SMALL)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
  v = jax.device_get(net.init(jax.random.key(0), x, train=False))
  v = jax.tree_util.tree_map_with_path(
      lambda path, leaf: enas_final_test._randomised(str(path[-1].key), leaf,
                                                   rng), v)
  got = net.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), v), x,
                  train=False)
  want = _np_network(cell, x.astype(np.float64), v['params'],
                     v['batch_stats'])
  np.testing.assert_allclose(got, want, rtol=1e-4,
                             atol=1e-4 * np.abs(want).max())


def test_batchnorm_in_the_nb201_networks_is_exact_at_any_offset():
  """The scale of a sampled supernet's activations jumps from step to step
  (a cell of skip connections multiplies its input by 4, 15 cells by 1e9),
  so its BatchNorm cannot rely on the running mean to keep the one-pass
  variance accurate: at a mean 1e5 standard deviations away from it the
  one-pass form cancels to 0 and the supernet's loss explodes (it did: GDAS
  on C=4, N=5 reached a loss of 100 after 14 steps). Two passes normalise
  exactly."""
  rng = np.random.default_rng(0)
  x = (1e4 + 0.1 * rng.normal(size=(16, 4, 4, 3))).astype(np.float32)
  for two_pass, ok in ((True, True), (False, False)):
    bn = layers.BatchNorm(False, two_pass=two_pass)
    v = bn.init(jax.random.key(0), x, train=False)
    y, _ = bn.apply(v, x, train=True, mutable=['batch_stats'])
    assert (abs(float(jnp.std(y)) - 1) < 1e-2) == ok, float(jnp.std(y))
  # Every BatchNorm of both networks is two-pass.
  seen = []

  def record(f, args, kwargs, context):
    if isinstance(context.module, layers.BatchNorm):
      seen.append(context.module.two_pass)
    return f(*args, **kwargs)

  mixing = {'cell': Mixing(jnp.ones((6, 5)) / 5)}
  for net, extra in ((networks.Network(CELL, **SMALL), ()),
                     (networks.Supernet(**SMALL), (mixing,))):
    with nn.intercept_methods(record):
      net.init(jax.random.key(0), x, *extra, train=False)
  assert len(seen) > 20 and all(seen), seen


def test_the_retraining_presets_build_the_benchmarks_network_and_recipe():
  """`nasjax.final` retrains an NB201 cell in NB201's network with its
  recipe: the preset's model has the authors' parameter count, its
  optimiser is SGD with Nesterov momentum 0.9 and coupled weight decay
  5e-4, lr 0.1 by cosine to 0 over 200 (or 12) epochs; a cell of another
  family, or a preset of another family, is refused naming the field."""
  import optax  # pylint: disable=g-import-not-at-top
  from nasjax import configs  # pylint: disable=g-import-not-at-top
  from nasjax.data import pipeline  # pylint: disable=g-import-not-at-top
  from nasjax.final import train  # pylint: disable=g-import-not-at-top
  from nasjax import genotype  # pylint: disable=g-import-not-at-top
  c = configs.retrain('nb201')
  cell = genotype.load(BEST)
  assert isinstance(cell, encoding.Nb201Cell) and str(cell) == BEST
  model = train.make_model(c, cell, 10)
  assert model.cell == (3, 3, 3, 1, 2, 3) and model.cells_per_stage == 5
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert layers.param_count(shapes['params']) == AUTODL_PARAMS[BEST]
  ds = pipeline.Dataset('cifar10', pipeline.Split(
      np.zeros((256, 32, 32, 3), np.uint8), np.zeros(256, np.int32)),
      pipeline.Split(np.zeros((1, 32, 32, 3), np.uint8),
                     np.zeros(1, np.int32)), 10, (0.5,) * 3, (0.25,) * 3)
  _, tx, _, schedule, _ = train.build(c, ds, cell, steps_per_epoch=1)
  assert (c.epochs, c.batch_size) == (200, 256)
  assert float(schedule(0)) == pytest.approx(0.1)
  assert float(schedule(100)) == pytest.approx(0.05, rel=1e-3)
  assert configs.retrain('nb201_12').epochs == 12
  # Two steps on a gradient g at weights w: Nesterov SGD with weight decay.
  w, g = jnp.ones(3), jnp.asarray([0.5, -1.0, 2.0])
  state = tx.init(w)
  u1, state = tx.update(g, state, w)
  w1 = optax.apply_updates(w, u1)
  u2, state = tx.update(g, state, w1)
  d0, d1 = g + 5e-4 * w, g + 5e-4 * w1
  m1, m2 = d0, 0.9 * d0 + d1          # PyTorch SGD's momentum buffer
  np.testing.assert_allclose(u1, -0.1 * (d0 + 0.9 * m1), rtol=1e-5)
  np.testing.assert_allclose(u2, -float(schedule(1)) * (d1 + 0.9 * m2),
                             rtol=1e-5)
  with pytest.raises(errors.ConfigError, match='config.model.kind'):
    train.make_model(configs.retrain('digits'), cell, 10)
  with pytest.raises(errors.ConfigError, match='config.model.kind'):
    train.make_model(c, genotype.DARTS_V2, 10)
  with pytest.raises(errors.UserError, match='Unknown NB201 op'):
    genotype.load('|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|')


def test_a_searched_cell_is_retrained_from_its_cell_file(tmp_path):
  """The NB201 GDAS search's cell.txt, retrained by `nasjax.retrain` (the
  tiny preset): the files a retraining writes name the cell, and a cell
  given as its 6 op indices is the same cell."""
  import nasjax  # pylint: disable=g-import-not-at-top
  from nasjax import genotype  # pylint: disable=g-import-not-at-top
  (tmp_path / 'cell.txt').write_text(BEST + '\n')
  r = nasjax.retrain('digits', str(tmp_path / 'cell.txt'), 'nb201_tiny',
                     workdir=str(tmp_path / 'run'), progress='none')
  assert r.status == 'completed' and 0 <= r.test_accuracy <= 1
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert genotype.from_dict(results['genotype']) == encoding.from_string(BEST)
  assert (tmp_path / 'run' / 'genotype.txt').read_text().strip() == BEST
  again = nasjax.retrain('digits', encoding.from_string(BEST), 'nb201_tiny',
                         workdir=str(tmp_path / 'run'), progress='none')
  assert again.test_accuracy == r.test_accuracy
