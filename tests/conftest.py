"""Test isolation: a test (or a module-scoped fixture) that trains in-process sets the
torch.distributed variables in os.environ (pathmoe.train.distenv fills RANK, WORLD_SIZE, ... for a
single process); later tests that launch srun or torchrun jobs must not inherit them, or every task
would train as rank 0. Each test starts from the variables the session started with."""

import os

import pytest

DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
SESSION_START = {k: os.environ.get(k) for k in DIST_VARS}


def _reset_distributed_env() -> None:
    for key, value in SESSION_START.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True, scope="module")
def distributed_env_per_module():
    """Before a module's own module-scoped fixtures (e.g. a DAG run through SLURM) start."""
    _reset_distributed_env()
    yield


@pytest.fixture(autouse=True)
def distributed_env_per_test():
    _reset_distributed_env()
    yield
