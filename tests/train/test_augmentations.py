"""Cutout, Random Erasing, Mixup and CutMix against their papers' definitions.

Each reference below is a literal port of the authors' (or torchvision's) loop over
one image, fed the same random draws as the JAX version; the distributions of the
draws are checked separately over many images.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_steps import fake_split, make_state, train_step

from resnet_flax.data import augment, mixing
from resnet_flax.train import steps

N, H, W, C = 64, 12, 10, 3
X = jax.random.normal(jax.random.key(42), (N, H, W, C)) + 5.0  # No pixel is 0 by chance.


def test_cutout_is_devries_and_taylors_mask_at_the_drawn_centres():
    key, size = jax.random.key(0), 6
    out = np.asarray(augment.cutout(key, X, size))
    cy_key, cx_key = jax.random.split(key)
    cys = np.asarray(jax.random.randint(cy_key, (N,), 0, H))
    cxs = np.asarray(jax.random.randint(cx_key, (N,), 0, W))
    for img, ref, y, x in zip(out, np.asarray(X), cys, cxs):  # Their Cutout.__call__:
        mask = np.ones((H, W), np.float32)
        y1, y2 = np.clip(y - size // 2, 0, H), np.clip(y + size // 2, 0, H)
        x1, x2 = np.clip(x - size // 2, 0, W), np.clip(x + size // 2, 0, W)
        mask[y1:y2, x1:x2] = 0.0
        np.testing.assert_array_equal(img, ref * mask[:, :, None])
    assert set(cys) == set(range(H)) and set(cxs) == set(range(W))  # Centres anywhere.


def torchvision_erasing_box(areas, log_ratios, u_top, u_left, scale_area, h, w):
    """torchvision's RandomErasing.get_params with its draws given (None: no fit)."""
    for area_share, log_ratio in zip(areas, log_ratios):
        erase_area = scale_area * area_share
        aspect = math.exp(log_ratio)
        eh, ew = int(round(math.sqrt(erase_area * aspect))), int(round(math.sqrt(
            erase_area / aspect)))
        if eh < h and ew < w:
            return int(u_top * (h - eh + 1)), int(u_left * (w - ew + 1)), eh, ew
    return None


def test_random_erasing_boxes_are_torchvisions_first_fitting_try():
    scale, ratio = (0.02, 0.9), (0.3, 1 / 0.3)  # Large areas: some tries must fail.
    key = jax.random.key(1)
    top, left, bottom, right, found = map(
        np.asarray, augment.erasing_boxes(key, N, H, W, scale, ratio))
    area_key, ratio_key, top_key, left_key = jax.random.split(key, 4)
    areas = np.asarray(jax.random.uniform(area_key, (N, 10), minval=scale[0], maxval=scale[1]))
    logr = np.asarray(jax.random.uniform(ratio_key, (N, 10), minval=np.log(ratio[0]),
                                         maxval=np.log(ratio[1])))
    u_top, u_left = (np.asarray(jax.random.uniform(k, (N,))) for k in (top_key, left_key))
    for i in range(N):
        ref = torchvision_erasing_box(areas[i], logr[i], u_top[i], u_left[i], H * W, H, W)
        assert found[i] == (ref is not None)
        if ref is not None:
            assert (top[i], left[i], bottom[i] - top[i], right[i] - left[i]) == ref


def test_random_erasing_fills_one_rectangle_with_noise_at_its_rate():
    x = jnp.broadcast_to(X[:1], (2000, H, W, C))
    out = np.asarray(augment.random_erasing(jax.random.key(2), x, 0.5, (0.02, 0.4),
                                            (0.3, 1 / 0.3)))
    changed = np.any(out != np.asarray(x), axis=-1)
    erased = changed.any(axis=(1, 2))
    assert 0.45 < erased.mean() < 0.55  # Probability 0.5 (every try fits at this scale).
    for mask in changed[erased][:200]:
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # One rectangle.
        assert mask.sum() == len(rows) * len(cols)
        assert 0.02 * H * W - H - W <= mask.sum() <= 0.4 * H * W + H + W  # Rounding slack.
    noise = out[np.broadcast_to(changed[..., None], out.shape)]
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1  # Standard normal fill.


def test_mixup_mixes_each_image_with_its_partner():
    out, mix = mixing.mixup(jax.random.key(3), X, alpha=1.0)
    lam, perm = float(mix.lam), np.asarray(mix.perm)
    assert sorted(perm) == list(range(N)) and 0 < lam < 1
    np.testing.assert_allclose(out, lam * np.asarray(X) + (1 - lam) * np.asarray(X)[perm],
                               rtol=1e-6)
    lams = np.array([float(mixing.mixup(jax.random.key(i), X[:2], 0.2)[1].lam)
                     for i in range(300)])
    # Beta(0.2, 0.2): mean 1/2, most mass near 0 and 1.
    assert abs(lams.mean() - 0.5) < 0.08 and np.mean((lams < 0.1) | (lams > 0.9)) > 0.5


def test_cutmix_pastes_the_partners_box_and_lam_is_the_area_left():
    key = jax.random.key(4)
    out, mix = mixing.cutmix(key, X, alpha=1.0)
    lam_key, perm_key, box_key = jax.random.split(key, 3)
    lam0 = float(jax.random.beta(lam_key, 1.0, 1.0))
    cy_key, cx_key = jax.random.split(box_key)
    cy, cx = int(jax.random.randint(cy_key, (), 0, H)), int(jax.random.randint(cx_key, (), 0, W))
    cut_h, cut_w = int(H * math.sqrt(1 - lam0)), int(W * math.sqrt(1 - lam0))  # rand_bbox
    y1, y2 = np.clip(cy - cut_h // 2, 0, H), np.clip(cy + cut_h // 2, 0, H)
    x1, x2 = np.clip(cx - cut_w // 2, 0, W), np.clip(cx + cut_w // 2, 0, W)
    expected = np.array(X)
    perm = np.asarray(mix.perm)
    expected[:, y1:y2, x1:x2, :] = np.asarray(X)[perm][:, y1:y2, x1:x2, :]
    np.testing.assert_array_equal(out, expected)
    assert float(mix.lam) == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (H * W))


def test_mix_probability_and_the_choice_between_mixup_and_cutmix():
    kinds = []
    for i in range(200):
        out, mix = mixing.mix(jax.random.key(i), X[:4], 0.4, 1.0, prob=0.5)
        out = np.asarray(out)
        if float(mix.lam) == 1.0:
            kinds.append("none")
            np.testing.assert_array_equal(out, X[:4])
        elif np.any((out == np.asarray(X[:4]))[np.asarray(mix.perm) != np.arange(4)]):
            # CutMix leaves pixels of an image mixed with another untouched; Mixup none.
            kinds.append("cutmix")
        else:
            kinds.append("mixup")
    counts = {k: kinds.count(k) for k in ("none", "mixup", "cutmix")}
    assert 70 < counts["none"] < 130 and counts["mixup"] > 25 and counts["cutmix"] > 25


def test_mixed_loss_and_accuracy_are_the_papers_weighted_sums():
    logits = jax.random.normal(jax.random.key(5), (6, 4))
    labels = jnp.array([0, 1, 2, 3, 0, 1])
    mix = mixing.Mix(jnp.float32(0.3), jnp.array([5, 4, 3, 2, 1, 0]))
    targets = mixing.mixed_targets(labels, mix, 4, label_smoothing=0.1)
    loss = optax.softmax_cross_entropy(logits, targets)
    ce = functools.partial(steps.cross_entropy, logits, num_classes=4, label_smoothing=0.1)
    np.testing.assert_allclose(loss, 0.3 * ce(labels) + 0.7 * ce(labels[mix.perm]), rtol=1e-5)
    pred = np.argmax(logits, -1)
    expected = 0.3 * (pred == labels) + 0.7 * (pred == np.asarray(labels)[mix.perm])
    lam, partner_labels = mixing.partners(labels, mix)
    np.testing.assert_allclose(mixing.correct(logits, labels, partner_labels, lam), expected,
                               rtol=1e-6)


@pytest.mark.slow
def test_train_step_with_every_augmentation_learns_and_counts_fractional_accuracy():
    images, labels = fake_split(32)
    cfg = steps.StepConfig(10, (0.5,), (0.25,), crop_padding=2, random_flip=True,
                           cutout_size=8, random_erasing=0.5, mixup_alpha=1.0,
                           cutmix_alpha=1.0)
    step = functools.partial(train_step, cfg=cfg)
    state, idx = make_state(dropout_rate=0.0), jnp.arange(32)
    losses, corrects = [], []
    for _ in range(8):
        state, metrics = step(state, images, labels, idx, jax.random.key(0))
        losses.append(float(metrics["loss_sum"]) / 32)
        corrects.append(float(metrics["correct"]))
    assert all(map(math.isfinite, losses)) and np.mean(losses[-3:]) < losses[0]
    assert any(c != int(c) for c in corrects)  # Mixed batches count fractions.
