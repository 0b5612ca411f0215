"""Write a model directory holding one of the torch backend's random-weight presets.

    python3 -m engine_host.tools.write_random_model --preset llama-8b --out DIR
        [--dtype bfloat16|float16|float32] [--seed 0] [--device auto|cpu|cuda]
        [--max-shard-bytes 5000000000]

(with module/EngineHost as the working directory or on PYTHONPATH). DIR gets config.json,
generation_config.json, model-0000i-of-0000n.safetensors shards and model.safetensors.index.json; the
torch backend loads it with `--model DIR` (and can then use the engine arg weights_from_source).

The weights are those the torch backend builds for `--model PRESET` with the same seed and dtype on the
same kind of device (the same function builds them): `--device auto` builds on CUDA when there is one,
so the GPU holds the model and host memory holds one tensor at a time while the shards are written
(about 1 GiB at most for llama-8b); on the CPU the whole model is built in host memory first. The
directory appears only once complete: the files go to DIR.partial-<pid>, renamed to DIR at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

DTYPES = ("bfloat16", "float16", "float32")
DEFAULT_MAX_SHARD_BYTES = 5_000_000_000


def main(argv=None) -> int:
    from ..backends.torch_backend import PRESETS

    parser = argparse.ArgumentParser(prog="python3 -m engine_host.tools.write_random_model",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--out", required=True, help="directory to create (must not exist)")
    parser.add_argument("--dtype", default="bfloat16", choices=DTYPES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--max-shard-bytes", type=int, default=DEFAULT_MAX_SHARD_BYTES)
    args = parser.parse_args(argv)
    if args.seed < 0 or args.max_shard_bytes < 1:
        parser.error("--seed must be >= 0 and --max-shard-bytes >= 1")
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        parser.error(f"{out} already exists")

    import torch

    from ..backends import torch_stage, torch_weights

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    on_cuda = args.device != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if on_cuda else torch.device("cpu")
    started = time.monotonic()
    model = torch_stage.random_preset_model(PRESETS[args.preset], args.seed, device,
                                            getattr(torch, args.dtype))
    if on_cuda:
        torch.cuda.synchronize(device)
    built = time.monotonic() - started

    partial = f"{out}.partial-{os.getpid()}"
    os.makedirs(partial)
    try:
        summary = torch_weights.write_model_dir(model, partial, args.max_shard_bytes)
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"wrote {out}: preset {args.preset}, {args.dtype}, seed {args.seed}, built on {device} in "
          f"{built:.1f}s; {summary['tensors']} tensors, {summary['bytes'] / 1e9:.3f} GB in "
          f"{len(summary['files'])} shard(s); {time.monotonic() - started:.1f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
