"""``python -m resnet_flax.summary``: a model's per-layer summary, or the zoo's table.

Kept at its documented path; the command is ``resnet_flax.cli.summary``.
"""

from resnet_flax.cli.summary import main

if __name__ == "__main__":
    main()
