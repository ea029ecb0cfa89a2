"""Penn Treebank (Mikolov's files) for language modelling: tokens, batches, windows.

A corpus directory holds `ptb.train.txt`, `ptb.valid.txt` and `ptb.test.txt`
(one sentence per line, words split by spaces, `<unk>` for rare words, the
10,000-word vocabulary of Mikolov et al.). Reading follows the usual word-level
recipe: every line ends with `<eos>`; the vocabulary is built from the files in
the order train, valid, test, each word numbered when first seen, so every
split maps to the same ids.

For training, a split's ids are laid out as [rows, tokens] (`batchify`: the
stream cut into `rows` contiguous pieces, the remainder dropped) and read in
windows along the token axis (`window`); the hidden state of each row is
carried from one window to the next. Rows are the batch axis, sharded across
devices, and each host keeps its contiguous block of rows (`host_rows`).

Window lengths: the DARTS search draws `bptt`, or `bptt // 2` with probability
0.05 (`search_lengths`); retraining draws the AWD-LSTM variable length
(`retrain_length`). Both are pure functions of (seed, window index), so a
resumed run reads the same windows.

Synopsis:

  corpus = ptb.load('/data/ptb')
  train = ptb.batchify(corpus.train, 256)           # [256, N // 256]
  inputs, targets = ptb.window(train, position=0, length=35)
"""

import bisect
import dataclasses
import os

import numpy as np

from nasjax.data.pipeline import DataError

SPLITS = ('train', 'valid', 'test')
EOS = '<eos>'


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Token ids of the three splits over one vocabulary."""
  vocab: tuple[str, ...]
  train: np.ndarray  # int32 [tokens]
  valid: np.ndarray
  test: np.ndarray
  directory: str = ''

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)


def _read_words(path: str) -> list[str]:
  if not os.path.isfile(path):
    raise DataError(f'PTB file {path} does not exist. A PTB directory holds '
                    'ptb.train.txt, ptb.valid.txt and ptb.test.txt '
                    '(data/README.md says how to obtain them).')
  try:
    with open(path, encoding='utf-8') as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError as e:
    raise DataError(f'PTB file {path} is not UTF-8 text: {e}.') from None
  words = []
  for line in lines:
    words.extend(line.split())
    words.append(EOS)
  if not lines or len(words) == len(lines):
    raise DataError(f'PTB file {path} holds no words.')
  return words


def load(directory: str, *, files: dict[str, str] | None = None) -> Corpus:
  """Reads a PTB directory.

  Args:
    directory: holds `ptb.{train,valid,test}.txt`.
    files: optional split -> file name overrides (e.g. to read a directory
      whose files are named differently).

  Raises:
    DataError: a file is missing, unreadable or empty (the message names it).
  """
  names = {s: f'ptb.{s}.txt' for s in SPLITS}
  names.update(files or {})
  if not os.path.isdir(directory):
    raise DataError(f'PTB directory {directory} does not exist.')
  words = {s: _read_words(os.path.join(directory, names[s])) for s in SPLITS}
  index: dict[str, int] = {}
  for s in SPLITS:
    for w in words[s]:
      index.setdefault(w, len(index))
  ids = {s: np.fromiter((index[w] for w in words[s]), np.int32,
                        count=len(words[s])) for s in SPLITS}
  return Corpus(vocab=tuple(index), directory=directory, **ids)


def batchify(ids: np.ndarray, rows: int) -> np.ndarray:
  """[rows, len(ids) // rows]: row r is the r-th contiguous piece of the
  stream (the remainder is dropped), so each row reads on where the previous
  window of that row stopped."""
  n = len(ids) // rows
  if n < 2:
    raise DataError(f'{len(ids)} tokens cannot fill {rows} rows of at least 2 '
                    'tokens.')
  return np.ascontiguousarray(ids[:rows * n].reshape(rows, n))


def host_rows(data: np.ndarray, process_index: int,
              process_count: int) -> np.ndarray:
  """This host's contiguous block of rows (the global batch is the same for
  any number of hosts)."""
  rows = data.shape[0]
  if rows % process_count:
    raise DataError(f'{rows} rows do not divide across {process_count} hosts.')
  per = rows // process_count
  return data[process_index * per:(process_index + 1) * per]


def host_matrix(ids: np.ndarray, rows: int, bptt: int, process_index: int,
                process_count: int, split: str = 'training'
                ) -> tuple[np.ndarray, int]:
  """(this host's rows of `batchify(ids, rows)`, windows of `bptt` per row).

  Raises DataError, naming the config fields, if no window fits.
  """
  data = host_rows(batchify(ids, rows), process_index, process_count)
  windows = (data.shape[1] - 1) // bptt
  if windows < 1:
    raise DataError(
        f'The {split} split ({len(ids)} tokens) holds no window of {bptt} '
        f'tokens in {rows} rows (config.batch_size, config.bptt).')
  return data, windows


def window(data: np.ndarray, position: int,
           length: int) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, targets), each [rows, length]: tokens [position, position +
  length) and the next token of each. The window must fit: callers wrap or
  stop at `num_tokens(data) - 1`."""
  if position < 0 or position + length + 1 > data.shape[1]:
    raise ValueError(f'Window [{position}, {position + length}] does not fit '
                     f'{data.shape[1]} tokens per row.')
  return (data[:, position:position + length],
          data[:, position + 1:position + length + 1])


def search_windows(num_tokens: int, bptt: int, seed: int,
                   epoch: int, short_probability: float = 0.05
                   ) -> list[tuple[int, int]]:
  """(position, length) of the DARTS search's windows in epoch `epoch`.

  (num_tokens - 1) // bptt windows, read in order from position 0; each is
  bptt long, or bptt // 2 with probability `short_probability` (the
  reference's draw). Every window fits, so only the two lengths occur (two
  compiled programs); an epoch with short windows leaves a few more tokens
  at the end unread than the reference, which cuts its last window to fit.
  A pure function of (seed, epoch).
  """
  count = (num_tokens - 1) // bptt
  if count < 1:
    raise DataError(f'{num_tokens} tokens per row hold no window of {bptt}.')
  draws = np.random.default_rng([seed, epoch, 0x5eed]).random(count)
  lengths = np.where(draws < short_probability, bptt // 2, bptt)
  positions = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  return [(int(p), int(n)) for p, n in zip(positions, lengths)]


def retrain_length(bptt: int, rng: np.random.Generator,
                   max_delta: int = 20) -> int:
  """The AWD-LSTM window length: max(5, int(N(b, 5))) capped at bptt +
  max_delta, with b = bptt, or bptt / 2 with probability 0.05."""
  b = bptt if rng.random() < 0.95 else bptt / 2
  return int(min(max(5, int(rng.normal(b, 5))), bptt + max_delta))


def synthetic(vocab_size: int = 200, tokens: tuple[int, int, int] = (
    30_000, 6_000, 6_000), seed: int = 0, branching: int = 3,
              topics: int = 4, switch: float = 0.05) -> Corpus:
  """A small learnable corpus that needs no download, in PTB's form.

  Words `w0`.. and `<eos>` (the last id). The text comes from a hidden
  "topic" that changes with probability `switch` at each token; given the
  topic and the previous word, only `branching` words can follow, with
  random probabilities. A model that tracks the topic (which needs a memory
  of recent words) and learns the transitions reaches a perplexity near
  `branching`; one that only knows the previous word does worse, and a
  unigram model stays near the vocabulary size. The three splits are
  continuations of one stream. For smoke runs, tests and notebooks, not
  for results.
  """
  rng = np.random.default_rng([seed, 0x7e47])
  v = vocab_size
  if v < 3 or branching < 1 or topics < 1:
    raise ValueError('synthetic() needs vocab_size >= 3, branching >= 1 and '
                     'topics >= 1.')
  succ = rng.integers(0, v, (topics, v, branching)).tolist()
  probs = rng.dirichlet(np.ones(branching), (topics, v)).cumsum(-1).tolist()
  total = sum(tokens)
  out = [0] * total
  word, topic = 0, 0
  draws = rng.random((total, 3)).tolist()
  for t, (u_switch, u_topic, u_word) in enumerate(draws):
    if u_switch < switch:
      topic = min(int(u_topic * topics), topics - 1)
    k = min(bisect.bisect_left(probs[topic][word], u_word), branching - 1)
    word = succ[topic][word][k]
    out[t] = word
  out = np.asarray(out, np.int32)
  vocab = tuple(f'w{i}' for i in range(v - 1)) + (EOS,)
  cut = np.cumsum(tokens)
  return Corpus(vocab=vocab, train=out[:cut[0]], valid=out[cut[0]:cut[1]],
                test=out[cut[1]:], directory='')
