/* write_plan NAME OUT.json — writes one of plan_gen's named plans (for the CLI tests). */
#include <stdio.h>
#include <stdlib.h>

#include "plan_gen.h"

int main(int argc, char **argv)
{
    tg_spec s;
    if (argc != 3 || !tg_named(argv[1], &s)) {
        fprintf(stderr, "usage: write_plan NAME OUT.json\n");
        return 2;
    }
    char *text = tg_plan_json(&s);
    FILE *f = fopen(argv[2], "w");
    if (!f) {
        free(text);
        return 1;
    }
    fputs(text, f);
    fclose(f);
    free(text);
    return 0;
}
