"""``python -m resnet_flax.data.build``: build a tfds dataset from original archives.

Kept at its documented path; the command is ``resnet_flax.cli.build_dataset``.
"""

import sys

from resnet_flax.cli.build_dataset import main

if __name__ == "__main__":
    sys.exit(main())
