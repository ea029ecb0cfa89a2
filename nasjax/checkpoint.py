"""Orbax checkpoints of a state: every array of it plus JSON metadata.

A checkpoint holds what the state's `checkpoint_items()` lists (for a search:
the weights, BatchNorm statistics, alpha, both optimiser states, the step and
the PRNG key; `SearchState`, `TrainState`), and a
JSON record (data position, genotype, config) beside it. The data position is
the step: batches are a function of (seed, step) (nasjax/data/pipeline.py).

Synopsis:

  ckpt = Checkpointer(workdir / 'checkpoints', max_to_keep=3)
  ckpt.save(state, {'step': 10})
  state, meta = ckpt.restore_latest(template_state)   # (None, None) if empty
"""

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True))

  def save(self, state, meta: dict, *, wait: bool = True) -> None:
    step = int(jax.device_get(state.step))
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state.checkpoint_items()),
        meta=ocp.args.JsonSave(meta)), force=True)
    if wait:
      self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def restore_meta(self, step: int) -> dict:
    """The JSON metadata saved with the checkpoint of `step`."""
    out = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))
    return out['meta']

  def restore_latest(self, template):
    """Restores the newest checkpoint into `template`'s structure/sharding."""
    step = self._manager.latest_step()
    if step is None:
      return None, None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            template.checkpoint_items())
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
    return template.replace_items(dict(out['state'])), out['meta']

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
