"""distml.distributed.checkpoint and elastic.PreemptionHandler in one process (world of one);
the multi-rank cases are in test_resume.py and test_preemption.py."""
import os
import random
import signal
import time

import numpy as np
import pytest

import distml
from distml import nn
from distml.distributed import checkpoint as dcp
from distml.distributed.elastic import REQUEUE_EXIT_CODE, PreemptionHandler
from distml.utils.data import DistributedSampler, StatefulDataLoader


def training_state():
    distml.manual_seed(0)
    net = nn.Linear(3, 2)
    optimizer = distml.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    scheduler = distml.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    scaler = distml.amp.GradScaler("cpu", init_scale=8.0)
    data = list(range(10))
    loader = StatefulDataLoader(data, batch_size=2, sampler=DistributedSampler(data, num_replicas=1, rank=0))
    return {"model": net, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "loader": loader,
            "rng": dcp.RNGState(), "step": 0}


def test_round_trip_of_every_kind_of_state(tmp_path):
    state = training_state()
    net, optimizer, scaler = state["model"], state["optimizer"], state["scaler"]
    it = iter(state["loader"])
    taken = [next(it).tolist() for _ in range(2)]
    scaler.scale(net(distml.randn(4, 3)).sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    state["scheduler"].step()
    state["step"] = 7
    distml.manual_seed(5), np.random.seed(6), random.seed(7)
    state["extra"] = {"ema": [distml.arange(4.0)], "z": distml.from_numpy(np.array([1 + 2j]))}  # complex: in the index
    dcp.save(state, checkpoint_id=str(tmp_path / "ckpt"))
    after = (distml.rand(3).numpy(), np.random.rand(3), random.random())

    fresh = training_state()
    fresh.update(step=None, extra=None)
    given = []
    load_state_dict = fresh["model"].load_state_dict
    fresh["model"].load_state_dict = lambda state_dict: given.append(state_dict) or load_state_dict(state_dict)
    distml.manual_seed(99), np.random.seed(99), random.seed(99)
    dcp.load(fresh, checkpoint_id=str(tmp_path / "ckpt"))
    assert fresh["step"] == 7
    assert given[0]["weight"].array is fresh["model"].weight.array  # read into the parameter: no second copy
    np.testing.assert_array_equal(fresh["extra"]["ema"][0].numpy(), np.arange(4.0))
    assert fresh["extra"]["z"].numpy().tolist() == [1 + 2j]
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(fresh["model"].state_dict()[key].numpy(), value.numpy())
    mine, theirs = optimizer.state_dict(), fresh["optimizer"].state_dict()
    assert theirs["param_groups"] == mine["param_groups"]
    for p in mine["state"]:
        np.testing.assert_array_equal(theirs["state"][p]["momentum_buffer"].numpy(),
                                      mine["state"][p]["momentum_buffer"].numpy())
    assert fresh["scheduler"].state_dict() == state["scheduler"].state_dict()
    assert fresh["scaler"].state_dict() == scaler.state_dict()
    np.testing.assert_array_equal(distml.rand(3).numpy(), after[0])
    np.testing.assert_array_equal(np.random.rand(3), after[1])
    assert random.random() == after[2]
    rest = [b.tolist() for b in fresh["loader"]]
    assert sorted(sum(taken + rest, [])) == list(range(10)) and len(rest) == 3


def test_a_new_version_replaces_the_old_one(tmp_path):
    checkpoint = str(tmp_path / "ckpt")
    assert not dcp.exists(checkpoint)
    dcp.save({"step": 1}, checkpoint)
    dcp.save({"step": 2}, checkpoint)
    assert sorted(os.listdir(checkpoint)) == ["latest", "v1"]
    os.makedirs(os.path.join(checkpoint, "v2"))  # what a save killed before `latest` moved leaves
    state = {"step": 0}
    dcp.load(state, checkpoint)
    assert state == {"step": 2}
    dcp.save({"step": 3}, checkpoint)
    assert sorted(os.listdir(checkpoint)) == ["latest", "v2"]


def test_replicated_tensors_are_shared_out_by_bytes():
    assert dcp._assign([40, 30, 20, 10], [0, 0]) == [0, 1, 1, 0]
    assert dcp._assign([10, 10, 10], [25, 0, 5]) == [1, 2, 1]  # the ranks' sharded bytes count
    rng = np.random.default_rng(0)
    sizes, loads = rng.integers(1, 1000, 200).tolist(), [0] * 7
    owners = dcp._assign(sizes, loads)
    assert owners == dcp._assign(sizes, loads)
    totals = [sum(s for s, o in zip(sizes, owners) if o == rank) for rank in range(7)]
    assert max(totals) - min(totals) <= max(sizes)


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="finds the file being written in /proc/self/fd")
@pytest.mark.parametrize("file", ["shard-0.safetensors", "index.distml", "latest"])
def test_a_save_killed_while_writing_leaves_the_previous_checkpoint(tmp_path, file):
    """A save whose process dies as it flushes `file` (a forked child, ended by os._exit: no cleanup runs)."""
    checkpoint = str(tmp_path / "ckpt")
    first = training_state()
    first["step"] = 1
    first["model"].weight.data.fill_(1.0)
    dcp.save(first, checkpoint)
    second = training_state()
    second["model"].weight.data.fill_(5.0)
    pid = os.fork()
    if pid == 0:
        fsync = os.fsync

        def dying_fsync(fd):
            if f".{file}." in os.readlink(f"/proc/self/fd/{fd}"):  # its temporary, before the rename
                os._exit(9)
            fsync(fd)
        os.fsync = dying_fsync
        try:
            dcp.save(second, checkpoint)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked save did not end in 60 s")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(ended[1]) == 9  # died in the write
    assert "v1" in os.listdir(checkpoint)  # what the killed save left
    state = training_state()
    dcp.load(state, checkpoint)
    assert state["step"] == 1 and (state["model"].weight.detach().numpy() == 1.0).all()
    second["step"] = 2
    dcp.save(second, checkpoint)
    dcp.load(state, checkpoint)
    assert state["step"] == 2 and (state["model"].weight.detach().numpy() == 5.0).all()


def test_save_refuses_replicated_tensors_that_differ_between_ranks(tmp_path, monkeypatch):
    # A second rank whose model has other shapes: the save's first gather sees its different signature.
    monkeypatch.setattr(dcp, "_all_gather", lambda value: [value, (value[0], value[1] ^ 1, *value[2:])])
    with pytest.raises(RuntimeError, match=r"tensors \(names, shapes, dtypes\) differ between rank 0 and rank 1"):
        dcp.save({"model": nn.Linear(3, 2)}, str(tmp_path / "ckpt"))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        dcp.load({"step": 0}, str(tmp_path / "none"))
    dcp.save({"step": 1}, str(tmp_path / "ckpt"))
    with pytest.raises(KeyError, match=r"has no \['model'\]; it holds \['step'\]"):
        dcp.load({"step": 0, "model": nn.Linear(1, 1)}, str(tmp_path / "ckpt"))


def test_preemption_handler_in_one_process(tmp_path):
    flag = tmp_path / "preempt"
    handler = PreemptionHandler(every=2, flag_file=str(flag))
    try:
        assert not handler.should_stop() and not handler.should_stop()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert handler.signalled
        assert not handler.should_stop()  # checked every 2nd call only
        assert handler.should_stop()
    finally:
        handler.close()
    assert signal.getsignal(signal.SIGUSR1) is not handler._catch
    by_file = PreemptionHandler(flag_file=str(flag))
    try:
        assert not by_file.should_stop()
        flag.touch()
        assert by_file.should_stop()
        with pytest.raises(SystemExit) as exited:
            by_file.exit()
        assert exited.value.code == REQUEUE_EXIT_CODE == 75
    finally:
        by_file.close()
    with pytest.raises(ValueError, match="every must be at least 1, got 0"):
        PreemptionHandler(every=0)
