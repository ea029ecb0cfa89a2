"""What a run records per epoch, in memory and in `workdir/history.json`.

A search records, per epoch, the mean training metrics (losses and
accuracies of both halves), softmax(alpha) of every edge of both cells, and
the genotype derived at that point; a retraining records the training
metrics and, when the test split was evaluated, its loss and accuracy.
`nasjax.plot` draws these.

With a workdir, the history is rewritten at the end of every epoch and a
resumed run keeps the epochs up to its checkpoint, so the history of a
resumed run equals that of an uninterrupted one.

  record = result.history[-1]
  record.alpha['normal']     # [edges, ops], rows sum to 1
  record.genotype            # derived from alpha at the end of that epoch
  record.arcs                # ENAS: best sampled arcs and their accuracy
"""

import dataclasses
import json
import os

import numpy as np

from nasjax import genotype as genotype_lib

FILENAME = 'history.json'


@dataclasses.dataclass
class EpochRecord:
  epoch: int                 # 0-based
  step: int                  # global step at the end of the epoch
  train: dict[str, float]    # mean of each step metric over the epoch
  alpha: dict[str, np.ndarray] | None = None  # cell type -> softmax [E, K]
  genotype: genotype_lib.Genotype | None = None
  test: dict[str, float] | None = None        # evaluated test split
  # ENAS: the best arcs sampled at the end of the epoch, best first:
  # [{'arc': the reference's arc string, 'accuracy': validation accuracy}].
  arcs: list[dict] | None = None

  def to_dict(self) -> dict:
    return {
        'epoch': self.epoch, 'step': self.step, 'train': self.train,
        'alpha': (None if self.alpha is None else
                  {k: np.asarray(v).tolist() for k, v in self.alpha.items()}),
        'genotype': (None if self.genotype is None else
                     genotype_lib.to_dict(self.genotype)),
        'test': self.test,
        'arcs': self.arcs,
    }

  @classmethod
  def from_dict(cls, d: dict) -> 'EpochRecord':
    return cls(
        epoch=d['epoch'], step=d['step'], train=d['train'],
        alpha=(None if d.get('alpha') is None else
               {k: np.asarray(v, np.float32) for k, v in d['alpha'].items()}),
        genotype=(None if d.get('genotype') is None else
                  genotype_lib.from_dict(d['genotype'])),
        test=d.get('test'), arcs=d.get('arcs'))


def softmax(alpha: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Row-wise softmax of every cell type's alpha, as float32 numpy."""
  return {k: genotype_lib.softmax(a).astype(np.float32)
          for k, a in alpha.items()}


def add(records: list[EpochRecord], record: EpochRecord) -> None:
  """Appends `record`, or replaces the last one if it is of the same epoch
  (a run stopped mid-epoch recorded the part it ran; its resumption records
  the whole epoch)."""
  if records and records[-1].epoch == record.epoch:
    records[-1] = record
  else:
    records.append(record)


def save(workdir: str, records: list[EpochRecord]) -> None:
  """Rewrites `workdir/history.json` (atomically: a crash keeps the old)."""
  path = os.path.join(workdir, FILENAME)
  with open(path + '.tmp', 'w') as f:
    json.dump([r.to_dict() for r in records], f)
  os.replace(path + '.tmp', path)


def load(workdir: str, up_to_step: int) -> list[EpochRecord]:
  """The records in `workdir` of epochs that ended at or before a step."""
  path = os.path.join(workdir, FILENAME)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    records = [EpochRecord.from_dict(d) for d in json.load(f)]
  return [r for r in records if r.step <= up_to_step]
