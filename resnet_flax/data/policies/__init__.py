"""Augmentation policies on the host, as their sources define them: torchvision's
TrivialAugmentWide (``"ta_wide"``) and RandAugment (``"ra"``), the names of its
reference scripts' ``--auto-augment``, and timm's RandAugment strings
(``"rand-m9-mstd0.5-inc1"``). A policy is called as ``policy(image, rng)`` on a PIL image
with a numpy Generator, in the stream input's workers (``data/stream.py``), after the
crop: each image's draws come from (seed, epoch, position), as its crop's do.
"""

from __future__ import annotations

import dataclasses

from resnet_flax.data.policies.timm_policies import rand_augment
from resnet_flax.data.policies.torchvision_policies import RandAugment, TrivialAugmentWide

TORCHVISION = {"ta_wide": TrivialAugmentWide, "ra": RandAugment}
TIMM_PREFIX = "rand-"


def source(name: str) -> str:
    """Which source a policy name follows; ``ValueError`` for one neither has."""
    if name in TORCHVISION:
        return "torchvision"
    if name.startswith(TIMM_PREFIX):
        return "timm"
    raise ValueError(f"{name!r} is not a policy: {', '.join(TORCHVISION)} (torchvision's) or "
                     f"a timm string such as 'rand-m9-mstd0.5-inc1'")


def build(name: str, interpolation: str, image_size: int, mean: tuple[float, ...]):
    """The policy ``name`` for training crops of ``image_size`` whose dataset mean (in 0..1,
    a value per channel) is ``mean``: timm fills what its ops uncover with it, torchvision
    with black, as each does. ``ValueError`` for a name, or an interpolation the policy
    refuses."""
    if source(name) == "torchvision":
        return TORCHVISION[name](interpolation=interpolation)
    policy = rand_augment(name, image_size, tuple(mean), interpolation)
    if len(mean) == 1:  # A grey image's fill is one number, not a 1-tuple.
        policy = dataclasses.replace(policy, fill=policy.fill[0])
    return policy
