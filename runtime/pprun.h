/*
 * pprun.h — the runtime's internal interfaces: plan loader, model
 * (initialisation, data, reference training), replay, dump and trace.
 * Backends (backend.h) and transports (transport.h) plug into the replay.
 */
#ifndef PPRUN_H
#define PPRUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "output.h"
#include "pp.h"

#define PPRUN_PLAN_VERSION 2

/* The model a plan trains: its "model" object, checked. */
enum pr_model_kind { PR_MODEL_MLP = 0, PR_MODEL_GPT = 1 };
enum pr_optimizer { PR_SGD = 0, PR_ADAMW = 1 };

/* model gpt's settings besides pr_model's common ones (docs/gpt.md). */
typedef struct pr_gpt {
    int heads, ffn, seq, vocab; /* head size hidden / heads */
    bool tie;                   /* the head is wte's transpose: no head.w */
    int optimizer;              /* enum pr_optimizer */
    double beta1, beta2, eps, weight_decay; /* adamw: weight decay on matrices and embeddings */
    int precision;              /* enum pr_precision (backend.h): what the run computes in */
    char *data;                 /* absolute path of the data file; NULL: synthetic tokens */
    int64_t data_bytes;         /* its size, as the plan was compiled (and found again) */
    int embedding_stage, head_stage; /* 0 and stages - 1 */
    int blocks;                 /* transformer blocks (pr_model.layers counts pprun's layers:
                                   the embedding, the blocks, the head) */
    unsigned char *bytes;       /* the data file's contents (data_bytes), read by the loader */
} pr_gpt;

struct pr_model_ops;

typedef struct pr_model {
    int kind;              /* enum pr_model_kind */
    /* Its layer kinds and loss (layer.h, models.c); NULL for a kind pprun
     * does not train yet (gpt), which main.c refuses before any work. */
    const struct pr_model_ops *ops;
    size_t *param_off; /* [layers + 1]: layer l's parameter block, in model order */
    int layers, hidden, batch; /* gpt: layers are blocks, batch counts sequences */
    int stages;
    bool mirrored;         /* the plan's pipeline.mirrored: stage stages / 2 + s is a copy of stage s */
    int *layers_per_stage; /* [stages]; gpt: blocks (the first and the last stage may hold none) */
    int *first_layer;      /* [stages]: global index of the stage's first layer (block) */
    double lr;
    uint64_t seed;
    double act_size, mem_limit; /* the plan's "memory" object, for pp_verify */
    double input_frac;          /* memory.input: what a recomputed (stage, mb) keeps (0..1) */
    pr_gpt gpt;                 /* kind gpt only */
    /* With layers (docs/costs.md), NULL otherwise: memory.stage_activation,
     * memory.stage_input [stages] and memory.static [devices]. */
    double *stage_act, *stage_input, *static_mem;
    int devices;
} pr_model;

void pr_model_free(pr_model *m);
/* gpt_data.c: a gpt's data file into m->gpt.bytes (nothing for another
 * model, or synthetic tokens); 1, with the error printed, when it cannot. */
int pr_gpt_read_data(pr_model *m, pp_diag *d);
/* The plan's memory model as activation_memory.c takes it (no limit). */
pp_verify_opts pr_model_memory(const pr_model *m);

/* Loads plan JSON v1 strictly into plan and model, then runs pp_verify.
 * Errors name the file and the JSON path of the offending field; text[len]
 * must be '\0'.  Time and memory are linear in the text (docs/pprun.md). */
int pr_plan_load_text(const char *name, const char *text, size_t len, pp_diag *d, pp_plan *plan,
                      pr_model *model);
/* The same from a file of at most PR_PLAN_MAX_BYTES (pr_plan_read; "-":
 * standard input, named <stdin>). */
int pr_plan_load_file(const char *path, pp_diag *d, pp_plan *plan, pr_model *model);

/* The largest plan text pprun reads: this many bytes for each of the
 * PP_MAX_OPS_TOTAL ops a plan may hold (ppcc writes at most 104 an op),
 * 8 GiB in all. */
#define PR_PLAN_MAX_BYTES_PER_OP 128
#define PR_PLAN_MAX_BYTES ((size_t)PP_MAX_OPS_TOTAL * PR_PLAN_MAX_BYTES_PER_OP)
/* plan_read.c: the whole of path ("-": standard input), NUL-terminated,
 * into *text (malloc'd), refusing more than max bytes; a FIFO or device is
 * read as a stream and refused as soon as its start cannot begin a JSON
 * text. */
int pr_plan_read(const char *path, size_t max, pp_diag *d, char **text, size_t *len);

/* model.c: deterministic parameters and data (docs/model.md). */
void pr_init_layer(const pr_model *m, int layer, float *W, float *b); /* W NULL: b only */
void pr_init_params(const pr_model *m, float *W, float *b); /* [L,H,H], [L,H] */
/* Rows [row0, row0+rows) of step k's global batch. */
void pr_make_batch(const pr_model *m, int step, int row0, int rows, float *x, float *t);
/* The trained parameters (pr_run_result.params, each layer's block W then
 * b) as W [L,H,H] and b [L,H]. */
void pr_mlp_unpack(const pr_model *m, const float *params, float *W, float *b);
/* Single-device full-batch training, straightforward loops (the --check
 * reference).  W, b start as initialised, end trained; loss[steps]. */
void pr_reference_train(const pr_model *m, int steps, float *W, float *b, double *loss);
/* The same with each step's gradient taken at the weights of `delay` (0 or
 * 1) steps before: W^{t+1} = W^t - lr grad f_t(W^{t-delay}), W^{-1} = W^0
 * (delay 1 is PipeDream-2BW's rule, docs/async.md). */
void pr_reference_train_delayed(const pr_model *m, int steps, int delay, float *W, float *b,
                                double *loss);
/* The gradient of `rows` rows (x0, t) with layer l at (Wl[l], bl[l]) into
 * dW[l], db[l] (overwritten, [h*h], [h]), scaled by 1/batch as in a step;
 * returns sum (y - t)^2.  Plain loops, shared by every --check reference. */
double pr_reference_grad(const pr_model *m, float *const *Wl, float *const *bl, const float *x0,
                         const float *t, int rows, float *const *dW, float *const *db);
/* async_ref.c: the --check reference of the plan's weight rule
 * (docs/async.md): pr_reference_train for synchronous plans. */
int pr_reference_train_async(const pp_plan *p, const pr_model *m, int steps, float *W, float *b,
                             double *loss, pp_diag *d);
/* A pipedream plan's order for stage s (async_ref.c, docs/async.md):
 * fver[m] = the B of the stage before F(s, m) on its device (the updates
 * it saw), border[k] = the micro-batch of its k-th B.  Nonzero unless each
 * F and B of the stage is there once. */
int pr_async_stage_order(const pp_plan *p, int s, int *fver, int *border);
/* Bytes pr_reference_grad allocates for `rows` rows, and the most
 * pr_reference_train_async allocates (its arrays and pr_reference_grad's):
 * what --check needs besides the run, checked before the run starts. */
double pr_reference_grad_bytes(const pr_model *m, int rows);
double pr_reference_bytes(const pp_plan *p, const pr_model *m);

/* run.c (pr_replay) and run_state.c: running a plan */
typedef struct pr_backend pr_backend;
typedef struct pr_transport pr_transport;

typedef struct pr_run_opts {
    int steps;
    double timeout;       /* seconds a recv may wait */
    bool record_all;      /* keep op times of every step (for --trace) */
    FILE *progress;       /* one line per step; NULL = quiet */
    const pr_backend *backend;   /* NULL = cpu */
    pr_transport *transport;     /* NULL = in-process queues */
    double link_latency;         /* those queues' emulated link (pr_link, transport.h): */
    double link_bandwidth;       /* seconds, bytes per second; 0 and 0: none */
    int precision;               /* enum pr_precision (backend.h) */
    bool graph;                  /* capture step 2 as a CUDA graph, replay it (backends that can) */
    int gpu_base, gpus;          /* device r runs on GPU gpu_base + r % gpus (gpus 0 = 1) */
    bool one_rank;               /* run only device `rank` (one process per rank, nccl) */
    int rank;
    double output_bytes;         /* host memory the outputs' writers take after the run, next
                                    to its results (pr_dump_bytes): the memory check counts it */
} pr_run_opts;

typedef struct pr_run_result {
    float *params;           /* final parameters: every layer's block at model.param_off */
    double *loss;            /* [steps] */
    double seconds;          /* wall time of all steps */
    int recorded_steps;      /* steps whose op times are in start/end */
    double **start, **end;   /* [devices][recorded_steps * n_ops], seconds since run start */
    double *step_start;      /* [steps], seconds since run start */
    int *peak_act;           /* [devices] measured peak of (stage, mb) sets held in full */
    double *peak_mem;        /* [devices] measured peak memory, memory.activation's unit (activation_memory.c) */
    int *pool_slots;         /* [devices] activation buffers preallocated from the plan */
    int *pool_misses;        /* [devices] buffers allocated during the run beyond those */
    int graph_steps;         /* steps replayed from a captured graph */
    /* Asynchronous plans (docs/async.md): the most weight versions a stage
     * of the device held at once, and the bytes beyond its one copy. */
    int *weight_versions;      /* [devices] */
    double *extra_weight_bytes; /* [devices] */
    int devices;
} pr_run_result;

/* Runs the plan.  The first error is printed (through d) when it happens.
 * A wait (a receive, the flush barrier) longer than o->timeout fails the
 * run, naming the device it waited for and that device's op; while nothing
 * waits, an op computing longer than max(o->timeout, 100 x the longest op
 * so far) fails it, naming that op.  A device thread that is still inside
 * the same op a grace period (min(o->timeout, 2 s)) after the run failed
 * cannot be stopped or safely left behind: pr_replay then says so and ends
 * the process (pp_exit_now(1): the outputs' temporaries are removed)
 * instead of returning (docs/pprun.md, "Replay"). */
int pr_replay(const pp_plan *p, const pr_model *m, const pr_run_opts *o, pr_run_result *r,
              pp_diag *d);
/* Fault injection for the tests: pprun does not define these; a test
 * binary may (tests/runtime/fault_hook.c, test_runtime.c).  The fault
 * hook is called on the device's thread before each op it replays (nonzero:
 * the op fails there, as a kernel or transport failure would); when
 * ignore_stash returns true, B computes on the current weights instead of
 * the version its F used (so --check must fail, docs/async.md); pool_slots
 * gives the activation buffers device rank's pool starts with instead of
 * the `slots` the dry run counted (fewer: the replay allocates beyond the
 * pool). */
extern int pr_test_fault_hook(int rank, const pp_op *op, int step) __attribute__((weak));
extern bool pr_test_ignore_stash(void) __attribute__((weak));
extern int pr_test_pool_slots(int rank, int slots) __attribute__((weak));
void pr_run_result_free(pr_run_result *r);
/* step_losses.c: with one process a rank (o->one_rank), the rank whose
 * result holds every step's whole loss and which prints the steps: replica
 * 0 of the last stage's device.  The other ranks' results hold only the
 * losses of their own rows. */
int pr_reporting_rank(const pp_plan *p);

/* check.c: pprun --check. */
/* max |a - ref| / max |ref| (0 if both are all zero). */
double pr_max_rel_err(const float *a, const float *ref, size_t n);
/* --check's tolerance for a GEMM precision (enum pr_precision). */
double pr_check_tolerance(int precision);
/* The reference of `steps` steps fits next to the run's trained weights
 * (else an error, with the numbers). */
bool pr_check_fits(const pp_plan *p, const pr_model *m, int steps, pp_diag *d);
/* Trains the reference and prints the "check: ..." line against r; own
 * (NULL = all layers) says which layers this process trained, with_loss
 * whether it computed the loss (r's weights are packed to those layers).
 * 0 when within tolerance. */
int pr_check_run(const pp_plan *p, const pr_model *m, int steps, pr_run_result *r, double tolerance,
                 const bool *own, bool with_loss);

/* The transformer (gpt_reference.c, gpt_check.c): its parameters in model
 * order (pr_model.param_off) as initialised; sequence `row` of step
 * `step` (seq + 1 tokens); single-device full-batch training of `steps`
 * steps from P (in/out), each step's gradient taken at the weights of
 * `delay` (0, or 1: 2bw's rule) steps before; the bytes it allocates. */
void pr_gpt_init_params(const pr_model *m, float *P);
void pr_gpt_step_tokens(const pr_model *m, int step, int row, int32_t *tok);
void pr_gpt_reference_train(const pr_model *m, int steps, int delay, float *P, double *loss);
/* The same under a pipedream plan's rule (docs/async.md); 1 (error
 * printed) when the plan's order cannot give it. */
int pr_gpt_reference_pipedream(const pp_plan *p, const pr_model *m, int steps, float *P,
                               double *loss, pp_diag *d);
double pr_gpt_reference_bytes(const pp_plan *p, const pr_model *m);
/* pr_check_run and pr_check_fits of a gpt. */
int pr_gpt_check_run(const pp_plan *p, const pr_model *m, int steps, pr_run_result *r,
                     double tolerance, const bool *own, bool with_loss);
bool pr_gpt_check_fits(const pp_plan *p, const pr_model *m, int steps, pp_diag *d);

/* What --trace and --dump write, given to their fill functions; the
 * outputs themselves are made, checked and committed by output.h. */
typedef struct pr_run_record {
    const pp_plan *plan;
    const pr_model *model;
    int steps;
    const pr_run_result *result;
} pr_run_record;

/* dump.c: the files of --dump DIR (NULL-terminated), and the
 * pp_fill_dir_fn that writes them from a pr_run_record, streaming: the
 * host memory it allocates is pr_dump_bytes, whatever the steps. */
extern const char *const pr_dump_files[];
int pr_dump_fill(pp_output *dir, void *record);
double pr_dump_bytes(const pr_model *m);
char **pr_dump_file_names(const pr_model *m); /* pr_dump_files, malloc'd */
/* A malloc'd copy of names (NULL-terminated), and its release. */
char **pr_names_copy(const char *const *names);
void pr_names_free(char **names);
/* float32 C-order .npy; the header alone of any dtype ("<f4", "<i4"). */
int pr_npy_write(FILE *f, const float *data, const int *shape, int ndim);
int pr_npy_header(FILE *f, const char *descr, const int *shape, int ndim);
/* gpt_dump.c: the files of a gpt's --dump DIR (init/NAME.npy,
 * final/NAME.npy, tokens.npy, loss.npy; docs/gpt.md), NULL-terminated and
 * malloc'd (pr_names_free), their fill and its buffer's bytes. */
char **pr_gpt_dump_files(const pr_model *m);
int pr_gpt_dump_fill(pp_output *dir, void *record);
double pr_gpt_dump_bytes(const pr_model *m);

/* trace.c: the --trace file, a pp_fill_fn of a pr_run_record. */
int pr_trace_fill(FILE *f, void *record);
/* Fills sim with the measured times of the last recorded step
 * (microseconds) and the measured peaks; release it with pp_sim_free. */
void pr_measured_sim(const pp_plan *p, const pr_run_result *r, pp_sim *sim);

/* bootstrap.c: the processes of a multi-process run find each other over
 * TCP; rank 0 hands every rank a blob (the NCCL unique id). */
typedef struct pr_boot {
    int rank, world;
    char host[256]; /* rank 0's address */
    int port;
    int listen_fd;  /* rank 0: a socket already listening (from pprun --nproc), or -1 */
    double timeout; /* seconds for everyone to connect and the blob to arrive */
} pr_boot;

/* Listens on port (0 = any free one) on every interface; the fd, or -1. */
int pr_boot_listen(const char *host, int port, int *port_out, pp_diag *d);
/* Rank 0 sends blob[len] to every rank; the others receive it into blob. */
int pr_boot_exchange(const pr_boot *b, void *blob, size_t len, pp_diag *d);
/* Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (or
 * SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), NCCL_COMM_ID=HOST:PORT and
 * PPRUN_BOOT_FD.  1 = launched (b, *local_rank filled; timeout left 0),
 * 0 = not launched, -1 = inconsistent environment (error reported). */
int pr_boot_from_env(pr_boot *b, int *local_rank, pp_diag *d);
/* A rank launched by pprun --nproc on the cpu backend: PPRUN_PEER_FDS,
 * its socket to each other rank of b's world (*fds, malloc'd, [world],
 * -1 at its own rank).  1 = given and valid, 0 = not given, -1 = not what
 * the launcher writes (error reported). */
int pr_boot_peer_fds(const pr_boot *b, int **fds, pp_diag *d);
/* The GPU of a launched rank among the `visible` ones: 0 when it sees one
 * (each task given its own GPU), else its local rank; -1 (error
 * reported) when that GPU does not exist. */
int pr_rank_gpu(int rank, int local_rank, int visible, pp_diag *d);

/* host_memory.c: bytes this process may still allocate on the host: the least
 * of what the address-space limit (ulimit -v) leaves and what the machine
 * has available (MemAvailable + SwapFree); *limit says which (INFINITY
 * when neither is known). */
double pr_host_memory_left(const char **limit);
/* "1.50 GiB" into buf; returns buf. */
const char *pr_format_bytes(double bytes, char *buf, size_t size);

/* launch.c: pprun --nproc N: runs argv (without --nproc) as N processes of
 * one run on this host, ranks 0..N-1; when one fails, stops the others.
 * cpu: every two ranks joined by a socket pair (PPRUN_PEER_FDS, the
 * sockets transport's).  Returns the exit status for pprun. */
int pr_launch_local(int nproc, char **argv, bool cpu, pp_diag *d);
/* pprun --nproc N on a plan of plan_devices devices x replicas (its
 * world, rank_grid.h; the options that contradict --nproc are refused by
 * the command line), on `backend` (--backend's value, or NULL: the GPUs,
 * one a rank, or with none visible the cpu): refuses what every rank would
 * fail on (no cuda backend, another world size, fewer GPUs than ranks),
 * then runs argv without --nproc through pr_launch_local. */
int pr_launch_nproc(long nproc, int plan_devices, int replicas, const char *backend, int argc, char **argv,
                    pp_diag *d);

#endif
