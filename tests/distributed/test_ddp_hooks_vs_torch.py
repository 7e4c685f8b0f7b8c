"""DDP comm hooks in a world of one rank against PyTorch's DDP over gloo (world_size=1) as the
oracle, in a fresh process with a timeout: same model, same inputs, the hooks' gradients and
PowerSGD's bookkeeping compared. Multi-rank behaviour is in tests/mpi/test_ddp_hooks.py."""
import os
import socket
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROGRAM = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import torch.distributed as tdist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks as t_default, powerSGD_hook as t_psgd

    import distml
    import distml.distributed as dist
    from distml.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook as psgd
    from distml.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    tdist.init_process_group("gloo", rank=0, world_size=1, init_method="tcp://127.0.0.1:" + sys.argv[1])

    def models():
        torch.manual_seed(0)
        t = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.Tanh(), torch.nn.Linear(24, 5))
        d = distml.nn.Sequential(distml.nn.Linear(12, 24), distml.nn.Tanh(), distml.nn.Linear(24, 5))
        d.load_state_dict({k: distml.from_numpy(v.detach().numpy().copy()) for k, v in t.state_dict().items()})
        return torch.nn.parallel.DistributedDataParallel(t), DDP(d)

    def run(t_model, d_model, steps, batch):
        rng = np.random.default_rng(1)
        for _ in range(steps):
            x = rng.standard_normal((batch, 12)).astype(np.float32)
            for model, lib in ((t_model, torch), (d_model, distml)):
                model.zero_grad()
                model(lib.from_numpy(x)).pow(2).sum().backward()
        return ([p.grad.numpy() for p in t_model.module.parameters()],
                [p.grad.numpy() for p in d_model.module.parameters()])

    # allreduce_hook and fp16_compress_hook: PyTorch's hooks on PyTorch's DDP.
    for t_hook, d_hook, rtol in ((t_default.allreduce_hook, default_hooks.allreduce_hook, 1e-5),
                                 (t_default.fp16_compress_hook, default_hooks.fp16_compress_hook, 2 ** -10)):
        t_model, d_model = models()
        t_model.register_comm_hook(None, t_hook)
        d_model.register_comm_hook(None, d_hook)
        for a, b in zip(*run(t_model, d_model, 2, 8)):
            np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-6)
            if t_hook is t_default.fp16_compress_hook:
                np.testing.assert_array_equal(b.astype(np.float16).astype(np.float32), b)

    # bf16_compress_hook: PyTorch refuses it without NCCL, so its definition, in PyTorch.
    t_model, d_model = models()
    d_model.register_comm_hook(None, default_hooks.bf16_compress_hook)
    for a, b in zip(*run(t_model, d_model, 1, 8)):
        expected = torch.from_numpy(a).to(torch.bfloat16).div_(1).to(torch.float32).numpy()
        np.testing.assert_allclose(b, expected, rtol=2 ** -7, atol=1e-6)

    # PowerSGD: batches of one make every weight gradient rank one, which rank-1 PowerSGD
    # reproduces whatever its random start; the compression bookkeeping must equal PyTorch's.
    t_model, d_model = models()
    t_state = t_psgd.PowerSGDState(None, matrix_approximation_rank=1, start_powerSGD_iter=2)
    d_state = psgd.PowerSGDState(None, matrix_approximation_rank=1, start_powerSGD_iter=2)
    t_model.register_comm_hook(t_state, t_psgd.powerSGD_hook)
    d_model.register_comm_hook(d_state, psgd.powerSGD_hook)
    for a, b in zip(*run(t_model, d_model, 4, 1)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    assert d_state.iter == t_state.iter == 4
    assert d_state.compression_stats() == t_state.compression_stats(), (d_state.compression_stats(),
                                                                           t_state.compression_stats())
    print("hooks match torch")
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hooks_match_torch_in_a_world_of_one():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "hooks match torch" in done.stdout, done.stdout[-3000:] + done.stderr[-6000:]
