/*
 * torch_csv_write.c — a plan as PyTorch's schedule CSV
 * (`ppcc --emit torch-csv`, docs/torch.md): the file that
 * torch.distributed.pipelining's _PipelineScheduleRuntime._load_csv reads
 * and torchtitan's pipeline_parallel_schedule_csv names.
 *
 * One row per pipeline rank, one action per cell, in PyTorch's action
 * grammar: <stage><kind>[<mb>].  compute_only holds the compute actions (F;
 * B a full backward, or I then W where the plan splits the backward);
 * compute_comms adds the transfers in the plan's own order (SEND_F, RECV_F,
 * SEND_B, RECV_B, each named by the stage that runs it, as PyTorch names
 * them), a WAIT_SEND_F / WAIT_SEND_B for every send where PyTorch's loader
 * wants one, and REDUCE_GRAD / WAIT_REDUCE_GRAD after a stage's last
 * backward.  Rows end in CRLF, as Python's csv writer ends them.  A
 * gpt's tied allreduce is left out of both: PyTorch sums tied weights'
 * gradients outside the schedule (its action grammar has no token for it;
 * REDUCE_GRAD is the data-parallel reduction), as update and flush are
 * its runtime's own step.
 *
 * What PyTorch's runtime cannot run is refused before anything is written
 * (pp_torch_csv_check): recompute as an op of its own, asynchronous weight
 * versions, mirrored pipelines, and placements torchtitan cannot build.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

const char *pp_torch_csv_format_name(int format)
{
    return format == PP_TORCH_CSV_COMPUTE_COMMS ? "compute_comms" : "compute_only";
}

int pp_torch_csv_format_from_name(const char *name)
{
    if (!strcmp(name, "compute_only"))
        return PP_TORCH_CSV_COMPUTE_ONLY;
    if (!strcmp(name, "compute_comms"))
        return PP_TORCH_CSV_COMPUTE_COMMS;
    return -1;
}

int pp_torch_csv_check(const pp_plan *p, pp_diag *d)
{
    int before = d->errors;
    if (p->async != PP_ASYNC_NONE)
        pp_error(d, "--emit torch-csv: schedule %s keeps %s weight versions, which PyTorch's pipeline runtime "
                    "does not have (it runs one synchronous update per step)",
                 p->schedule, pp_async_name(p->async));
    if (p->mirrored)
        pp_error(d, "--emit torch-csv: schedule %s is two mirrored pipelines (micro-batches 0..%d through stages "
                    "0..%d, the others through %d..%d, each stage's two copies summed), but PyTorch's pipeline "
                    "runtime sends every micro-batch through every stage and has no copies to sum (its DualPipe "
                    "is the V-shape one: schedule dualpipev)",
                 p->schedule, p->microbatches / 2 - 1, p->stages / 2 - 1, p->stages / 2, p->stages - 1);
    for (int dv = 0; dv < p->devices && d->errors == before; dv++)
        for (int i = 0; i < p->dev[dv].n; i++)
            if (p->dev[dv].ops[i].kind == PP_OP_R) {
                pp_error(d, "--emit torch-csv: stage %d recomputes its forward as an op of its own (R), which "
                            "PyTorch's action grammar has no token for (recompute it inside the stage's module, "
                            "with activation checkpointing, and drop recompute here)",
                         p->dev[dv].ops[i].stage);
                break;
            }
    if (pp_placement_shape(p->placement, p->devices, p->stages) == PP_PLACE_LIST)
        pp_error(d, "--emit torch-csv: the placement is neither loop nor vshape; torchtitan places stages on ranks "
                    "by one of those two (docs/torch.md)");
    return d->errors - before;
}

/* The compute action of op in PyTorch's grammar. */
static void put_compute(FILE *f, const pp_plan *p, const pp_op *op, bool *first)
{
    const char *kind = op->kind == PP_OP_F ? "F" : op->kind == PP_OP_W ? "W" : p->split_backward ? "I" : "B";
    fprintf(f, "%s%d%s%d", *first ? "" : ",", op->stage, kind, op->mb);
    *first = false;
}

static void put_action(FILE *f, int stage, const char *kind, int mb, bool *first)
{
    fprintf(f, "%s%d%s", *first ? "" : ",", stage, kind);
    if (mb >= 0)
        fprintf(f, "%d", mb);
    *first = false;
}

/* Sends still waiting for their WAIT_SEND on one rank, in the order sent. */
typedef struct pending_send {
    int grad, stage, mb;
    bool waited;
} pending_send;

static void put_comms_row(FILE *f, const pp_plan *p, int dv, int *backwards, pending_send *sends)
{
    const pp_device *dev = &p->dev[dv];
    int nsends = 0;
    bool first = true;
    for (int i = 0; i < dev->n; i++) {
        const pp_op *op = &dev->ops[i];
        if (pp_op_is_comm(op->kind)) {
            bool grad = op->comm == PP_COMM_GRAD;
            if (op->kind == PP_OP_SEND) {
                put_action(f, op->stage, grad ? "SEND_B" : "SEND_F", op->mb, &first);
                sends[nsends++] = (pending_send){grad, op->stage, op->mb, false};
            } else /* named by the stage that receives */
                put_action(f, grad ? op->stage - 1 : op->stage + 1, grad ? "RECV_B" : "RECV_F", op->mb, &first);
            continue;
        }
        if (!pp_op_is_compute(op->kind))
            continue; /* update, flush, the tied allreduce: the runtime's own step */
        put_compute(f, p, op, &first);
        if (op->kind == PP_OP_B) /* the local backward shows the activation was taken */
            for (int k = 0; k < nsends; k++)
                if (!sends[k].waited && !sends[k].grad && sends[k].stage == op->stage && sends[k].mb == op->mb) {
                    put_action(f, op->stage, "WAIT_SEND_F", op->mb, &first);
                    sends[k].waited = true;
                }
        /* The gradients of a stage are reduced after its last backward
         * that computes weight gradients (W, or an unsplit B). */
        if ((op->kind == PP_OP_W || (op->kind == PP_OP_B && !p->split_backward)) &&
            ++backwards[op->stage] == p->microbatches) {
            put_action(f, op->stage, "REDUCE_GRAD", -1, &first);
            put_action(f, op->stage, "WAIT_REDUCE_GRAD", -1, &first);
        }
    }
    for (int k = 0; k < nsends; k++)
        if (!sends[k].waited)
            put_action(f, sends[k].stage, sends[k].grad ? "WAIT_SEND_B" : "WAIT_SEND_F", sends[k].mb, &first);
}

int pp_emit_torch_csv(FILE *f, const pp_plan *p, int format)
{
    if (!f || !p || p->devices < 1 || !p->dev || !p->placement)
        return 1;
    int *backwards = NULL;
    pending_send *sends = NULL;
    if (format == PP_TORCH_CSV_COMPUTE_COMMS) {
        int most = 1;
        for (int dv = 0; dv < p->devices; dv++)
            most = p->dev[dv].n > most ? p->dev[dv].n : most;
        backwards = pp_xcalloc((size_t)p->stages, sizeof *backwards, "the CSV's reductions");
        sends = pp_xcalloc((size_t)most, sizeof *sends, "the CSV's send waits");
    }
    for (int dv = 0; dv < p->devices; dv++) {
        if (format == PP_TORCH_CSV_COMPUTE_COMMS)
            put_comms_row(f, p, dv, backwards, sends);
        else {
            bool first = true;
            for (int i = 0; i < p->dev[dv].n; i++)
                if (pp_op_is_compute(p->dev[dv].ops[i].kind))
                    put_compute(f, p, &p->dev[dv].ops[i], &first);
        }
        fputs("\r\n", f);
    }
    free(backwards);
    free(sends);
    return fflush(f) != 0 || ferror(f) ? 1 : 0;
}
