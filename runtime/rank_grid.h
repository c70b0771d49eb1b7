/*
 * rank_grid.h — the world of a data-parallel pipeline run: D pipeline
 * devices x R replicas, rank = device x R + replica (pp_rank_of,
 * docs/pprun.md "Data parallelism"), and the groups a transport makes of
 * it.  Pure functions, no transport: the NCCL transport's communicators
 * and the replay's names come from here, and test_rank_grid checks them
 * on the CPU.
 */
#ifndef PPRUN_RANK_GRID_H
#define PPRUN_RANK_GRID_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pr_grid {
    int devices, replicas; /* replicas < 2 reads as 1 */
} pr_grid;

int pr_grid_world(pr_grid g);
/* Whether rank is in [0, world). */
bool pr_grid_valid(pr_grid g, int rank);
/* The world rank of (device, replica); -1 when either is out of range. */
int pr_grid_rank(pr_grid g, int device, int replica);
int pr_grid_device(pr_grid g, int rank);
int pr_grid_replica(pr_grid g, int rank);
/* The replica group of a device (whom its stages' reductions span): its
 * R world ranks in replica order into out[R]; returns R (0: no such device). */
int pr_grid_replica_group(pr_grid g, int device, int *out);
/* Whom a pipeline op of `rank` that names pipeline device peer_device
 * talks to: that device's rank in rank's own replica (-1: out of range). */
int pr_grid_pipeline_peer(pr_grid g, int rank, int peer_device);
/* The replica communicator's split (ncclCommSplit): color = the device
 * (one communicator per replica group), key = the replica (its rank in
 * it). */
void pr_grid_split(pr_grid g, int rank, int *color, int *key);
/* Whether a message between world ranks a and b is within a replica
 * group (the data-parallel reductions: same device, another replica)
 * rather than a pipeline transfer; and b's rank in that group (-1: b is
 * not in a's group). */
bool pr_grid_same_group(pr_grid g, int a, int b);
int pr_grid_group_rank(pr_grid g, int a, int b);
/* With per_node consecutive ranks on each node (torchrun's local world
 * size, Slurm's tasks per node): rank's node. */
int pr_grid_node(int rank, int per_node);
/* "device 2" with one replica, "rank 5 (device 2, replica 1)" with more;
 * returns buf. */
const char *pr_grid_name(pr_grid g, int rank, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
