"""`python -m distml doctor|bench ...` (also the `distml` console script)."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="distml", description="distml's tools for a machine or a job.")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="check the build, MPI, threads, GPUs and (under a launcher) every rank")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    bench = commands.add_parser("bench", help="collective bandwidth against MPI's, and a DDP step's breakdown")
    bench.add_argument("--ops", default="allreduce,reduce_scatter,allgather",
                       help="comma-separated collectives (allreduce, reduce_scatter, allgather) or 'none'")
    bench.add_argument("--min-bytes", default="4", help="smallest buffer (4, 64K, 1M ...)")
    bench.add_argument("--max-bytes", default="256M", help="largest buffer")
    bench.add_argument("--iters", type=int, default=10, help="timed iterations per size (median)")
    bench.add_argument("--model", choices=("mlp", "lenet", "resnet18"), help="also time a DDP step of this model")
    bench.add_argument("--batch", type=int, default=32, help="the model's batch per rank")
    bench.add_argument("--steps", type=int, default=10, help="timed model steps (median)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--plot", metavar="FILE.png", help="draw busbw against size (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from distml.tools import doctor
        return doctor.run(as_json=args.json)
    from distml.tools import bench as bench_tool
    ops = [] if args.ops == "none" else args.ops.split(",")
    unknown = sorted(set(ops) - set(bench_tool.COLLECTIVES))
    if unknown:
        parser.error(f"--ops: unknown collective(s) {unknown}; expected {list(bench_tool.COLLECTIVES)}")
    return bench_tool.run(ops, bench_tool.parse_bytes(args.min_bytes), bench_tool.parse_bytes(args.max_bytes),
                          args.iters, args.model, args.batch, args.steps, args.json, args.plot)


if __name__ == "__main__":
    sys.exit(main())
