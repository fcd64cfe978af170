/* Shared pieces of the normjit command-line tool. */
#ifndef NJ_TOOL_H
#define NJ_TOOL_H

#include "normjit.h"
#include "variant.h"

/* Exit statuses of every command. */
enum { NJ_EXIT_OK = 0, NJ_EXIT_FAIL = 1, NJ_EXIT_USAGE = 2 };

/* Each command: argv[0] is the command's name. */
int nj_cmd_info(int argc, char **argv);
int nj_cmd_warm(int argc, char **argv);
int nj_cmd_bench(int argc, char **argv);
int nj_cmd_tune(int argc, char **argv);
int nj_cmd_demo(int argc, char **argv);
int nj_cmd_cache(int argc, char **argv);

/* Print "normjit <cmd>: <message>" to stderr and return NJ_EXIT_USAGE. */
int nj_usage_error(const char *cmd, const char *fmt, ...);

/* Print "normjit: <what>: <status name>: <last error>" to stderr and return NJ_EXIT_FAIL. */
int nj_report_failure(const char *what, int status);

/* Log callback that prints library warnings to stderr. */
void nj_tool_log(void *user, int level, const char *message);

/*
 * --quant values (normjit_quant_from_name's names) as one nonzero int, for
 * nj_parse_name_list: 0 for an unknown name.
 */
int nj_tool_quant_code(const char *name);

/*
 * The spec of a tool job: `op` on `dtype` data (x, weight and residual;
 * y too unless `quant_code` asks for quantized codes), `hidden` wide. 0 when
 * the op has no such variant (quantized QK-norm), with the reason in `why`.
 */
int nj_tool_spec(nj_spec *s, int op, int dtype, int quant_code, int cast, int64_t hidden,
                 const char **why);

/* --cast values as cast + 1 (nonzero), for nj_parse_name_list: 0 for an unknown name. */
int nj_tool_cast_code(const char *name);

/* "fp8-token", or "none": the name of a quant code. */
const char *nj_tool_quant_name(int quant_code);

/* Seconds since an arbitrary start, monotonic. */
double nj_now(void);

/* Online processors. */
int nj_cpu_count(void);

#endif
