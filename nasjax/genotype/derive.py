"""Genotypes from alpha (the paper's rule), and uniformly random ones.

Per intermediate node keep the two incoming edges whose strongest non-'none'
softmax weight is largest (ties keep the lower input index), and on each the
argmax op excluding 'none' (the first maximum wins); pairs are listed
strongest edge first (`Network.genotype` in the reference).
"""

from typing import Mapping

import numpy as np

from nasjax.genotype.cell import Genotype, GenotypeError, Pair
from nasjax.search_spaces import darts_cell

def derive_cell(weights: np.ndarray, space: darts_cell.DartsCellSpace,
                top_k: int = 2) -> tuple[Pair, ...]:
  """Discrete cell from softmax(alpha) weights [E, K] of one cell type."""
  weights = np.asarray(weights, np.float64)
  if weights.shape != (space.num_edges, space.num_ops):
    raise GenotypeError(f'alpha weights have shape {weights.shape}; the space '
                        f'needs {(space.num_edges, space.num_ops)}.')
  usable = [k for k, p in enumerate(space.primitives) if p != 'none']
  if not usable:
    raise GenotypeError("The space has no op other than 'none'.")
  pairs = []
  for node in range(space.steps):
    inputs = range(space.num_inputs + node)
    rows = [weights[space.edge_index(node, j), usable] for j in inputs]
    strength = [r.max() for r in rows]
    # Stable sort on the negated strength: ties keep the lower input index.
    kept = sorted(inputs, key=lambda j: -strength[j])[:top_k]
    for j in kept:
      pairs.append((space.primitives[usable[int(np.argmax(rows[j]))]], j))
  return tuple(pairs)


def random_cell(space: darts_cell.DartsCellSpace, rng: np.random.Generator,
                top_k: int = 2) -> tuple[Pair, ...]:
  """A uniformly random discrete cell of the kind `derive_cell` returns.

  Per node: `top_k` distinct inputs, uniform among the earlier states; on
  each, an op uniform among the space's ops other than 'none'.
  """
  usable = [p for p in space.primitives if p != 'none']
  pairs = []
  for node in range(space.steps):
    inputs = rng.choice(space.num_inputs + node,
                        size=min(top_k, space.num_inputs + node),
                        replace=False)
    pairs.extend((usable[rng.integers(len(usable))], int(j)) for j in inputs)
  return tuple(pairs)


def random_genotype(space: darts_cell.DartsCellSpace,
                    rng: np.random.Generator) -> Genotype:
  """A random genotype from the space a search over `space` derives from."""
  return Genotype(random_cell(space, rng), space.concat,
                  random_cell(space, rng), space.concat)

def softmax(x) -> np.ndarray:
  """Row-wise softmax in float64 (derivation and the search history)."""
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def from_alpha(alpha: Mapping[str, np.ndarray],
               space: darts_cell.DartsCellSpace) -> Genotype:
  """The paper's derivation: top-2 edges per node, argmax non-'none' op."""
  concat = space.concat
  return Genotype(derive_cell(softmax(alpha['normal']), space), concat,
                  derive_cell(softmax(alpha['reduce']), space), concat)
