/*
 * ops.c — names of op kinds, from the one X-macro table in pp.h, so the
 * emitter, the loader and the timeline cannot drift apart.
 */
#include <string.h>

#include "pp.h"

static const char *const op_names[] = {
#define PP_X(e, s, c) s,
    PP_OP_KINDS(PP_X)
#undef PP_X
};

static const bool op_compute[] = {
#define PP_X(e, s, c) c,
    PP_OP_KINDS(PP_X)
#undef PP_X
};

const char *pp_op_name(int kind)
{
    return kind >= 0 && kind < PP_OP__COUNT ? op_names[kind] : "?";
}

int pp_op_from_name(const char *name)
{
    for (int k = 0; k < PP_OP__COUNT; k++)
        if (strcmp(op_names[k], name) == 0)
            return k;
    return -1;
}

bool pp_op_is_compute(int kind)
{
    return kind >= 0 && kind < PP_OP__COUNT && op_compute[kind];
}

const char *pp_comm_name(int comm)
{
    return comm == PP_COMM_GRAD ? "grad" : "act";
}

int pp_comm_from_name(const char *name)
{
    if (strcmp(name, "act") == 0)
        return PP_COMM_ACT;
    if (strcmp(name, "grad") == 0)
        return PP_COMM_GRAD;
    return -1;
}

static const char *const coll_what_names[] = {
#define PP_X(e, s) s,
    PP_COLL_WHATS(PP_X)
#undef PP_X
};

const char *pp_coll_what_name(int what)
{
    return what >= 0 && what < PP_COLL__COUNT ? coll_what_names[what] : "?";
}

int pp_coll_what_from_name(const char *name)
{
    for (int k = 0; k < PP_COLL__COUNT; k++)
        if (strcmp(coll_what_names[k], name) == 0)
            return k;
    return -1;
}

const char *pp_op_format(const pp_op *op, char *buf, size_t size)
{
    switch (op->kind) {
    case PP_OP_F:
    case PP_OP_B:
    case PP_OP_W:
    case PP_OP_R:
        snprintf(buf, size, "%s%d.%d", pp_op_name(op->kind), op->stage, op->mb);
        break;
    case PP_OP_SEND:
        snprintf(buf, size, "send %s %d.%d to %d", pp_comm_name(op->comm), op->stage, op->mb, op->peer);
        break;
    case PP_OP_RECV:
        snprintf(buf, size, "recv %s %d.%d from %d", pp_comm_name(op->comm), op->stage, op->mb, op->peer);
        break;
    case PP_OP_ALLREDUCE:
        snprintf(buf, size, "allreduce #%d", op->peer);
        break;
    case PP_OP_WAIT:
        snprintf(buf, size, "wait #%d", op->group);
        break;
    default:
        snprintf(buf, size, "%s", pp_op_name(op->kind));
        break;
    }
    return buf;
}
