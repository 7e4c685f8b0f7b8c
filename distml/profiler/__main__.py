"""`python -m distml.profiler merge -o all.json trace_rank0.json trace_rank1.json`: ranks' Chrome
traces on one timeline (see distml.profiler.merge_chrome_traces)."""
import argparse

from distml.profiler import merge_chrome_traces


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m distml.profiler")
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="merge ranks' Chrome traces into one timeline")
    merge.add_argument("traces", nargs="+", help="the ranks' trace files (from export_chrome_trace)")
    merge.add_argument("-o", "--output", required=True, help="where to write the merged trace")
    args = parser.parse_args(argv)
    merge_chrome_traces(args.traces, args.output)
    print(f"merged {len(args.traces)} traces into {args.output}")


if __name__ == "__main__":
    main()
