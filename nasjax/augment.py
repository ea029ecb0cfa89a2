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


def cutout(x: jax.Array, rng: jax.Array, length: int) -> jax.Array:
  """Zeroes one length x length square per image, clipped at the border.

  As the reference's `Cutout`: the centre is uniform over the pixels and the
  square covers rows [cy - length // 2, cy + length // 2) (likewise columns).
  """
  b, h, w, _ = x.shape
  k_y, k_x = jax.random.split(rng)
  cy = jax.random.randint(k_y, (b, 1, 1, 1), 0, h)
  cx = jax.random.randint(k_x, (b, 1, 1, 1), 0, w)
  rows = jnp.arange(h)[None, :, None, None]
  cols = jnp.arange(w)[None, None, :, None]
  half = length // 2
  inside = ((rows >= cy - half) & (rows < cy + half) &
            (cols >= cx - half) & (cols < cx + half))
  return jnp.where(inside, jnp.zeros((), x.dtype), x)


def _preprocess(images, rng, train, *, mean, std, crop_padding, flip,
                cutout_length, dtype):
  x = images.astype(dtype) / 255.0
  if train and (crop_padding or flip):
    x = random_crop_flip(x, rng, crop_padding, flip)
  x = (x - jnp.asarray(mean, dtype)) / jnp.asarray(std, dtype)
  if train and cutout_length:
    x = cutout(x, jax.random.fold_in(rng, 1), cutout_length)
  return x


def make_preprocess(*, mean, std, crop_padding: int, flip: bool,
                    cutout_length: int = 0, dtype=jnp.float32):
  """(uint8 [B, H, W, C], rng, train) -> normalised float [B, H, W, C].

  Cutout (retraining only) is applied after normalisation, as in the
  reference, so the square is 0 = the mean colour.
  """
  return functools.partial(_preprocess, mean=tuple(mean), std=tuple(std),
                           crop_padding=crop_padding, flip=flip,
                           cutout_length=cutout_length, dtype=dtype)
