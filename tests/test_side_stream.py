"""data/side_stream.py: the CUDA path's order of operations, run on the CPU with a stand-in for torch.cuda's
streams (``make check-gpu`` runs it on a GPU); the CPU path moves the batch as before."""

from __future__ import annotations

import torch

from alexnet_lit.data.side_stream import SideStreamCopy


class Streams:
    """torch.cuda's stream API, recording what happens in which order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.active = "compute"
        streams = self

        class Stream:
            def __init__(self, name: str) -> None:
                self.name = name

            def wait_stream(self, other) -> None:
                streams.log.append(f"{self.name} waits for {other.name}")

        self.Stream = lambda device: Stream("copy")
        self.compute = Stream("compute")

    def current_stream(self, device):
        return self.compute

    def stream(self, s):
        streams = self

        class Context:
            def __enter__(self):
                streams.active = s.name

            def __exit__(self, *exc):
                streams.active = "compute"

        return Context()


class Recorded(torch.Tensor):
    def record_stream(self, stream) -> None:  # CPU tensors have no streams: log instead
        LOG.append(f"record_stream on {stream.name}")


LOG: list[str] = []


def test_the_copy_runs_on_the_side_stream_and_the_compute_stream_waits_for_it():
    streams, LOG[:] = Streams(), []
    streams.log = LOG
    copier = SideStreamCopy(streams)

    def move(batch, device):
        LOG.append(f"copy on {streams.active}")
        return [t.as_subclass(Recorded) for t in batch]

    moved = copier((torch.zeros(2), torch.ones(2)), torch.device("cuda", 0), move)
    assert len(moved) == 2
    assert LOG == ["copy on copy", "compute waits for copy", "record_stream on compute", "record_stream on compute"]
    copier((torch.zeros(2),), torch.device("cuda", 0), move)  # one side stream, made once
    assert LOG[-3:] == ["copy on copy", "compute waits for copy", "record_stream on compute"]


def test_a_cpu_batch_moves_on_the_current_stream():
    calls = []
    out = SideStreamCopy(streams=None)((torch.zeros(1),), torch.device("cpu"), lambda b, d: calls.append(d) or b)
    assert calls == [torch.device("cpu")] and torch.equal(out[0], torch.zeros(1))
