r"""Builds a TFDS dataset for nasjax on a machine with internet.

  python data/prepare_tfds.py --name=cifar10 --data_dir=/data/tfds

Needs `tensorflow-datasets` and TensorFlow (only here, to build the
array_record files). Copy `DATA_DIR/NAME` to the machine that trains and set
--config.data.name=tfds:NAME --config.data.data_dir=DATA_DIR there.
"""

from absl import app
from absl import flags

_NAME = flags.DEFINE_string('name', 'cifar10', 'TFDS dataset name.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Where to build it.',
                                required=True)


def main(argv):
  del argv
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source = tfds.data_source(_NAME.value, data_dir=_DATA_DIR.value,
                            download=True)
  for split, records in source.items():
    print(f'{_NAME.value} {split}: {len(records)} examples')
  print(f'Ready: --config.data.name=tfds:{_NAME.value} '
        f'--config.data.data_dir={_DATA_DIR.value}')


if __name__ == '__main__':
  app.run(main)
