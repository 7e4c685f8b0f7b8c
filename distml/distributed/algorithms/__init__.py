"""distml.distributed.algorithms: Join for uneven inputs, and DDP communication hooks.

    from distml.distributed.algorithms import Join
    with Join([ddp_model]):        # ranks may hold different numbers of batches
        for x, y in batches: ...
"""
from distml.distributed.algorithms.join import Join, Joinable, JoinHook

__all__ = ["Join", "Joinable", "JoinHook"]
