"""Multi-instance training on SageMaker with XGBoost's own collective (no home-made distribution).

With `instance_count` > 1 and the channel's `S3DataDistributionType: ShardedByS3Key`, every
instance gets a share of the curated version's Parquet files and runs the same script. SageMaker
names the instances in SM_HOSTS (["algo-1", "algo-2", ...]) and this one in SM_CURRENT_HOST:

- the first host (the leader) runs XGBoost's Rabit tracker (xgboost.tracker.RabitTracker) on
  TRACKER_PORT; every host joins it as a worker (xgboost.collective.CommunicatorContext), rank =
  its position in SM_HOSTS; the leader joins after its single-host work (selection), which must
  stay outside the communicator;
- small facts travel with collective.broadcast: the leader's column roles, every shard's class
  counts (summed: the whole table's), the leader's recipe (model selection, feature preparation and
  knowledge combination, made on its shard as the single-instance job makes them on its sample);
- the final XGBoost is trained once across all shards: inside the communicator, xgboost.train
  sums the gradient histograms of every worker, so all hosts end with the same booster;
- the leader evaluates on its shard's test split and writes the model directory.

DXOPS_TRACKER_HOST / DXOPS_TRACKER_PORT override the tracker's address (tests run two workers
on one machine).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from xgboost import collective
from xgboost.tracker import RabitTracker

TRACKER_PORT = 9099
COLLECTIVE_TIMEOUT_SECONDS = 6 * 3600
CONNECT_RETRIES = 60
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    hosts: tuple[str, ...]
    current: str

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0


def cluster_from_environment() -> Cluster | None:
    """The SageMaker cluster, or None on one instance."""
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]"))
    current = os.environ.get("SM_CURRENT_HOST", "")
    if len(hosts) < 2:
        return None
    if current not in hosts:
        raise ValueError(f"SM_CURRENT_HOST {current!r} is not in SM_HOSTS")
    return Cluster(tuple(hosts), current)


def _tracker_address() -> tuple[str, int]:
    host = os.environ.get("DXOPS_TRACKER_HOST") or json.loads(os.environ.get("SM_HOSTS", '[""]'))[0]
    return socket.gethostbyname(host), int(os.environ.get("DXOPS_TRACKER_PORT", TRACKER_PORT))


@contextmanager
def tracker(cluster: Cluster) -> Iterator[None]:
    """The leader runs the tracker for the whole job (the others connect and wait until the leader
    joins, after its single-host work); the other hosts run nothing here."""
    if not cluster.is_leader:
        yield
        return
    address, port = _tracker_address()
    running = RabitTracker(n_workers=cluster.size, host_ip=address, port=port, sortby="task")
    running.start()
    try:
        yield
    finally:
        running.wait_for(timeout=COLLECTIVE_TIMEOUT_SECONDS)
        running.free()


@contextmanager
def communicator(cluster: Cluster) -> Iterator[None]:
    """Joins the workers for the block. Nothing inside may be single-host XGBoost work: in a
    communicator even building a DMatrix is a collective step that every host must take."""
    address, port = _tracker_address()
    arguments: dict[str, Any] = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": address,
        "dmlc_tracker_port": port,
        "dmlc_task_id": str(cluster.rank),
        # The other hosts wait while the leader selects the model: allow for it.
        "dmlc_timeout": COLLECTIVE_TIMEOUT_SECONDS,
        "dmlc_retry": CONNECT_RETRIES,  # a host may start before the leader's tracker listens
    }
    with collective.CommunicatorContext(**arguments):
        try:
            yield
        except BaseException:
            collective.signal_error()  # the other hosts stop instead of waiting for this one
            raise


def broadcast(value: T, root: int = 0) -> T:
    """`value` of host `root` on every host (pickled; for small objects)."""
    result: T = collective.broadcast(value, root)
    return result


def gather(value: T, cluster: Cluster) -> list[T]:
    """Every host's `value`, in rank order, on every host."""
    return [broadcast(value if cluster.rank == rank else None, rank) for rank in range(cluster.size)]  # type: ignore[misc]
