"""The ENAS children's operations as pure functions of arrays and weights.

The shared-weight children (`nasjax.enas.child`) choose an op per node with
`lax.switch` over these functions, after gathering the weights of the chosen
(node, input) or (layer, op); the fixed networks (`nasjax.enas.fixed`) call
the same functions with weights of their own. Conventions follow the
reference TF code (`melodyguan/enas`, `src/cifar10/{micro,general}_child.py`):

* convolutions without bias, 'SAME' padding, NHWC;
* a separable convolution is a depthwise k x k (one filter per channel)
  then a 1x1 convolution; the micro child stacks two [ReLU, separable, BN];
* average pooling does not count padded cells; max pooling pads with -inf;
* BatchNorm with eps 1e-5 (1e-3 after the macro branches' k x k
  convolutions, the reference's `batch_norm_with_mask`) and running
  averages with momentum 0.1 (TF's decay 0.9), the unbiased batch variance
  in the running one (`layers.BatchNorm`'s convention);
* weights start from He-normal with the fan-in of the weight as used (the
  reference stores its per-input banks as [inputs, k*k*C] matrices, so
  Keras's initialiser takes the number of inputs for the fan-in, about
  sqrt(C) too large a scale: an accident not copied).

Synopsis:

  y = sep_conv(x, {'dw': [2, k, k, C], 'pw': [2, C, C], 'scale': [2, C],
                   'offset': [2, C]})
  y, stats = bn(x, {'scale': s, 'offset': o}, {'mean': m, 'var': v},
                train=True)
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from nasjax import layers


def he_init(fan_in: int):
  """Normal(0, sqrt(2 / fan_in)), whatever the shape."""
  std = (2.0 / fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.normal(key, shape, dtype)

  return init


def batch_norm(x, scale, offset, eps: float = 1e-5):
  """Normalises with the batch statistics (the micro child's BN: always)."""
  mean = jnp.mean(x, (0, 1, 2))
  var = jnp.mean(jnp.square(x - mean), (0, 1, 2))
  return (x - mean) * lax.rsqrt(var + eps) * scale + offset


def bn(x, params, stats, *, train: bool, eps: float = 1e-5,
       momentum: float = 0.1, update: bool = True):
  """BatchNorm with running statistics: (y, new stats).

  Training normalises with the batch statistics and, when `update`,
  returns updated running ones; inference uses the running ones.
  """
  if not train:
    mean, var = stats['mean'], stats['var']
    y = (x - mean) * lax.rsqrt(var + eps)
    return y * params['scale'] + params['offset'], stats
  mean, var = layers.batch_moments(x, lax.stop_gradient(stats['mean']))
  y = (x - mean) * lax.rsqrt(var + eps) * params['scale'] + params['offset']
  if not update:
    return y, stats
  n = x.size // x.shape[-1]
  unbiased = lax.stop_gradient(var * (n / max(n - 1, 1)))
  new = {'mean': (1 - momentum) * stats['mean'] +
                 momentum * lax.stop_gradient(mean),
         'var': (1 - momentum) * stats['var'] + momentum * unbiased}
  return y, new


def conv(x, w):
  """k x k convolution ([k, k, C_in, C_out]) or 1x1 ([C_in, C_out])."""
  if w.ndim == 2:
    return layers.pointwise_conv(x, w)
  return layers.conv2d(x, w)


def conv_in_switch(x, w):
  """`conv` for a branch of the shared child's `switch`: a k x k
  convolution's backward pass in XLA:CPU's fast layout
  (`layers.conv2d_in_switch`)."""
  if w.ndim == 2:
    return conv(x, w)
  return layers.conv2d_in_switch(x, w)


def separable(x, dw, pw):
  """Depthwise k x k ([k, k, C]) then 1x1 ([C, C_out]), stride 1."""
  return layers.pointwise_conv(layers.depthwise_conv(x, dw), pw)


def sep_conv(x, w):
  """The micro child's separable op: [ReLU, separable, batch-stat BN] x 2.

  `w` holds the two stacks on a leading axis: dw [2, k, k, C], pw [2, C, C],
  scale and offset [2, C].
  """
  for s in range(2):
    x = separable(jax.nn.relu(x), w['dw'][s], w['pw'][s])
    x = batch_norm(x, w['scale'][s], w['offset'][s])
  return x


def avg_pool(x):
  return layers.avg_pool_3x3(x, 1)


def max_pool(x):
  return layers.max_pool_3x3(x, 1)


def factorized_reduce(x, w1, w2):
  """Halves H and W without dropping pixels: two 1x1 convs on the even and
  on the odd pixels (the second path padded by one at the bottom right),
  concatenated. No ReLU or BN here (callers add them, as the reference)."""
  odd = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1::2, 1::2, :]
  return jnp.concatenate([layers.pointwise_conv(x[:, ::2, ::2, :], w1),
                          layers.pointwise_conv(odd, w2)], axis=-1)


def drop_path(x, keep, rng):
  """Keeps each example with probability `keep` (traced), scaled by 1/keep."""
  mask = jax.random.bernoulli(rng, keep, (x.shape[0], 1, 1, 1))
  return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def switch(branches, index, x, params, state):
  """`lax.switch(index, branches, x, params, state)` for branches
  `(x, params, state) -> (y, new state)`, differentiable in x and params,
  whose backward pass recomputes the chosen branch.

  The VJP of a plain `lax.switch` carries the intermediates of every branch
  out of the forward pass (zeros for the branches not taken): on CPU that
  made a shared child's training step 2-4x the step of the fixed network of
  the same arc (benchmarks/README.md). Here the forward pass keeps only its
  inputs, and the backward pass runs the chosen branch's VJP: one more
  forward pass of one op, as rematerialisation. `state` (e.g. BatchNorm
  statistics) gets no gradient.
  """
  return lax.switch(index, branches, x, params, state)


def _switch_fwd(branches, index, x, params, state):
  return switch(branches, index, x, params, state), (index, x, params, state)


def _switch_bwd(branches, res, ct):
  index, x, params, state = res

  def vjp_of(fn):
    def grads(x, params, state, ct_y):
      return jax.vjp(lambda x, p: fn(x, p, state)[0], x, params)[1](ct_y)
    return grads

  gx, gp = lax.switch(index, [vjp_of(fn) for fn in branches], x, params,
                      state, ct[0])
  return None, gx, gp, jax.tree.map(jnp.zeros_like, state)


switch.defvjp(_switch_fwd, _switch_bwd)
