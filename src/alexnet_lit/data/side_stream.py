"""Host-to-device copies that overlap compute: on CUDA each batch is copied on a side stream.

Lightning moves a batch to the device on the compute stream, where the copy queues behind the previous step's
kernels: the copy and the compute take turns. The host runs ahead of the GPU, so when the next batch is moved the
previous step is usually still computing; issued on a second stream (from pinned memory, ``data.pin_memory``),
the copy runs during that compute. Then:
1. the compute stream waits for the copy stream (an event on the device: the host does not wait);
2. every copied tensor is ``record_stream``'d on the compute stream, so the caching allocator (which gave the
   memory to the copy stream) does not hand it to the copy of a later batch while this one is still in use.
The copy does not wait for the compute stream (that would serialize them again): its destination is fresh memory
of the copy stream's pool, and the pinned source is kept alive by torch until the copy's event completes.
On a CPU (and any non-CUDA device) the batch moves as before: ``move`` on the current stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning_utilities.core.apply_func import apply_to_collection


class SideStreamCopy:
    def __init__(self, streams: Any = torch.cuda) -> None:
        self.streams = streams  # torch.cuda; a stand-in in the CPU tests of the same code
        self._stream: Any = None

    def __call__(self, batch: Any, device: torch.device, move: Callable[[Any, torch.device], Any]) -> Any:
        if device.type != "cuda":
            return move(batch, device)
        if self._stream is None:
            self._stream = self.streams.Stream(device)
        compute = self.streams.current_stream(device)
        with self.streams.stream(self._stream):
            moved = move(batch, device)
        compute.wait_stream(self._stream)
        apply_to_collection(moved, torch.Tensor, lambda t: t.record_stream(compute))
        return moved
