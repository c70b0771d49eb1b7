/* STUB: ast pass, being written. */
#include "pp.h"
int pp_parse(const char *path, const char *text, size_t len, pp_arena *a, pp_diag *d, pp_ast *ast) { pp_error(d, "parser not built"); return 1; }
int pp_parse_file(const char *path, pp_arena *a, pp_diag *d, pp_ast *ast) { pp_error(d, "parser not built"); return 1; }
