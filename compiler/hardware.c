/*
 * hardware.c — the hardware presets (docs/hardware.md lists each number's
 * source) and the conversions the cost model makes with a hardware
 * description: FLOPs to seconds on one device, bytes to seconds over the
 * link between two ranks and over a ring of them.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

const char *pp_precision_name(int p)
{
    static const char *const names[PP_PRECISIONS] = {"fp32", "tf32", "bf16"};
    return p >= 0 && p < PP_PRECISIONS ? names[p] : "?";
}

int pp_precision_from_name(const char *n)
{
    for (int p = 0; p < PP_PRECISIONS; p++)
        if (strcmp(n, pp_precision_name(p)) == 0)
            return p;
    return -1;
}

/* Peak dense throughput (the datasheets give TF32 and BF16 with 2:4
 * sparsity; these are half of those), memory as sold, NVLink per
 * direction (half the datasheet's bidirectional total), the network one
 * 400 Gb/s (H100, H200) or 200 Gb/s (A100) adapter per GPU as in DGX
 * systems.  Latencies are orders of magnitude of NCCL point-to-point, not
 * datasheet values.  The efficiency is a typical share of the peak that
 * large transformer matmuls reach in training (MFU 40-55 %). */
static const pp_hardware presets[] = {
    {"h100", {67e12, 494.7e12, 989.4e12}, 0.5, 80e9, 8, 450e9, 5e-6, 50e9, 10e-6},
    {"h200", {67e12, 494.7e12, 989.4e12}, 0.5, 141e9, 8, 450e9, 5e-6, 50e9, 10e-6},
    {"a100", {19.5e12, 156e12, 312e12}, 0.5, 80e9, 8, 300e9, 5e-6, 25e9, 10e-6},
    /* this machine's kind: one device is one thread on one core (AVX2
     * FMA: 2 x 8 fp32 lanes x 2 FLOPs at about 2.5 GHz; bf16 computed in
     * fp32), every device in one process, transfers a copy in memory. */
    {"cpu", {80e9, 80e9, 80e9}, 0.5, 24e9, PP_MAX_DEVICES, 10e9, 2e-6, 10e9, 2e-6},
};

const pp_hardware *pp_hardware_preset(const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0)
            return &presets[i];
    return NULL;
}

const char *pp_hardware_preset_names(void) { return "h100, h200, a100 or cpu"; }

double pp_link_time(const pp_hardware *hw, int a, int b, double bytes)
{
    if (a == b)
        return 0;
    int per = hw->devices_per_node > 0 ? hw->devices_per_node : 1;
    bool same = a / per == b / per;
    double bw = same ? hw->node_bandwidth : hw->network_bandwidth;
    return (same ? hw->node_latency : hw->network_latency) + bytes / bw;
}

double pp_allreduce_time(const pp_hardware *hw, const int *ranks, int n, double bytes)
{
    if (n < 2)
        return 0;
    if (n == 2)
        return pp_link_time(hw, ranks[0], ranks[1], bytes);
    double slowest = 0;
    for (int k = 0; k < n; k++) {
        double t = pp_link_time(hw, ranks[k], ranks[(k + 1) % n], bytes / n);
        slowest = t > slowest ? t : slowest;
    }
    return 2.0 * (n - 1) * slowest;
}

double pp_reduce_scatter_time(const pp_hardware *hw, const int *ranks, int n, double bytes)
{
    if (n < 2)
        return 0;
    double slowest = 0;
    for (int k = 0; k < n; k++) {
        double t = pp_link_time(hw, ranks[k], ranks[(k + 1) % n], bytes / n);
        slowest = t > slowest ? t : slowest;
    }
    return (n - 1) * slowest;
}

double pp_pipeline_link_time(const pp_hardware *hw, int replicas, int a, int b, double bytes)
{
    int R = replicas > 1 ? replicas : 1, per = hw->devices_per_node > 0 ? hw->devices_per_node : 1;
    /* every replica crosses the same node boundaries when R and the node
     * size divide one another: replica 0 stands for all */
    int distinct = per % R == 0 || R % per == 0 ? 1 : R;
    double slowest = 0;
    for (int r = 0; r < distinct; r++) {
        double t = pp_link_time(hw, pp_rank_of(a, r, R), pp_rank_of(b, r, R), bytes);
        slowest = t > slowest ? t : slowest;
    }
    return slowest;
}

double pp_compute_time(const pp_hardware *hw, int p, double flops)
{
    return flops / (hw->flops[p] * hw->efficiency);
}

double pp_coll_time(const pp_hardware *hw, const pp_plan *p, const pp_coll *c)
{
    int R = pp_plan_replicas(p);
    if (pp_coll_over_replicas(c)) {
        if (R < 2 || c->nranks < 1)
            return 0;
        int *ranks = pp_xcalloc((size_t)R, sizeof *ranks, "a collective's ranks");
        for (int r = 0; r < R; r++)
            ranks[r] = pp_rank_of(c->ranks[0], r, R);
        double t = c->what == PP_COLL_STAGE ? pp_allreduce_time(hw, ranks, R, c->bytes)
                                            : pp_reduce_scatter_time(hw, ranks, R, c->bytes);
        free(ranks);
        return t;
    }
    if (c->nranks == 2) /* the tied pair, in its slowest replica */
        return pp_pipeline_link_time(hw, R, c->ranks[0], c->ranks[1], c->bytes);
    return pp_allreduce_time(hw, c->ranks, c->nranks, c->bytes);
}
