/*
 * test_rank_grid.c — the rank grid of data_parallel = R and the groups
 * made of it (runtime/rank_grid.c), which the NCCL transport's
 * communicators are split by: every rank is one (device, replica) and back,
 * in the compiler's order (pp_rank_of); the replica groups partition the
 * world, the split's colors and keys give exactly those groups with each
 * member's replica as its rank in it; pipeline pairs stay in one replica
 * and are symmetric; with R dividing a node's GPUs a reduction stays on
 * the node.
 */
#include <stdlib.h>
#include <string.h>

#include "pprun.h"
#include "rank_grid.h"
#include "test_util.h"

START_TEST(test_rank_round_trip)
{
    for (int D = 1; D <= 5; D++)
        for (int R = 1; R <= 4; R++) {
            pr_grid g = {D, R};
            ck_assert_int_eq(pr_grid_world(g), D * R);
            int *seen = calloc((size_t)(D * R), sizeof *seen);
            for (int d = 0; d < D; d++)
                for (int r = 0; r < R; r++) {
                    int q = pr_grid_rank(g, d, r);
                    ck_assert_int_eq(q, pp_rank_of(d, r, R));
                    ck_assert(pr_grid_valid(g, q));
                    ck_assert_int_eq(pr_grid_device(g, q), d);
                    ck_assert_int_eq(pr_grid_replica(g, q), r);
                    seen[q]++;
                }
            for (int q = 0; q < D * R; q++)
                ck_assert_int_eq(seen[q], 1);
            free(seen);
            /* out of the grid: no rank */
            ck_assert_int_eq(pr_grid_rank(g, D, 0), -1);
            ck_assert_int_eq(pr_grid_rank(g, 0, R), -1);
            ck_assert_int_eq(pr_grid_rank(g, -1, 0), -1);
            ck_assert_int_eq(pr_grid_device(g, D * R), -1);
            ck_assert_int_eq(pr_grid_replica(g, -1), -1);
        }
    /* replicas 0 (a plan without data_parallel) is one replica */
    ck_assert_int_eq(pr_grid_world((pr_grid){3, 0}), 3);
    ck_assert_int_eq(pr_grid_rank((pr_grid){3, 0}, 2, 0), 2);
}
END_TEST

START_TEST(test_replica_groups_and_split)
{
    for (int D = 1; D <= 4; D++)
        for (int R = 1; R <= 4; R++) {
            pr_grid g = {D, R};
            int world = D * R, in[64] = {0}, members[8];
            for (int d = 0; d < D; d++) {
                ck_assert_int_eq(pr_grid_replica_group(g, d, members), R);
                for (int k = 0; k < R; k++) {
                    int q = members[k];
                    in[q]++;
                    ck_assert_int_eq(pr_grid_device(g, q), d);
                    ck_assert_int_eq(pr_grid_replica(g, q), k);
                    if (k)
                        ck_assert_int_eq(q, members[k - 1] + 1); /* adjacent ranks */
                    int color, key;
                    pr_grid_split(g, q, &color, &key);
                    ck_assert_int_eq(color, d);
                    ck_assert_int_eq(key, k);
                }
            }
            for (int q = 0; q < world; q++)
                ck_assert_int_eq(in[q], 1); /* a partition */
            /* same color <=> same group; the key is the rank in it */
            for (int a = 0; a < world; a++)
                for (int b = 0; b < world; b++) {
                    int ca, ka, cb, kb;
                    pr_grid_split(g, a, &ca, &ka);
                    pr_grid_split(g, b, &cb, &kb);
                    ck_assert(pr_grid_same_group(g, a, b) == (ca == cb));
                    ck_assert_int_eq(pr_grid_group_rank(g, a, b), ca == cb ? kb : -1);
                    if (ca == cb && a != b)
                        ck_assert_int_ne(ka, kb);
                }
            ck_assert_int_eq(pr_grid_replica_group(g, D, members), 0);
            ck_assert(!pr_grid_same_group(g, 0, world));
        }
}
END_TEST

START_TEST(test_pipeline_pairs)
{
    pr_grid g = {4, 3};
    for (int q = 0; q < 12; q++)
        for (int d = 0; d < 4; d++) {
            int p = pr_grid_pipeline_peer(g, q, d);
            ck_assert_int_eq(pr_grid_device(g, p), d);
            ck_assert_int_eq(pr_grid_replica(g, p), pr_grid_replica(g, q));
            ck_assert_int_eq(pr_grid_pipeline_peer(g, p, pr_grid_device(g, q)), q); /* symmetric */
            ck_assert(pr_grid_same_group(g, q, p) == (d == pr_grid_device(g, q)));
        }
    /* device 1 -> 2 of replica 2: ranks 5 and 8 */
    ck_assert_int_eq(pr_grid_pipeline_peer(g, 5, 2), 8);
    ck_assert_int_eq(pr_grid_pipeline_peer(g, 5, 4), -1);
    ck_assert_int_eq(pr_grid_pipeline_peer(g, 12, 0), -1);
}
END_TEST

/* docs/multinode.md: replicas innermost.  8 x 8 on nodes of 8 GPUs: a
 * device's replicas fill one node, every pipeline transfer leaves it;
 * 4 x 2 on nodes of 4: two devices' groups a node. */
START_TEST(test_nodes)
{
    pr_grid g = {8, 8};
    int members[8];
    for (int d = 0; d < 8; d++) {
        pr_grid_replica_group(g, d, members);
        for (int k = 0; k < 8; k++)
            ck_assert_int_eq(pr_grid_node(members[k], 8), d);
        if (d + 1 < 8)
            for (int k = 0; k < 8; k++)
                ck_assert_int_ne(pr_grid_node(pr_grid_pipeline_peer(g, members[k], d + 1), 8), d);
    }
    pr_grid h = {4, 2};
    ck_assert_int_eq(pr_grid_node(pr_grid_pipeline_peer(h, 1, 1), 4), 0); /* device 0 -> 1: same node */
    ck_assert_int_eq(pr_grid_node(pr_grid_pipeline_peer(h, 3, 2), 4), 1); /* device 1 -> 2: the next */
    ck_assert_int_eq(pr_grid_node(5, 0), 0);
}
END_TEST

START_TEST(test_names)
{
    char b[64];
    ck_assert_str_eq(pr_grid_name((pr_grid){3, 2}, 5, b, sizeof b), "rank 5 (device 2, replica 1)");
    ck_assert_str_eq(pr_grid_name((pr_grid){3, 1}, 2, b, sizeof b), "device 2");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("rank_grid");
    TCase *tc = tcase_create("rank_grid");
    tcase_add_test(tc, test_rank_round_trip);
    tcase_add_test(tc, test_replica_groups_and_split);
    tcase_add_test(tc, test_pipeline_pairs);
    tcase_add_test(tc, test_nodes);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
