"""On-device input preprocessing: random crop with padding, flip, normalise.

Runs inside the jitted step, so the host only ships uint8 batches and the
randomness comes from the step's PRNG key (resuming at step t reproduces the
augmentation of step t exactly, whatever the number of devices). The order is
the reference's (torchvision: pad with zeros, crop, flip, then normalise), so
padded pixels are black before normalisation.

Synopsis:

  prep = make_preprocess(mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26),
                         crop_padding=4, flip=True)
  x = prep(uint8_images, rng, train=True)   # [B, H, W, C] float32
"""

import functools

import jax
import jax.numpy as jnp


def random_crop_flip(images: jax.Array, rng: jax.Array, padding: int,
                     flip: bool) -> jax.Array:
  """Pad by `padding`, crop back to size at a random offset, maybe flip."""
  b, h, w, _ = images.shape
  k_crop, k_flip = jax.random.split(rng)
  if padding:
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding),
                              (0, 0)))
    offsets = jax.random.randint(k_crop, (b, 2), 0, 2 * padding + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(
        img, (o[0], o[1], 0), (h, w, img.shape[-1]))
    images = jax.vmap(crop)(padded, offsets)
  if flip:
    do_flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    images = jnp.where(do_flip, images[:, :, ::-1, :], images)
  return images


def _preprocess(images, rng, train, *, mean, std, crop_padding, flip, dtype):
  x = images.astype(dtype) / 255.0
  if train and (crop_padding or flip):
    x = random_crop_flip(x, rng, crop_padding, flip)
  return (x - jnp.asarray(mean, dtype)) / jnp.asarray(std, dtype)


def make_preprocess(*, mean, std, crop_padding: int, flip: bool,
                    dtype=jnp.float32):
  """(uint8 [B, H, W, C], rng, train) -> normalised float [B, H, W, C]."""
  return functools.partial(_preprocess, mean=tuple(mean), std=tuple(std),
                           crop_padding=crop_padding, flip=flip, dtype=dtype)
