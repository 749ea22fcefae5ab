"""The module's header: every file written whole or not at all (``atomic_write``: a killed write, a
full disk), and the plain-text tables."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import scarlet_utils as su

from conftest import link_to_dev_full


REPO = Path(__file__).resolve().parents[1]


# -- atomic writes ---------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_temp_file_left_by_a_killed_write_is_overwritten(tmp_path):
    path = tmp_path / "metrics.json"
    su.write_json(path, {"n": 1})
    (tmp_path / ".metrics.json.tmp").write_bytes(b'{"n": 2, "trunc')  # a write killed half-way
    assert json.loads(path.read_text()) == {"n": 1}  # the reader still finds the whole old file
    su.write_json(path, {"n": 3})
    assert json.loads(path.read_text()) == {"n": 3} and os.listdir(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize(("what", "how"), [("checkpoint", "torch.save raises"), ("training state", "/dev/full")])
def test_full_disk_keeps_the_previous_checkpoint(tiny_model, tmp_path, monkeypatch, what, how):
    """Scarlet.pt and training_state.pt on a full disk (the write raising ENOSPC, or the kernel saying so
    to a real write, to /dev/full): an OSError naming the file and what it is, the previous file whole."""
    model = tiny_model
    optimizer = torch.optim.AdamW(model.parameters())
    prep = su.Preprocessing(4, 32)
    save = {"checkpoint": lambda epoch: su.save_checkpoint(model, tmp_path / "Scarlet.pt", prep, epoch=epoch),
            "training state": lambda epoch: su.save_training_state(tmp_path / "training_state.pt", model, optimizer,
                                                                    None, epoch, 0.5, [])}[what]
    path = save(1)
    before = path.read_bytes()
    if how == "/dev/full":
        link_to_dev_full(path)
    else:
        monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(OSError, match=re.escape(f"{path}: cannot write the {what}: No space left on device")) as info:
        save(2)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]
    monkeypatch.undo()
    if what == "checkpoint":
        assert su.checkpoint_info(path).extra == {"epoch": 1}
    else:
        assert su.load_training_state(path, model, optimizer)["epoch"] == 1


_SAVE_LOOP = textwrap.dedent("""
    import itertools, sys
    from types import SimpleNamespace
    import torch
    import scarlet_utils as su

    model = torch.nn.Linear(4096, 2048)  # 32 MiB: each save takes a while
    model.config = SimpleNamespace(to_json_string=lambda: "{}")
    for k in itertools.count(1):
        with torch.no_grad():
            model.weight.fill_(k)
            model.bias.fill_(k)
        su.save_checkpoint(model, sys.argv[1], su.Preprocessing(), epoch=k)
""")


def test_checkpoint_killed_mid_save_keeps_the_previous_one(tmp_path, no_hang):
    path = tmp_path / "Scarlet.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    caught = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            names = os.listdir(tmp_path)
            if "Scarlet.pt" in names and any(n.startswith(".Scarlet.pt.") for n in names):
                caught = True  # a save in progress, with a complete one before it
                break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        proc.stderr.close()
    assert caught, "never saw a save in progress"
    assert set(os.listdir(tmp_path)) <= {"Scarlet.pt", ".Scarlet.pt.tmp"}  # one temp name, whatever the save
    epoch = su.checkpoint_info(path).extra["epoch"]  # loads: whole, not half-written
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert epoch >= 1 and bool((state["weight"] == epoch).all()) and bool((state["bias"] == epoch).all())
    # the next save overwrites what the killed one left (a hidden temp as big as the checkpoint)
    tiny = torch.nn.Linear(2, 2)
    tiny.config = SimpleNamespace(to_json_string=lambda: "{}")
    su.save_checkpoint(tiny, path, su.Preprocessing(), epoch=0)
    assert os.listdir(tmp_path) == ["Scarlet.pt"]
    assert su.checkpoint_info(path).extra == {"epoch": 0}


# -- tables ----------------------------------------------------------------------------------------


def test_format_table_aligns_columns() -> None:
    text = su.format_table([("a", 1), ("long name", 22)], ["video", "n"])
    assert text.splitlines() == ["video      n", "---------  --", "a          1", "long name  22"]
