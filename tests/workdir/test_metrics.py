"""metrics.jsonl and curves.png when a file is torn or the disk refuses a figure."""

import errno
import json

from resnet_flax.workdir import metrics, plots


def epoch_row(n):
    return {"epoch": n, "train_loss": 2 / n, "train_accuracy": 0.1 * n, "test_loss": 2 / n,
            "test_accuracy": 0.1 * n, "learning_rate": 0.1}


def test_a_torn_last_row_is_set_aside_on_resume(tmp_path, capsys):
    writer = metrics.MetricWriter(str(tmp_path))
    writer.write(8, epoch_row(1))
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:  # A short write of epoch 2's row.
        f.write('{"step": 16, "time": 17964, "epoch": 2, "train_lo')
    assert [r["step"] for r in metrics.read_rows(tmp_path / "metrics.jsonl")] == [8]
    writer = metrics.MetricWriter(str(tmp_path), resume_step=8)  # Epoch 2 is trained again.
    writer.write(16, epoch_row(2))
    writer.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [8, 16]
    aside = tmp_path / "metrics.jsonl.torn"
    assert aside.read_text() == '{"step": 16, "time": 17964, "epoch": 2, "train_lo\n'
    assert capsys.readouterr().err == (
        f"warning: {tmp_path / 'metrics.jsonl'} had a torn row (a short write); set aside in "
        f"{aside}, its epoch is trained again\n")
    assert (tmp_path / "curves.png").exists()


def test_a_figure_the_disk_refuses_does_not_end_the_run(tmp_path, monkeypatch, capsys):
    def full_disk(rows, path, title=""):
        path.with_suffix(".tmp.png").write_bytes(b"half a PNG")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plots, "training_curves", full_disk)
    monkeypatch.setattr(metrics, "CURVES_EVERY_S", 0.0)
    writer = metrics.MetricWriter(str(tmp_path))
    writer.write(8, epoch_row(1))
    writer.write(16, epoch_row(2))  # The run goes on, its rows all written.
    writer.close()
    assert len(metrics.read_rows(tmp_path / "metrics.jsonl")) == 2
    assert not (tmp_path / "curves.tmp.png").exists()
    warnings = capsys.readouterr().err.splitlines()
    assert warnings and all(w == f"warning: {tmp_path / 'curves.png'} not redrawn (No space "
                            "left on device); training goes on" for w in warnings)
