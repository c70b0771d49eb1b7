/*
 * pp.h — the one internal header of ppcc (and of pprun's plan loader).
 *
 * Data flow (docs/design.md):
 *   .pp -> lexer/parser (ast) -> spec -> policy -> lower -> verify -> simulate -> emit
 *
 * Each pass is one file under compiler/ (or a few, named in its section);
 * this header is divided into sections, one per pass, in pipeline order.
 * docs/layout.md lists the files in the order they may call each other.
 * Every pass reports errors through a pp_diag and returns the number of
 * errors it reported (0 = ok).
 */
#ifndef PP_H
#define PP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Hard limits, checked where values enter (spec, loader). */
#define PP_MAX_DEVICES 1024
/* data_parallel = R (replicas of the pipeline), and the world D x R. */
#define PP_MAX_REPLICAS 1024
#define PP_MAX_RANKS (1 << 17) /* 131072: more GPUs than any one training run uses */
#define PP_MAX_STAGES 8192
#define PP_MAX_MICROBATCHES (1 << 20)
#define PP_MAX_OPS_TOTAL (64L << 20)
/* A schedule file is read up to this size and refused past it (ast.c). */
#define PP_MAX_SOURCE_BYTES (64L << 20)

/* The reference model's limits (model mlp), the one source of both ppcc's
 * checks (spec_keys.c, at the key) and pprun's loader (runtime/plan_load.c):
 * a plan that ppcc writes is a plan that pprun can load. */
#define PP_MAX_LAYERS 65536
#define PP_MAX_HIDDEN 65536
#define PP_MAX_BATCH (1 << 24)                /* global batch rows */
#define PP_MAX_SEED 9007199254740991.0         /* 2^53 - 1: exact in a double */
#define PP_MAX_WEIGHT_FLOATS (1L << 31)       /* layers * hidden * hidden */
#define PP_MAX_MICROBATCH_FLOATS (1L << 30)   /* batch / microbatches * hidden */

/* The transformer's limits (model gpt, docs/gpt.md "Limits"), shared the
 * same way; layers, hidden, batch (sequences) and seed take the ranges
 * above.  They bound what pprun's arrays and indexes can represent, not
 * what a machine has room for (that is checked when a run starts). */
#define PP_MIN_VOCAB 2                        /* a prediction needs two tokens to choose from */
#define PP_MAX_VOCAB (1 << 20)                /* above every tokenizer in use (GPT-2 50257, Llama 3 128256) */
#define PP_BYTE_VOCAB 256                     /* a data file is read as bytes: each one a token */
#define PP_MAX_SEQ 65536                      /* positions (wpe's rows) */
#define PP_MAX_FFN (4 * PP_MAX_HIDDEN)        /* the MLP's width: 4 x hidden at the widest hidden */
/* One array of a gpt: a parameter, one micro-batch's activations (its
 * widest, rows * seq x max(3 hidden, ffn, vocab), and the attention scores
 * rows * heads x seq x seq), a step's tokens (batch x (seq + 1)).  At most
 * 2^31 elements, so that an element's index fits a 32-bit int. */
#define PP_MAX_GPT_ARRAY (1L << 31)
/* Parameters in all: their bytes with AdamW's state (16 a parameter) stay
 * exact in a double (2^44 < 2^53), and GPT-3 175B fits six times over. */
#define PP_MAX_GPT_PARAMS (1L << 40)

/* ------------------------------------------------------------------ */
/* ops.c: op kinds, from the one table of op names (X-macro)           */
/* ------------------------------------------------------------------ */

/* X(ENUM, "json name", is_compute).  R is the recomputed forward of a
 * stage that drops its activations after F (docs/recompute.md); ALLREDUCE
 * is a collective over a plan's group of ranks (pp_coll, plan.c); WAIT
 * (plan version 2) blocks the device's compute until the earlier comm
 * group of its device that `group` names has completed, which makes that
 * group asynchronous (docs/plan-format.md, "Asynchronous communication").
 * New kinds go last so that the older kinds keep their numbers. */
#define PP_OP_KINDS(X)        \
    X(F, "F", 1)              \
    X(B, "B", 1)              \
    X(W, "W", 1)              \
    X(SEND, "send", 0)        \
    X(RECV, "recv", 0)        \
    X(UPDATE, "update", 0)    \
    X(FLUSH, "flush", 0)      \
    X(R, "R", 1)              \
    X(ALLREDUCE, "allreduce", 0) \
    X(WAIT, "wait", 0)

enum pp_op_kind {
#define PP_X(e, s, c) PP_OP_##e,
    PP_OP_KINDS(PP_X)
#undef PP_X
    PP_OP__COUNT
};

/* What a send/recv carries: the activation leaving F(stage, mb), or the
 * input gradient leaving B(stage, mb). */
enum pp_comm_kind { PP_COMM_ACT = 0, PP_COMM_GRAD = 1 };

const char *pp_op_name(int kind);           /* "F", "send", ... */
int pp_op_from_name(const char *name);      /* -1 if unknown */
bool pp_op_is_compute(int kind);
static inline bool pp_op_is_comm(int kind) { return kind == PP_OP_SEND || kind == PP_OP_RECV; }
const char *pp_comm_name(int comm);         /* "act" | "grad" */
int pp_comm_from_name(const char *name);    /* -1 if unknown */

/* What a collective op sums (its plan JSON "what"; docs/plan-format.md).
 * TIED: the gradient of a gpt's tied wte, held by the first and the last
 * stage's devices (docs/gpt.md), within each replica.  Over the R
 * data-parallel replicas of one pipeline device (data_parallel = R, the
 * op's stage names the stage): STAGE, an allreduce of the stage's
 * gradients; with zero = 1 (ZeRO-1) SHARD, their reduce-scatter (each
 * replica keeps the sum of its 1/R), and after the update GATHER, the
 * all-gather of the updated parameters.  MIRROR: the gradients of a
 * mirrored plan's two copies of one pipeline stage (p->mirrored,
 * docs/dualpipe.md). */
#define PP_COLL_WHATS(X) X(TIED, "tied") X(STAGE, "stage") X(SHARD, "shard") X(GATHER, "gather") X(MIRROR, "mirror")
enum pp_coll_what {
#define PP_X(e, s) PP_COLL_##e,
    PP_COLL_WHATS(PP_X)
#undef PP_X
    PP_COLL__COUNT
};
const char *pp_coll_what_name(int what);      /* "tied", "?" if unknown */
int pp_coll_what_from_name(const char *name); /* -1 if unknown */

/* One op of a device's list.  For send/recv, `stage`/`mb` name the
 * compute op whose output travels: act of F(stage, mb) goes to the device
 * of stage+1; grad of B(stage, mb) goes to the device of stage-1.
 *
 * An allreduce refers to its collective group by index: `peer` is the
 * index of a pp_coll in the plan's coll[] table (plan.c; its members, what
 * it sums, its bytes), so a collective costs an op no more room than a
 * send.  The k-th allreduce of a group on each member device is one
 * collective: it completes when every member has posted it, and a device
 * waits at it until then (walk.c).  `group` is -1 (a collective is posted
 * alone), except for a replica reduction made asynchronous
 * (pp_plan_async_reductions), which a wait names; `mb` is -1; `stage` is -1 for TIED, the stage whose gradients
 * (parameters) it reduces (gathers) for STAGE, SHARD and GATHER, and for
 * MIRROR the pipeline stage s < stages / 2 whose two copies (stages s and
 * stages / 2 + s) it sums. */
typedef struct pp_op {
    uint8_t kind;  /* enum pp_op_kind */
    uint8_t comm;  /* enum pp_comm_kind, send/recv only */
    int32_t stage; /* -1 for update/flush/allreduce */
    int32_t mb;    /* -1 for update/flush/allreduce */
    int32_t peer;  /* send/recv: the other rank; allreduce: its index in the plan's coll[]; else -1 */
    int32_t group; /* send/recv: ops of one device with the same group id,
                      contiguous in its list, are posted together; wait: the
                      group it waits for; an asynchronous STAGE/SHARD
                      allreduce (plan version 2): its own id, in the same
                      space; else -1 */
} pp_op;

/* Formats "F3.5" (stage 3, mb 5), "send act 3.5 ->1", "wait #4", "update" into buf;
 * an allreduce, without its plan, as "allreduce #K" (K its group's index:
 * pp_plan_op_format names the members). */
const char *pp_op_format(const pp_op *op, char *buf, size_t size);

/* ------------------------------------------------------------------ */
/* diag.c: error reporting                                             */
/* ------------------------------------------------------------------ */

/* A source file kept for error messages: byte offsets become LINE:COL and
 * the offending line with a caret only when an error is printed. */
typedef struct pp_source {
    const char *path; /* as given by the user */
    const char *text; /* NUL-terminated contents */
    size_t len;
} pp_source;

typedef struct pp_diag {
    FILE *out;         /* where messages go (stderr; a memstream in tests) */
    const char *prog;  /* "ppcc" / "pprun", prefix of errors without a file */
    int errors;
    int max_errors;    /* stop printing after this many (0 = 20) */
} pp_diag;

void pp_diag_init(pp_diag *d, FILE *out, const char *prog);
/* "FILE:LINE:COL: error: msg" + source line + caret. */
void pp_error_at(pp_diag *d, const pp_source *src, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "FILE:LINE:COL: note: msg" + line + caret: context for the error before. */
void pp_note_at(pp_diag *d, const pp_source *src, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "PROG: error: msg". */
void pp_error(pp_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "PROG: warning: msg": something ignored on purpose; not counted as an error. */
void pp_warning(pp_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A diag that keeps its messages in memory, for trial runs whose errors
 * are not the user's (auto's candidates, --compare's rows): text holds
 * them, NUL-terminated, after fflush(diag.out).  Close frees everything. */
typedef struct pp_diag_buffer {
    pp_diag diag;
    char *text;
    size_t len;
} pp_diag_buffer;
void pp_diag_buffer_open(pp_diag_buffer *b, const char *prog); /* out of memory: pp_out_of_memory */
void pp_diag_buffer_close(pp_diag_buffer *b);
/* Offset -> 1-based line and column. */
void pp_source_position(const pp_source *src, size_t offset, int *line, int *col);
/* UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF): the length of the well-formed sequence at s, 0 if ill-formed,
 * -1 if well-formed so far but cut by the end (avail bytes). */
int pp_utf8_length(const unsigned char *s, size_t avail);
/* The code point of the well-formed sequence s of len bytes. */
long pp_utf8_code_point(const unsigned char *s, int len);
/* A character that shows as nothing or moves the text when printed: a
 * control character, a byte order mark, a zero-width or direction mark.
 * Messages show such a character as '?' or U+XXXX, never as itself. */
bool pp_char_invisible(long code_point);
/* For "did you mean": the one of names (n of them, or NULL-terminated
 * when n < 0) closest to word, if close enough to be a typo of it; NULL
 * when none is. */
const char *pp_closest(const char *word, const char *const *names, int n);

/* ------------------------------------------------------------------ */
/* arena.c: one arena per compilation, released at once                */
/* ------------------------------------------------------------------ */

typedef struct pp_arena_block pp_arena_block;
typedef struct pp_arena {
    pp_arena_block *head;
} pp_arena;

void *pp_arena_alloc(pp_arena *a, size_t size); /* zeroed; out of memory: pp_out_of_memory */
char *pp_arena_strdup(pp_arena *a, const char *s);
/* An arena array of n elements of elem bytes with room for *cap: returns
 * it with room for one more, doubled when full (the old copy is left). */
void *pp_arena_grow(pp_arena *a, void *old, int n, int *cap, size_t elem);
char *pp_arena_strndup(pp_arena *a, const char *s, size_t n);
void pp_arena_free(pp_arena *a);

/* Out of memory, the one way for both programs: heap allocation for the
 * arrays a pass or a run cannot do without (too big for the arena, or
 * outliving it).  pp_out_of_memory prints "PROG: error: out of memory:
 * cannot allocate N bytes for WHAT" (bytes 0: a size it cannot know),
 * then ends the process through pp_exit_now(1).  PROG is the program of
 * the first pp_diag_init. */
_Noreturn void pp_out_of_memory(double bytes, const char *what);
/* calloc, or NULL (the caller reports).  n or size 0 still returns a block. */
void *pp_calloc(size_t n, size_t size, const char *what);
/* calloc, or pp_out_of_memory naming what. */
void *pp_xcalloc(size_t n, size_t size, const char *what);
/* Ends the process at once with status (no atexit handlers, other threads
 * not waited for: the error paths that cannot unwind), after flushing
 * stdout and stderr and running what was registered to run first (the
 * writer's removal of its temporaries, output.c). */
_Noreturn void pp_exit_now(int status);
/* fn runs in pp_exit_now before the process ends; it must be
 * async-signal-safe.  One at a time: a later call replaces it. */
void pp_before_exit(void (*fn)(void));
/* The program named in messages that have no pp_diag at hand (the first
 * pp_diag_init's prog calls it). */
void pp_set_program(const char *prog);
/* Tests only: a test binary that defines it is asked before each
 * pp_calloc / pp_xcalloc; true makes that allocation fail as if the
 * memory were gone.  The programs do not define it. */
extern bool pp_test_alloc_fails(double bytes, const char *what) __attribute__((weak));

/* ------------------------------------------------------------------ */
/* source.c: reading a schedule file                                   */
/* ------------------------------------------------------------------ */

/* Reads path ("-": standard input, named "<stdin>") whole into the arena
 * (src->text NUL-terminated, src->path the name for messages).  Refuses,
 * with an error saying why: a directory, more than PP_MAX_SOURCE_BYTES, an
 * empty file.  Never blocks opening a FIFO (one without a writer reads as
 * empty).  Returns nonzero on error. */
int pp_source_read(const char *path, pp_arena *a, pp_diag *d, pp_source *src);

/* ------------------------------------------------------------------ */
/* data_file.c, model_limits.c: what a model may ask of pprun          */
/* ------------------------------------------------------------------ */

/* The data file of a model gpt (docs/gpt.md, "Data"), checked by ppcc at
 * model.data and again by pprun's loader (the file may have changed):
 * path opened (never waiting: a FIFO is opened non-blocking) and found to
 * be a regular file of at least seq + 1 bytes (a sequence and the token
 * after it); *bytes its size.  0, or 1 with why in err, to follow the
 * file's name ("cannot be opened: No such file or directory", "is a
 * directory, not a regular file", "is empty", "holds 10 bytes, fewer than
 * seq + 1 = 65 ..."). */
int pp_data_file_check(const char *path, int seq, int64_t *bytes, char *err, size_t errsize);

/* The dimensions of a model gpt that pprun's arrays depend on. */
typedef struct pp_gpt_shape {
    double layers, hidden, heads, ffn, seq, vocab, batch, microbatches;
    bool tie;
} pp_gpt_shape;
/* The settings a limit's product is made of, in the order a message
 * blames them (the first one the user set). */
enum pp_gpt_dim { PP_GPT_LAYERS, PP_GPT_HIDDEN, PP_GPT_HEADS, PP_GPT_FFN, PP_GPT_SEQ, PP_GPT_VOCAB, PP_GPT_BATCH };
typedef struct pp_gpt_limit {
    int ndims;
    enum pp_gpt_dim dims[4];
    char msg[200]; /* "wte (vocab x hidden) = 1048576 x 4096 = ... floats, more than ..." */
} pp_gpt_limit;
/* Its parameters in all: wte, wpe, the blocks, lnf, and head.w untied. */
double pp_gpt_parameters(const pp_gpt_shape *g);
/* The first of pp.h's gpt limits (PP_MAX_GPT_ARRAY, PP_MAX_GPT_PARAMS)
 * that g crosses, the one check of ppcc and pprun's loader: true and *out
 * filled, or false.  The ranges of single settings are checked before. */
bool pp_gpt_limit_crossed(const pp_gpt_shape *g, pp_gpt_limit *out);

/* ------------------------------------------------------------------ */
/* units.c: sizes in bytes, as written and as shown                     */
/* ------------------------------------------------------------------ */

/* "80GB", "1.5GiB", "512B": a number and one of B KB MB GB (powers of
 * 1000) KiB MiB GiB (powers of 1024).  true and *bytes, or false with why
 * in err ("unknown unit 'Gb' (B, KB, MB, GB, KiB, MiB, GiB)"). */
bool pp_bytes_parse(const char *text, double *bytes, char *err, size_t errsize);
/* The unit a view shows sizes up to max bytes in (the largest of B, KB,
 * MB, GB, TB that max reaches): every number of one view in one unit. */
typedef struct pp_byte_unit {
    const char *name; /* "GB" */
    double scale;     /* 1e9 */
} pp_byte_unit;
pp_byte_unit pp_bytes_unit(double max);
/* bytes in unit u, "%.2f NAME" ("61.25 GB"), into buf. */
const char *pp_bytes_show(double bytes, pp_byte_unit u, char *buf, size_t size);
/* bytes in the unit its own size picks: "80.00GB". */
const char *pp_bytes_human(double bytes, char *buf, size_t size);

/* How every view shows a compilation's numbers (docs/hardware.md,
 * "Views"): one struct made once from the spec, so that the timeline,
 * --stats, --compare, the plan JSON and the errors agree. */
typedef struct pp_view_units {
    bool seconds;       /* times are seconds ("1.25s"); else the file's unit */
    bool bytes;         /* sizes are bytes, all in unit mem, GB in every view ("61.25GB"); else the file's unit */
    pp_byte_unit mem;
    double step_tokens; /* tokens one step trains (model gpt), 0: no throughput */
    double step_flops;  /* the model FLOPs of one step (MFU's numerator) */
    double peak_flops;  /* one device's peak FLOP/s at the model's precision, 0: no MFU */
} pp_view_units;
/* A memory size as views show it: "%g", or "%.4g" in u->mem ("61.25GB"). */
const char *pp_mem_show(const pp_view_units *u, double v, char *buf, size_t size);
/* A time: "%.6g", with "s" after it in seconds. */
const char *pp_time_show(const pp_view_units *u, double t, char *buf, size_t size);
/* Tokens per second per device and MFU (0..1) of a step of makespan on
 * devices; false when u gives no throughput (not seconds, or no tokens). */
bool pp_throughput(const pp_view_units *u, double makespan, int devices, double *tokens_per_s, double *mfu);

/* ------------------------------------------------------------------ */
/* hardware.c: what a device computes and how fast it talks            */
/* ------------------------------------------------------------------ */

/* The precision a gpt computes in (model.precision); the order of pprun's
 * enum pr_precision. */
enum pp_precision { PP_FP32 = 0, PP_TF32 = 1, PP_BF16 = 2, PP_PRECISIONS = 3 };
const char *pp_precision_name(int p);      /* "fp32" | "tf32" | "bf16" */
int pp_precision_from_name(const char *n); /* -1 if unknown */

/* A hardware description (docs/hardware.md): a preset, field by field
 * overridable.  Pipeline device d sits on node d / devices_per_node. */
typedef struct pp_hardware {
    char name[16];               /* the preset's ("h100"), or "custom" */
    double flops[PP_PRECISIONS]; /* peak dense FLOP/s of one device, per precision */
    double efficiency;           /* share of the peak a layer's matmuls reach, (0, 1] */
    double memory;               /* bytes of one device */
    int devices_per_node;
    double node_bandwidth, node_latency;       /* a link within a node: bytes/s, s */
    double network_bandwidth, network_latency; /* a link across nodes: bytes/s, s */
} pp_hardware;
/* The preset of that name (h100, h200, a100, cpu), or NULL. */
const pp_hardware *pp_hardware_preset(const char *name);
/* Their names, for messages: "h100, h200, a100 or cpu". */
const char *pp_hardware_preset_names(void);
/* The time one transfer of bytes takes from device a to device b:
 * latency + bytes / bandwidth of their link (the node's, or the network's
 * when they sit on different nodes); 0 on one device. */
double pp_link_time(const pp_hardware *hw, int a, int b, double bytes);
/* The time an allreduce of bytes (each member's contribution) takes over
 * the devices ranks[n]: a pair exchanges its bytes over their link at once
 * (pp_link_time: latency + bytes / bandwidth, both directions together);
 * more members, a ring (2 (n - 1) steps of bytes / n, each over the
 * slowest link of the ring: 2 (n - 1) / n x bytes / bandwidth + 2 (n - 1)
 * latencies); 0 for fewer than two. */
double pp_allreduce_time(const pp_hardware *hw, const int *ranks, int n, double bytes);
/* A reduce-scatter (or an all-gather) of bytes over ranks[n]: half of the
 * ring, n - 1 steps of bytes / n; 0 for fewer than two. */
double pp_reduce_scatter_time(const pp_hardware *hw, const int *ranks, int n, double bytes);
/* The rank grid of data_parallel = R (docs/dsl.md, "Data parallelism"),
 * Megatron's order with data parallelism innermost: the replicas of one
 * pipeline device are adjacent ranks, rank = device x R + replica. */
static inline int pp_rank_of(int device, int replica, int replicas)
{
    return device * (replicas > 1 ? replicas : 1) + replica;
}
/* The link time of a pipeline transfer from device a to device b (each
 * replica's, ranks pp_rank_of(a, r, R) and pp_rank_of(b, r, R)): the
 * slowest replica's, the same for all when R and devices_per_node divide
 * one another. */
double pp_pipeline_link_time(const pp_hardware *hw, int replicas, int a, int b, double bytes);
/* Seconds flops take on one device at precision p (efficiency applied). */
double pp_compute_time(const pp_hardware *hw, int p, double flops);

/* ------------------------------------------------------------------ */
/* gpt_costs.c: a gpt's layers, per micro-batch (docs/gpt.md, "Costs") */
/* ------------------------------------------------------------------ */

/* One layer's cost and memory per micro-batch (docs/costs.md): times in the
 * file's unit, or seconds when a hardware description is given; memory in
 * the file's unit, or bytes. */
typedef struct pp_layer {
    char kind[16];     /* "layer", "embedding", "block", "head", or the file's name */
    double F, B, W;    /* forward, input-gradient, weight-gradient time */
    double act;        /* activations kept for the backward (no recompute) */
    double act_input;  /* what a recomputed layer keeps between F and R (its input) */
    double weights;    /* static: parameters + gradients + optimizer state */
    /* Of weights, the optimizer state ZeRO-1 shards over the replicas
     * (zero = 1: its device keeps 1 / data_parallel of it), and the bytes of
     * the layer's gradients (what a data-parallel reduction moves): a gpt's
     * (gpt_costs.c); 0 for a file's layers (unknown). */
    double opt_state, grads;
    double out;        /* its output activation: what a send of it carries */
    /* Of weights, a copy of the first layer's (a tied head's wte): its
     * device holds it only when the first layer is elsewhere; a device
     * holding both counts it once (layers.c).  0 for every other layer. */
    double shared;
} pp_layer;

/* The gpt's layers in model order: the embedding, the blocks, the head
 * (final LayerNorm, LM head, loss).  Counts, not times. */
enum pp_gpt_layer_kind { PP_GPT_EMBEDDING, PP_GPT_BLOCK, PP_GPT_HEAD };
typedef struct pp_gpt_counts {
    double flops_F, flops_B, flops_W; /* one micro-batch: forward, input gradient, weight gradient */
    double params;      /* parameters the layer owns (a tied head owns none of wte's) */
    double params_held; /* parameters its device stores for it (a tied head: its copy of wte) */
    double act_bytes;       /* activations kept from F to the backward, no recompute */
    double act_input_bytes; /* kept with recompute: the layer's input */
    double out_bytes;       /* its output: an activation send (0 for the head) */
} pp_gpt_counts;
/* The counts of one layer of g (g->batch / g->microbatches sequences a
 * micro-batch) at precision p. */
void pp_gpt_layer_counts(const pp_gpt_shape *g, int precision, int kind, pp_gpt_counts *out);
/* Bytes a parameter costs its device: weights, gradients, optimizer state
 * (ZeRO's accounting: bf16 keeps fp32 masters). */
double pp_gpt_bytes_per_param(int precision, bool adamw);
/* Of those, the optimizer state ZeRO-1 shards: AdamW's two fp32 moments,
 * and bf16's fp32 master weights. */
double pp_gpt_state_bytes_per_param(int precision, bool adamw);
/* Bytes of one gradient element: the compute precision's (bf16 2, fp32
 * and tf32 4), as pp_gpt_bytes_per_param counts gradients; what the tied
 * allreduce moves per element of wte. */
double pp_gpt_grad_element_bytes(int precision);
/* The model FLOPs of one training step (forward, input and weight
 * gradients of every layer and micro-batch; no recompute): what MFU divides. */
double pp_gpt_step_flops(const pp_gpt_shape *g);
/* Fills out[0 .. layers + 1] (n entries of room; returns layers + 2, or
 * -1 when n is too small): counts turned into seconds on hw (times 0
 * without hw) and bytes. */
int pp_gpt_layers(const pp_gpt_shape *g, int precision, bool adamw, const pp_hardware *hw, pp_layer *out, int n);

/* ------------------------------------------------------------------ */
/* ast.c + lexer.l + parser.y: the DSL as written                      */
/* ------------------------------------------------------------------ */

enum pp_value_kind { PP_VAL_NUMBER, PP_VAL_WORD, PP_VAL_STRING, PP_VAL_LIST };

typedef struct pp_value pp_value;
struct pp_value {
    enum pp_value_kind kind;
    size_t offset;        /* where it starts in the source */
    const char *text;     /* number/word/string as written (string unquoted) */
    double number;        /* PP_VAL_NUMBER */
    pp_value **items;     /* PP_VAL_LIST */
    int nitems;
};

/* An item: `name = value`, `name value`, `name [value] { items }`, or a
 * row of an order block, `name number: word word ...` (row != NULL). */
typedef struct pp_item pp_item;
struct pp_item {
    const char *name;
    size_t offset;        /* of the name */
    pp_value *value;      /* may be NULL (bare block); a row's number */
    pp_item **children;   /* block contents; NULL if no block */
    int nchildren;
    bool has_block;
    pp_value *row;        /* a row: the list of what follows the ':' */
};

typedef struct pp_ast {
    pp_source src;
    pp_item **items;
    int nitems;
} pp_ast;

/* Parses text (kept by reference in the ast, after a UTF-8 byte order mark
 * if there is one) into ast, allocating from a.  Reports every syntax
 * error it can recover from; a NUL byte is one error and stops there.
 * Returns the error count. */
int pp_parse(const char *path, const char *text, size_t len, pp_arena *a, pp_diag *d, pp_ast *ast);
/* pp_source_read, then pp_parse; a file without a single setting is an
 * error too (it would compile every default silently). */
int pp_parse_file(const char *path, pp_arena *a, pp_diag *d, pp_ast *ast);
/* Parses one value (a -D VALUE) with the same lexical rules.  Returns
 * NULL and writes a one-line reason into err when it is not exactly one
 * well-formed value. */
pp_value *pp_parse_value(const char *text, pp_arena *a, char *err, size_t errsize);

/* ------------------------------------------------------------------ */
/* spec*.c: the checked pipeline description (file + -D overrides)     */
/* ------------------------------------------------------------------ */

enum pp_placement_kind { PP_PLACE_LOOP, PP_PLACE_VSHAPE, PP_PLACE_LIST };

typedef struct pp_cost {
    double F, B, W, comm;     /* defaults for every stage */
    double *stage_F, *stage_B, *stage_W; /* [stages], resolved (defaults applied) */
    /* [stages] the file's cost.stage.N.F / .B / .W, NAN where it sets none:
     * they replace a stage's sum over its layers whatever the balance
     * (layers.c re-applies them after every split). */
    double *fixed_F, *fixed_B, *fixed_W;
    /* Memory a recomputed (stage, mb) holds between F and R (its input),
     * as a fraction of its full activations (docs/recompute.md). */
    double recompute_input;
    /* Transfers from bytes (NULL: each costs comm): a send of stage s's
     * activation carries stage_out[s] bytes, its gradient stage_out[s - 1],
     * over hw's link between the two devices (pp_link_time); a stage's
     * last layer's output, summed with the split (layers.c). */
    const pp_hardware *hw;
    double *stage_out;
    /* A gpt with tie = true (spec_model.c): the bytes of wte's gradient its
     * tied allreduce sums, vocab x hidden at pp_gpt_grad_element_bytes; 0
     * otherwise.  Priced like a transfer, on hw's link (pp_collective_time). */
    double tied_bytes;
    /* data_parallel = R (1: none): pipeline transfers are priced on each
     * replica's link (pp_pipeline_link_time), and stage_grad[s] (NULL:
     * unknown) is the bytes of stage s's gradients, what its reduction over
     * the replicas moves (its layers' grads, layers.c). */
    int replicas;
    double *stage_grad;
} pp_cost;

/* The time of compute op kind on stage s (a missing per-stage array means
 * the default): F and R take F, W takes W, B takes B, plus W when the
 * backward is not split. */
static inline double pp_op_cost(const pp_cost *c, int kind, int s, bool split)
{
    double F = c->stage_F ? c->stage_F[s] : c->F, W = c->stage_W ? c->stage_W[s] : c->W;
    if (kind == PP_OP_B)
        return (c->stage_B ? c->stage_B[s] : c->B) + (split ? 0 : W);
    return kind == PP_OP_W ? W : F;
}

/* What a transfer costs on top of cost.comm: for recv op (of a plan's
 * device self) with transfers from bytes, its link's latency + bytes /
 * bandwidth (the act of stage s carries stage_out[s], the grad of stage s
 * the input of s, stage_out[s - 1]); else 0. */
static inline double pp_transfer_time(const pp_cost *c, const pp_op *op, int self)
{
    if (!c->hw || !c->stage_out || op->kind != PP_OP_RECV)
        return 0;
    int s = op->comm == PP_COMM_ACT ? op->stage : op->stage - 1;
    return s >= 0 ? pp_pipeline_link_time(c->hw, c->replicas, op->peer, self, c->stage_out[s]) : 0;
}

/* How model.balance splits the layers over the stages (docs/costs.md). */
enum pp_balance_rule {
    PP_BALANCE_EVEN,       /* as even as possible in layer counts (the default) */
    PP_BALANCE_LIST,       /* the file's list */
    PP_BALANCE_PARAMETERS, /* the smallest largest stage in weights (DeepSpeed's 'parameters') */
    PP_BALANCE_COMPUTE,    /* greedy prefix on F + B + W (profiled compute) */
    PP_BALANCE_AUTO,       /* the smallest simulated makespan of the policy (balance.c) */
};
const char *pp_balance_name(int rule); /* "even", "list", "parameters", ... */

typedef struct pp_model {
    char kind[16];       /* "mlp" | "gpt" */
    int layers, hidden, batch; /* gpt: layers are blocks, batch counts sequences */
    char optimizer[16];  /* "sgd" | "adamw" (gpt only) */
    double lr;
    uint64_t seed;
    int *layers_per_stage; /* [stages], resolved (even split unless balance); gpt:
                              blocks, none allowed on the first and the last stage */
    /* model gpt only (docs/gpt.md); zero for mlp */
    int heads, ffn, seq, vocab;
    bool tie;            /* the LM head is wte's transpose */
    double beta1, beta2, eps, weight_decay; /* adamw only */
    char precision[8];   /* "fp32" | "tf32" | "bf16" */
    const char *data;    /* absolute path of the data file; NULL: synthetic tokens */
    int64_t data_bytes;  /* its size when compiled */
    int balance;           /* enum pp_balance_rule */
} pp_model;

static inline bool pp_model_is_gpt(const pp_model *m) { return strcmp(m->kind, "gpt") == 0; }

/* An explicit compute order (`order { device 0: F0.0 B0.0 ... }`, the
 * custom policy), kept with where each token was written so that the
 * policy can point at the offending one. */
typedef struct pp_order_op {
    int kind;            /* PP_OP_F, PP_OP_B or PP_OP_W */
    int stage, mb;
    size_t offset;       /* of the token */
} pp_order_op;

typedef struct pp_order_row {
    size_t offset;       /* of `device N:` (that of `order` if no row) */
    pp_order_op *ops;
    int n;
} pp_order_row;

typedef struct pp_order {
    const pp_source *src; /* the file (valid while its ast lives) */
    size_t offset;        /* of `order` */
    pp_order_row *rows;   /* [devices], by device */
    bool split;           /* some W is listed: B is input-gradient only */
} pp_order;

typedef struct pp_spec {
    char schedule[32];   /* policy name */
    int devices, stages, chunks, microbatches;
    enum pp_placement_kind placement_kind;
    int *placement;      /* [stages] -> device */
    int group;           /* interleaved: micro-batch group size, 0 = policy default */
    pp_cost cost;
    double act_size;     /* memory of one stage's activations for one micro-batch */
    double mem_limit;    /* per device, same unit; 0 = none */
    /* The model's layers, first to last (docs/costs.md), or NULL when the
     * file gives no layer information (no layer list, no balance): then the
     * stage is the unit, every stage costs cost.F / B / W and holds
     * memory.activation, as before layers were.  A gpt's on hardware:
     * embedding, blocks, head (gpt_costs.c), n_layers = blocks + 2. */
    pp_layer *layers;
    int n_layers;
    bool layers_default; /* they are the MLP's equal layers, made from cost.F / B / W (no list) */
    /* layers[0] and layers[n_layers - 1] sit on the first and the last
     * stage beyond model.layers_per_stage's counts (a gpt's embedding and
     * head: its balance counts blocks). */
    bool layer_ends;
    bool balance_found;  /* balance = auto: the split is the search's (pp_balance_auto) */
    /* Sums of each stage's layers (layers.c), NULL without layers:
     * activations of one (stage, mb) [stages], what a recomputed one keeps
     * [stages], static memory of each device [devices]. */
    double *stage_act, *stage_input, *static_mem;
    double input_set;    /* memory.input as given (absolute), -1 when not given */
    /* microbatches = auto (microbatches.c): microbatches is then the
     * reference (1 unless set) until ppcc chooses; the target bubble
     * (0: none, the best throughput instead) and the largest M tried. */
    bool microbatches_auto;
    double mb_bubble;
    int mb_max;
    /* The micro-batches the file's per-micro-batch costs and activations
     * are for (microbatches.reference; microbatches itself unless set):
     * with another microbatches, they are scaled by reference / microbatches
     * (communication and static memory are not). */
    int mb_reference;
    pp_model model;
    /* The hardware description (docs/hardware.md), NULL without one.  With
     * it and a model gpt, times are seconds (seconds) and each transfer
     * costs its link's latency + bytes / bandwidth instead of cost.comm. */
    const pp_hardware *hardware;
    bool seconds;        /* times in seconds: a gpt's layers on the hardware */
    bool bytes;          /* memory in bytes: memory settings written with a unit */
    pp_view_units units; /* how views show its numbers (from the above) */
    const pp_order *order; /* NULL unless the file has an order block */
    bool *recompute;     /* [stages]: the stage recomputes its forward (R before B) */
    bool vertical_sync;  /* pipedream: every stage uses stage 0's version (docs/async.md) */
    /* data_parallel = R replicas of the pipeline (1: none), and zero = 1:
     * the optimizer state sharded over them (ZeRO-1); static_mem is then
     * what a device keeps, and zero_saved[devices] (NULL without layers)
     * the bytes the sharding saves on each. */
    int data_parallel;
    bool zero;
    double *zero_saved;
    int gpus;            /* gpus = N: ppcc chooses devices x data_parallel (gpus.c); 0: the file's */
    /* The policy's plans are two mirrored pipelines (dualpipe,
     * pp_plan.mirrored): the model is split over the first stages / 2
     * stages, stage stages / 2 + s holding a copy of stage s's layers. */
    bool mirrored;
    bool overlap;        /* asynchronous communication (plan version 2's waits; default true) */
} pp_spec;
/* The stages one copy of the model is split over: stages, or half of them
 * when mirrored. */
static inline int pp_spec_pipe_stages(const pp_spec *s) { return s->mirrored ? s->stages / 2 : s->stages; }

/* One -D NAME=VALUE. */
typedef struct pp_define {
    const char *name;
    const char *value;
} pp_define;

/* Interprets ast and then defs (in order) into spec, allocating from a.
 * Unknown names, bad values, inconsistent shapes: errors naming them. */
int pp_spec_build(const pp_ast *ast, const pp_define *defs, int ndefs, pp_arena *a, pp_diag *d,
                  pp_spec *spec);

/* torch_csv_read.c: a PyTorch schedule CSV as a custom order
 * (docs/torch.md).  The order's tokens are the CSV's cells. */
typedef struct pp_torch_csv {
    int ranks, stages, microbatches;
    int *placement; /* [stages] -> rank, where the file puts each */
    pp_order order; /* rows[ranks]; src is the CSV */
} pp_torch_csv;
bool pp_torch_csv_is_path(const char *path); /* NAME.csv */
/* Reads src; ranks / microbatches > 0 are the shape the file must have. */
int pp_torch_csv_read(const pp_source *src, int ranks, int microbatches, pp_arena *a, pp_diag *d, pp_torch_csv *out);
/* Reads the CSV at path and builds the spec of `schedule custom` on its
 * shape, defs applied after (ast: that shape as a file, for --compare). */
int pp_torch_csv_spec(const char *path, int ranks, int microbatches, const pp_define *defs, int ndefs, pp_arena *a,
                      pp_diag *d, pp_ast *ast, pp_spec *spec);

/* ------------------------------------------------------------------ */
/* layers.c: the layers of each stage, summed; the simple splits       */
/* ------------------------------------------------------------------ */

/* From s->layers and s->model.layers_per_stage: each stage's F / B / W
 * (the sums of its layers, then cost.fixed_* where the file sets one),
 * stage_act (the sum of its layers' act), stage_input (its first layer's
 * act_input, or memory.input when given), cost.stage_out where it is
 * priced (its last layer's output) and each device's static_mem (the
 * weights of its stages' layers).  Nothing without layers; the arrays are
 * the spec's own (spec_resolve.c allocates them). */
void pp_spec_sum_layers(pp_spec *s);
/* The layers of stage st: its model.layers_per_stage count, plus the
 * embedding or the head that layer_ends puts on the first or last stage. */
static inline int pp_stage_layer_count(const pp_spec *s, int st)
{
    int P = s->mirrored ? s->stages / 2 : s->stages, ps = st % P; /* its stage of its pipeline */
    return s->model.layers_per_stage[st] + (s->layer_ends && ps == 0) + (s->layer_ends && ps == P - 1);
}
/* A split in items: counts over s->layers, each stage at least one (the
 * unit of the rules and of balance = auto).  set_split writes it into
 * model.layers_per_stage (a gpt's blocks: the first and the last stage's
 * count less the embedding and the head; pp_stage_layer_count reads it
 * back) and sums it; even_split is the spec's even split in items (a
 * gpt's: its blocks', the embedding and the head added, as without a
 * balance; with fewer blocks than stages, its layers'). */
void pp_spec_set_split(pp_spec *s, const int *items);
void pp_spec_even_split(const pp_spec *s, int *items);
/* The split of rule (PP_BALANCE_EVEN, _PARAMETERS or _COMPUTE) of layers[n]
 * over S <= n stages into out[S], each stage at least one layer. */
void pp_balance_split(int rule, const pp_layer *layers, int n, int S, int *out);
/* The contiguous split of w[n] into S <= n parts of at least one item each
 * that minimises the largest part's sum, then the largest part's count
 * (so that equal weights split evenly): a dynamic programme over prefix
 * sums, O(S n^2), or for large n the smallest bound that a greedy split
 * meets, found by bisection (then ties are not broken by count). */
void pp_split_minmax(const double *w, int n, int S, int *out);
/* F + B + W of layer l: what the compute rule and the DP balance. */
static inline double pp_layer_time(const pp_layer *l) { return l->F + l->B + l->W; }

/* Scales every per-micro-batch time and activation size of s (its costs,
 * fixed costs, layers and their sums, memory.activation and memory.input)
 * by k: a micro-batch k times the size.  Communication, static memory and
 * the limit stay. */
void pp_spec_scale_microbatch(pp_spec *s, double k);

/* ------------------------------------------------------------------ */
/* plan.c: per-device op lists, and the vocabulary of plans            */
/* ------------------------------------------------------------------ */

typedef struct pp_device {
    pp_op *ops;
    int n, cap;
} pp_device;

/* A collective group of a plan: the ranks its allreduce ops sum over (a
 * group per member set and kind, each allreduce op naming one by index,
 * pp_op.peer).  Ranks are ascending and distinct devices, at least two (a
 * sum on one device is local: no op), except for the kinds over replicas
 * (STAGE, SHARD, GATHER): one device, whose replicas are the members. */
typedef struct pp_coll {
    int what;    /* enum pp_coll_what */
    int stage;   /* STAGE, SHARD, GATHER: the stage (ranks is its device alone); TIED: -1 */
    int nranks;
    int *ranks;  /* [nranks] (owned by the plan) */
    double bytes; /* what each member contributes (the simulator's transfer; 0: unknown, cost.comm alone) */
} pp_coll;

typedef struct pp_plan {
    char schedule[32];
    int devices, stages, microbatches;
    int *placement;      /* [stages] -> device (owned) */
    bool split_backward; /* B is input-gradient only and W appears */
    pp_device *dev;      /* [devices] (owned) */
    pp_coll *coll;       /* [ncoll] the collective groups its allreduce ops name (owned) */
    int ncoll;
    int async;           /* enum pp_async: the weight semantics (docs/async.md) */
    bool vertical_sync;  /* pipedream: micro-batch m uses version k(m) on every stage */
    /* data_parallel: R replicas run these lists (0 or 1: one), rank
     * pp_rank_of(d, r, R) running device d's; peers and members name
     * pipeline devices of the same replica, except that a STAGE, SHARD or
     * GATHER group spans every replica of its device.  zero: ZeRO-1. */
    int replicas;
    bool zero;
    /* The file's order when the custom policy made the plan (borrowed from
     * the spec, NULL otherwise): errors on the plan then also point at the
     * token of the compute op involved (pp_order_note). */
    const pp_order *order;
    /* Two mirrored pipelines (DualPipe, docs/dualpipe.md): of H = stages / 2,
     * micro-batches 0 .. M/2 - 1 flow through stages 0 .. H-1 and the others
     * through H .. 2H-1, stage H + s holding a copy of stage s's parameters;
     * false: every micro-batch flows through every stage. */
    bool mirrored;
} pp_plan;
/* The first and the last stage micro-batch mb flows through. */
static inline int pp_mb_first_stage(const pp_plan *p, int mb)
{
    return p->mirrored && mb >= p->microbatches / 2 ? p->stages / 2 : 0;
}
static inline int pp_mb_last_stage(const pp_plan *p, int mb)
{
    return p->mirrored && mb < p->microbatches / 2 ? p->stages / 2 - 1 : p->stages - 1;
}
/* Micro-batch mb flows through stage st. */
static inline bool pp_mb_visits(const pp_plan *p, int st, int mb)
{
    return st >= pp_mb_first_stage(p, mb) && st <= pp_mb_last_stage(p, mb);
}

/* How a plan's weights evolve (docs/async.md).  NONE: synchronous, one
 * update per step.  PIPEDREAM: weight stashing, an update after every B
 * (one stage per device).  TWO_BW: PipeDream-2BW, one update per step but
 * F and B of step t use the weights of step t-1. */
enum pp_async { PP_ASYNC_NONE = 0, PP_ASYNC_PIPEDREAM = 1, PP_ASYNC_2BW = 2 };
const char *pp_async_name(int async);          /* "none" | "pipedream" | "2bw" */
int pp_async_from_name(const char *name);      /* -1 if unknown */

/* Allocates dev[] and placement[] for the spec's shape; no ops yet. */
int pp_plan_init(pp_plan *p, const char *schedule, int devices, int stages, int microbatches,
                 const int *placement);
void pp_plan_free(pp_plan *p);
/* Appends an op; grows the list.  Returns a pointer to it. */
pp_op *pp_plan_push(pp_plan *p, int device, pp_op op);
void pp_plan_reserve(pp_plan *p, int device, int n);
long pp_plan_total_ops(const pp_plan *p);
/* The collective group (what, ranks[nranks]) of p: the index of an equal
 * one already in p->coll, else of a new one (ranks copied, bytes kept).
 * The caller gives ranks ascending and distinct; -1 when out of memory. */
int pp_plan_coll(pp_plan *p, int what, const int *ranks, int nranks, double bytes);
/* The same for a group of one stage (pp_coll.stage; -1: none). */
int pp_plan_coll_stage(pp_plan *p, int what, int stage, const int *ranks, int nranks, double bytes);
/* The replicas of a plan (1 without data parallelism). */
static inline int pp_plan_replicas(const pp_plan *p) { return p->replicas > 1 ? p->replicas : 1; }
/* The group is summed over the replicas of its device (STAGE, SHARD, GATHER). */
static inline bool pp_coll_over_replicas(const pp_coll *c)
{
    return c->what == PP_COLL_STAGE || c->what == PP_COLL_SHARD || c->what == PP_COLL_GATHER;
}
/* The time of collective c of plan p on hw (bytes > 0), on the world's
 * ranks: over replicas, a ring (allreduce; reduce-scatter or all-gather
 * for SHARD and GATHER) of the device's R ranks; TIED, the pair's ranks in
 * the slowest replica. */
double pp_coll_time(const pp_hardware *hw, const pp_plan *p, const pp_coll *c);
/* The group an allreduce op names, or NULL (not an allreduce, or its index
 * is not one of p's groups).  The runtime gets an op's members from it. */
const pp_coll *pp_plan_op_coll(const pp_plan *p, const pp_op *op);
/* Where rank sits among c's members (0 .. nranks - 1), or -1. */
int pp_coll_member(const pp_coll *c, int rank);
/* What an allreduce op costs on top of cost.comm (as pp_transfer_time for
 * a recv): with transfers from bytes (c->hw) and its group's bytes known,
 * pp_allreduce_time over its members; else 0 (it costs cost.comm). */
static inline double pp_collective_time(const pp_cost *c, const pp_plan *p, const pp_op *op)
{
    const pp_coll *g = pp_plan_op_coll(p, op);
    return c->hw && g && g->bytes > 0 ? pp_coll_time(c->hw, p, g) : 0;
}
/* pp_op_format, with an allreduce's group spelled out: "allreduce tied {0,3}". */
const char *pp_plan_op_format(const pp_plan *p, const pp_op *op, char *buf, size_t size);
/* The devices whose copies of a tied embedding must be summed (a gpt with
 * tie = true, docs/gpt.md): the first and the last stage's, ascending in
 * pair[2]; false when both stages are on one device (the sum is local). */
bool pp_tied_pair(const int *placement, int stages, int pair[2]);
/* Adds the tied allreduce of the pair (pp_tied_pair; bytes as pp_coll's)
 * to both devices of the pair, right before each one's update (a
 * synchronous plan has one: the last if there are more; without one,
 * before the closing flush): once per step, after the device's last
 * compute op.  Nothing when the pair shares a device.  Nonzero when out of
 * memory. */
int pp_plan_add_tied(pp_plan *p, double bytes);
/* With p->replicas > 1, the reduction of each stage over its replicas
 * (docs/plan-format.md): on each device, right after its last compute op
 * (so after every B and W of its stages; its sends follow), one STAGE
 * allreduce per stage (SHARD with p->zero, and then a GATHER per stage
 * right after the update) in the order its stages' last backward ops come,
 * each with stage_grad[stage] bytes (NULL: 0).  Before the tied allreduce,
 * which then sums copies already summed over the replicas.  Nonzero when
 * out of memory. */
int pp_plan_add_stage_reductions(pp_plan *p, const double *stage_grad);
/* Plan version 2 (overlap; pp_lower_overlap calls it on its lists): makes
 * each STAGE reduction (SHARD, unless a tied or mirror allreduce of the
 * device must sum that stage's whole gradients first) asynchronous on the
 * device's data-parallel lane (docs/plan-format.md, "Data parallelism"):
 * posted right after its stage's last compute op and the posts of that
 * gap, with a group id of its own, and waited right before the device's
 * first allreduce or update after its last compute op, the waits in post
 * order.  Every group id of the device is renumbered 0, 1, ... in list
 * order.  Nonzero when out of memory. */
int pp_plan_async_reductions(pp_plan *p);
/* A mirrored plan's gradient sums: for each pipeline stage s, one
 * allreduce (MIRROR, stage s, a group of its own) on the devices of stages
 * s and H + s, right before their update, in stage order on each, of
 * stage_grad[s] bytes (NULL: 0, priced at cost.comm alone).  Nonzero: out
 * of memory. */
int pp_plan_add_mirror(pp_plan *p, const double *stage_grad);

/* Which placement a stage -> device map is: PP_PLACE_LOOP (stage s on
 * device s mod D, one stage per device included), PP_PLACE_VSHAPE (two
 * stages per device, s < D on device s, else on 2D-1-s) or PP_PLACE_LIST. */
int pp_placement_shape(const int *placement, int devices, int stages);
/* The devices a send or recv (kind) of comm for stage connects: the data
 * leaves the holder of stage for the holder of the next stage (act) or of
 * the previous one (grad).  *self is the device the op belongs on, *peer
 * the other end.  Returns that other stage, or -1 when there is none (the
 * last stage sends no act, the first no grad).  stage is in range. */
int pp_comm_ends(const pp_plan *p, int kind, int comm, int stage, int *self, int *peer);
/* For an error about op i of device dev of a plan made from an order
 * (p->order; its rows[] has p->devices rows): "note: ..." at the token of
 * that op; for an op the compiler inserted (send/recv, update, flush, R), at
 * the listed op right after it on its device (else right before it).  The
 * listed ops of a device are its F/B/W, the k-th of them the row's k-th
 * token.  Prints nothing without an order or where the lists disagree. */
void pp_order_note(const pp_plan *p, pp_diag *d, int dev, int i);

/* ------------------------------------------------------------------ */
/* policy.c + policy_*.c: compute orders                               */
/* ------------------------------------------------------------------ */

typedef struct pp_policy {
    const char *name;
    const char *summary;
    /* Refuses shapes the policy cannot do (error names the constraint). */
    int (*check)(const pp_spec *s, pp_diag *d);
    /* Appends each device's compute ops, then update and flush. */
    int (*generate)(const pp_spec *s, pp_plan *p, pp_diag *d);
    bool split_backward;
    int async; /* enum pp_async of its plans (plan.c) */
    bool mirrored; /* its plans are two mirrored pipelines (pp_plan.mirrored) */
} pp_policy;

const pp_policy *pp_policy_find(const char *name);
/* The policy name closest to a misspelt one (pp_closest), or NULL. */
const char *pp_policy_guess(const char *name);
/* NULL-terminated list of every policy, for --help and errors. */
const pp_policy *const *pp_policy_all(void);
/* Checks the shape, initialises plan and generates compute orders; then,
 * for every stage with s->recompute[stage], inserts R(stage, mb) right
 * before each B(stage, mb). */
int pp_policy_run(const pp_spec *s, pp_plan *p, pp_diag *d);
/* What pp_policy_run adds to every generated order, also for auto's
 * candidates: the recomputed forwards (pp_insert_recompute), then, for a
 * gpt with tie = true, the tied allreduce (pp_plan_add_tied, with the
 * bytes of wte's gradient).  Nonzero when out of memory. */
int pp_policy_complete(const pp_spec *s, pp_plan *p);
/* That insertion alone: drops every R of p, then puts R(s, m) before
 * B(s, m) for each stage with recompute[s] (NULL = none).  Nonzero on OOM. */
int pp_insert_recompute(pp_plan *p, const bool *recompute);
/* For the policy files: refuses every placement but loop (stage s on
 * device s mod D; a list equal to it is accepted); refuses schedule.group
 * where the policy has none.  Each returns the number of errors. */
int pp_policy_need_loop(const pp_spec *s, const char *policy, pp_diag *d);
int pp_policy_no_group(const pp_spec *s, const char *policy, pp_diag *d);
/* The check of the one-stage-per-device policies: virtual = 1 (else an
 * error ending with hint, "" for none), then need_loop and no_group. */
int pp_policy_need_one_stage(const pp_spec *s, const char *policy, const char *hint, pp_diag *d);
/* 1F1B's order on device dev (policy_1f1b.c), shared with pipedream and
 * 2bw (policy_async.c); with update_after_b, an update follows each B. */
void pp_policy_1f1b_order(pp_plan *p, int devices, int microbatches, int dev, bool update_after_b);
/* Interleaved 1F1B's shape of order on the loop placement
 * (policy_interleaved.c), shared by interleaved, zb-h1 and interleaved-zb:
 * device dev's forwards sweep groups of `group` micro-batches through chunk
 * 0..chunks-1, its backwards the same with the chunks reversed; `lead`
 * forwards first, then a forward and a backward in turn.  With w_lag >= 0
 * the backward is split: the W of backward k follows backward k + w_lag. */
typedef struct pp_interleaving {
    int devices, chunks, microbatches;
    int group;  /* 1..microbatches */
    long lead;  /* forwards before the first backward (capped at all) */
    int w_lag;  /* Ws trail their Bs by this many backwards; -1: unsplit */
} pp_interleaving;
void pp_policy_interleave(pp_plan *p, int dev, const pp_interleaving *o);
/* 1F1B's generate, every device's order then update and flush: 2bw's too
 * (its order is 1F1B's; only the weight rule, the runtime's, differs). */
int pp_policy_1f1b_generate(const pp_spec *s, pp_plan *p, pp_diag *d);
/* Appends the compute op kind(stage, mb) to device d (peer = group = -1),
 * within the room pp_policy_run reserved (else the list grows). */
static inline void pp_policy_emit(pp_plan *p, int d, int kind, int stage, int mb)
{
    pp_plan_push(p, d, (pp_op){.kind = (uint8_t)kind, .stage = stage, .mb = mb, .peer = -1, .group = -1});
}
/* Appends update then flush to every device: the end of a generate. */
void pp_policy_finish(pp_plan *p);

/* The split-backward families (policy_zb.c, policy_zbv.c,
 * policy_dualpipev.c, policy_looped.c; docs/schedules-zb.md). */
extern const pp_policy pp_policy_zb_h1;
extern const pp_policy pp_policy_zbv;
extern const pp_policy pp_policy_dualpipev;
extern const pp_policy pp_policy_dualpipe; /* policy_dualpipe.c: two mirrored pipelines */
extern const pp_policy pp_policy_v_half;   /* policy_vblock.c */
extern const pp_policy pp_policy_v_min;
extern const pp_policy pp_policy_looped_bfs;
extern const pp_policy pp_policy_interleaved_zb;
extern const pp_policy pp_policy_zb_h2;     /* policy_zbh2.c */
/* policy_vshape.c, shared by zbv and dualpipev.  Refuses every placement
 * but vshape with two stages per device (stage s < D on device s, else on
 * 2D-1-s; a list equal to it is accepted). */
int pp_policy_need_vshape(const pp_spec *s, const char *policy, pp_diag *d);
/* A V-shape order as phases: `units` ("F0 B1 W1": F, B, W of chunk 0 or
 * 1, W* the oldest pending W of either) repeated `count` times, each unit
 * taking the next micro-batch of its kind on its chunk.  phases_of fills
 * out[] (room for PP_VPHASES_MAX) with device dev's phases for `built`
 * micro-batches per chunk and returns how many; units past the plan's
 * micro-batches are dropped.  Appends every device's ops (no update or
 * flush); nonzero when out of memory. */
#define PP_VPHASES_MAX 16
typedef struct pp_vphase {
    long count;
    const char *units;
} pp_vphase;
typedef int pp_vphases_fn(int devices, int dev, int built, pp_vphase *out);
int pp_policy_vshape_order(pp_plan *p, int built, pp_vphases_fn *phases_of);
/* The same on one device whose chunk c is stage[c] with micro-batches
 * mb0[c] .. mb0[c] + built - 1 (dualpipe's ranks: two pipelines' stages
 * on one V).  Nonzero: out of memory. */
int pp_policy_vshape_device(pp_plan *p, int dev, const int stage[2], const int mb0[2], int built, const pp_vphase *phases,
                            int n);
/* DualPipeV's phases of device d of D with M micro-batches
 * (policy_dualpipev.c), which DualPipe's ranks run too (policy_dualpipe.c). */
int pp_policy_dualpipev_phases(int D, int d, int M, pp_vphase *out);
/* policy_async.c (docs/async.md): 1F1B's order with PipeDream's weight
 * stashing (an update after every B) and with PipeDream-2BW. */
extern const pp_policy pp_policy_pipedream;
extern const pp_policy pp_policy_2bw;
extern const pp_policy pp_policy_custom; /* policy_custom.c: order { } of the file */

/* policy_auto.c (docs/auto.md): the search behind `schedule auto`. */
extern const pp_policy pp_policy_auto;
#define PP_AUTO_MAX_NAMED 16
typedef struct pp_auto_named {
    char name[32];
    bool ran;        /* the policy accepts the shape */
    double makespan; /* INFINITY: did not run, or over the memory limit */
} pp_auto_named;
typedef struct pp_auto_report {
    double makespan;       /* of the winner */
    char source[96];       /* named policy or list-schedule variant it grew from */
    double start;          /* its makespan before local search */
    double best_named;     /* best named policy under the limit (INFINITY: none) */
    char best_named_name[32];
    double best_list;      /* best list schedule (INFINITY: none) */
    int list_tried, evaluations, moves;
    pp_auto_named named[PP_AUTO_MAX_NAMED];
    int nnamed;
} pp_auto_report;
/* Searches the spec's shape (devices, stages, placement, cost, limit) and
 * writes the winner's compute order into out (initialised by
 * pp_plan_init, no ops; split_backward set).  Error if nothing fits. */
int pp_auto_search(const pp_spec *s, pp_plan *out, pp_auto_report *rep, pp_diag *d);
/* The report as a short table ("auto: ..." lines). */
void pp_auto_print(FILE *f, const pp_auto_report *r);


/* balance.c (docs/costs.md): `model.balance = auto`, the split of the
 * layers with the smallest simulated makespan of the spec's policy under
 * its memory limit. */
typedef struct pp_balance_report {
    double makespan;      /* of the split found */
    double even_makespan; /* of the even split; INFINITY when it does not fit */
    int bottleneck;       /* the stage with the most F + B + W per micro-batch */
    double bottleneck_time;
    int evaluations;      /* splits compiled */
    double splits;        /* contiguous splits there are */
    bool exhaustive;      /* all of them were compiled */
    char start[16];       /* the start the answer grew from: even, dp, compute, parameters */
} pp_balance_report;
/* With model.balance = auto (and layers), replaces s's split by the one
 * found and sums it (pp_spec_sum_layers); anything else is left alone.
 * Error (naming the closest split) if no split tried fits the limit. */
int pp_balance_auto(pp_spec *s, pp_balance_report *rep, pp_diag *d);
/* The report: "balance auto: [...] makespan X against Y for the even split ...". */
void pp_balance_print(FILE *f, const pp_spec *s, const pp_balance_report *r);

/* microbatches.c (docs/costs.md): --sweep microbatches=..., and
 * microbatches = auto. */
typedef struct pp_mb_row {
    int microbatches;
    bool ok, fits;     /* compiled; under memory.limit */
    double makespan, bubble;
    double throughput; /* model.batch / makespan: samples per unit of time */
    double peak;       /* the largest device's peak memory */
    char reason[300];  /* !ok: the error */
    char balance[512]; /* balance = auto: "-D model.balance=[...]", the row's split; else "" */
    long ops;          /* the ops of the plan it compiled (0: none) */
} pp_mb_row;
/* A sweep or microbatches = auto compiles at most this many ops over all
 * its rows: no more work than the largest single plan (PP_MAX_OPS_TOTAL). */
#define PP_MAX_SWEEP_OPS PP_MAX_OPS_TOTAL
/* Tests only: a test binary that defines it gives a smaller budget (a
 * positive return; 0 keeps PP_MAX_SWEEP_OPS).  The programs do not. */
extern long pp_test_sweep_ops(void) __attribute__((weak));
/* What the rows of one sweep or search (microbatches = auto, gpus = N) may
 * compile in all: PP_MAX_SWEEP_OPS, or the test's. */
long pp_sweep_budget(void);
/* defs then the three settings of a row of M micro-batches (-D
 * microbatches=M -D microbatches.reference=R -D model.batch=N, from s): a
 * heap block of *n defines the caller frees. */
pp_define *pp_microbatch_defs(const pp_define *defs, int ndefs, const pp_spec *s, int M, int *n);
/* The file (ast, defs) compiled with M micro-batches of its batch. */
void pp_microbatch_row(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, int M, pp_mb_row *r);
/* The table of rows for values[n], the best marked; an error, and no
 * table, when the rows would compile more than PP_MAX_SWEEP_OPS ops. */
int pp_sweep(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, const int *values,
             int n, pp_diag *d);
/* microbatches = auto: *chosen, with a one-line report on d->out; error
 * (the closest named) when no M qualifies. */
int pp_microbatch_choose(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, int *chosen,
                         pp_diag *d);

/* gpus.c (docs/auto.md, "How many stages?"): gpus = N, the devices x
 * data_parallel split of N GPUs with the best predicted throughput that
 * fits memory.  Prints every split's row and the frontier (fitting rows
 * that no other beats in both step time and peak memory) on report;
 * returns defs followed by the winner's settings (devices, data_parallel,
 * gpus = 0, and microbatches = auto's choice; *n in all; one block to
 * free), or NULL (error). */
pp_define *pp_gpus_choose(FILE *report, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s,
                          int *n, pp_diag *d);

/* ------------------------------------------------------------------ */
/* lower.c: communication lowering                                     */
/* ------------------------------------------------------------------ */

/* Inserts send/recv for every cross-device dependency and assigns group
 * ids; consecutive stages on one device exchange nothing. */
int pp_lower(pp_plan *p, pp_diag *d);
/* The same, placing sends by a timing on these costs (NULL: F = 1, B = 2,
 * B = W = 1 when split, free communication — what pp_lower uses). */
int pp_lower_costed(pp_plan *p, const pp_cost *cost, pp_diag *d);
struct pp_verify_opts;
/* The same communication with overlap (plan version 2, `overlap = true`,
 * docs/plan-format.md): every send and recv an asynchronous group of its
 * own, a recv posted before its data can leave its producer and waited
 * right before its consumer, a send posted right after its producer and
 * waited where its source is released (act: before the R or B of its
 * (stage, mb); grad: before the flush), every communication lane in the
 * order of one dataflow timing on cost (NULL as above).  With mem and a
 * memory.limit, a recv whose early post (its buffer counted from the
 * post, activation_memory.c) would put its device over the limit is
 * posted later, at the latest in its consumer's gap. */
int pp_lower_overlap(pp_plan *p, const pp_cost *cost, const struct pp_verify_opts *mem, pp_diag *d);
/* Lowering's run of walk.c's replay (pp_walk_run_stalled with its repair):
 * whenever every device still running is stuck, the unmatched sends of each
 * device on a wait-for cycle are delayed in place (in p) to just after the
 * device's next compute op, and the replay goes on from where it stood.
 * Sends keep their order per channel, so pairs do not change.  Stops when
 * nothing can move; returns the blocked devices. */
typedef struct pp_walk pp_walk;
int pp_walk_run_repair(pp_walk *w, pp_plan *p);

/* ------------------------------------------------------------------ */
/* walk.c: the rendezvous replay shared by lower, verify and simulate  */
/* ------------------------------------------------------------------ */

/* Ops are numbered globally: op i of device d is base[d] + i.  The k-th
 * send a->b is paired with the k-th recv on b from a (channel order);
 * partner[] holds that pairing (-1: none, or not a comm op).  run replays
 * every list: a device posts a whole group when it reaches it and moves
 * past once every op of the group has met its partner. */
struct pp_walk {
    int devices;
    long total;
    long *base;        /* [devices + 1] */
    int32_t *partner;  /* [total] */
    int *pc;           /* [devices] after run: where each device stopped (n = done) */
    int *gend;         /* [devices] after run: end of the group a blocked device sits in */
    int blocked;       /* after run: devices that did not reach the end */
    uint8_t *done;     /* [total] comm op met its partner */
    /* The replay's state where it stopped, which a repair may change
     * (pp_walk_run_stalled): whether each comm op has been posted, and per
     * device how many ops of its current group are still unmatched. */
    uint8_t *posted;   /* [total] */
    int *pending;      /* [devices] */
    /* Plan version 2 (docs/verifier.md, "Two lanes"): lane[d] is where
     * device d's communication lane stands (the first op of the group it
     * runs, or of the next one it will take), gend[d] the end of the group
     * it runs (0: idle); pc[d] is the compute lane's position.  target[g]
     * is, for a wait, the index on its device of the first op of the group
     * it waits for (-1: none); awaited[g] marks the first op of a group
     * that has a wait (an asynchronous group). */
    int *lane;         /* [devices] */
    int32_t *target;   /* [total] */
    uint8_t *awaited;  /* [total] */
    bool any_async;    /* some group has a wait */
    /* Timing (run_eager only): when each comm op is posted and when its
     * transfer ends (a send: when posted). */
    double *t_post, *t_pair;
    /* run_eager_hops only: hops[g] goes with the time of op g (a compute
     * op's end, a comm op's post), hops_pair[g] with t_pair[g]. */
    uint32_t *hops, *hops_pair;
};

/* Pairs sends and recvs; ops with an out-of-range peer stay unpaired.
 * Returns nonzero if the plan's shape is unusable (no devices, too big). */
int pp_walk_init(pp_walk *w, const pp_plan *p);
/* Replays with rendezvous semantics (a send waits for its recv) on two
 * lanes per device (plan version 2: lane[], target[]); returns the number
 * of blocked devices.  Untimed: timings use run_eager. */
int pp_walk_run(pp_walk *w, const pp_plan *p);
/* A repair of a stalled replay: called whenever every device still
 * running is stuck, it may move ops within p's lists, carrying their
 * partner[], done[] and posted[] entries along and lowering pending[]; the
 * devices it leaves with nothing to wait for go into resume[*nresume], to
 * be resumed in that order.  Returns how many devices it changed (0: the
 * replay stops there). */
typedef int (*pp_walk_repair)(pp_walk *w, pp_plan *p, int *resume, int *nresume);
/* Replays like pp_walk_run, calling repair at each stall and going on from
 * where the replay stood.  Returns the blocked devices at the end. */
int pp_walk_run_stalled(pp_walk *w, pp_plan *p, pp_walk_repair repair);
/* Timing with buffered sends: like run with dur, except that a send never
 * waits for its recv (the runtimes post sends on a communication stream or
 * into a queue); a transfer starts once both sides have posted and its
 * directed link is free, and its recv ends `comm` + dur later; a device
 * stops at a synchronous group's recvs and at a wait's.  t_post then holds
 * when each comm op is posted. */
int pp_walk_run_eager(pp_walk *w, const pp_plan *p, const double *dur, double comm, double *start,
                      double *end);
/* The same timing without links (the transfers of one link overlap: the
 * ideal timing version-1 lowering places sends by), each time paired with
 * hops: the dependencies followed
 * since the time last grew.  Pairs are ordered by time (compared at 40 bits
 * of precision, so that one sum added up in two orders ties) then hops
 * (pp_walk_no_later).  Every dependency (an op after the one before it on
 * its device, a recv's end after both posts) strictly increases the pair,
 * even where costs are 0 or too small to change the time, so a pair is
 * never caused by a later one: lower.c's deadlock freedom rests on it.
 * Afterwards hops[g] goes with a compute op's end or a comm op's post. */
int pp_walk_run_eager_hops(pp_walk *w, const pp_plan *p, const double *dur, double comm, double *start,
                           double *end);
/* (t0, h0) is no later than (t1, h1) in that order. */
bool pp_walk_no_later(double t0, uint32_t h0, double t1, uint32_t h1);
/* After a run that left devices blocked: for each blocked device d,
 * wait_at[d] is the op it waits on (an unmatched op of its group: a recv,
 * else a send, with a partner if any) and wait_for[d] the device it waits for
 * (-1 if none); cycle[d] >= 0 numbers the wait-for cycle d lies on, -1
 * elsewhere.  Unblocked devices get -1 everywhere.  Returns #cycles. */
int pp_walk_cycles(const pp_walk *w, const pp_plan *p, int *wait_at, int *wait_for, int *cycle);
/* The cycles of a wait-for graph where device d waits for next[d] alone
 * (-1: for none): cycle[d] numbers the cycle d lies on (-1 elsewhere), in
 * the order that following next[] from device 0, 1, ... meets them, and
 * entry[c] (if non-NULL) is the first device of cycle c met.  Returns the
 * number of cycles.  Shared with the custom policy's order replay. */
int pp_wait_cycles(const int *next, int n, int *cycle, int *entry);
/* Reports the deadlock of a run that left devices blocked: one error per
 * wait-for cycle, then one per blocked device off every cycle.  prefix
 * ("deadlock" / "lower: ...") opens each message. */
void pp_walk_report(const pp_walk *w, const pp_plan *p, pp_diag *d, const char *prefix);
void pp_walk_free(pp_walk *w);

/* ------------------------------------------------------------------ */
/* activation_memory.c: activation memory, the one accounting          */
/* ------------------------------------------------------------------ */

/* The memory model: what the verifier checks and the simulator and pprun
 * measure (docs/recompute.md).  NULL where one is taken: act_size 1, no
 * inputs kept, no limit. */
typedef struct pp_verify_opts {
    double act_size;  /* one (stage, mb)'s activations, in the file's unit; 0 counts as 1 */
    double mem_limit; /* per device; 0 = none */
    double input_frac; /* share of act_size a recomputed (stage, mb) holds between F and R */
    pp_view_units units; /* how the limit error shows sizes */
    /* The per-stage model of a spec with layers (pp_spec.stage_act ...):
     * with stage_act, a set of stage s is stage_act[s] and a kept input
     * stage_input[s] (act_size and input_frac unused), and device d holds
     * static_mem[d] (NULL: none) from the start.  NULL: the uniform model. */
    const double *stage_act, *stage_input, *static_mem;
    int stages, devices; /* the arrays' lengths */
    /* zero = 1: the bytes ZeRO-1's sharding takes off each device's
     * static_mem [devices] (NULL: none), for the views */
    const double *zero_saved;
} pp_verify_opts;

/* What a device holds: sets in full, and recomputed sets that kept only
 * their input (between F and R); with per-stage sizes, their memory too
 * (act, added and taken in list order) and the device's static memory. */
typedef struct pp_mem_state {
    long full, inputs;
    double act, base;
    double posted; /* buffers of receives posted and not yet waited (plan version 2) */
} pp_mem_state;

/* The state of device d before its first op: its static memory. */
pp_mem_state pp_mem_begin(const pp_verify_opts *mem, int d);
/* Applies op (F, R, B, W; anything else leaves m): recomputes says whether
 * its stage recomputes, split whether W (not B) releases the set; mem
 * gives the per-stage sizes (NULL: uniform). */
void pp_mem_step(pp_mem_state *m, const pp_op *op, bool recomputes, bool split, const pp_verify_opts *mem);
/* Memory held: (full + input_frac * inputs) * act_size in the uniform
 * model; base + the sets' sizes with per-stage sizes. */
double pp_mem_held(const pp_mem_state *m, const pp_verify_opts *mem);
/* held is over the limit (0: none), with the verifier's tolerance. */
bool pp_mem_over(double held, double limit);
/* out[stages]: the stage recomputes (the plan has an R of it). */
void pp_plan_recomputing(const pp_plan *p, bool *out);
/* The buffer a recv fills: the input of the stage the tensor enters (act
 * of stage s: the input of s + 1; grad of stage s: the input of s), the
 * size that stage keeps when it recomputes (stage_input[], or input_frac
 * x act_size); 0 for anything but a recv. */
double pp_mem_recv_size(const pp_op *op, const pp_verify_opts *mem);
/* delta[0 .. dv->n): what each op adds to pp_mem_state.posted: a recv of
 * an asynchronous group (one with a wait) its buffer, held from its post;
 * the wait the buffers of its group's recvs, which its consumer takes (as
 * part of its set: not counted twice); everything else 0.  A synchronous
 * recv (plan version 1), or one posted with no compute op between its post
 * and its wait, hands its buffer to its consumer at once: 0. */
void pp_mem_posted_deltas(const pp_device *dv, const pp_verify_opts *mem, double *delta);

typedef struct pp_mem_peak {
    double peak;      /* the device's peak memory: max of pp_mem_held over its list (static included) */
    long peak_full;   /* the most sets it held in full at once */
    int over_at;      /* first op whose memory is over mem->mem_limit, -1 none */
    double held_over; /* the memory held there */
} pp_mem_peak;
/* Walks device d's list (recomputing from pp_plan_recomputing, NULL = none). */
pp_mem_peak pp_device_memory(const pp_plan *p, int d, const bool *recomputing, const pp_verify_opts *mem);

/* ------------------------------------------------------------------ */
/* verify.c: deadlock freedom, matching, dependencies, exactly-once    */
/* ------------------------------------------------------------------ */

int pp_verify(const pp_plan *p, const pp_verify_opts *o, pp_diag *d);
/* The options a spec asks for; with_limit false drops its memory limit
 * (to measure a schedule that may not fit). */
pp_verify_opts pp_verify_opts_of(const pp_spec *s, bool with_limit);

/* ------------------------------------------------------------------ */
/* simulate.c: event-driven timing on the cost model                   */
/* ------------------------------------------------------------------ */

typedef struct pp_sim {
    double makespan;
    double bubble;        /* pp_bubble(busy, devices, makespan) */
    double *busy;         /* [devices] compute time */
    int *peak_act;        /* [devices] the most (stage, mb) sets held in full at once */
    double *peak_mem;     /* [devices] peak memory (activation_memory.c), the memory model's unit */
    double **start, **end;/* [devices][op index] */
    double coll_time;     /* the time of every collective (begin to end), each counted once; 0: none */
    double dp_time;       /* of those, the reductions over data-parallel replicas (STAGE, SHARD, GATHER) */
    double *zero_saved;   /* [devices] ZeRO-1's saving on each device's memory (pp_verify_opts); NULL: none */
    pp_view_units units;  /* pp_compile: its spec's (zero: the file's units) */
} pp_sim;

/* Times the plan (walk.c's eager replay on cost c) and measures its memory
 * on the memory model mem (NULL: act_size 1, no inputs kept). */
int pp_simulate(const pp_plan *p, const pp_cost *c, const pp_verify_opts *mem, pp_sim *out, pp_diag *d);
/* The one layout of a pp_sim, for a plan's lists (zeroed; start[d] and
 * end[d] point into one block each), shared with pprun's measured timeline;
 * pp_sim_free releases it. */
void pp_sim_alloc(pp_sim *s, const pp_plan *p);
void pp_sim_free(pp_sim *s, int devices);
/* coll_time and dp_time from start and end: each collective's time once,
 * on its first member (a prediction's and a measured run's alike). */
void pp_sim_coll_times(const pp_plan *p, pp_sim *s);
/* 1 - sum(busy) / (devices * makespan); 0 for a zero makespan. */
double pp_bubble(const double *busy, int devices, double makespan);

/* ------------------------------------------------------------------ */
/* passes.c: the passes after the policy, as one call                  */
/* ------------------------------------------------------------------ */

/* Every pass after the policy, as ppcc, --compare and auto run them:
 * pp_lower, pp_verify (pp_verify_opts_of(s, with_limit)), pp_simulate on
 * s's cost and memory.  Stops at the first that fails; sim is filled only
 * on success. */
int pp_lower_verify_simulate(pp_plan *p, const pp_spec *s, bool with_limit, pp_sim *sim, pp_diag *d);


/* ------------------------------------------------------------------ */
/* compile.c: ppcc's whole compilation of a spec                       */
/* ------------------------------------------------------------------ */

/* What ppcc compiles a spec to: with balance = auto (not yet searched),
 * pp_balance_auto (s takes the split found; the report goes to d->out),
 * then pp_policy_run, then pp_lower_verify_simulate with the file's memory
 * limit.  p can always be given to pp_plan_free (it holds the policy's
 * plan, lowered as far as the passes got, when the policy succeeded:
 * p->dev is NULL when it did not); sim is filled only on success. */
int pp_compile(pp_spec *s, pp_plan *p, pp_sim *sim, pp_diag *d);

/* ------------------------------------------------------------------ */
/* compare.c: the policies side by side                                */
/* ------------------------------------------------------------------ */

/* compare.c: `ppcc FILE --compare a,b,...` (docs/auto.md).  Prints one
 * row per policy to out, each the compilation of the file (ast, spec s
 * built from it with defs) with the row's -D settings added after defs;
 * unknown names are errors (returns their count). */
int pp_compare(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, const char *list,
               pp_diag *d);
/* --compare LIST --shapes: the same table with each policy in its best
 * shape (v, placement, recompute and, with layers, balance: docs/auto.md,
 * "Shapes"), then the best row and the best of each shape. */
int pp_compare_shapes(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s,
                      const char *list, pp_diag *d);
/* --shapes without --compare: the file's policy (auto: every synchronous
 * policy, auto among them) searched in every shape as above; the winner
 * and the best of each shape reported on report; returns defs followed by
 * the winner's settings (*n in all; one block to free), or NULL (error). */
pp_define *pp_shapes_choose(FILE *report, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s,
                            int *n, pp_diag *d);

/* ------------------------------------------------------------------ */
/* emit_json.c / emit_timeline.c / emit_stats.c / emit_trace.c        */
/* ------------------------------------------------------------------ */

int pp_emit_json(FILE *f, const pp_spec *s, const pp_plan *p, const pp_sim *sim);

typedef struct pp_timeline_opts {
    int width;     /* total columns, default 80 */
    bool compact;  /* one character per op */
    /* data_parallel: a lane per rank (every replica) instead of one
     * replica's devices; ranks: the lanes are such ranks (set by the
     * timeline itself for the expanded chart) */
    bool all_replicas, ranks;
} pp_timeline_opts;

/* bubble_split.c: the bubble as fill/drain plus imbalance, and the
 * bottleneck (docs/timeline.md, "The bubble, split"): one computation,
 * printed alike by --stats, the text timeline and the pictures. */
typedef struct pp_bubble_split {
    double fill_drain; /* (makespan - the busiest device's busy) / makespan */
    double imbalance;  /* sum over devices of (that busy - theirs) / (devices * makespan) */
    int device;        /* the busiest device; -1 when every device is as busy */
    int stage;         /* its stage with the most compute per micro-batch; -1 with device */
    double stage_time; /* that compute time per micro-batch */
} pp_bubble_split;
void pp_bubble_split_of(const pp_plan *p, const pp_sim *sim, pp_bubble_split *out);

int pp_emit_timeline(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_timeline_opts *o);
int pp_emit_stats(FILE *f, const pp_plan *p, const pp_sim *sim);
/* Chrome / Perfetto trace-event JSON of a timeline; ts = time * us_per_unit. */
int pp_emit_trace(FILE *f, const pp_plan *p, const pp_sim *sim, double us_per_unit);

/* emit_svg.c: the timeline as a picture (docs/timeline.md): one lane
 * per device, the summary, memory over time (on mem's model); caption
 * says what it shows ("predicted"); html wraps it in a page. */
int pp_emit_svg(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_verify_opts *mem, const char *caption,
                bool html);
/* Several timelines of one plan in one picture, one above the other, each
 * on its own time axis (ppcc --measured: the prediction, then the run). */
typedef struct pp_svg_panel {
    const pp_sim *sim;
    const char *caption; /* "predicted", "measured, microseconds" */
} pp_svg_panel;
int pp_emit_svg_panels(FILE *f, const pp_plan *p, const pp_svg_panel *panels, int n, const pp_verify_opts *mem,
                       bool html);

/* measured.c: a measured step as a pp_sim (docs/timeline.md, "Predicted
 * and measured").  pp_sim_measured: from start and end (filled, op by op,
 * on pp_sim_alloc's layout), each device's busy time, the makespan (the
 * flush's start), the bubble and the collectives' times.  pp_measured_read: the last step of
 * pprun's --trace file at path, which must be a run of plan p, into out
 * (pp_sim_free releases it); microseconds from the step's first op; peak
 * memory is predicted's, which follows the op order alone. */
void pp_sim_measured(const pp_plan *p, pp_sim *sim);
int pp_measured_read(const char *path, const pp_plan *p, const pp_sim *predicted, pp_sim *out, pp_diag *d);
/* ppcc --stats --measured: the makespan's error and each compute op's (its
 * start against the predicted makespan, its duration against its
 * predicted one), and with collectives their time (pp_sim_coll_times),
 * measured against predicted, to f; nonzero if f failed. */
int pp_measured_report(FILE *f, const pp_plan *p, const pp_sim *predicted, const pp_sim *measured);

/* torch_csv_write.c: the plan as PyTorch's schedule CSV (docs/torch.md). */
enum pp_torch_csv_format { PP_TORCH_CSV_COMPUTE_ONLY = 0, PP_TORCH_CSV_COMPUTE_COMMS = 1 };
const char *pp_torch_csv_format_name(int format); /* "compute_only" | "compute_comms" */
int pp_torch_csv_format_from_name(const char *name); /* -1 if unknown */
/* Refuses, with an error each, what PyTorch's runtime cannot run: an R
 * op, asynchronous weights, a placement other than loop or V. */
int pp_torch_csv_check(const pp_plan *p, pp_diag *d);
int pp_emit_torch_csv(FILE *f, const pp_plan *p, int format);

/* megatron_layout.c: Megatron-LM's --pipeline-model-parallel-layout
 * (docs/megatron.md).  Reads text into blocks[stages], a gpt's blocks per
 * stage; 1, with msg ("column N: ...") and *at (the byte of text it
 * names), for what Megatron or ppcc cannot read. */
int pp_megatron_layout_read(const char *text, int stages, int *blocks, char *msg, size_t msgsize, size_t *at);
/* blocks[S] as the canonical layout string, on one line. */
int pp_megatron_layout_write(FILE *f, const int *blocks, int S);
/* --emit megatron-layout: a gpt on the loop placement, or an error. */
int pp_megatron_layout_check(const pp_spec *s, const pp_plan *p, pp_diag *d);

#endif
