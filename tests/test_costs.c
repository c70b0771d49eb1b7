/*
 * test_costs.c — the transformer's cost formulas (gpt_costs.c), the
 * hardware presets and links (hardware.c) and the byte units (units.c)
 * against independent arithmetic: published parameter counts (GPT-2 small
 * 124,439,808 and medium 354,823,168, as Hugging Face's GPT2Model counts
 * them), Narayanan et al. 2021's closed form for a step's FLOPs, and
 * Korthikanti et al. 2022's activation bytes per layer with the dropout
 * terms taken out (docs/gpt.md, "Costs").
 */
#include <math.h>
#include <string.h>

#include "test_util.h"

typedef struct shape {
    const char *name;
    pp_gpt_shape g;
} shape;

/* layers, hidden, heads, ffn, seq, vocab, batch, microbatches, tie */
static const shape shapes[] = {
    {"gpt2-small", {12, 768, 12, 3072, 1024, 50257, 8, 4, true}},
    {"gpt2-medium", {24, 1024, 16, 4096, 1024, 50257, 16, 8, true}},
    {"llama-like-7b", {32, 4096, 32, 16384, 2048, 32000, 64, 16, false}},
    {"gpt3-175b", {96, 12288, 96, 49152, 2048, 51200, 1536, 64, false}},
};

static void close_to(double got, double want, const char *what, const char *name)
{
    ck_assert_msg(fabs(got - want) <= 1e-12 * fabs(want), "%s %s: %.17g, want %.17g", name, what, got, want);
}

static double sum_params(const pp_gpt_shape *g)
{
    double total = 0;
    for (int kind = PP_GPT_EMBEDDING; kind <= PP_GPT_HEAD; kind++) {
        pp_gpt_counts c;
        pp_gpt_layer_counts(g, PP_BF16, kind, &c);
        total += c.params * (kind == PP_GPT_BLOCK ? g->layers : 1);
    }
    return total;
}

START_TEST(test_parameters)
{
    /* published counts */
    ck_assert_double_eq(sum_params(&shapes[0].g), 124439808);
    ck_assert_double_eq(pp_gpt_parameters(&shapes[0].g), 124439808);
    ck_assert_double_eq(sum_params(&shapes[1].g), 354823168);
    /* 12 L h^2 + 13 L h + embeddings, untied head, lnf (f = 4h) */
    for (size_t i = 2; i < sizeof shapes / sizeof shapes[0]; i++) {
        const pp_gpt_shape *g = &shapes[i].g;
        double L = g->layers, h = g->hidden, V = g->vocab, s = g->seq;
        double want = 12 * L * h * h + 13 * L * h + 2 * V * h + s * h + 2 * h;
        close_to(sum_params(g), want, "parameters", shapes[i].name);
        close_to(pp_gpt_parameters(g), want, "pp_gpt_parameters", shapes[i].name);
    }
    /* a tied head stores its copy of wte on the last stage */
    pp_gpt_counts head;
    pp_gpt_layer_counts(&shapes[0].g, PP_BF16, PP_GPT_HEAD, &head);
    ck_assert_double_eq(head.params, 2 * 768);
    ck_assert_double_eq(head.params_held, 2 * 768 + 768.0 * 50257);
}
END_TEST

START_TEST(test_flops)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const pp_gpt_shape *g = &shapes[i].g;
        double B = g->batch, s = g->seq, l = g->layers, h = g->hidden, V = g->vocab;
        /* Narayanan et al. 2021, eq. (3) without recompute (3 passes, not 4) */
        double want = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
        close_to(pp_gpt_step_flops(g), want, "step FLOPs", shapes[i].name);
        /* one block, one micro-batch: F = 24 b s h^2 (1 + s / 6h); B + W = 2 F;
         * W, one weight gradient per matmul with weights, 24 b s h^2 */
        double b = B / g->microbatches;
        pp_gpt_counts c;
        pp_gpt_layer_counts(g, PP_BF16, PP_GPT_BLOCK, &c);
        close_to(c.flops_F, 24 * b * s * h * h * (1 + s / (6 * h)), "block F", shapes[i].name);
        close_to(c.flops_B + c.flops_W, 2 * c.flops_F, "block B + W", shapes[i].name);
        close_to(c.flops_W, 24 * b * s * h * h, "block W", shapes[i].name);
        pp_gpt_layer_counts(g, PP_BF16, PP_GPT_HEAD, &c);
        close_to(c.flops_F + c.flops_B + c.flops_W, 6 * b * s * h * V, "head", shapes[i].name);
    }
}
END_TEST

START_TEST(test_activations)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const pp_gpt_shape *g = &shapes[i].g;
        double b = g->batch / g->microbatches, s = g->seq, h = g->hidden, a = g->heads;
        /* Korthikanti et al. 2022, eq. (1): s b h (34 + 5 a s / h) bytes in
         * 16 bits, less its dropout: the two sbh masks (attention, MLP), the
         * softmax's as^2b mask and its 2as^2b output */
        double korthikanti = s * b * h * (34 + 5 * a * s / h);
        double want = korthikanti - 2 * s * b * h - 3 * a * s * s * b;
        pp_gpt_counts c;
        pp_gpt_layer_counts(g, PP_BF16, PP_GPT_BLOCK, &c);
        close_to(c.act_bytes, want, "block activations (bf16)", shapes[i].name);
        /* full recompute keeps the layer input: 2 s b h */
        close_to(c.act_input_bytes, 2 * s * b * h, "block input (bf16)", shapes[i].name);
        close_to(c.out_bytes, 2 * s * b * h, "block output (bf16)", shapes[i].name);
        /* fp32 keeps 4-byte elements: twice */
        pp_gpt_counts c32;
        pp_gpt_layer_counts(g, PP_FP32, PP_GPT_BLOCK, &c32);
        close_to(c32.act_bytes, 2 * want, "block activations (fp32)", shapes[i].name);
    }
}
END_TEST

START_TEST(test_bytes_per_param)
{
    /* ZeRO (Rajbhandari et al. 2020): mixed-precision Adam 2 + 2 + 12 */
    ck_assert_double_eq(pp_gpt_bytes_per_param(PP_BF16, true), 16);
    ck_assert_double_eq(pp_gpt_bytes_per_param(PP_BF16, false), 8);  /* bf16 w, g, fp32 master */
    ck_assert_double_eq(pp_gpt_bytes_per_param(PP_FP32, true), 16);  /* w, g, m, v */
    ck_assert_double_eq(pp_gpt_bytes_per_param(PP_FP32, false), 8);
    ck_assert_double_eq(pp_gpt_bytes_per_param(PP_TF32, false), 8);
}
END_TEST

START_TEST(test_layers_on_hardware)
{
    const pp_gpt_shape *g = &shapes[3].g; /* GPT-3 175B */
    const pp_hardware *hw = pp_hardware_preset("h100");
    ck_assert_ptr_nonnull(hw);
    pp_layer layers[100];
    ck_assert_int_eq(pp_gpt_layers(g, PP_BF16, true, hw, layers, 97), -1);
    ck_assert_int_eq(pp_gpt_layers(g, PP_BF16, true, hw, layers, 100), 98);
    ck_assert_str_eq(layers[0].kind, "embedding");
    ck_assert_str_eq(layers[1].kind, "block");
    ck_assert_str_eq(layers[97].kind, "head");
    double b = 1536.0 / 64, s = 2048, h = 12288;
    /* a block's forward: its FLOPs at half of 989.4 TFLOP/s */
    close_to(layers[1].F, 24 * b * s * h * h * (1 + s / (6 * h)) / (989.4e12 * 0.5), "F seconds", "gpt3");
    close_to(layers[1].weights, 16 * (12 * h * h + 13 * h), "block weights", "gpt3");
    close_to(layers[1].out, 2 * b * s * h, "block output", "gpt3");
    ck_assert_double_eq(layers[0].F, 0);
    ck_assert_double_eq(layers[97].out, 0);
    /* without hardware: bytes, and no times */
    ck_assert_int_eq(pp_gpt_layers(g, PP_BF16, true, NULL, layers, 100), 98);
    ck_assert_double_eq(layers[1].F, 0);
    close_to(layers[1].weights, 16 * (12 * h * h + 13 * h), "block weights, no hardware", "gpt3");
}
END_TEST

START_TEST(test_hardware)
{
    ck_assert_ptr_null(pp_hardware_preset("h800"));
    const pp_hardware *h100 = pp_hardware_preset("h100"), *a100 = pp_hardware_preset("a100");
    const pp_hardware *h200 = pp_hardware_preset("h200"), *cpu = pp_hardware_preset("cpu");
    ck_assert_ptr_nonnull(cpu);
    ck_assert_double_eq(h200->memory, 141e9);
    ck_assert_double_eq(h200->flops[PP_BF16], h100->flops[PP_BF16]);
    ck_assert_double_eq(a100->flops[PP_BF16], 312e12);
    /* 8 devices a node: 7 -> 8 crosses the network, 6 -> 7 stays on NVLink */
    double bytes = 50331648; /* one GPT-3 activation of a sequence in bf16 */
    close_to(pp_link_time(h100, 6, 7, bytes), 5e-6 + bytes / 450e9, "NVLink", "h100");
    close_to(pp_link_time(h100, 8, 7, bytes), 10e-6 + bytes / 50e9, "network", "h100");
    ck_assert_double_eq(pp_link_time(h100, 3, 3, bytes), 0);
    close_to(pp_compute_time(a100, PP_TF32, 156e12), 2, "compute", "a100");
    ck_assert_int_eq(pp_precision_from_name("bf16"), PP_BF16);
    ck_assert_int_eq(pp_precision_from_name("fp16"), -1);
}
END_TEST

START_TEST(test_units)
{
    static const struct {
        const char *text;
        double bytes;
    } ok[] = {
        {"80GB", 80e9}, {"1.5GiB", 1.5 * 1073741824.0}, {"512B", 512}, {"4KB", 4000},
        {"3MiB", 3145728}, {"2MB", 2e6}, {"64KiB", 65536}, {"0B", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double x = -1;
        char err[128];
        ck_assert_msg(pp_bytes_parse(ok[i].text, &x, err, sizeof err), "%s: %s", ok[i].text, err);
        ck_assert_double_eq(x, ok[i].bytes);
    }
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"80Gb", "unknown unit 'Gb' (B, KB, MB, GB, KiB, MiB, GiB)"},
        {"80", "a size needs its unit, as in 80GB (B, KB, MB, GB, KiB, MiB, GiB)"},
        {"GB", "expected a number, or a size such as 80GB (B, KB, MB, GB, KiB, MiB, GiB)"},
        {"-1GB", "must not be negative"}, /* the lexer reads it as one word (docs/fuzzing.md) */
        {"80TB", "unknown unit 'TB' (B, KB, MB, GB, KiB, MiB, GiB)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double x;
        char err[128];
        ck_assert_msg(!pp_bytes_parse(bad[i].text, &x, err, sizeof err), "%s accepted", bad[i].text);
        ck_assert_str_eq(err, bad[i].err);
    }
    char buf[32];
    pp_byte_unit u = pp_bytes_unit(61.25e9);
    ck_assert_str_eq(u.name, "GB");
    ck_assert_str_eq(pp_bytes_show(61.25e9, u, buf, sizeof buf), "61.25GB");
    ck_assert_str_eq(pp_bytes_show(5e8, u, buf, sizeof buf), "0.50GB"); /* one unit for the view */
    ck_assert_str_eq(pp_bytes_human(512, buf, sizeof buf), "512B");
    ck_assert_str_eq(pp_bytes_human(3.5e6, buf, sizeof buf), "3.50MB");
}
END_TEST

/* GPipe, 2 devices, 1 micro-batch: the makespan is the chain F0, the
 * activation over the link, F1, B1, the gradient back, B0 (unsplit
 * backwards: B + W); on one node the link is NVLink, on two the network. */
START_TEST(test_transfers_from_bytes)
{
    const char *base = "devices = 2\nmicrobatches = 1\nschedule gpipe\n"
                       "model gpt { layers = 4 hidden = 1024 heads = 16 seq = 1024 vocab = 50257 batch = 2 "
                       "precision = bf16 }\n";
    for (int per_node = 1; per_node <= 2; per_node++) {
        char text[512];
        snprintf(text, sizeof text, "%shardware h100 { devices_per_node = %d }\n", base, per_node);
        tu_compiled c;
        tu_compile_ok(&c, text);
        const pp_cost *k = &c.spec.cost;
        ck_assert(c.spec.seconds);
        double bytes = 2.0 * 1024 * 1024 * 2; /* b s h e */
        ck_assert_double_eq(k->stage_out[0], bytes);
        double link = per_node == 2 ? 5e-6 + bytes / 450e9 : 10e-6 + bytes / 50e9;
        /* then the tied allreduce: wte's gradient, vocab x hidden in bf16, over the same link */
        double tied = 50257.0 * 1024 * 2;
        ck_assert_double_eq(k->tied_bytes, tied);
        double sum = per_node == 2 ? 5e-6 + tied / 450e9 : 10e-6 + tied / 50e9;
        double want = k->stage_F[0] + link + k->stage_F[1] + k->stage_B[1] + k->stage_W[1] + link + k->stage_B[0] +
                      k->stage_W[0] + sum;
        close_to(c.sim.coll_time, sum, "allreduce", per_node == 2 ? "one node" : "two nodes");
        close_to(c.sim.makespan, want, "makespan", per_node == 2 ? "one node" : "two nodes");
        /* the stages' times are their layers' sums: embedding + 2 blocks, 2 blocks + head */
        const pp_layer *L = c.spec.layers;
        ck_assert_int_eq(c.spec.n_layers, 6);
        close_to(k->stage_F[0], L[0].F + L[1].F + L[2].F, "stage 0 F", "sum");
        close_to(k->stage_B[1], L[3].B + L[4].B + L[5].B, "stage 1 B", "sum");
        /* tokens/s per device and MFU */
        double tps, mfu;
        ck_assert(pp_throughput(&c.sim.units, c.sim.makespan, 2, &tps, &mfu));
        close_to(tps, 2.0 * 1024 / c.sim.makespan / 2, "tokens/s", "gpipe");
        double B = 2, s = 1024, l = 4, h = 1024, V = 50257;
        double flops = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
        close_to(mfu, flops / (c.sim.makespan * 2 * 989.4e12), "MFU", "gpipe");
        tu_compiled_free(&c);
    }
}
END_TEST

/* A tied head's copy of wte (docs/gpt.md, "Costs"): counted on the last
 * stage's device when the embedding is elsewhere (loop placement), once on
 * a device holding both (zbv's V puts stage 0 and stage 2D-1 on device 0);
 * untied, the head's own matrix stays on both. */
START_TEST(test_tied_copy_counted_once)
{
    const char *model = "model gpt { layers = 4 hidden = 256 heads = 4 seq = 128 vocab = 4096 batch = 4 "
                        "precision = bf16 tie = %d }\nhardware h100 { }\n";
    double V = 4096, h = 256, per = pp_gpt_bytes_per_param(PP_BF16, true);
    for (int tie = 0; tie <= 1; tie++)
        for (int vee = 0; vee <= 1; vee++) {
            char text[512];
            int n = snprintf(text, sizeof text, "devices = 2\nmicrobatches = 2\n%s",
                             vee ? "schedule zbv\nvirtual = 2\nplacement = vshape\n" : "schedule 1f1b\n");
            snprintf(text + n, sizeof text - n, model, tie);
            tu_compiled c;
            tu_compile_ok(&c, text);
            const pp_spec *s = &c.spec;
            const pp_layer *head = &s->layers[s->n_layers - 1];
            ck_assert_double_eq(head->shared, tie ? V * h * per : 0);
            /* each device: the weights of its stages' layers, less the copy where it holds wte too */
            double want[2] = {0, 0};
            for (int st = 0, l = 0; st < s->stages; st++)
                for (int k = 0; k < pp_stage_layer_count(s, st); k++, l++)
                    want[s->placement[st]] += s->layers[l].weights;
            if (vee)
                want[0] -= tie ? V * h * per : 0;
            for (int d = 0; d < 2; d++)
                close_to(s->static_mem[d], want[d], "static memory", vee ? "zbv" : "1f1b");
            /* the V device holds wte once: embedding (V + s) h + head 2h (+ V h untied), at 16 bytes */
            if (vee) { /* stage 0: the embedding, then blocks; stage 3: blocks, then the head */
                double blocks = 0;
                for (int l = 1; l < pp_stage_layer_count(s, 0); l++)
                    blocks += s->layers[l].weights;
                for (int l = s->n_layers - pp_stage_layer_count(s, 3); l < s->n_layers - 1; l++)
                    blocks += s->layers[l].weights;
                double ends = ((V + 128) * h + 2 * h + (tie ? 0 : V * h)) * per;
                close_to(s->static_mem[0], ends + blocks, "device 0", "zbv");
            }
            /* the plan sums the copies only where there are two */
            ck_assert_int_eq(c.plan.ncoll, tie && !vee);
            tu_compiled_free(&c);
        }
}
END_TEST

/* Every policy's plan of a tied gpt: one allreduce on each of the first
 * and the last stage's devices, after the device's last compute op and
 * right before its update; none elsewhere, none under a V placement, none
 * untied; recompute and auto's search keep it. */
START_TEST(test_tied_allreduce_every_policy)
{
    static const struct {
        const char *settings;
        int a, b; /* the pair, -1: none */
    } cases[] = {
        {"schedule gpipe", 0, 2},
        {"schedule 1f1b\nmemory.recompute = always", 0, 2},
        {"schedule zb-h1", 0, 2},
        {"schedule zb-h2", 0, 2},
        {"schedule auto", 0, 2},
        {"schedule interleaved\nvirtual = 2", 0, 2},
        {"schedule looped-bfs\nvirtual = 2", 0, 2},
        {"schedule interleaved-zb\nvirtual = 2", 0, 2},
        {"schedule zbv\nvirtual = 2\nplacement = vshape", -1, -1},
        {"schedule dualpipev\nvirtual = 2\nplacement = vshape", -1, -1},
        {"schedule auto\nplacement = [2, 1, 0]", 0, 2},
        {"schedule gpipe\nmodel.tie = 0", -1, -1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char text[512];
        snprintf(text, sizeof text, "devices = 3\nmicrobatches = 6\n%s\ncost { F = 1 B = 2 W = 1 comm = 0.25 }\n"
                 "model gpt { layers = 6 hidden = 64 heads = 2 seq = 16 batch = 12 }\n", cases[k].settings);
        tu_compiled c;
        tu_compile_ok(&c, text);
        for (int d = 0; d < c.plan.devices; d++) {
            const pp_device *dv = &c.plan.dev[d];
            int n = 0, at = -1, update = -1, last_compute = -1;
            for (int i = 0; i < dv->n; i++) {
                int kind = dv->ops[i].kind;
                if (kind == PP_OP_ALLREDUCE) {
                    n++;
                    at = i;
                    const pp_coll *g = pp_plan_op_coll(&c.plan, &dv->ops[i]);
                    ck_assert_msg(g && g->what == PP_COLL_TIED && g->nranks == 2 && g->ranks[0] == cases[k].a &&
                                      g->ranks[1] == cases[k].b, "%s: device %d: a wrong group", cases[k].settings, d);
                    ck_assert_double_eq(g->bytes, 256.0 * 64 * 4); /* vocab x hidden in fp32 */
                }
                if (kind == PP_OP_UPDATE)
                    update = i;
                if (pp_op_is_compute(kind))
                    last_compute = i;
            }
            bool member = d == cases[k].a || d == cases[k].b;
            ck_assert_msg(n == member, "%s: device %d holds %d tied allreduces", cases[k].settings, d, n);
            if (member)
                ck_assert_msg(at == update - 1 && at > last_compute, "%s: device %d: allreduce at %d, update %d, "
                              "last compute %d", cases[k].settings, d, at, update, last_compute);
        }
        /* timed: the file's cost.comm, once */
        ck_assert_double_eq(c.sim.coll_time, cases[k].a >= 0 ? 0.25 : 0);
        tu_compiled_free(&c);
    }
}
END_TEST

/* The asynchronous policies compute with stored versions of each stage's
 * weights, which a tied head does not follow: a tied gpt is refused under
 * pipedream and 2bw, on any number of devices, at model.tie (or at schedule,
 * tie being the default); untied it compiles (docs/async.md). */
START_TEST(test_tied_async_refused)
{
#define WHY "cannot train a tied embedding (tie = true%s): it computes with stored versions of each stage's " \
            "weights, and the head shares wte with the embedding's stage, whose versions it does not follow; " \
            "set model.tie = false\n"
    static const struct {
        const char *text, *error; /* error "": compiles */
    } cases[] = {
        {"devices = 2\nschedule pipedream\nmodel gpt { layers = 2 hidden = 64 heads = 2 batch = 8 tie = 1 }\n",
         "t.pp:3:56: error: model.tie: schedule pipedream " WHY},
        {"devices = 2\nschedule pipedream\nmodel gpt { layers = 2 hidden = 64 heads = 2 batch = 8 }\n",
         "t.pp:2:1: error: schedule: schedule pipedream " WHY},
        {"devices = 1\nschedule pipedream\nmodel gpt { layers = 2 hidden = 64 heads = 2 batch = 8 }\n",
         "t.pp:2:1: error: schedule: schedule pipedream " WHY},
        {"devices = 2\nschedule 2bw\nmodel gpt { layers = 2 hidden = 64 heads = 2 batch = 8 }\n",
         "t.pp:2:1: error: schedule: schedule 2bw " WHY},
        {"devices = 2\nschedule pipedream\nmodel gpt { layers = 2 hidden = 64 heads = 2 batch = 8 tie = 0 }\n", ""},
        {"devices = 2\nschedule 2bw\nmodel gpt { layers = 2 hidden = 64 heads = 2 batch = 8 tie = 0 }\n", ""},
    };
#undef WHY
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pp_arena a = {0};
        tu_diag td;
        tu_diag_open(&td);
        pp_ast ast;
        pp_spec spec;
        const char *text = cases[k].text;
        int rc = pp_parse("t.pp", text, strlen(text), &a, &td.diag, &ast) ||
                 pp_spec_build(&ast, NULL, 0, &a, &td.diag, &spec);
        const char *msg = tu_diag_text(&td);
        const char *nl = strchr(msg, '\n'); /* the first line: the source line and caret follow */
        char first[512];
        snprintf(first, sizeof first, "%.*s", nl ? (int)(nl - msg + 1) : (int)strlen(msg), msg);
        char want[512];
        snprintf(want, sizeof want, cases[k].error, strstr(text, "tie = 1") ? "" : ", the default");
        ck_assert_str_eq(first, want);
        ck_assert_int_eq(rc != 0, cases[k].error[0] != '\0');
        tu_diag_close(&td);
        pp_arena_free(&a);
    }
}
END_TEST

/* Each field overrides its preset's, and only that one: half the
 * efficiency doubles every layer's time; a bf16 peak of its own sets the
 * bf16 times, not the memory or the links. */
START_TEST(test_hardware_overrides)
{
    const char *model = "devices = 2\nmicrobatches = 2\nschedule gpipe\n"
                        "model gpt { layers = 2 hidden = 256 heads = 4 seq = 128 batch = 4 precision = bf16 }\n";
    char text[512];
    tu_compiled base, slow, own;
    snprintf(text, sizeof text, "%shardware a100\n", model);
    tu_compile_ok(&base, text);
    snprintf(text, sizeof text, "%shardware a100 { efficiency = 0.25 }\n", model);
    tu_compile_ok(&slow, text);
    snprintf(text, sizeof text, "%shardware a100 { bf16_tflops = 100 memory = 40GB node_latency = 0 }\n", model);
    tu_compile_ok(&own, text);
    for (int st = 0; st < 2; st++) {
        close_to(slow.spec.cost.stage_F[st], 2 * base.spec.cost.stage_F[st], "F at half the efficiency", "a100");
        close_to(slow.spec.cost.stage_W[st], 2 * base.spec.cost.stage_W[st], "W at half the efficiency", "a100");
        close_to(own.spec.cost.stage_B[st], base.spec.cost.stage_B[st] * 312 / 100, "B at 100 TFLOP/s", "a100");
    }
    ck_assert_double_eq(own.spec.hardware->memory, 40e9);
    ck_assert_double_eq(own.spec.hardware->node_latency, 0);
    ck_assert_double_eq(own.spec.hardware->node_bandwidth, 300e9); /* the preset's */
    ck_assert_double_eq(own.spec.hardware->flops[PP_FP32], 19.5e12);
    ck_assert_str_eq(own.spec.hardware->name, "a100");
    tu_compiled_free(&base);
    tu_compiled_free(&slow);
    tu_compiled_free(&own);
}
END_TEST

/* Without hardware a gpt keeps the file's costs and units. */
START_TEST(test_no_hardware_keeps_units)
{
    tu_compiled c;
    tu_compile_ok(&c, "devices = 2\nmicrobatches = 2\ncost { F = 1 B = 2 comm = 0.5 }\nmodel gpt { layers = 2 }\n");
    ck_assert(!c.spec.seconds && !c.spec.bytes);
    ck_assert_ptr_null(c.spec.cost.stage_out);
    ck_assert_ptr_null(c.spec.layers); /* the stage stays the unit: nothing sums layers */
    ck_assert_double_eq(c.spec.cost.stage_F[1], 1);
    double tps, mfu;
    ck_assert(!pp_throughput(&c.sim.units, c.sim.makespan, 2, &tps, &mfu));
    tu_compiled_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("costs");
    TCase *tc = tcase_create("gpt");
    tcase_add_test(tc, test_parameters);
    tcase_add_test(tc, test_flops);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_bytes_per_param);
    tcase_add_test(tc, test_layers_on_hardware);
    tcase_add_test(tc, test_hardware);
    tcase_add_test(tc, test_units);
    tcase_add_test(tc, test_transfers_from_bytes);
    tcase_add_test(tc, test_hardware_overrides);
    tcase_add_test(tc, test_tied_copy_counted_once);
    tcase_add_test(tc, test_tied_allreduce_every_policy);
    tcase_add_test(tc, test_tied_async_refused);
    tcase_add_test(tc, test_no_hardware_keeps_units);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
