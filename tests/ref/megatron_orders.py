"""megatron_orders.py — the compute order each rank of Megatron-core's
pipeline schedules runs, taken by running megatron.core.pipeline_parallel
itself.

forward_backward_pipelining_without_interleaving and _with_interleaving run
as shipped, with their own forward_step and backward_step (real autograd on
CPU tensors).  Stand-ins replace only what a single process cannot have:

  - the process groups: PyTorch's "fake" backend, one rank at a time (it
    hallucinates communication; only rank and size matter here);
  - the transport under Megatron's P2PCommunicator (`_communicate`, the one
    method that moves tensors): a receive hands over a fresh CPU tensor;
  - the device: the schedules allocate a token counter on "cuda", moved to
    the CPU;
  - the model, as any user supplies it: one parameter per chunk, whose
    forward logs (F, chunk, mb) and whose autograd backward logs (BW, chunk,
    mb), BW for a full backward.  The micro-batch id is what the chunk's data iterator hands out.
"""

import sys
import warnings

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

# Its import and config warn about optional CUDA libraries this run has no use for.
warnings.filterwarnings("ignore", module=r"megatron\.")

from megatron.core.enums import ModelType  # noqa: E402
from megatron.core.pipeline_parallel import schedules  # noqa: E402
from megatron.core.pipeline_parallel.p2p_communication import P2PCommunicator  # noqa: E402
from megatron.core.process_groups_config import ProcessGroupCollection  # noqa: E402
from megatron.core.transformer.transformer_config import TransformerConfig  # noqa: E402


class Refused(Exception):
    """The schedule refused the shape (its message is the argument)."""


class LocalTransport(P2PCommunicator):
    """Megatron's communicator with nothing on the wire: each receive yields
    a new tensor of the requested shape, sends go nowhere."""

    def _communicate(self, *, tensor_send_next, tensor_send_prev, recv_prev, recv_next, tensor_shape,
                     wait_on_reqs=True):
        def received():
            return torch.zeros(tensor_shape, requires_grad=True, dtype=self.config.pipeline_dtype)

        pending = None if wait_on_reqs else ([] if self.config.batch_p2p_comm else {})
        return (received() if recv_prev else None), (received() if recv_next else None), pending


class CudaOnCpu(TorchFunctionMode):
    """Tensors asked for on "cuda" are made on the CPU (no GPU here)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


class _LogBackward(torch.autograd.Function):
    """Identity whose backward logs the (chunk, mb) it belongs to."""

    @staticmethod
    def forward(ctx, x, log, chunk, mb):
        ctx.entry = (log, chunk, mb)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        log, chunk, mb = ctx.entry
        log.append(("BW", chunk, mb))
        return grad, None, None, None


class RecordingChunk(torch.nn.Module):
    """One model chunk: Megatron sets its input tensor, the forward step
    function calls it with the micro-batch id."""

    def __init__(self, config, chunk, log):
        super().__init__()
        self.config, self.model_type = config, ModelType.encoder_or_decoder
        self.chunk, self.log = chunk, log
        self.weight = torch.nn.Parameter(torch.zeros(1, 1, 1))
        self.input_tensor = None

    def set_input_tensor(self, tensors):
        self.input_tensor = tensors[0]

    def forward(self, mb):
        x = self.weight if self.input_tensor is None else self.input_tensor + self.weight
        self.log.append(("F", self.chunk, mb))
        return _LogBackward.apply(x, self.log, self.chunk, mb)


def _forward_step(data_iterator, model):
    out = model(next(data_iterator))
    return out, lambda output: (output.sum(), {})


def _run_rank(D, M, v, group, rank, interleaved, overlap_p2p):
    log = []
    excepthook = sys.excepthook  # init_process_group wraps it, once more each time
    dist.init_process_group("fake", store=dist.HashStore(), rank=rank, world_size=D)
    sys.excepthook = excepthook
    try:
        config = TransformerConfig(
            num_layers=D * v, hidden_size=1, num_attention_heads=1, pipeline_dtype=torch.float32,
            pipeline_model_parallel_size=D, virtual_pipeline_model_parallel_size=v if interleaved else None,
            microbatch_group_size_per_vp_stage=group, overlap_p2p_comm=overlap_p2p, batch_p2p_comm=not overlap_p2p)
        groups = ProcessGroupCollection()
        groups.pp = dist.group.WORLD
        groups.tp = groups.cp = groups.dp_cp = dist.new_group([rank])
        groups.embd = groups.pos_embd = None
        model = [RecordingChunk(config, c, log) for c in range(v)]
        data = [iter(range(M)) for _ in range(v)]
        fn = (schedules.forward_backward_pipelining_with_interleaving if interleaved
              else schedules.forward_backward_pipelining_without_interleaving)
        try:
            with CudaOnCpu():
                fn(forward_step_func=_forward_step, data_iterator=data, model=model, num_microbatches=M,
                   seq_length=1, micro_batch_size=1, p2p_communicator=LocalTransport(groups.pp, config),
                   pg_collection=groups)
        except (ValueError, RuntimeError, AssertionError) as e:
            if log:  # a refusal comes before any compute; anything later is a real failure
                raise
            raise Refused(str(e) or type(e).__name__) from e
    finally:
        dist.destroy_process_group()
    # Chunk c of rank r is stage c * D + r (Megatron's virtual pipeline layout).
    return [(k, c * D + rank, mb) for k, c, mb in log]


def run(D, M, v=1, group=None, interleaved=False, overlap_p2p=False):
    """Every rank's order, {rank: [(kind, stage, mb), ...]} with kind F or BW
    (a full backward), of forward_backward_pipelining_without_interleaving
    (interleaved False, v model chunks handed to it) or _with_interleaving (v chunks,
    microbatch_group_size_per_vp_stage = group, None for Megatron's
    default).  overlap_p2p selects Megatron-LM's default for virtual
    pipelines (overlap_p2p_comm on, batch_p2p_comm off).  Raises Refused
    where the schedule does."""
    return {rank: _run_rank(D, M, v, group, rank, interleaved, overlap_p2p) for rank in range(D)}
