"""``python -m resnet_flax.main``: train and evaluate a config in a workdir.

Kept at its documented path; the command is ``resnet_flax.cli.main``.
"""

from resnet_flax.cli.main import run

if __name__ == "__main__":
    run()
