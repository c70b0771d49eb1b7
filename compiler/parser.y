/* STUB: replaced by the DSL pass. */
%define api.pure full
%define api.prefix {ppstub_}
%code { static int ppstub_lex(PPSTUB_STYPE *v) { (void)v; return 0; } static void ppstub_error(const char *m) { (void)m; } }
%%
file: %empty ;
%%
