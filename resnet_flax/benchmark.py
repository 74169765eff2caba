"""``python -m resnet_flax.benchmark``: train-step throughput of a model.

Kept at its documented path; the command is ``resnet_flax.cli.benchmark``.
"""

from resnet_flax.cli.benchmark import main

if __name__ == "__main__":
    main()
