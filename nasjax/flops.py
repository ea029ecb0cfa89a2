"""Multiply-accumulate counts of a traced function, read off its jaxpr.

Counts what the DARTS papers' mult-add figures count: every convolution
(output elements x kernel taps x input channels per group) and every matrix
product (`dot_general`: output elements x contracted size, which covers 1x1
convolutions written as einsums and the classifier). Pools, BatchNorm,
activations and additions are not counted. Depthwise convolutions are traced
as grouped convolutions here, so they count k*k MACs per output element as
in PyTorch hook counters (the shift-and-add form used for speed computes the
same thing with multiplies and adds that this counter would not see).

Nothing is computed: the function is only traced, so counting a 224x224
ImageNet network takes seconds.

Synopsis:

  macs = flops.count_macs(lambda x: net.apply(variables, x, train=False),
                          jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
"""

import math
from typing import Any, Callable

import jax
from jax.extend import core

from nasjax import layers


def _count(jaxpr: core.Jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      rhs = eqn.invars[1].aval.shape
      out_feature_dim = eqn.params['dimension_numbers'].rhs_spec[0]
      per_output = math.prod(rhs) // rhs[out_feature_dim]
      total += math.prod(eqn.outvars[0].aval.shape) * per_output
    elif name == 'dot_general':
      (lhs_contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      contracted = math.prod(lhs[d] for d in lhs_contract)
      total += math.prod(eqn.outvars[0].aval.shape) * contracted
    repeat = eqn.params.get('length', 1) if name == 'scan' else 1
    for sub in core.jaxprs_in_params(eqn.params):
      total += repeat * _count(sub)
  return total


def count_macs(fn: Callable[..., Any], *args) -> int:
  """MACs of one call of `fn(*args)`; args may be `jax.ShapeDtypeStruct`s."""
  with layers.depthwise_impl('grouped'):
    closed = jax.make_jaxpr(fn)(*args)
  return _count(closed.jaxpr)
