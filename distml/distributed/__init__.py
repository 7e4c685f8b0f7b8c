"""distml.distributed: process groups and collectives over MPI, with torch.distributed's names.

    import distml.distributed as dist
    dist.init_process_group("mpi")
    dist.all_reduce(t)                     # sum over ranks, in place

Importing this package never initialises MPI; init_process_group does.
"""
from distml.distributed.grad_bucket import GradBucket
from distml.distributed.process_group import (DistBackendError, GroupMember, ProcessGroup, ReduceOp, Work, all_gather,
                                              all_gather_into_tensor, all_gather_object, all_reduce, barrier,
                                              broadcast, broadcast_object_list, destroy_process_group, gather,
                                              get_backend, get_local_rank, get_local_world_size, get_rank,
                                              get_world_size, group, init_process_group, irecv, is_available,
                                              is_gloo_available, is_initialized, is_mpi_available,
                                              is_nccl_available, isend, new_group, recv, reduce, reduce_scatter,
                                              reduce_scatter_tensor, scatter, send)
