"""distml.distributed.checkpoint and elastic.PreemptionHandler in one process (world of one);
the multi-rank cases are in test_resume.py and test_preemption.py."""
import os
import random
import signal

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
    dcp.save(state, checkpoint_id=str(tmp_path / "ckpt"))
    after = (distml.rand(3).numpy(), np.random.rand(3), random.random())

    fresh = training_state()
    fresh["step"] = None
    distml.manual_seed(99), np.random.seed(99), random.seed(99)
    dcp.load(fresh, checkpoint_id=str(tmp_path / "ckpt"))
    assert fresh["step"] == 7
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
