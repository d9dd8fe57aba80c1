"""gcsfs, driven one operation per process: `python gcsfs_driver.py OP ARGS...`, run by the gcsfs venv's python.

It imports nothing of migrator's (that venv has only gcsfs): the checks in test_client_gcsfs.py run it with
the sandbox's endpoint in STORAGE_EMULATOR_HOST and print what it answers, one JSON document per call.
Paths are gcsfs's own: `bucket/key`, and `bucket/key#generation` for one version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import gcsfs  # type: ignore[import-not-found]  # only in the gcsfs venv


def filesystem(consistency: str) -> Any:
    # consistency: gcsfs computes that hash of what it uploads and checks it against the object GCS made.
    return gcsfs.GCSFileSystem(endpoint_url=os.environ["STORAGE_EMULATOR_HOST"], token="anon",  # noqa: S106
                               project="sandbox", version_aware=True, consistency=consistency)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gcsfs_driver")
    parser.add_argument("--consistency", default="crc32c", choices=["crc32c", "md5", "size", "none"])
    sub = parser.add_subparsers(dest="op", required=True)
    p = sub.add_parser("mkdir")
    p.add_argument("bucket")
    p.add_argument("--versioning", action="store_true")
    p = sub.add_parser("put", help="a streamed upload in blocks (resumable above one block)")
    p.add_argument("local")
    p.add_argument("path")
    p.add_argument("--block-size", type=int, required=True)
    p = sub.add_parser("pipe", help="bytes in one request")
    p.add_argument("local")
    p.add_argument("path")
    for name in ("info", "rm"):
        sub.add_parser(name).add_argument("path")
    p = sub.add_parser("ls")
    p.add_argument("path")
    p.add_argument("--versions", action="store_true")
    p = sub.add_parser("get")
    p.add_argument("path")
    p.add_argument("local")
    args = parser.parse_args(argv)

    fs = filesystem(args.consistency)
    out: Any = None
    if args.op == "mkdir":
        fs.mkdir(args.bucket, enable_versioning=args.versioning)
    elif args.op == "put":
        with open(args.local, "rb") as src, fs.open(args.path, "wb", block_size=args.block_size) as dst:
            for block in iter(lambda: src.read(1024 * 1024), b""):
                dst.write(block)
    elif args.op == "pipe":
        with open(args.local, "rb") as src:
            fs.pipe(args.path, src.read())
    elif args.op == "info":
        out = fs.info(args.path)
    elif args.op == "ls":
        out = fs.ls(args.path, detail=True, versions=args.versions)
    elif args.op == "get":
        fs.get(args.path, args.local)
    elif args.op == "rm":
        fs.rm(args.path)
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
