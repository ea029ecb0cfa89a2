r"""Builds a TFDS dataset for nasjax on a machine with internet.

  python data/prepare_tfds.py --name=cifar10 --data_dir=/data/tfds
  python data/prepare_tfds.py --name=imagenet2012 --data_dir=/data/tfds \
      --manual_dir=/data/imagenet_archives

Needs `tensorflow-datasets` and TensorFlow (only here, to build the
array_record files). Copy `DATA_DIR/NAME` to the machine that trains and set
--config.data.name=tfds:NAME --config.data.data_dir=DATA_DIR there.
"""

from absl import app
from absl import flags

_NAME = flags.DEFINE_string('name', 'cifar10', 'TFDS dataset name.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Where to build it.',
                                required=True)
_MANUAL_DIR = flags.DEFINE_string(
    'manual_dir', None, 'Archives TFDS cannot download itself (ImageNet: '
    'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar).')


def main(argv):
  del argv
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  prepare = None
  if _MANUAL_DIR.value:
    prepare = {'download_config': tfds.download.DownloadConfig(
        manual_dir=_MANUAL_DIR.value)}
  source = tfds.data_source(_NAME.value, data_dir=_DATA_DIR.value,
                            download=True,
                            download_and_prepare_kwargs=prepare)
  for split, records in source.items():
    print(f'{_NAME.value} {split}: {len(records)} examples')
  print(f'Ready: --config.data.name=tfds:{_NAME.value} '
        f'--config.data.data_dir={_DATA_DIR.value}')


if __name__ == '__main__':
  app.run(main)
