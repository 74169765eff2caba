"""``python -m resnet_flax.export``: the command is ``resnet_flax.cli.export``."""

import sys

from resnet_flax.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
