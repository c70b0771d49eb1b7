/*
 * rank_grid.c — the rank grid of a data-parallel pipeline run and its
 * groups (rank_grid.h).  Data parallelism is innermost, as Megatron orders
 * its groups: the R replicas of a device are consecutive ranks, so with R
 * dividing the GPUs of a node a reduction stays inside the node and the
 * pipeline transfers cross nodes.
 */
#include "rank_grid.h"

#include <stdio.h>

#include "pp.h"

static int reps(pr_grid g) { return g.replicas > 1 ? g.replicas : 1; }

int pr_grid_world(pr_grid g) { return g.devices > 0 ? g.devices * reps(g) : 0; }

bool pr_grid_valid(pr_grid g, int rank) { return rank >= 0 && rank < pr_grid_world(g); }

int pr_grid_rank(pr_grid g, int device, int replica)
{
    if (device < 0 || device >= g.devices || replica < 0 || replica >= reps(g))
        return -1;
    return pp_rank_of(device, replica, reps(g));
}

int pr_grid_device(pr_grid g, int rank) { return pr_grid_valid(g, rank) ? rank / reps(g) : -1; }

int pr_grid_replica(pr_grid g, int rank) { return pr_grid_valid(g, rank) ? rank % reps(g) : -1; }

int pr_grid_replica_group(pr_grid g, int device, int *out)
{
    if (device < 0 || device >= g.devices)
        return 0;
    for (int r = 0; r < reps(g); r++)
        out[r] = pr_grid_rank(g, device, r);
    return reps(g);
}

int pr_grid_pipeline_peer(pr_grid g, int rank, int peer_device)
{
    return pr_grid_valid(g, rank) ? pr_grid_rank(g, peer_device, pr_grid_replica(g, rank)) : -1;
}

void pr_grid_split(pr_grid g, int rank, int *color, int *key)
{
    *color = pr_grid_device(g, rank);
    *key = pr_grid_replica(g, rank);
}

bool pr_grid_same_group(pr_grid g, int a, int b)
{
    return pr_grid_valid(g, a) && pr_grid_valid(g, b) && pr_grid_device(g, a) == pr_grid_device(g, b);
}

int pr_grid_group_rank(pr_grid g, int a, int b)
{
    return pr_grid_same_group(g, a, b) ? pr_grid_replica(g, b) : -1;
}

int pr_grid_node(int rank, int per_node) { return per_node > 0 ? rank / per_node : 0; }

const char *pr_grid_name(pr_grid g, int rank, char *buf, size_t size)
{
    if (reps(g) > 1)
        snprintf(buf, size, "rank %d (device %d, replica %d)", rank, rank / reps(g), rank % reps(g));
    else
        snprintf(buf, size, "device %d", rank);
    return buf;
}
