"""keep_freed_memory: the large tensors of a meta-RL step reuse freed heap memory instead of faulting in new pages."""

import platform
import subprocess
import sys

import pytest

PROGRAM = """
import resource, sys, torch
from mmaml.engine.allocator import keep_freed_memory
from mmaml.rl.algorithm import RLAlgorithm
from mmaml.rl.config import RLConfig
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
config = RLConfig(method="maml", env="navigation", meta_batch_size=8, cg_iterations=3, line_search_steps=2).validate()
torch.manual_seed(0)
algorithm = RLAlgorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
algorithm.step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
algorithm.step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_a_meta_rl_step_faults_in_far_fewer_pages():
    faults = {mode: int(subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    assert faults["keep"] * 3 < faults["default"], faults
