"""``python -m resnet_flax.predict``: classify image files with a trained run.

Kept at its documented path; the command is ``resnet_flax.cli.predict``.
"""

import sys

from resnet_flax.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
