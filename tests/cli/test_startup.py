"""What a run loads when it starts: neither TensorFlow nor PyTorch, which would cost
seconds at every start (tensorboardX's package imports torch wherever it is
installed, as it is here for the reference tests)."""

import subprocess
import sys

import pytest
from conftest import REPO

PROBE = """
import sys
import resnet_flax.run.evaluate, resnet_flax.run.train_loop
print(sorted(m for m in ("tensorflow", "torch") if m in sys.modules))
"""


def test_training_and_evaluation_load_neither_tensorflow_nor_torch():
    pytest.importorskip("torch")  # Otherwise there is nothing to keep out.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


def test_event_files_are_written_when_torch_is_already_loaded(tmp_path):
    torch = pytest.importorskip("torch")
    from resnet_flax.workdir import metrics

    events = metrics.EventFile(tmp_path)
    events.write(1, {"loss": float(torch.tensor(0.5))})
    events.close()
    assert next(tmp_path.glob("events*")).stat().st_size > 0
