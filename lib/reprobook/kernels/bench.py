"""Time every registered kernel on a GPU: Triton vs the PyTorch reference vs ``torch.compile(reference)``.

    python -m reprobook.kernels.bench [--kernels softmax ...] [--dtype float32|float16|bfloat16]
                                      [--eager] [--no-compile]

Prints one row per kernel and size: the median milliseconds per call of each, the speed-ups of Triton over
the reference and over the compiled reference, the max abs error of the Triton output against the
reference (``-`` for a kernel that draws its own random numbers, ``KernelSpec.draws_random``), and how the row
was timed. Forward pass only. Times are GPU time, from a CUDA graph replaying the
calls (``triton.testing.do_bench_cudagraph``, ``graph``), so Python's launch overhead (tens of microseconds a
call) is left out; ``--eager`` times plain calls instead (``triton.testing.do_bench``, L2 cache flushed between
calls, ``eager``), overhead included. A kernel whose call reads a value back to the host (an input check such
as ``int(x.max())``) cannot be captured in a graph: its rows are timed ``eager`` whatever the flag.
``--no-compile`` leaves out ``torch.compile`` (its compile takes most of a run's minutes) and prints ``-`` in its
columns. Without a CUDA GPU it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from reprobook.kernels import _triton, all_kernels, get
from reprobook.kernels.registry import KernelSpec
from reprobook.kernels.testing import max_abs_error

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
COLUMNS = {  # header: width
    "kernel": 16,
    "size": 8,
    "triton ms": 11,
    "torch ms": 10,
    "compiled ms": 13,
    "vs torch": 10,
    "vs compiled": 13,
    "max abs err": 13,
    "timed": 7,
}


def bench_kernel(
    spec: KernelSpec, dtype: torch.dtype, eager: bool = False, compile_reference: bool = True
) -> Iterator[list[str]]:
    """Yield one table row (cells as in ``COLUMNS``) per size in ``spec.sizes``, on the current CUDA device."""
    compiled = torch.compile(spec.reference) if compile_reference else None
    for size in spec.sizes:
        inputs = spec.make_inputs(size, torch.device("cuda"), dtype)
        implementations: list[Callable[[], Any]] = [
            functools.partial(spec, *inputs, backend="triton"),
            functools.partial(spec, *inputs, backend="reference"),
        ]
        if compiled is not None:
            implementations.append(functools.partial(compiled, *inputs))
        with torch.no_grad():
            triton_out, ref_out, *_ = (run() for run in implementations)  # the compiled one compiles here
            error = error_cell(spec, triton_out, ref_out)
            plain = eager or any(_syncs_with_host(run) for run in implementations)
            ms_triton, ms_torch, *ms_compiled = (_median_ms(run, plain) for run in implementations)
        times = [f"{ms:.4f}" for ms in (ms_triton, ms_torch, *ms_compiled)] + ["-"] * (compiled is None)
        speedups = [f"{ms_torch / ms_triton:.2f}x"] + [f"{ms / ms_triton:.2f}x" for ms in ms_compiled]
        speedups += ["-"] * (compiled is None)
        yield [spec.name, str(size), *times, *speedups, error, "eager" if plain else "graph"]


def error_cell(spec: KernelSpec, triton_out: Any, ref_out: Any) -> str:
    """The max abs error column: ``-`` for a kernel whose outputs are random draws (``spec.draws_random``)."""
    return "-" if spec.draws_random else f"{max_abs_error(triton_out, ref_out):.2e}"


def _format(cells: Sequence[str]) -> str:
    """The kernel name left-aligned, the numbers right-aligned, in the widths of ``COLUMNS``."""
    name_width, *widths = COLUMNS.values()
    return f"{cells[0]:<{name_width}}" + "".join(f"{cell:>{width}}" for cell, width in zip(cells[1:], widths))


def _syncs_with_host(run: Callable[[], Any]) -> bool:
    """Whether ``run`` waits for the GPU from the host (CUDA's sync debug mode raises), so no graph can hold it."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        run()
    except RuntimeError:
        return True
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    return False


def _median_ms(run: Callable[[], Any], eager: bool) -> float:
    """Median milliseconds per call of ``run``: GPU time in a CUDA graph, or with ``eager`` plain calls."""
    from triton.testing import do_bench, do_bench_cudagraph  # here: Triton may be missing at import time

    if eager:
        return float(do_bench(run, warmup=25, rep=100, return_mode="median"))
    return float(do_bench_cudagraph(run, rep=100, return_mode="median"))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, benchmark, print the table; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reprobook.kernels.bench", description=__doc__.splitlines()[0])
    names = [spec.name for spec in all_kernels()]
    parser.add_argument("--kernels", nargs="+", choices=names, default=names, help="kernels to time (default: all)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="input dtype (default: float32)")
    parser.add_argument("--eager", action="store_true", help="time plain calls, Python launch overhead included")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile(reference) (slow to build)")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("reprobook.kernels.bench: no CUDA GPU, nothing to time (on CPU, test kernels with TRITON_INTERPRET=1).")
        return 0
    if not _triton.triton_available() or _triton.INTERPRET:
        print("reprobook.kernels.bench: needs Triton compiling for the GPU; install it and unset TRITON_INTERPRET.")
        return 1

    warnings.filterwarnings("ignore", category=UserWarning, module="torch._inductor")  # tuning notes, not errors
    timing = "plain calls, launch overhead included" if args.eager else "GPU time in a CUDA graph"
    print(f"{torch.cuda.get_device_name()}, {args.dtype}, forward pass, median ms per call ({timing})")
    print(_format(list(COLUMNS)))
    for name in args.kernels:
        for row in bench_kernel(get(name), DTYPES[args.dtype], args.eager, not args.no_compile):
            print(_format(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
