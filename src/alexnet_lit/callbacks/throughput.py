"""Lightning's ThroughputMonitor (train/samples_per_sec, train/flops_per_sec), counting replicas, not processes.

Under the tower strategy (parallel.py) the two ranks of a pair process the same images, so the global images/s
is a device's images/s times the number of replicas, not times the number of processes; FLOPs are counted per
pair (the module's ``flops_per_batch`` is the whole network's), so ``device/flops_per_sec`` is a pair's.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ThroughputMonitor

from alexnet_lit.parallel import replica


class ReplicaThroughput(ThroughputMonitor):
    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        for throughput in self._throughputs.values():
            throughput.world_size = replica(trainer)[1]
