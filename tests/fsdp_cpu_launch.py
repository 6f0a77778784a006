"""Launch target that runs a training stage under FSDP2 on CPU processes (gloo), for the FSDP tests.

`accelerate launch --config_file training/accelerate/fsdp.yaml` starts the processes and hands each the yaml's FSDP
settings through the environment, but accelerate shards only on accelerator devices: on CPU it sets every process up
for plain data parallel. This target turns each process's accelerate state to FSDP with the plugin those settings
describe, then runs the stage's own `main`. Everything else is the product's code path: `accelerator.prepare` shards
the transformer with `fully_shard` and re-points the optimizer, clipping, checkpoints and the gathered state dict are
accelerate's FSDP2 branches, and the stage's loop runs unchanged.

    accelerate launch --config_file training/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \
        tests/fsdp_cpu_launch.py training.stage3_joint --latents ... --output_dir ...
"""

import importlib
import sys

from accelerate import FullyShardedDataParallelPlugin
from accelerate.state import PartialState
from accelerate.utils import DistributedType


def fsdp_accelerator(make_accelerator):
    """`make_accelerator` whose accelerator is in FSDP mode (fsdp_version and the rest from the launcher's settings)."""

    def make(config):
        accelerator = make_accelerator(config)
        # both shared states: a later AcceleratorState() copies PartialState's distributed type over its own
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        plugin = FullyShardedDataParallelPlugin()
        if accelerator.mixed_precision != "no":
            plugin.set_mixed_precision(accelerator.mixed_precision)
        accelerator.state.fsdp_plugin = plugin
        return accelerator

    return make


def main() -> None:
    stage = importlib.import_module(sys.argv[1])
    stage.make_accelerator = fsdp_accelerator(stage.make_accelerator)
    stage.main(sys.argv[2:])


if __name__ == "__main__":
    main()
