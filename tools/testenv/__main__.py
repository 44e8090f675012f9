"""CLI: ``python -m tools.testenv build | up --dir D | down --dir D | podrunner --dir D``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools.testenv import build, cluster, podrunner


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["podrunner"]:
        return podrunner.main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m tools.testenv", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached binaries")
    b.add_argument("--force", action="store_true", help="rebuild even if the cache is complete")
    u = sub.add_parser("up", help="start etcd, kube-apiserver, kube-controller-manager and the pod runner")
    u.add_argument("--dir", required=True, type=Path)
    u.add_argument("--no-pod-runner", action="store_true")
    u.add_argument("--image", help="project image the pod runner runs (default noetl:dev)")
    u.add_argument("--image-prefix", help="also run images starting with this (default noetl)")
    d = sub.add_parser("down", help="stop everything started by `up --dir D`")
    d.add_argument("--dir", required=True, type=Path)
    d.add_argument("--purge", action="store_true", help="also delete the directory (logs included)")
    sub.add_parser("podrunner", help="run the local pod runner in the foreground (see --help)")
    args = p.parse_args(argv)

    if args.cmd == "build":
        started = time.monotonic()
        try:
            result = build.ensure_built(force=args.force)
        except build.BuildError as exc:
            print(f"BUILD FAILED: {exc}", file=sys.stderr)
            return 1
        print(build.describe(result))
        print(f"took {time.monotonic() - started:.0f} s")
        return 0
    if args.cmd == "up":
        cached = build.find_cached()
        if cached is None:
            print("no complete binary cache: run `python -m tools.testenv build` first", file=sys.stderr)
            return 1
        started = time.monotonic()
        try:
            cp = cluster.start(args.dir, cached.bin_dir)
            if not args.no_pod_runner:
                extra = [f"--image={args.image}"] if args.image else []
                extra += [f"--image-prefix={args.image_prefix}"] if args.image_prefix is not None else []
                cluster.start_pod_runner(cp, extra)
        except cluster.StartError as exc:
            print(f"START FAILED: {exc}", file=sys.stderr)
            return 1
        print(f"control plane up in {time.monotonic() - started:.1f} s: {cp.server}")
        print(f"export KUBECONFIG={cp.kubeconfig}")
        print(f'export PATH="{cp.bin_dir}:$PATH"')
        return 0
    stopped = cluster.stop(args.dir, purge=args.purge)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
